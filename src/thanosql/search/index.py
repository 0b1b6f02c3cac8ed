"""CompactIndex: an embedding column in two int8 levels (codes.py) that screens a query down to a
superset of its exact top k, with bounds that hold for every row (kernels.py gives the products);
build_index reads one from batches of (rowid, embedding). No DuckDB: rows come in as Arrow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from ..errors import PlanError
from .codes import Quantised, quantise_into
from .exact import to_matrix, unit_vector
from .kernels import PACK_MIN_BYTES, PackedCodes, first_level_products, two_level_products

# Absolute slack added to every bound: covers float32 rounding of the screening arithmetic
# (about 1e-7 here) with a wide margin, at no measurable cost in candidates.
ROUNDING_SLACK = 1e-5


class StaleIndex(Exception):
    """The table no longer matches its index (written behind the session's back): rebuild."""


class CompactIndex:
    """An embedding column's rows in two int8 levels, to screen a query before exact scoring.

    >>> index = CompactIndex(rowids, quantise(matrix, present))  # doctest: +SKIP
    >>> index.screen(query, top_k=10)          # positions whose exact score may be in the top 10  # doctest: +SKIP

    ``screen`` scans the first level of every row (n*d bytes, int8 GEMV), then re-bounds the
    survivors with both levels and the query unquantised, so that about ``top_k`` rows remain.
    """

    def __init__(
        self, rowids: np.ndarray, quantised: Quantised, pack: bool | None = None, packed: PackedCodes | None = None
    ) -> None:
        self.rowids = rowids
        self.levels = quantised
        self.codes = quantised.codes
        self.valid = quantised.valid
        self.dim = quantised.codes.shape[1]
        self.scored_positions = np.flatnonzero(self.valid)
        self.max_code_norm = float(quantised.code_norm.max(initial=0.0))
        self.max_residual = float(quantised.residual.max(initial=0.0))
        # Whole scans of a large index run on packed codes (kernels.PackedCodes): ``packed``
        # as given (build_index packs while it reads), else packed here; ``pack`` forces the
        # choice either way.
        if pack is None:
            pack = self.codes.nbytes >= PACK_MIN_BYTES
        if packed is None and pack:
            packed = PackedCodes.pack(self.codes)
        self.packed = packed

    def __len__(self) -> int:
        return len(self.rowids)

    def with_rows(self, appended: CompactIndex) -> CompactIndex:
        """This index and the index of rows appended after its last rowid, as one (the arrays
        copied once; the new rows alone were quantised). Packed for fbgemm in the background."""
        if len(appended) == 0:
            return self
        if len(self) and appended.dim != self.dim:
            raise StaleIndex("the dimension changed")
        levels = Quantised(
            *(np.concatenate([getattr(self.levels, name), getattr(appended.levels, name)]) for name in Quantised.FIELDS)
        )
        joined = CompactIndex(np.concatenate([self.rowids, appended.rowids]), levels, pack=False)
        joined.pack_in_background()
        return joined

    def pack_in_background(self) -> threading.Thread | None:
        """Pack a large index's codes (kernels.PackedCodes) on a thread of its own; queries run
        the unpacked kernels until the packed codes are ready, then those. For an index read back
        from the workspace (stored.py), whose first query should not wait for the packing (about
        3 s per million rows of 512 values). Returns the thread, or None where nothing is packed."""
        if self.packed is not None or self.codes.nbytes < PACK_MIN_BYTES:
            return None

        def pack() -> None:
            try:
                packed = PackedCodes.pack(self.codes)
            except (RuntimeError, NotImplementedError):
                return  # fbgemm failed here: the unpacked kernels go on
            # One attribute store: a query reads self.packed once, so it sees old or new.
            self.packed = packed

        # Not a daemon: the interpreter waits for it at exit rather than stop torch midway.
        thread = threading.Thread(target=pack, name="thanosql-pack")
        thread.start()
        return thread

    @property
    def nbytes(self) -> int:
        arrays = [getattr(self.levels, name) for name in Quantised.FIELDS]
        packed = self.packed.nbytes if self.packed is not None else 0
        return int(sum(a.nbytes for a in arrays) + self.rowids.nbytes + self.scored_positions.nbytes + packed)

    def screen(self, query: np.ndarray, top_k: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Positions (ascending) of every row whose cosine with ``query`` can reach the top
        ``top_k`` among ``positions`` (default: all rows): a superset of the exact answer."""
        if positions is None:
            selected = self.scored_positions
            excluded = ~self.valid if len(selected) < len(self) else None
            whole = True
        else:
            selected = positions[self.valid[positions]]
            # Gathering a small selection costs less than scanning everything and masking.
            whole = len(selected) * 4 > len(self)
            excluded = None
            if whole:
                excluded = np.ones(len(self), dtype=bool)
                excluded[selected] = False
        if len(selected) <= top_k:
            return selected
        rows = slice(None) if whole else selected
        survivors = self._first_level(query, rows, excluded, top_k)
        survivors = survivors if whole else selected[survivors]
        return self._second_level(query, survivors, top_k)

    def _first_level(self, query, rows, excluded, top_k: int) -> np.ndarray:
        """Indices (into ``rows``) of the rows whose first-level upper bound reaches the k-th
        largest first-level lower bound.

        Bounds are worked out on two short lists only, so that a query makes five passes over
        n floats: the k-th largest lower bound is taken among the rows of highest estimate (a
        subset gives a threshold at most the true one: still safe), and the upper bounds only
        where the estimate is within the largest possible bound of that threshold.
        """
        levels = self.levels
        packed = self.packed if isinstance(rows, slice) else None
        products, query_error, relative_error = first_level_products(self.codes[rows], query, packed)
        approx = products
        approx *= levels.scale[rows]
        if excluded is not None:
            approx[excluded] = -np.inf

        def bounds(at: np.ndarray) -> np.ndarray:
            bound = levels.code_norm[rows][at] * np.float32(query_error) + levels.residual[rows][at]
            bound += np.float32(ROUNDING_SLACK) + np.abs(approx[at]) * np.float32(relative_error)
            return bound

        shortlist = _top_shortlist(approx, top_k)
        lower = approx[shortlist] - bounds(shortlist)
        threshold = np.partition(lower, len(lower) - top_k)[len(lower) - top_k]
        widest = self.widest_bound(query_error, relative_error)
        near = np.flatnonzero(approx >= threshold - widest)
        return near[approx[near] + bounds(near) >= threshold]

    def widest_bound(self, query_error: float, relative_error: float) -> np.float32:
        """A limit no row's first-level bound exceeds (|estimate| <= s|c|(1 + q) / (1 - r))."""
        estimate = self.max_code_norm * (1 + query_error) / (1 - relative_error) + ROUNDING_SLACK
        widest = self.max_code_norm * query_error + self.max_residual + ROUNDING_SLACK + estimate * relative_error
        return np.float32(widest * 1.001)  # and a margin for the float32 sums of the bounds

    def _second_level(self, query, positions: np.ndarray, top_k: int) -> np.ndarray:
        """Re-bound ``positions`` with both levels and the query to within 1e-7: |f| + that."""
        if len(positions) <= top_k:
            return positions
        levels = self.levels
        unit = unit_vector(query)
        codes = np.take(levels.codes, positions, axis=0)
        fine_codes = np.take(levels.fine_codes, positions, axis=0)
        coarse, fine, coarse_error, fine_error = two_level_products(codes, fine_codes, unit)
        approx = coarse * levels.scale[positions] + fine * levels.fine_scale[positions]
        bound = levels.remainder[positions] + ROUNDING_SLACK
        bound += levels.code_norm[positions] * coarse_error + levels.fine_norm[positions] * fine_error
        return positions[_above_kth(approx - bound, approx + bound, top_k)]


def _top_shortlist(values: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of at least ``top_k`` entries, the ``top_k`` largest among them: the entries at or
    above the smallest of the maxima of ``top_k`` blocks (those maxima are ``top_k`` distinct
    entries, so the smallest is at most the k-th largest). One pass, no sort."""
    count = len(values)
    usable = count - count % top_k
    if count <= top_k or usable < top_k:
        return np.arange(count)
    floor = values[:usable].reshape(top_k, -1).max(axis=1).min()
    shortlist = np.flatnonzero(values >= floor)
    return shortlist if len(shortlist) >= top_k else np.arange(count)  # NaN compares false


def _above_kth(lower: np.ndarray, upper: np.ndarray, top_k: int) -> np.ndarray:
    """Indices whose upper bound reaches the k-th largest lower bound, ascending."""
    count = len(lower)
    if count <= top_k:
        return np.arange(count)
    short = lower[_top_shortlist(lower, top_k)]
    threshold = np.partition(short, len(short) - top_k)[len(short) - top_k]
    return np.flatnonzero(upper >= threshold)


def build_index(batches: Iterable[pa.RecordBatch], rows: int, name: str = "embedding") -> CompactIndex:
    """A CompactIndex from batches of (rowid, embedding) holding ``rows`` rows in all.

    >>> build_index(connection.sql("SELECT rowid, emb FROM t").to_arrow_reader(32768), count)  # doctest: +SKIP

    Batches are quantised as they arrive, so the float32 column is never held whole, and a large
    index is packed (kernels.Packing) while later batches are read. Raises StaleIndex if the
    batches hold more rows than announced (the table changed meanwhile).
    """
    levels, rowids, filled, packing = None, np.zeros(0, np.int64), 0, None
    try:
        for batch in batches:
            count = batch.num_rows
            if count == 0:
                continue
            if filled + count > rows:
                raise StaleIndex("the table grew while it was read")
            matrix, present = to_matrix(batch.column(1), name)
            if levels is None:
                levels, rowids = Quantised.empty(rows, matrix.shape[1]), np.empty(rows, np.int64)
                if levels.codes.nbytes >= PACK_MIN_BYTES:
                    packing = PackedCodes.packing(levels.codes)
            elif matrix.shape[1] != levels.codes.shape[1]:
                raise PlanError(
                    f"column '{name}' holds embeddings of different lengths: "
                    f"{levels.codes.shape[1]} and {matrix.shape[1]} values",
                    hint="every embedding of a column must come from the same model",
                )
            rowids[filled : filled + count] = batch.column(0).to_numpy()
            quantise_into(levels, filled, matrix, present)
            filled += count
            if packing is not None:
                packing.rows_ready(filled)
        if levels is None:
            return CompactIndex(np.zeros(0, np.int64), Quantised.empty(0, 0))
        if filled < rows or (len(rowids) > 1 and not np.all(rowids[1:] > rowids[:-1])):
            # Rows to drop or to put in rowid order: what was packed no longer lines up.
            if packing is not None:
                packing.cancel()
            order = np.argsort(rowids[:filled], kind="stable")
            return CompactIndex(rowids[:filled][order], levels.take(order))
        packed = packing.finish(filled) if packing is not None else None
        return CompactIndex(rowids, levels, packed=packed)
    finally:
        if packing is not None:
            packing.cancel()  # after finish: nothing left to stop
