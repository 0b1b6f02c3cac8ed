"""Weight resolution (DESIGN.md decision 9): explicit checkpoint, model store, open_clip's caches,
download; downloads against a real HTTP server on 127.0.0.1 serving files built here."""

from __future__ import annotations

import hashlib

import pytest

from thanosql import ModelError
from thanosql.models.clip_weights import open_clip_source
from thanosql.models.store import ModelStore
from thanosql.models.weights import (
    WeightSource,
    download,
    hf_cache_dir,
    published_sha256,
    resolve_weights,
    url_cache_dir,
)
from tiny_clip import LoopbackServer

PAYLOAD = b"pretend weights " * 4096


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home folder: open_clip's and Hugging Face's caches start cold."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("HOME", str(root))
    for name in ("HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def server():
    files = {"/w/tiny.pt": PAYLOAD, "/w/cut.pt": PAYLOAD}
    with LoopbackServer(files, cut_short=frozenset({"/w/cut.pt"})) as running:
        yield running


class Bars:
    """A progress factory that records what it was told."""

    def __init__(self):
        self.made = []

    def __call__(self, **kwargs):
        bar = {"kwargs": kwargs, "count": 0, "closed": False}
        self.made.append(bar)

        class Bar:
            def update(self, n):
                bar["count"] += n

            def close(self):
                bar["closed"] = True

        return Bar()


def no_partial_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".partial")] == [] if folder.exists() else True


def test_published_checksums_follow_open_clips_url_conventions():
    assert published_sha256("https://openaipublic.azureedge.net/clip/models/40d3657/ViT-B-32.pt") == "40d3657"
    assert (
        published_sha256(
            "https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/vit_b_32-quickgelu-laion400m_e31-d867053b.pt"
        )
        == "d867053b"
    )
    assert published_sha256("http://host/file.pt#sha256=ABCDEF") == "abcdef"
    assert published_sha256("http://host/file.pt") == ""


def test_the_hugging_face_cache_follows_its_environment_variables(home, monkeypatch, tmp_path):
    assert hf_cache_dir() == home / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hf_cache_dir() == tmp_path / "hub"
    assert url_cache_dir() == home / ".cache" / "clip"


def test_open_clip_sources_come_from_open_clips_own_table():
    source = open_clip_source("ViT-B-32", "openai")
    assert source.hf_repo == "timm/vit_base_patch32_clip_224.openai"
    assert source.hf_filename == "open_clip_pytorch_model.bin"
    assert source.url.endswith("/ViT-B-32.pt") and source.sha256.startswith("40d3657159")


def test_an_unknown_weight_tag_lists_the_architectures_tags():
    with pytest.raises(ModelError) as caught:
        open_clip_source("ViT-B-32", "openaii")
    assert "did you mean 'openai'?" in caught.value.hint


def test_a_download_is_checked_streamed_with_progress_and_renamed_into_place(server, tmp_path):
    bars = Bars()
    target = tmp_path / "cache" / "tiny.pt"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    download(server.url("/w/tiny.pt"), target, sha256=sha[:16], progress=bars)
    assert target.read_bytes() == PAYLOAD
    assert [(b["kwargs"]["total"], b["count"], b["closed"]) for b in bars.made] == [(len(PAYLOAD), len(PAYLOAD), True)]
    assert no_partial_files(target.parent)


def test_a_download_with_the_wrong_checksum_leaves_no_file(server, tmp_path):
    target = tmp_path / "cache" / "tiny.pt"
    with pytest.raises(ModelError, match="is damaged: its SHA-256 is"):
        download(server.url("/w/tiny.pt"), target, sha256="0000")
    assert list(target.parent.iterdir()) == []


def test_a_download_cut_short_leaves_no_file(server, tmp_path):
    target = tmp_path / "cache" / "cut.pt"
    with pytest.raises(ModelError, match="could not download"):
        download(server.url("/w/cut.pt"), target)
    assert list(target.parent.iterdir()) == []


def test_a_missing_file_on_the_server_is_a_model_error_naming_the_url(server, tmp_path):
    with pytest.raises(ModelError, match=r"could not download http://127\.0\.0\.1:\d+/w/none\.pt: Not Found"):
        download(server.url("/w/none.pt"), tmp_path / "none.pt")


def test_offline_with_a_cold_cache_fails_at_once_and_says_where_it_looked(home, server, tmp_path):
    source = WeightSource(
        "ViT-X", "tag", hf_repo="org/repo", hf_filename="open_clip_pytorch_model.bin", url=server.url("/w/tiny.pt")
    )
    store = ModelStore(tmp_path / "ws" / "thanosql-model")
    with pytest.raises(ModelError) as caught:
        resolve_weights(source, store=store, offline=True)
    assert server.requests == []
    hint = caught.value.hint
    assert "downloads are off (offline)" in caught.value.message
    assert str(store.root) in hint
    assert str(home / ".cache" / "huggingface" / "hub" / "models--org--repo") in hint
    assert "open_clip_model.safetensors or open_clip_pytorch_model.bin" in hint
    assert str(home / ".cache" / "clip" / "tiny.pt") in hint
    assert "checkpoint='path/to/file.pt'" in hint


def test_online_the_weights_are_downloaded_into_open_clips_cache_then_found_there(home, server):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    source = WeightSource("ViT-X", "tag", url=server.url("/w/tiny.pt"), sha256=sha)
    bars = Bars()
    first = resolve_weights(source, offline=False, progress=bars)
    assert (first.origin, first.path) == ("download", home / ".cache" / "clip" / "tiny.pt")
    assert bars.made and bars.made[0]["count"] == len(PAYLOAD)
    again = resolve_weights(source, offline=True)
    assert (again.origin, again.path) == ("cache", first.path)
    assert server.requests == ["/w/tiny.pt"]


def test_a_cached_file_with_the_wrong_checksum_is_not_used(home, server):
    cached = home / ".cache" / "clip" / "tiny.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"something else")
    source = WeightSource("ViT-X", "tag", url=server.url("/w/tiny.pt"), sha256=hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(ModelError):
        resolve_weights(source, offline=True)
    assert resolve_weights(source, offline=False).origin == "download"
    assert cached.read_bytes() == PAYLOAD


def test_the_hugging_face_cache_is_read_in_its_own_layout(home):
    repo = hf_cache_dir() / "models--org--repo"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    weights = repo / "snapshots" / "abc123" / "open_clip_model.safetensors"
    weights.write_bytes(b"w")
    source = WeightSource("ViT-X", "tag", hf_repo="org/repo", hf_filename="open_clip_pytorch_model.bin")
    found = resolve_weights(source, offline=True)
    assert (found.origin, found.path) == ("cache", weights)


def test_a_stored_model_of_the_same_arch_and_tag_is_reused(home, tmp_path):
    store = ModelStore(tmp_path / "thanosql-model")
    with store.create("mine", family="clip", arch="ViT-X", embedding_dim=8, options={"pretrained": "tag"}) as folder:
        (folder / "weights.pt").write_bytes(b"w")
    with store.create("other", family="clip", arch="ViT-X", embedding_dim=8, options={"pretrained": "else"}) as folder:
        (folder / "weights.pt").write_bytes(b"w")
    found = resolve_weights(WeightSource("ViT-X", "tag"), store=store, offline=True)
    assert (found.origin, found.path) == ("model store", store.root / "mine" / "weights.pt")
    with pytest.raises(ModelError):
        resolve_weights(WeightSource("ViT-X", "third"), store=store, offline=True)


def test_an_explicit_checkpoint_comes_before_everything(home, tmp_path):
    store = ModelStore(tmp_path / "thanosql-model")
    with store.create("mine", family="clip", arch="ViT-X", embedding_dim=8, options={"pretrained": "tag"}) as folder:
        (folder / "weights.pt").write_bytes(b"w")
    own = tmp_path / "own.pt"
    own.write_bytes(b"mine")
    found = resolve_weights(WeightSource("ViT-X", "tag"), checkpoint=own, store=store, offline=True)
    assert (found.origin, found.path) == ("checkpoint", own)
    with pytest.raises(ModelError, match="checkpoint file not found"):
        resolve_weights(WeightSource("ViT-X", "tag"), checkpoint=tmp_path / "gone.pt", offline=True)


def test_a_checkpoint_url_is_downloaded_once_and_refused_offline_when_not_cached(home, server):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    url = server.url("/w/tiny.pt") + "#sha256=" + sha
    with pytest.raises(ModelError, match="downloads are off"):
        resolve_weights(None, checkpoint=url, offline=True)
    assert server.requests == []
    assert resolve_weights(None, checkpoint=url, offline=False).origin == "download"
    assert resolve_weights(None, checkpoint=url, offline=True).origin == "cache"
    assert server.requests == ["/w/tiny.pt"]
