"""CONVERT USING vs the plain open_clip loop: images/s on the same model and images, in one run.

    PYTHONPATH=src python bench/convert.py [--small 160] [--camera 96] [--batch-size 32] [--repeats 4]
        [--incremental 1000] [--only-incremental]
    PYTHONPATH=src python bench/convert.py --ray [--images 1000] [--repeats 1]

The reference is the loop open_clip's README shows: for each batch, open every file with PIL, apply
the model's preprocess, stack, ``encode_image`` under ``torch.no_grad()``. Ours is the whole
statement, ``CONVERT USING m AS SELECT * FROM t`` through a Session (DuckDB read, path resolution,
the FLOAT[d] column). Both run on two models: open_clip ViT-B-32 (random weights: speed does not
depend on them) and a small ViT where decoding dominates; and on two image sets generated here:
small JPEGs (256x192) and camera-size JPEGs (3000x2000). Each figure is a median over --repeats
rounds of (reference, ours) back to back, so that a busy machine penalises both sides alike. Also
printed: how far our embeddings are from the reference's (exact for the small images; reduced-size
decoding for the camera ones), and each side's encoder alone on ready tensors (ours runs the
tower with oneDNN-packed linear layers, models/onednn.py). The image counts are large enough for
CONVERT's fixed costs (timing a first batch, starting decoding workers) to be spread as they are
over a real table's images.

Incremental CONVERT (--incremental N): a first CONVERT of N small images with ViT-B-32 in a
workspace that keeps embeddings (reuse.py), then the same CONVERT after 2% more rows, of which
only the new ones are embedded; printed as seconds and the second run's share of the first.

Ray (--ray, instead of the above): a local Ray started with this machine's cores (loopback only),
and in one run on --images small JPEGs with ViT-B-32: CONVERT on the local engine against
engine='ray' at equal cores (the actor pool engines.plan_actors chooses; the ratio is Ray's
overhead, target at most 1.15), Ray with 2 actors against 1 (THANOSQL_RAY_ACTORS), and the
incremental CONVERT above on Ray (a first run, then a re-run after 2% more rows). Each Ray
run includes starting its actors and loading the model in each, as every statement on Ray does;
the one-time costs of a process's first statement on each engine (Ray Data's helper actors; the
model loading into the session) are paid by a statement on a few images first, and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# A small CLIP at the usual 224-px input: 4 layers of width 192, 32-px patches (~2 M vision
# parameters, ~40x cheaper than ViT-B-32), so decoding and resizing dominate its cost.
SMALL_CONFIG = {
    "embed_dim": 256,
    "vision_cfg": {"image_size": 224, "layers": 4, "width": 192, "head_width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 2},
}

# Images of the first statement on each engine in the --ray comparison (see ray_comparison).
FIRST_FEW = 8

TARGETS = {("ViT-B-32", "small"): 1.2, ("ViT-B-32", "camera"): 1.8, ("small_vit", "camera"): 3.0}


def photo(width: int, height: int, seed: int):
    """A picture with a photo's statistics for JPEG: smooth shapes plus sensor-like grain."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
    grain = rng.normal(0, 4, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))


def make_images(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    first = photo(*size, seed=0)
    paths = []
    for index in range(count):
        # Distinct files (no page-cache sharing tricks), cheap to make: shift one generated photo.
        image = first.rotate(0, translate=(index * 7 % 50, index * 3 % 40)) if index else first
        path = folder / f"{index}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def reference_model(arch: str, checkpoint: Path):
    """open_clip's own loading: ``create_model_and_transforms(arch, pretrained=checkpoint)``."""
    from thanosql.models.clip import import_open_clip

    model, _, preprocess = import_open_clip().create_model_and_transforms(arch, pretrained=str(checkpoint))
    return model.eval(), preprocess


def reference_loop(model, preprocess, paths: list[Path], batch_size: int):
    """open_clip's plain loop; returns (embeddings, seconds)."""
    import torch
    from PIL import Image

    outputs = []
    start = time.perf_counter()
    with torch.no_grad():
        for offset in range(0, len(paths), batch_size):
            batch = torch.stack([preprocess(Image.open(p)) for p in paths[offset : offset + batch_size]])
            outputs.append(model.encode_image(batch).numpy())
    return np.concatenate(outputs), time.perf_counter() - start


def ours(session, model: str, table: str, batch_size: int):
    start = time.perf_counter()
    frame = session.execute(f"CONVERT USING {model} OPTIONS (batch_size={batch_size}) AS SELECT * FROM {table}")
    seconds = time.perf_counter() - start
    return np.stack(frame["convert_result"].to_numpy()), seconds


def encoder_only(encode, size, count: int, batch_size: int) -> float:
    """Images/s of ``encode`` alone on ready tensors of side ``size``: the ceiling if decoding
    were free."""
    import torch

    batch = torch.randn(batch_size, 3, *size)
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(0, count, batch_size):
            encode(batch)
    return count / (time.perf_counter() - start)


def decode_costs(path: Path) -> str:
    """Milliseconds to decode one image in full and at reduced size, and to resize the full one."""
    from PIL import Image

    from thanosql.models.images import open_image

    def best(action) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        return 1000 * min(times)

    full = Image.open(path)
    full.load()
    return (
        f"full decode {best(lambda: Image.open(path).load()):.0f} ms, "
        f"reduced decode {best(lambda: open_image(path, input_size=224).load()):.0f} ms, "
        f"bicubic resize of the full image to 224 px {best(lambda: full.resize((336, 224), Image.BICUBIC)):.0f} ms"
    )


def reduced_decode_error(path: Path) -> str:
    """Mean |difference| in grey levels between ViT-B-32's preprocessed full decode and our reduced
    one (margin 2, the default), and with a margin of 1 (decoding straight to about 224 px)."""
    from PIL import Image

    from thanosql.models.clip import build_open_clip
    from thanosql.models.images import DRAFT_MARGIN, open_image

    _, preprocess, _ = build_open_clip("ViT-B-32")
    std = np.array(preprocess.transforms[-1].std).reshape(3, 1, 1)
    full = preprocess(Image.open(path)).numpy()

    def grey_levels(input_size: int) -> float:
        return float((np.abs(preprocess(open_image(path, input_size)).numpy() - full) * std * 255).mean())

    # input_size=224 // DRAFT_MARGIN asks open_image for a margin of 1 at 224 px.
    return (
        f"reduced decode differs by {grey_levels(224):.2f} grey levels on average "
        f"(margin {DRAFT_MARGIN}); {grey_levels(224 // DRAFT_MARGIN):.2f} with a margin of 1"
    )


def setup(root: Path, args):
    """The workspace: image tables 'small' and 'camera', models vit_b_32 and small_vit."""
    import torch

    import thanosql
    from thanosql.models.clip import build_open_clip, import_open_clip

    # reuse_bytes=0: every round embeds every image (a kept embedding would make rounds 2-4 free).
    session = thanosql.connect(root, offline=True, progress=False, reuse_bytes=0, notify=lambda _: None)
    sets = {
        "small": make_images(root / "small", args.small, (256, 192)),
        "camera": make_images(root / "camera", args.camera, (3000, 2000)),
    }
    for name, paths in sets.items():
        listing = ", ".join(f"('{p.relative_to(root)}')" for p in paths)
        session.execute(f"CREATE TABLE {name} AS SELECT * FROM (VALUES {listing}) v(image_path)")
    (root / "small_vit.json").write_text(json.dumps(SMALL_CONFIG))
    import_open_clip().add_model_config(root / "small_vit.json")  # so the reference loop can name it
    models = {}
    for arch, config in (("ViT-B-32", None), ("small_vit", SMALL_CONFIG)):
        torch.manual_seed(0)
        model, _, _ = build_open_clip(arch, config)
        checkpoint = root / f"{arch}.pt"
        torch.save(model.state_dict(), checkpoint)
        option = f"model_config='{root / 'small_vit.json'}'" if config else f"arch='{arch}'"
        session.execute(f"UPLOAD MODEL {store_name(arch)} OPTIONS ({option}) FROM '{checkpoint}'")
        models[arch] = checkpoint
    return session, sets, models


def store_name(arch: str) -> str:
    return arch.replace("-", "_").lower()


def measure(session, sets, models, args) -> list[tuple]:
    """Per model and image set: rounds of (reference, ours, encoder alone), the order of the first
    two alternating; the medians, and the median of the per-round ratios (a busy machine slows a
    round's two runs alike far more often than it slows the whole benchmark alike)."""
    import statistics

    rows = []
    for arch, checkpoint in models.items():
        adapter = session.model(store_name(arch))
        model, preprocess = reference_model(arch, checkpoint)
        adapter.embed_images(sets["small"][:2], num_workers=0)  # warm-up: first-call allocations
        reference_loop(model, preprocess, sets["small"][:2], 2)
        for set_name, paths in sets.items():
            reference, mine, ratios, ceiling, our_ceiling = [], [], [], [], []
            for round_number in range(args.repeats):
                runs = {}
                for side in ("reference", "ours") if round_number % 2 == 0 else ("ours", "reference"):
                    if side == "reference":
                        expected, runs[side] = reference_loop(model, preprocess, paths, args.batch_size)
                    else:
                        got, runs[side] = ours(session, store_name(arch), set_name, args.batch_size)
                reference.append(len(paths) / runs["reference"])
                mine.append(len(paths) / runs["ours"])
                ratios.append(runs["reference"] / runs["ours"])
                size = model.visual.preprocess_cfg["size"]
                ceiling.append(encoder_only(model.encode_image, size, 2 * args.batch_size, args.batch_size))
                encode = adapter._image_encoder(args.batch_size)
                our_ceiling.append(encoder_only(encode, size, 2 * args.batch_size, args.batch_size))
            cos = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
            median = statistics.median
            rows.append(
                (
                    arch,
                    set_name,
                    len(paths),
                    median(reference),
                    median(mine),
                    median(ratios),
                    median(ceiling),
                    median(our_ceiling),
                    float(np.abs(got - expected).max()),
                    float(cos.min()),
                )
            )
            print(f"  {arch} on {set_name} images: ratios " + " ".join(f"{r:.2f}" for r in ratios), flush=True)
    return rows


def incremental(root: Path, count: int, batch_size: int, engine: str = "local") -> tuple[float, float, int]:
    """Seconds of a first CONVERT of ``count`` small images with ViT-B-32 (nothing kept yet), and of
    the same CONVERT after 2% more rows: only those are embedded, the rest reused (reuse.py); both
    on ``engine``."""
    import thanosql

    notices = []
    with thanosql.connect(root, offline=True, progress=False, notify=notices.append, engine=engine) as session:
        paths = make_images(root / "incremental", count + count // 50, (256, 192))
        listing = ", ".join(f"('{p.relative_to(root)}')" for p in paths)
        session.execute(f"CREATE TABLE growing AS SELECT * FROM (VALUES {listing}) v(image_path) LIMIT {count}")
        started = time.perf_counter()
        ours(session, "vit_b_32", "growing", batch_size)
        first = time.perf_counter() - started
        session.execute(f"CREATE OR REPLACE TABLE growing AS SELECT * FROM (VALUES {listing}) v(image_path)")
        started = time.perf_counter()
        ours(session, "vit_b_32", "growing", batch_size)
        again = time.perf_counter() - started
    assert any("reused the embeddings of" in str(n) for n in notices), notices
    return first, again, len(paths) - count


def ray_comparison(root: Path, count: int, batch_size: int, repeats: int) -> None:
    """Seconds of CONVERT of ``count`` small images with ViT-B-32: local engine, Ray at equal cores,
    Ray with 1 and 2 actors; rounds alternate their order, medians printed with the ratios."""
    import statistics

    import ray

    from thanosql.cores import available_cores
    from thanosql.engines import plan_actors

    cores = available_cores()
    ray.init(num_cpus=cores, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    args = argparse.Namespace(small=count, camera=1)
    session, sets, _ = setup(root, args)
    pool = plan_actors(ray.cluster_resources())
    # A process's first statement on each engine pays one-time costs that no later one does: on
    # Ray, Ray Data's own helper actors start (and its modules load here); locally, the model
    # loads into the session. Each is timed on a few images and shown, not counted in the rounds.
    session.execute(f"CREATE TABLE first_few AS SELECT * FROM small LIMIT {FIRST_FEW}")
    first = {}
    for engine in ("ray", "local"):
        session.configure(engine=engine)
        _, first[engine] = ours(session, "vit_b_32", "first_few", batch_size)
    runs = {"local": ("local", None), "ray": ("ray", None), "ray, 1 actor": ("ray", "1"), "ray, 2 actors": ("ray", "2")}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    answers = {}
    try:
        for round_number in range(repeats):
            order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
            for name in order:
                engine, actors = runs[name]
                if actors is None:
                    os.environ.pop("THANOSQL_RAY_ACTORS", None)
                else:
                    os.environ["THANOSQL_RAY_ACTORS"] = actors
                session.configure(engine=engine)
                answers[name], took = ours(session, "vit_b_32", "small", batch_size)
                seconds[name].append(took)
                print(f"  round {round_number + 1}: {name}: {took:.1f} s ({count / took:.1f} img/s)", flush=True)
        # The re-run after 2% more rows, on Ray, in a session that keeps embeddings (reuse.py).
        first_run, again, added = incremental(root, count, batch_size, engine="ray")
    finally:
        os.environ.pop("THANOSQL_RAY_ACTORS", None)
        session.close()
        ray.shutdown()
    median = {name: statistics.median(values) for name, values in seconds.items()}
    largest = max(float(np.abs(answers[name] - answers["local"]).max()) for name in runs)
    print(
        f"\nCONVERT on Ray, ViT-B-32, {count:,} small images, {cores} cores; Ray's pool: {pool.count} actors of "
        f"{pool.num_cpus} CPU{'s' if pool.num_cpus != 1 else ''}; medians of {repeats} round(s)"
    )
    print(
        f"  first statement of the process on {FIRST_FEW} images, not in the rounds: Ray {first['ray']:.1f} s "
        f"(Ray Data's helper actors start), local {first['local']:.1f} s"
    )
    for name in runs:
        print(f"  {name:14s} {median[name]:7.1f} s {count / median[name]:7.1f} img/s")
    print(f"  Ray at equal cores / local: {median['ray'] / median['local']:.2f}x the time (target at most 1.15x)")
    print(f"  Ray, 2 actors / 1 actor: {median['ray, 1 actor'] / median['ray, 2 actors']:.2f}x the speed")
    print(f"  largest difference from the local engine's embeddings: {largest:.1e}")
    print(
        f"  incremental CONVERT on Ray: first run {first_run:.1f} s; after {added} new rows ({added / count:.0%}) "
        f"{again:.1f} s = {again / first_run:.3f} of the first (target at most 0.2)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=160, help="number of small images")
    parser.add_argument("--camera", type=int, default=96, help="number of camera-size images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=4, help="rounds per model and image set")
    parser.add_argument("--incremental", type=int, default=1000, help="images of the incremental CONVERT (0: skip)")
    parser.add_argument("--only-incremental", action="store_true", help="skip the comparison with open_clip")
    parser.add_argument("--ray", action="store_true", help="local engine against Ray instead (see above)")
    parser.add_argument("--images", type=int, default=1000, help="images of the --ray comparison")
    args = parser.parse_args()

    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; batch size {args.batch_size}"
    )
    root = Path(tempfile.mkdtemp(prefix="thanosql-bench-"))
    if args.ray:
        try:
            ray_comparison(root, args.images, args.batch_size, args.repeats if "--repeats" in sys.argv else 1)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    try:
        if args.only_incremental:
            args.small = args.camera = 1
        session, sets, models = setup(root, args)
        rows = []
        if not args.only_incremental:
            print("camera-size JPEG:", decode_costs(sets["camera"][0]))
            print("camera-size JPEG:", reduced_decode_error(sets["camera"][0]))
            rows = measure(session, sets, models, args)
        session.close()
        if args.incremental:
            first, again, added = incremental(root, args.incremental, args.batch_size)
            print(
                f"incremental CONVERT, ViT-B-32, {args.incremental:,} small images: first run {first:.1f} s; "
                f"after {added} new rows ({added / args.incremental:.0%}) {again:.1f} s = {again / first:.3f} of the first"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not rows:
        return
    print()
    print(
        f"{'model':10s} {'images':11s} {'open_clip':>10s} {'CONVERT':>8s} {'ratio':>6s} {'target':>6s} "
        f"{'encoders':>13s} {'max |diff|':>10s} {'min cos':>8s}   (img/s)"
    )
    for arch, set_name, count, reference, mine, ratio, ceiling, our_ceiling, diff, cos in rows:
        target = TARGETS.get((arch, set_name))
        shown = f"{target:.1f}x" if target else "-"
        print(
            f"{arch:10s} {f'{count} {set_name}':11s} {reference:10.1f} {mine:8.1f} {ratio:5.2f}x "
            f"{shown:>6s} {ceiling:6.1f} {our_ceiling:6.1f} {diff:10.1e} {cos:8.5f}"
        )
    print("medians over the rounds; ratio = median of the rounds' ratios; encoders = open_clip's")
    print("encode_image and ours alone on ready tensors: what a pipeline reaches if decoding were free")


if __name__ == "__main__":
    main()
