"""Where CONVERT, BUILD MODEL and FIT MODEL run: ``'local'`` (this process, the default) or
``'ray'`` (a Ray cluster), chosen by the engine setting or a statement's ``OPTIONS (engine=...)``.

Ray is an optional extra, imported only when a statement runs on it. The cluster is found the way
Ray itself finds it: the one this process is already connected to, else ``RAY_ADDRESS``, else a Ray
started here with this machine's cores, on the loopback interface only (a notice says so). What
runs on the cluster is in ray_convert.py and ray_training.py.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from .errors import ExecutionError, ThanoSQLError
from .options import ENGINES

INSTALL_COMMAND = "pip install 'thanosql[ray]'"

# Most CPU actors of one CONVERT get this many cores each: an encoder's threads scale well that
# far, and each actor holds its own packed copy of the image tower (the weights file's pages are
# shared: models/mapped.py).
MOST_THREADS_PER_ACTOR = 4
# CPU actors aimed at on a large cluster: fewer, larger actors past it (fewer copies of the model).
ACTORS_AIMED_AT = 8


def checked_engine(name: str | None) -> str:
    """An engine setting: 'local' (the default) or 'ray'.

    >>> checked_engine(None), checked_engine(" Ray ")
    ('local', 'ray')
    """
    value = (name or "local").strip().lower()
    if value not in ENGINES:
        raise ThanoSQLError(
            f"unknown engine {name!r}",
            hint="valid engines: " + ", ".join(ENGINES) + " (e.g. connect(engine='ray') or THANOSQL_ENGINE=ray)",
        )
    return value


def engine_of(session, options: dict[str, Any]) -> str:
    """The engine a statement runs on: its ``engine`` option, else the session's setting."""
    return options.get("engine") or session.settings.engine


def import_ray():
    """The ray module, or a ThanoSQLError naming the command that installs it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ThanoSQLError(
            "engine 'ray' needs Ray, which is not installed here",
            hint=f"{INSTALL_COMMAND}, or run with engine='local'",
        ) from exc
    return ray


def ray_cluster(notify):
    """The ray module, connected: to the cluster this process already uses, else to RAY_ADDRESS,
    else to a Ray started here (loopback only, this machine's cores), said through ``notify``.

    >>> ray = ray_cluster(print)  # doctest: +SKIP
    engine 'ray': no Ray cluster to join (RAY_ADDRESS is not set), so one was started on this machine ...
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS", "").strip()
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            from .cores import available_cores

            cores = available_cores()
            # Workers' own lines (Ray Train's start-up chatter) stay in Ray's logs: what fails on
            # them reaches the statement as its error.
            ray.init(
                num_cpus=cores,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            notify(
                f"engine 'ray': no Ray cluster to join (RAY_ADDRESS is not set), so one was started on this "
                f"machine with {cores} CPU{'s' if cores != 1 else ''}, reachable from 127.0.0.1 only"
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray"
        raise ThanoSQLError(
            f"could not connect to {where}: {exc}",
            hint="check RAY_ADDRESS (e.g. ray://head:10001, or the head's host:6379), or unset it to start Ray here",
        ) from exc
    return ray


@dataclass(frozen=True)
class Actors:
    """The actor pool of one CONVERT on Ray: ``count`` actors of ``num_cpus`` cores (and one GPU
    each when ``num_gpus`` is 1)."""

    count: int
    num_cpus: int
    num_gpus: int

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus else "cpu"


def plan_actors(resources: dict[str, float], wanted: int | None = None) -> Actors:
    """How many actors embed, from the cluster's ``resources`` (ray.cluster_resources()).

    >>> plan_actors({"CPU": 2.0})
    Actors(count=2, num_cpus=1, num_gpus=0)
    >>> plan_actors({"CPU": 64.0})
    Actors(count=16, num_cpus=4, num_gpus=0)
    >>> plan_actors({"CPU": 16.0, "GPU": 2.0})
    Actors(count=2, num_cpus=8, num_gpus=1)

    With GPUs: one actor per GPU, with its share of the cores for decoding. Without: about
    ACTORS_AIMED_AT actors sharing the cores, none with more than MOST_THREADS_PER_ACTOR (an actor
    decodes and encodes in turn, so two one-core actors keep both cores busy where one two-core
    actor would leave one idle while it decodes). ``wanted`` (THANOSQL_RAY_ACTORS) sets the count.
    """
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    if gpus:
        count = wanted or gpus
        return Actors(count, max(1, cpus // count), 1)
    threads = max(1, min(MOST_THREADS_PER_ACTOR, cpus // ACTORS_AIMED_AT))
    count = wanted or max(1, cpus // threads)
    return Actors(count, max(1, min(threads, cpus // count)), 0)


def wanted_count(variable: str) -> int | None:
    """THANOSQL_RAY_ACTORS (CONVERT's actors) or THANOSQL_RAY_WORKERS (training workers), when set."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ThanoSQLError(f"{variable} must be a whole number, 1 or more, not {text!r}")
    return int(text)


@dataclass(frozen=True)
class Workers:
    """The Ray Train workers of one BUILD or FIT MODEL: ``count`` workers of ``num_cpus`` cores,
    each with a GPU when ``use_gpu``."""

    count: int
    num_cpus: int
    use_gpu: bool


def plan_workers(resources: dict[str, float], nodes: int, wanted: int | None = None) -> Workers:
    """How many processes train, from the cluster's ``resources`` and its number of ``nodes``.

    >>> plan_workers({"CPU": 2.0}, nodes=1)
    Workers(count=1, num_cpus=2, use_gpu=False)
    >>> plan_workers({"CPU": 64.0, "GPU": 4.0}, nodes=2)
    Workers(count=4, num_cpus=16, use_gpu=True)

    One per GPU; without GPUs one per node, with all of its cores (an optimiser step's threads
    share a machine better than processes that average their gradients after every step).
    ``wanted`` (THANOSQL_RAY_WORKERS) sets the count.
    """
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    count = wanted or gpus or max(1, nodes)
    return Workers(count, max(1, cpus // count), bool(gpus))


def cluster_error(exc: BaseException, statement: str) -> ThanoSQLError:
    """The ThanoSQLError raised on the cluster (an unreadable image, a model that cannot load) for
    an exception Ray raised about it, else one naming what went wrong there."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        cause = pending.pop(0)
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, ThanoSQLError):
            return cause
        # RayTaskError keeps the worker's exception as .cause; Ray Train's WorkerGroupError keeps
        # each failed worker's in .worker_failures.
        pending += [getattr(cause, "cause", None), cause.__cause__]
        pending += list((getattr(cause, "worker_failures", None) or {}).values())
    last = [line for line in str(exc).strip().splitlines() if line.strip()]
    return ExecutionError(
        f"{statement} failed on the Ray cluster: {last[-1] if last else type(exc).__name__}",
        hint="the Ray workers need thanosql (with its ml extra) installed, and the workspace folder and the "
        "images readable at the same paths (a shared filesystem)",
    )
