"""Names stay in their stores, replacements are atomic for every process, crashes leave nothing
behind, damaged models do not break the store, and a full disk is a clear error.

Crashes are real: a child process replacing a model is killed with SIGKILL at a chosen point (it
announces the point by writing a file, then waits to be killed), and a new session opens the
workspace after it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import thanosql
from thanosql import ModelError, PlanError, ThanoSQLError
from thanosql.disk import DiskFullError
from thanosql.models.store import ModelStore
from thanosql.stores import LOCK_FILE, check_name
from tiny_clip import make_images, save_tiny_checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_clip.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=5)


@pytest.fixture
def files(session, checkpoint):
    shutil.copy(checkpoint, session.workspace / "tiny.pt")
    shutil.copy(checkpoint.parent / "tiny_clip.json", session.workspace / "tiny_clip.json")
    make_images(session.workspace / "pics", 3, seed=2)
    session.execute("CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path FROM range(3) r(i)")
    return session


@pytest.fixture
def outside(workspace):
    """A folder beside the workspace that looks like a model, which no statement may touch."""
    folder = workspace.parent / "somewhere"
    folder.mkdir()
    (folder / "model.json").write_text(
        json.dumps({"name": "somewhere", "family": "clip", "arch": "x", "embedding_dim": 4})
    )
    (folder / "precious.txt").write_text("keep me")
    return folder


# -- names ---------------------------------------------------------------------------------------------

HOSTILE = ["./../../somewhere", "../somewhere", "/tmp/x", "a/b", "..", ".hidden", "a\\b", "tab\there", "nul\x00"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_that_is_a_path_is_refused(name):
    with pytest.raises(PlanError, match="is a name, not a path"):
        check_name(name, "model")


@pytest.mark.parametrize(
    "statement",
    [
        'DELETE MODEL "./../../somewhere"',
        'DELETE MODEL "../somewhere"',
        "UPLOAD MODEL \"./../../somewhere\" OPTIONS (model_config='tiny_clip.json', overwrite=True) FROM 'tiny.pt'",
        'CONVERT USING "./../../somewhere" AS SELECT * FROM pics',
        "SEARCH IMAGE USING \"../somewhere\" OPTIONS (search_by='text', search_input='x') "
        "AS SELECT *, [1, 0, 0, 0]::FLOAT[4] AS convert_result FROM pics",
        'BUILD MODEL "./../../somewhere" USING SimCLR OPTIONS (overwrite=True, max_epochs=1) AS SELECT * FROM pics',
        'FIT MODEL "../somewhere" USING "../somewhere" OPTIONS (overwrite=True) AS SELECT * FROM pics',
        "GET THANOSQL MODEL clip OPTIONS (model_name='../somewhere', overwrite=True, checkpoint='tiny.pt')",
    ],
)
def test_no_statement_reaches_a_model_outside_the_store(files, outside, statement):
    with pytest.raises(PlanError, match="is a name, not a path") as caught:
        files.execute(statement)
    assert "Traceback" not in caught.value.render()
    assert (outside / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in outside.parent.iterdir()) == ["somewhere", "workspace"]


def test_a_link_in_the_store_pointing_outside_is_refused(files, outside):
    store = files.workspace / "thanosql-model"
    store.mkdir(exist_ok=True)
    (store / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PlanError, match="outside the model store"):
        files.execute("DELETE MODEL linked")
    assert (outside / "precious.txt").exists()


# -- damaged models ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["{}", '{"name": "bad", "family": "clip"}', '{"name": "bad", "fam', "[1, 2]"])
def test_a_damaged_model_json_is_listed_as_damaged_and_can_be_deleted(files, content):
    files.execute("UPLOAD MODEL good OPTIONS (model_config='tiny_clip.json') FROM 'tiny.pt'")
    (files.model_dir / "bad").mkdir()
    (files.model_dir / "bad" / "model.json").write_text(content)
    listed = files.execute("LIST MODEL")
    assert listed["name"].tolist() == ["bad", "good"]
    assert listed["status"].tolist()[1] == "ok" and listed["status"].tolist()[0].startswith("damaged: ")
    with pytest.raises(ModelError, match="model 'bad' is damaged") as caught:
        files.execute("CONVERT USING bad AS SELECT * FROM pics")
    assert "DELETE MODEL bad" in caught.value.hint
    files.execute("DELETE MODEL bad")
    assert files.execute("LIST MODEL")["name"].tolist() == ["good"]


# -- crashes -------------------------------------------------------------------------------------------

REPLACE_MODEL = """
import os, shutil, sys, time
from pathlib import Path
import thanosql.stores as stores
from thanosql.models.store import ModelStore

root, point, signal_file, body = sys.argv[1:5]

def stop_here(name):
    if name == point:
        Path(signal_file).write_text("ready")
        while True:
            time.sleep(0.05)

real_replace, real_rmtree = os.replace, shutil.rmtree
calls = {"replace": 0}
def replace(source, target):
    calls["replace"] += 1
    stop_here(f"before-rename-{calls['replace']}")
    real_replace(source, target)
    stop_here(f"after-rename-{calls['replace']}")
def rmtree(path, *args, **kwargs):
    stop_here("removing-old")
    real_rmtree(path, *args, **kwargs)
stores.os.replace = replace
stores.shutil.rmtree = rmtree

store = ModelStore(Path(root))
with store.create("m", family="clip", arch="x", embedding_dim=4, overwrite=True, source=body) as folder:
    (folder / "weights.pt").write_bytes(body.encode() * 1000)
    stop_here("writing-weights")
stop_here("done")
"""

POINTS = ["writing-weights", "before-rename-1", "after-rename-1", "after-rename-2", "removing-old", "done"]


def kill_at(point: str, root: Path, tmp_path: Path, body: str) -> None:
    signal_file = tmp_path / f"{point}.ready"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(REPLACE_MODEL), str(root), point, str(signal_file), body],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not signal_file.exists():
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, f"the child never reached {point}"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()


@pytest.mark.parametrize("point", POINTS)
def test_a_model_replacement_killed_at_any_point_leaves_the_old_or_the_new_model_once(workspace, tmp_path, point):
    root = workspace / "thanosql-model"
    store = ModelStore(root)
    with store.create("m", family="clip", arch="x", embedding_dim=4, source="old") as folder:
        (folder / "weights.pt").write_bytes(b"old" * 1000)
    kill_at(point, root, tmp_path, "new")
    with thanosql.connect(workspace, notify=lambda _: None) as session:
        listed = session.execute("LIST MODEL")
        assert listed["name"].tolist() == ["m"] and listed["status"].tolist() == ["ok"]
        info = session.models.get("m")
        assert info.source in ("old", "new")
        assert (info.path / "weights.pt").read_bytes() == info.source.encode() * 1000
    assert sorted(p.name for p in root.iterdir()) == [LOCK_FILE, "m"]
    expected_new = point in ("after-rename-2", "removing-old", "done")
    assert info.source == ("new" if expected_new else "old")


def test_a_writer_still_at_work_is_not_tidied_away_by_another_session(workspace, tmp_path):
    root = workspace / "thanosql-model"
    signal_file = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(REPLACE_MODEL), str(root), "writing-weights", str(signal_file), "new"],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not signal_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with thanosql.connect(workspace, notify=lambda _: None):
            pass
        assert [p.name for p in root.iterdir() if p.name.endswith(".partial")] != []
    finally:
        child.kill()
        child.wait()


def test_an_upload_killed_while_its_weights_are_saved_leaves_nothing_after_a_reopen(files, tmp_path):
    code = """
        import sys, time, torch, thanosql
        real_save = torch.save
        def save(*args, **kwargs):
            real_save(*args, **kwargs)
            open(sys.argv[2], "w").write("ready")
            time.sleep(600)
        torch.save = save
        thanosql.connect(sys.argv[1], notify=lambda _: None).execute(
            "UPLOAD MODEL m OPTIONS (model_config='tiny_clip.json') FROM 'tiny.pt'")
    """
    signal_file = tmp_path / "saved"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(files.workspace), str(signal_file)], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not signal_file.exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    partial = [p for p in files.model_dir.iterdir() if p.name.endswith(".partial")]
    assert partial and sum(f.stat().st_size for f in partial[0].rglob("*")) > 0
    child.kill()
    child.wait()
    with thanosql.connect(files.workspace, notify=lambda _: None) as reopened:
        assert reopened.execute("LIST MODEL")["name"].tolist() == []
    assert sorted(p.name for p in files.model_dir.iterdir()) == [LOCK_FILE]


# -- a full disk -----------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB file system of its own (tmpfs; needs root, as CI and this machine have)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the disk holding ``folder`` until ``leave`` bytes are free."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as out:
        out.truncate(0)
        out.write(b"\0" * max(free - leave, 0))


def test_an_upload_on_a_full_disk_says_so_and_keeps_the_old_model(small_disk, checkpoint):
    with thanosql.connect(small_disk / "ws", offline=True, progress=False, notify=lambda _: None) as session:
        shutil.copy(checkpoint, session.workspace / "tiny.pt")
        shutil.copy(FIXTURE, session.workspace / "tiny_clip.json")
        session.execute("UPLOAD MODEL m OPTIONS (model_config='tiny_clip.json') FROM 'tiny.pt'")
        before = (session.model_dir / "m" / "model.json").read_text()
        fill(small_disk, leave=checkpoint.stat().st_size // 3)
        with pytest.raises(DiskFullError, match="the disk is full: writing model 'm' failed") as caught:
            session.execute("UPLOAD MODEL m OPTIONS (model_config='tiny_clip.json', overwrite=True) FROM 'tiny.pt'")
        assert "DELETE MODEL" in caught.value.hint
        assert (session.model_dir / "m" / "model.json").read_text() == before
        assert sorted(p.name for p in session.model_dir.iterdir()) == [LOCK_FILE, "m"]


def test_training_refuses_to_start_when_the_model_would_not_fit(small_disk):
    with thanosql.connect(small_disk / "ws", offline=True, progress=False, notify=lambda _: None) as session:
        make_images(session.workspace / "pics", 4, seed=1)
        session.execute("CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path FROM range(4) r(i)")
        started = time.monotonic()
        with pytest.raises(DiskFullError, match="not enough disk space for saving model 'simclr'"):
            session.execute("BUILD MODEL simclr USING SimCLR OPTIONS (max_epochs=50) AS SELECT * FROM pics")
        assert time.monotonic() - started < 30  # refused before 50 epochs, not after
        assert not (session.model_dir / "simclr").exists()


def test_a_table_write_on_a_full_disk_says_so_and_keeps_the_old_table(small_disk):
    with thanosql.connect(small_disk / "ws", offline=True, progress=False, notify=lambda _: None) as session:
        session.execute("CREATE TABLE t AS SELECT range AS x FROM range(1000)")
        fill(small_disk, leave=64 * 1024)
        with pytest.raises(ThanoSQLError, match="the disk is full") as caught:
            session.execute(
                "CREATE OR REPLACE TABLE t AS SELECT range AS x, repeat('y', 100) AS pad FROM range(200000)"
            )
        assert "Traceback" not in caught.value.render()
        (small_disk / "filler").unlink()
        assert session.execute("SELECT count(*) AS n FROM t")["n"].tolist() == [1000]


# -- Ctrl-C ------------------------------------------------------------------------------------------------


def test_ctrl_c_during_a_long_write_says_so_in_one_line_and_keeps_the_old_table(session):
    session.execute("CREATE TABLE t AS SELECT 1 AS x")
    previous = signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(ThanoSQLError, match="interrupted; the statement changed nothing") as caught:
            session.execute("CREATE OR REPLACE TABLE t AS SELECT range AS x FROM range(5000000000) WHERE range % 7 = 1")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert caught.value.render().count("\n") <= 3  # the line, the statement, the caret
    assert session.execute("SELECT x FROM t")["x"].tolist() == [1]


def test_write_table_on_a_full_disk_says_so_and_keeps_the_old_table(small_disk):
    import pyarrow as pa

    with thanosql.connect(small_disk / "ws", offline=True, progress=False, notify=lambda _: None) as session:
        session.execute("CREATE TABLE t AS SELECT range AS x FROM range(10)")
        fill(small_disk, leave=64 * 1024)
        rows = pa.table({"x": list(range(400_000)), "pad": ["y" * 80] * 400_000})
        with pytest.raises(DiskFullError, match="the disk is full: writing table 't' failed"):
            session.write_table("t", rows, "replace")  # what CONVERT ... table_name does
        (small_disk / "filler").unlink()
        assert session.execute("SELECT count(*) AS n FROM t")["n"].tolist() == [10]
