"""The cores this process may use and the torch thread count: one place for both, read by the
models (decoding workers, training threads) and by search (how many threads a scan wakes).

Nothing here imports torch until a thread count is set.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

# The unit of /proc/stat's counters.
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, container cpusets) and a
    cgroup CPU quota (``docker --cpus``), at least 1.

    >>> available_cores() >= 1
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(cores, quota) if quota else cores)


def _cgroup_quota() -> int | None:
    """The cores a cgroup v2 CPU limit allows (cpu.max "quota period", rounded up), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as handle:
            quota, period = handle.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


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
    """How many cores no other process used over the next ``sample_s`` seconds (this process
    sleeps meanwhile): the kernel's own count from /proc/stat, not a guess from the load average,
    which lags by a minute. The machine's core count where /proc/stat cannot be read."""
    meter = LoadMeter()
    time.sleep(sample_s)
    return meter.free_cores()


class LoadMeter:
    """Measures, from its start (or its last ``restart``), how busy the machine's cores were with
    other processes' work: all busy ticks in /proc/stat less this process's CPU time.

    >>> meter = LoadMeter()
    >>> 0 <= meter.free_cores() <= os.cpu_count()
    True
    """

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self._ticks, self._own, self._wall = _busy_ticks(), _own_cpu_seconds(), time.monotonic()

    def free_cores(self) -> float:
        """Cores that other processes left free since the start: all of them where /proc/stat
        cannot be read or no time has passed."""
        cores = float(os.cpu_count() or 1)
        ticks, wall = _busy_ticks(), time.monotonic() - self._wall
        if ticks is None or self._ticks is None or wall <= 0:
            return cores
        busy = (ticks - self._ticks) / _TICKS_PER_SECOND  # CPU-seconds of every process
        others = max(0.0, busy - (_own_cpu_seconds() - self._own))
        return max(0.0, min(cores, cores - others / wall))


def training_threads(meter: LoadMeter | None = None, sample_s: float = 0.2) -> int:
    """The torch threads a training loop should run on: the cores this process may use that other
    processes left free (over ``meter``'s span, else a ``sample_s`` sample), at least one.

    >>> 1 <= training_threads(sample_s=0.05) <= available_cores()
    True

    Torch's default is one thread per core. Where other processes keep the cores busy, each step
    then waits for its slowest thread to be scheduled again: measured on two cores beside two busy
    processes, seed 002's SimCLR BUILD took 281 s instead of 27 s (bench/busy.py has the figures
    with this choice).
    """
    free = meter.free_cores() if meter is not None else idle_cores(sample_s)
    cores = available_cores()
    return max(1, min(cores, int(free + 0.5)))


def _busy_ticks() -> int | None:
    """Busy ticks of all cores since boot (user, nice, system, irq, softirq, steal), or None."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system
