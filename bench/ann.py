"""Benchmark: faiss-cpu against usearch for approximate top-10 search on this machine, to choose the
library issue 14's approximate search is built on. Both are used directly, in one run, on the same
clustered vectors and queries; recall@10 is measured against the exact answer.

    pip install -c constraints.txt faiss-cpu usearch   # not dependencies yet
    python bench/ann.py [--rows 200000] [--dim 512] [--queries 200]

The vectors are clustered as real embeddings are (bench/clustered.py; uniform random vectors are
not realistic for approximate search); queries are drawn the same way and held out. For each index and search setting:
build seconds (one per index), index bytes, median and 95th-percentile milliseconds of one query
at a time, and recall@10 (the share of the exact top 10 found).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clustered import clustered as clustered_chunks


def clustered(rows: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """The rows bench/clustered.py makes (as real embeddings are: see there), as one matrix."""
    return np.concatenate(list(clustered_chunks(rows, dim, clusters, seed)))


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ data.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return top


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def timed_queries(search, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    found, times = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(search(query))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return np.array(found), statistics.median(times), times[int(0.95 * (len(times) - 1))]


def faiss_indexes(data: np.ndarray):
    import faiss

    dim = data.shape[1]
    lists = int(4 * np.sqrt(len(data)))
    yield (
        "faiss HNSW32 flat",
        lambda: _faiss_build(faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT), data),
        [("efSearch", value) for value in (16, 32, 64, 128, 256)],
    )
    quantizer = faiss.IndexFlatIP(dim)
    yield (
        f"faiss IVF{lists} SQ8",
        lambda: _faiss_build(
            faiss.IndexIVFScalarQuantizer(
                quantizer, dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            ),
            data,
        ),
        [("nprobe", value) for value in (4, 8, 16, 32, 64)],
    )


def _faiss_build(index, data):
    if not index.is_trained:
        index.train(data[np.random.default_rng(0).choice(len(data), min(len(data), 65536), replace=False)])
    index.add(data)
    return index


def faiss_search(index, name: str, value: int, k: int):
    import faiss

    if name == "efSearch":
        index.hnsw.efSearch = value
    else:
        faiss.extract_index_ivf(index).nprobe = value
    return lambda query: index.search(query[None, :], k)[1][0]


def usearch_indexes(data: np.ndarray):
    from usearch.index import Index

    dim = data.shape[1]
    for dtype in ("f32", "i8"):

        def build(dtype=dtype):
            index = Index(ndim=dim, metric="ip", dtype=dtype, connectivity=16, expansion_add=128)
            index.add(np.arange(len(data)), data, log=False)
            return index

        yield f"usearch HNSW16 {dtype}", build, [("expansion_search", value) for value in (16, 32, 64, 128, 256)]


def usearch_search(index, name: str, value: int, k: int):
    index.expansion_search = value
    return lambda query: index.search(query, k).keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    k = 10
    print(f"{args.rows:,} x {args.dim}, {args.clusters} clusters, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    data = clustered(args.rows, args.dim, args.clusters, seed=0)
    queries = clustered(args.queries, args.dim, args.clusters, seed=1)
    truth = exact_top(data, queries, k)
    _, numpy_ms, _ = timed_queries(lambda q: np.argpartition(-(data @ q), k)[:k], queries[:50])
    print(f"NumPy exact: median {numpy_ms:.2f} ms a query")
    print(
        f"{'index':24s} {'build s':>8s} {'MB':>7s} {'setting':>20s} {'median ms':>9s} {'p95 ms':>7s} {'recall@10':>9s}"
    )
    for make, search in ((faiss_indexes, faiss_search), (usearch_indexes, usearch_search)):
        for label, build, settings in make(data):
            started = time.perf_counter()
            index = build()
            seconds = time.perf_counter() - started
            size = _size(index)
            for name, value in settings:
                found, median, p95 = timed_queries(search(index, name, value, k), queries)
                print(
                    f"{label:24s} {seconds:8.1f} {size / 1e6:7.0f} {f'{name}={value}':>20s} {median:9.3f} {p95:7.3f} "
                    f"{recall(found, truth):9.3f}",
                    flush=True,
                )
            del index


def _size(index) -> int:
    try:
        import faiss

        if isinstance(index, faiss.Index):
            return len(faiss.serialize_index(index))
    except ImportError:
        pass
    return int(getattr(index, "memory_usage", 0))


if __name__ == "__main__":
    main()
