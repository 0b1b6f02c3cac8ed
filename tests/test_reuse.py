"""Incremental CONVERT: images embedded before with the same model weights are reused, and the
answer is that of a fresh run after appends, images rewritten in place, deletes, a restart and a
model overwritten with new weights; the kept embeddings go with the model and stay bounded.

"That of a fresh run": a reused embedding is the stored float32 row itself, bit for bit; a newly
embedded image may sit in a smaller batch than in the fresh run, and batching changes a float32
encoder's rounding (CONVERT with two batch sizes differs the same way), so those are compared
within SAME_RUN."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import thanosql
from thanosql.reuse import FOLDER
from tiny_clip import captioned_pictures, save_tiny_checkpoint, upload_tiny

# What two batch sizes of one CONVERT differ by (tests/test_clip.py compares them the same way).
SAME_RUN = 1e-6
CONVERT = "CONVERT USING tiny OPTIONS (image_col='image_path') AS SELECT * FROM pics ORDER BY n"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return [save_tiny_checkpoint(tmp_path_factory.mktemp(f"tiny{seed}"), seed=seed) for seed in (1, 2)]


@pytest.fixture
def tiny(session, checkpoints):
    upload_tiny(session, checkpoints[0])
    captioned_pictures(session, 8)
    return session


def embeddings(frame):
    return np.stack(frame["convert_result"].to_numpy())


def fresh(workspace):
    """The same CONVERT with nothing kept or reused."""
    with thanosql.connect(workspace, offline=True, progress=False, reuse_bytes=0, notify=lambda _: None) as other:
        return embeddings(other.execute(CONVERT))


def same_as_fresh(answer, workspace):
    np.testing.assert_allclose(answer, fresh(workspace), atol=SAME_RUN, rtol=0)


def reused(notices) -> list[str]:
    return [notice for notice in notices if "reused the embeddings" in str(notice)]


def test_a_second_convert_reuses_every_image_and_answers_as_a_fresh_run(tiny, notices):
    first = embeddings(tiny.execute(CONVERT))
    assert not reused(notices)
    second = embeddings(tiny.execute(CONVERT))
    assert reused(notices)[-1].startswith("CONVERT reused the embeddings of 8 of 8 images")
    np.testing.assert_array_equal(second, first)
    same_as_fresh(second, tiny.workspace)


def test_after_an_append_only_the_new_images_are_embedded(tiny, notices):
    tiny.execute(CONVERT)
    captioned_pictures(tiny, 12)  # the first 8 files are rewritten with the same pixels: new times, embedded again
    tiny.execute(CONVERT)
    make_more = tiny.workspace / "pics"
    for index in range(12, 15):
        shutil.copy(make_more / f"{index - 12}.jpg", make_more / f"{index}.jpg")
    tiny.execute("INSERT INTO pics (image_path, n) SELECT 'pics/' || i || '.jpg', i FROM range(12, 15) r(i)")
    after = embeddings(tiny.execute(CONVERT))
    assert reused(notices)[-1].startswith("CONVERT reused the embeddings of 12 of 15 images")
    assert reused(notices)[-1].endswith("and embedded 3")
    same_as_fresh(after, tiny.workspace)


def test_an_image_rewritten_in_place_is_embedded_again(tiny, notices):
    before = embeddings(tiny.execute(CONVERT))
    target = tiny.workspace / "pics" / "2.jpg"
    shutil.copy(tiny.workspace / "pics" / "5.jpg", target)
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    after = embeddings(tiny.execute(CONVERT))
    assert reused(notices)[-1].startswith("CONVERT reused the embeddings of 7 of 8 images")
    np.testing.assert_allclose(after[2], before[5], atol=SAME_RUN, rtol=0)
    same_as_fresh(after, tiny.workspace)


def test_deleted_rows_leave_the_rest_reused_and_exact(tiny, notices):
    tiny.execute(CONVERT)
    tiny.execute("DELETE FROM pics WHERE n % 2 = 0")
    after = embeddings(tiny.execute(CONVERT))
    assert reused(notices)[-1].startswith("CONVERT reused the embeddings of 4 of 4 images")
    same_as_fresh(after, tiny.workspace)


def test_kept_embeddings_survive_a_restart(tiny, notices):
    tiny.execute(CONVERT)
    seen = []
    with thanosql.connect(tiny.workspace, offline=True, progress=False, notify=seen.append) as restarted:
        again = embeddings(restarted.execute(CONVERT))
    assert reused(seen)[-1].startswith("CONVERT reused the embeddings of 8 of 8 images")
    same_as_fresh(again, tiny.workspace)


def test_a_model_overwritten_with_new_weights_reuses_nothing_and_drops_the_old_ones(tiny, notices, checkpoints):
    old = embeddings(tiny.execute(CONVERT))
    upload_tiny(tiny, checkpoints[1], overwrite=True)
    count = len(reused(notices))
    new = embeddings(tiny.execute(CONVERT))
    assert len(reused(notices)) == count  # nothing reused
    assert not np.allclose(new, old)
    same_as_fresh(new, tiny.workspace)
    assert len(list((tiny.workspace / FOLDER / "tiny").glob("*.npz"))) == 1  # the old weights' shard is gone


def test_delete_model_drops_its_kept_embeddings(tiny):
    tiny.execute(CONVERT)
    assert (tiny.workspace / FOLDER / "tiny").is_dir()
    tiny.execute("DELETE MODEL tiny")
    assert not (tiny.workspace / FOLDER / "tiny").exists()


def test_kept_embeddings_stay_within_their_bound_oldest_first(workspace, checkpoints):
    with thanosql.connect(workspace, offline=True, progress=False, notify=lambda _: None) as session:
        upload_tiny(session, checkpoints[0])
        captioned_pictures(session, 8)
        session.execute(CONVERT)
        shard = next((workspace / FOLDER / "tiny").glob("*.npz"))
        captioned_pictures(session, 8)  # rewritten: new times, a second shard
    with thanosql.connect(
        workspace, offline=True, progress=False, reuse_bytes=int(shard.stat().st_size * 1.5), notify=lambda _: None
    ) as bounded:
        bounded.execute(CONVERT)
    left = list((workspace / FOLDER / "tiny").glob("*.npz"))
    assert len(left) == 1 and shard not in left


def test_a_negative_bound_is_a_clear_error(workspace):
    with pytest.raises(thanosql.ThanoSQLError, match="reuse_bytes must be a number of bytes"):
        thanosql.connect(workspace, reuse_bytes=-1)


# A CONVERT in a process of its own that kills itself (-9) once the shard of kept embeddings is
# written but before it is put in place: what a crash between those two steps leaves.
KILLED_WHILE_KEEPING = """
import os, signal, sys
import thanosql
from thanosql import reuse

def replace_then_never(source, target):
    os.kill(os.getpid(), signal.SIGKILL)

reuse.os.replace = replace_then_never
with thanosql.connect(sys.argv[1], offline=True, progress=False, notify=lambda _: None) as session:
    session.execute(sys.argv[2])
"""


def test_a_convert_killed_while_keeping_its_embeddings_leaves_nothing_reused_and_its_leftover_is_removed(tiny, notices):
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_KEEPING, str(tiny.workspace), CONVERT], capture_output=True, timeout=120
    )
    assert done.returncode == -9
    (partial,) = (tiny.workspace / FOLDER).rglob("*.partial")
    answer = embeddings(tiny.execute(CONVERT))
    assert not any("reused the embeddings of 8" in str(n) for n in notices)  # the cut shard is never read
    same_as_fresh(answer, tiny.workspace)
    old = partial.stat().st_mtime - 120  # a killed writer's leftover, older than a minute
    os.utime(partial, (old, old))
    tiny.execute(CONVERT)
    assert not partial.exists()
