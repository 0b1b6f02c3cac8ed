"""BUILD MODEL and FIT MODEL trained data-parallel on a Ray cluster (engine='ray'), with Ray Train's
TorchTrainer: each worker reads the images itself and runs the local engine's own training
function (models/simclr.train, models/clip_training.train_clip) on its part of every batch
(models/epochs.Shard), averaging gradients with the others after each step.

Rank 0 hands the trained weights back as a Ray Train checkpoint, kept under the workspace
(``thanosql-ray/``, removed after), and the statement stores the model as the local engine does.
With one worker the batches, steps and seed are the local engine's: the same model, up to the
float rounding of another thread count.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from .engines import cluster_error, plan_workers, ray_cluster, wanted_count
from .errors import ThanoSQLError

RUNS_FOLDER = "thanosql-ray"


def train_simclr_on_ray(session, paths: list[str], config, backbone, head, num_workers):
    """``(backbone, head, report)`` as models/simclr.train gives them, trained on the cluster.
    ``backbone``/``head``: modules to continue from (FIT MODEL, ImageNet weights), else None."""
    from .models import simclr

    loop = {
        "paths": paths,
        "config": config,
        "backbone": _packed(backbone),
        "head": _packed(head),
        "num_workers": num_workers,
    }
    state, report = _fit(session, _simclr_worker, loop, "SimCLR")
    backbone = backbone if backbone is not None else simclr.build_backbone(config.stem)
    head = head if head is not None else simclr.build_head()
    backbone.load_state_dict(state["backbone"])
    head.load_state_dict(state["head"])
    return backbone.eval(), head.eval(), report


def train_clip_on_ray(
    session, model, arch: str, config: dict, paths: list[str], texts: list[str], settings, num_workers
):
    """``(model, report)`` as models/clip_training.train_clip gives them, trained on the cluster.
    ``model`` is open_clip architecture ``arch`` built from ``config``: each worker builds it
    again (with its tokenizer) and starts from its weights."""
    loop = {
        "arch": arch,
        "config": config,
        "preprocess_cfg": dict(model.visual.preprocess_cfg),
        "weights": _packed(model),
        "paths": paths,
        "texts": texts,
        "settings": settings,
        "num_workers": num_workers,
    }
    state, report = _fit(session, _clip_worker, loop, "CLIP")
    model.load_state_dict(state["model"])
    return model.eval(), report


def _packed(module) -> bytes | None:
    """A module's weights as bytes: what crosses to the workers (the module itself would need its
    classes' libraries imported, as this process imports them, wherever Ray unpickles it)."""
    if module is None:
        return None
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getvalue()


def _unpacked(data: bytes) -> dict:
    import io

    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _fit(session, worker, loop: dict, what: str):
    """Run ``worker(loop)`` on the cluster's training workers; rank 0's weights and its report."""
    ray = ray_cluster(session.notify)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from .models.epochs import TrainingReport

    workers = plan_workers(ray.cluster_resources(), _alive_nodes(ray), wanted_count("THANOSQL_RAY_WORKERS"))
    session.notify(
        f"training {what} on Ray: {workers.count} worker{'s' if workers.count != 1 else ''} of "
        f"{workers.num_cpus} CPU{'s' if workers.num_cpus != 1 else ''}" + (" and a GPU" if workers.use_gpu else "")
    )
    storage = session.workspace / RUNS_FOLDER
    name = f"{what.lower()}-{time.time_ns()}"
    trainer = TorchTrainer(
        worker,
        train_loop_config=loop,
        scaling_config=ScalingConfig(
            num_workers=workers.count, use_gpu=workers.use_gpu, resources_per_worker={"CPU": workers.num_cpus}
        ),
        run_config=RunConfig(storage_path=str(storage), name=name),
    )
    try:
        result = trainer.fit()
        import torch

        with result.checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / "state.pt", map_location="cpu", weights_only=True)
    except ThanoSQLError:
        raise
    except Exception as exc:  # Ray wraps what failed on the cluster: re-raised as ours, or said plainly
        raise cluster_error(exc, "training") from exc
    finally:
        shutil.rmtree(storage / name, ignore_errors=True)
        _remove_if_empty(storage)
    metrics = result.metrics
    report = TrainingReport(int(metrics["steps"]), int(metrics["epochs"]), metrics["last_loss"], metrics["seconds"])
    return state, report


def _alive_nodes(ray) -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


# -- on the workers ------------------------------------------------------------------------------


def _shard_and_device():
    import ray.train
    import ray.train.torch

    from .models.epochs import Shard

    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    return Shard(context.get_world_rank(), context.get_world_size()), "cuda" if device.type == "cuda" else "cpu"


def _simclr_worker(loop: dict) -> None:
    from .models import simclr

    shard, device = _shard_and_device()
    config = loop["config"]
    modules = {}
    for name, build in (("backbone", lambda: simclr.build_backbone(config.stem)), ("head", simclr.build_head)):
        if loop[name] is not None:
            modules[name] = build()
            modules[name].load_state_dict(_unpacked(loop[name]))
    dataset = simclr.TrainingImages(loop["paths"], config)
    backbone, head, report = simclr.train(
        dataset,
        config,
        device=device,
        backbone=modules.get("backbone"),
        head=modules.get("head"),
        num_workers=loop["num_workers"],
        shard=shard,
    )
    _report(shard, report, {"backbone": backbone.state_dict(), "head": head.state_dict()})


def _clip_worker(loop: dict) -> None:
    from .models import clip, clip_training

    shard, device = _shard_and_device()
    model, _, tokenizer = clip.build_open_clip(
        loop["arch"], loop["config"], "cpu", preprocess_cfg=loop["preprocess_cfg"]
    )
    model.load_state_dict(_unpacked(loop["weights"]))
    dataset = clip_training.CaptionedImages(
        loop["paths"],
        loop["texts"],
        clip_training.training_preprocess(model),
        tokenizer,
        input_size=clip_training.input_side(model),
    )
    model, report = clip_training.train_clip(
        model, dataset, loop["settings"], device=device, num_workers=loop["num_workers"], shard=shard
    )
    _report(shard, report, {"model": model.state_dict()})


def _report(shard, report, state: dict) -> None:
    """Every worker reports (Ray Train waits for all); rank 0 with its weights as a checkpoint."""
    import ray.train
    import torch

    metrics = {"steps": report.steps, "epochs": report.epochs, "last_loss": report.last_loss, "seconds": report.seconds}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if shard.rank == 0:
            torch.save(state, Path(folder) / "state.pt")
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint)
