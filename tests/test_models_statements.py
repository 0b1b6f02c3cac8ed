"""GET THANOSQL MODEL, UPLOAD MODEL and DELETE MODEL through SQL, on the tiny open_clip model."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

import thanosql
from thanosql import ModelError, PlanError
from tiny_clip import (
    FIXTURE,
    LoopbackServer,
    make_images,
    reference_image_embeddings,
    save_tiny_checkpoint,
)

# An architecture open_clip knows only because this test module registers it, as a user would
# with open_clip.add_model_config; GET accepts any architecture open_clip knows.
TEST_ARCH = "thanosql_test_tiny"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from thanosql.models.clip import import_open_clip

    folder = tmp_path_factory.mktemp("tiny")
    open_clip = import_open_clip()
    if open_clip.get_model_config(TEST_ARCH) is None:
        shutil.copy(FIXTURE, folder / f"{TEST_ARCH}.json")
        open_clip.add_model_config(folder / f"{TEST_ARCH}.json")
    return save_tiny_checkpoint(folder, seed=3, name="a.pt"), save_tiny_checkpoint(folder, seed=4, name="b.pt")


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("HOME", str(root))
    for name in ("HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def files(session, checkpoints):
    """The two checkpoints and the tiny config in the workspace, and four images."""
    for path in checkpoints:
        shutil.copy(path, session.workspace / path.name)
    shutil.copy(FIXTURE, session.workspace / "tiny_clip.json")
    make_images(session.workspace / "pics", 4, seed=12)
    session.execute("CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path FROM range(4) r(i)")
    return session.workspace


def embeddings(session, model):
    frame = session.execute(f"CONVERT USING {model} AS SELECT * FROM pics")
    return np.stack(frame["convert_result"].to_numpy())


def expected(files, checkpoint):
    return reference_image_embeddings(checkpoint, [files / "pics" / f"{i}.jpg" for i in range(4)])


# -- GET THANOSQL MODEL ---------------------------------------------------------------------------


def test_get_clip_offline_with_a_cold_cache_fails_at_once_saying_where_it_looked(session, home):
    with pytest.raises(ModelError) as caught:
        session.execute("GET THANOSQL MODEL clip OPTIONS (model_name='tutorial_search_clip', overwrite=True)")
    error = caught.value
    assert "open_clip ViT-B-32 'openai' are not on this machine" in error.message
    assert str(home / ".cache" / "clip" / "ViT-B-32.pt") in error.hint
    assert "models--timm--vit_base_patch32_clip_224.openai" in error.hint
    assert str(session.model_dir) in error.hint
    assert session.models.names() == []


def test_get_an_unknown_pre_built_model_lists_the_known_ones(session):
    with pytest.raises(ModelError) as caught:
        session.execute("GET THANOSQL MODEL clap")
    assert caught.value.hint.startswith("did you mean 'clip'? valid pre-built models: clip")


def test_get_with_another_arch_looks_for_that_archs_weights(session, home):
    with pytest.raises(ModelError, match="open_clip ViT-B-16 'openai'"):
        session.execute("GET THANOSQL MODEL clip OPTIONS (arch='ViT-B-16')")
    with pytest.raises(ModelError, match="did you mean 'openai'"):
        session.execute("GET THANOSQL MODEL clip OPTIONS (pretrained='opnai')")


def test_get_with_a_local_checkpoint_stores_a_model_that_converts_like_open_clip(session, files, checkpoints, notices):
    session.execute(f"GET THANOSQL MODEL clip OPTIONS (model_name='m', arch='{TEST_ARCH}', checkpoint='a.pt')")
    info = session.models.get("m")
    assert (info.family, info.arch, info.embedding_dim, info.options["pretrained"]) == ("clip", TEST_ARCH, 32, None)
    assert any("model 'm': open_clip thanosql_test_tiny with weights, from the checkpoint" in str(n) for n in notices)
    np.testing.assert_allclose(embeddings(session, "m"), expected(files, checkpoints[0]), atol=1e-5, rtol=0)


def test_get_with_a_missing_checkpoint_points_at_the_option(session, files):
    with pytest.raises(ModelError) as caught:
        session.execute("GET THANOSQL MODEL clip OPTIONS (checkpoint='weights/clip.pt')")
    assert caught.value.message == "checkpoint file not found: weights/clip.pt"
    assert caught.value.column == len("GET THANOSQL MODEL clip OPTIONS (") + 1
    assert session.models.names() == []


def test_get_downloads_a_checkpoint_url_when_online(session, files, checkpoints, home):
    body = checkpoints[1].read_bytes()
    with LoopbackServer({"/models/b.pt": body}) as server:
        url = server.url("/models/b.pt") + "#sha256=" + hashlib.sha256(body).hexdigest()
        session.configure(offline=False)
        session.execute(f"GET THANOSQL MODEL clip OPTIONS (model_name='m', arch='{TEST_ARCH}', checkpoint='{url}')")
    assert server.requests == ["/models/b.pt"]
    assert (home / ".cache" / "clip" / "b.pt").read_bytes() == body
    np.testing.assert_allclose(embeddings(session, "m"), expected(files, checkpoints[1]), atol=1e-5, rtol=0)


def test_get_refuses_to_replace_a_model_unless_overwrite_is_true(session, files, checkpoints):
    get = f"GET THANOSQL MODEL clip OPTIONS (model_name='m', arch='{TEST_ARCH}', checkpoint='{{}}'{{}})"
    session.execute(get.format("a.pt", ""))
    with pytest.raises(ModelError, match="model 'm' already exists") as caught:
        session.execute(get.format("b.pt", ""))
    assert "overwrite=True" in caught.value.hint
    np.testing.assert_allclose(embeddings(session, "m"), expected(files, checkpoints[0]), atol=1e-5, rtol=0)
    session.execute(get.format("b.pt", ", overwrite=True"))
    np.testing.assert_allclose(embeddings(session, "m"), expected(files, checkpoints[1]), atol=1e-5, rtol=0)


def test_get_in_the_legacy_as_alias_form_names_the_model(session, files):
    session.execute(
        f"GET THANOSQL MODEL clip OPTIONS (overwrite=True, arch='{TEST_ARCH}', checkpoint='a.pt') AS tutorial_search_clip"
    )
    assert session.models.names() == ["tutorial_search_clip"]


# -- UPLOAD MODEL ---------------------------------------------------------------------------------


def test_upload_copies_the_checkpoint_into_the_store(session, files, checkpoints):
    session.execute("UPLOAD MODEL up OPTIONS (framework='open_clip', model_config='tiny_clip.json') FROM 'a.pt'")
    (files / "a.pt").unlink()
    info = session.models.get("up")
    assert (info.arch, info.options["pretrained"]) == ("tiny_clip", None)
    assert "UPLOAD MODEL from a.pt" in info.source
    np.testing.assert_allclose(embeddings(session, "up"), expected(files, checkpoints[0]), atol=1e-5, rtol=0)


def test_upload_takes_absolute_paths_and_hugging_face_style_configs(session, files, checkpoints, tmp_path):
    wrapped = tmp_path / "tiny_clip.json"
    wrapped.write_text(json.dumps({"model_cfg": json.loads(FIXTURE.read_text()), "preprocess_cfg": {}}))
    session.execute(f"UPLOAD MODEL up OPTIONS (arch='tiny_clip', model_config='{wrapped}') FROM '{checkpoints[1]}'")
    np.testing.assert_allclose(embeddings(session, "up"), expected(files, checkpoints[1]), atol=1e-5, rtol=0)


def test_upload_refuses_a_checkpoint_of_another_architecture(session, files):
    config = json.loads(FIXTURE.read_text())
    config["vision_cfg"]["width"] = 96
    (files / "wider.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as caught:
        session.execute("UPLOAD MODEL up OPTIONS (model_config='wider.json') FROM 'a.pt'")
    assert "as weights of open_clip wider" in caught.value.message
    assert "size mismatch" in caught.value.message
    assert session.models.names() == []


def test_upload_refuses_an_arch_that_differs_from_the_config_file_name(session, files):
    with pytest.raises(PlanError, match="arch 'tiny' does not match the model config's file name 'tiny_clip.json'"):
        session.execute("UPLOAD MODEL up OPTIONS (arch='tiny', model_config='tiny_clip.json') FROM 'a.pt'")


def test_upload_needs_an_arch_or_a_config(session, files):
    with pytest.raises(PlanError, match="needs the open_clip architecture"):
        session.execute("UPLOAD MODEL up FROM 'a.pt'")


def test_upload_of_an_unknown_builtin_arch_suggests_the_nearest(session, files):
    with pytest.raises(ModelError) as caught:
        session.execute("UPLOAD MODEL up OPTIONS (arch='ViT-B-33') FROM 'a.pt'")
    assert "open_clip has no architecture 'ViT-B-33'" in caught.value.message
    assert caught.value.hint.startswith("did you mean 'ViT-B-32'?")


def test_upload_names_a_missing_checkpoint_or_config(session, files):
    with pytest.raises(ModelError, match="file not found: gone.pt"):
        session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'gone.pt'")
    with pytest.raises(ModelError, match="model config not found: gone.json"):
        session.execute("UPLOAD MODEL up OPTIONS (model_config='gone.json') FROM 'a.pt'")


def test_upload_of_a_file_that_is_not_a_checkpoint_is_a_clear_error(session, files):
    (files / "junk.pt").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ModelError, match="cannot load .*junk.pt as weights of open_clip tiny_clip"):
        session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'junk.pt'")


def test_upload_of_a_config_without_the_open_clip_keys_is_refused(session, files):
    (files / "half.json").write_text(json.dumps({"embed_dim": 32}))
    with pytest.raises(ModelError, match="lacks vision_cfg, text_cfg"):
        session.execute("UPLOAD MODEL up OPTIONS (model_config='half.json') FROM 'a.pt'")


def small_encoder():
    """A tiny convolutional image encoder: (B, 3, 32, 32) -> (B, 16)."""
    import torch

    torch.manual_seed(5)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    ).eval()


def torchvision_reference(module, paths, side):
    import torch
    from PIL import Image

    from thanosql.models.torchvision_shim import import_torchvision

    t = import_torchvision().transforms
    preprocess = t.Compose(
        [
            t.Resize(side, interpolation=t.InterpolationMode.BICUBIC),
            t.CenterCrop(side),
            t.ToTensor(),
            t.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    with torch.no_grad():
        return np.stack([module(preprocess(Image.open(p).convert("RGB"))[None])[0].numpy() for p in paths])


@pytest.mark.parametrize("saved_as", ["torchscript", "pickle"])
def test_upload_of_a_pytorch_image_encoder_converts_like_its_own_forward(session, files, saved_as):
    import torch

    module = small_encoder()
    if saved_as == "torchscript":
        torch.jit.save(torch.jit.script(module), files / "enc.pt")
    else:
        torch.save(module, files / "enc.pt")
    session.execute("UPLOAD MODEL enc OPTIONS (framework='pytorch', input_size=32) FROM 'enc.pt'")
    info = session.models.get("enc")
    assert (info.family, info.embedding_dim, info.options) == ("pytorch", 16, {"input_size": 32, "format": saved_as})
    reference = torchvision_reference(module, [files / "pics" / f"{i}.jpg" for i in range(4)], 32)
    np.testing.assert_allclose(embeddings(session, "enc"), reference, atol=1e-5, rtol=0)
    with pytest.raises(ModelError, match="cannot embed texts"):
        session.execute("CONVERT USING enc OPTIONS (convert_type='text') AS SELECT 'a cat' AS text")


def test_upload_of_a_state_dict_as_a_pytorch_model_explains_what_is_missing(session, files):
    with pytest.raises(ModelError, match="a.pt holds a OrderedDict, not a model") as caught:
        session.execute("UPLOAD MODEL enc OPTIONS (framework='pytorch') FROM 'a.pt'")
    assert "save the whole module" in caught.value.hint


def test_upload_of_a_pytorch_model_that_rejects_the_input_size_says_so(session, files):
    import torch

    torch.jit.save(torch.jit.script(torch.nn.Linear(5, 3)), files / "lin.pt")
    with pytest.raises(ModelError, match=r"fails on a \(1, 3, 32, 32\) image") as caught:
        session.execute("UPLOAD MODEL enc OPTIONS (framework='pytorch', input_size=32) FROM 'lin.pt'")
    assert "input_size" in caught.value.hint
    assert session.models.names() == []


def test_upload_refuses_to_replace_a_model_unless_overwrite_is_true(session, files, checkpoints):
    session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'a.pt'")
    with pytest.raises(ModelError, match="already exists"):
        session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'b.pt'")
    session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json', overwrite=True) FROM 'b.pt'")
    np.testing.assert_allclose(embeddings(session, "up"), expected(files, checkpoints[1]), atol=1e-5, rtol=0)


# -- DELETE MODEL ---------------------------------------------------------------------------------


def test_delete_removes_the_model_and_its_loaded_copy(session, files):
    session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'a.pt'")
    session.execute("UPLOAD MODEL keep OPTIONS (model_config='tiny_clip.json') FROM 'a.pt'")
    embeddings(session, "up")
    session.execute("DELETE MODEL up")
    assert session.models.names() == ["keep"]
    assert "up" not in session.caches.models.names()
    with pytest.raises(ModelError, match="no model named 'up'") as caught:
        embeddings(session, "up")
    assert "valid models: keep" in caught.value.hint


def test_delete_of_an_unknown_model_lists_the_known_ones(session, files):
    session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'a.pt'")
    with pytest.raises(ModelError) as caught:
        session.execute("DELETE MODEL upp")
    assert caught.value.hint.startswith("did you mean 'up'?")


def test_a_model_survives_a_new_session_on_the_same_workspace(session, files, checkpoints):
    session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'a.pt'")
    session.close()
    with thanosql.connect(files, offline=True, progress=False) as again:
        np.testing.assert_allclose(embeddings(again, "up"), expected(files, checkpoints[0]), atol=1e-5, rtol=0)


def test_upload_of_a_config_open_clip_cannot_build_is_a_clear_error(session, files):
    config = json.loads(FIXTURE.read_text())
    config["vision_cfg"]["colour"] = "blue"
    (files / "odd.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="open_clip cannot build architecture 'odd'.*colour"):
        session.execute("UPLOAD MODEL up OPTIONS (model_config='odd.json') FROM 'a.pt'")


def test_get_with_an_unknown_arch_suggests_the_nearest(session):
    with pytest.raises(ModelError) as caught:
        session.execute("GET THANOSQL MODEL clip OPTIONS (arch='ViT-B-31')")
    assert "open_clip has no architecture 'ViT-B-31'" in caught.value.message
    assert caught.value.hint.startswith("did you mean 'ViT-B-32'?")


def test_upload_reads_a_torchscript_archive_as_openai_ships_its_weights(session, files, checkpoints):
    import torch

    from thanosql.models.clip import build_open_clip
    from tiny_clip import ARCH, tiny_config

    model, _, _ = build_open_clip(ARCH, tiny_config(), checkpoint=checkpoints[0])
    torch.jit.script(model).save(str(files / "scripted.pt"))
    session.execute("UPLOAD MODEL up OPTIONS (model_config='tiny_clip.json') FROM 'scripted.pt'")
    np.testing.assert_allclose(embeddings(session, "up"), expected(files, checkpoints[0]), atol=1e-5, rtol=0)
