"""Training threads follow the cores other processes leave free, measured from /proc/stat with
real busy processes beside the test, and torch's own setting is restored afterwards."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import TensorDataset

from thanosql.cores import LoadMeter, available_cores, training_threads
from thanosql.models.epochs import ThreadChoice, run_epochs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")


@pytest.fixture
def busy_cores():
    """One process spinning on every core this process may use, for the length of the test."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(available_cores())]
    time.sleep(0.3)  # running before the measurement starts
    yield len(spinners)
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


def test_with_every_core_busy_a_training_loop_takes_one_thread(busy_cores):
    assert training_threads(sample_s=0.5) == 1


def test_a_load_meter_counts_other_processes_work_and_not_its_own(busy_cores):
    meter = LoadMeter()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # this process busy too: that is not "other processes"
        pass
    assert meter.free_cores() < 1.0


def test_the_loop_restores_torchs_thread_count_and_never_raises_it():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        choice = ThreadChoice("cpu")
        choice.adjust()
        assert torch.get_num_threads() == 1  # the user's (or OMP_NUM_THREADS's) ceiling holds
        choice.restore()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_training_loop_beside_busy_processes_runs_on_one_thread_and_gives_the_count_back(busy_cores):
    before = torch.get_num_threads()
    seen = []

    def step(batch, index, total):
        seen.append(torch.get_num_threads())
        return 1.0

    run_epochs(
        TensorDataset(torch.zeros(8, 1)),
        step,
        batch_size=2,
        max_epochs=1,
        seed=0,
        num_workers=0,
        device="cpu",
        desc="test",
    )
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
