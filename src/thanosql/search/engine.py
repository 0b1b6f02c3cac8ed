"""The cached search engine. ``search(source, sql, column, query, top_k=k)`` ranks the rows of
``sql`` exactly: through a cached CompactIndex when ``sql`` is a plain scan of a stored table
(kept in memory, and in the workspace by stored.py for other processes), else over the query's
rows. What it reads and keeps comes in a ``Source`` (connections, caches, the database's change
token and path), never a session.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..caches import LRU, CachedIndex, IndexCache
from ..errors import PlanError, Span, ThanoSQLError
from .codes import quantise
from .exact import check_dimension, exact_scores, rank, to_matrix
from .index import CompactIndex, StaleIndex, build_index
from .scan import COUNT_ALIAS, HITS_RELATION, ROWID_ALIAS, TableScan, recognise_scan, scalar
from .stored import IndexKey, IndexStore, UnusableIndex

# Rows per Arrow batch while an index is read from DuckDB (the float32 column never whole).
INDEX_BATCH_ROWS = 32768
# Fetched rows re-quantised per search to check the index is still current.
STALE_CHECK_ROWS = 128
# Up to this many selected rows are scored exactly without screening (fetching them is cheap).
SMALL_SELECTION = 4096


class _Fallback(Exception):
    """The indexed path cannot answer this query (a view, a rowid column, ...): search directly."""


@dataclass
class Ranking:
    """The answer of a search: ``rows`` in answer order and their ``scores`` (float64, NaN where a
    row has no usable embedding). ``method`` says how it was found ('index' or 'direct'),
    ``candidates`` how many rows were scored exactly, and ``index_from`` where the index came from:
    'memory' (this process had it), 'workspace' (read from thanosql-index/), 'built' (read from
    the table), '' for a direct search."""

    rows: pa.Table
    scores: np.ndarray
    method: str
    candidates: int
    index_from: str = ""


@dataclass(frozen=True)
class Source:
    """What the engine reads and keeps, passed in rather than found on a session:

    - ``connect()``: a context manager giving a DuckDB connection for one piece of work, with the
      running statement's results registered (session.Session.connect);
    - ``query(sql)``: the rows of ``sql`` as a pyarrow Table, DuckDB's errors as ThanoSQLErrors;
    - ``indexes``: the cache of indexes (caches.IndexCache); ``scans``: recognised scans by SQL
      text (caches.LRU);
    - ``database``: ``change_token()`` and ``checkpoint(connection)`` (database.Database).

    >>> source = Source.of(session)  # doctest: +SKIP
    """

    connect: Callable[[], ContextManager[duckdb.DuckDBPyConnection]]
    query: Callable[[str], pa.Table]
    indexes: IndexCache
    scans: LRU
    database: Any

    @classmethod
    def of(cls, session: Any) -> Source:
        """A session's connections, caches and database; a Source is returned as it is."""
        if isinstance(session, Source):
            return session
        return cls(session.connect, session.query, session.caches.indexes, session.caches.scans, session.database)


def search(
    source: Source,
    sql: str,
    column: str,
    query: np.ndarray,
    *,
    top_k: int | None,
    keep_input_order: bool = False,
    span: Span | None = None,
) -> Ranking:
    """Rank the rows of ``sql`` by the cosine of ``column`` to ``query`` (d,).

    >>> search(Source.of(session), "SELECT * FROM images", "convert_result", text_embedding, top_k=5).rows  # doctest: +SKIP

    ``source`` holds the connections, caches and database to use (a session is adapted by
    Source.of). ``top_k=None`` keeps every row. With ``keep_input_order`` the kept rows stay in
    input order (the inline era's contract). Raises PlanError for a column that holds no
    embeddings or embeddings of another dimension than ``query``.
    """
    source = Source.of(source)
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(query)) or not np.any(query):
        raise PlanError("the query embedding is zero or not a number: it has no direction to compare", span=span)
    if top_k is not None and top_k < 1:
        raise PlanError(f"top_k must be a positive number of rows, not {top_k}", span=span)
    if top_k is not None:
        scan = _scan_of(source, sql)
        if scan is not None:
            try:
                return _search_indexed(source, scan, column, query, top_k, keep_input_order, span)
            except _Fallback:
                pass
    return _search_direct(source, sql, column, query, top_k, keep_input_order, span)


def _scan_of(source: Source, sql: str) -> TableScan | None:
    """recognise_scan, remembered per SQL text (the parse tree depends on the text alone)."""
    scans = source.scans
    key = ("scan", sql)
    found = scans.get(key)
    if found is None:
        with source.connect() as connection:
            found = (recognise_scan(connection, sql),)
        scans.put(key, found)
    return found[0]


def _search_direct(source: Source, sql, column, query, top_k, keep_input_order, span) -> Ranking:
    table = source.query(sql)
    found = table.schema.get_all_field_indices(column)
    if len(found) != 1:
        raise PlanError(f"column '{column}' appears {len(found)} times in the rows searched", span=span)
    matrix, present = to_matrix(table.column(found[0]), column, span)
    check_dimension(matrix.shape[1], len(query), column, span, rows=len(matrix))
    scores = exact_scores(matrix, present, query)
    order = rank(scores, top_k, keep_input_order)
    rows = table if len(order) == table.num_rows and np.array_equal(order, np.arange(len(order))) else table.take(order)
    return Ranking(rows=rows, scores=scores[order], method="direct", candidates=len(scores))


def _search_indexed(source: Source, scan: TableScan, column, query, top_k, keep_input_order, span) -> Ranking:
    with source.connect() as connection:
        for attempt in range(2):
            try:
                index, origin = _cached_index(source, connection, scan, column, rebuild=attempt > 0)
                check_dimension(index.dim, len(query), column, span, rows=len(index))
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
            except StaleIndex:
                continue
            matrix, present = to_matrix(rows.column(column), column, span)
            scores = exact_scores(matrix, present, query)
            order = rank(scores, top_k, keep_input_order)
            return Ranking(rows.take(order), scores[order], "index", len(candidates), index_from=origin)
    raise _Fallback("the table changes under the index")


def _cached_index(source: Source, connection, scan: TableScan, column: str, rebuild: bool) -> tuple[CompactIndex, str]:
    """The index of the scan's table and where it came from ('memory', 'workspace', 'built'),
    checked against the database first: kept while the database's change token is the one it was
    last known current at; when the token moved (a write by any process), kept only if the
    table's fingerprint is still the same; else read from the workspace or built again. The
    connection is open throughout, so no other process writes in between."""
    cache = source.indexes
    source_column = scan.source_column(column)
    key = (scan.key, source_column.lower())
    with cache.building(key):
        source.database.checkpoint(connection)
        token = source.database.change_token()
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
                return entry.index, "memory"
        cache.drop(key)
        fingerprint = _fingerprint(connection, scan)
        index, origin = _stored_or_built(source, connection, scan, column, fingerprint, rebuild)
        cache.put(key, CachedIndex(index, token, fingerprint))
        return index, origin


def _stored_or_built(source: Source, connection, scan: TableScan, column: str, fingerprint: tuple, rebuild: bool):
    """The index the workspace keeps for the table state ``fingerprint``, once a spread of its
    rows has been fetched and found to quantise to its codes; else built from the table and saved
    for the next process (not after a StaleIndex: ``rebuild``). Under the store's build lock, so
    that of two processes or sessions wanting it, the second reads what the first saved."""
    source_column = scan.source_column(column)
    stored = _stored_key(source, fingerprint, source_column)
    if stored is None:
        return _read_index(connection, scan, source_column, rows=fingerprint[-1]), "built"
    store, key = stored
    with store.building(key):
        try:
            store.recover()  # what writers killed mid-save left
        except OSError:
            pass
        if not rebuild:
            try:
                index = store.load(key, fingerprint)
                spread = np.unique(np.linspace(0, len(index) - 1, STALE_CHECK_ROWS).astype(np.int64))
                _check_still_matches(index, _fetch(connection, scan, index, spread).column(column), spread, column)
                return index, "workspace"
            except (UnusableIndex, StaleIndex, OSError):
                pass  # missing, damaged, stale or unreadable: never trusted, built again below
        index = _read_index(connection, scan, source_column, rows=fingerprint[-1])
        # Saved only if the table did not change while it was read (another thread of this
        # process may write it meanwhile): an index saved is the table's at ``fingerprint``.
        if len(index) and _fingerprint(connection, scan) == fingerprint:
            try:
                store.save(key, fingerprint, index)
            except (OSError, ThanoSQLError):
                pass  # a full disk or a read-only workspace: this search answers all the same
        return index, "built"


def _stored_key(source: Source, fingerprint: tuple, source_column: str) -> tuple[IndexStore, IndexKey] | None:
    """Where the workspace keeps the index of the fingerprinted table, or None when it keeps none:
    only a table of the workspace database itself (DuckDB names it after the file) is kept, not
    one of an attached database or a temporary one, whose changes the fingerprint cannot see."""
    path = getattr(source.database, "path", None)
    tables = fingerprint[0]
    if path is None or len(tables) != 1 or tables[0][0] != Path(path).stem:
        return None
    return IndexStore(Path(path).parent), IndexKey(tuple(tables[0]), source_column.lower())


def _fingerprint(connection, scan: TableScan) -> tuple:
    """What changes when the scan's table is written: its row count and its storage layout
    (DuckDB stores an inserted row, and an updated list or array row, as a new row in a new or
    longer segment; a table made again is written to other blocks), with each segment's min/max
    statistics (a table made again in the same blocks has other values). Not the catalog's oid: DuckDB
    numbers tables afresh each time it opens the file, and the file is opened for each statement.
    About 0.15 s at a million rows of 512 values, paid only after a write. Raises _Fallback for
    anything but a stored table (a view, a registered frame, a file read by name): only stored
    tables have stable rows.

    ``((database, schema, table) of each table the name matches, layout digest, row count)``: plain
    values, the same in every process, so that stored.py keeps it in an index's manifest."""
    table = scan.node["from_table"]
    parts = [table.get("catalog_name", ""), table.get("schema_name", ""), table.get("table_name", "")]
    qualified = ".".join('"' + part.replace('"', '""') + '"' for part in parts if part)
    try:
        identity = connection.execute(
            "SELECT (SELECT list([database_name, schema_name, table_name] ORDER BY table_oid) FROM duckdb_tables() "
            "        WHERE lower(table_name) = lower($1) AND ($2 = '' OR lower(schema_name) = lower($2)) "
            "        AND ($3 = '' OR lower(database_name) = lower($3))), "
            "       (SELECT list(hash(column_name, column_path, row_group_id, segment_type, start, count, "
            "                         has_updates, block_id, block_offset, stats) "
            "                    ORDER BY column_id, column_path, row_group_id, segment_id) "
            "        FROM pragma_storage_info($4))",
            [parts[2], parts[1], parts[0], qualified],
        ).fetchall()[0]
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc
    if not identity[0]:
        raise _Fallback("not a stored table")
    layout = hashlib.sha256(json.dumps(identity[1] or []).encode()).hexdigest()
    tables = tuple(tuple(names) for names in identity[0])
    return (tables, layout, _row_count(connection, scan))


def _run(connection, sql: str) -> pa.Table:
    try:
        return connection.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc


def _row_count(connection, scan: TableScan) -> int:
    try:
        return int(scalar(connection, scan.query("count", connection), []))
    except duckdb.Error as exc:
        raise _Fallback(str(exc)) from exc


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
        raise StaleIndex("rows outside the index")
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
    selects. Raises StaleIndex if rows are missing or the table no longer has the index's count."""
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
        raise StaleIndex("rows were added or removed")
    rowids = rows.column(ROWID_ALIAS).to_numpy().astype(np.int64)
    order = np.argsort(rowids, kind="stable")
    if not np.array_equal(rowids[order], wanted):
        raise StaleIndex("rows are missing or moved")
    return rows.take(order).drop_columns([ROWID_ALIAS, COUNT_ALIAS])


def _check_still_matches(index: CompactIndex, column, positions: np.ndarray, name: str) -> None:
    """Raise StaleIndex unless the fetched rows still quantise to the codes the index holds (checked
    on up to STALE_CHECK_ROWS of them, evenly spread: a bulk write shows on any of them)."""
    if len(positions) == 0:
        return
    sample = np.unique(np.linspace(0, len(positions) - 1, min(len(positions), STALE_CHECK_ROWS)).astype(int))
    matrix, present = to_matrix(column.take(pa.array(sample)), name)
    if matrix.shape[1] != index.dim:
        raise StaleIndex("the dimension changed")
    fresh = quantise(matrix, present)
    if not (
        np.array_equal(fresh.valid, index.valid[positions[sample]])
        and np.array_equal(fresh.codes, index.codes[positions[sample]])
    ):
        raise StaleIndex("embeddings changed")


def clear(source: Source) -> None:
    """Forget the indexes of ``source`` (a Source, or a session: see Source.of)."""
    Source.of(source).indexes.clear()
