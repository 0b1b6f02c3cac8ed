"""GET THANOSQL DATASET over a real HTTP server on 127.0.0.1 serving archives the tests build.

Success, checksum mismatch, truncated transfer, server error, re-run without overwrite, offline
and no network; after every failure the workspace holds no partial dataset. The preparation
recipes run on tiny sources in the real formats (MNIST idx files, an Unsplash Lite archive),
and the seed tutorials' GET + COPY queries run as written against a local manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import struct
import tarfile
import threading
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
from thanosql.errors import DatasetError

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
            "digits_data": {"description": "generated digits", "license": "Apache-2.0", "builtin": "digits",
                            "options": {"train": 20, "test": 10}},
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
        session = thanosql.connect(workspace, datasets_manifest=manifest, progress=False,
                                   notify=notices.append, **settings)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        session.close()


def _dataset_dir_entries(workspace: Path) -> list[str]:
    folder = workspace / "thanosql-dataset"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------------- success


def test_an_archive_is_downloaded_checked_and_unpacked_into_the_dataset_folder(tmp_path, server, connect, workspace, notices):
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


def test_the_stamp_records_where_each_file_came_from_and_the_checksum_of_every_file_written(tmp_path, server, connect, workspace):
    body = _zip(TOY_FILES)
    url = server.serve("/toy.zip", body)
    session = connect(_manifest(tmp_path, {"toy_data": _entry(url, body)}))

    session.execute("GET THANOSQL DATASET toy_data")

    import json

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


def test_offline_fails_at_once_without_a_request_naming_the_url_and_the_builtins(tmp_path, server, workspace, monkeypatch):
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
    entry = _entry(server.serve("/toy.zip", body), body,
                   tables={"toy": {"file": "other.csv", "columns": ["image_path"]}})
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
    entry["files"][0] = {"url": server.serve("/mnist/train-images-idx3-ubyte.gz", garbage),
                         "sha256": _sha256(garbage), "size": len(garbage)}
    session = connect(_manifest(tmp_path, {"mnist_data": entry}))

    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz is not an idx file"):
        session.execute("GET THANOSQL DATASET mnist_data")

    assert _dataset_dir_entries(workspace) == []


# ------------------------------------------------------------------------- Unsplash recipe

TSV_HEADER = ["photo_id", "photo_url", "photo_image_url", "photo_submitted_at", "photo_featured",
              "photo_width", "photo_height", "photo_description", "photographer_username", "ai_description"]


@pytest.fixture
def unsplash_entry(server):
    """An Unsplash Lite archive with four photos, one of them a dead link."""
    rows = []
    for i, (photo_id, description) in enumerate(
        [("XMyPniM9LF0", "Woman exploring a forest"), ("rDLBArZUl1c", ""), ("cNDGZ2sQ3Bo", "Rural winter"),
         ("deadLink000", "Gone")]
    ):
        image_url = f"{server.url}/photos/photo-{i}"
        if photo_id != "deadLink000":
            server.serve(f"/photos/photo-{i}", _jpeg(50 * (i + 1), size=16))
        rows.append([photo_id, f"https://unsplash.com/photos/{photo_id}", image_url, "2020-01-01", "t", "16", "16",
                     description, "someone", f"ai caption {i}"])
    tsv = "\n".join("\t".join(r) for r in [TSV_HEADER, *rows]) + "\n"
    body = _zip({"photos.tsv000": tsv.encode(), "keywords.tsv000": b"photo_id\tkeyword\n"})
    entry = {
        "description": "Unsplash Lite, small",
        "license": "Unsplash Dataset terms",
        "files": [{"url": server.serve("/lite/latest.zip", body), "sha256": None, "size": None,
                   "unverified": "the test's archive changes like Unsplash's 'latest'"}],
        "prepare": "unsplash_lite",
        "options": {"workers": 2},
        "tables": {"unsplash_data": {"file": "unsplash.csv", "columns": [
            "photo_id", "image_path", "photo_image_url", "photo_description", "ai_description"]}},
    }
    return entry


def test_the_unsplash_recipe_downloads_each_photo_and_leaves_out_dead_links(tmp_path, unsplash_entry, connect, workspace, notices):
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
    assert session.execute(
        "SELECT count(*) AS n FROM mnist_test WHERE image_path = 'thanosql-dataset/mnist_data/test/923.jpg'"
    )["n"][0] == 1
    assert notices == ["Success"] * 3


def test_seed_000_get_and_copy_run_as_written_against_a_local_manifest(tmp_path, unsplash_entry, connect):
    session = connect(_manifest(tmp_path, {"unsplash_data": unsplash_entry}))

    session.execute("GET THANOSQL DATASET unsplash_data\nOPTIONS (overwrite=True)")
    session.execute("COPY unsplash_data\nOPTIONS (if_exists='replace')\nFROM 'thanosql-dataset/unsplash_data/unsplash.csv'")

    frame = session.execute("SELECT *\nFROM unsplash_data\nLIMIT 5")
    assert list(frame.columns) == ["photo_id", "image_path", "photo_image_url", "photo_description", "ai_description"]
    assert frame["image_path"][0] == "thanosql-dataset/unsplash_data/XMyPniM9LF0.jpg"
