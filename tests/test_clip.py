"""The CLIP adapter and the shared image pipeline, on the tiny open_clip model: reduced-size JPEG
decoding, worker processes, batching, failures, and the store layout a CLIP model is written in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thanosql import ModelError
from thanosql.models import load_adapter, resolve_device
from thanosql.models.base import ModelAdapter
from thanosql.models.images import DRAFT_MARGIN, ImageReadError, open_image
from tiny_clip import make_images, reference_image_embeddings, save_tiny_checkpoint, upload_tiny


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=2)


@pytest.fixture
def adapter(session, checkpoint):
    upload_tiny(session, checkpoint)
    return session.model("tiny")


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_the_adapter_follows_the_model_adapter_protocol(adapter):
    assert isinstance(adapter, ModelAdapter)
    assert adapter.embedding_dim == 32
    assert adapter.modalities == {"image", "text"}
    assert adapter.info.family == "clip"


def test_a_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    path = make_images(tmp_path, 1, size=(600, 400))[0]
    with open_image(path, input_size=32) as image:
        image.load()
        # The short side keeps at least DRAFT_MARGIN x 32 = 64 pixels: 400 / 4 = 100 (400 / 8 = 50 is too few).
        assert image.size == (150, 100)
    with open_image(path, input_size=None) as image:
        image.load()
        assert image.size == (600, 400)


def test_an_image_smaller_than_four_times_the_input_is_decoded_whole(tmp_path):
    side = 2 * DRAFT_MARGIN * 32 - 1
    path = make_images(tmp_path, 1, size=(side + 40, side))[0]
    with open_image(path, input_size=32) as image:
        image.load()
        assert image.size == (side + 40, side)


def test_reduced_decoding_stays_close_and_can_be_turned_off_for_exactness(adapter, checkpoint, tmp_path):
    paths = make_images(tmp_path, 4, size=(640, 480), seed=5)
    expected = reference_image_embeddings(checkpoint, paths)
    reduced = adapter.embed_images(paths, num_workers=0)
    assert cosine(reduced, expected).min() > 0.999
    adapter.reduced_decode = False
    np.testing.assert_allclose(adapter.embed_images(paths, num_workers=0), expected, atol=1e-5, rtol=0)


def test_worker_processes_and_batch_sizes_do_not_change_the_embeddings(adapter, tmp_path):
    paths = make_images(tmp_path, 21, seed=6)
    alone = adapter.embed_images(paths, batch_size=21, num_workers=0)
    parallel = adapter.embed_images(paths, batch_size=4, num_workers=2)
    np.testing.assert_allclose(parallel, alone, atol=1e-5, rtol=0)


def test_progress_counts_every_image(adapter, tmp_path):
    paths = make_images(tmp_path, 7, seed=7)
    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.count, self.closed = kwargs, 0, False
            bars.append(self)

        def update(self, n):
            self.count += n

        def close(self):
            self.closed = True

    adapter.embed_images(paths + [tmp_path / "missing.jpg"], batch_size=3, progress=Bar, on_error="null")
    assert [(b.kwargs["total"], b.count, b.closed, b.kwargs["unit"]) for b in bars] == [(8, 8, True, "img")]


def test_unreadable_images_raise_with_their_index_or_come_back_as_nan(adapter, tmp_path):
    paths = make_images(tmp_path, 5, seed=8)
    paths[3] = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError) as caught:
        adapter.embed_images(paths, batch_size=2, num_workers=2)
    assert (caught.value.index, caught.value.reason) == (3, "file not found")
    result = adapter.embed_images(paths, batch_size=2, on_error="null")
    assert np.isnan(result).all(axis=1).tolist() == [False, False, False, True, False]


def test_texts_embed_the_same_alone_or_in_batches(adapter):
    texts = ["a cat", "two dogs on a beach", "", "a very long caption " * 20]
    together = adapter.embed_texts(texts, batch_size=4)
    one_by_one = np.concatenate([adapter.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5, rtol=0)
    assert together.dtype == np.float32 and together.shape == (4, 32)


def test_the_store_layout_holds_weights_config_and_preprocessing(adapter, session):
    folder = session.model_dir / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model_config.json", "weights.pt"]
    meta = json.loads((folder / "model.json").read_text())
    assert (meta["family"], meta["arch"], meta["embedding_dim"]) == ("clip", "tiny_clip", 32)
    assert meta["options"]["preprocess"]["size"] == [32, 32]
    assert meta["options"]["preprocess"]["interpolation"] == "bicubic"
    assert json.loads((folder / "model_config.json").read_text())["embed_dim"] == 32


def test_a_stored_model_loads_the_same_in_a_new_session(adapter, session, tmp_path):
    import thanosql

    paths = make_images(tmp_path, 3, seed=10)
    with thanosql.connect(session.workspace, offline=True, progress=False) as other:
        again = load_adapter(other.models.get("tiny"), "cpu")
    np.testing.assert_array_equal(again.embed_images(paths), adapter.embed_images(paths))


def test_a_stored_model_without_weights_is_reported_damaged(adapter, session):
    (session.model_dir / "tiny" / "weights.pt").unlink()
    with pytest.raises(ModelError, match="model 'tiny' is damaged"):
        load_adapter(session.models.get("tiny"), "cpu")


def test_an_unknown_family_is_a_clear_error(session):
    with session.models.create("odd", family="word2vec", arch="x", embedding_dim=3):
        pass
    with pytest.raises(ModelError, match="family 'word2vec'"):
        load_adapter(session.models.get("odd"), "cpu")


def test_resolve_device_honours_cpu_and_refuses_a_missing_cuda():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.gpu
def test_half_precision_on_cuda_stays_close_to_the_cpu_embeddings(adapter, session, tmp_path):
    paths = make_images(tmp_path, 8, seed=11)
    on_gpu = load_adapter(session.models.get("tiny"), "cuda")
    assert cosine(on_gpu.embed_images(paths), adapter.embed_images(paths)).min() > 0.99
    assert cosine(on_gpu.embed_texts(["a cat"]), adapter.embed_texts(["a cat"])).min() > 0.99


def schedule_after(images, decode_seconds, encode_seconds, *, workers=None, device="cpu"):
    from thanosql.models.images import ImageFiles, _Schedule

    schedule = _Schedule(ImageFiles([], None, None), batch_size=32, workers=workers, device=device)
    schedule.record(images, decode_seconds, encode_seconds, encode_seconds)
    return schedule


def test_worker_processes_start_only_when_they_save_more_than_they_cost():
    # ViT-B-32 on small JPEGs: encoding is 15x decoding; workers would only share the cores.
    assert not schedule_after(32, 32 * 0.004, 32 * 0.060)._workers_pay_off(10_000)
    # A GPU encoder: decoding is all the CPU does.
    assert schedule_after(32, 32 * 0.004, 32 * 0.001, device="cuda")._workers_pay_off(10_000)
    # A short job: the workers' start costs more than the decoding they would take over.
    assert not schedule_after(32, 32 * 0.020, 32 * 0.002, device="cuda")._workers_pay_off(16)
    assert not schedule_after(0, 0.0, 0.0)._workers_pay_off(100)


def test_the_encoder_gets_one_thread_while_decoding_dominates_and_its_threads_back_after():
    import torch

    original = torch.get_num_threads()
    schedule = schedule_after(8, 1.0, 0.1, workers=2)
    try:
        assert torch.get_num_threads() == 1
        schedule.record(8, 0.0, 5.0, 5.0)
        assert torch.get_num_threads() == original
        schedule.record(8, 100.0, 0.0, 0.0)
    finally:
        schedule.restore()
    assert torch.get_num_threads() == original
    schedule_after(8, 1.0, 0.0, workers=0)
    assert torch.get_num_threads() == original


def test_embedding_leaves_the_thread_count_as_it_found_it(adapter, tmp_path):
    import torch

    paths = make_images(tmp_path, 9, size=(400, 300), seed=13)
    before = torch.get_num_threads()
    adapter.embed_images(paths, batch_size=3, num_workers=2)
    adapter.embed_images(paths[:2], num_workers=0)
    assert torch.get_num_threads() == before


def test_switching_to_workers_after_the_probe_keeps_every_image_in_order(tmp_path):
    from thanosql.models.clip import build_open_clip
    from thanosql.models.images import PROBE_IMAGES, ImageFiles, _Schedule
    from tiny_clip import tiny_config

    class AlwaysWorkers(_Schedule):
        def _workers_pay_off(self, remaining):
            return remaining > 0

    _, preprocess, _ = build_open_clip("tiny_clip", tiny_config())
    paths = make_images(tmp_path, PROBE_IMAGES + 11, seed=14)
    paths[PROBE_IMAGES + 3] = tmp_path / "missing.jpg"
    schedule = AlwaysWorkers(ImageFiles(paths, preprocess, 32), batch_size=4, workers=None, device="cpu")
    seen, failed = [], []
    for indexes, batch, failures, _ in schedule.batches():
        seen += indexes
        failed += [index for index, _ in failures]
        assert batch is None or len(batch) == len(indexes)
    schedule.restore()
    assert schedule.workers >= 1
    assert failed == [PROBE_IMAGES + 3]
    assert seen == [i for i in range(len(paths)) if i != PROBE_IMAGES + 3]


def test_the_image_dataset_survives_workers_started_with_spawn(tmp_path):
    # macOS, and Linux from Python 3.14, start workers by spawn/forkserver: they unpickle the
    # dataset, and with it a torchvision transform, in a fresh interpreter.
    from torch.utils.data import DataLoader

    from thanosql.models.clip import build_open_clip
    from thanosql.models.images import ImageFiles, collate
    from tiny_clip import tiny_config

    _, preprocess, _ = build_open_clip("tiny_clip", tiny_config())
    paths = make_images(tmp_path, 4, seed=15)
    loader = DataLoader(
        ImageFiles(paths, preprocess, 32),
        batch_size=2,
        num_workers=1,
        collate_fn=collate,
        multiprocessing_context="spawn",
    )
    here = collate([ImageFiles(paths, preprocess, 32)[i] for i in range(4)])[1]
    batches = list(loader)
    assert [b[0] for b in batches] == [[0, 1], [2, 3]]
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), here.numpy())
