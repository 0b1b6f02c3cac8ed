"""Benchmark: what BUILD MODEL's defaults learn on the built-in datasets, against references
measured in the same run (bench/quality.py says how each figure is taken).

    PYTHONPATH=src python bench/train.py [--seeds 0 1]

Speed: seconds per epoch of seed 002's BUILD MODEL ... USING SimCLR (the whole statement:
reading the table, decoding, training, storing) against a plain lightly loop on the same 1,000
images: lightly's SimCLRTransform at 32 pixels, a Dataset that opens each file with PIL, the same
ResNet-18 and head, NTXentLoss, Adam, the same batch size, no worker processes (as ours on two
cores). Median of --repeats rounds, each timing both back to back.

Quality: SimCLR, seed 002's statement (max_epochs=1) on digits_train: precision at 4 on
digits_test for the defaults, the earlier defaults (crops of 70-100%, no rotation, temperature
0.5), raw pixels and the untrained network. CLIP, the text tutorial's statement (5 epochs) on
shapes_train: recall at 5 of held-out captions, and the share of the top 5 with the right
colour, shape and count for "<count> <colour> <shape>" queries, against the untrained model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import thanosql
from quality import digits_report, load_digits, shapes_report

EARLIER_SIMCLR = "min_scale=0.7, rotation=0, temperature=0.5"


def plain_lightly_epoch(paths: list[str], batch_size: int) -> float:
    """Seconds for one epoch of the plain lightly loop (module docstring) over ``paths``."""
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from thanosql.models import simclr
    from thanosql.models.torchvision_shim import import_torchvision

    import_torchvision()
    from lightly.loss import NTXentLoss
    from lightly.transforms import SimCLRTransform

    class Files(Dataset):
        def __init__(self, paths, transform):
            self.paths, self.transform = paths, transform

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, index):
            return self.transform(Image.open(self.paths[index]).convert("RGB"))

    started = time.perf_counter()
    torch.manual_seed(0)
    backbone, head = simclr.build_backbone("small"), simclr.build_head()
    loader = DataLoader(
        Files(paths, SimCLRTransform(input_size=32)), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0
    )
    criterion = NTXentLoss()
    optimizer = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()), lr=1e-3)
    for first, second in loader:
        loss = criterion(head(backbone(first)), head(backbone(second)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def ours_epoch(session) -> tuple[float, int]:
    """Seconds of seed 002's BUILD MODEL (max_epochs=1), and the batch size it chose."""
    started = time.perf_counter()
    session.execute(
        "BUILD MODEL speed_simclr USING SimCLR OPTIONS (image_col='image_path', max_epochs=1, "
        "overwrite=True) AS SELECT * FROM digits_train"
    )
    seconds = time.perf_counter() - started
    return seconds, session.models.get("speed_simclr").options["batch_size"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workspace:
        session = thanosql.connect(workspace, offline=True, progress=False, notify=lambda notice: None)
        load_digits(session)
        paths = [
            str(session.resolve_path(p))
            for p in session.query("SELECT image_path FROM digits_train").column("image_path").to_pylist()
        ]
        # Warm-up, not timed: imports (torch, torchvision, lightly) and first-call costs on both sides.
        plain_lightly_epoch(paths[:64], 16)
        ours, plain = [], []
        for _ in range(args.repeats):
            seconds, batch_size = ours_epoch(session)
            ours.append(seconds)
            plain.append(plain_lightly_epoch(paths, batch_size))
        print(
            f"SimCLR epoch of 1,000 digits, batch {batch_size}: BUILD MODEL {statistics.median(ours):.1f} s, "
            f"plain lightly loop {statistics.median(plain):.1f} s "
            f"(ratio {statistics.median(plain) / statistics.median(ours):.2f}x; medians of {args.repeats})"
        )
        print()
        print("SimCLR on digits (1 epoch, 1,000 images; precision at 4 of 200 held out)")
        print(
            f"{'seed':>4} {'defaults':>9} {'earlier':>8} {'pixels':>7} {'untrained':>9} {'923 -> labels':>16} {'train s':>8}"
        )
        for seed in args.seeds:
            now = digits_report(session, f"max_epochs=1, seed={seed}")
            before = digits_report(session, f"max_epochs=1, seed={seed}, {EARLIER_SIMCLR}")
            print(
                f"{seed:>4} {now.trained:>9.3f} {before.trained:>8.3f} {now.pixels:>7.3f} {now.untrained:>9.3f} "
                f"{str(now.neighbours_of_923):>16} {now.train_seconds:>8.1f}"
            )
            print(
                f"     defaults / pixels = {now.trained / now.pixels:.2f}x, "
                f"defaults / untrained = {now.trained / now.untrained:.2f}x"
            )
        print()
        print(
            "CLIP on shapes (5 epochs, 1,000 captions; top 5 of 200 held out; chance: recall 0.025, "
            "colour 0.17, shape 0.20, count 0.33)"
        )
        print(
            f"{'seed':>4} {'model':>9} {'recall@5':>9} {'colour':>7} {'shape':>6} {'count':>6} {'all 3':>6} "
            f"{'queries':>8} {'train s':>8}"
        )
        for seed in args.seeds:
            trained, untrained = shapes_report(session, f"seed={seed}")
            for label, report in (("trained", trained), ("untrained", untrained)):
                print(
                    f"{seed:>4} {label:>9} {report.recall_at_5:>9.3f} {report.colour:>7.2f} {report.shape:>6.2f} "
                    f"{report.count:>6.2f} {report.all_three:>6.2f} {report.queries:>8} {report.train_seconds:>8.1f}"
                )
        session.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
