"""The cores this process may use and the torch thread count: one place for both, read by the
models (decoding workers, training threads) and by search (how many threads a scan wakes).

Nothing here imports torch until a thread count is set.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` set),
    at least 1.

    >>> available_cores() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextmanager
def torch_threads(count: int):
    """Run the block with ``count`` torch intra-op threads, then restore the previous number;
    yields torch. Waking a second thread costs more than it saves on a small product, and far
    more on a busy machine (measured: 16 ms instead of 0.4 ms for a 25k x 512 int8 GEMV)."""
    import torch

    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield torch
    finally:
        if count != previous:
            torch.set_num_threads(previous)


def idle_cores(sample_s: float = 0.2) -> float:
    """How many of this machine's cores sat idle over the next ``sample_s`` seconds (from
    /proc/stat; the machine's core count where that cannot be read). Other processes' load, as
    the kernel counted it, not a guess from the load average, which lags by a minute."""
    import time

    def totals() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as handle:
                fields = handle.readline().split()[1:]
        except OSError:
            return None
        values = [int(value) for value in fields[:8]]
        return sum(values), values[3] + values[4]  # all ticks, idle + iowait ticks

    before = totals()
    if before is None:
        return float(os.cpu_count() or 1)
    time.sleep(sample_s)
    after = totals()
    elapsed = after[0] - before[0]
    if elapsed <= 0:
        return float(os.cpu_count() or 1)
    return (os.cpu_count() or 1) * (after[1] - before[1]) / elapsed


def training_threads(sample_s: float = 0.2) -> int:
    """The torch threads a training loop should run on: the cores this process may use that no
    other process is busy on, at least one.

    >>> 1 <= training_threads(0.05) <= available_cores()
    True

    Torch's default is one thread per core, which on a machine where other processes keep the
    cores busy makes every step wait for its slowest thread to be scheduled: measured on two
    cores with two busy processes beside it, SimCLR's epoch took 10x as long on two threads as
    on an idle machine (see bench/busy.py for the figures with this choice).
    """
    cores = available_cores()
    free = min(float(cores), idle_cores(sample_s))
    return max(1, min(cores, int(free + 0.5)))
