"""The session: plain SQL on the workspace database, statements in order, errors as ThanoSQLError."""

from __future__ import annotations

import time

import pandas as pd
import pytest

import thanosql
from thanosql import ExecutionError, ThanoSQLError
from thanosql.database import RACY_S


def test_plain_select_returns_a_dataframe(session):
    frame = session.execute("SELECT 42 AS answer, 'x' AS letter")
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records") == [{"answer": 42, "letter": "x"}]


def test_tables_survive_a_new_session_on_the_same_workspace(workspace):
    with thanosql.connect(workspace, progress=False, notify=lambda _: None) as first:
        first.execute("CREATE TABLE kept AS SELECT range AS n FROM range(3)")
    with thanosql.connect(workspace, progress=False, notify=lambda _: None) as second:
        assert second.execute("SELECT sum(n) AS total FROM kept")["total"][0] == 3
    assert (workspace / "thanosql.duckdb").is_file()


def test_statements_of_a_cell_run_in_order_and_the_last_result_is_returned(session):
    frame = session.execute("CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2); SELECT count(*) AS n FROM t;")
    assert frame["n"][0] == 2


def test_statements_without_rows_say_success(session, notices):
    assert session.execute("CREATE TABLE t AS SELECT 1 AS x") is None
    assert notices[-1].startswith("Success")


def test_run_yields_every_statement_with_its_rows(session):
    results = list(session.run("SELECT 1 AS a; CREATE TABLE t (x INT); SELECT 2 AS b"))
    assert [None if frame is None else list(frame.columns) for _, frame in results] == [["a"], None, ["b"]]


def test_a_syntax_error_anywhere_runs_nothing(session):
    with pytest.raises(thanosql.ThanoSQLSyntaxError):
        session.execute("CREATE TABLE never AS SELECT 1; SEARCH IMAGES USING m AS SELECT 1")
    assert not session.table_exists("never")


def test_duckdb_errors_come_back_as_thanosql_errors_naming_the_statement(session):
    with pytest.raises(ExecutionError) as caught:
        session.execute("SELECT 1;\nSELECT * FROM no_such_table")
    error = caught.value
    assert "no_such_table" in error.message
    assert error.line == 2 and error.column == 15  # where DuckDB points: the table's name
    assert error.sql == "SELECT * FROM no_such_table"
    assert "Traceback" not in error.render()


def test_a_misspelt_thanosql_keyword_gets_a_hint(session):
    with pytest.raises(ExecutionError) as caught:
        session.execute("SERACH IMAGE USING m AS SELECT 1")
    assert "SEARCH" in caught.value.hint


def test_write_table_replaces_atomically_and_a_failed_append_keeps_the_old_rows(session):
    session.write_table("t", pd.DataFrame({"x": [1, 2]}), "replace")
    with pytest.raises(ThanoSQLError):
        session.write_table("t", pd.DataFrame({"y": ["not x"]}), "append")
    assert session.execute("SELECT x FROM t ORDER BY x")["x"].tolist() == [1, 2]
    with pytest.raises(ThanoSQLError, match="already exists"):
        session.write_table("t", pd.DataFrame({"x": [3]}), "fail")


def test_writes_move_the_database_change_token_and_queries_do_not(session):
    session.execute("CREATE TABLE t (x INT)")
    time.sleep(2 * RACY_S)  # a token taken just after a write is not trusted
    before = session.database.change_token()
    session.execute("SELECT * FROM t")
    assert before is not None and session.database.change_token() == before
    session.execute("INSERT INTO t VALUES (1)")
    assert session.database.change_token() != before


def test_relative_paths_resolve_against_the_workspace(session, workspace):
    assert session.resolve_path("thanosql-dataset/a.jpg") == workspace / "thanosql-dataset" / "a.jpg"
    assert session.resolve_path("/abs/b.jpg").as_posix() == "/abs/b.jpg"


def test_settings_come_from_the_environment_when_not_given(workspace, monkeypatch):
    monkeypatch.setenv("THANOSQL_WORKSPACE", str(workspace))
    monkeypatch.setenv("THANOSQL_OFFLINE", "1")
    monkeypatch.setenv("THANOSQL_DEVICE", "cpu")
    settings = thanosql.Settings.from_env()
    assert (settings.workspace, settings.offline, settings.device) == (workspace.resolve(), True, "cpu")


def test_an_unknown_device_is_a_clear_error(workspace):
    with pytest.raises(ThanoSQLError, match="unknown device"):
        thanosql.connect(workspace, device="tpu")


def test_unsupported_statements_say_so_with_the_supported_ones(session):
    with pytest.raises(ThanoSQLError) as caught:
        session.execute("PREDICT USING m AS SELECT 1")
    assert "PREDICT is not supported" in caught.value.message
    assert "SEARCH" in caught.value.hint


def test_each_statement_of_a_cell_is_labelled_before_it_runs(session, notices):
    session.execute("CREATE TABLE t AS SELECT 1 AS x;\n\nINSERT INTO t\n  VALUES (5);\nSELECT sum(x) AS s FROM t")

    assert notices == [
        "[1/3] line 1: CREATE TABLE t AS SELECT 1 AS x",
        "Success (1 row)",
        "[2/3] line 3: INSERT INTO t VALUES (5)",
        "Success (1 row)",
        "[3/3] line 5: SELECT sum(x) AS s FROM t",
    ]


def test_a_label_shows_the_start_of_a_long_statement_and_a_single_statement_has_none(session, notices):
    session.execute("SELECT 1 AS a; SELECT " + ", ".join(f"{i} AS column_{i}" for i in range(30)))
    session.execute("SELECT 1 AS alone")

    assert notices[1].startswith("[2/2] line 1: SELECT 0 AS column_0, 1 AS column_1")
    assert notices[1].endswith("…") and len(notices[1]) == len("[2/2] line 1: ") + 72
    assert len(notices) == 2
