"""The magics through a real IPython shell: results, -o, {{name}}, several statements, clean errors."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest
from IPython.terminal.interactiveshell import TerminalInteractiveShell
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output

from thanosql.errors import ThanoSQLError
from thanosql.magic import render_literal, substitute


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
    outcome, printed = run(
        shell, "%%thanosql\nCREATE TABLE t AS SELECT 1 AS x;\nINSERT INTO t VALUES (5);\nSELECT sum(x) AS s FROM t"
    )
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


def victim_exists(ip) -> bool:
    outcome, _ = run(ip, "%%thanosql\nSELECT count(*) AS n FROM victim")
    return outcome.error_in_exec is None


# Each payload would run DROP TABLE if {{q}} were pasted into the string, identifier or comment.
@pytest.mark.parametrize(
    "cell, payload, seen",
    [
        ("SELECT '{{q}}' AS seen", "'; DROP TABLE victim; --", {"seen": "{{q}}"}),
        ("SELECT E'{{q}}' AS seen", "'; DROP TABLE victim; --", {"seen": "{{q}}"}),
        ("SELECT $${{q}}$$ AS seen", "$$; DROP TABLE victim; --", {"seen": "{{q}}"}),
        ('SELECT 1 AS "{{q}}"', '"; DROP TABLE victim; --', {"{{q}}": 1}),
        ("SELECT 1 AS seen -- looking for {{q}}\n", "\n; DROP TABLE victim; --", {"seen": 1}),
        ("SELECT 1 AS seen /* {{q}} */", "*/; DROP TABLE victim; /*", {"seen": 1}),
    ],
    ids=["string", "escape string", "dollar string", "quoted identifier", "line comment", "block comment"],
)
def test_a_variable_inside_a_string_identifier_or_comment_stays_as_written(shell, cell, payload, seen):
    run(shell, "%%thanosql\nCREATE TABLE victim AS SELECT 1 AS x")
    shell.user_ns["q"] = payload
    outcome, printed = run(shell, "%%thanosql\n" + cell)
    assert outcome.error_in_exec is None, printed
    assert outcome.result.to_dict("records") == [seen]
    assert victim_exists(shell)
    assert substitute(cell, {"q": payload}) == cell


def test_a_variable_in_code_is_still_a_quoted_literal_next_to_one_inside_a_string(shell):
    shell.user_ns["q"] = "'; DROP TABLE victim; --"
    run(shell, "%%thanosql\nCREATE TABLE victim AS SELECT 1 AS x")
    outcome, _ = run(shell, "%%thanosql\nSELECT {{q}} AS value, '{{q}}' AS written -- {{q}}")
    assert outcome.result.to_dict("records") == [{"value": "'; DROP TABLE victim; --", "written": "{{q}}"}]
    assert victim_exists(shell)


def test_a_variable_in_options_becomes_an_escaped_string_literal():
    cell = "SEARCH IMAGE USING clip OPTIONS (search_by='text', search_input={{q}}) AS SELECT * FROM t"
    assert substitute(cell, {"q": "it's"}) == cell.replace("{{q}}", "'it''s'")


def test_a_variable_after_an_unterminated_quote_is_left_for_the_syntax_error(shell):
    shell.user_ns["q"] = "x'; DROP TABLE victim; --"
    run(shell, "%%thanosql\nCREATE TABLE victim AS SELECT 1 AS x")
    _, printed = run(shell, "%%thanosql\nSELECT 'abc {{q}}")
    assert "unterminated string" in printed and "{{q}}" in printed
    assert "Traceback" not in printed
    assert victim_exists(shell)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")])
def test_nan_and_infinity_are_a_clear_error_naming_the_variable(shell, value):
    shell.user_ns["ratio"] = value
    outcome, printed = run(shell, "%%thanosql\nSELECT {{ratio}} AS r")
    assert outcome.error_in_exec is not None
    assert "notebook variable 'ratio'" in printed and "cannot be written as a SQL literal" in printed
    assert "Hint:" in printed and "Traceback" not in printed


def test_nan_inside_a_list_is_refused_too():
    with pytest.raises(ThanoSQLError, match="variable 'embedding' is nan"):
        render_literal([0.5, math.nan], "embedding")


@pytest.mark.parametrize(
    "value, literal",
    [(np.int64(3), "3"), (np.float32(0.5), "0.5"), (np.float64(1.5), "1.5"), (np.bool_(True), "True")],
)
def test_numpy_scalars_are_written_as_plain_numbers_and_booleans(value, literal):
    assert render_literal(value) == literal


def test_numpy_scalars_work_in_a_cell(shell):
    shell.user_ns.update(k=np.int64(4), scale=np.float32(0.25))
    outcome, _ = run(shell, "%%thanosql\nSELECT {{k}} * {{scale}} AS product")
    assert outcome.result["product"].tolist() == [1.0]


def test_a_workspace_that_is_a_file_is_refused_and_the_old_session_keeps_working(shell, tmp_path):
    run(shell, "%%thanosql\nCREATE TABLE kept AS SELECT 41 AS x")
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("hello")
    outcome, printed = run(shell, f"%thanosql -w {not_a_folder} SELECT 1")
    assert outcome.error_in_exec is not None
    assert "is a file, not a folder" in printed and "Traceback" not in printed
    outcome, printed = run(shell, "%%thanosql\nSELECT x + 1 AS y FROM kept")
    assert outcome.result["y"].tolist() == [42], printed
    assert "Traceback" not in printed


def test_a_workspace_held_by_another_process_leaves_a_session_working(shell, tmp_path, monkeypatch):
    monkeypatch.setenv("THANOSQL_LOCK_TIMEOUT", "1")  # wait one second, not a minute, for the holder
    run(shell, "%%thanosql\nCREATE TABLE kept AS SELECT 41 AS x")
    busy = tmp_path / "busy"
    busy.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); input()",
         str(busy / "thanosql.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        _, printed = run(shell, f"%thanosql -w {busy} SELECT 1")
        assert "Traceback" not in printed
    finally:
        holder.communicate("\n", timeout=30)
    # Whether or not the switch succeeded, a session is open: the next cell runs.
    outcome, printed = run(shell, "%%thanosql\nSELECT 1 AS one")
    assert outcome.result["one"].tolist() == [1], printed


def test_a_lone_surrogate_in_a_cell_is_a_clear_error_at_its_place(shell):
    outcome, printed = run(shell, "%%thanosql\nSELECT 1;\nSELECT 'caf\udce9' AS word")
    assert outcome.error_in_exec is not None
    assert "Line 2, column 12: a lone surrogate character" in printed
    assert "Traceback" not in printed


def test_each_statement_of_a_cell_is_labelled_in_the_output(shell):
    _, printed = run(shell, "%%thanosql\nCREATE TABLE t AS SELECT 1 AS x;\nINSERT INTO t VALUES (2);\nSELECT 2 AS two")

    assert printed.splitlines()[:5] == [
        "[1/3] line 1: CREATE TABLE t AS SELECT 1 AS x",
        "Success (1 row)",
        "[2/3] line 2: INSERT INTO t VALUES (2)",
        "Success (1 row)",
        "[3/3] line 3: SELECT 2 AS two",
    ]


def test_a_null_shows_as_null_in_every_column_of_the_table(shell):
    outcome, _ = run(
        shell,
        "%%thanosql\nSELECT NULL AS n, NULL::INT AS i, NULL::VARCHAR AS s, NULL::DOUBLE AS d, NULL::TIMESTAMP AS t, "
        "NULL::FLOAT[2] AS e",
    )
    text, page = repr(outcome.result), outcome.result._repr_html_()  # what a notebook shows

    assert text.splitlines()[1].split() == ["0"] + ["NULL"] * 6
    assert page.count("<td><span class='thanosql-null'") == 6
    assert not {"None", "NaN", "NaT", "&lt;NA&gt;"} & set(re.findall(r"<td>([^<]*)</td>", page))
    assert outcome.result["d"].isna().all()  # the values stay pandas' own
