"""One workspace, many hands: processes (notebooks, the command line, scripts) and threads share a
workspace at once; each sees what the others wrote, none waits for long, none gets another's rows.

Processes here are real ones (``sys.executable`` running thanosql), started on loopback-free local
files only, each bounded in count and time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import thanosql
from thanosql import ThanoSQLError
from thanosql.database import LINGER_S, DatabaseBusy
from thanosql.search import search

CHILD_TIMEOUT_S = 120


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Start ``code`` in a new Python process (its stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=CHILD_TIMEOUT_S)
    assert process.returncode == 0, err
    return out, err


def hold_database(workspace: Path, seconds: float, then: str = "") -> subprocess.Popen:
    """A plain DuckDB process holding the workspace database for ``seconds`` (then running the
    SQL ``then``), started and holding when this returns."""
    holder = python(
        """
        import duckdb, sys, time
        connection = duckdb.connect(sys.argv[1])
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
        if sys.argv[3]:
            connection.execute(sys.argv[3])
        connection.close()
        """,
        str(workspace / "thanosql.duckdb"),
        str(seconds),
        then,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "thanosql.cli", "-w", str(workspace), "--quiet", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)


# -- processes ---------------------------------------------------------------------------------------


def test_the_command_line_runs_while_a_notebook_session_is_open_and_sees_its_writes(session, workspace):
    session.execute("CREATE TABLE t AS SELECT 1 AS x")
    shown = cli(workspace, "--format", "csv", "-e", "SELECT count(*) AS n FROM t")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["n", "1"] and "Traceback" not in shown.stderr
    assert cli(workspace, "-e", "INSERT INTO t VALUES (2)").returncode == 0
    assert session.execute("SELECT count(*) AS n FROM t")["n"].tolist() == [2]


def test_a_second_session_on_the_same_workspace_opens_and_both_keep_working(session, workspace):
    session.execute("CREATE TABLE t AS SELECT 1 AS x")
    with thanosql.connect(workspace, progress=False, notify=lambda _: None) as other:
        other.execute("INSERT INTO t VALUES (2)")
        assert session.execute("SELECT sum(x) AS s FROM t")["s"].tolist() == [3]
        session.execute("INSERT INTO t VALUES (3)")
        assert other.execute("SELECT sum(x) AS s FROM t")["s"].tolist() == [6]


def test_two_writer_processes_interleave_100_inserts_each_without_losing_any(session, workspace):
    session.execute("CREATE TABLE t (writer INTEGER, i INTEGER)")
    code = """
        import sys, thanosql
        writer = int(sys.argv[2])
        with thanosql.connect(sys.argv[1], progress=False, notify=lambda _: None) as s:
            for i in range(100):
                s.execute(f"INSERT INTO t VALUES ({writer}, {i})")
    """
    writers = [python(code, str(workspace), str(k)) for k in (1, 2)]
    for writer in writers:
        finish(writer)
    counts = session.execute("SELECT writer, count(DISTINCT i) AS n FROM t GROUP BY writer ORDER BY writer")
    assert counts.to_dict("records") == [{"writer": 1, "n": 100}, {"writer": 2, "n": 100}]


def test_a_statement_waits_for_a_process_that_holds_the_database_and_says_so_once(workspace, notices):
    holder = hold_database(workspace, 2.5, then="CREATE TABLE written_by_holder AS SELECT 1 AS x")
    with thanosql.connect(workspace, progress=False, notify=notices.append) as session:
        frame = session.execute("SELECT count(*) AS n FROM written_by_holder")
    finish(holder)
    assert frame["n"].tolist() == [1]
    waits = [n for n in notices if isinstance(n, str) and n.startswith("waiting for the workspace database")]
    assert len(waits) == 1 and f"PID {holder.pid}" in waits[0]


def test_a_database_held_past_the_timeout_is_a_thanosql_error_naming_the_holder(workspace):
    holder = hold_database(workspace, seconds=60)
    try:
        with thanosql.connect(workspace, lock_timeout=0.5, notify=lambda _: None) as session:
            with pytest.raises(DatabaseBusy) as caught:
                session.execute("SELECT 1")
        assert f"PID {holder.pid}" in caught.value.message and "lock_timeout" in caught.value.hint
    finally:
        holder.kill()
        holder.wait()


def test_the_command_line_waits_for_a_busy_workspace_without_a_traceback(workspace):
    holder = hold_database(workspace, seconds=60)
    try:
        shown = subprocess.run(
            [sys.executable, "-m", "thanosql.cli", "-w", str(workspace), "-e", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            env={**os.environ, "THANOSQL_LOCK_TIMEOUT": "1.5"},
        )
    finally:
        holder.kill()
        holder.wait()
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert f"held by PID {holder.pid}" in shown.stderr and f"in use by PID {holder.pid}" in shown.stderr


def test_a_transaction_spread_over_cells_keeps_working_and_others_see_it_after_commit(session, workspace):
    session.execute("CREATE TABLE t AS SELECT 1 AS x")
    session.execute("BEGIN TRANSACTION")
    session.execute("INSERT INTO t VALUES (2)")
    assert session.execute("SELECT count(*) AS n FROM t")["n"].tolist() == [2]
    session.execute("COMMIT")
    assert not session.database.pinned
    shown = cli(workspace, "--format", "csv", "-e", "SELECT count(*) AS n FROM t")
    assert shown.stdout.split() == ["n", "2"]


def test_a_rolled_back_transaction_leaves_nothing_and_releases_the_database(session, workspace):
    session.execute("CREATE TABLE t AS SELECT 1 AS x")
    session.execute("BEGIN")
    session.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(ThanoSQLError):
        session.execute("SELECT * FROM no_such_table")
    session.execute("ROLLBACK")
    assert not session.database.pinned
    assert cli(workspace, "--format", "csv", "-e", "SELECT count(*) AS n FROM t").stdout.split() == ["n", "1"]


def test_settings_and_temporary_tables_survive_between_cells(session):
    session.execute("SET threads = 1")
    session.execute("CREATE TEMP TABLE scratch AS SELECT 42 AS answer")
    assert session.execute("SELECT current_setting('threads') AS t")["t"].tolist() == [1]
    assert session.execute("SELECT answer FROM scratch")["answer"].tolist() == [42]
    session.execute("DROP TABLE scratch")
    assert not session.database.pinned


# -- search sees every writer --------------------------------------------------------------------------


def make_embeddings(session, rows: int = 6000, dim: int = 16, seed: int = 3) -> np.ndarray:
    matrix = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)
    session.write_table("incoming", pa.table({"id": np.arange(rows), "emb": column}))
    session.execute(f"CREATE TABLE t AS SELECT id, emb::FLOAT[{dim}] AS emb FROM incoming")
    return matrix


def best(session, query) -> int:
    return search(session, "SELECT * FROM t", "emb", query, top_k=1).rows.column("id")[0].as_py()


def test_search_sees_an_embedding_another_session_of_the_process_updated(session, workspace):
    matrix = make_embeddings(session)
    query = matrix[10]
    assert best(session, query) == 10
    with thanosql.connect(workspace, notify=lambda _: None) as other:
        other.execute(f"UPDATE t SET emb = {query.tolist()}::FLOAT[16] WHERE id = 4321")
        other.execute(f"UPDATE t SET emb = {(-query).tolist()}::FLOAT[16] WHERE id = 10")
    assert best(session, query) == 4321


def test_search_sees_an_embedding_another_process_updated(session, workspace):
    matrix = make_embeddings(session)
    query = matrix[10]
    assert best(session, query) == 10
    finish(
        python(
            """
        import sys, thanosql
        with thanosql.connect(sys.argv[1], notify=lambda _: None) as s:
            s.execute("UPDATE t SET emb = (SELECT emb FROM t WHERE id = 10) WHERE id = 77")
            s.execute("UPDATE t SET emb = list_transform(emb, lambda x: -x)::FLOAT[16] WHERE id = 10")
        """,
            str(workspace),
        )
    )
    assert best(session, query) == 77


def test_an_index_is_kept_while_nobody_writes(session):
    matrix = make_embeddings(session)
    best(session, matrix[5])
    (index,) = session.caches.indexes.indexes()
    time.sleep(0.3)  # past the racy window of the files' modification times
    session.execute("SELECT count(*) FROM t")
    assert best(session, matrix[6]) == 6
    assert session.caches.indexes.indexes() == [index]


# -- threads ---------------------------------------------------------------------------------------------


def run_threads(work, count: int = 4) -> list:
    """Run ``work(k)`` in ``count`` threads at once; return what each raised (None if nothing)."""
    errors: list = [None] * count
    start = threading.Barrier(count)

    def body(k):
        start.wait()
        try:
            work(k)
        except BaseException as exc:  # collected for the assertion
            errors[k] = exc

    threads = [threading.Thread(target=body, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CHILD_TIMEOUT_S)
    return errors


def test_four_threads_on_one_session_each_get_their_own_rows(session):
    wrong: list = []

    def work(k):
        for i in range(40):
            frame = session.execute(f"SELECT {k} AS k, {i} AS i, range AS r FROM range({k + 1})")
            if frame is None or frame["k"].tolist() != [k] * (k + 1) or set(frame["i"]) != {i}:
                wrong.append((k, i, None if frame is None else frame.to_dict("list")))
            nested = session.execute(f"SELECT {k} AS k, count(*) AS n FROM (LIST TABLE)")
            if nested is None or nested["k"].tolist() != [k]:
                wrong.append((k, i, "nested"))

    assert run_threads(work) == [None] * 4
    assert wrong == []


def test_four_threads_writing_and_searching_one_session_get_answers_or_thanosql_errors(session):
    matrix = make_embeddings(session)
    session.execute("CREATE TABLE log (k INTEGER, i INTEGER)")

    def work(k):
        for i in range(15):
            session.execute(f"INSERT INTO log VALUES ({k}, {i})")
            assert best(session, matrix[100 * k + i]) == 100 * k + i

    errors = run_threads(work)
    assert all(error is None or isinstance(error, ThanoSQLError) for error in errors), errors
    assert errors == [None] * 4
    assert session.execute("SELECT count(*) AS n FROM log")["n"].tolist() == [60]


# -- switching workspaces ----------------------------------------------------------------------------------


def test_a_failed_switch_to_a_file_leaves_the_session_on_its_workspace(session, tmp_path):
    session.execute("CREATE TABLE t AS SELECT 1 AS x")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(ThanoSQLError, match="is a file, not a folder"):
        session.configure(workspace=not_a_folder)
    assert session.execute("SELECT x FROM t")["x"].tolist() == [1]


def test_a_workspace_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ThanoSQLError, match="is a file, not a folder"):
        thanosql.connect(path)


def test_the_database_file_is_let_go_soon_after_the_last_statement(session, workspace):
    session.execute("CREATE TABLE t AS SELECT 1 AS x")
    time.sleep(LINGER_S + 0.25)
    # A plain DuckDB process, which does not wait, can open the file: nothing of ours holds it.
    finish(
        python(
            """
        import duckdb, sys
        assert duckdb.connect(sys.argv[1]).execute("SELECT count(*) FROM t").fetchall() == [(1,)]
        """,
            str(workspace / "thanosql.duckdb"),
        )
    )


# -- while a process trains ----------------------------------------------------------------------------


def test_other_processes_run_and_see_each_others_writes_while_one_trains(session, workspace):
    from tiny_clip import make_images

    make_images(workspace / "pics", 96, seed=4)
    session.execute("CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path FROM range(96) r(i)")
    session.execute("CREATE TABLE log (who VARCHAR, i INTEGER)")
    trainer = python(
        """
        import sys, thanosql
        with thanosql.connect(sys.argv[1], progress=False, notify=lambda _: None) as s:
            s.execute("BUILD MODEL m USING SimCLR OPTIONS (max_epochs=4, batch_size=16) AS SELECT * FROM pics")
        """,
        str(workspace),
    )
    waits, during = [], 0
    i = 0
    while trainer.poll() is None and i < 40:
        started = time.monotonic()
        shown = cli(
            workspace,
            "--format",
            "csv",
            "-e",
            f"INSERT INTO log VALUES ('cli', {i})",
            "-e",
            "SELECT count(*) AS n FROM log WHERE who = 'notebook'",
        )
        session.execute(f"INSERT INTO log VALUES ('notebook', {i})")
        seen = session.execute("SELECT count(*) AS n FROM log WHERE who = 'cli'")["n"].tolist()
        waits.append(time.monotonic() - started)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.split()[-1] == str(i) and seen == [i + 1]  # each sees the other's rows
        during += trainer.poll() is None
        i += 1
    finish(trainer)
    assert during >= 2, "training ended before the others could run beside it"
    assert max(waits) < 10  # a command-line start (~1-2 s) and two statements, never the training
    assert session.execute("SELECT name FROM (LIST MODEL)")["name"].tolist() == ["m"]


def test_four_threads_convert_and_search_with_one_model_as_one_thread_would(session, tmp_path):
    from tiny_clip import make_images, save_tiny_checkpoint, upload_tiny

    checkpoint = save_tiny_checkpoint(tmp_path, seed=7)
    upload_tiny(session, checkpoint)
    make_images(session.workspace / "pics", 8, seed=2)
    session.execute("CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path FROM range(8) r(i)")
    convert = "CONVERT USING tiny OPTIONS (batch_size=4) AS SELECT * FROM pics WHERE {k} >= 0"
    search_ = (
        "SELECT image_path, search_result FROM (SEARCH IMAGE USING tiny OPTIONS (search_by='text', "
        "search_input='picture {k}', top_k=3) AS (CONVERT USING tiny AS SELECT * FROM pics))"
    )
    alone = {k: (session.execute(convert.format(k=k)), session.execute(search_.format(k=k))) for k in range(4)}
    seen: dict = {}

    def work(k):
        for _ in range(3):
            seen.setdefault(k, []).append((session.execute(convert.format(k=k)), session.execute(search_.format(k=k))))

    assert run_threads(work) == [None] * 4
    for k, results in seen.items():
        for converted, found in results:
            assert converted["image_path"].tolist() == alone[k][0]["image_path"].tolist()
            np.testing.assert_allclose(
                np.stack(converted["convert_result"]), np.stack(alone[k][0]["convert_result"]), atol=1e-5
            )
            assert found["image_path"].tolist() == alone[k][1]["image_path"].tolist()


def test_a_script_that_never_closes_its_session_exits_cleanly_and_frees_the_database(workspace):
    script = python(
        """
        import sys, thanosql
        session = thanosql.connect(sys.argv[1], notify=lambda _: None)
        session.execute("CREATE TABLE t AS SELECT 1 AS x")
        print(session.describe("SELECT * FROM t").columns)
        """,
        str(workspace),
    )
    out, err = finish(script)
    assert out.strip() == "['x']" and err == ""  # no warnings from DuckDB's bindings at exit
    finish(
        python(
            """
        import duckdb, sys
        assert duckdb.connect(sys.argv[1]).execute("SELECT x FROM t").fetchall() == [(1,)]
        """,
            str(workspace / "thanosql.duckdb"),
        )
    )
