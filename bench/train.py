"""Benchmark: what BUILD MODEL's defaults learn on the built-in datasets, against references
measured in the same run (bench/quality.py says how each figure is taken).

    PYTHONPATH=src python bench/train.py [--seeds 0 1]

SimCLR, seed 002's statement (max_epochs=1) on digits_train: precision at 4 on digits_test for
the defaults, the earlier defaults (crops of 70-100%, no rotation, temperature 0.5), raw pixels
and the untrained network. CLIP, the text tutorial's statement (5 epochs) on shapes_train: share
of the top 5 for held-out queries with the right colour, shape and count, against chance.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import thanosql  # noqa: E402
from quality import digits_report, shapes_report  # noqa: E402

EARLIER_SIMCLR = "min_scale=0.7, rotation=0, temperature=0.5"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workspace:
        session = thanosql.connect(workspace, offline=True, progress=False, notify=lambda notice: None)
        print("SimCLR on digits (1 epoch, 1,000 images; precision at 4 of 200 held out)")
        print(f"{'seed':>4} {'defaults':>9} {'earlier':>8} {'pixels':>7} {'untrained':>9} {'923 -> labels':>16} {'train s':>8}")
        for seed in args.seeds:
            now = digits_report(session, f"max_epochs=1, seed={seed}")
            before = digits_report(session, f"max_epochs=1, seed={seed}, {EARLIER_SIMCLR}")
            print(f"{seed:>4} {now.trained:>9.3f} {before.trained:>8.3f} {now.pixels:>7.3f} {now.untrained:>9.3f} "
                  f"{str(now.neighbours_of_923):>16} {now.train_seconds:>8.1f}")
            print(f"     defaults / pixels = {now.trained / now.pixels:.2f}x, "
                  f"defaults / untrained = {now.trained / now.untrained:.2f}x")
        print()
        print("CLIP on shapes (5 epochs, 1,000 captions; top 5 of 200 held out for '<count> <colour> <shape>')")
        print(f"{'seed':>4} {'colour':>7} {'shape':>6} {'count':>6} {'all 3':>6} {'queries':>8} {'train s':>8}")
        for seed in args.seeds:
            report = shapes_report(session, f"seed={seed}")
            print(f"{seed:>4} {report.colour:>7.2f} {report.shape:>6.2f} {report.count:>6.2f} {report.all_three:>6.2f} "
                  f"{report.queries:>8} {report.train_seconds:>8.1f}")
            print(f"     against chance: colour {report.colour * 6:.1f}x, shape {report.shape * 5:.1f}x, "
                  f"count {report.count * 3:.1f}x")
        session.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
