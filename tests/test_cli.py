"""The `thanosql` command: results on stdout, messages on stderr, exit 1 on a user error."""

from __future__ import annotations

import json
import subprocess
import sys

import thanosql.cli
import thanosql.session
from thanosql.cli import main
from thanosql.errors import Interrupted


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


def latin1_script(tmp_path):
    script = tmp_path / "latin1.sql"
    script.write_bytes("SELECT 1;\nSELECT 'café' AS word;\n".encode("latin-1"))
    return script


def test_a_sql_file_that_is_not_utf8_is_named_with_the_place_of_its_bad_byte(workspace, tmp_path, capsys):
    script = latin1_script(tmp_path)
    assert main(["-w", str(workspace), "--quiet", str(script)]) == 1
    err = capsys.readouterr().err
    assert f"{script} must be UTF-8 text, but byte 0xe9 at offset 21 (line 2) is not valid UTF-8" in err
    assert "Traceback" not in err


def test_a_workspace_that_is_a_file_exits_1_with_a_clear_message(tmp_path, capsys):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("hello")
    assert main(["-w", str(not_a_folder), "--quiet", "-e", "SELECT 1"]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err
    assert "Traceback" not in err


def test_ctrl_c_prints_one_line_and_exits_130(workspace, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(thanosql.cli, "connect", interrupt)
    assert main(["-w", str(workspace), "--quiet", "-e", "SELECT 1"]) == 130
    assert capsys.readouterr().err == "thanosql: interrupted\n"


def test_a_statement_stopped_by_ctrl_c_prints_one_line_and_exits_130(workspace, monkeypatch, capsys):
    def interrupted_run(session, text):
        raise Interrupted("interrupted; the statement changed nothing")
        yield

    monkeypatch.setattr(thanosql.session.Session, "run", interrupted_run)
    assert main(["-w", str(workspace), "--quiet", "-e", "SELECT 1"]) == 130
    assert capsys.readouterr().err == "thanosql: interrupted; the statement changed nothing (in -e 1)\n"


def test_the_command_shows_bad_input_without_a_traceback(workspace, tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("hello")
    for arguments in ([str(latin1_script(tmp_path))], ["-w", str(not_a_folder), "-e", "SELECT 1"]):
        finished = subprocess.run(
            [sys.executable, "-m", "thanosql.cli", "-w", str(workspace), "--quiet", *arguments],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert finished.returncode == 1, finished.stderr
        assert "thanosql: error in" in finished.stderr
        assert "Traceback" not in finished.stderr


def test_nulls_print_as_null_whatever_their_type(workspace, capsys):
    code = main(["-w", str(workspace), "-e", "SELECT 1 AS i, 'a' AS s, 1.5 AS d UNION ALL SELECT NULL, NULL, NULL"])

    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1].split() == ["NULL", "NULL", "NULL"]
