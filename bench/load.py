"""Benchmark: statements per second on a shared workspace, and how long a reader waits while
another process trains.

    PYTHONPATH=src python bench/load.py [--seconds 5] [--epochs 3]

1. One process: a loop of statements (an INSERT, then a SELECT of the rows it wrote) through
   ``Session.execute`` for --seconds, against the same loop on one raw DuckDB connection kept
   open (the reference: what a process that never shares the file pays; the difference is the
   open and close of the database around each statement).
2. Two processes on one workspace, each running that loop at the same time: statements per
   second of each and together, and a check that no insert was lost.
3. A reader (SELECTs, one at a time, each timed) while another process trains SimCLR (BUILD
   MODEL on 256 generated 32-pixel images), against the same reader alone: the median and the
   longest statement time. Before this design, the reader could not open the workspace at all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SOURCE))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import thanosql  # noqa: E402


def statement_loop(workspace: str, writer: int, seconds: float) -> dict:
    """INSERT then SELECT through a Session for ``seconds``; returns count and timings."""
    times = []
    with thanosql.connect(workspace, progress=False, notify=lambda _: None) as session:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            session.execute(f"INSERT INTO log VALUES ({writer}, {i})")
            session.execute(f"SELECT count(*) FROM log WHERE writer = {writer}")
            times.append(time.perf_counter() - started)
            i += 1
    return {"statements": 2 * len(times), "seconds": seconds, "max_pair_s": max(times)}


def raw_loop(database: str, seconds: float) -> dict:
    import duckdb

    connection = duckdb.connect(database)
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        connection.execute(f"INSERT INTO log VALUES (0, {i})")
        connection.execute("SELECT count(*) FROM log WHERE writer = 0").fetchall()
        i += 1
    connection.close()
    return {"statements": 2 * i, "seconds": seconds}


def reader_loop(workspace: str, seconds: float, stop_file: str | None) -> dict:
    """SELECTs one at a time until ``seconds`` pass or ``stop_file`` appears; each one timed."""
    times = []
    with thanosql.connect(workspace, progress=False, notify=lambda _: None) as session:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (stop_file and Path(stop_file).exists()):
            started = time.perf_counter()
            session.execute("SELECT count(*), max(i) FROM log")
            times.append(time.perf_counter() - started)
            time.sleep(0.02)
    return {"count": len(times), "median_ms": 1e3 * statistics.median(times), "max_ms": 1e3 * max(times)}


def worker(kind: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", kind, *args], stdout=subprocess.PIPE, text=True)


def collect(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=3600)
    return json.loads(out.strip().splitlines()[-1])


def fresh_workspace(root: Path, name: str) -> Path:
    folder = root / name
    with thanosql.connect(folder, notify=lambda _: None) as session:
        session.execute("CREATE TABLE log (writer INTEGER, i INTEGER)")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker", nargs="+")
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        result = {
            "loop": lambda: statement_loop(rest[0], int(rest[1]), float(rest[2])),
            "raw": lambda: raw_loop(rest[0], float(rest[1])),
            "reader": lambda: reader_loop(rest[0], float(rest[1]), rest[2] if len(rest) > 2 else None),
            "train": lambda: train(rest[0], int(rest[1]), rest[2]),
        }[kind]()
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as scratch:
        run(Path(scratch), args.seconds, args.epochs)


def train(workspace: str, epochs: int, done_file: str) -> dict:
    started = time.perf_counter()
    with thanosql.connect(workspace, progress=False, notify=lambda _: None) as session:
        session.execute(
            f"BUILD MODEL m USING SimCLR OPTIONS (max_epochs={epochs}, overwrite=True) AS SELECT * FROM pics"
        )
    Path(done_file).write_text("done")
    return {"train_s": time.perf_counter() - started}


def run(root: Path, seconds: float, epochs: int) -> None:
    print(f"Statements per second (INSERT + SELECT pairs), {seconds:.0f} s each, one process at a time")
    raw_ws = fresh_workspace(root, "raw")
    raw = collect(worker("raw", str(raw_ws / "thanosql.duckdb"), str(seconds)))
    one_ws = fresh_workspace(root, "one")
    one = collect(worker("loop", str(one_ws), "1", str(seconds)))
    two_ws = fresh_workspace(root, "two")
    pair = [worker("loop", str(two_ws), str(k), str(seconds)) for k in (1, 2)]
    both = [collect(p) for p in pair]
    with thanosql.connect(two_ws, notify=lambda _: None) as session:
        rows = int(session.execute("SELECT count(*) AS n FROM log")["n"][0])
    rate = lambda r: r["statements"] / r["seconds"]  # noqa: E731
    print(f"  raw DuckDB, one connection kept open : {rate(raw):8.0f} /s")
    print(f"  thanosql, one process                : {rate(one):8.0f} /s   ({rate(one) / rate(raw):.2f}x raw)")
    total = sum(rate(r) for r in both)
    print(
        f"  thanosql, two processes, one workspace: {rate(both[0]):.0f} + {rate(both[1]):.0f} = {total:.0f} /s "
        f"({total / rate(one):.2f}x one process); longest INSERT+SELECT pair "
        f"{1e3 * max(r['max_pair_s'] for r in both):.0f} ms"
    )
    inserted = sum(r["statements"] // 2 for r in both)
    print(
        f"  rows in the shared table: {rows:,} of {inserted:,} inserted ({'none lost' if rows == inserted else 'LOST'})"
    )

    print(f"\nA reader beside a process training SimCLR ({epochs} epochs, 256 images)")
    from tiny_clip import make_images

    train_ws = fresh_workspace(root, "train")
    make_images(train_ws / "pics", 256, seed=1)
    with thanosql.connect(train_ws, notify=lambda _: None) as session:
        session.execute("CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path FROM range(256) r(i)")
    alone = collect(worker("reader", str(train_ws), str(seconds)))
    done = root / "trained"
    trainer = worker("train", str(train_ws), str(epochs), str(done))
    beside = collect(worker("reader", str(train_ws), "3600", str(done)))
    trained = collect(trainer)
    print(
        f"  reader alone         : {alone['count']:5d} SELECTs, median {alone['median_ms']:6.1f} ms, "
        f"longest {alone['max_ms']:7.1f} ms"
    )
    print(
        f"  reader while training: {beside['count']:5d} SELECTs, median {beside['median_ms']:6.1f} ms, "
        f"longest {beside['max_ms']:7.1f} ms  (training took {trained['train_s']:.1f} s)"
    )


if __name__ == "__main__":
    main()
