"""CONVERT's embeddings computed on a Ray cluster (engine='ray'): the inputs become a Ray Data
dataset of (row, value) blocks, and an actor pool (`Embedder`, which loads the model from the
workspace's store once per actor, as a Session does) embeds them with ``map_batches``.

Blocks come back in any order and land by their row numbers, so the answer is in input order; the
progress bar counts rows as blocks come back. An image an actor cannot read comes back as its
reason, and the caller (statements/convert.py) reports it as the local engine does. Ray is imported
only here and in engines.py.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa

from .engines import Actors, cluster_error, plan_actors, ray_cluster, wanted_count
from .errors import ThanoSQLError
from .models.images import ImageReadError

# Rows per block when CONVERT gives no batch_size and the model names none.
BLOCK_ROWS = 32


class WorkerReadError(ImageReadError):
    """An image a Ray worker could not open although this process can: the cluster does not share
    the file."""

    seen_here = True


class Embedder:
    """A Ray Data actor: loads model ``name`` from the store at ``model_dir`` once, then maps a
    block of ``row`` (int64) and ``value`` (a path or text) to ``row``, ``embedding``
    (FLOAT[dim], NaN where unreadable) and ``error`` (the reason an image could not be read)."""

    def __init__(self, model_dir: str, name: str, created: str, kind: str, device: str, settings: dict) -> None:
        from .models import load_adapter
        from .models.store import ModelStore

        store = ModelStore(Path(model_dir))
        with store.folders.reading():  # not replaced while it loads
            info = store.get(name)
            if str(info.created) != created:
                raise ThanoSQLError(f"model '{name}' was replaced while CONVERT ran on Ray; run it again")
            self.adapter = load_adapter(info, device=device)
        self.kind, self.settings = kind, settings

    def __call__(self, block: pa.Table) -> pa.Table:
        values = block.column("value").to_pylist()
        dim = self.adapter.embedding_dim
        errors: list[str | None] = [None] * len(values)
        try:
            embeddings = self.adapter.embed(self.kind, values, progress=None, **self.settings)
        except ImageReadError as exc:  # on_error='raise': the caller raises it, naming the row
            embeddings = np.full((len(values), dim), np.nan, np.float32)
            errors[exc.index] = exc.reason
        flat = pa.array(np.ascontiguousarray(embeddings, np.float32).reshape(-1), pa.float32())
        return pa.table(
            {
                "row": block.column("row"),
                "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
                "error": pa.array(errors, pa.string()),
            }
        )


def embed_on_ray(session, adapter, kind: str, inputs: list, options: dict, actors: Actors | None = None) -> np.ndarray:
    """Embeddings of ``inputs`` (absolute image paths, or texts) computed by an actor pool on the
    Ray cluster: ``(len(inputs), d)`` float32, in input order, NaN rows for unreadable images
    with on_error='null'.

    >>> embed_on_ray(session, adapter, "image", paths, {"batch_size": None, "num_workers": None, "on_error": "raise"})  # doctest: +SKIP
    array([[ 0.013, -0.241, ...]], dtype=float32)

    With on_error='raise', an image an actor cannot read raises ImageReadError (its ``index`` in
    ``inputs``), or WorkerReadError when this process can read it.
    """
    dim = adapter.embedding_dim
    result = np.full((len(inputs), dim), np.nan, np.float32)
    if not inputs:
        return result
    ray = ray_cluster(session.notify)
    actors = actors or actor_pool(ray)
    rows = options.get("batch_size") or getattr(adapter, "default_batch_size", BLOCK_ROWS)
    settings = {
        "batch_size": options.get("batch_size"),
        # A CPU actor's parallelism is the pool; a GPU actor decodes with workers as locally.
        "num_workers": options.get("num_workers") if options.get("num_workers") is not None or actors.num_gpus else 0,
    }
    if kind == "image":
        settings["on_error"] = options["on_error"]
    info = adapter.info
    blocks = [
        pa.table(
            {
                "row": pa.array(range(start, min(start + rows, len(inputs))), pa.int64()),
                "value": inputs[start : start + rows],
            }
        )
        for start in range(0, len(inputs), rows)
    ]
    bar = session.progress(
        total=len(inputs), desc="images" if kind == "image" else "texts", unit="img" if kind == "image" else "text"
    )
    try:
        with _quiet_ray_data(ray):
            # from_blocks keeps one block per batch and reads their sizes here; from_arrow would
            # run a Ray task per block for that.
            dataset = ray.data.from_blocks(blocks).map_batches(
                Embedder,
                fn_constructor_args=(
                    str(session.model_dir),
                    info.name,
                    str(info.created),
                    kind,
                    actors.device,
                    settings,
                ),
                batch_size=rows,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=min(actors.count, len(blocks))),
                num_cpus=actors.num_cpus,
                num_gpus=actors.num_gpus,
            )
            for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                at = block.column("row").to_numpy()
                errors = block.column("error")
                if errors.null_count < len(errors):
                    _raise_first(errors.to_pylist(), at, inputs)
                flat = block.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                result[at] = flat.reshape(len(at), dim)
                bar.update(len(at))
    except ThanoSQLError:  # an unreadable image (ImageReadError) included
        raise
    except Exception as exc:  # Ray wraps what failed on the cluster: said plainly, or re-raised as ours
        raise cluster_error(exc, "CONVERT") from exc
    finally:
        bar.close()
    return result


def actor_pool(ray) -> Actors:
    """The actors of the cluster ``ray`` is connected to (engines.plan_actors)."""
    return plan_actors(ray.cluster_resources(), wanted_count("THANOSQL_RAY_ACTORS"))


def _raise_first(errors: list, at: np.ndarray, inputs: list) -> None:
    """ImageReadError for the first unreadable image of a block (WorkerReadError when this process
    can read the file, so the workers cannot see what it sees)."""
    first = min((int(row), reason) for row, reason in zip(at, errors) if reason is not None)
    index, reason = first
    path = str(inputs[index])
    unseen = reason in ("file not found", "permission denied") and _readable_here(path)
    error = WorkerReadError if unseen else ImageReadError
    raise error(f"cannot read image '{path}': {reason}", path=path, index=index, reason=reason)


def _readable_here(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False


@contextmanager
def _quiet_ray_data(ray):
    """Ray Data without its own progress bars and start-up lines: the statement has its bar."""
    context = ray.data.DataContext.get_current()
    bars, logger = context.enable_progress_bars, logging.getLogger("ray.data")
    level = logger.level
    context.enable_progress_bars = False
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        context.enable_progress_bars = bars
        logger.setLevel(level)
