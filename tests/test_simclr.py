"""The SimCLR model (models/simclr.py) on small generated images: defaults chosen from the data,
the two-view transform and its switches, seeded training, the store layout, the adapter, and
ImageNet weights found (or refused at once) the way decision 10 says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from thanosql import ModelError
from thanosql.models import load_adapter, simclr
from thanosql.models.base import ModelAdapter
from thanosql.models.images import ImageReadError


def bars(folder, count: int, *, size: int = 20, mode: str = "L", seed: int = 0) -> list[str]:
    """``count`` pictures of one bright bar, upright for even i and lying for odd i, at random
    places: two kinds of image that only a look at their shape tells apart."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        pixels = np.zeros((size, size, 3), dtype=np.uint8)
        at = int(rng.integers(2, size - 6))
        if index % 2 == 0:
            pixels[2:-2, at : at + 4] = rng.integers(180, 256, 3) if mode == "RGB" else 230
        else:
            pixels[at : at + 4, 2:-2] = rng.integers(180, 256, 3) if mode == "RGB" else 230
        path = folder / f"{index}.png"
        Image.fromarray(pixels).convert(mode).save(path)
        paths.append(str(path))
    return paths


def small_config(**changes) -> simclr.SimCLRConfig:
    base = dict(input_size=16, color="gray", batch_size=8, max_epochs=1, seed=0)
    return simclr.SimCLRConfig(**{**base, **changes})


def test_small_images_train_at_32_pixels_and_large_ones_are_not_blown_up():
    assert simclr.default_input_size(28, pretrained=False) == 32
    assert simclr.default_input_size(64, pretrained=False) == 64
    assert simclr.default_input_size(1024, pretrained=False) == 128
    assert simclr.default_input_size(28, pretrained=True) == 64
    assert simclr.default_input_size(1024, pretrained=True) == 224


def test_the_default_batch_gives_one_epoch_of_a_thousand_images_dozens_of_steps():
    assert simclr.default_batch_size(1000) == 16
    assert 1000 // simclr.default_batch_size(1000) >= 50
    assert simclr.default_batch_size(10) == 16
    assert simclr.default_batch_size(100_000) == 256


def test_the_survey_tells_gray_images_from_colour_ones(tmp_path):
    gray = simclr.survey_images(bars(tmp_path / "gray", 4, size=28))
    colour = simclr.survey_images(bars(tmp_path / "colour", 4, size=40, mode="RGB"))
    assert gray == simclr.ImageSurvey(short_side=28, gray=True)
    assert colour == simclr.ImageSurvey(short_side=40, gray=False)


def test_an_rgb_file_of_gray_pixels_counts_as_gray(tmp_path):
    paths = bars(tmp_path, 2)
    Image.open(paths[0]).convert("RGB").save(paths[0])
    assert simclr.survey_images(paths).gray


@pytest.mark.parametrize("stem, side", [("small", 16), ("cifar", 32), ("imagenet", 8)])
def test_each_stem_gives_512_pooled_features_and_keeps_the_resolution_it_promises(stem, side):
    backbone = simclr.build_backbone(stem).eval()
    with torch.no_grad():
        assert backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 512)
        stem_output = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(torch.zeros(1, 3, 32, 32)))))
    assert stem_output.shape[-1] == side


def test_without_flips_a_view_of_a_whole_image_is_never_mirrored(tmp_path):
    image = Image.open(bars(tmp_path, 2, size=16)[0]).convert("RGB")  # a bar off the centre: its mirror differs
    config = small_config(min_scale=1.0, color_jitter=False, rotation=0)
    reference = simclr.EvalTransform(config)(image)
    mirrored = torch.flip(reference, dims=[-1])
    assert not torch.equal(reference, mirrored)
    views = [view for _ in range(20) for view in simclr.two_view_transform(config)(image)]
    assert all(torch.allclose(view, reference, atol=1e-6) for view in views)
    flipping = simclr.two_view_transform(replace_config(config, horizontal_flip=True))
    flipped = [view for _ in range(20) for view in flipping(image)]
    assert any(torch.allclose(view, mirrored, atol=1e-6) for view in flipped)
    assert any(torch.allclose(view, reference, atol=1e-6) for view in flipped)


def replace_config(config, **changes):
    return simclr.with_changes(config, **changes)


def test_gray_mode_gives_three_equal_channels_from_a_colour_image(tmp_path):
    image = Image.open(bars(tmp_path, 1, mode="RGB")[0])
    tensor = simclr.EvalTransform(small_config(color="gray", mean=(0.5,) * 3, std=(0.5,) * 3))(image)
    assert tensor.shape == (3, 16, 16)
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])


def test_training_is_seeded_and_changes_the_weights(tmp_path):
    paths = bars(tmp_path, 24)
    config = small_config()
    torch.manual_seed(0)
    untrained = simclr.build_backbone("small").state_dict()
    first, _, report = simclr.train(simclr.TrainingImages(paths, config), config)
    second, _, _ = simclr.train(simclr.TrainingImages(paths, config), config)
    other, _, _ = simclr.train(simclr.TrainingImages(paths, config), replace_config(config, seed=1))
    assert report.steps == 3 and np.isfinite(report.last_loss)
    weights = {name: first.state_dict()[name] for name in ("conv1.weight", "layer4.1.conv2.weight")}
    for name, value in weights.items():
        assert torch.equal(value, second.state_dict()[name])
        assert not torch.equal(value, other.state_dict()[name])
        assert not torch.equal(value, untrained[name])


def test_a_progress_bar_counts_every_step_and_shows_the_loss(tmp_path):
    paths = bars(tmp_path, 20)
    bars_made = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.count, self.postfix, self.closed = kwargs, 0, {}, False
            bars_made.append(self)

        def update(self, count):
            self.count += count

        def set_postfix(self, refresh=True, **values):
            self.postfix = values

        def close(self):
            self.closed = True

    config = small_config(max_epochs=2)
    simclr.train(simclr.TrainingImages(paths, config), config, progress=Bar)
    (bar,) = bars_made
    assert bar.kwargs["total"] == bar.count == 4  # 20 images in batches of 8, the short one dropped, twice
    assert bar.closed and float(bar.postfix["loss"]) > 0 and bar.postfix["epoch"] == "2/2"


def test_an_unreadable_training_image_fails_before_training_and_names_it(tmp_path):
    paths = bars(tmp_path, 6)
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(ImageReadError) as caught:
        simclr.TrainingImages(paths[:3] + [str(tmp_path / "broken.png")] + paths[3:], small_config())
    assert caught.value.index == 3 and "broken.png" in caught.value.path


def test_images_too_many_for_memory_are_read_at_each_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(simclr, "CACHE_BYTES", 0)
    paths = bars(tmp_path, 12)
    dataset = simclr.TrainingImages(paths, small_config())
    assert dataset.images is None
    first, second = dataset[5]
    assert first.shape == second.shape == (3, 16, 16)


@pytest.fixture
def stored(session, tmp_path):
    paths = bars(tmp_path / "pics", 16)
    config = small_config()
    backbone, head, _ = simclr.train(simclr.TrainingImages(paths, config), config)
    info = simclr.store_simclr_model(session.models, "bars", backbone, head, config, source="test")
    return info, backbone, head, paths


def test_the_store_holds_the_backbone_the_head_and_the_config(stored):
    info, backbone, head, _ = stored
    assert (info.family, info.arch, info.embedding_dim) == ("simclr", "resnet18", 512)
    assert sorted(p.name for p in info.path.iterdir()) == ["head.pt", "model.json", "weights.pt"]
    loaded_backbone, loaded_head, config = simclr.read_simclr_model(info)
    assert config == small_config()
    for name, value in backbone.state_dict().items():
        assert torch.equal(value, loaded_backbone.state_dict()[name])
    for name, value in head.state_dict().items():
        assert torch.equal(value, loaded_head.state_dict()[name])


def test_the_adapter_embeds_images_as_the_backbone_does_and_has_no_text_tower(session, stored):
    info, backbone, _, paths = stored
    adapter = load_adapter(session.models.get("bars"), "cpu")
    assert isinstance(adapter, ModelAdapter) and adapter.modalities == {"image"}
    embeddings = adapter.embed_images(paths[:5], num_workers=0)
    preprocess = simclr.EvalTransform(small_config())
    with torch.no_grad():
        expected = backbone(torch.stack([preprocess(Image.open(p)) for p in paths[:5]])).numpy()
    assert embeddings.shape == (5, 512) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelError) as caught:
        adapter.embed_texts(["a bar"])
    assert "no text encoder" in caught.value.message and "CLIP" in caught.value.hint


def test_a_model_folder_without_weights_is_reported_as_damaged(session, stored):
    info, *_ = stored
    (info.path / "weights.pt").unlink()
    with pytest.raises(ModelError, match="damaged"):
        simclr.read_simclr_model(session.models.get("bars"))


def test_imagenet_weights_offline_with_a_cold_cache_fail_at_once_saying_where_they_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelError) as caught:
        simclr.resolve_imagenet_weights(offline=True)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert "offline" in caught.value.message
    assert str(expected) in caught.value.hint and simclr.IMAGENET_WEIGHTS_URL in caught.value.hint


def test_imagenet_weights_in_torch_hubs_cache_are_used_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(simclr.build_backbone("imagenet").state_dict(), cached)
    assert simclr.resolve_imagenet_weights(offline=True) == cached


def test_imagenet_weights_of_torchvisions_layout_load_without_their_classifier(tmp_path):
    from thanosql.models.torchvision_shim import import_torchvision

    torch.manual_seed(5)
    full = import_torchvision().models.resnet18(weights=None)  # with its 1000-class fc layer
    torch.save(full.state_dict(), tmp_path / "resnet18.pth")
    backbone = simclr.build_backbone("imagenet")
    simclr.load_imagenet_weights(backbone, tmp_path / "resnet18.pth")
    assert torch.equal(backbone.conv1.weight, full.conv1.weight)
    with pytest.raises(ModelError, match="ImageNet weights of a ResNet-18"):
        simclr.load_imagenet_weights(simclr.build_backbone("small"), tmp_path / "resnet18.pth")
