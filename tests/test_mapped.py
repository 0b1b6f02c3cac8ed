"""A stored model is built without its random initialisation and takes its weights file's tensors
memory-mapped (models/mapped.py): the same weights, read from the file's pages, in this thread only."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from thanosql import ModelError
from thanosql.models import load_adapter
from thanosql.models.mapped import without_random_init
from tiny_clip import save_tiny_checkpoint, upload_tiny


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=4)


def test_a_stored_clip_model_has_exactly_the_weights_of_its_file(session, checkpoint):
    upload_tiny(session, checkpoint)
    stored = torch.load(session.model_dir / "tiny" / "weights.pt", weights_only=True)
    loaded = session.model("tiny").model.state_dict()
    assert loaded.keys() == stored.keys()
    for name, tensor in stored.items():
        assert torch.equal(loaded[name], tensor), name


def test_a_stored_clip_model_reads_its_weights_from_the_file_pages_not_a_copy(session, checkpoint):
    upload_tiny(session, checkpoint)
    weights = session.model_dir / "tiny" / "weights.pt"
    parameters = list(session.model("tiny").model.parameters())
    mapped = mappings_of(weights)
    assert parameters and mapped
    assert all(any(start <= p.data_ptr() < end for start, end in mapped) for p in parameters)


def mappings_of(path) -> list[tuple[int, int]]:
    """The address ranges at which this process maps the file ``path`` (Linux's /proc/self/maps)."""
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs Linux's /proc/self/maps")
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip() == str(path):
                start, end = (int(value, 16) for value in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def test_training_a_loaded_model_never_writes_its_file(session, checkpoint):
    upload_tiny(session, checkpoint)
    weights = session.model_dir / "tiny" / "weights.pt"
    before = weights.read_bytes()
    model = session.model("tiny").model
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    assert weights.read_bytes() == before
    assert not torch.equal(model.state_dict()["logit_scale"], torch.load(weights, weights_only=True)["logit_scale"])


def test_a_stored_model_with_a_damaged_weights_file_is_a_clear_error(session, checkpoint):
    upload_tiny(session, checkpoint)
    weights = session.model_dir / "tiny" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match="cannot load .*weights.pt as weights of open_clip tiny_clip"):
        load_adapter(session.models.get("tiny"), "cpu")


def test_random_fills_are_skipped_inside_the_block_and_other_fills_still_run():
    with without_random_init():
        skipped = [
            torch.zeros(8).uniform_(),
            torch.nn.init.normal_(torch.zeros(8)),
            torch.nn.init.kaiming_uniform_(torch.zeros(4, 4)),
        ]
        filled = torch.nn.init.ones_(torch.zeros(8))
        mask = torch.empty(3, 3).fill_(float("-inf")).triu_(1)
    assert all(torch.count_nonzero(tensor) == 0 for tensor in skipped)
    assert torch.equal(filled, torch.ones(8))
    assert torch.isinf(mask).sum() == 3 and (mask.tril() == 0).all()
    assert torch.count_nonzero(torch.zeros(8).uniform_(1, 2)) == 8  # after the block, as usual


def test_another_thread_initialises_at_random_while_one_thread_skips():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def elsewhere():
        inside.wait(timeout=30)
        seen["linear"] = torch.nn.Linear(64, 64).weight.detach().clone()
        seen["normal"] = torch.nn.init.normal_(torch.zeros(64))
        done.set()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    with without_random_init():
        inside.set()
        assert done.wait(timeout=30)
        here = torch.zeros(64).uniform_()
    thread.join()
    assert torch.count_nonzero(here) == 0
    assert torch.count_nonzero(seen["normal"]) == 64
    assert seen["linear"].std() > 0.01  # kaiming_uniform_ ran: about 1/sqrt(3 * 64) = 0.07
