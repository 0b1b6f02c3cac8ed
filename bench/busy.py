"""Benchmark: the tutorials' BUILD cells on an idle machine and beside busy processes, for one
or more versions of the code in the same run.

    python bench/busy.py [--source before=/path/to/old/src] [--busy 2] [--repeats 1]

The cells are the offline tutorials' own: seed 002's BUILD MODEL ... USING SimCLR (max_epochs=1
on the 1,000 digits of digits_train) and the text tutorial's BUILD MODEL ... USING CLIP (its
default five epochs on the 1,000 captioned shapes of shapes_train). Each is timed in a fresh
process (the whole statement: reading the table, decoding, training, storing), first on an idle
machine, then while --busy other processes each keep a core busy (a Python loop, which is what
another notebook computing or a compiler looks like to the scheduler).

--source label=path runs the same cells with the thanosql package found at ``path`` (e.g. a
worktree of an earlier commit), beside this checkout's ("ours"), for a before/after table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OURS = Path(__file__).resolve().parents[1] / "src"
SPIN = "while True: pass"

PREPARE = """
import thanosql
with thanosql.connect({workspace!r}, offline=True, progress=False, notify=lambda _: None) as session:
    session.execute("GET THANOSQL DATASET digits_data OPTIONS (overwrite=True)")
    session.execute("COPY digits_train OPTIONS (overwrite=True) FROM 'thanosql-dataset/digits_data/digits_train.csv'")
    session.execute("GET THANOSQL DATASET shapes_data OPTIONS (overwrite=True)")
    session.execute("COPY shapes_train OPTIONS (if_exists='replace') FROM 'thanosql-dataset/shapes_data/shapes_train.csv'")
"""

CELLS = {
    "SimCLR": "BUILD MODEL my_image_search_model USING SimCLR "
    "OPTIONS (image_col='image_path', max_epochs=1, overwrite=True) AS SELECT * FROM digits_train",
    "CLIP": "BUILD MODEL tutorial_search_clip USING CLIP "
    "OPTIONS (image_col='image_path', text_col='ai_description', overwrite=True) AS SELECT * FROM shapes_train",
}

TIMED = """
import time, thanosql
with thanosql.connect({workspace!r}, offline=True, progress=False, notify=lambda _: None) as session:
    started = time.perf_counter()
    session.execute({cell!r})
    print(time.perf_counter() - started)
"""


def run_python(source: Path, code: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(source)}
    environment.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed under {source}:\n{done.stderr[-3000:]}")
    return done.stdout


def timed(source: Path, workspace: str, cell: str, busy: int) -> float:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0)  # the spinners are running before the cell starts
        return float(run_python(source, TIMED.format(workspace=workspace, cell=cell)).strip().splitlines()[-1])
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", action="append", default=[], help="label=path of another src folder")
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the cell")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    sources = {"ours": OURS, **{item.split("=", 1)[0]: Path(item.split("=", 1)[1]) for item in args.source}}
    print(f"cores: {os.cpu_count()}, busy processes: {args.busy}, load before: {os.getloadavg()[0]:.2f}")
    results: dict[tuple[str, str, int], float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, source in sources.items():
            workspace = os.path.join(folder, label)
            run_python(source, PREPARE.format(workspace=workspace))
            for name, cell in CELLS.items():
                for busy in (0, args.busy):
                    runs = [timed(source, workspace, cell, busy) for _ in range(args.repeats)]
                    results[label, name, busy] = statistics.median(runs)
                    print(f"  {label:>8} {name:<6} busy={busy}: {results[label, name, busy]:6.1f} s", flush=True)
    print()
    print(f"{'cell':<7}{'version':>9} | {'idle s':>7} {'busy s':>7} {'busy/idle':>9}")
    for name in CELLS:
        for label in sources:
            idle, busy = results[label, name, 0], results[label, name, args.busy]
            print(f"{name:<7}{label:>9} | {idle:7.1f} {busy:7.1f} {busy / idle:9.2f}")
    for label in sources:
        if label != "ours":
            for name in CELLS:
                for busy in (0, args.busy):
                    ratio = results[label, name, busy] / results["ours", name, busy]
                    print(f"{name} busy={busy}: {label}/ours = {ratio:.2f}")


if __name__ == "__main__":
    main()
