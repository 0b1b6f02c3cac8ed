"""Handler of SEARCH {IMAGE|TEXT} USING model OPTIONS (...) AS query, in every era's syntax.

Returns the query's rows with a float cosine score column (``result_col``), the row order being
the answer (DESIGN.md decisions 1 and 2): the search_by era sorts by score, highest first, ties
in input order, rows without an embedding last, cut to ``top_k``; the inline era (``image=``)
keeps every row in input order (with ``top_k`` given, the k best rows, still in input order).
The search input is embedded once by the model's own encoder and never enters SQL text; the
ranking is search.engine.search's (exact, cached between queries).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ExecutionError, PlanError, choices_hint
from ..models.base import check_input
from ..search import engine
from .columns import matching_columns

SEARCHABLE_MEDIA = ("image", "text")
NUMBER_TYPES = ("float", "double", "tinyint", "smallint", "integer", "bigint", "hugeint", "decimal")


def search(session, step) -> pa.Table:
    """SEARCH IMAGE|TEXT [image=... | text=...] USING model [OPTIONS (search_by, search_input,
    emb_col, result_col, top_k, table_name)] AS query."""
    node, options = step.statement, step.options
    kind, value = _search_input(step)
    top_k = options["top_k"]
    relation = _relation(session, step)
    # The rows' columns first (no rows read): a wrong emb_col fails before the model loads.
    emb_col = _embedding_column(relation, options["emb_col"], _span(step, "emb_col"))
    adapter = session.model(node.model, span=node.span)
    _check_dimension(relation, emb_col, adapter, _span(step, "emb_col"))
    query = query_embedding(session, adapter, kind, value, span=_span(step, "search_input"))
    ranking = engine.search(
        engine.Source.of(session),
        step.source,
        emb_col,
        query,
        top_k=top_k,
        keep_input_order=not step.sort,
        span=_span(step, "emb_col"),
    )
    result = with_scores(ranking.rows, options["result_col"], ranking.scores)
    if options.get("table_name"):
        session.write_table(options["table_name"], result, "replace")
    return result


def _span(step, name: str):
    node, spans = step.statement, step.spans
    if name in spans:
        return spans[name]
    if name in ("search_by", "search_input") and node.inline is not None:
        return node.inline.span
    return node.span


def _search_input(step) -> tuple[str, str]:
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
    if kind not in SEARCHABLE_MEDIA:
        raise PlanError(
            f"search_by='{kind}' is not supported by this engine",
            span=_span(step, "search_by"),
            hint="search by 'text' or by 'image'",
        )
    if value is None or not str(value).strip():
        raise PlanError(
            "SEARCH needs a search_input: the text, or the path of the image, to search for",
            span=_span(step, "search_input") if value is not None else node.span,
            hint=f"e.g. search_input='{'a black cat' if kind == 'text' else 'thanosql-dataset/pics/1.jpg'}'",
        )
    return kind, value


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


def _check_dimension(relation, column: str, adapter, span) -> None:
    """Fail before any row is read when the column's type cannot hold this model's embeddings."""
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
    if size is not None and size != adapter.embedding_dim:
        raise PlanError(
            f"column '{column}' holds embeddings of {size} values, but model '{adapter.info.name}' "
            f"makes {adapter.embedding_dim}",
            span=span,
            hint=f"search '{column}' with the model that made it, or CONVERT the rows with '{adapter.info.name}' first",
        )


def query_embedding(session, adapter, kind: str, value: str, span=None) -> np.ndarray:
    """The model's embedding (d,) of the search input: a text, or an image path (relative paths
    start at the workspace). Kept per session, so re-running a search does not re-encode.

    >>> query_embedding(session, session.model("tutorial_search_clip"), "text", "a black cat").shape  # doctest: +SKIP
    (512,)
    """
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
