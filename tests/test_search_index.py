"""The search index kept in the workspace (search/stored.py): a new process reads it instead of
building it, its answers are the exact ones, a write by any process is never answered from a
stale index, and a damaged index or one a killed writer left is detected, built again and tidied.

Processes here are real ones (``sys.executable`` running thanosql), each bounded in time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import thanosql
from thanosql.search import index as index_module
from thanosql.search import search
from thanosql.search.exact import exact_scores, rank, to_matrix
from thanosql.search.stored import INDEX_FOLDER, MANIFEST_FILE

CHILD_TIMEOUT_S = 120
ROWS, DIM = 5000, 32

# A process that searches t twice for the query saved in argv[2] and prints what it found. With
# argv[3] == 'forbid' it fails if it builds an index; argv[4] is SQL it runs first; with argv[5]
# == 'pack' large-index packing starts at any size (and it searches again once the index it read
# is packed); with argv[6] == 'die', it kills itself (-9)
# after writing three array files of the index it saves.
CHILD = """
import json, os, signal, sys, time
import numpy as np
import thanosql
from thanosql.search import engine, search
from thanosql.search import index as index_module

workspace, query_file, build, before, pack, die = sys.argv[1:7]
if build == "forbid":
    def forbidden(*args, **kwargs):
        raise AssertionError("this process built the index")
    engine._read_index = forbidden
if pack == "pack":
    index_module.PACK_MIN_BYTES = 0
if die == "die":
    saved, written = np.save, []
    def save_then_die(*args, **kwargs):
        saved(*args, **kwargs)
        written.append(1)
        if len(written) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    np.save = save_then_die
query = np.load(query_file)
with thanosql.connect(workspace, notify=lambda _: None) as session:
    if before:
        session.execute(before)
    first = search(session, "SELECT * FROM t", "emb", query, top_k=10)
    again = search(session, "SELECT * FROM t", "emb", query, top_k=10)
    (index,) = engine.Source.of(session).indexes.indexes()
    if pack == "pack":  # a loaded index is packed in the background: wait for it, search again
        for _ in range(300):
            if index.packed is not None:
                break
            time.sleep(0.05)
        again = search(session, "SELECT * FROM t", "emb", query, top_k=10)
    print(json.dumps({
        "ids": first.rows.column("id").to_pylist(),
        "ids_again": again.rows.column("id").to_pylist(),
        "scores": first.scores.tolist(),
        "from": [first.index_from, again.index_from],
        "packed": index.packed is not None,
    }))
"""


def child(workspace: Path, query: np.ndarray, *, build="allow", before="", pack="", die="") -> subprocess.Popen:
    """Start CHILD on ``workspace`` (see its comment for the switches)."""
    query_file = workspace.parent / "query.npy"
    np.save(query_file, query)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(workspace), str(query_file), build, before, pack, die],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def answer_of(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=CHILD_TIMEOUT_S)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def make_table(session, rows: int = ROWS, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), DIM)
    session.write_table("incoming", pa.table({"id": np.arange(rows), "emb": column}))
    session.execute(f"CREATE OR REPLACE TABLE t AS SELECT id, emb::FLOAT[{DIM}] AS emb FROM incoming")
    session.execute("DROP TABLE incoming")
    return matrix


def exact_ids(session, query: np.ndarray, top_k: int = 10) -> list[int]:
    """The answer by definition, from the table as it is now: float64 cosines of every row."""
    table = session.query("SELECT id, emb FROM t")
    matrix, present = to_matrix(table.column("emb"), "emb")
    order = rank(exact_scores(matrix, present, query), top_k)
    return table.column("id").to_numpy()[order].tolist()


def searched(session, query: np.ndarray):
    return search(session, "SELECT * FROM t", "emb", query, top_k=10)


def ids(ranking) -> list[int]:
    return ranking.rows.column("id").to_pylist()


def index_folders(workspace: Path) -> list[Path]:
    root = workspace / INDEX_FOLDER
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def the_index(workspace: Path) -> Path:
    (folder,) = [p for p in index_folders(workspace) if not p.name.startswith(".")]
    return folder


@pytest.fixture
def query():
    return np.random.default_rng(7).standard_normal(DIM).astype(np.float32)


# -- a new process reads the index ---------------------------------------------------------------------


def test_a_new_process_reads_the_saved_index_and_never_builds_it(session, workspace, query):
    make_table(session)
    ranking = searched(session, query)
    assert ranking.index_from == "built"
    folder = the_index(workspace)
    assert {p.name for p in folder.iterdir()} >= {MANIFEST_FILE, "rowids.npy", "codes.npy", "fine_codes.npy"}
    found = answer_of(child(workspace, query, build="forbid"))
    assert found["from"] == ["workspace", "memory"]
    assert found["ids"] == ids(ranking) == exact_ids(session, query)
    assert found["scores"] == ranking.scores.tolist()


def test_a_packed_index_is_read_back_and_packed_again_with_the_same_answer(session, workspace, query, monkeypatch):
    monkeypatch.setattr(index_module, "PACK_MIN_BYTES", 0)  # in this process only; the child does the same
    make_table(session)
    ranking = searched(session, query)
    found = answer_of(child(workspace, query, build="forbid", pack="pack"))
    assert found["from"] == ["workspace", "memory"]
    assert found["packed"] == (session.caches.indexes.indexes()[0].packed is not None)
    assert found["ids"] == found["ids_again"] == ids(ranking) == exact_ids(session, query)


def test_two_processes_wanting_the_index_at_once_build_it_once(session, workspace, query):
    make_table(session)
    session.database.close()  # let the children have the file
    answers = [answer_of(process) for process in [child(workspace, query), child(workspace, query)]]
    assert sorted(answer["from"][0] for answer in answers) == ["built", "workspace"]
    assert answers[0]["ids"] == answers[1]["ids"] == exact_ids(session, query)
    assert len(index_folders(workspace)) == 1


# -- writes by another process -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        "INSERT INTO t SELECT 100000 + i, {query}::FLOAT[{dim}] FROM range(3) r(i)",
        "UPDATE t SET emb = {query}::FLOAT[{dim}] WHERE id IN (17, 4000)",
        "DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY array_cosine_similarity(emb, {query}::FLOAT[{dim}]) "
        "DESC LIMIT 4)",
    ],
    ids=["insert", "update", "delete"],
)
def test_after_a_write_by_another_process_every_answer_is_the_exact_new_one(session, workspace, query, write):
    make_table(session)
    before = exact_ids(session, query)
    assert ids(searched(session, query)) == before
    sql = write.format(query=[round(float(v), 6) for v in query], dim=DIM)
    writer = answer_of(child(workspace, query, before=sql))
    expected = exact_ids(session, query)
    assert expected != before
    assert writer["ids"] == expected
    assert ids(searched(session, query)) == expected
    # A third process reads what the writer saved for the table as it is now.
    assert answer_of(child(workspace, query, build="forbid"))["ids"] == expected


def test_a_table_made_again_with_other_rows_never_uses_the_old_index(session, workspace, query):
    make_table(session, seed=0)
    searched(session, query)
    make_table(session, seed=1)  # the same name, shape and row count
    with thanosql.connect(workspace, notify=lambda _: None) as other:
        ranking = searched(other, query)
        assert ranking.index_from == "built"
        assert ids(ranking) == exact_ids(session, query)


# -- damage ------------------------------------------------------------------------------------------------


def truncate(folder: Path) -> None:
    path = folder / "codes.npy"
    path.write_bytes(path.read_bytes()[:-100])


def flip_bytes(folder: Path) -> None:
    path = folder / "fine_codes.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = bytes(8)
    data[len(data) // 2 + 8] ^= 0xFF
    path.write_bytes(bytes(data))


def same_size_other_header(folder: Path) -> None:
    path = folder / "scale.npy"
    path.write_bytes(path.read_bytes().replace(b"<f4", b"<i4", 1))


def edit_manifest(change):
    def damage(folder: Path) -> None:
        path = folder / MANIFEST_FILE
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return damage


def other_fingerprint(manifest: dict) -> None:
    manifest["fingerprint"][1] = "0" * 64


def other_format(manifest: dict) -> None:
    manifest["format"] += 1


def other_rows(manifest: dict) -> None:
    manifest["rows"] -= 1
    manifest["fingerprint"][2] -= 1


@pytest.mark.parametrize(
    "damage",
    [
        truncate,
        flip_bytes,
        same_size_other_header,
        lambda folder: (folder / "valid.npy").unlink(),
        lambda folder: (folder / MANIFEST_FILE).write_text("{not json"),
        edit_manifest(other_fingerprint),
        edit_manifest(other_format),
        edit_manifest(other_rows),
    ],
    ids=[
        "truncated",
        "bytes-changed",
        "header-changed",
        "file-missing",
        "manifest-unreadable",
        "wrong-fingerprint",
        "wrong-format",
        "wrong-rows",
    ],
)
def test_a_damaged_or_stale_index_is_detected_and_built_again(session, workspace, query, damage):
    make_table(session)
    expected = ids(searched(session, query))
    damage(the_index(workspace))
    with thanosql.connect(workspace, notify=lambda _: None) as other:
        ranking = searched(other, query)
        assert ranking.index_from == "built"
        assert ids(ranking) == expected == exact_ids(session, query)
    with thanosql.connect(workspace, notify=lambda _: None) as third:
        assert searched(third, query).index_from == "workspace"


def test_a_writer_killed_while_saving_leaves_nothing_trusted_and_its_leftovers_are_removed(session, workspace, query):
    make_table(session)
    killed = child(workspace, query, die="die")
    killed.communicate(timeout=CHILD_TIMEOUT_S)
    assert killed.returncode == -9
    (leftover,) = index_folders(workspace)
    assert leftover.name.startswith(".") and leftover.name.endswith(".partial")
    ranking = searched(session, query)
    assert ranking.index_from == "built"
    assert ids(ranking) == exact_ids(session, query)
    assert [folder.name for folder in index_folders(workspace)] == [the_index(workspace).name]
    assert answer_of(child(workspace, query, build="forbid"))["from"] == ["workspace", "memory"]
