"""GET THANOSQL DATASET over a real HTTP server on 127.0.0.1 serving archives the tests build.

Success, checksum mismatch, truncated transfer, server error, re-run without overwrite, offline
and no network; after every failure the workspace holds no partial dataset. Names that are paths,
decompression bombs, a full disk (a real small tmpfs, and a file size limit), Ctrl-C, and a GET
process killed with -9 at each step of putting the dataset in place. The preparation recipes run
on tiny sources in the real formats (MNIST idx files, an Unsplash Lite archive), and the seed
tutorials' GET + COPY queries run as written against a local manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import thanosql
from thanosql.datasets.download import STAMP_FILE, install
from thanosql.datasets.manifest import load_manifest
from thanosql.datasets.prepare import read_idx
from thanosql.disk import DiskFullError
from thanosql.errors import DatasetError, PlanError
from thanosql.stores import LOCK_FILE

# ------------------------------------------------------------------------- loopback server


@dataclass
class Route:
    body: bytes
    status: int = 200
    mode: str = "ok"  # ok | truncate (announce all, send half) | no_length (close-delimited)


@dataclass
class Server:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def serve(self, path: str, body: bytes, **kwargs) -> str:
        self.routes[path] = Route(body, **kwargs)
        return self.url + path


@pytest.fixture
def server():
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            state.requests.append(path)
            route = state.routes.get(path)
            if route is None:
                route = Route(b"not found", status=404)
            self.send_response(route.status)
            self.send_header("Content-Type", "application/octet-stream")
            if route.mode != "no_length":
                self.send_header("Content-Length", str(len(route.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            sent = route.body[: len(route.body) // 2] if route.mode == "truncate" else route.body
            self.wfile.write(sent)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------- helpers


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _jpeg(value: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), value).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


TOY_FILES = {
    "toy.csv": b"image_path,filename,label\nthanosql-dataset/toy_data/a.jpg,a.jpg,1\n",
    "a.jpg": _jpeg(200),
}


def _entry(url: str, body: bytes, **extra) -> dict:
    return {
        "description": "a toy dataset",
        "license": "CC0",
        "files": [{"url": url, "sha256": _sha256(body), "size": len(body)}],
        **extra,
    }


def _manifest(tmp_path: Path, datasets: dict, with_builtin: bool = True) -> Path:
    if with_builtin:
        datasets = {
            **datasets,
            "digits_data": {
                "description": "generated digits",
                "license": "Apache-2.0",
                "builtin": "digits",
                "options": {"train": 20, "test": 10},
            },
        }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "datasets": datasets}), encoding="utf-8")
    return path


@pytest.fixture
def connect(workspace, notices):
    """Open an online session on the test workspace with the given manifest."""
    sessions = []

    def open_session(manifest: Path, **settings):
        settings.setdefault("offline", False)
        session = thanosql.connect(
            workspace, datasets_manifest=manifest, progress=False, notify=notices.append, **settings
        )
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        session.close()


def _dataset_dir_entries(workspace: Path) -> list[str]:
    """What thanosql-dataset/ holds, but for the store's lock file (which is no leftover)."""
    folder = workspace / "thanosql-dataset"
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_FILE) if folder.exists() else []


# ------------------------------------------------------------------------- success


def test_an_archive_is_downloaded_checked_and_unpacked_into_the_dataset_folder(
    tmp_path, server, connect, workspace, notices
):
    body = _zip(TOY_FILES)
    manifest = _manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", body), body)})
    session = connect(manifest)

    assert session.execute("GET THANOSQL DATASET toy_data") is None

    folder = workspace / "thanosql-dataset" / "toy_data"
    assert (folder / "toy.csv").read_bytes() == TOY_FILES["toy.csv"]
    assert (folder / "a.jpg").read_bytes() == TOY_FILES["a.jpg"]
    assert _dataset_dir_entries(workspace) == ["toy_data"]
    assert notices == ["Success"]
    assert server.requests == ["/toy.zip"]


def test_a_tar_gz_archive_is_unpacked_with_leading_folders_stripped(tmp_path, server, connect, workspace):
    body = _tar_gz({f"toy-1.0/{name}": data for name, data in TOY_FILES.items()})
    entry = _entry(server.serve("/toy.tar.gz", body), body)
    entry["files"][0]["strip_components"] = 1
    session = connect(_manifest(tmp_path, {"toy_data": entry}))

    session.execute("GET THANOSQL DATASET toy_data")

    folder = workspace / "thanosql-dataset" / "toy_data"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["a.jpg", "toy.csv"]


def test_a_file_that_is_not_an_archive_is_placed_as_is(tmp_path, server, connect, workspace):
    body = b"x,y\n1,2\n"
    session = connect(_manifest(tmp_path, {"plain": _entry(server.serve("/data/plain.csv", body), body)}))

    session.execute("GET THANOSQL DATASET plain")

    assert (workspace / "thanosql-dataset" / "plain" / "plain.csv").read_bytes() == body


def test_the_stamp_records_where_each_file_came_from_and_the_checksum_of_every_file_written(
    tmp_path, server, connect, workspace
):
    body = _zip(TOY_FILES)
    url = server.serve("/toy.zip", body)
    session = connect(_manifest(tmp_path, {"toy_data": _entry(url, body)}))

    session.execute("GET THANOSQL DATASET toy_data")

    stamp = json.loads((workspace / "thanosql-dataset" / "toy_data" / STAMP_FILE).read_text())
    assert stamp["downloads"] == [{"url": url, "size": len(body), "sha256": _sha256(body)}]
    assert stamp["files"] == {name: _sha256(data) for name, data in sorted(TOY_FILES.items())}


def test_the_manifest_named_by_the_environment_variable_is_used(tmp_path, server, workspace, monkeypatch):
    body = _zip(TOY_FILES)
    manifest = _manifest(tmp_path, {"env_data": _entry(server.serve("/env.zip", body), body)})
    monkeypatch.setenv("THANOSQL_DATASETS_MANIFEST", str(manifest))

    with thanosql.connect(workspace, offline=False, progress=False, notify=lambda _: None) as session:
        session.execute("GET THANOSQL DATASET env_data")

    assert (workspace / "thanosql-dataset" / "env_data" / "toy.csv").is_file()


def test_a_mirror_is_tried_when_the_first_url_fails(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    entry = _entry(server.url + "/gone.zip", body)
    entry["files"][0]["mirrors"] = [server.serve("/mirror/toy.zip", body)]
    entry["files"][0]["name"] = "toy.zip"
    session = connect(_manifest(tmp_path, {"toy_data": entry}))

    session.execute("GET THANOSQL DATASET toy_data")

    assert server.requests == ["/gone.zip", "/mirror/toy.zip"]
    assert (workspace / "thanosql-dataset" / "toy_data" / "toy.csv").is_file()


# ------------------------------------------------------------------------- failures


def test_a_checksum_mismatch_names_the_file_and_leaves_nothing(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    entry = _entry(server.serve("/toy.zip", body), body)
    entry["files"][0]["sha256"] = _sha256(b"something else")
    session = connect(_manifest(tmp_path, {"toy_data": entry}))

    with pytest.raises(DatasetError) as caught:
        session.execute("GET THANOSQL DATASET toy_data")

    message = str(caught.value)
    assert "toy.zip" in message and "failed its checksum" in message
    assert _sha256(body) in message
    assert _dataset_dir_entries(workspace) == []


def test_a_truncated_transfer_fails_and_leaves_nothing(tmp_path, server, connect, workspace):
    body = _zip({**TOY_FILES, "big.bin": os.urandom(200_000)})
    session = connect(_manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", body, mode="truncate"), body)}))

    with pytest.raises(DatasetError, match="broke off") as caught:
        session.execute("GET THANOSQL DATASET toy_data")

    assert "toy.zip" in str(caught.value)
    assert _dataset_dir_entries(workspace) == []


def test_a_short_answer_without_a_length_fails_its_size_check(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    entry = _entry(server.serve("/toy.zip", body[:-10], mode="no_length"), body)
    session = connect(_manifest(tmp_path, {"toy_data": entry}))

    with pytest.raises(DatasetError, match=f"received {len(body) - 10:,} bytes, the manifest expects {len(body):,}"):
        session.execute("GET THANOSQL DATASET toy_data")

    assert _dataset_dir_entries(workspace) == []


def test_a_server_error_is_reported_with_its_status_and_leaves_nothing(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    session = connect(_manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", b"oops", status=500), body)}))

    with pytest.raises(DatasetError, match="500") as caught:
        session.execute("GET THANOSQL DATASET toy_data")

    assert server.url + "/toy.zip" in str(caught.value)
    assert _dataset_dir_entries(workspace) == []


def test_an_archive_with_a_path_outside_the_dataset_is_refused(tmp_path, server, connect, workspace):
    body = _zip({"ok.txt": b"fine", "../../escaped.txt": b"evil"})
    session = connect(_manifest(tmp_path, {"toy_data": _entry(server.serve("/evil.zip", body), body)}))

    with pytest.raises(DatasetError, match="outside the dataset folder"):
        session.execute("GET THANOSQL DATASET toy_data")

    assert not (workspace / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert _dataset_dir_entries(workspace) == []


def test_a_failed_overwrite_keeps_the_dataset_already_there(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    manifest = _manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", body), body)})
    session = connect(manifest)
    session.execute("GET THANOSQL DATASET toy_data")
    server.serve("/toy.zip", body[:100] + b"!" + body[101:])  # same size, other bytes

    with pytest.raises(DatasetError, match="failed its checksum"):
        session.execute("GET THANOSQL DATASET toy_data OPTIONS (overwrite=True)")

    assert (workspace / "thanosql-dataset" / "toy_data" / "toy.csv").read_bytes() == TOY_FILES["toy.csv"]
    assert _dataset_dir_entries(workspace) == ["toy_data"]


def test_an_interrupted_download_leaves_nothing_behind(tmp_path, server, workspace):
    body = _zip({**TOY_FILES, "big.bin": os.urandom(3_000_000)})
    manifest = load_manifest(_manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", body), body)}))

    class Interrupting:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            pass

        def update(self, n):
            raise KeyboardInterrupt

        def close(self):
            pass

    with pytest.raises(KeyboardInterrupt):
        install(manifest.get("toy_data"), manifest, workspace / "thanosql-dataset", progress=Interrupting)

    assert _dataset_dir_entries(workspace) == []


def test_folders_left_by_a_killed_download_are_removed_by_the_next_get(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    session = connect(_manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", body), body)}))
    dead = workspace / "thanosql-dataset" / ".toy_data.999999999.abc.partial"
    (dead / "dataset").mkdir(parents=True)

    session.execute("GET THANOSQL DATASET toy_data")

    assert _dataset_dir_entries(workspace) == ["toy_data"]


def test_a_copy_moved_aside_by_a_killed_overwrite_is_put_back(tmp_path, connect, workspace):
    session = connect(_manifest(tmp_path, {}))
    aside = workspace / "thanosql-dataset" / ".digits_data.999999999.old"
    aside.mkdir(parents=True)
    (aside / "digits_test.csv").write_text("from before")

    session.execute("GET THANOSQL DATASET digits_data")

    assert (workspace / "thanosql-dataset" / "digits_data" / "digits_test.csv").read_text() == "from before"
    assert _dataset_dir_entries(workspace) == ["digits_data"]


def test_leftovers_are_told_by_their_lock_not_by_a_process_number_that_may_be_in_use_again(
    tmp_path, connect, workspace
):
    # Process 1 is always alive: a leftover named after it must still be recognised as abandoned
    # (nobody holds its lock), or a reused process number would keep it forever.
    session = connect(_manifest(tmp_path, {}))
    store = workspace / "thanosql-dataset"
    (store / ".digits_data.1.abc.partial" / "train").mkdir(parents=True)
    (store / ".digits_data.1.old").mkdir()
    (store / ".digits_data.1.old" / "digits_test.csv").write_text("from before")

    session.execute("GET THANOSQL DATASET digits_data")

    assert _dataset_dir_entries(workspace) == ["digits_data"]
    assert (store / "digits_data" / "digits_test.csv").read_text() == "from before"


# ------------------------------------------------------------------------- re-runs


def test_a_rerun_without_overwrite_downloads_nothing(tmp_path, server, connect, workspace, notices):
    body = _zip(TOY_FILES)
    session = connect(_manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", body), body)}))
    session.execute("GET THANOSQL DATASET toy_data")

    session.execute("GET THANOSQL DATASET toy_data")

    assert server.requests == ["/toy.zip"]
    assert "already in the workspace" in notices[-1] and "overwrite=True" in notices[-1]


def test_overwrite_downloads_again_and_replaces_the_old_files(tmp_path, server, connect, workspace):
    first = _zip(TOY_FILES)
    manifest = _manifest(tmp_path, {"toy_data": _entry(server.serve("/toy.zip", first), first)})
    session = connect(manifest)
    session.execute("GET THANOSQL DATASET toy_data")
    (workspace / "thanosql-dataset" / "toy_data" / "stray.txt").write_text("left from before")
    second = _zip({"toy.csv": b"image_path\nnew\n"})
    server.serve("/toy.zip", second)
    _manifest(tmp_path, {"toy_data": _entry(server.url + "/toy.zip", second)})

    session.execute("GET THANOSQL DATASET toy_data OPTIONS (overwrite=True)")

    folder = workspace / "thanosql-dataset" / "toy_data"
    assert (folder / "toy.csv").read_bytes() == b"image_path\nnew\n"
    assert not (folder / "stray.txt").exists()
    assert server.requests == ["/toy.zip", "/toy.zip"]


# ------------------------------------------------------------------------- offline


def test_offline_fails_at_once_without_a_request_naming_the_url_and_the_builtins(
    tmp_path, server, workspace, monkeypatch
):
    body = _zip(TOY_FILES)
    url = server.serve("/toy.zip", body)
    manifest = _manifest(tmp_path, {"toy_data": _entry(url, body, alternative="digits_data")})
    monkeypatch.setenv("THANOSQL_OFFLINE", "1")

    with thanosql.connect(workspace, datasets_manifest=manifest, progress=False, notify=lambda _: None) as session:
        with pytest.raises(DatasetError) as caught:
            session.execute("GET THANOSQL DATASET toy_data")

    error = caught.value
    assert url in error.message and "offline" in error.message
    assert "GET THANOSQL DATASET digits_data" in error.hint
    assert server.requests == []
    assert _dataset_dir_entries(workspace) == []


def test_an_unreachable_server_fails_naming_the_url_and_the_builtins(tmp_path, connect, workspace):
    url = f"http://127.0.0.1:{_closed_port()}/toy.zip"
    session = connect(_manifest(tmp_path, {"toy_data": _entry(url, b"x")}))

    with pytest.raises(DatasetError) as caught:
        session.execute("GET THANOSQL DATASET toy_data")

    assert url in caught.value.message
    assert "GET THANOSQL DATASET digits_data" in caught.value.hint
    assert _dataset_dir_entries(workspace) == []


def test_a_builtin_dataset_is_made_offline(tmp_path, connect, workspace):
    session = connect(_manifest(tmp_path, {}), offline=True)

    session.execute("GET THANOSQL DATASET digits_data")

    folder = workspace / "thanosql-dataset" / "digits_data"
    assert len(list((folder / "train").glob("*.jpg"))) == 20
    assert (folder / "digits_test.csv").is_file()


def test_a_dataset_missing_a_table_the_manifest_lists_is_not_kept(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    entry = _entry(
        server.serve("/toy.zip", body), body, tables={"toy": {"file": "other.csv", "columns": ["image_path"]}}
    )
    session = connect(_manifest(tmp_path, {"toy_data": entry}))

    with pytest.raises(DatasetError, match="no other.csv"):
        session.execute("GET THANOSQL DATASET toy_data")

    assert _dataset_dir_entries(workspace) == []


# ------------------------------------------------------------------------- MNIST recipe


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _toy_mnist(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose bright square's place depends on the label, plus noise to tell them apart."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[i, 4 + row * 10 : 12 + row * 10, 2 + col * 5 : 7 + col * 5] = 250
    return images, labels


@pytest.fixture
def mnist_entry(server):
    """A manifest entry like the bundled mnist_data, serving small idx files (924 test images,
    so that number 923 exists)."""
    files = []
    arrays = {}
    for prefix, count, seed in (("train", 100, 1), ("t10k", 924, 2)):
        images, labels = _toy_mnist(count, seed)
        arrays[prefix] = (images, labels)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            body = _idx(array)
            url = server.serve(f"/mnist/{prefix}-{kind}-ubyte.gz", body)
            files.append({"url": url, "sha256": _sha256(body), "size": len(body)})
    entry = {
        "description": "MNIST, small",
        "license": "CC BY-SA 3.0",
        "files": files,
        "prepare": "mnist",
        "options": {"train": 30, "test": 20, "csv_prefix": "mnist"},
        "tables": {
            "mnist_train": {"file": "mnist_train.csv", "columns": ["image_path", "filename", "label"]},
            "mnist_test": {"file": "mnist_test.csv", "columns": ["image_path", "filename", "label"]},
        },
        "alternative": "digits_data",
    }
    return entry, arrays


def test_read_idx_reads_what_an_idx_file_holds(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(_idx(array))

    assert np.array_equal(read_idx(path), array)


def test_read_idx_refuses_a_file_shorter_than_its_header_says(tmp_path):
    path = tmp_path / "short-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x01\x02")

    with pytest.raises(DatasetError, match="holds 2 bytes of data, its header promises 10"):
        read_idx(path)


def test_the_mnist_recipe_writes_balanced_jpegs_and_csvs_from_idx_files(tmp_path, mnist_entry, connect, workspace):
    entry, arrays = mnist_entry
    session = connect(_manifest(tmp_path, {"mnist_data": entry}))

    session.execute("GET THANOSQL DATASET mnist_data")

    import csv

    folder = workspace / "thanosql-dataset" / "mnist_data"
    test_rows = list(csv.DictReader((folder / "mnist_test.csv").open()))
    train_rows = list(csv.DictReader((folder / "mnist_train.csv").open()))
    assert len(train_rows) == 30 and len(test_rows) == 20
    assert sorted(int(r["label"]) for r in train_rows) == sorted(list(range(10)) * 3)
    images, labels = arrays["t10k"]
    for row in test_rows:
        index = int(row["filename"].removesuffix(".jpg"))
        assert row["image_path"] == f"thanosql-dataset/mnist_data/test/{row['filename']}"
        assert int(row["label"]) == labels[index]
        decoded = np.asarray(Image.open(folder / "test" / row["filename"]), dtype=float)
        assert decoded.shape == (28, 28)
        assert np.abs(decoded - images[index]).mean() < 8  # JPEG is lossy, but it is this image
    assert "923.jpg" in {r["filename"] for r in test_rows}
    assert not any(p.name.endswith(".gz") for p in folder.rglob("*"))  # the sources are not kept


def test_the_mnist_recipe_fails_clearly_on_a_file_that_is_not_idx(tmp_path, server, mnist_entry, connect, workspace):
    entry, _ = mnist_entry
    garbage = gzip.compress(b"<html>not mnist</html>", mtime=0)
    entry["files"][0] = {
        "url": server.serve("/mnist/train-images-idx3-ubyte.gz", garbage),
        "sha256": _sha256(garbage),
        "size": len(garbage),
    }
    session = connect(_manifest(tmp_path, {"mnist_data": entry}))

    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz is not an idx file"):
        session.execute("GET THANOSQL DATASET mnist_data")

    assert _dataset_dir_entries(workspace) == []


# ------------------------------------------------------------------------- Unsplash recipe

TSV_HEADER = [
    "photo_id",
    "photo_url",
    "photo_image_url",
    "photo_submitted_at",
    "photo_featured",
    "photo_width",
    "photo_height",
    "photo_description",
    "photographer_username",
    "ai_description",
]


@pytest.fixture
def unsplash_entry(server):
    """An Unsplash Lite archive with four photos, one of them a dead link."""
    rows = []
    for i, (photo_id, description) in enumerate(
        [
            ("XMyPniM9LF0", "Woman exploring a forest"),
            ("rDLBArZUl1c", ""),
            ("cNDGZ2sQ3Bo", "Rural winter"),
            ("deadLink000", "Gone"),
        ]
    ):
        image_url = f"{server.url}/photos/photo-{i}"
        if photo_id != "deadLink000":
            server.serve(f"/photos/photo-{i}", _jpeg(50 * (i + 1), size=16))
        rows.append(
            [
                photo_id,
                f"https://unsplash.com/photos/{photo_id}",
                image_url,
                "2020-01-01",
                "t",
                "16",
                "16",
                description,
                "someone",
                f"ai caption {i}",
            ]
        )
    tsv = "\n".join("\t".join(r) for r in [TSV_HEADER, *rows]) + "\n"
    body = _zip({"photos.tsv000": tsv.encode(), "keywords.tsv000": b"photo_id\tkeyword\n"})
    entry = {
        "description": "Unsplash Lite, small",
        "license": "Unsplash Dataset terms",
        "files": [
            {
                "url": server.serve("/lite/latest.zip", body),
                "sha256": None,
                "size": None,
                "unverified": "the test's archive changes like Unsplash's 'latest'",
            }
        ],
        "prepare": "unsplash_lite",
        "options": {"workers": 2},
        "tables": {
            "unsplash_data": {
                "file": "unsplash.csv",
                "columns": ["photo_id", "image_path", "photo_image_url", "photo_description", "ai_description"],
            }
        },
    }
    return entry


def test_the_unsplash_recipe_downloads_each_photo_and_leaves_out_dead_links(
    tmp_path, unsplash_entry, connect, workspace, notices
):
    session = connect(_manifest(tmp_path, {"unsplash_data": unsplash_entry}))

    session.execute("GET THANOSQL DATASET unsplash_data")

    folder = workspace / "thanosql-dataset" / "unsplash_data"
    frame = session.execute("SELECT * FROM read_csv_auto('%s')" % (folder / "unsplash.csv"))
    assert list(frame.columns) == ["photo_id", "image_path", "photo_image_url", "photo_description", "ai_description"]
    assert list(frame["photo_id"]) == ["XMyPniM9LF0", "rDLBArZUl1c", "cNDGZ2sQ3Bo"]
    assert frame["image_path"][0] == "thanosql-dataset/unsplash_data/XMyPniM9LF0.jpg"
    assert frame["photo_description"].isna().tolist() == [False, True, False]
    assert Image.open(folder / "cNDGZ2sQ3Bo.jpg").size == (16, 16)
    assert not (folder / "deadLink000.jpg").exists()
    assert any("1 of 4 photos could not be downloaded" in str(n) for n in notices)


# ------------------------------------------------------------------------- the seeds, as written


def test_seed_002_get_and_copy_run_as_written_against_a_local_manifest(tmp_path, mnist_entry, connect, notices):
    entry, _ = mnist_entry
    session = connect(_manifest(tmp_path, {"mnist_data": entry}))

    session.execute("GET THANOSQL DATASET mnist_data\nOPTIONS (overwrite=True)")
    session.execute('COPY mnist_train \nOPTIONS (overwrite=True)\nFROM "thanosql-dataset/mnist_data/mnist_train.csv"')
    session.execute('COPY mnist_test \nOPTIONS (overwrite=True)\nFROM "thanosql-dataset/mnist_data/mnist_test.csv"')

    frame = session.execute("SELECT * \nFROM mnist_train \nLIMIT 5")
    assert list(frame.columns) == ["image_path", "filename", "label"]
    assert session.execute("SELECT count(*) AS n FROM mnist_test")["n"][0] == 20
    assert (
        session.execute(
            "SELECT count(*) AS n FROM mnist_test WHERE image_path = 'thanosql-dataset/mnist_data/test/923.jpg'"
        )["n"][0]
        == 1
    )
    assert notices == ["Success"] * 3


def test_seed_000_get_and_copy_run_as_written_against_a_local_manifest(tmp_path, unsplash_entry, connect):
    session = connect(_manifest(tmp_path, {"unsplash_data": unsplash_entry}))

    session.execute("GET THANOSQL DATASET unsplash_data\nOPTIONS (overwrite=True)")
    session.execute(
        "COPY unsplash_data\nOPTIONS (if_exists='replace')\nFROM 'thanosql-dataset/unsplash_data/unsplash.csv'"
    )

    frame = session.execute("SELECT *\nFROM unsplash_data\nLIMIT 5")
    assert list(frame.columns) == ["photo_id", "image_path", "photo_image_url", "photo_description", "ai_description"]
    assert frame["image_path"][0] == "thanosql-dataset/unsplash_data/XMyPniM9LF0.jpg"


# ------------------------------------------------------------------------- names are names


@pytest.mark.parametrize("name", ["../x", "/etc", "a/b", "..", ".hidden", "a\\\\b", "tab\there", "bell\x07"])
def test_a_dataset_name_that_is_a_path_is_a_plan_error_before_anything_is_read(tmp_path, connect, workspace, name):
    session = connect(tmp_path / "no-such-manifest.yaml")  # never read: the name is refused first

    with pytest.raises(PlanError) as caught:
        session.execute(f'GET THANOSQL DATASET "{name}"')

    assert "a dataset name is a name, not a path" in caught.value.message
    assert caught.value.line == 1
    assert not (workspace / "thanosql-dataset").exists() and not (workspace.parent / "x").exists()


def test_a_dataset_folder_that_links_out_of_the_store_is_refused(tmp_path, connect, workspace):
    session = connect(_manifest(tmp_path, {}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (workspace / "thanosql-dataset").mkdir()
    (workspace / "thanosql-dataset" / "digits_data").symlink_to(elsewhere)

    with pytest.raises(PlanError, match="outside the dataset store"):
        session.execute("GET THANOSQL DATASET digits_data OPTIONS (overwrite=True)")

    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------------- archive size limits


def test_an_archive_within_its_declared_unpacked_size_is_unpacked(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    entry = _entry(server.serve("/toy.zip", body), body)
    entry["files"][0]["unpacked_size"] = sum(len(data) for data in TOY_FILES.values())
    session = connect(_manifest(tmp_path, {"toy_data": entry}))

    session.execute("GET THANOSQL DATASET toy_data")

    assert (workspace / "thanosql-dataset" / "toy_data" / "toy.csv").read_bytes() == TOY_FILES["toy.csv"]


def test_an_archive_that_unpacks_past_its_declared_size_is_stopped_and_leaves_nothing(
    tmp_path, server, connect, workspace
):
    body = _tar_gz({"big.bin": bytes(100_000)})
    entry = _entry(server.serve("/toy.tar.gz", body), body)
    entry["files"][0]["unpacked_size"] = 1_000
    session = connect(_manifest(tmp_path, {"toy_data": entry}))

    with pytest.raises(DatasetError) as caught:
        session.execute("GET THANOSQL DATASET toy_data")

    assert (
        "toy.tar.gz unpacks to more than the 1,000 bytes the manifest declares (unpacked_size)" in caught.value.message
    )
    assert _dataset_dir_entries(workspace) == []


def _zeros_archive(path: Path, size: int) -> bytes:
    """An archive holding one file of ``size`` zero bytes: it compresses about 1,000 times."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w") as out:
            for _ in range(size >> 20):
                out.write(bytes(1 << 20))
    else:
        with tarfile.open(path, "w:gz") as tf, open("/dev/zero", "rb") as zeros:
            info = tarfile.TarInfo("zeros.bin")
            info.size = size
            tf.addfile(info, zeros)
    return path.read_bytes()


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_a_decompression_bomb_is_stopped_and_leaves_nothing(tmp_path, server, connect, workspace, suffix):
    from thanosql.datasets import download

    # Past 100 times the archive's size and past the floor, with no unpacked_size declared.
    body = _zeros_archive(tmp_path / f"bomb{suffix}", download.UNPACK_FLOOR_BYTES + (8 << 20))
    assert len(body) * download.UNPACK_RATIO < download.UNPACK_FLOOR_BYTES
    session = connect(_manifest(tmp_path, {"toy_data": _entry(server.serve(f"/bomb{suffix}", body), body)}))

    with pytest.raises(DatasetError) as caught:
        session.execute("GET THANOSQL DATASET toy_data")

    assert f"bomb{suffix}" in caught.value.message and "over 100 times its size" in caught.value.message
    assert "unpacked_size" in caught.value.hint
    assert _dataset_dir_entries(workspace) == []


# ------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(workspace):
    """thanosql-dataset/ on a 512 KiB tmpfs of its own (needs root), unmounted after."""
    folder = workspace / "thanosql-dataset"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here; test_a_file_size_limit_while_generating_... covers a full disk")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); "
            "test_a_file_size_limit_while_generating_... covers a full disk"
        )
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _digits_manifest(tmp_path: Path, name: str = "manifest.yaml", **options) -> Path:
    options = {"train": 20, "test": 10, **options}
    entry = {"description": "generated digits", "license": "Apache-2.0", "builtin": "digits", "options": options}
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "datasets": {"digits_data": entry}}), encoding="utf-8")
    return path


def test_a_full_disk_while_generating_a_dataset_is_a_clear_error_and_leaves_nothing(
    tmp_path, connect, workspace, small_disk
):
    session = connect(_digits_manifest(tmp_path, train=1000, test=200))

    with pytest.raises(DiskFullError) as caught:
        session.execute("GET THANOSQL DATASET digits_data")

    assert "the disk is full: writing dataset 'digits_data' failed" in caught.value.message
    assert caught.value.line == 1
    assert _dataset_dir_entries(workspace) == []


def test_a_full_disk_during_an_overwrite_keeps_the_old_dataset(tmp_path, connect, workspace, small_disk):
    connect(_digits_manifest(tmp_path)).execute("GET THANOSQL DATASET digits_data")
    before = sorted(p.relative_to(small_disk) for p in small_disk.rglob("*"))
    session = connect(_digits_manifest(tmp_path, "bigger.yaml", train=1000, test=200))

    with pytest.raises(DiskFullError):
        session.execute("GET THANOSQL DATASET digits_data OPTIONS (overwrite=True)")

    assert sorted(p.relative_to(small_disk) for p in small_disk.rglob("*")) == before
    assert _dataset_dir_entries(workspace) == ["digits_data"]


def test_a_full_disk_while_downloading_is_not_reported_as_a_broken_transfer(
    tmp_path, server, connect, workspace, small_disk
):
    body = os.urandom(1 << 20)
    session = connect(_manifest(tmp_path, {"big_data": _entry(server.serve("/big.bin", body), body)}))
    written = yaml.safe_load((tmp_path / "manifest.yaml").read_text())
    written["datasets"]["big_data"]["files"][0]["size"] = None  # so the room check cannot refuse it first
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(written))

    with pytest.raises(DiskFullError) as caught:
        session.execute("GET THANOSQL DATASET big_data")

    assert "broke off" not in caught.value.message
    assert server.requests == ["/big.bin"]
    assert _dataset_dir_entries(workspace) == []


def test_a_dataset_larger_than_the_free_space_is_refused_before_any_download(
    tmp_path, server, connect, workspace, small_disk
):
    body = os.urandom(1 << 20)
    session = connect(_manifest(tmp_path, {"big_data": _entry(server.serve("/big.bin", body), body)}))

    with pytest.raises(DiskFullError, match="not enough disk space for getting dataset 'big_data'"):
        session.execute("GET THANOSQL DATASET big_data")

    assert server.requests == []
    assert _dataset_dir_entries(workspace) == []


FILE_SIZE_LIMITED_GET = r"""
import resource, signal, sys
from pathlib import Path
from thanosql.datasets.download import install
from thanosql.datasets.manifest import load_manifest
from thanosql.disk import DiskFullError

manifest = load_manifest(sys.argv[1])
# Writes past 16 KiB fail with EFBIG (SIGXFSZ ignored), as a full disk fails with ENOSPC.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
try:
    install(manifest.get("digits_data"), manifest, Path(sys.argv[2]))
except DiskFullError as exc:
    print(exc.message)
    sys.exit(3)
"""


def test_a_file_size_limit_while_generating_is_a_clear_error_and_leaves_nothing(tmp_path, workspace):
    script = tmp_path / "limited_get.py"
    script.write_text(FILE_SIZE_LIMITED_GET)
    manifest = _digits_manifest(tmp_path, train=1000, test=10)  # its train CSV is about 50 KB

    done = subprocess.run(
        [sys.executable, str(script), str(manifest), str(workspace / "thanosql-dataset")],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 3, done.stderr
    assert "the disk is full: writing dataset 'digits_data' failed" in done.stdout
    assert _dataset_dir_entries(workspace) == []


# ------------------------------------------------------------------------- Ctrl-C and kill -9


def _digits_folder(workspace: Path) -> Path:
    return workspace / "thanosql-dataset" / "digits_data"


def test_ctrl_c_during_an_overwrite_keeps_the_old_dataset_and_leaves_nothing(tmp_path, connect, workspace, monkeypatch):
    from thanosql.datasets import builtin

    manifest = load_manifest(_digits_manifest(tmp_path))
    install(manifest.get("digits_data"), manifest, workspace / "thanosql-dataset")
    (_digits_folder(workspace) / "old-copy.txt").write_text("from before")

    def interrupted(path, header, rows):
        raise KeyboardInterrupt  # after the images, before the CSV files

    monkeypatch.setattr(builtin, "write_csv", interrupted)

    with pytest.raises(KeyboardInterrupt):
        install(manifest.get("digits_data"), manifest, workspace / "thanosql-dataset", overwrite=True)

    assert (_digits_folder(workspace) / "old-copy.txt").read_text() == "from before"
    assert _dataset_dir_entries(workspace) == ["digits_data"]


def test_ctrl_c_between_the_two_renames_puts_the_old_dataset_back_at_once(tmp_path, workspace, monkeypatch):
    manifest = load_manifest(_digits_manifest(tmp_path))
    install(manifest.get("digits_data"), manifest, workspace / "thanosql-dataset")
    (_digits_folder(workspace) / "old-copy.txt").write_text("from before")
    real_replace = os.replace
    interrupted = []

    def replace(source, target, *args, **kwargs):
        if Path(target).name == "digits_data" and not interrupted:
            interrupted.append(source)
            raise KeyboardInterrupt  # the old copy is aside, the new one not yet in place
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)

    with pytest.raises(KeyboardInterrupt):
        install(manifest.get("digits_data"), manifest, workspace / "thanosql-dataset", overwrite=True)

    assert interrupted
    assert (_digits_folder(workspace) / "old-copy.txt").read_text() == "from before"
    assert _dataset_dir_entries(workspace) == ["digits_data"]


KILLABLE_GET = r"""
import os, sys, time
from pathlib import Path

workspace, manifest, marker, moment = sys.argv[1:5]
real_replace = os.replace


def stop_here():
    # Tell the test where this process is, then wait for its kill -9.
    Path(marker).write_text(str(os.getpid()))
    time.sleep(3600)


def replace(source, target, *args, **kwargs):
    source, target = Path(source), Path(target)
    if source.name == "digits_data" and target.name.endswith(".old") and moment == "before the old copy moves aside":
        stop_here()
    if target.name == "digits_data":  # the new copy going in
        if moment == "between the two renames":
            stop_here()
        real_replace(source, target, *args, **kwargs)
        if moment == "after the new copy is in place":
            stop_here()
        return
    real_replace(source, target, *args, **kwargs)


os.replace = replace
if moment == "while building":
    from thanosql.datasets import builtin

    builtin.write_csv = lambda path, header, rows: stop_here()

import thanosql

with thanosql.connect(workspace, datasets_manifest=manifest, offline=True, progress=False,
                      notify=lambda message: None) as session:
    session.execute("GET THANOSQL DATASET digits_data OPTIONS (overwrite=True)")
"""


def _is_complete(folder: Path) -> bool:
    """Every file the dataset's stamp lists is there with its checksum."""
    from thanosql.transfer import sha256_of

    stamp = json.loads((folder / STAMP_FILE).read_text())
    return bool(stamp["files"]) and all(sha256_of(folder / name) == sha for name, sha in stamp["files"].items())


@pytest.mark.parametrize(
    "moment",
    [
        "while building",
        "before the old copy moves aside",
        "between the two renames",
        "after the new copy is in place",
    ],
)
def test_a_get_killed_at_any_moment_leaves_the_old_dataset_or_the_new_one(tmp_path, connect, workspace, moment):
    manifest = _digits_manifest(tmp_path)
    connect(manifest).execute("GET THANOSQL DATASET digits_data")
    (_digits_folder(workspace) / "old-copy.txt").write_text("from before")
    script, marker = tmp_path / "killable_get.py", tmp_path / "stopped"
    script.write_text(KILLABLE_GET)
    child = subprocess.Popen(
        [sys.executable, str(script), str(workspace), str(manifest), str(marker), moment],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not marker.exists():
            assert child.poll() is None, child.stderr.read()
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stderr.close()

    assert _dataset_dir_entries(workspace) != ["digits_data"]  # the kill left something to clear
    connect(manifest).execute("GET THANOSQL DATASET digits_data")  # without overwrite: recovers only

    assert _dataset_dir_entries(workspace) == ["digits_data"]
    folder = _digits_folder(workspace)
    assert _is_complete(folder)
    kept_old = (folder / "old-copy.txt").exists()
    assert kept_old == (moment != "after the new copy is in place")
