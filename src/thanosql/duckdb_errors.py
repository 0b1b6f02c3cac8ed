"""DuckDB's errors in the cell's coordinates: one caret where DuckDB points, its message once, and
a hint only where it helps.

DuckDB reports where an error is when ``errors_as_json`` is set (``position``: a UTF-8 byte offset
into the SQL it ran; ``location``: [offset, length]); ``positions(connection)`` sets it around our
own statements only. ``execution_error`` maps that offset through the statement's SourceMap to the
cell, keeps DuckDB's own suggestions ("Did you mean ..."), adds "did you mean the ThanoSQL statement
X?" only for a statement that is not SQL and begins with a near miss of a ThanoSQL keyword, and, in
the default dialect, shows the DuckDB form of a statement that reads well as PostgreSQL.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb

from .errors import ExecutionError, Span, ThanoSQLError, closest, span_at
from .sourcemap import SourceMap
from .tokens import TokenType, tokenize

# Words that begin a DuckDB statement, for "did you mean SELECT?" after a misspelt first word.
SQL_STATEMENT_WORDS = (
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "WITH", "FROM", "VALUES",
    "COPY", "EXPLAIN", "DESCRIBE", "SHOW", "SUMMARIZE", "PRAGMA", "SET", "RESET", "BEGIN", "COMMIT",
    "ROLLBACK", "ATTACH", "DETACH", "USE", "CHECKPOINT", "VACUUM", "ANALYZE", "INSTALL", "LOAD",
    "EXPORT", "IMPORT", "CALL", "PREPARE", "EXECUTE", "DEALLOCATE", "PIVOT", "UNPIVOT", "TRUNCATE",
    "MERGE", "TABLE",
)  # fmt: skip


@contextmanager
def positions(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Within the block, DuckDB's errors on ``connection`` carry their position (as JSON)."""
    try:
        connection.execute("SET errors_as_json = true")
    except duckdb.Error:  # an aborted transaction refuses even SET; its error has no position anyway
        pass
    try:
        yield
    finally:
        try:
            connection.execute("RESET errors_as_json")
        except duckdb.Error:
            pass


def with_position(connection: duckdb.DuckDBPyConnection, sql: str, exc: duckdb.Error) -> duckdb.Error:
    """``exc`` as DuckDB reports it with its position: a SELECT that failed while it ran (a
    conversion error) runs again with positions on; a statement that failed to bind is found by
    execution_error under EXPLAIN; anything else is ``exc`` itself. Only a read is run twice."""
    if read_report(exc, sql).start is not None or not _is_select(connection, sql):
        return exc
    try:
        with positions(connection):
            connection.execute(sql).fetchall()
    except duckdb.Error as again:
        return again if type(again) is type(exc) else exc
    return exc


def _is_select(connection, sql: str) -> bool:
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error:
        return False
    return len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT


@dataclass(frozen=True)
class Report:
    """What DuckDB said: ``kind`` ("Catalog Error"), the first line of its message, the lines after
    it, and where it points in the SQL it ran (character offsets; None where it does not say)."""

    kind: str
    message: str
    details: list[str] = field(default_factory=list)
    start: int | None = None
    length: int = 0
    name: str | None = None
    parser: bool = False


def read_report(exc: duckdb.Error, sql: str) -> Report:
    """DuckDB's error, read from its JSON form (errors_as_json) or, failing that, from its text."""
    text = str(exc).strip()
    kind, _, rest = text.partition(": ")
    fields = _json_fields(rest)
    if fields is None:
        # The text form: the message, then DuckDB's own "LINE n:" block and caret, dropped here.
        lines = rest.split("\n")
        cut = next((i for i, line in enumerate(lines) if line.startswith("LINE ")), len(lines))
        message_lines = [line for line in lines[:cut]]
        start, length, name = None, 0, None
    else:
        message_lines = fields.get("exception_message", "").split("\n")
        start, length = _location(fields, sql)
        name = fields.get("name")
    message_lines = [line.rstrip() for line in message_lines]
    while message_lines and not message_lines[-1]:
        message_lines.pop()
    message = message_lines[0] if message_lines else kind
    details = [line.replace("\t", "  ") for line in message_lines[1:] if line.strip()]
    if details:
        details[0] = details[0].lstrip()
    parser = isinstance(exc, duckdb.ParserException)
    return Report(kind, message, details, start, length, name, parser)


def _json_fields(text: str) -> dict | None:
    if not text.startswith("{"):
        return None
    try:
        fields = json.loads(text)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def _location(fields: dict, sql: str) -> tuple[int | None, int]:
    """DuckDB's [byte offset, byte length] as character offsets into ``sql``."""
    location, position = fields.get("location"), fields.get("position")
    try:
        start, length = json.loads(location) if location else (int(position), 0)
    except (ValueError, TypeError):
        return None, 0
    data = sql.encode("utf-8")
    first = len(data[:start].decode("utf-8", errors="ignore"))
    width = len(data[start : start + length].decode("utf-8", errors="ignore"))
    return first, width


def execution_error(
    exc: duckdb.Error,
    sql: str,
    statement,
    source_map: SourceMap | None,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    dialect: str = "duckdb",
) -> ExecutionError:
    """An ExecutionError for ``exc``, raised running ``sql`` for ``statement``, pointing into the
    cell through ``source_map`` (at the statement where DuckDB does not say, or no map is known)."""
    report = read_report(exc, sql)
    if report.start is None and connection is not None:
        report = _explained(connection, exc, sql) or report
    message = f"{report.kind}: {report.message}"
    span = _span(report, sql, source_map) or getattr(statement, "span", None)
    hints = []
    postgres = _postgres_hint(sql, connection) if dialect == "duckdb" and connection is not None else None
    if postgres is not None:
        hints.append(postgres)
    else:
        hints += [_suggestion(line) for line in report.details]
        keyword = _keyword_hint(sql, report, statement)
        if keyword:
            hints.append(keyword)
    hint = "\n".join(h for h in hints if h) or None
    return ExecutionError(message, sql=sql, span=span, hint=hint)


def _explained(connection, exc: duckdb.Error, sql: str) -> Report | None:
    """The report of ``exc`` with its position, found by binding ``sql`` again under EXPLAIN: the
    relational API (``connection.sql``, used for AS queries) drops DuckDB's position."""
    prefix = "EXPLAIN "
    try:
        with positions(connection):
            connection.execute(prefix + sql).fetchall()
    except duckdb.Error as again:
        if type(again) is not type(exc):
            return None
        report = read_report(again, prefix + sql)
        if report.start is None or report.start < len(prefix):
            return None
        return Report(
            report.kind,
            report.message,
            report.details,
            report.start - len(prefix),
            report.length,
            report.name,
            report.parser,
        )
    return None


def _suggestion(line: str) -> str:
    # DuckDB says 'Did you mean "floor"?'; the Hint line says it in our lower case.
    return "did you mean" + line[len("Did you mean") :] if line.startswith("Did you mean") else line


def _span(report: Report, sql: str, source_map: SourceMap | None) -> Span | None:
    """Where DuckDB points, in the cell; for an error without a position that names something
    (an INSERT into a missing table), where that name is written."""
    if source_map is None:
        return None
    start, length = report.start, report.length
    if start is None and report.name:
        start, length = _named(sql, report.name)
    if start is None:
        return None
    begin = source_map.cell_offset(start)
    if length > 0 and source_map.exact(start, start + length):
        end = begin + length
    else:
        end = begin + _word_length(sql, start)
    return Span(begin, end, 0, 0)


def _named(sql: str, name: str) -> tuple[int | None, int]:
    try:
        tokens = tokenize(sql)
    except ThanoSQLError:  # a text our tokenizer cannot read has no place to show
        return None, 0
    for token in tokens:
        named = token.type in (TokenType.IDENTIFIER, TokenType.QUOTED_IDENTIFIER)
        if named and token.text.strip('"').lower() == name.lower():
            return token.span.start, token.span.end - token.span.start
    return None, 0


def _word_length(sql: str, start: int) -> int:
    """The length of the token at ``start`` (DuckDB gives no width for binder errors)."""
    try:
        tokens = tokenize(sql[start:])
    except ThanoSQLError:
        return 1
    return max(1, tokens[0].span.end - tokens[0].span.start) if tokens else 1


def located(span: Span | None, source: str) -> Span | None:
    """``span`` with its line and column computed in ``source`` (the cell)."""
    if span is None or span.line:
        return span
    return span_at(source, span.start, span.end)


def _keyword_hint(sql: str, report: Report, statement) -> str | None:
    """ "did you mean the ThanoSQL statement X?" (or the SQL word): only for a statement DuckDB
    could not parse whose first word is no SQL keyword but close to one of ours (or of SQL's)."""
    from . import nodes
    from .parser import STATEMENT_KEYWORDS

    if not report.parser or not isinstance(statement, nodes.PassThrough) or statement.nested:
        return None
    words = sql.split(None, 1)
    first = words[0].upper() if words else ""
    if not first.isidentifier() or first in sql_keywords():
        return None
    ours = closest(first, STATEMENT_KEYWORDS)
    if ours:
        return f"did you mean the ThanoSQL statement {ours}?"
    theirs = closest(first, SQL_STATEMENT_WORDS)
    return f"did you mean {theirs}?" if theirs else None


@functools.lru_cache(maxsize=1)
def sql_keywords() -> frozenset[str]:
    """Every keyword DuckDB knows."""
    with duckdb.connect() as connection:
        return frozenset(
            row[0].upper() for row in connection.execute("SELECT keyword_name FROM duckdb_keywords()").fetchall()
        )


def _postgres_hint(sql: str, connection) -> str | None:
    """The DuckDB form of ``sql`` read as PostgreSQL, when DuckDB cannot bind ``sql`` as written
    and can bind that form (so the error is about the dialect, not about a missing table)."""
    if _binds(connection, sql):
        return None  # the error came while running, not from the way it is written
    try:
        from .dialects import SETTING_HINT, duckdb_form
    except ImportError:  # sqlglot not installed
        return None
    form = duckdb_form(sql)
    if form is None or not _binds(connection, form):
        return None
    return f"DuckDB writes this as: {form}\nor set sql_dialect='postgres' to run PostgreSQL as written ({SETTING_HINT})"


def _binds(connection, sql: str) -> bool:
    """Whether DuckDB can parse and bind ``sql``, in a transaction rolled back: the statements
    before the last (the sequences of a SERIAL column) run, the last is only EXPLAINed. Inside a
    transaction of the user's (which the error has aborted anyway) nothing is tried."""
    try:
        connection.execute("BEGIN TRANSACTION")
    except duckdb.Error:
        return False
    try:
        statements = connection.extract_statements(sql)
        for statement in statements[:-1]:
            connection.execute(statement.query)
        if statements:
            connection.execute("EXPLAIN " + statements[-1].query).fetchall()
    except duckdb.Error:
        return False
    finally:
        try:
            connection.execute("ROLLBACK")
        except duckdb.Error:
            pass
    return True
