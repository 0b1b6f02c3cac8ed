"""Benchmark: SEARCH's engine against NumPy's brute force and DuckDB's own scan, in one run.

    PYTHONPATH=src python bench/search.py [--sizes 25000 100000 1000000] [--dim 512] [--queries 7]
    PYTHONPATH=src python bench/search.py --clustered 1000000 10000000 [--keep /big/folder]

The second form is the large-table bench (see ``bench_clustered``): clustered vectors, the
default (approximate) search against recall=1, NumPy, faiss itself and DuckDB, with build time,
index size, peak memory, a new process's first query and an append of 1% more rows.

For each size, random float32 rows go into a DuckDB table (FLOAT[dim]); then, for the same
queries: thanosql.search.search over ``SELECT * FROM t`` (cold: first query, index build
included; warm: median over 3 rounds of the queries, full rows fetched), NumPy (normalised matrix already in
memory, matrix x query + argpartition: the fair reference) and DuckDB
(``ORDER BY array_cosine_similarity(...) DESC LIMIT k``). Prints ms per query, the ratios, the
memory each holds, and checks that all three return the same top k.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
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


CLUSTERS_PER_ROWS = 1000  # rows per cluster of the clustered tables
NEW_PROCESS = """
import json, sys, time
started = time.perf_counter()
import numpy as np
import thanosql
from thanosql.search import engine
imported = time.perf_counter()
queries = np.load(sys.argv[2])
with thanosql.connect(sys.argv[1], offline=True, progress=False, notify=lambda _: None) as session:
    source = engine.Source.of(session)
    first = time.perf_counter()
    ranking = engine.search(source, "SELECT * FROM t", "emb", queries[0], top_k=10)
    first = time.perf_counter() - first
    times = []
    for query in queries[1:]:
        began = time.perf_counter()
        engine.search(source, "SELECT * FROM t", "emb", query, top_k=10)
        times.append(time.perf_counter() - began)
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"import_s": imported - started, "first_s": first, "from": ranking.index_from,
                  "method": ranking.method, "median_ms": 1000 * float(np.median(times)), "peak_mb": int(peak) / 1024}))
"""


def clustered_table(session, folder: Path, rows: int, dim: int) -> np.ndarray:
    """Table t (id, emb FLOAT[dim]) of clustered rows, and the same rows in ``vectors.npy``
    (memory-mapped: NumPy's reference reads it in chunks), both made chunk by chunk; kept in
    ``folder`` and reused by a later run of the same size."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from clustered import clustered

    path = folder / "vectors.npy"
    with session.connect() as connection:
        present = connection.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'").fetchall()[0][0]
        count = connection.execute("SELECT count(*) FROM t").fetchall()[0][0] if present else -1
    if count == rows and path.exists():
        return np.load(path, mmap_mode="r")
    vectors = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    started, filled = time.perf_counter(), 0
    with session.connect() as connection:
        connection.execute(f"CREATE OR REPLACE TABLE t (id BIGINT, emb FLOAT[{dim}])")
    for chunk in clustered(rows, dim, max(1, rows // CLUSTERS_PER_ROWS), seed=0, chunk=131072):
        ids = np.arange(filled, filled + len(chunk))
        column = pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), dim)
        session.write_table("t", pa.table({"id": ids, "emb": column}), "append")
        vectors[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    vectors.flush()
    print(f"  made {rows:,} clustered rows in {time.perf_counter() - started:.0f} s", flush=True)
    return np.load(path, mmap_mode="r")


def chunked_exact(vectors: np.ndarray, queries: np.ndarray, top_k: int, chunk: int = 262144) -> np.ndarray:
    """NumPy's exact top k of each query, reading the rows chunk by chunk (they need not fit)."""
    best_scores = np.full((len(queries), top_k), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), top_k), np.int64)
    for start in range(0, len(vectors), chunk):
        scores = queries @ np.asarray(vectors[start : start + chunk]).T
        scores = np.concatenate([best_scores, scores], axis=1)
        ids = np.concatenate(
            [
                best_ids,
                np.broadcast_to(
                    np.arange(start, start + scores.shape[1] - top_k), (len(queries), scores.shape[1] - top_k)
                ),
            ],
            axis=1,
        )
        keep = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
        best_scores, best_ids = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, 1)


def recall_at(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def bench_clustered(rows: int, dim: int, queries: int, keep: Path) -> dict:
    """One size of the large-table bench; every figure comes from this run."""
    from thanosql.search import approximate, engine

    folder = keep / f"clustered-{rows}-{dim}"
    folder.mkdir(parents=True, exist_ok=True)
    result: dict = {"rows": rows}
    with thanosql.connect(folder, offline=True, progress=True, notify=lambda _: None) as session:
        vectors = clustered_table(session, folder, rows, dim)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from clustered import clustered

        probes = np.concatenate(list(clustered(queries + 1, dim, max(1, rows // CLUSTERS_PER_ROWS), seed=99)))
        np.save(folder / "queries.npy", probes)
        truth = chunked_exact(vectors, probes, 10)
        source = engine.Source.of(session)
        shutil.rmtree(folder / "thanosql-index", ignore_errors=True)
        search.clear(session)

        # Below the exact line the default is exact: the approximate figures are then those of
        # recall=0.95, the default above it.
        approximate_options = {} if rows * dim >= engine.EXACT_LINE else {"recall": approximate.DEFAULT_RECALL}
        result["asked"] = "default" if not approximate_options else "recall=0.95"

        def ours(query, **options):
            return engine.search(source, "SELECT * FROM t", "emb", query, top_k=10, **(options or approximate_options))

        # The first query builds the index (its time is the build time).
        reset_peak()
        before = rss_mb()
        started = time.perf_counter()
        first = ours(probes[0])
        result["build_s"] = time.perf_counter() - started
        result["build_peak_mb"] = rss_mb("VmHWM") - before
        result["method"], setting = first.method, first.setting
        result["setting"] = f"{setting.probes}/{setting.lists} lists" if setting else "-"
        ivf = [p for p in (folder / "thanosql-index").iterdir() if p.name.endswith(".ivf")]
        result["index_mb"] = folder_mb(ivf[0]) if ivf else float("nan")
        times, found = [], []
        for _ in range(2):
            times, found = [], []
            for query in probes[1:]:
                began = time.perf_counter()
                ranking = ours(query)
                times.append((time.perf_counter() - began) * 1000)
                found.append(ranking.rows.column("id").to_pylist())
        result["ours_ms"], result["ours_recall"] = statistics.median(times), recall_at(found, truth[1:])

        # faiss itself, on the same index file, at the same probe count: top 10 straight, and the
        # candidates ours scores exactly (our overhead is DuckDB's fetch and the exact scores).
        if setting is not None:
            import faiss

            index = faiss.read_index(str(ivf[0] / "base.faiss"), faiss.IO_FLAG_MMAP)
            parameters = faiss.SearchParametersIVF(nprobe=setting.probes)
            for name, count in (("faiss", 10), ("faiss_candidates", approximate.candidate_count(10))):
                times, found = [], []
                for query in probes[1:]:
                    began = time.perf_counter()
                    _, ids = index.search(query.reshape(1, -1), count, params=parameters)
                    times.append((time.perf_counter() - began) * 1000)
                    found.append(ids[0].tolist())
                result[f"{name}_ms"] = statistics.median(times)
                result[f"{name}_recall"] = recall_at(found, truth[1:])
            del index

        # NumPy's exact answer, one query at a time (chunked when the rows do not fit memory).
        times = []
        for query in probes[1:4]:
            began = time.perf_counter()
            chunked_exact(vectors, query.reshape(1, -1), 10)
            times.append((time.perf_counter() - began) * 1000)
        result["numpy_ms"] = statistics.median(times)

        # recall=1: the exact answer (an index of int8 codes, or read in batches past the budget).
        exact_runs = 5 if rows <= 2_000_000 else 2
        ours(probes[1], recall=1)  # builds the exact index where it fits
        times, same = [], True
        for number, query in enumerate(probes[1 : 1 + exact_runs], start=1):
            began = time.perf_counter()
            ranking = ours(query, recall=1)
            times.append((time.perf_counter() - began) * 1000)
            same &= ranking.rows.column("id").to_pylist() == truth[number].tolist()
        result["exact_ms"], result["exact_method"], result["exact_same"] = (
            statistics.median(times),
            ranking.method,
            same,
        )

        exact_folders = [p for p in (folder / "thanosql-index").iterdir() if not p.name.endswith(".ivf")]
        result["exact_index_mb"] = folder_mb(exact_folders[0]) if exact_folders else 0.0
        if rows <= 2_000_000:
            sql = f"SELECT id FROM t ORDER BY array_cosine_similarity(emb, ?::FLOAT[{dim}]) DESC LIMIT 10"
            result["duckdb_ms"], _ = timed(lambda: duckdb_scan(session, sql, probes[1]), 3)
        search.clear(session)

    # A new process: its first query reads the stored index; its peak memory.
    done = subprocess.run(
        [sys.executable, "-c", NEW_PROCESS, str(folder), str(folder / "queries.npy")],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    child = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(
        new_first_s=child["first_s"],
        new_from=child["from"],
        new_import_s=child["import_s"],
        new_median_ms=child["median_ms"],
        new_peak_mb=child["peak_mb"],
    )

    # Append 1% more rows: the next query adds them to the stored index.
    with thanosql.connect(folder, offline=True, progress=False, notify=lambda _: None) as session:
        new = np.concatenate(list(clustered(rows // 100, dim, max(1, rows // CLUSTERS_PER_ROWS), seed=7)))
        ids = np.arange(rows, rows + len(new))
        session.write_table(
            "t",
            pa.table({"id": ids, "emb": pa.FixedSizeListArray.from_arrays(pa.array(new.reshape(-1)), dim)}),
            "append",
        )
        began = time.perf_counter()
        appended = engine.search(engine.Source.of(session), "SELECT * FROM t", "emb", probes[1], top_k=10)
        result["append_s"], result["append_from"] = time.perf_counter() - began, appended.index_from
        session.execute(f"DELETE FROM t WHERE id >= {rows}")  # the table as it was, for the next run
    shutil.rmtree(folder / "thanosql-index", ignore_errors=True)
    return result


def print_clustered(result: dict) -> None:
    r = result
    print(f"\n{r['rows']:,} clustered rows:")
    print(
        f"  ours, {r['asked']} ({r['method']}, {r['setting']}): {r['ours_ms']:.2f} ms median, recall@10 {r['ours_recall']:.3f}"
    )
    if "faiss_ms" in r:
        print(
            f"  faiss itself, same probes: top 10 {r['faiss_ms']:.2f} ms (recall@10 {r['faiss_recall']:.3f}); "
            f"the {r['faiss_candidates_ms']:.2f} ms of ours' candidates (recall {r['faiss_candidates_recall']:.3f}); "
            f"ours/faiss top 10 = {r['ours_ms'] / r['faiss_ms']:.2f}x"
        )
    print(
        f"  ours, recall=1 ({r['exact_method']}): {r['exact_ms']:.1f} ms median, the exact answer: {'yes' if r['exact_same'] else 'NO'}"
    )
    print(
        f"  NumPy exact (chunked): {r['numpy_ms']:.1f} ms; NumPy / ours recall=1 = {r['numpy_ms'] / r['exact_ms']:.2f}x; NumPy / ours default = {r['numpy_ms'] / r['ours_ms']:.1f}x"
    )
    if "duckdb_ms" in r:
        print(f"  DuckDB array_cosine_similarity scan: {r['duckdb_ms']:.1f} ms")
    print(
        f"  approximate index build {r['build_s']:.1f} s (peak +{r['build_peak_mb']:.0f} MB), {r['index_mb']:.0f} MB "
        f"on disk; exact index {r['exact_index_mb']:.0f} MB on disk"
    )
    print(
        f"  new process: first query {r['new_first_s']:.2f} s (index from {r['new_from']}; import {r['new_import_s']:.2f} s), "
        f"then {r['new_median_ms']:.2f} ms median, peak memory {r['new_peak_mb']:.0f} MB"
    )
    print(
        f"  append 1% rows: next query {r['append_s']:.1f} s (index {r['append_from']}), {r['append_s'] / r['build_s']:.1%} of the build"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=7)
    parser.add_argument("--top-k", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--duckdb-repeats", type=int, default=3)
    parser.add_argument("--clustered", type=int, nargs="*", help="large-table bench sizes (e.g. 1000000 10000000)")
    parser.add_argument(
        "--keep", type=Path, default=Path(tempfile.gettempdir()) / "thanosql-bench", help="where its tables stay"
    )
    args = parser.parse_args(argv)
    if args.clustered:
        for rows in args.clustered:
            print_clustered(bench_clustered(rows, args.dim, max(args.queries, 50), args.keep))
        return 0
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
