"""The training loop's progress bar names its number for what it is: the mean loss of the
epoch's batches so far, which at the end is the number the training summary prints."""

from __future__ import annotations

import io

import torch
from torch.utils.data import TensorDataset
from tqdm import tqdm

from thanosql.models.epochs import run_epochs


def test_the_bar_shows_the_epochs_mean_loss_which_ends_as_the_reports_last_loss():
    losses = iter([3.0, 1.0, 2.0, 0.0])  # two epochs of two batches
    bars = []

    def progress(**options):
        bars.append(tqdm(file=io.StringIO(), **options))
        return bars[-1]

    report = run_epochs(
        TensorDataset(torch.zeros(4, 1)),
        lambda batch, index, total: next(losses),
        batch_size=2,
        max_epochs=2,
        seed=0,
        num_workers=0,
        device="cpu",
        progress=progress,
        desc="SimCLR",
    )

    assert bars[0].postfix == "epoch=2/2, loss=1.000"
    assert report.last_loss == 1.0 and report.steps == 4
