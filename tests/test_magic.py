"""The magics through a real IPython shell: results, -o, {{name}}, several statements, clean errors."""

from __future__ import annotations

import pytest
from IPython.terminal.interactiveshell import TerminalInteractiveShell
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output


@pytest.fixture
def shell(workspace, monkeypatch):
    """An IPython shell with %load_ext thanosql done, on a fresh workspace."""
    monkeypatch.setenv("THANOSQL_WORKSPACE", str(workspace))
    ip = start_ipython() or TerminalInteractiveShell.instance()
    ip.run_line_magic("load_ext", "thanosql")
    magic = ip.magics_manager.registry["ThanoSQLMagic"]
    magic._session = None
    magic.debug = False
    yield ip
    if magic._session is not None:
        magic._session.close()
        magic._session = None


def run(ip, cell: str):
    """Run a notebook cell; return (its result, what it printed)."""
    with capture_output() as captured:
        outcome = ip.run_cell(cell)
    return outcome, captured.stdout + captured.stderr


def test_cell_magic_returns_the_rows_as_a_dataframe(shell):
    outcome, _ = run(shell, "%%thanosql\nSELECT 2 AS two")
    assert outcome.result["two"].tolist() == [2]


def test_line_magic_returns_the_result_of_its_statement(shell):
    outcome, _ = run(shell, "frame = %thanosql SELECT 7 AS seven\nframe")
    assert outcome.result["seven"][0] == 7


def test_dash_o_stores_the_result_and_still_shows_it(shell):
    outcome, _ = run(shell, "%%thanosql -o answer\nSELECT 3 AS x")
    assert outcome.result is not None
    assert shell.user_ns["answer"]["x"][0] == 3


def test_several_statements_in_a_cell_run_in_order(shell):
    outcome, printed = run(shell, "%%thanosql\nCREATE TABLE t AS SELECT 1 AS x;\nINSERT INTO t VALUES (5);\nSELECT sum(x) AS s FROM t")
    assert outcome.result["s"][0] == 6
    assert "Success" in printed


def test_notebook_variables_are_substituted_as_literals(shell):
    shell.user_ns["caption"] = "it's a cat'; DROP TABLE t; --"
    shell.user_ns["limit"] = 2
    outcome, _ = run(shell, "%%thanosql\nSELECT {{caption}} AS text, {{ limit }} AS n")
    assert outcome.result.to_dict("records") == [{"text": "it's a cat'; DROP TABLE t; --", "n": 2}]


def test_an_unknown_variable_is_a_clear_error_without_traceback(shell):
    outcome, printed = run(shell, "%%thanosql\nSELECT {{nothing_here}}")
    assert outcome.error_in_exec is not None
    assert "no notebook variable named 'nothing_here'" in printed
    assert "Traceback" not in printed


def test_a_user_error_shows_the_message_and_caret_but_no_traceback(shell):
    outcome, printed = run(shell, "%%thanosql\nSEARCH IMAGES USING m AS SELECT 1")
    assert outcome.error_in_exec is not None
    assert "Line 1, column 8" in printed
    assert "^" in printed
    assert "Traceback" not in printed


def test_a_duckdb_error_shows_no_traceback_either(shell):
    _, printed = run(shell, "%%thanosql\nSELECT * FROM missing_table")
    assert "missing_table" in printed
    assert "Traceback" not in printed


def test_debug_mode_shows_the_full_traceback(shell):
    shell.magics_manager.registry["ThanoSQLMagic"].debug = True
    _, printed = run(shell, "%%thanosql\nSELECT * FROM missing_table")
    assert "Traceback" in printed


def test_api_token_and_engine_urls_are_accepted_and_ignored(shell):
    _, printed = run(shell, "%thanosql API_TOKEN=abc123")
    assert "not needed" in printed and "abc123" not in printed
    _, printed = run(shell, "%thanosql https://engine.example.org/api/v1/query")
    assert "not needed" in printed


def test_line_options_change_the_workspace(shell, tmp_path):
    other = tmp_path / "other"
    run(shell, f"%thanosql -w {other} CREATE TABLE here AS SELECT 1 AS x")
    assert (other / "thanosql.duckdb").is_file()


def test_text_on_the_cell_magic_line_is_refused_with_a_hint(shell):
    _, printed = run(shell, "%%thanosql SELECT 1\nSELECT 2")
    assert "unexpected text after %%thanosql" in printed
    assert "Traceback" not in printed
