"""Approximate top-k search for large tables: faiss's inverted-file index with 8-bit scalar codes
(IVF, SQ8), whose probe count is chosen per query to keep a recall promise measured on the
table's own rows.

>>> approximate = build_approximate(sample, batches, rows=count)  # doctest: +SKIP
>>> setting = approximate.setting_for(recall=0.95, top_k=10)  # doctest: +SKIP
>>> approximate.candidates(query, top_k=10, setting=setting)  # rowids, to score exactly  # doctest: +SKIP

What it holds: the unit vectors of every row with a usable embedding, in ``lists`` cells around
k-means centres (faiss.IndexIVFScalarQuantizer, inner product), keyed by DuckDB rowid; rows
appended later go into ``deltas``, small indexes sharing the same centres and codes.

How recall is promised (``Calibration``): while the index is built, CALIBRATION_QUERIES rows of
the table's random sample become queries, and their exact top CALIBRATED_K[-1] among the other
rows is found in the same pass that adds the rows (a float32 product per batch). Then, for probe
counts 1, 2, 4, ... the index's candidates for each query (candidate_count(k) of them, the query
row itself left out) are compared with that answer: recall@k is the share of the exact top k
among the candidates, which is what the search returns after scoring the candidates exactly.
A promise ``recall`` is kept with the smallest probe count whose measured recall, less two
standard errors, is at least ``recall`` (none: the search runs exactly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import PlanError
from .exact import to_matrix

# The default promise above the exact line (engine.py).
DEFAULT_RECALL = 0.95
# Rows of the table's sample used as calibration queries.
CALIBRATION_QUERIES = 200
# The answer sizes recall is measured for; a top_k above the last runs exactly.
CALIBRATED_K = (10, 100)
# k-means training rows per list (faiss's advice is 39 to 256).
TRAINING_ROWS_PER_LIST = 40
TRAINING_ITERATIONS = 12
# Rows per batch while codes are added.
ADD_BATCH_ROWS = 65536


def list_count(rows: int) -> int:
    """Cells of the index: the power of two at or above the square root of ``rows`` (1,024 at a
    million rows, 4,096 at ten million), at most rows / TRAINING_ROWS_PER_LIST, at least 1."""
    lists = 1 << max(0, math.ceil(math.log2(max(1.0, math.sqrt(rows)))))
    while lists > 1 and lists * TRAINING_ROWS_PER_LIST > rows:
        lists //= 2
    return lists


def candidate_count(top_k: int) -> int:
    """Candidates scored exactly for an answer of ``top_k`` rows."""
    return max(4 * top_k, 40)


def calibrated_k(top_k: int) -> int | None:
    """The calibrated answer size whose measurement covers ``top_k`` (None: above them all)."""
    for k in CALIBRATED_K:
        if top_k <= k:
            return k
    return None


@dataclass
class Calibration:
    """Measured recall@k of one answer size ``k`` for each probe count: ``mean`` over the
    calibration queries and ``lower``, the mean less two standard errors."""

    k: int
    probes: list[int]
    mean: list[float]
    lower: list[float]

    def probes_for(self, recall: float) -> tuple[int, float] | None:
        """The smallest probe count keeping ``recall``, with its measured mean; None if none does."""
        for probes, mean, lower in zip(self.probes, self.mean, self.lower):
            if lower >= recall:
                return probes, mean
        return None

    def as_json(self) -> dict:
        return {"k": self.k, "probes": self.probes, "mean": self.mean, "lower": self.lower}

    @classmethod
    def from_json(cls, value: dict) -> Calibration:
        return cls(int(value["k"]), [int(p) for p in value["probes"]], list(value["mean"]), list(value["lower"]))


@dataclass(frozen=True)
class Setting:
    """How one approximate search runs: ``probes`` of ``lists`` cells, for answers of up to
    ``k`` rows, whose recall was measured at ``measured``."""

    probes: int
    lists: int
    k: int
    measured: float


@dataclass
class ApproximateIndex:
    """An IVF-SQ8 index of a table's column (``base``, perhaps memory-mapped) and the indexes of
    rows appended since (``deltas``), with the calibration of its probe counts."""

    base: object
    calibrations: dict[int, Calibration]
    rows: int  # the table's rows when the index was last brought up to date
    dim: int
    max_rowid: int  # the highest rowid indexed (appended rows come after it)
    deltas: list = field(default_factory=list)
    mapped: bool = False  # the base's codes are memory-mapped from the workspace, not held

    @property
    def nbytes(self) -> int:
        """Memory the index holds: the centres, the deltas' codes and ids, and the base's unless
        they are memory-mapped (the kernel's page cache holds what queries touch)."""
        per_row = self.dim + 8
        held = self.lists * self.dim * 4 + sum(int(delta.ntotal) for delta in self.deltas) * per_row
        return held + (0 if self.mapped else int(self.base.ntotal) * per_row)

    @property
    def lists(self) -> int:
        return int(self.base.nlist)

    @property
    def indexed(self) -> int:
        """Rows with a usable embedding, in the base and the deltas."""
        return int(self.base.ntotal) + sum(int(delta.ntotal) for delta in self.deltas)

    def setting_for(self, recall: float, top_k: int) -> Setting | None:
        """How to search for ``top_k`` rows keeping ``recall``; None: only an exact search can."""
        k = calibrated_k(top_k)
        calibration = self.calibrations.get(k) if k is not None else None
        if calibration is None or recall >= 1:
            return None
        found = calibration.probes_for(recall)
        if found is None:
            return None
        return Setting(found[0], self.lists, k, found[1])

    def candidates(
        self, query: np.ndarray, top_k: int, setting: Setting, allowed: np.ndarray | None = None
    ) -> np.ndarray:
        """Rowids of the rows most like ``query`` (unit vector, (d,)) to score exactly, best
        first. ``allowed``: a boolean mask over rowids (a WHERE); the probe count grows as the
        share it keeps shrinks, so that about as many allowed rows are seen."""
        import faiss

        count = candidate_count(top_k)
        probes = setting.probes
        selector = None
        if allowed is not None:
            share = max(float(allowed.mean()), 1e-9) if len(allowed) else 1e-9
            probes = min(self.lists, math.ceil(probes / share))
            bits = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        parameters = faiss.SearchParametersIVF(nprobe=probes, sel=selector)
        found_scores, found_ids = [], []
        for index in (self.base, *self.deltas):
            if index.ntotal == 0:
                continue
            scores, ids = index.search(query.reshape(1, -1), min(count, int(index.ntotal)), params=parameters)
            found_scores.append(scores[0])
            found_ids.append(ids[0])
        if not found_ids:
            return np.zeros(0, np.int64)
        scores, ids = np.concatenate(found_scores), np.concatenate(found_ids)
        keep = ids >= 0
        scores, ids = scores[keep], ids[keep]
        order = np.argsort(-scores, kind="stable")[:count]
        return ids[order].astype(np.int64)

    def with_rows(self, batches: Iterable[pa.RecordBatch], rows: int, name: str = "embedding") -> int:
        """Add appended rows (batches of rowid, embedding) as a new delta; the table now has
        ``rows`` rows. Returns the number of rows read."""
        delta = empty_like(self.base)
        added = _add_batches(delta, batches, name, self.dim)
        if delta.ntotal:
            self.deltas.append(delta)
        self.rows = rows
        if added.max_rowid >= 0:
            self.max_rowid = max(self.max_rowid, added.max_rowid)
        return added.read


def empty_like(index):
    """An empty IVF index with ``index``'s centres and code trainer (its lists are not copied)."""
    import faiss

    quantizer = faiss.downcast_index(index.quantizer)
    fresh_quantizer = faiss.IndexFlatIP(quantizer.d)
    fresh_quantizer.add(quantizer.reconstruct_n(0, quantizer.ntotal))
    fresh = faiss.IndexIVFScalarQuantizer(
        fresh_quantizer, index.d, index.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    fresh.sq.trained = index.sq.trained
    fresh.is_trained = True
    fresh.own_fields = True
    fresh_quantizer.this.disown()
    return fresh


@dataclass
class _Added:
    read: int = 0
    max_rowid: int = -1


def _unit_rows(batch: pa.RecordBatch | pa.Table, name: str, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(rowids, unit vectors) of a batch's rows with a usable embedding (finite, not zero)."""
    matrix, present = to_matrix(batch.column(1), name)
    rowids = batch.column(0).to_numpy().astype(np.int64)
    if dim is not None and matrix.shape[1] not in (0, dim):
        raise PlanError(
            f"column '{name}' holds embeddings of different lengths: {dim} and {matrix.shape[1]} values",
            hint="every embedding of a column must come from the same model",
        )
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(matrix.astype(np.float64), axis=1) if matrix.size else np.zeros(len(matrix))
    usable = present & np.isfinite(norms) & (norms > 0)
    vectors = (matrix[usable] / norms[usable, None]).astype(np.float32)
    return rowids[usable], np.ascontiguousarray(vectors)


def _add_batches(index, batches, name, dim, on_rows=None) -> _Added:
    added = _Added()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        added.read += batch.num_rows
        rowids, vectors = _unit_rows(batch, name, dim)
        if len(rowids):
            index.add_with_ids(vectors, rowids)
            added.max_rowid = max(added.max_rowid, int(rowids.max()))
            if on_rows is not None:
                on_rows(rowids, vectors)
    return added


class _ExactTop:
    """The exact top ``k`` of each calibration query among the rows seen, its own row left out."""

    def __init__(self, queries: np.ndarray, query_rowids: np.ndarray, k: int) -> None:
        self.queries, self.query_rowids, self.k = queries, query_rowids, k
        self.scores = np.full((len(queries), k), -np.inf, np.float32)
        self.rowids = np.full((len(queries), k), -1, np.int64)

    def see(self, rowids: np.ndarray, vectors: np.ndarray) -> None:
        scores = self.queries @ vectors.T
        scores[self.query_rowids[:, None] == rowids[None, :]] = -np.inf
        scores = np.concatenate([self.scores, scores], axis=1)
        ids = np.concatenate([self.rowids, np.broadcast_to(rowids, (len(self.queries), len(rowids)))], axis=1)
        keep = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(scores, keep, axis=1)
        self.rowids = np.take_along_axis(ids, keep, axis=1)

    def best(self, k: int) -> list[set]:
        order = np.argsort(-self.scores, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(self.rowids, order, axis=1)
        return [set(row[row >= 0].tolist()) for row in top]


def build_approximate(
    sample: pa.Table, batches: Iterable[pa.RecordBatch], rows: int, name: str = "embedding", on_progress=None
) -> ApproximateIndex:
    """The approximate index of a column from ``sample`` (rowid, embedding: a random sample of
    the table, to train the centres and give the calibration queries) and ``batches`` (rowid,
    embedding: every row of the table, read once); ``rows`` is the table's row count.
    ``on_progress(rows_read)`` is called as batches are added."""
    import faiss

    sample_rowids, sample_vectors = _unit_rows(sample, name, None)
    if len(sample_rowids) == 0:
        raise ValueError("no usable embeddings")
    dim = sample_vectors.shape[1]
    lists = list_count(rows)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = TRAINING_ITERATIONS
    index.cp.max_points_per_centroid = TRAINING_ROWS_PER_LIST * 4
    index.train(sample_vectors)
    index.own_fields = True
    quantizer.this.disown()
    rng = np.random.default_rng(0)
    picked = rng.choice(len(sample_rowids), min(CALIBRATION_QUERIES, len(sample_rowids)), replace=False)
    truth = _ExactTop(sample_vectors[picked], sample_rowids[picked], min(CALIBRATED_K[-1], max(1, rows - 1)))

    def seen(rowids, vectors):
        truth.see(rowids, vectors)

    def counted(source) -> Iterator[pa.RecordBatch]:
        read = 0
        for batch in source:
            read += batch.num_rows
            yield batch
            if on_progress is not None:
                on_progress(read)

    added = _add_batches(index, counted(batches), name, dim, on_rows=seen)
    approximate = ApproximateIndex(index, {}, rows, dim, added.max_rowid)
    approximate.calibrations = calibrate(approximate, truth)
    return approximate


def calibrate(approximate: ApproximateIndex, truth: _ExactTop) -> dict[int, Calibration]:
    """Measure recall@k for each calibrated k and probe counts 1, 2, 4, ... (see the docstring)."""
    import faiss

    queries, own = truth.queries, truth.query_rowids
    calibrations = {}
    for k in CALIBRATED_K:
        if k > truth.k:
            break
        exact = truth.best(k)
        count = candidate_count(k)
        probes, means, lowers = [], [], []
        nprobe = 1
        while True:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            _, ids = approximate.base.search(queries, min(count + 1, int(approximate.base.ntotal)), params=params)
            recalls = []
            for row, query_rowid, wanted in zip(ids, own, exact):
                found = [i for i in row if i >= 0 and i != query_rowid][:count]
                recalls.append(len(wanted.intersection(found)) / max(1, len(wanted)))
            recalls = np.asarray(recalls)
            mean = float(recalls.mean())
            error = float(recalls.std(ddof=1) / math.sqrt(len(recalls))) if len(recalls) > 1 else 0.0
            probes.append(nprobe)
            means.append(round(mean, 6))
            lowers.append(round(mean - 2 * error, 6))
            if nprobe >= approximate.lists or lowers[-1] >= 0.999:
                break
            nprobe = min(approximate.lists, nprobe * 2)
        calibrations[k] = Calibration(k, probes, means, lowers)
    return calibrations
