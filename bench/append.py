"""Benchmark: appending 1% more rows to a large table, against building its search index, in one run.

    PYTHONPATH=src python bench/append.py [--rows 10000000] [--keep /big/folder]

Uses the clustered table bench/search.py --clustered makes (and keeps) in ``--keep``. The first
search (the default options: approximate above the exact line) builds the index and saves it in
the workspace; then, in a new session, 1% more clustered rows are appended and the next search
adds them to the stored index. Prints both times and their ratio (the target is at most 5%),
then deletes the appended rows and the index, leaving the table as it was.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import thanosql
from clustered import clustered
from thanosql.search import engine


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "thanosql-bench")
    args = parser.parse_args(argv)
    folder = args.keep / f"clustered-{args.rows}-{args.dim}"
    queries = np.load(folder / "queries.npy")  # made by bench/search.py --clustered
    shutil.rmtree(folder / "thanosql-index", ignore_errors=True)
    with thanosql.connect(folder, offline=True, progress=False, notify=lambda _: None) as session:
        session.execute(f"DELETE FROM t WHERE id >= {args.rows}")
        started = time.perf_counter()
        first = engine.search(engine.Source.of(session), "SELECT * FROM t", "emb", queries[0], top_k=10)
        build = time.perf_counter() - started
    with thanosql.connect(folder, offline=True, progress=False, notify=lambda _: None) as session:
        new = np.concatenate(list(clustered(args.rows // 100, args.dim, args.rows // 1000, seed=7)))
        ids = np.arange(args.rows, args.rows + len(new))
        column = pa.FixedSizeListArray.from_arrays(pa.array(new.reshape(-1)), args.dim)
        session.write_table("t", pa.table({"id": ids, "emb": column}), "append")
        started = time.perf_counter()
        after = engine.search(engine.Source.of(session), "SELECT * FROM t", "emb", queries[1], top_k=10)
        append = time.perf_counter() - started
        session.execute(f"DELETE FROM t WHERE id >= {args.rows}")
    shutil.rmtree(folder / "thanosql-index", ignore_errors=True)
    print(f"{args.rows:,} rows: build {build:.1f} s ({first.method}, index {first.index_from})")
    print(
        f"append {len(new):,} rows: next query {append:.1f} s (index {after.index_from}), {append / build:.1%} of the build"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
