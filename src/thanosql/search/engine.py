"""The cached search engine. ``search(source, sql, column, query, top_k=k)`` ranks the rows of
``sql`` exactly: through a cached CompactIndex when ``sql`` is a plain scan of a stored table
(kept in memory, and in the workspace by stored.py for other processes), else over the query's
rows. What it reads and keeps comes in a ``Source`` (connections, caches, the database's change
token and path), never a session.
"""

from __future__ import annotations

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
from . import approximate as approx
from .approximate import ApproximateIndex, Setting, build_approximate
from .codes import quantise
from .exact import check_dimension, exact_scores, rank, to_matrix
from .index import CompactIndex, StaleIndex, build_index
from .scan import TableScan, recognise_scan
from .stored import IndexKey, IndexStore, UnusableIndex, as_json
from .tables import (
    Fallback,
    appended_rows,
    batches,
    fetch_rowids,
    row_count,
    run,
    seal,
    table_fingerprint,
)

# Fetched rows re-quantised per search to check the index is still current.
STALE_CHECK_ROWS = 128
# Up to this many selected rows are scored exactly without screening (fetching them is cheap).
SMALL_SELECTION = 4096
# The exact line: below this many values (rows x dimension, 2M rows of 512) a search is exact by
# default: a query reads n*d bytes of int8 codes (27 ms measured at 1M rows on two cores, growing
# with the rows), and
# needs no calibration. At or above it, the default is approximate at approx.DEFAULT_RECALL.
EXACT_LINE = 1 << 30
# A WHERE keeping at most this many rows of an approximately searched table is answered exactly
# over those rows (reading them costs less than probing most of the index for them).
NARROW_SELECTION = 50_000
# Rows read for training and calibrating an approximate index.
SAMPLE_ROWS_MAX = 200_000


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
    # An approximate search ('approximate'): the recall promised and how it was kept.
    recall: float | None = None
    setting: Setting | None = None
    # Why a search asked to be approximate ran exactly ('' when it did not).
    exact_because: str = ""


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
    recall: float | None = None,
) -> Ranking:
    """Rank the rows of ``sql`` by the cosine of ``column`` to ``query`` (d,).

    >>> search(Source.of(session), "SELECT * FROM images", "convert_result", text_embedding, top_k=5).rows  # doctest: +SKIP

    ``source`` holds the connections, caches and database to use (a session is adapted by
    Source.of). ``top_k=None`` keeps every row. With ``keep_input_order`` the kept rows stay in
    input order (the inline era's contract). Raises PlanError for a column that holds no
    embeddings or embeddings of another dimension than ``query``.

    ``recall``: 1 asks for the exact answer; below 1, an approximate search that finds that share
    of the exact top k (approximate.py), where the table is a plain scan of a stored table and
    top_k is calibrated; None (the default): exact below EXACT_LINE values, else
    approx.DEFAULT_RECALL. ``Ranking.method`` says which ran, ``exact_because`` why not.
    """
    source = Source.of(source)
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(query)) or not np.any(query):
        raise PlanError("the query embedding is zero or not a number: it has no direction to compare", span=span)
    if top_k is not None and top_k < 1:
        raise PlanError(f"top_k must be a positive number of rows, not {top_k}", span=span)
    because = ""
    if top_k is not None:
        scan = _scan_of(source, sql)
        if scan is not None:
            try:
                rows = _table_rows(source, scan)
                if recall is None or recall < 1:
                    found = _search_approximate(
                        source, scan, column, query, top_k, keep_input_order, span, recall, rows
                    )
                    if isinstance(found, Ranking):
                        return found
                    because = found
                if _over_budget(source, rows, len(query)):
                    ranking = _search_streaming(source, scan, sql, column, query, top_k, keep_input_order, span)
                else:
                    ranking = _search_indexed(source, scan, column, query, top_k, keep_input_order, span)
                ranking.exact_because = because
                return ranking
            except Fallback:
                pass
        elif recall is not None and recall < 1:
            because = "the rows searched are not a plain scan of one stored table"
    elif recall is not None and recall < 1:
        because = "top_k=None keeps every row"
    ranking = _search_direct(source, sql, column, query, top_k, keep_input_order, span)
    ranking.exact_because = because
    return ranking


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
    raise Fallback("the table changes under the index")


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
                if table_fingerprint(connection, scan) == entry.fingerprint:
                    entry.token = token
                else:
                    entry = None
            if entry is not None:  # the fetch still checks the row count
                return entry.index, "memory"
        cache.drop(key)
        fingerprint = table_fingerprint(connection, scan)
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
                index, manifest = store.load(key, None)
                current = manifest["fingerprint"] == as_json(fingerprint)
                if not current:
                    new_rows = appended_rows(connection, scan, source_column, manifest, fingerprint)
                    index = index.with_rows(
                        _read_index_of(connection, new_rows, fingerprint[-1] - len(index), source_column)
                    )
                spread = np.unique(np.linspace(0, len(index) - 1, STALE_CHECK_ROWS).astype(np.int64))
                _check_still_matches(index, _fetch(connection, scan, index, spread).column(column), spread, column)
                if current:
                    return index, "workspace"
                _save_exact(connection, store, key, scan, source_column, fingerprint, index)
                return index, "appended"
            except (UnusableIndex, StaleIndex, OSError, KeyError, IndexError, TypeError, ValueError):
                pass  # missing, damaged, stale or unreadable: never trusted, built again below
        index = _read_index(connection, scan, source_column, rows=fingerprint[-1])
        # Saved only if the table did not change while it was read (another thread of this
        # process may write it meanwhile): an index saved is the table's at ``fingerprint``.
        if len(index) and table_fingerprint(connection, scan) == fingerprint:
            _save_exact(connection, store, key, scan, source_column, fingerprint, index)
        return index, "built"


def _save_exact(connection, store, key, scan, source_column, fingerprint, index) -> None:
    try:
        store.save(key, fingerprint, index, seal(connection, scan, source_column))
        _prune(connection, store, key)
    except (OSError, ThanoSQLError):
        pass  # a full disk or a read-only workspace: this search answers all the same


def _prune(connection, store: IndexStore, key: IndexKey) -> None:
    """Remove the stored indexes of the database's dropped tables (when an index is saved)."""
    found = connection.execute("SELECT database_name, schema_name, table_name FROM duckdb_tables()").fetchall()
    store.prune(key.table[0], {tuple(row) for row in found})


def _read_index_of(connection, sql: str, rows: int, source_column: str) -> CompactIndex:
    with batches(connection, sql) as reader:
        return build_index(reader, rows, source_column)


def _stored_key(source: Source, fingerprint: tuple, source_column: str) -> tuple[IndexStore, IndexKey] | None:
    """Where the workspace keeps the index of the fingerprinted table, or None when it keeps none:
    only a table of the workspace database itself (DuckDB names it after the file) is kept, not
    one of an attached database or a temporary one, whose changes the fingerprint cannot see."""
    path = getattr(source.database, "path", None)
    tables = fingerprint[0]
    if path is None or len(tables) != 1 or tables[0][0] != Path(path).stem:
        return None
    return IndexStore(Path(path).parent), IndexKey(tuple(tables[0]), source_column.lower())


def _read_index(connection, scan: TableScan, source_column: str, rows: int) -> CompactIndex:
    """The index of ``source_column`` of the scan's stored table of ``rows`` rows."""
    try:
        names = connection.sql(scan.query("columns", connection)).columns
    except duckdb.Error as exc:
        raise Fallback(str(exc)) from exc
    # A real column named rowid hides DuckDB's row identifier.
    if any(name.lower() == "rowid" for name in names):
        raise Fallback("the table has a column named rowid")
    return _read_index_of(connection, scan.query("index", connection, source_column), rows, source_column)


def _filtered_positions(connection, scan: TableScan, index: CompactIndex) -> np.ndarray | None:
    """Index positions of the rows the WHERE keeps (None: no WHERE, all rows)."""
    if not scan.has_filter:
        return None
    sql = scan.query("mask", connection)
    rowids = run(connection, sql).column(0).to_numpy().astype(np.int64)
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
    return fetch_rowids(connection, scan, index.rowids[positions], len(index))


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


def _search_approximate(source: Source, scan: TableScan, column, query, top_k, keep_input_order, span, recall, rows):
    """The approximate answer (a Ranking), or why the search runs exactly instead (a str, '' when
    the default chose exact); ``rows``: the table's row count. See approximate.py for the index
    and its calibration."""
    if recall is None:
        if rows * len(query) < EXACT_LINE:
            return ""
        recall = approx.DEFAULT_RECALL
    if approx.calibrated_k(top_k) is None:
        return f"top_k={top_k} is above the {approx.CALIBRATED_K[-1]} rows approximate search is calibrated for"
    if rows < 4 * approx.CALIBRATED_K[-1]:
        return f"the table has only {rows} rows"
    with source.connect() as connection:
        source.database.checkpoint(connection)
        token = source.database.change_token()
        for attempt in range(2):
            try:
                index, origin = _cached_approximate(source, connection, scan, column, token, attempt > 0)
                check_dimension(index.dim, len(query), column, span, rows=rows)
                setting = index.setting_for(recall, top_k)
                if setting is None:
                    return f"no probe count of the index was measured to keep recall {recall:g}"
                allowed = None
                if scan.has_filter:
                    rowids = run(connection, scan.query("mask", connection)).column(0).to_numpy().astype(np.int64)
                    if len(rowids) <= max(NARROW_SELECTION, 4 * top_k):
                        return "the WHERE keeps few enough rows to score them all"
                    # Kept rows after the index's last rowid have no usable embedding (the
                    # table is the one the index was made for): never candidates, and no harm.
                    allowed = np.zeros(max(index.max_rowid, int(rowids.max())) + 1, dtype=bool)
                    allowed[rowids] = True
                unit = query / np.linalg.norm(query)
                candidates = np.sort(index.candidates(unit, top_k, setting, allowed))
                fetched = fetch_rowids(connection, scan, candidates, index.rows)
            except StaleIndex:
                continue
            matrix, present = to_matrix(fetched.column(column), column, span)
            scores = exact_scores(matrix, present, query)
            if int(np.isfinite(scores).sum()) < top_k:
                return "the index found fewer than top_k rows the WHERE keeps"
            order = rank(scores, top_k, keep_input_order)
            return Ranking(
                fetched.take(order),
                scores[order],
                "approximate",
                len(candidates),
                origin,
                recall=recall,
                setting=setting,
            )
    raise Fallback("the table changes under the index")


def _table_rows(source: Source, scan: TableScan) -> int:
    """The scan's table's row count, remembered while the database's change token stays (a
    count per search would be one more DuckDB round trip on the exact path's hot path)."""
    token = source.database.change_token()
    key = ("rows", scan.key, token)
    found = source.scans.get(key) if token is not None else None
    if found is None:
        with source.connect() as connection:
            found = row_count(connection, scan)
        if token is not None:
            source.scans.put(key, found)
    return found


def _cached_approximate(source: Source, connection, scan: TableScan, column: str, token, rebuild: bool):
    """The approximate index of the scan's table and where it came from ('memory', 'workspace',
    'appended', 'built'): this process's while the database's change token stays (or the table's
    fingerprint when it moved); else the workspace's, brought up to date when rows were only
    appended since; else built from the table (and saved). Under the same locks as the exact
    index (see _cached_index)."""
    cache = source.indexes
    source_column = scan.source_column(column)
    key = (scan.key, source_column.lower(), "approximate")
    with cache.building(key):
        entry = cache.get(key)
        if entry is not None and not rebuild:
            if token is not None and token == entry.token:
                return entry.index, "memory"
            fingerprint = table_fingerprint(connection, scan)
            if fingerprint == entry.fingerprint:
                entry.token = token
                return entry.index, "memory"
        else:
            fingerprint = table_fingerprint(connection, scan)
        cache.drop(key)
        stored = _stored_key(source, fingerprint, source_column)
        if stored is None:
            index = _build_approximate(connection, scan, source_column, fingerprint[-1])
            cache.put(key, CachedIndex(index, token, fingerprint))
            return index, "built"
        store, exact_key = stored
        store_key = IndexKey(exact_key.table, exact_key.column, "approximate")
        with store.building(store_key):
            try:
                store.recover()
            except OSError:
                pass
            index, origin = None, "built"
            if not rebuild:
                try:
                    index, manifest = store.load_approximate(store_key, None)
                    if manifest["fingerprint"] == as_json(fingerprint):
                        origin = "workspace"
                    else:
                        index = _appended(connection, scan, source_column, index, manifest, fingerprint)
                        origin = "appended"
                        _save_approximate(
                            connection, store, store_key, scan, source_column, fingerprint, index, manifest
                        )
                except (UnusableIndex, StaleIndex, OSError, KeyError, IndexError, TypeError, ValueError):
                    index = None  # missing, damaged, stale or not only appended to: built again
            if index is None:
                index = _build_approximate(connection, scan, source_column, fingerprint[-1])
                if table_fingerprint(connection, scan) == fingerprint:
                    _save_approximate(connection, store, store_key, scan, source_column, fingerprint, index, None)
                    try:  # the saved copy, memory-mapped: the pages the kernel may drop
                        index = store.load_approximate(store_key, fingerprint)[0]
                    except (UnusableIndex, OSError):
                        pass
            cache.put(key, CachedIndex(index, token, fingerprint))
            return index, origin


def _save_approximate(connection, store, key, scan, source_column, fingerprint, index, kept) -> None:
    try:
        store.save_approximate(key, fingerprint, index, seal(connection, scan, source_column), kept)
        _prune(connection, store, key)
    except (OSError, ThanoSQLError):
        pass  # a full disk or a read-only workspace: this search answers all the same


def _appended(connection, scan, source_column, index: ApproximateIndex, manifest: dict, fingerprint: tuple):
    """``index`` (the workspace's, of an earlier state of the table) with the rows appended since
    added as a delta; StaleIndex unless the table only had rows appended (appended_rows)."""
    sql = appended_rows(connection, scan, source_column, manifest, fingerprint)
    with batches(connection, sql) as reader:
        read = index.with_rows(reader, fingerprint[-1], source_column)
    if manifest["rows"] + read != fingerprint[-1]:
        raise StaleIndex("rows were removed as well")
    return index


def _build_approximate(connection, scan: TableScan, source_column: str, rows: int) -> ApproximateIndex:
    """The approximate index of ``source_column``: a sample for the centres and the calibration
    queries, then every row, with a progress bar."""
    from ..progress import progress_bar

    sql = scan.query("index", connection, source_column)
    wanted = min(rows, max(approx.TRAINING_ROWS_PER_LIST * approx.list_count(rows), 2 * approx.CALIBRATION_QUERIES))
    wanted = min(wanted, SAMPLE_ROWS_MAX)
    with batches(connection, f"{sql} USING SAMPLE reservoir({int(wanted)} ROWS) REPEATABLE (7)") as reader:
        sample = reader.read_all().combine_chunks()
    bar = progress_bar(total=rows, desc="Building the search index", unit="rows", leave=False)
    try:
        with batches(connection, sql) as reader:
            return build_approximate(sample, reader, rows, source_column, on_progress=_advance(bar))
    except ValueError as exc:
        raise Fallback(str(exc)) from exc
    finally:
        bar.close()


def _advance(bar):
    def advance(read: int) -> None:
        bar.update(read - bar.n)

    return advance


def _over_budget(source: Source, rows: int, dim: int) -> bool:
    """Whether the exact index of a table of ``rows`` would not fit the memory budget (the index
    cache's, the ``search_memory`` setting): two int8 levels and 24 bytes per row, and the first
    level once more when it is packed for fbgemm."""
    return rows * (3 * dim + 24) > source.indexes.max_bytes


def _search_streaming(source: Source, scan: TableScan, sql, column, query, top_k, keep_input_order, span) -> Ranking:
    """The exact answer read in batches, keeping only the best top_k rows so far: for a table
    whose exact index would not fit in memory. Slower (every row is read from DuckDB) but bounded."""
    kept, kept_scores, kept_positions, seen = None, np.zeros(0), np.zeros(0, np.int64), 0
    with source.connect() as connection:
        with batches(connection, sql) as reader:
            for batch in reader:
                table = pa.Table.from_batches([batch])
                found = table.schema.get_all_field_indices(column)
                if len(found) != 1:
                    raise PlanError(f"column '{column}' appears {len(found)} times in the rows searched", span=span)
                matrix, present = to_matrix(table.column(found[0]), column, span)
                check_dimension(matrix.shape[1], len(query), column, span, rows=seen + len(matrix))
                scores = exact_scores(matrix, present, query)
                positions = np.arange(seen, seen + len(scores))
                seen += len(scores)
                if kept is not None:
                    table = pa.concat_tables([kept, table])
                    scores = np.concatenate([kept_scores, scores])
                    positions = np.concatenate([kept_positions, positions])
                order = rank(scores, top_k, False)
                kept, kept_scores, kept_positions = table.take(order), scores[order], positions[order]
    if kept is None:
        return _search_direct(source, sql, column, query, top_k, keep_input_order, span)
    order = np.argsort(kept_positions, kind="stable") if keep_input_order else np.arange(len(kept_scores))
    return Ranking(kept.take(order), kept_scores[order], "streamed", seen)
