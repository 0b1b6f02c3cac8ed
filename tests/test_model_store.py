"""The workspace model store: atomic writes, overwrite, delete, and errors that list the models."""

from __future__ import annotations

import json

import pytest

from thanosql import ModelError
from thanosql.models.store import ModelStore


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "thanosql-model")


def make(store, name, content=b"w", **kwargs):
    with store.create(name, family="clip", arch="ViT-X", embedding_dim=8, **kwargs) as folder:
        (folder / "weights.pt").write_bytes(content)


def test_a_created_model_has_its_files_and_metadata(store):
    make(store, "m", options={"pretrained": "tag"}, source="test")
    info = store.get("m")
    assert (info.name, info.family, info.arch, info.embedding_dim, info.options) == (
        "m",
        "clip",
        "ViT-X",
        8,
        {"pretrained": "tag"},
    )
    assert (info.path / "weights.pt").read_bytes() == b"w"
    assert json.loads((info.path / "model.json").read_text())["source"] == "test"


def test_a_failed_write_leaves_the_earlier_model_and_no_partial_folder(store):
    make(store, "m", b"old")
    with pytest.raises(RuntimeError):
        with store.create("m", family="clip", arch="ViT-X", embedding_dim=8, overwrite=True) as folder:
            (folder / "weights.pt").write_bytes(b"new")
            raise RuntimeError("interrupted")
    assert (store.root / "m" / "weights.pt").read_bytes() == b"old"
    assert sorted(p.name for p in store.root.iterdir() if p.name != ".lock") == ["m"]


def test_overwrite_false_refuses_and_true_replaces(store):
    make(store, "m", b"old")
    with pytest.raises(ModelError, match="model 'm' already exists"):
        make(store, "m", b"new")
    make(store, "m", b"new", overwrite=True)
    assert (store.root / "m" / "weights.pt").read_bytes() == b"new"
    assert sorted(p.name for p in store.root.iterdir() if p.name != ".lock") == ["m"]


def test_a_folder_without_model_json_is_listed_as_damaged_not_as_a_model(store):
    make(store, "b")
    make(store, "a")
    (store.root / "half").mkdir()
    (store.root / ".unfinished.partial").mkdir()
    assert [info.name for info in store.list()] == ["a", "b"]
    assert store.damaged() == {"half": "model.json is missing"}


def test_an_unknown_model_lists_the_known_ones(store):
    make(store, "tutorial_search_clip")
    with pytest.raises(ModelError) as caught:
        store.get("tutorial_search_clp")
    assert caught.value.hint.startswith("did you mean 'tutorial_search_clip'? valid models: tutorial_search_clip")


def test_delete_removes_the_folder(store):
    make(store, "m")
    store.delete("m")
    assert store.names() == [] and not (store.root / "m").exists()
    with pytest.raises(ModelError, match="no model named 'm'"):
        store.delete("m")


def test_a_damaged_metadata_file_is_reported(store):
    make(store, "m")
    (store.root / "m" / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="model 'm' is damaged"):
        store.get("m")
