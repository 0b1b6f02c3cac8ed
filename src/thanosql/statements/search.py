"""Handler of SEARCH {IMAGE|TEXT} USING model OPTIONS (...) AS query, in every era's syntax.

Returns the query's rows with a float cosine score column (``result_col``), the row order being
the answer (DESIGN.md decisions 1 and 2): the search_by era sorts by score, highest first, ties
in input order, rows without an embedding last, cut to ``top_k``; the inline era (``image=``)
keeps every row in input order (with ``top_k`` given, the k best rows, still in input order).
A text or image search input is embedded once by the model's own encoder, a given embedding
(``search_by='embedding'``) is taken as written; neither enters SQL text, and both are ranked by
search.engine.search (exact, cached between queries).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from ..errors import ExecutionError, PlanError, choices_hint
from ..models.base import check_input
from ..search import engine
from .columns import matching_columns

SEARCHABLE_MEDIA = ("image", "text")
# What a search input may be (search_by): a text or an image, which the model embeds, or an
# embedding given as a list of numbers (DESIGN.md decision 17), which needs no model weights.
SEARCH_INPUTS = ("image", "text", "embedding")
NUMBER_TYPES = ("float", "double", "tinyint", "smallint", "integer", "bigint", "hugeint", "decimal")


def search(session, step) -> pa.Table:
    """SEARCH IMAGE|TEXT [image=... | text=...] USING model [OPTIONS (search_by, search_input,
    emb_col, result_col, top_k, table_name)] AS query."""
    node, options = step.statement, step.options
    kind, value = _search_input(step)
    top_k = options["top_k"]
    relation = _relation(session, step)
    # The rows' columns first (no rows read), then model.json: a wrong emb_col or dimension
    # fails before any weights load, and a given embedding never loads them.
    emb_col = _embedding_column(relation, options["emb_col"], _span(step, "emb_col"))
    info = _model_info(session, node.model, node.span)
    size = _check_dimension(relation, emb_col, info, _span(step, "emb_col"))
    column = emb_col if size is not None else None
    query = query_embedding(session, info, kind, value, span=_span(step, "search_input"), column=column)
    ranking = engine.search(
        engine.Source.of(session),
        step.source,
        emb_col,
        query,
        top_k=top_k,
        keep_input_order=not step.sort,
        span=_span(step, "emb_col"),
        recall=options.get("recall"),
    )
    notice = how_it_ran(ranking, options.get("recall"))
    if notice:
        session.notify(notice)
    result = with_scores(ranking.rows, options["result_col"], ranking.scores)
    if options.get("table_name"):
        session.write_table(options["table_name"], result, "replace")
    return result


def how_it_ran(ranking, recall) -> str:
    """The notice of an approximate search (the promise and how it was kept), or of a search
    asked to be approximate that ran exactly (and why); '' for an exact search by default."""
    setting = ranking.setting
    if ranking.method == "approximate" and setting is not None:
        return (
            f"SEARCH ran approximately: recall {ranking.recall:g} promised for the top {setting.k}, "
            f"{setting.probes} of the index's {setting.lists} lists probed (measured recall {setting.measured:.3f} "
            f"on the table's own rows); {ranking.candidates} candidates scored exactly. recall=1 gives the exact answer."
        )
    if ranking.exact_because and (recall is None or recall < 1):
        return f"SEARCH ran exactly: {ranking.exact_because}."
    return ""


def _span(step, name: str):
    node, spans = step.statement, step.spans
    if name in spans:
        return spans[name]
    if name in ("search_by", "search_input") and node.inline is not None:
        return node.inline.span
    return node.span


def _search_input(step) -> tuple[str, str | tuple]:
    node, options = step.statement, step.options
    if node.media not in SEARCHABLE_MEDIA:
        raise PlanError(
            f"SEARCH {node.media.upper()} is not supported by this engine",
            span=node.span,
            hint="SEARCH IMAGE and SEARCH TEXT are (with CLIP or SimCLR models)",
        )
    kind, value = options["search_by"], options["search_input"]
    if kind is None:
        raise PlanError(
            "SEARCH needs to know what it searches by: search_by='text' or search_by='image'",
            span=node.span,
            hint="e.g. OPTIONS (search_by='text', search_input='a black cat', emb_col='convert_result')",
        )
    if kind not in SEARCH_INPUTS:
        raise PlanError(
            f"search_by='{kind}' is not supported by this engine",
            span=_span(step, "search_by"),
            hint="search by 'text', by 'image' or by 'embedding'",
        )
    if value is None or (isinstance(value, str) and not value.strip()):
        examples = {"text": "'a black cat'", "image": "'thanosql-dataset/pics/1.jpg'", "embedding": "[0.12, -0.3, ...]"}
        raise PlanError(
            "SEARCH needs a search_input: the text, the path of the image or the embedding to search for",
            span=_span(step, "search_input") if value is not None else node.span,
            hint=f"e.g. search_input={examples[kind]}",
        )
    _check_input_shape(kind, value, _span(step, "search_input"))
    return kind, value


def _check_input_shape(kind: str, value, span) -> None:
    """A list of numbers for search_by='embedding', a quoted string for the other kinds."""
    if kind == "embedding" and not isinstance(value, tuple):
        raise PlanError(
            "search_by='embedding' takes a list of numbers, not a string",
            span=span,
            hint="e.g. search_input=[0.12, -0.3, ...], as many numbers as the column's embeddings hold; "
            "search_by='text' or 'image' searches by a text or an image path",
        )
    if kind != "embedding" and isinstance(value, tuple):
        what = "a quoted text" if kind == "text" else "the quoted path of one image"
        raise PlanError(
            f"search_by='{kind}' takes {what}, not a list",
            span=span,
            hint="to search by a vector of numbers, write search_by='embedding'",
        )


def _relation(session, step):
    """The AS query's columns and types (session.Shape), without its rows."""
    return session.describe(step.source, step.statement)


def _embedding_column(relation, name: str, span) -> str:
    """The column ``name`` of the AS query as it is spelt there (names are case-insensitive)."""
    columns = list(relation.columns)
    matches = matching_columns(columns, name)
    if not matches:
        raise PlanError(
            f"column '{name}' not found in the rows SEARCH reads",
            span=span,
            hint=choices_hint(name, columns, "columns") + " (set emb_col=... to the column of embeddings)",
        )
    if len(matches) > 1:
        raise PlanError(
            f"column '{name}' appears {len(matches)} times in the rows SEARCH reads",
            span=span,
            hint="select it once, or rename one of them with AS",
        )
    return matches[0]


def _model_info(session, name: str, span):
    """model.json of the model named in USING: its name, family and embedding_dim, no weights."""
    store = session.models
    with store.folders.reading():  # not replaced while it is read
        return store.get(name, span=span)


def _check_dimension(relation, column: str, info, span) -> int | None:
    """Fail before any row is read when the column's type cannot hold the embeddings of the model
    ``info`` (its model.json); return the column's fixed size, or None for a list of any length."""
    kind = relation.types[list(relation.columns).index(column)]
    if kind.id not in ("array", "list"):
        raise PlanError(
            f"column '{column}' holds {kind}, not embeddings",
            span=span,
            hint="emb_col must name the column of embeddings made by CONVERT USING this model",
        )
    children = dict(kind.children)
    if children["child"].id not in NUMBER_TYPES:
        raise PlanError(f"column '{column}' holds {kind}, not embeddings of numbers", span=span)
    size = children.get("size")
    if size is not None and size != info.embedding_dim:
        raise PlanError(
            f"column '{column}' holds embeddings of {size} values, but model '{info.name}' makes {info.embedding_dim}",
            span=span,
            hint=f"search '{column}' with the model that made it, or CONVERT the rows with '{info.name}' first",
        )
    return size


def query_embedding(session, info, kind: str, value, span=None, column: str | None = None) -> np.ndarray:
    """The query vector (d,) float32 of the search input of ``kind`` (a key of QUERY_INPUTS) for
    the model whose model.json is ``info``: a text or an image path (relative paths start at the
    workspace) embedded by the model, kept per session so re-running a search does not re-encode;
    or an embedding given as a tuple of numbers, checked and taken as written (no weights loaded).
    ``column`` names the searched column, when its type fixes the embeddings' size, for errors.

    >>> query_embedding(session, session.models.get("tutorial_search_clip"), "text", "a black cat").shape  # doctest: +SKIP
    (512,)
    """
    return QUERY_INPUTS[kind](session, info, kind, value, span, column)


def _embedded_input(session, info, kind: str, value: str, span, column) -> np.ndarray:
    """A text or an image, through the model's own encoder."""
    adapter = session.model(info.name, span=span)
    name = adapter.info.name
    check_input(adapter, kind, span=span, purpose=f", so it cannot search by {kind}")
    if kind == "text":
        identity, given = ("text", value), value
    else:
        path = session.resolve_path(value)
        if not path.is_file():
            raise PlanError(
                f"image '{value}' not found (looked for {path})",
                span=span,
                hint="image paths are relative to the workspace, e.g. 'thanosql-dataset/<dataset>/<file>.jpg'",
            )
        stat = path.stat()
        identity, given = ("image", str(path), stat.st_mtime_ns, stat.st_size), str(path)
    cached = session.caches.queries.get(name, identity, adapter)
    if cached is not None:
        return cached
    vector = adapter.embed(kind, [given], span=span)[0]
    vector = np.asarray(vector, dtype=np.float32)
    if not np.all(np.isfinite(vector)) or not np.any(vector):
        raise ExecutionError(
            f"model '{name}' gave no usable embedding for the search input (zero or not a number)",
            span=span,
        )
    session.caches.queries.put(name, identity, adapter, vector)
    return vector


def _given_embedding(session, info, kind: str, value: tuple, span, column) -> np.ndarray:
    """A list of numbers, as long as the model's embeddings, finite in float32 and not all zero
    (cosine similarity needs a direction)."""
    numbers = []
    for position, item in enumerate(value, start=1):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise PlanError(
                f"search_input must hold numbers only, but value {position} is {item!r}",
                span=span,
                hint="write the embedding as [0.12, -0.3, 1.5e-3, ...]: numbers without quotes",
            )
        try:
            numbers.append(float(item))
        except OverflowError:  # an integer beyond any float
            numbers.append(math.inf if item > 0 else -math.inf)
    dim = info.embedding_dim
    if len(value) != dim:
        holder = f"column '{column}' holds" if column is not None else f"model '{info.name}' makes"
        raise PlanError(
            f"search_input has {len(value)} values, but {holder} embeddings of {dim}",
            span=span,
            hint=f"give all {dim} values of one embedding, e.g. one row of the column CONVERT USING {info.name} made",
        )
    with np.errstate(over="ignore"):  # a number beyond float32's range becomes inf, refused below
        vector = np.asarray(numbers, dtype=np.float64).astype(np.float32)
    if not np.all(np.isfinite(vector)):
        position = int(np.flatnonzero(~np.isfinite(vector))[0]) + 1
        raise PlanError(
            f"search_input value {position} is beyond the range of a 32-bit float",
            span=span,
            hint="embeddings are FLOAT (float32): every value must lie within about ±3.4e38",
        )
    if not np.any(vector):
        raise PlanError(
            "search_input is all zeros: cosine similarity to a zero vector is undefined",
            span=span,
            hint="give an embedding with at least one value that is not zero",
        )
    return vector


# How each kind of search input (search_by) becomes the query vector: a new kind is a row here.
QUERY_INPUTS = {"text": _embedded_input, "image": _embedded_input, "embedding": _given_embedding}


def with_scores(rows: pa.Table, name: str, scores: np.ndarray) -> pa.Table:
    """``rows`` with the float column ``name`` of ``scores`` (NaN -> NULL); an existing column of
    that name is replaced where it stands (DESIGN.md decision 4), otherwise it comes last.

    >>> with_scores(pa.table({"a": [1, 2]}), "search_result", np.array([0.5, np.nan])).to_pylist()
    [{'a': 1, 'search_result': 0.5}, {'a': 2, 'search_result': None}]
    """
    column = pa.array(np.asarray(scores, dtype=np.float64), mask=np.isnan(scores))
    if name in rows.column_names:
        return rows.set_column(rows.column_names.index(name), name, column)
    return rows.append_column(name, column)
