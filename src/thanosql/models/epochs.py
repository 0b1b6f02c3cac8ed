"""The training loop SimCLR and CLIP share: seeded, shuffled batches for a number of epochs, one
optimiser step per batch (the trainer's ``step``), a progress bar with the running loss, and the
worker processes stopped at once on an interrupt.

The bar's ``loss`` is the mean loss of the epoch's batches so far: at the end of the last
epoch it is TrainingReport.last_loss, the number the summary prints (one name per number, issue 13).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..cores import LoadMeter, training_threads

# How often a training loop on a CPU looks again at how busy the machine is.
RECHOOSE_S = 5.0


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did: steps taken, the mean loss of its last epoch, seconds spent."""

    steps: int
    epochs: int
    last_loss: float
    seconds: float


class ThreadChoice:
    """The torch threads of a training loop on a CPU: the free cores (cores.training_threads),
    chosen at the start from a short sample and again every RECHOOSE_S seconds from what other
    processes did meanwhile, never more than torch was set to (OMP_NUM_THREADS, or the user's
    torch.set_num_threads). On a GPU it leaves torch as it is."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch, self.active = torch, device == "cpu"
        self.before = torch.get_num_threads()
        self.meter = LoadMeter()
        self.chosen_at = float("-inf")

    def adjust(self) -> None:
        now = time.monotonic()
        if not self.active or now - self.chosen_at < RECHOOSE_S:
            return
        first = self.chosen_at == float("-inf")
        wanted = min(self.before, training_threads(None if first else self.meter))
        if wanted != self.torch.get_num_threads():
            self.torch.set_num_threads(wanted)
        self.meter.restart()
        self.chosen_at = now

    def restore(self) -> None:
        if self.active and self.torch.get_num_threads() != self.before:
            self.torch.set_num_threads(self.before)


@dataclass(frozen=True)
class Shard:
    """This process's part of data-parallel training (engine='ray', ray_training.py): worker
    ``rank`` of ``size``, each taking every size-th example of each shuffled batch and averaging
    its gradients with the others' (torch.distributed, set up by Ray Train) after each backward
    pass. A shard of size 1 is the local loop exactly: same batches, same steps."""

    rank: int = 0
    size: int = 1

    def batches(self, batch_sampler):
        """Indices of this worker's part of each batch of ``batch_sampler``."""
        return _ShardedBatches(batch_sampler, self.rank, self.size)

    def share_weights(self, parameters) -> None:
        """Every worker starts from rank 0's weights."""
        if self.size > 1:
            import torch.distributed as dist

            for parameter in parameters:
                dist.broadcast(parameter.data, src=0)

    def average_gradients(self, parameters) -> None:
        """Each gradient replaced by the mean over the workers (after loss.backward())."""
        if self.size > 1:
            import torch.distributed as dist

            for parameter in parameters:
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad /= self.size


class _ShardedBatches:
    def __init__(self, batch_sampler, rank: int, size: int) -> None:
        self.batch_sampler, self.rank, self.size = batch_sampler, rank, size

    def __iter__(self):
        for batch in self.batch_sampler:
            yield batch[self.rank :: self.size]

    def __len__(self) -> int:
        return len(self.batch_sampler)


def run_epochs(
    dataset,
    step: Callable[[Any, int, int], float],
    *,
    batch_size: int,
    max_epochs: int,
    seed: int,
    num_workers: int,
    device: str,
    progress=None,
    desc: str,
    shard: Shard | None = None,
) -> TrainingReport:
    """Call ``step(batch, index, total)`` (it takes one optimiser step and returns the loss) for
    every batch of ``dataset``, ``max_epochs`` times; ``index`` counts steps from 0 and ``total``
    is their number, for schedules.

    >>> run_epochs(images, step, batch_size=16, max_epochs=1, seed=0, num_workers=0, device="cpu", desc="SimCLR")  # doctest: +SKIP
    TrainingReport(steps=62, epochs=1, last_loss=2.4, seconds=17.1)

    Batches are shuffled by a generator seeded with ``seed``. Contrastive losses need two
    examples or more, and a short last batch would weigh its few examples as much as a full one:
    it is dropped (reshuffled next epoch) unless it is all there is. ``shard``: this process's
    part of data-parallel training; every worker draws the same batches and takes its part.
    """
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    started = time.perf_counter()
    batch_size = min(batch_size, len(dataset))
    generator = torch.Generator().manual_seed(seed)
    # What DataLoader(shuffle=True, generator=generator) builds, so a shard of one is the local loop.
    batches = BatchSampler(RandomSampler(dataset, generator=generator), batch_size, drop_last=len(dataset) > batch_size)
    loader = DataLoader(
        dataset,
        batch_sampler=(shard or Shard()).batches(batches),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=generator,
        pin_memory=device == "cuda",
    )
    total = len(loader) * max_epochs
    bar = progress(total=total, desc=desc, unit="step") if progress else None
    steps, last_loss = 0, float("nan")
    threads = ThreadChoice(device)
    try:
        for epoch in range(max_epochs):
            running, count = 0.0, 0
            for batch in loader:
                threads.adjust()
                value = step(batch, steps, total)
                steps += 1
                running, count = running + value, count + 1
                if bar is not None:
                    if hasattr(bar, "set_postfix"):
                        # The running mean of the epoch's losses, which at the end of the last epoch
                        # is the summary's loss (one name, one number).
                        bar.set_postfix(epoch=f"{epoch + 1}/{max_epochs}", loss=f"{running / count:.3f}", refresh=False)
                    bar.update(1)
            last_loss = running / max(count, 1)
    finally:
        threads.restore()
        if bar is not None:
            bar.close()
        del loader  # stops worker processes at once on an interrupt
    return TrainingReport(steps, max_epochs, last_loss, time.perf_counter() - started)
