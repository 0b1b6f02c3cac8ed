"""The `thanosql` command: results on stdout, messages on stderr, exit 1 on a user error."""

from __future__ import annotations

import json

from thanosql.cli import main


def test_execute_prints_rows_as_a_table(workspace, capsys):
    assert main(["-w", str(workspace), "--quiet", "-e", "SELECT 1 AS one, 'a' AS letter"]) == 0
    out = capsys.readouterr().out
    assert "one" in out and "letter" in out and "a" in out


def test_json_and_csv_formats(workspace, capsys):
    main(["-w", str(workspace), "--quiet", "--format", "json", "-e", "SELECT 1 AS one"])
    assert json.loads(capsys.readouterr().out) == [{"one": 1}]
    main(["-w", str(workspace), "--quiet", "--format", "csv", "-e", "SELECT 1 AS one"])
    assert capsys.readouterr().out.splitlines() == ["one", "1"]


def test_a_sql_file_runs_every_statement_and_prints_each_result(workspace, tmp_path, capsys):
    script = tmp_path / "script.sql"
    script.write_text("CREATE TABLE t AS SELECT 5 AS x;\nSELECT x FROM t;\nSELECT x + 1 AS y FROM t;\n")
    assert main(["-w", str(workspace), "--quiet", "--format", "csv", str(script)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["x", "5", "y", "6"]
    assert "Success" in captured.err


def test_a_user_error_exits_1_with_the_message_and_no_traceback(workspace, capsys):
    assert main(["-w", str(workspace), "--quiet", "-e", "SELECT * FROM nowhere"]) == 1
    err = capsys.readouterr().err
    assert "nowhere" in err
    assert "Traceback" not in err


def test_html_page_collects_the_results(workspace, tmp_path, capsys):
    page = tmp_path / "page.html"
    assert main(["-w", str(workspace), "--quiet", "--html", str(page), "-e", "SELECT 'hello' AS greeting"]) == 0
    assert "hello" in page.read_text()
