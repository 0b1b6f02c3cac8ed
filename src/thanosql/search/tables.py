"""What the search engine reads of a stored table through DuckDB, apart from the index itself:
its fingerprint (row count and storage layout), the seal that recognises an append later and the
rows appended since an index was saved, and rows fetched by rowid. A table that
cannot be read this way (a view, a registered frame) raises Fallback: the engine then searches
the query's rows directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa

from .exact import to_matrix
from .index import StaleIndex
from .scan import COUNT_ALIAS, HITS_RELATION, ROWID_ALIAS, TableScan, scalar

# Rows per Arrow batch while a table's column is read.
BATCH_ROWS = 32768
# DuckDB's memory limit while a whole table is read for the engine (see batches).
SCAN_MEMORY = "1GiB"
# Rows, spread over an indexed table, read again to recognise a table made again (appended_rows).
SEAL_ROWS = 256


class Fallback(Exception):
    """The indexed path cannot answer this query (a view, a rowid column, ...): search directly."""


def table_fingerprint(connection, scan: TableScan) -> tuple:
    """What changes when the scan's table is written: its row count and its storage layout
    (DuckDB stores an inserted row, and an updated list or array row, as a new row in a new or
    longer segment; a table made again is written to other blocks), with each segment's min/max
    statistics (a table made again in the same blocks has other values). Not the catalog's oid: DuckDB
    numbers tables afresh each time it opens the file, and the file is opened for each statement.
    About 0.15 s at a million rows of 512 values, paid only after a write. Raises Fallback for
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
        raise Fallback(str(exc)) from exc
    if not identity[0]:
        raise Fallback("not a stored table")
    layout = hashlib.sha256(json.dumps(identity[1] or []).encode()).hexdigest()
    tables = tuple(tuple(names) for names in identity[0])
    return (tables, layout, row_count(connection, scan))


def run(connection, sql: str) -> pa.Table:
    try:
        return connection.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise Fallback(str(exc)) from exc


def row_count(connection, scan: TableScan) -> int:
    try:
        return int(scalar(connection, scan.query("count", connection), []))
    except duckdb.Error as exc:
        raise Fallback(str(exc)) from exc


def appended_rows(connection, scan, source_column: str, manifest: dict, fingerprint: tuple) -> str:
    """The SQL of the rows appended to the table since the index of ``manifest`` was saved;
    StaleIndex unless rows were only appended. DuckDB's rowids stay with their rows (a delete
    leaves a gap, a checkpoint does not renumber), new rows take rowids above every earlier one,
    and an UPDATE of a list or array column deletes the row and inserts it again under a new
    rowid. So the table had only appends when it has exactly the indexed number of rows up to the
    indexed last rowid, more after it, and the same rows at the sealed rowids (a table made
    again). Checked on rowids and a sample, not on DuckDB's storage layout, which a checkpoint
    reorganises (it merges the partial row groups separate appends leave)."""
    seal = manifest["seal"]
    last, rows = int(seal["last_rowid"]), fingerprint[-1]
    sql = scan.query("index", connection, source_column)
    counts = connection.execute(
        f"SELECT count(*) FILTER (WHERE rowid <= {last}), count(*) FILTER (WHERE rowid > {last}) FROM ({sql})"
    ).fetchall()[0]
    if counts[0] != manifest["rows"] or counts[1] != rows - manifest["rows"] or counts[1] <= 0:
        raise StaleIndex("not only an append")
    if sample_digest(connection, scan, source_column, seal["sample"]) != seal["digest"]:
        raise StaleIndex("the sealed rows changed")
    return f"SELECT * FROM ({sql}) WHERE rowid > {last}"


def seal(connection, scan: TableScan, source_column: str) -> dict:
    """What appended_rows checks later: the table's last rowid and a digest of SEAL_ROWS rows at
    rowids spread up to it."""
    sql = scan.query("index", connection, source_column)
    last = scalar(connection, f"SELECT coalesce(max(rowid), -1) FROM ({sql})", [])
    sample = sorted({int(r) for r in np.linspace(0, max(last, 0), SEAL_ROWS).astype(np.int64)})
    return {"last_rowid": int(last), "sample": sample, "digest": sample_digest(connection, scan, source_column, sample)}


def sample_digest(connection, scan: TableScan, source_column: str, rowids: list[int]) -> str:
    """sha256 of the rowids and embeddings of the rows at ``rowids`` (those that exist)."""
    sql = scan.query("index", connection, source_column)
    wanted = ", ".join(str(int(r)) for r in rowids) or "-1"
    hasher = hashlib.sha256()
    with batches(connection, f"SELECT * FROM ({sql}) WHERE rowid IN ({wanted}) ORDER BY rowid") as reader:
        for batch in reader:
            hasher.update(batch.column(0).to_numpy().astype(np.int64).tobytes())
            values = batch.column(1)
            hasher.update(values.to_string().encode() if values.null_count else _flat_bytes(values))
    return hasher.hexdigest()


def _flat_bytes(values) -> bytes:
    matrix, _ = to_matrix(values, "embedding")
    return np.ascontiguousarray(matrix).tobytes()


def fetch_rowids(connection, scan: TableScan, rowids: np.ndarray, rows: int) -> pa.Table:
    """The scan's rows of ``rowids`` (ascending), in that order; StaleIndex if one is missing or
    the table no longer has ``rows`` rows."""
    sql = scan.query("fetch", connection)
    connection.register(HITS_RELATION, pa.table({"rid": rowids}))
    try:
        found = run(connection, sql)
    finally:
        connection.unregister(HITS_RELATION)
    counts = found.column(COUNT_ALIAS)
    count = counts[0].as_py() if len(counts) else row_count(connection, scan)
    if count != rows:
        raise StaleIndex("rows were added or removed")
    got = found.column(ROWID_ALIAS).to_numpy().astype(np.int64)
    order = np.argsort(got, kind="stable")
    if not np.array_equal(got[order], rowids):
        raise StaleIndex("rows are missing or moved")
    return found.take(order).drop_columns([ROWID_ALIAS, COUNT_ALIAS])


@contextmanager
def batches(connection, sql: str) -> Iterator[pa.RecordBatchReader]:
    """The rows of ``sql`` as Arrow batches of BATCH_ROWS, closed on leaving (an unread result
    would block the connection). DuckDB keeps every block a scan reads in its buffer pool, up to
    its memory limit (80% of the machine by default): a table read whole for an index would stay
    in this process's memory (2 GB at a million rows of 512 values). The limit is lowered to
    SCAN_MEMORY meanwhile (it is DuckDB's, for this process's database) and put back after.
    Fallback when DuckDB cannot run ``sql``."""
    limit = connection.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    connection.execute(f"SET memory_limit = '{SCAN_MEMORY}'")
    try:
        try:
            reader = connection.sql(sql).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise Fallback(str(exc)) from exc
        try:
            yield reader
        except duckdb.Error as exc:
            raise Fallback(str(exc)) from exc
        finally:
            reader.close()
    finally:
        connection.execute(f"SET memory_limit = '{limit}'")
