"""Exact cosine scores in float64, the order of an answer, and Arrow columns read as matrices.

The definition every faster path must reproduce: ``exact_scores`` scores each row on its own (equal
rows get equal scores), ``rank`` orders them (best first, ties in input order, NaN last), and
``to_matrix`` reads a DuckDB ``FLOAT[d]`` or ``FLOAT[]`` column (PlanError for anything else).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import PlanError, Span

# Rows scored per block in the exact pass: small enough for the float64 block to stay in cache.
EXACT_BLOCK_ROWS = 512


def to_matrix(column: pa.Array | pa.ChunkedArray, name: str = "embedding", span: Span | None = None):
    """Embeddings of an Arrow column as a float32 matrix and a row mask.

    >>> matrix, present = to_matrix(pa.array([[1.0, 0.0], None], pa.list_(pa.float32(), 2)))
    >>> matrix.shape, present.tolist()
    ((2, 2), [True, False])

    Accepts fixed-size lists (DuckDB ``FLOAT[d]``) and lists (``FLOAT[]``) of numbers. A NULL row
    gets zeros and ``present`` False; a NULL element becomes NaN (so that row scores NaN).
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    kind = column.type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        raise PlanError(
            f"column '{name}' holds {kind}, not embeddings",
            span=span,
            hint="emb_col must name a column of arrays of numbers, e.g. the result column of CONVERT",
        )
    value_type = kind.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type) or pa.types.is_decimal(value_type)):
        raise PlanError(f"column '{name}' holds lists of {value_type}, not embeddings of numbers", span=span)
    rows = sum(len(chunk) for chunk in chunks)
    dim = _dimension(chunks, kind)
    if len(chunks) == 1 and pa.types.is_fixed_size_list(kind) and value_type == pa.float32():
        # One chunk of FLOAT[d] without NULLs (a batch of an index build): Arrow's own buffer,
        # read-only, instead of a copy.
        chunk = chunks[0]
        flat = chunk.values.slice(chunk.offset * dim, rows * dim)
        if chunk.null_count == 0 and flat.null_count == 0:
            return flat.to_numpy(zero_copy_only=True).reshape(rows, dim), np.ones(rows, dtype=bool)
    matrix = np.zeros((rows, dim), dtype=np.float32)
    present = np.zeros(rows, dtype=bool)
    start = 0
    for chunk in chunks:
        count = len(chunk)
        if count:
            values, mask = _chunk_values(chunk, dim, name, start, span)
            matrix[start : start + count] = values
            present[start : start + count] = mask
        start += count
    return matrix, present


def _dimension(chunks, kind) -> int:
    if pa.types.is_fixed_size_list(kind):
        return kind.list_size
    for chunk in chunks:
        lengths = chunk.value_lengths().drop_null()
        if len(lengths):
            return int(lengths[0].as_py())
    return 0


def _chunk_values(chunk, dim: int, name: str, first_row: int, span):
    present = ~np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_fixed_size_list(chunk.type):
        flat = chunk.values.slice(chunk.offset * dim, len(chunk) * dim)
    else:
        lengths = chunk.value_lengths().fill_null(dim).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(lengths != dim)
        if len(wrong):
            row = int(wrong[0])
            raise PlanError(
                f"column '{name}' holds embeddings of different lengths: row {first_row + row + 1} "
                f"has {int(lengths[row])} values, earlier rows {dim}",
                span=span,
                hint="every embedding of a column must come from the same model",
            )
        # Null rows may own no values at all: rebuild them as zeros so the reshape lines up.
        chunk = chunk.fill_null(pa.scalar([0] * dim, chunk.type)) if chunk.null_count else chunk
        flat = chunk.flatten()
    if not pa.types.is_floating(flat.type) or flat.type == pa.float16():
        flat = flat.cast(pa.float64())
    values = flat.to_numpy(zero_copy_only=False).reshape(len(chunk), dim)
    return values, present


def exact_scores(matrix: np.ndarray, present: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``matrix`` (n, d) with ``query`` (d,), in float64; NaN where a row is
    missing, zero or not finite.

    >>> exact_scores(np.array([[1, 0], [1, 1]], np.float32), np.array([True, True]), np.array([1, 0]))
    array([1.        , 0.70710678])

    Each row is reduced on its own with NumPy's pairwise sum, so a row's score depends on its
    values only (a BLAS product may round rows differently by position, breaking exact ties).
    """
    query = np.asarray(query, dtype=np.float64)
    query_norm = float(np.sqrt((query * query).sum()))
    rows, dim = matrix.shape
    dots = np.empty(rows)
    squares = np.empty(rows)
    block = np.empty((min(EXACT_BLOCK_ROWS, max(rows, 1)), dim))
    scratch = np.empty_like(block)
    for start in range(0, rows, EXACT_BLOCK_ROWS):
        stop = min(start + EXACT_BLOCK_ROWS, rows)
        values = block[: stop - start]
        values[...] = matrix[start:stop]
        products = scratch[: stop - start]
        np.multiply(values, query, out=products)
        products.sum(axis=1, out=dots[start:stop])
        np.multiply(values, values, out=products)
        products.sum(axis=1, out=squares[start:stop])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scores = dots / (np.sqrt(squares) * query_norm)
    scores[~present | ~np.isfinite(scores)] = np.nan
    # A row equal to the query may land a rounding step outside [-1, 1].
    np.clip(scores, -1.0, 1.0, out=scores)
    return scores


def rank(scores: np.ndarray, top_k: int | None, keep_input_order: bool = False) -> np.ndarray:
    """Row numbers of the answer: best score first, ties in input order, NaN scores last; cut to
    ``top_k`` (None: all rows). With ``keep_input_order`` the chosen rows stay in input order.

    >>> rank(np.array([0.1, 0.9, np.nan, 0.9]), 3).tolist()
    [1, 3, 0]
    """
    rows = len(scores)
    if top_k is None or top_k >= rows:
        if keep_input_order:
            return np.arange(rows)
        return np.argsort(-scores, kind="stable")
    scored = ~np.isnan(scores)
    if int(scored.sum()) > top_k:
        threshold = np.partition(scores[scored], -top_k)[-top_k]
        chosen = np.flatnonzero(scores >= threshold)
    else:
        missing = np.flatnonzero(~scored)[: top_k - int(scored.sum())]
        chosen = np.concatenate([np.flatnonzero(scored), missing])
    order = chosen[np.argsort(-scores[chosen], kind="stable")][:top_k]
    return np.sort(order) if keep_input_order else order


def unit_vector(query) -> np.ndarray:
    """``query`` (d,) divided by its length, in float64."""
    unit = np.asarray(query, np.float64)
    return unit / np.sqrt((unit * unit).sum())


def check_dimension(found: int, wanted: int, column: str, span, rows: int) -> None:
    """Raise PlanError when a column of ``rows`` rows holds embeddings of ``found`` values and the
    query has ``wanted`` (an empty column has no dimension to disagree with)."""
    if rows and found != wanted:
        raise PlanError(
            f"column '{column}' holds embeddings of {found} values, but the model makes {wanted}",
            span=span,
            hint="search the column made by CONVERT USING this model, or name that model in USING",
        )
