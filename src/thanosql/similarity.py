"""Exact top-k cosine search over an embedding column, fast because a compact copy is cached.

``search(session, sql, column, query, top_k=k)`` returns the rows of ``sql`` ranked by the cosine
similarity of ``column`` to ``query``: exactly the rows and order a float64 brute force gives
(highest first, ties in input order, rows without a usable embedding last with a NaN score).

Design (why it beats NumPy's brute force, and stays exact):

* What is slow. At 1M x 512, NumPy's float32 matrix-vector product reads 2 GB (105-150 ms on
  this project's two-core machine, with its neighbours' load), DuckDB's
  ``array_cosine_similarity`` scan 4-5x that, and merely reading the column out of DuckDB into
  NumPy costs more than either (about 1.4 s). So a query may read only a few rows from DuckDB,
  and a quarter of those bytes from memory, with integer kernels.
* What is cached. For a plain scan of one table (below), a ``CompactIndex`` of the column: each
  row normalised and quantised in two int8 levels with per-row scales, ``u = s*c + t*r + f``
  (``c`` the codes, ``r`` the codes of the residual ``e = u - s*c``), the norms the bounds need,
  and the table's rowids; for 16k rows or more (of 512 values), the first level once more,
  packed for fbgemm's int8 GEMM. At 1M x 512: 1.5 GB against 2 GB of float32.
* What a query reads. The first level of every row (n*d bytes), with the fastest int8 kernel
  the machine has passed a check for (quantised.py): fbgemm's GEMM on the packed codes (the
  query on an 8-bit grid; 17-22 ms at 1M x 512 on two cores), else torch's int8-weight GEMV
  (bfloat16 query), else ``torch._int_mm``. Then both levels of the few thousand rows left,
  with exact int8 products against the query in int8 levels; then about k rows from DuckDB.
* Why it is exact. Every estimate comes with a bound that holds for every row: Cauchy-Schwarz
  on what the codes leave out (``|e|``, and the query's distance to its grid or its bfloat16
  rounding), plus the kernel's float rounding, plus ROUNDING_SLACK. The k-th largest lower
  bound ``L`` is at most the true k-th best score, so every row of the true top k (ties
  included) has an upper bound ``>= L``. The survivors are bounded again with both levels
  (``|cos - v.(s*c + t*r)| <= |f|`` plus the query levels' remainder, about 1e-7), which leaves
  about k rows. Only those are fetched from DuckDB by rowid and scored exactly, in float64 from
  their stored float32 values, each row summed on its own (identical embeddings get identical
  scores, so ties fall back to input order).
* When it is used, and WHERE. The AS query must be one SELECT of ``*`` or plain columns from
  one base table, with an optional WHERE and nothing else (no joins, grouping, ORDER BY, LIMIT,
  DISTINCT, CTEs, samples); this is decided on DuckDB's own parse tree (``json_serialize_sql``),
  never on the SQL text, and the SQL we send is rebuilt from that tree (``json_deserialize_sql``).
  A WHERE becomes a row mask: ``SELECT rowid FROM t WHERE ...`` (the user's predicate, run by
  DuckDB) mapped onto the index; a small selection is scored exactly without screening.
  Anything else (joins, computed columns, views, nested results; ``top_k=None`` and the inline
  era, which need every row anyway) is searched directly over the query's rows: still exact,
  only without the cache.
* How it stays correct when the table changes, in this process or any other. Each index
  remembers the database's change token (database.py: the database and WAL files' size, time
  and inode, which every commit of any process moves, and this process's write count) and its
  table's fingerprint: row count and storage layout (``pragma_storage_info``: DuckDB stores
  inserted rows, and updated list or array rows, as new rows in new or longer segments). Before
  each search the token is compared (two stat calls); when it moved, the fingerprint is taken
  again (about 0.15 s at 1M x 512, against 8 s for a rebuild): the same, the index is kept (a
  write to another table); else it is rebuilt. The query that fetches the candidates by rowid
  also counts the table's rows (one round trip), and a sample of the fetched rows is
  re-quantised against their codes: a count other than the index's, a candidate missing
  (DuckDB gives an updated row a new rowid) or changed rebuilds the index and searches again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import duckdb
import numpy as np
import pyarrow as pa

from .caches import CachedIndex
from .errors import PlanError, Span
from .quantised import (
    PACK_MIN_BYTES,
    PackedCodes,
    Quantised,
    first_level_products,
    quantise,
    quantise_into,
    two_level_products,
    unit_vector,
)

# Absolute slack added to every bound: covers float32 rounding of the screening arithmetic
# (about 1e-7 here) with a wide margin, at no measurable cost in candidates.
ROUNDING_SLACK = 1e-5
# Rows scored per block in the exact pass: small enough for the float64 block to stay in cache.
EXACT_BLOCK_ROWS = 512
# Rows per Arrow batch while an index is read from DuckDB (the float32 column never whole).
INDEX_BATCH_ROWS = 32768
# Fetched rows re-quantised per search to check the index is still current.
STALE_CHECK_ROWS = 128
# Up to this many selected rows are scored exactly without screening (fetching them is cheap).
SMALL_SELECTION = 4096
ROWID_ALIAS = "__thanosql_rowid"
COUNT_ALIAS = "__thanosql_table_rows"
HITS_RELATION = "__thanosql_search_hits"


class _Fallback(Exception):
    """The indexed path cannot answer this query (a view, a rowid column, ...): search directly."""


class _Stale(Exception):
    """The table no longer matches its index (written behind the session's back): rebuild."""


@dataclass
class Ranking:
    """The answer of a search: ``rows`` in answer order and their ``scores`` (float64, NaN where a
    row has no usable embedding). ``method`` says how it was found ('index' or 'direct') and
    ``candidates`` how many rows were scored exactly."""

    rows: pa.Table
    scores: np.ndarray
    method: str
    candidates: int


# -- exact scoring ----------------------------------------------------------------------------


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


# -- the compact index ------------------------------------------------------------------------


class CompactIndex:
    """An embedding column's rows in two int8 levels, to screen a query before exact scoring.

    >>> index = CompactIndex(rowids, quantise(matrix, present))
    >>> index.screen(query, top_k=10)          # positions whose exact score may be in the top 10

    ``screen`` scans the first level of every row (n*d bytes, int8 GEMV), then re-bounds the
    survivors with both levels and the query unquantised, so that about ``top_k`` rows remain.
    """

    def __init__(
        self, rowids: np.ndarray, quantised: Quantised, pack: bool | None = None, packed: PackedCodes | None = None
    ) -> None:
        self.rowids = rowids
        self.levels = quantised
        self.codes = quantised.codes
        self.valid = quantised.valid
        self.dim = quantised.codes.shape[1]
        self.scored_positions = np.flatnonzero(self.valid)
        self.max_code_norm = float(quantised.code_norm.max(initial=0.0))
        self.max_residual = float(quantised.residual.max(initial=0.0))
        # Whole scans of a large index run on packed codes (quantised.PackedCodes): ``packed``
        # as given (build_index packs while it reads), else packed here; ``pack`` forces the
        # choice either way.
        if pack is None:
            pack = self.codes.nbytes >= PACK_MIN_BYTES
        if packed is None and pack:
            packed = PackedCodes.pack(self.codes)
        self.packed = packed

    def __len__(self) -> int:
        return len(self.rowids)

    @property
    def nbytes(self) -> int:
        arrays = [getattr(self.levels, name) for name in Quantised.FIELDS]
        packed = self.packed.nbytes if self.packed is not None else 0
        return int(sum(a.nbytes for a in arrays) + self.rowids.nbytes + self.scored_positions.nbytes + packed)

    def screen(self, query: np.ndarray, top_k: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Positions (ascending) of every row whose cosine with ``query`` can reach the top
        ``top_k`` among ``positions`` (default: all rows): a superset of the exact answer."""
        if positions is None:
            selected = self.scored_positions
            excluded = ~self.valid if len(selected) < len(self) else None
            whole = True
        else:
            selected = positions[self.valid[positions]]
            # Gathering a small selection costs less than scanning everything and masking.
            whole = len(selected) * 4 > len(self)
            excluded = None
            if whole:
                excluded = np.ones(len(self), dtype=bool)
                excluded[selected] = False
        if len(selected) <= top_k:
            return selected
        rows = slice(None) if whole else selected
        survivors = self._first_level(query, rows, excluded, top_k)
        survivors = survivors if whole else selected[survivors]
        return self._second_level(query, survivors, top_k)

    def _first_level(self, query, rows, excluded, top_k: int) -> np.ndarray:
        """Indices (into ``rows``) of the rows whose first-level upper bound reaches the k-th
        largest first-level lower bound.

        Bounds are worked out on two short lists only, so that a query makes five passes over
        n floats: the k-th largest lower bound is taken among the rows of highest estimate (a
        subset gives a threshold at most the true one: still safe), and the upper bounds only
        where the estimate is within the largest possible bound of that threshold.
        """
        levels = self.levels
        packed = self.packed if isinstance(rows, slice) else None
        products, query_error, relative_error = first_level_products(self.codes[rows], query, packed)
        approx = products
        approx *= levels.scale[rows]
        if excluded is not None:
            approx[excluded] = -np.inf

        def bounds(at: np.ndarray) -> np.ndarray:
            bound = levels.code_norm[rows][at] * np.float32(query_error) + levels.residual[rows][at]
            bound += np.float32(ROUNDING_SLACK) + np.abs(approx[at]) * np.float32(relative_error)
            return bound

        shortlist = _top_shortlist(approx, top_k)
        lower = approx[shortlist] - bounds(shortlist)
        threshold = np.partition(lower, len(lower) - top_k)[len(lower) - top_k]
        widest = self.widest_bound(query_error, relative_error)
        near = np.flatnonzero(approx >= threshold - widest)
        return near[approx[near] + bounds(near) >= threshold]

    def widest_bound(self, query_error: float, relative_error: float) -> np.float32:
        """A limit no row's first-level bound exceeds (|estimate| <= s|c|(1 + q) / (1 - r))."""
        estimate = self.max_code_norm * (1 + query_error) / (1 - relative_error) + ROUNDING_SLACK
        widest = self.max_code_norm * query_error + self.max_residual + ROUNDING_SLACK + estimate * relative_error
        return np.float32(widest * 1.001)  # and a margin for the float32 sums of the bounds

    def _second_level(self, query, positions: np.ndarray, top_k: int) -> np.ndarray:
        """Re-bound ``positions`` with both levels and the query to within 1e-7: |f| + that."""
        if len(positions) <= top_k:
            return positions
        levels = self.levels
        unit = unit_vector(query)
        codes = np.take(levels.codes, positions, axis=0)
        fine_codes = np.take(levels.fine_codes, positions, axis=0)
        coarse, fine, coarse_error, fine_error = two_level_products(codes, fine_codes, unit)
        approx = coarse * levels.scale[positions] + fine * levels.fine_scale[positions]
        bound = levels.remainder[positions] + ROUNDING_SLACK
        bound += levels.code_norm[positions] * coarse_error + levels.fine_norm[positions] * fine_error
        return positions[_above_kth(approx - bound, approx + bound, top_k)]


def _top_shortlist(values: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of at least ``top_k`` entries, the ``top_k`` largest among them: the entries at or
    above the smallest of the maxima of ``top_k`` blocks (those maxima are ``top_k`` distinct
    entries, so the smallest is at most the k-th largest). One pass, no sort."""
    count = len(values)
    usable = count - count % top_k
    if count <= top_k or usable < top_k:
        return np.arange(count)
    floor = values[:usable].reshape(top_k, -1).max(axis=1).min()
    shortlist = np.flatnonzero(values >= floor)
    return shortlist if len(shortlist) >= top_k else np.arange(count)  # NaN compares false


def _above_kth(lower: np.ndarray, upper: np.ndarray, top_k: int) -> np.ndarray:
    """Indices whose upper bound reaches the k-th largest lower bound, ascending."""
    count = len(lower)
    if count <= top_k:
        return np.arange(count)
    short = lower[_top_shortlist(lower, top_k)]
    threshold = np.partition(short, len(short) - top_k)[len(short) - top_k]
    return np.flatnonzero(upper >= threshold)


def build_index(batches: Iterable[pa.RecordBatch], rows: int, name: str = "embedding") -> CompactIndex:
    """A CompactIndex from batches of (rowid, embedding) holding ``rows`` rows in all.

    >>> build_index(connection.sql("SELECT rowid, emb FROM t").to_arrow_reader(32768), count)

    Batches are quantised as they arrive, so the float32 column is never held whole, and a large
    index is packed (quantised.Packing) while later batches are read. Raises _Stale if the
    batches hold more rows than announced (the table changed meanwhile).
    """
    levels, rowids, filled, packing = None, np.zeros(0, np.int64), 0, None
    try:
        for batch in batches:
            count = batch.num_rows
            if count == 0:
                continue
            if filled + count > rows:
                raise _Stale("the table grew while it was read")
            matrix, present = to_matrix(batch.column(1), name)
            if levels is None:
                levels, rowids = Quantised.empty(rows, matrix.shape[1]), np.empty(rows, np.int64)
                if levels.codes.nbytes >= PACK_MIN_BYTES:
                    packing = PackedCodes.packing(levels.codes)
            elif matrix.shape[1] != levels.codes.shape[1]:
                raise PlanError(
                    f"column '{name}' holds embeddings of different lengths: "
                    f"{levels.codes.shape[1]} and {matrix.shape[1]} values",
                    hint="every embedding of a column must come from the same model",
                )
            rowids[filled : filled + count] = batch.column(0).to_numpy()
            quantise_into(levels, filled, matrix, present)
            filled += count
            if packing is not None:
                packing.rows_ready(filled)
        if levels is None:
            return CompactIndex(np.zeros(0, np.int64), Quantised.empty(0, 0))
        if filled < rows or (len(rowids) > 1 and not np.all(rowids[1:] > rowids[:-1])):
            # Rows to drop or to put in rowid order: what was packed no longer lines up.
            if packing is not None:
                packing.cancel()
            order = np.argsort(rowids[:filled], kind="stable")
            return CompactIndex(rowids[:filled][order], levels.take(order))
        packed = packing.finish(filled) if packing is not None else None
        return CompactIndex(rowids, levels, packed=packed)
    finally:
        if packing is not None:
            packing.cancel()  # after finish: nothing left to stop


# -- recognising a plain scan -----------------------------------------------------------------

# Keys of a SELECT node in DuckDB's parse tree that must be empty for a plain scan. Any key we
# do not know (a newer DuckDB) must be empty too, so an unknown clause never slips through.
_PLAIN_NODE_KEYS = {"type", "select_list", "from_table", "where_clause", "aggregate_handling"}
_PLAIN_TABLE_KEYS = {"type", "alias", "schema_name", "table_name", "catalog_name", "qualified_name"}
_IGNORED_KEYS = {"query_location", "query_location_length"}


@dataclass
class TableScan:
    """``SELECT <columns> FROM <table> [WHERE ...]`` as DuckDB parsed it.

    ``key`` identifies the table (as written, lower-cased: names are case-insensitive);
    ``columns`` maps output names to the table's column names (None for ``*``).
    """

    tree: dict
    key: tuple[str, ...]
    columns: dict[str, str] | None
    rendered: dict = field(default_factory=dict, repr=False)

    @property
    def node(self) -> dict:
        return self.tree["statements"][0]["node"]

    @property
    def has_filter(self) -> bool:
        return self.node.get("where_clause") is not None

    def source_column(self, output_name: str) -> str:
        if self.columns is None:
            return output_name
        return self.columns[output_name]

    def sql(self, select_list: list[dict], where: dict | None, connection) -> str:
        """This scan's SQL with another select list and WHERE, rendered by DuckDB."""
        tree = json.loads(json.dumps(self.tree))
        node = tree["statements"][0]["node"]
        node["select_list"] = select_list
        node["where_clause"] = where
        return _scalar(connection, "SELECT json_deserialize_sql(?)", [json.dumps(tree)])

    def query(self, purpose: str, connection, column: str | None = None) -> str:
        """The SQL the search sends for ``purpose``, rendered once per scan:
        'columns' (the table's columns), 'count' (its rows), 'index' (rowid and ``column``),
        'mask' (rowids the WHERE keeps), 'fetch' (selected columns, rowid and the table's row
        count, of the rows whose rowids HITS_RELATION lists)."""
        key = (purpose, column)
        if key not in self.rendered:
            where = None
            if purpose == "columns":
                select = _select_items(connection, "*")
            elif purpose == "count":
                select = _select_items(connection, "count(*)")
            elif purpose == "index":
                select = [_column_ref("rowid"), _column_ref(column)]
            elif purpose == "mask":
                select, where = [_column_ref("rowid")], self.node["where_clause"]
            else:
                count, where = _count_and_rowid_filter(connection, self.node["from_table"])
                select = self.node["select_list"] + [_column_ref("rowid", ROWID_ALIAS), count]
            self.rendered[key] = self.sql(select, where, connection)
        return self.rendered[key]


def recognise_scan(connection, sql: str) -> TableScan | None:
    """The plain scan ``sql`` is, or None when it is anything else (see the module docstring)."""
    try:
        text = _scalar(connection, "SELECT json_serialize_sql(?)", [sql])
    except duckdb.Error:
        return None
    tree = json.loads(text)
    if tree.get("error") or len(tree.get("statements", ())) != 1:
        return None
    statement = tree["statements"][0]
    node = statement.get("node", {})
    if node.get("type") != "SELECT_NODE" or statement.get("named_param_map"):
        return None
    for key, value in node.items():
        if key in _PLAIN_NODE_KEYS:
            continue
        if key == "cte_map" and not value.get("map"):
            continue
        if value:
            return None
    if node.get("aggregate_handling") != "STANDARD_HANDLING":
        return None
    table = node.get("from_table") or {}
    if table.get("type") != "BASE_TABLE":
        return None
    for key, value in table.items():
        if key not in _PLAIN_TABLE_KEYS and key not in _IGNORED_KEYS and value:
            return None
    columns = _select_columns(node.get("select_list", []), table.get("alias") or table.get("table_name"))
    if columns is False:
        return None
    path = table.get("qualified_name", {}).get("path") or [table.get("table_name", "")]
    return TableScan(tree=tree, key=tuple(str(p).lower() for p in path), columns=columns)


def _select_columns(select_list: list[dict], table_name: str):
    """Output name -> table column for a list of plain column references; None for a bare
    ``*``; False for anything else."""
    if len(select_list) == 1 and select_list[0].get("class") == "STAR":
        star = select_list[0]
        modifiers = ("exclude_list", "replace_list", "rename_list", "qualified_exclude_list")
        plain = not any(star.get(k) for k in modifiers + ("columns", "expr", "alias"))
        relation = star.get("relation_name") or ""
        return None if plain and relation.lower() in ("", (table_name or "").lower()) else False
    columns: dict[str, str] = {}
    for item in select_list:
        if item.get("class") != "COLUMN_REF" or not item.get("column_names"):
            return False
        name = item["column_names"][-1]
        columns[item.get("alias") or name] = name
    return columns


def _scalar(connection, sql: str, params: list) -> Any:
    # fetchall, not fetchone: an unread result would block the connection.
    return connection.execute(sql, params).fetchall()[0][0]


def _column_ref(name: str, alias: str = "") -> dict:
    return {
        "class": "COLUMN_REF",
        "type": "COLUMN_REF",
        "alias": alias,
        "query_location": 0,
        "query_location_length": 0,
        "column_names": [name],
    }


def _count_and_rowid_filter(connection, from_table: dict) -> tuple[dict, dict]:
    """DuckDB's trees for ``(SELECT count(*) FROM <from_table>) AS COUNT_ALIAS`` and
    ``rowid IN (SELECT rid FROM HITS_RELATION)``: a fetch that also says whether the table still
    has the index's rows. (A semi-join with a registered table: at 1M rows it fetches 1,000 rows
    in 14 ms, where ``rowid = ANY($1)`` takes 20 ms; for 10 rows the two are alike.)"""
    text = _scalar(
        connection,
        "SELECT json_serialize_sql(?)",
        [f'SELECT (SELECT count(*) FROM t) AS {COUNT_ALIAS} WHERE rowid IN (SELECT rid FROM "{HITS_RELATION}")'],
    )
    node = json.loads(text)["statements"][0]["node"]
    count = node["select_list"][0]
    count["subquery"]["node"]["from_table"] = json.loads(json.dumps(from_table))
    return count, node["where_clause"]


# -- the search -------------------------------------------------------------------------------


def search(
    session,
    sql: str,
    column: str,
    query: np.ndarray,
    *,
    top_k: int | None,
    keep_input_order: bool = False,
    span: Span | None = None,
) -> Ranking:
    """Rank the rows of ``sql`` by the cosine of ``column`` to ``query`` (d,).

    >>> search(session, "SELECT * FROM images", "convert_result", text_embedding, top_k=5).rows

    ``top_k=None`` keeps every row. With ``keep_input_order`` the kept rows stay in input order
    (the inline era's contract). Raises PlanError for a column that holds no embeddings or
    embeddings of another dimension than ``query``.
    """
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(query)) or not np.any(query):
        raise PlanError("the query embedding is zero or not a number: it has no direction to compare", span=span)
    if top_k is not None and top_k < 1:
        raise PlanError(f"top_k must be a positive number of rows, not {top_k}", span=span)
    if top_k is not None:
        scan = _scan_of(session, sql)
        if scan is not None:
            try:
                return _search_indexed(session, scan, column, query, top_k, keep_input_order, span)
            except _Fallback:
                pass
    return _search_direct(session, sql, column, query, top_k, keep_input_order, span)


def _scan_of(session, sql: str) -> TableScan | None:
    """recognise_scan, remembered per SQL text (the parse tree depends on the text alone)."""
    scans = session.caches.scans
    key = ("scan", sql)
    found = scans.get(key)
    if found is None:
        with session.connect() as connection:
            found = (recognise_scan(connection, sql),)
        scans.put(key, found)
    return found[0]


def _search_direct(session, sql, column, query, top_k, keep_input_order, span) -> Ranking:
    table = session.query(sql)
    found = table.schema.get_all_field_indices(column)
    if len(found) != 1:
        raise PlanError(f"column '{column}' appears {len(found)} times in the rows searched", span=span)
    matrix, present = to_matrix(table.column(found[0]), column, span)
    _check_dimension(matrix.shape[1], len(query), column, span, rows=len(matrix))
    scores = exact_scores(matrix, present, query)
    order = rank(scores, top_k, keep_input_order)
    rows = table if len(order) == table.num_rows and np.array_equal(order, np.arange(len(order))) else table.take(order)
    return Ranking(rows=rows, scores=scores[order], method="direct", candidates=len(scores))


def _check_dimension(found: int, wanted: int, column: str, span, rows: int) -> None:
    if rows and found != wanted:
        raise PlanError(
            f"column '{column}' holds embeddings of {found} values, but the model makes {wanted}",
            span=span,
            hint="search the column made by CONVERT USING this model, or name that model in USING",
        )


def _search_indexed(session, scan: TableScan, column, query, top_k, keep_input_order, span) -> Ranking:
    source_column = scan.source_column(column)
    with session.connect() as connection:
        for attempt in range(2):
            try:
                index = _cached_index(session, connection, scan, source_column, rebuild=attempt > 0)
                _check_dimension(index.dim, len(query), column, span, rows=len(index))
                positions = _filtered_positions(connection, scan, index)
                selected = len(index) if positions is None else len(positions)
                if selected <= max(4 * top_k, SMALL_SELECTION):
                    # Few rows: scoring them all exactly is cheaper than screening.
                    candidates = np.arange(len(index)) if positions is None else positions
                else:
                    candidates = index.screen(query, top_k, positions)
                candidates = _with_missing_rows(index, positions, candidates, top_k)
                rows = _fetch(connection, scan, index, candidates)
                _check_still_matches(index, rows.column(column), candidates, column)
            except _Stale:
                continue
            matrix, present = to_matrix(rows.column(column), column, span)
            scores = exact_scores(matrix, present, query)
            order = rank(scores, top_k, keep_input_order)
            return Ranking(rows=rows.take(order), scores=scores[order], method="index", candidates=len(candidates))
    raise _Fallback("the table changes under the index")


def _cached_index(session, connection, scan: TableScan, source_column: str, rebuild: bool) -> CompactIndex:
    """The index of the scan's table, checked against the database first: kept while the
    database's change token is the one it was last known current at; when the token moved (a
    write by any process), kept only if the table's fingerprint is still the same; else read
    again. The connection is open throughout, so no other process writes in between."""
    cache = session.caches.indexes
    key = (scan.key, source_column.lower())
    with cache.building(key):
        session.database.checkpoint(connection)
        token = session.database.change_token()
        entry = cache.get(key)
        if entry is not None and not rebuild:
            if token is None or token != entry.token:
                # Something was written since, perhaps another table: keep the index if this
                # table is the same, with the same rows and storage.
                if _fingerprint(connection, scan) == entry.fingerprint:
                    entry.token = token
                else:
                    entry = None
            if entry is not None:  # the fetch still checks the row count
                return entry.index
        cache.drop(key)
        fingerprint = _fingerprint(connection, scan)
        index = _read_index(connection, scan, source_column, rows=fingerprint[-1])
        cache.put(key, CachedIndex(index, token, fingerprint))
        return index


def _fingerprint(connection, scan: TableScan) -> tuple:
    """What changes when the scan's table is written: its row count and its storage layout
    (DuckDB stores an inserted row, and an updated list or array row, as a new row in a new or
    longer segment; a table made again is written to other blocks). Not the catalog's oid: DuckDB
    numbers tables afresh each time it opens the file, and the file is opened for each statement.
    About 0.15 s at a million rows of 512 values, paid only after a write. Raises _Fallback for
    anything but a stored table (a view, a registered frame, a file read by name): only stored
    tables have stable rows."""
    table = scan.node["from_table"]
    parts = [table.get("catalog_name", ""), table.get("schema_name", ""), table.get("table_name", "")]
    qualified = ".".join('"' + part.replace('"', '""') + '"' for part in parts if part)
    try:
        identity = connection.execute(
            "SELECT (SELECT list(table_oid ORDER BY table_oid) FROM duckdb_tables() "
            "        WHERE lower(table_name) = lower($1) AND ($2 = '' OR lower(schema_name) = lower($2)) "
            "        AND ($3 = '' OR lower(database_name) = lower($3))), "
            "       (SELECT list(hash(column_name, column_path, row_group_id, segment_type, start, count, "
            "                         has_updates, block_id, block_offset) "
            "                    ORDER BY column_id, column_path, row_group_id, segment_id) "
            "        FROM pragma_storage_info($4))",
            [parts[2], parts[1], parts[0], qualified],
        ).fetchall()[0]
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc
    if not identity[0]:
        raise _Fallback("not a stored table")
    return (len(identity[0]), hash(tuple(identity[1] or ())), _row_count(connection, scan))


def _run(connection, sql: str) -> pa.Table:
    try:
        return connection.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc


def _row_count(connection, scan: TableScan) -> int:
    try:
        return int(_scalar(connection, scan.query("count", connection), []))
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc


def _select_items(connection, text: str) -> list[dict]:
    """DuckDB's tree of the select list ``text`` (a constant expression such as ``*``)."""
    tree = _scalar(connection, "SELECT json_serialize_sql(?)", [f"SELECT {text}"])
    return json.loads(tree)["statements"][0]["node"]["select_list"]


def _read_index(connection, scan: TableScan, source_column: str, rows: int) -> CompactIndex:
    """The index of ``source_column`` of the scan's stored table of ``rows`` rows."""
    try:
        names = connection.sql(scan.query("columns", connection)).columns
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc
    # A real column named rowid hides DuckDB's row identifier.
    if any(name.lower() == "rowid" for name in names):
        raise _Fallback("the table has a column named rowid")
    try:
        reader = connection.sql(scan.query("index", connection, source_column)).to_arrow_reader(INDEX_BATCH_ROWS)
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc
    try:
        return build_index(reader, rows, source_column)
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc
    finally:
        reader.close()  # an unread result would block the connection


def _filtered_positions(connection, scan: TableScan, index: CompactIndex) -> np.ndarray | None:
    """Index positions of the rows the WHERE keeps (None: no WHERE, all rows)."""
    if not scan.has_filter:
        return None
    sql = scan.query("mask", connection)
    rowids = _run(connection, sql).column(0).to_numpy().astype(np.int64)
    if len(rowids) == 0:
        return np.zeros(0, dtype=np.int64)
    positions = np.clip(np.searchsorted(index.rowids, rowids), 0, max(len(index) - 1, 0))
    if len(index) == 0 or not np.array_equal(index.rowids[positions], rowids):
        raise _Stale("rows outside the index")
    return np.unique(positions)


def _with_missing_rows(index: CompactIndex, positions, candidates: np.ndarray, top_k: int) -> np.ndarray:
    """Add rows without an embedding when fewer than top_k rows have one: they come last, in
    input order, to fill the answer up to top_k (DESIGN.md decision 2)."""
    if positions is None:
        if len(index.scored_positions) >= top_k:
            return candidates
        positions = np.arange(len(index))
    scored = int(index.valid[positions].sum())
    if scored >= top_k:
        return candidates
    missing = positions[~index.valid[positions]][: top_k - scored]
    return np.union1d(candidates, missing)


def _fetch(connection, scan: TableScan, index: CompactIndex, positions: np.ndarray) -> pa.Table:
    """The scan's rows at ``positions`` (ascending), in that order, with the columns the scan
    selects. Raises _Stale if rows are missing or the table no longer has the index's count."""
    wanted = index.rowids[positions]
    sql = scan.query("fetch", connection)
    connection.register(HITS_RELATION, pa.table({"rid": wanted}))
    try:
        rows = _run(connection, sql)
    finally:
        connection.unregister(HITS_RELATION)
    counts = rows.column(COUNT_ALIAS)
    count = counts[0].as_py() if len(counts) else _row_count(connection, scan)
    if count != len(index):
        raise _Stale("rows were added or removed")
    rowids = rows.column(ROWID_ALIAS).to_numpy().astype(np.int64)
    order = np.argsort(rowids, kind="stable")
    if not np.array_equal(rowids[order], wanted):
        raise _Stale("rows are missing or moved")
    return rows.take(order).drop_columns([ROWID_ALIAS, COUNT_ALIAS])


def _check_still_matches(index: CompactIndex, column, positions: np.ndarray, name: str) -> None:
    """Raise _Stale unless the fetched rows still quantise to the codes the index holds (checked
    on up to STALE_CHECK_ROWS of them, evenly spread: a bulk write shows on any of them)."""
    if len(positions) == 0:
        return
    sample = np.unique(np.linspace(0, len(positions) - 1, min(len(positions), STALE_CHECK_ROWS)).astype(int))
    matrix, present = to_matrix(column.take(pa.array(sample)), name)
    if matrix.shape[1] != index.dim:
        raise _Stale("the dimension changed")
    fresh = quantise(matrix, present)
    if not (
        np.array_equal(fresh.valid, index.valid[positions[sample]])
        and np.array_equal(fresh.codes, index.codes[positions[sample]])
    ):
        raise _Stale("embeddings changed")


def clear(session: Any) -> None:
    """Forget this session's indexes."""
    session.caches.indexes.clear()
