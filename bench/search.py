"""Benchmark: SEARCH's engine against NumPy's brute force and DuckDB's own scan, in one run.

    PYTHONPATH=src python bench/search.py [--sizes 25000 100000 1000000] [--dim 512] [--queries 7]

For each size, random float32 rows go into a DuckDB table (FLOAT[dim]); then, for the same
queries: thanosql.search.search over ``SELECT * FROM t`` (cold: first query, index build
included; warm: median over 3 rounds of the queries, full rows fetched), NumPy (normalised matrix already in
memory, matrix x query + argpartition: the fair reference) and DuckDB
(``ORDER BY array_cosine_similarity(...) DESC LIMIT k``). Prints ms per query, the ratios, the
memory each holds, and checks that all three return the same top k.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import thanosql
from thanosql import search


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak since the last reset (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so each phase gets its own peak.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


# NumPy's OpenBLAS threads keep spinning for about 0.1 s after a product and take a core from
# whatever runs next (measured here: a 19 ms int8 scan took 40 ms right after a NumPy product).
# So the methods run in blocks, each query right after the last as in a warm session, with
# this pause where one block hands over to the next; blocks alternate for ROUNDS rounds, so
# that load from the machine's neighbours hits every method alike.
SETTLE_SECONDS = 0.25
ROUNDS = 3


def timed(function, repeats: int) -> tuple[float, object]:
    """Median ms of ``repeats`` calls in a row, after a pause; and the last result."""
    times, result = [], None
    time.sleep(SETTLE_SECONDS)
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def timed_blocks(function, probes) -> tuple[list[float], list]:
    """ms of ``function(probe)`` for every probe, in one block after a pause; and the results."""
    times, results = [], []
    time.sleep(SETTLE_SECONDS)
    for probe in probes:
        start = time.perf_counter()
        results.append(function(probe))
        times.append((time.perf_counter() - start) * 1000)
    return times, results


def make_table(session, rows: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((rows, dim), dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)
    with session.connect() as connection:
        connection.register("__bench_rows", pa.table({"id": np.arange(rows), "emb": column}))
        connection.execute(f"CREATE OR REPLACE TABLE t AS SELECT id, emb::FLOAT[{dim}] AS emb FROM __bench_rows")
        connection.unregister("__bench_rows")
    return matrix


class Reference:
    """The NumPy side: the normalised matrix in memory (built outside any timing)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.normalised = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def top(self, query: np.ndarray, top_k: int) -> list[int]:
        """NumPy brute force: matrix x query, argpartition, sort the k."""
        scores = self.normalised @ (query / np.linalg.norm(query))
        best = np.argpartition(-scores, top_k)[:top_k]
        return best[np.argsort(-scores[best], kind="stable")].tolist()

    def exact_top(self, query: np.ndarray, top_k: int) -> list[int]:
        """The answer by definition: a float32 shortlist, then float64 cosines of the stored rows."""
        scores = self.normalised @ (query / np.linalg.norm(query))
        shortlist = np.sort(np.argpartition(-scores, top_k + 64)[: top_k + 64])
        exact = search.exact_scores(self.matrix[shortlist], np.ones(len(shortlist), bool), query)
        return shortlist[search.rank(exact, top_k)].tolist()


def cold_query(session, query: np.ndarray) -> tuple[float, float, float]:
    """(ms, peak MB added, index MB) of the first search, which builds the index."""
    search.clear(session)
    reset_peak()
    before = rss_mb()
    start = time.perf_counter()
    search.search(session, "SELECT * FROM t", "emb", query, top_k=10)
    elapsed = (time.perf_counter() - start) * 1000
    (index,) = session.caches.indexes.indexes()
    return elapsed, rss_mb("VmHWM") - before, index.nbytes / 2**20


def duckdb_scan(session, sql: str, query: np.ndarray) -> list:
    with session.connect() as connection:
        return connection.execute(sql, [query.tolist()]).fetchall()


def bench_top_k(session, reference: Reference, probes, dim: int, top_k: int, duckdb_repeats: int) -> dict:
    """Warm queries, ours and NumPy's in alternating blocks (see SETTLE_SECONDS), then DuckDB's
    scan; and whether the answers agree."""
    ours_ms, numpy_ms = [], []
    for _ in range(ROUNDS):
        times, rankings = timed_blocks(
            lambda q: search.search(session, "SELECT * FROM t", "emb", q, top_k=top_k), probes
        )
        ours_ms += times
        numpy_ms += timed_blocks(lambda q: reference.top(q, top_k), probes)[0]
    sql = f"SELECT id FROM t ORDER BY array_cosine_similarity(emb, ?::FLOAT[{dim}]) DESC LIMIT {top_k}"
    duck_ms, _ = timed(lambda: duckdb_scan(session, sql, probes[0]), duckdb_repeats)
    # Ours must equal the exact answer; NumPy's and DuckDB's float32 scores may swap rows whose
    # cosines differ by less than their rounding, so of them the same rows are asked.
    exact, same_rows = True, True
    for query, ranking in zip(probes, rankings):
        ours = ranking.rows.column("id").to_pylist()
        duck = [row[0] for row in duckdb_scan(session, sql, query)]
        exact &= ours == reference.exact_top(query, top_k)
        same_rows &= set(ours) == set(reference.top(query, top_k)) == set(duck)
    return {
        "ours_ms": statistics.median(ours_ms),
        "numpy_ms": statistics.median(numpy_ms),
        "duckdb_ms": duck_ms,
        "candidates": statistics.median(r.candidates for r in rankings),
        "exact": exact,
        "same_rows": same_rows,
    }


def bench_size(session, rows: int, dim: int, queries: int, top_ks, duckdb_repeats: int) -> list[dict]:
    reference = Reference(make_table(session, rows, dim, seed=rows))
    rng = np.random.default_rng(1)
    probes = [rng.standard_normal(dim).astype(np.float32) for _ in range(queries + 1)]
    cold_ms, build_mb, index_mb = cold_query(session, probes[0])
    results = []
    for top_k in top_ks:
        result = bench_top_k(session, reference, probes[1:], dim, top_k, duckdb_repeats)
        result.update(
            rows=rows,
            top_k=top_k,
            cold_ms=cold_ms,
            build_peak_mb=build_mb,
            index_mb=index_mb,
            numpy_mb=reference.normalised.nbytes / 2**20,
        )
        results.append(result)
    search.clear(session)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=7)
    parser.add_argument("--top-k", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--duckdb-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import torch

    print(f"threads: torch {torch.get_num_threads()}, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    header = (
        f"{'rows':>9} {'k':>5} | {'ours ms':>8} {'numpy ms':>9} {'duckdb ms':>10} | {'numpy/ours':>10} "
        f"{'duckdb/ours':>11} | {'cold ms':>8} {'cand':>6} | {'index MB':>8} {'numpy MB':>8} "
        f"{'build +MB':>9} | exact  same rows as numpy, duckdb"
    )
    print(header)
    print("-" * len(header))
    ok = True
    with (
        tempfile.TemporaryDirectory() as folder,
        thanosql.connect(folder, offline=True, progress=False, notify=lambda _: None) as session,
    ):
        for rows in args.sizes:
            for r in bench_size(session, rows, args.dim, args.queries, args.top_k, args.duckdb_repeats):
                ok &= r["exact"] and r["same_rows"]
                print(
                    f"{rows:>9,} {r['top_k']:>5} | {r['ours_ms']:8.1f} {r['numpy_ms']:9.1f} {r['duckdb_ms']:10.1f} | "
                    f"{r['numpy_ms'] / r['ours_ms']:10.2f} {r['duckdb_ms'] / r['ours_ms']:11.2f} | "
                    f"{r['cold_ms']:8.0f} {r['candidates']:6.0f} | {r['index_mb']:8.1f} {r['numpy_mb']:8.1f} "
                    f"{r['build_peak_mb']:9.0f} | {'yes' if r['exact'] else 'NO':>5}  {'yes' if r['same_rows'] else 'NO'}",
                    flush=True,
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
