"""sql_dialect: PostgreSQL (and other dialects) transpiled to DuckDB by sqlglot; the fixture file
tests/fixtures/postgres.sql run in both modes (issue 13)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import thanosql
from fixtures_loader import load_cases
from thanosql.errors import ExecutionError, ThanoSQLError

CASES = load_cases("postgres.sql")
SETUP = (
    "CREATE TABLE ev AS SELECT 1 AS id, TIMESTAMP '2024-03-05 10:11:12' AS ts, 'Cat' AS name, "
    """'{"a": {"b": "x"}, "l": ["p", "q"]}' AS doc"""
)


def _rows(frame) -> list[tuple]:
    return [tuple(v.tolist() if hasattr(v, "tolist") else v for v in row) for row in frame.itertuples(index=False)]


@pytest.mark.parametrize("case", CASES, ids=[case.description for case in CASES])
def test_postgres_statements_give_their_rows_in_postgres_mode(session, case):
    session.execute(SETUP)
    session.configure(sql_dialect="postgres")
    frame = session.execute(case.input)
    assert sorted(_rows(frame)) == sorted(ast.literal_eval(case.expected))


@pytest.mark.parametrize("case", CASES, ids=[case.description for case in CASES])
def test_postgres_statements_in_duckdb_mode_give_the_rows_or_a_hint_naming_the_setting(session, case):
    session.execute(SETUP)
    try:
        frame = session.execute(case.input)
    except ExecutionError as error:
        assert "sql_dialect='postgres'" in (error.hint or ""), error.render()
        assert "DuckDB writes this as: " in error.hint
        return
    if case.meta.get("duckdb") == "other rows":
        assert sorted(_rows(frame)) != sorted(ast.literal_eval(case.expected))
        return
    assert sorted(_rows(frame)) == sorted(ast.literal_eval(case.expected))


def test_the_default_dialect_passes_sql_through_unchanged(session):
    assert session.settings.sql_dialect == "duckdb"
    # DuckDB's own syntax, which a PostgreSQL reading would reject, runs as written.
    assert session.execute("FROM (SELECT 42 AS x) SELECT x")["x"].tolist() == [42]


def test_an_unknown_dialect_is_an_error_listing_the_nearest_names(workspace):
    with pytest.raises(ThanoSQLError) as caught:
        thanosql.connect(workspace, sql_dialect="postgress")
    assert "did you mean 'postgres'?" in caught.value.hint and "mysql" in caught.value.hint


def test_the_dialect_comes_from_the_environment(workspace, monkeypatch):
    monkeypatch.setenv("THANOSQL_SQL_DIALECT", "Postgres")
    with thanosql.connect(workspace) as session:
        assert session.settings.sql_dialect == "postgres"
        assert session.execute("SELECT to_char(DATE '2024-01-02', 'DD/MM')").iloc[0, 0] == "02/01"


def test_another_dialect_sqlglot_reads_is_transpiled_too(session):
    session.configure(sql_dialect="mysql")
    assert session.execute("SELECT `x` FROM (SELECT 1 AS `x`) AS t")["x"].tolist() == [1]


def test_extension_statements_are_never_sent_through_sqlglot_but_their_as_queries_are():
    from thanosql.dialects import translate_plan
    from thanosql.parser import parse
    from thanosql.planner import plan

    cell = "SEARCH IMAGE USING clip OPTIONS (search_by='text', search_input='x') AS\nSELECT *, to_char(ts, 'YYYY') AS y FROM ev"
    step = translate_plan(plan(parse(cell)[0]), "postgres").steps[0]
    assert step.source == "SELECT *, STRFTIME(ts, '%Y') AS y FROM ev"
    assert step.statement.model == "clip"  # the statement itself is the parser's, untouched
    # DuckDB's position in the transpiled text still leads to the cell.
    assert step.source_map.cell_offset(step.source.index("FROM ev")) == cell.index("FROM ev")


def test_the_command_line_takes_the_dialect(workspace):
    result = subprocess.run(
        [sys.executable, "-m", "thanosql.cli", "-w", str(workspace), "--quiet", "--format", "csv"]
        + ["--sql-dialect", "postgres", "-e", "SELECT to_char(DATE '2024-01-02', 'YYYY') AS y"],
        capture_output=True,
        text=True,
        env={**os.environ, "THANOSQL_SQL_DIALECT": ""},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["y", "2024"]
