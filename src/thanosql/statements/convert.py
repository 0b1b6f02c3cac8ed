"""Handler of CONVERT USING model OPTIONS (...) AS query: the query's rows plus a FLOAT[d] column
of embeddings (DESIGN.md decision 3), one per row, NULL where the input is NULL.

The column is the model's own output for the row's image file or text (models/base.py); an
existing column of that name is replaced in place (decision 4). ``table_name`` also writes the
result into that table, atomically (decision 1).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import DatasetError, ModelError, PlanError, choices_hint
from ..models.base import check_input


def convert(session, step) -> pa.Table:
    """CONVERT USING model [OPTIONS (convert_type, image_col, text_col, batch_size, result_col,
    table_name, on_error, num_workers)] AS query."""
    node, options, spans, given = step.statement, step.options, step.spans, step.given
    kind = options["convert_type"]
    # convert_type is required in the docs; a statement that names only text_col means text.
    if "convert_type" not in given and "text_col" in given and "image_col" not in given:
        kind = "text"
    actors = _ray_actors(session, options)  # before the model loads: a missing Ray fails at once
    adapter = session.model(node.model, span=node.span)
    check_input(adapter, kind, span=spans.get("convert_type", node.span))
    rows = session.query(step.source, node)
    option_name = COLUMN_OPTIONS[kind]
    column = options[option_name]
    if column not in rows.column_names:
        raise PlanError(
            f"column '{column}' not found in the rows CONVERT reads",
            span=spans.get(option_name, node.span),
            hint=choices_hint(column, rows.column_names, "columns") + f" (set {option_name}=...)",
        )
    values = rows.column(column).to_pylist()
    present = [index for index, value in enumerate(values) if value is not None]
    inputs = INPUTS[kind](session, values, present, column, spans.get(option_name, node.span))
    embeddings = _embed(session, adapter, kind, inputs, values, present, options, node, actors)
    embeddings = _checked(embeddings, len(present), adapter)
    result = _with_column(rows, options["result_col"], embeddings, present, adapter.embedding_dim)
    if options.get("table_name"):
        session.write_table(options["table_name"], result, "replace")
    return result


def _image_paths(session, values, present, column, span) -> list[str]:
    """The rows' image paths, resolved against the workspace."""
    for index in present:
        if not isinstance(values[index], str):
            raise PlanError(
                f"column '{column}' holds {type(values[index]).__name__} values, not image paths "
                f"(row {index + 1}: {values[index]!r})",
                span=span,
            )
    return [str(session.resolve_path(values[index])) for index in present]


def _texts(session, values, present, column, span) -> list[str]:
    return [str(values[index]) for index in present]


# What the model is given for each kind of input (models/base.py INPUT_KINDS), and the option
# that names its column.
INPUTS = {"image": _image_paths, "text": _texts}
COLUMN_OPTIONS = {"image": "image_col", "text": "text_col"}


def _embed(session, adapter, kind, inputs, values, present, options, node, actors) -> np.ndarray:
    """The embeddings of ``inputs``: images embedded by an earlier CONVERT with these weights are
    reused (reuse.py), the rest computed by the adapter. An input it cannot read is a DatasetError
    naming its row (or, with on_error='null', a NULL and a notice). ``actors``: embed on Ray."""
    reuse = Reuse.of(session, adapter, actors) if kind == "image" and session.settings.reuse_bytes else None
    found = reuse.find(inputs) if reuse is not None else None
    kept = found.kept if found is not None else set()
    todo = [at for at in range(len(inputs)) if at not in kept]
    computed = _compute(
        session, adapter, kind, [inputs[at] for at in todo], values, [present[at] for at in todo], options, node, actors
    )
    if not kept:
        embeddings = computed
    else:
        embeddings = np.empty((len(inputs), adapter.embedding_dim), np.float32)
        embeddings[found.positions] = found.vectors
        if todo:
            embeddings[todo] = computed
        session.notify(
            f"CONVERT reused the embeddings of {len(found.positions):,} of {len(inputs):,} images from earlier "
            f"runs with model '{adapter.info.name}' and embedded {len(todo):,}"
        )
    if reuse is not None and todo:
        reuse.keep(todo, computed)
    return embeddings


def _ray_actors(session, options):
    """The actor pool that embeds on Ray (engine='ray', ray_convert.py), or None to embed here."""
    from ..engines import engine_of

    if engine_of(session, options) != "ray":
        return None
    from ..engines import ray_cluster
    from ..ray_convert import actor_pool

    return actor_pool(ray_cluster(session.notify))


class Reuse:
    """The kept embeddings of one CONVERT's images and model weights (reuse.py)."""

    def __init__(self, session, adapter, actors=None) -> None:
        from ..reuse import weights_key

        info = adapter.info
        self.store = session.reuse
        self.model = info.name
        # Ray's actors may run the weights on another device than this process (GPU actors).
        device = actors.device if actors is not None else getattr(adapter, "device", "cpu")
        self.key = weights_key(info.name, str(info.created), info.path / "model.json", device)
        self.identities = []

    @classmethod
    def of(cls, session, adapter, actors=None):
        try:
            return cls(session, adapter, actors)
        except OSError:  # the model's files moved under us: nothing is reused
            return None

    def find(self, paths: list[str]):
        from ..reuse import image_identity

        self.identities = [image_identity(path) for path in paths]
        return self.store.find(self.model, self.key, self.identities)

    def keep(self, todo: list[int], computed: np.ndarray) -> None:
        # Only rows read and embedded (not NaN: unreadable with on_error='null'), with an identity
        # taken before they were read.
        rows = [i for i, at in enumerate(todo) if self.identities[at] is not None and not np.isnan(computed[i]).any()]
        self.store.add(self.model, self.key, [self.identities[todo[i]] for i in rows], computed[rows])


def _compute(session, adapter, kind, inputs, values, present, options, node, actors=None) -> np.ndarray:
    """The adapter's embeddings of ``inputs`` (rows ``present`` of ``values``), computed here or,
    given ``actors``, on the Ray cluster (ray_convert.py)."""
    from ..models.images import ImageReadError

    if not inputs:
        return np.zeros((0, adapter.embedding_dim), np.float32)
    try:
        if actors is not None:
            from ..ray_convert import embed_on_ray

            embeddings = embed_on_ray(session, adapter, kind, inputs, options, actors)
        else:
            embeddings = adapter.embed(
                kind,
                inputs,
                batch_size=options.get("batch_size"),
                num_workers=options.get("num_workers"),
                progress=session.progress,
                on_error=options["on_error"],
            )
    except ImageReadError as exc:
        raise _read_error(exc, values, present[exc.index], node, on_ray=actors is not None) from exc
    failed = [present[i] for i in np.flatnonzero(np.isnan(embeddings).all(axis=1))] if len(inputs) else []
    if failed:
        shown = ", ".join(f"'{values[row]}'" for row in failed[:3]) + (", ..." if len(failed) > 3 else "")
        noun = kind if len(failed) == 1 else f"{kind}s"
        session.notify(
            f"{len(failed)} of {len(inputs)} {noun} could not be read; their {options['result_col']} is NULL: {shown}"
        )
    return embeddings


def _read_error(exc, values, row: int, node, on_ray: bool) -> DatasetError:
    """The error of an image that could not be read: the same words on either engine, with what
    Ray needs of paths where the Ray workers could not read it."""
    where = f"image '{values[row]}' in row {row + 1} of {len(values)}"
    hint = (
        "relative paths start at the workspace folder; OPTIONS (on_error='null') gives unreadable images a NULL "
        "embedding instead"
    )
    if getattr(exc, "seen_here", False):
        return DatasetError(
            f"a Ray worker cannot read {where} ({exc.reason}), though this process can",
            span=node.span,
            hint=RAY_PATHS_HINT,
        )
    if on_ray and exc.reason in ("file not found", "permission denied"):
        hint += "; " + RAY_PATHS_HINT
    return DatasetError(f"cannot read {where}: {exc.reason}", span=node.span, hint=hint)


RAY_PATHS_HINT = (
    "with engine='ray', image paths must be readable by the Ray workers: the same absolute path on every node "
    "(a shared filesystem, such as NFS or a mounted bucket)"
)


def _checked(embeddings: np.ndarray, count: int, adapter) -> np.ndarray:
    # The column type is FLOAT[embedding_dim], from model.json; an adapter that returns another
    # width (or nothing, when no image could be read) must not produce a ragged column.
    dim = adapter.embedding_dim
    if embeddings.size == 0 and count:
        return np.full((count, dim), np.nan, dtype=np.float32)
    if embeddings.shape != (count, dim):
        raise ModelError(
            f"model '{adapter.info.name}' returned embeddings of shape {embeddings.shape}, expected ({count}, {dim})",
            hint="its model.json embedding_dim does not match its weights; make the model again",
        )
    return embeddings


def _with_column(rows: pa.Table, name: str, embeddings: np.ndarray, present: list[int], dim: int) -> pa.Table:
    """``rows`` with column ``name`` = fixed_size_list<float32>[dim] (DuckDB FLOAT[dim]).

    Rows outside ``present``, and rows whose embedding is all NaN (images that failed with
    on_error='null'), are NULL. The matrix becomes the array's buffer without a copy when every
    row is present.
    """
    count = rows.num_rows
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(present), dim)
    if len(present) == count:
        matrix = embeddings
    else:
        matrix = np.zeros((count, dim), dtype=np.float32)
        matrix[present] = embeddings
    invalid = np.ones(count, dtype=bool)
    invalid[present] = False
    invalid |= np.isnan(matrix).all(axis=1) if dim else False
    values = pa.array(matrix.reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(invalid) if invalid.any() else None)
    if name in rows.column_names:
        return rows.set_column(rows.column_names.index(name), name, column)
    return rows.append_column(name, column)
