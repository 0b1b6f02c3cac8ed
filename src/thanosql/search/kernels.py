"""Products of int8 codes (codes.py) with a query, each with a bound on its error: the numerics
under the compact index (index.py). ``first_level_products`` runs the fastest kernel this machine
has passed a check for; ``two_level_products`` and ``int8_matvec`` are exact integer products.
torch is imported inside the functions only.

>>> products, query_error, relative_error = first_level_products(rows.codes, query)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from ..cores import torch_threads
from .codes import INT8_LEVELS, quantise, query_levels, round_up
from .exact import unit_vector

# Smaller int8 scans run on one thread (see int8_matvec).
PARALLEL_SCAN_BYTES = 64 * 2**20
# Codes of at least this many bytes are packed for fbgemm (at 25k x 512 a scan takes 1.5 ms
# against 2.3 ms, for 0.1 s of packing); below it packing would cost more than it saves.
PACK_MIN_BYTES = 8 * 2**20
# Rows per packed chunk: chunks are packed in parallel, and scanned one after the other.
PACK_CHUNK_ROWS = 65536
# The query as fbgemm reads it: unsigned 8-bit levels where the check passes (VNNI sums pairs of
# products in 32 bits), else 7-bit levels, which no pair of products can push past the 16-bit
# sums of fbgemm's kernels for CPUs without VNNI.
PACKED_QUERY_LEVELS = (255, 127)
# fbgemm takes the query's zero point off in float32 after the integer sum, which rounds
# relative to the terms (at most 2*levels*|c|_1*scale), not to the result: allow 2**-18 of them
# (64 times float32's unit roundoff).
PACKED_ROUNDING = 2.0**-18


def float32_dot_error(dim: int) -> float:
    """gamma_d = d*u / (1 - d*u), u = 2**-24: |fl(x.y) - x.y| <= gamma_d * |x| * |y| for a float32
    dot product of length d in any summation order (Higham, Accuracy and Stability, 3.1)."""
    unit = 2.0**-24
    return dim * unit / (1 - dim * unit)


def int8_matvec(codes: np.ndarray, query_codes: np.ndarray) -> np.ndarray:
    """``codes`` (n, d) int8 times ``query_codes`` (d,) int8, exactly, as int64 (n,).

    Uses torch's int8 GEMM (``torch._int_mm``, int32 sums: exact for d up to 133,000); where that
    is missing, a float64 product.
    """
    import torch

    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    int_mm = getattr(torch, "_int_mm", None)
    if int_mm is not None:
        column = torch.from_numpy(np.ascontiguousarray(query_codes, dtype=np.int8)).reshape(-1, 1)
        threads = 1 if codes.nbytes < PARALLEL_SCAN_BYTES else torch.get_num_threads()
        with torch_threads(threads):
            try:
                return (
                    int_mm(torch.from_numpy(np.ascontiguousarray(codes)), column).reshape(-1).numpy().astype(np.int64)
                )
            except (RuntimeError, NotImplementedError):
                pass  # an unsupported shape or build: the exact fallback below
    return int8_matvec_float(codes, query_codes)


def int8_matvec_float(codes: np.ndarray, query_codes: np.ndarray) -> np.ndarray:
    """The same product in float64 blocks, as int64 (exact: integer sums far below 2**53)."""
    query = np.asarray(query_codes, dtype=np.float64)
    out = np.empty(len(codes), dtype=np.int64)
    for start in range(0, len(codes), 8192):
        out[start : start + 8192] = np.rint(codes[start : start + 8192].astype(np.float64) @ query)
    return out


# -- the first level: the fastest kernel this machine has passed a check for -------------------
#
# * PackedCodes: fbgemm's int8 GEMM (VNNI on AVX512 CPUs) on codes packed once, for large
#   indexes. It reaches about two thirds of the memory bandwidth where the kernels below are
#   compute-bound: at 1M x 512, 17-19 ms a query against 27 ms and 40 ms on this project's
#   two-core machine. Packing costs about 3 s per million rows of 512 values (two threads) and as
#   many bytes as the codes. It is built on torch's quantized-tensor API, which torch 2.13 marks
#   deprecated: its check (_packed_query_levels) turns it off where it is missing or wrong, and
#   the other kernels take over.
# * _weight_int8pack_mm: torch's int8-weight GEMV (bfloat16 query).
# * torch._int_mm: the exact int8 GEMM, with the query quantised to int8.

# float32 rounding of the normalised query and of a product, relative to |c| (16 units in the
# last place).
FLOAT32_ALLOWANCE = 2.0**-20
# bfloat16 unit roundoff, doubled for margin: the query's rounding to bfloat16 and the kernel's
# one rounding of each output are each within it.
BF16_ERROR = 2.0**-8


def first_level_products(
    codes: np.ndarray, query: np.ndarray, packed: PackedCodes | None = None
) -> tuple[np.ndarray, float, float]:
    """``(p, q, r)``: p (n,) float32 with ``|c_i.v - p_i| <= |c_i| * q + |p_i| * r`` for each row
    ``c_i`` of ``codes`` (n, d) int8 and ``v`` the query normalised.

    ``packed`` (the same codes, packed) runs fbgemm's GEMM. Without it, two kernels, the faster
    where it applies: torch's int8-weight GEMV (``_weight_int8pack_mm``, built for LLM decoding:
    bfloat16 query, float32 accumulation, one bfloat16 rounding per output), checked on this
    machine by ``_bf16_kernel_fits``; else the exact int8 GEMV (``torch._int_mm``) with the query
    quantised to int8, whose only error is that quantisation.
    """
    if packed is not None:
        return packed.products(query)
    unit = unit_vector(query).astype(np.float32)
    dim = codes.shape[1]
    if _bf16_kernel_fits(dim):
        return _bf16_products(codes, unit), BF16_ERROR + 2 * float32_dot_error(dim) + FLOAT32_ALLOWANCE, BF16_ERROR
    query_q = quantise(unit[None, :], np.array([True]))
    products = int8_matvec(codes, query_q.codes[0]).astype(np.float32)
    products *= query_q.scale[0]
    # c.v = sq*(c.cq) + c.eq, and |c.eq| <= |c|*|eq|; plus the float32 rounding of v and of the
    # product by sq (a few units in the last place, relative to |c|).
    return products, float(query_q.residual[0]) + FLOAT32_ALLOWANCE, 0.0


def _bf16_products(codes: np.ndarray, unit: np.ndarray) -> np.ndarray:
    import torch

    rows = len(codes)
    if rows == 0:
        return np.zeros(0, np.float32)
    query = torch.from_numpy(unit).to(torch.bfloat16)[None, :]
    # The per-row scales, all 1.0 (0x3F80 in bfloat16): filled by NumPy, on one thread.
    ones = torch.from_numpy(np.full(rows, 0x3F80, dtype=np.int16)).view(torch.bfloat16)
    threads = 1 if codes.nbytes < PARALLEL_SCAN_BYTES else torch.get_num_threads()
    with torch_threads(threads):
        out = torch.ops.aten._weight_int8pack_mm(query, torch.from_numpy(codes), ones)
    # bfloat16 is the upper half of a float32: widen in NumPy, on one thread (see cores.torch_threads).
    widened = out.view(torch.int16).numpy()[0].view(np.uint16).astype(np.uint32)
    widened <<= 16
    return widened.view(np.float32)


@functools.cache
def _bf16_kernel_fits(dim: int) -> bool:
    """Whether the int8-weight GEMV can screen rows of ``dim`` values: torch has it, ``dim`` is a
    multiple of 16 (its AVX512 loop reads 16 values at a time, past the end otherwise), and on
    random rows its error stays within a quarter of the bound first_level_products claims."""
    import torch

    if dim % 16 or not hasattr(torch.ops.aten, "_weight_int8pack_mm"):
        return False
    rng = np.random.default_rng(0)
    codes = rng.integers(-INT8_LEVELS, INT8_LEVELS + 1, (256, dim), dtype=np.int8)
    unit = unit_vector(rng.standard_normal(dim)).astype(np.float32)
    try:
        products = _bf16_products(codes, unit)
    except (RuntimeError, NotImplementedError):
        return False
    exact = codes.astype(np.float64) @ unit.astype(np.float64)
    norms = np.sqrt((codes.astype(np.float64) ** 2).sum(axis=1))
    bound = norms * (BF16_ERROR + 2 * float32_dot_error(dim)) + np.abs(products) * BF16_ERROR
    return bool(np.all(np.abs(products - exact) <= bound / 4))


def two_level_products(
    codes: np.ndarray, fine_codes: np.ndarray, unit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(x, y, ex, ey)``: x ~ c.v and y ~ r.v in float64 for rows ``c`` of ``codes`` and ``r`` of
    ``fine_codes`` (m, d) int8, ``v`` = ``unit`` (d,) float64, with |c.v - x| <= |c|*ex and
    |r.v - y| <= |r|*ey, both near 1e-7.

    Exact int8 products with the query in int8 levels: three for the codes, two for the fine
    codes (whose scale is about 250 times smaller). At 16k gathered rows of 512 values one int8
    GEMV took 0.3 ms here, against 4.8 ms to widen the rows to float32 and multiply them once.
    """
    levels, remainder = query_levels(unit, 3)
    coarse = sum(scale * int8_matvec(codes, level) for level, scale in levels)
    fine = sum(scale * int8_matvec(fine_codes, level) for level, scale in levels[:2])
    return coarse, fine, remainder[2], remainder[1]


# -- fbgemm's int8 GEMM on packed codes -------------------------------------------------------


@contextmanager
def _fbgemm_engine():
    """torch, with fbgemm as the quantized engine inside the block (packing follows it)."""
    import torch

    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = "fbgemm"
    try:
        with warnings.catch_warnings():
            # torch 2.13 warns that quantized tensors are deprecated (see first_level_products).
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            yield torch
    finally:
        torch.backends.quantized.engine = previous


def _pack_chunk(torch, codes: np.ndarray):
    rows = len(codes)
    weight = torch._make_per_channel_quantized_tensor(
        torch.from_numpy(np.ascontiguousarray(codes)),
        torch.ones(rows, dtype=torch.float64),
        torch.zeros(rows, dtype=torch.int64),
        0,
    )
    return torch.ops.quantized.linear_prepack(weight, None)


class PackedCodes:
    """int8 codes (n, d) packed for fbgemm's int8 GEMM, in chunks of ``chunk_rows`` rows.

    >>> packed = PackedCodes.pack(rows.codes)     # None where fbgemm is missing or fails its check  # doctest: +SKIP
    >>> products, query_error, relative_error = packed.products(unit_query)  # doctest: +SKIP

    The query is put on an unsigned 8-bit (or 7-bit) grid, a scale and a zero point, so the
    integer sums are exact; the error is the query's distance to that grid, plus fbgemm's float32
    removal of the zero point (PACKED_ROUNDING).
    """

    def __init__(self, chunks: list, bounds: list[tuple[int, int]], dim: int, query_levels: int) -> None:
        self.chunks = chunks
        self.bounds = bounds
        self.dim = dim
        self.query_levels = query_levels
        self.rows = bounds[-1][1] if bounds else 0

    @property
    def nbytes(self) -> int:
        # The packed codes and fbgemm's int32 sum of each row.
        return self.rows * (self.dim + 4)

    @classmethod
    def pack(cls, codes: np.ndarray, chunk_rows: int = PACK_CHUNK_ROWS) -> PackedCodes | None:
        """The codes packed, or None where this machine's fbgemm is missing or fails the check."""
        query_levels = _packed_query_levels(codes.shape[1]) if len(codes) else 0
        if not query_levels:
            return None
        return cls._pack(codes, chunk_rows, query_levels)

    @classmethod
    def _pack(cls, codes: np.ndarray, chunk_rows: int, query_levels: int) -> PackedCodes:
        import torch

        # Every row is ready: the chunks pack side by side, one per thread.
        packing = Packing(codes, chunk_rows, query_levels, threads=torch.get_num_threads())
        return packing.finish(len(codes))

    @classmethod
    def packing(cls, codes: np.ndarray, chunk_rows: int = PACK_CHUNK_ROWS) -> Packing | None:
        """A Packing of ``codes`` (n, d), an array still being filled in, from its first rows
        on; None where fbgemm is missing or fails the check."""
        query_levels = _packed_query_levels(codes.shape[1]) if len(codes) else 0
        return Packing(codes, chunk_rows, query_levels) if query_levels else None

    def products(self, query: np.ndarray) -> tuple[np.ndarray, float, float]:
        """``(p, q, r)`` as ``first_level_products`` gives them, for every row."""
        import torch

        values, scale, zero_point, grid_error = _packed_query(unit_vector(query), self.query_levels)
        row = torch.from_numpy(values)[None, :]
        kernel = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32
        out = np.empty(self.rows, np.float32)
        threads = 1 if self.rows * self.dim < PARALLEL_SCAN_BYTES else torch.get_num_threads()
        with torch_threads(threads):
            for (start, stop), chunk in zip(self.bounds, self.chunks):
                out[start:stop] = kernel(row, scale, zero_point, chunk).numpy()[0]
        kernel_error = 2 * self.query_levels * np.sqrt(self.dim) * scale * PACKED_ROUNDING
        return out, grid_error + kernel_error + FLOAT32_ALLOWANCE, 0.0


_PACKING = threading.RLock()


class Packing:
    """Packs an index's codes while they are filled in: each chunk of ``chunk_rows`` rows as soon
    as ``rows_ready`` says it is complete, on ``threads`` background threads (packing releases
    the GIL), so that a million rows' 3 s of packing overlap the reading and quantising.

    >>> packing = PackedCodes.packing(codes)   # codes: preallocated (n, d) int8  # doctest: +SKIP
    >>> packing.rows_ready(65536)              # after filling rows 0..65535  # doctest: +SKIP
    >>> packed = packing.finish(n)             # packs the rest, waits, returns the PackedCodes  # doctest: +SKIP

    fbgemm stays the quantized engine until ``finish`` or ``cancel``.
    """

    def __init__(self, codes: np.ndarray, chunk_rows: int, query_levels: int, threads: int = 1) -> None:
        self.codes, self.chunk_rows, self.query_levels = codes, chunk_rows, query_levels
        # One packing at a time in a process: each sets torch's quantized engine (a global) and
        # puts the previous one back, which two packings interleaved (an index packed in the
        # background while another is built) would undo under each other.
        _PACKING.acquire()
        try:
            self.engine = _fbgemm_engine()
            self.torch = self.engine.__enter__()
        except BaseException:
            _PACKING.release()
            raise
        self.pool = ThreadPoolExecutor(max(1, threads))
        self.jobs: list = []
        self.submitted = 0

    def rows_ready(self, filled: int) -> None:
        """Rows ``0..filled-1`` hold their final codes: pack every chunk among them not packed yet."""
        while self.submitted + self.chunk_rows <= filled:
            self._submit(self.submitted + self.chunk_rows)

    def _submit(self, stop: int) -> None:
        span = (self.submitted, stop)
        self.jobs.append((span, self.pool.submit(_pack_chunk, self.torch, self.codes[span[0] : span[1]])))
        self.submitted = stop

    def finish(self, rows: int) -> PackedCodes:
        """The first ``rows`` rows packed (the last chunk may be shorter)."""
        try:
            self.rows_ready(rows)
            if self.submitted < rows:
                self._submit(rows)
            chunks = [job.result() for _, job in self.jobs]
        finally:
            self._close(cancel=False)
        return PackedCodes(chunks, [span for span, _ in self.jobs], self.codes.shape[1], self.query_levels)

    def cancel(self) -> None:
        self._close(cancel=True)

    def _close(self, cancel: bool) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=cancel)
            self.pool = None
            try:
                self.engine.__exit__(None, None, None)
            finally:
                _PACKING.release()


def _packed_query(unit: np.ndarray, query_levels: int) -> tuple[np.ndarray, float, int, float]:
    """``unit`` (d,) float64 on an unsigned grid of ``query_levels`` steps: (the grid values in
    float32, the scale, the zero point, the distance from ``unit`` to the exact grid point,
    rounded up). fbgemm quantises the values again and lands on the same levels."""
    low, high = min(float(unit.min()), 0.0), max(float(unit.max()), 0.0)
    scale = float(np.float32((high - low) / query_levels))
    zero_point = int(np.clip(round(-low / scale), 0, query_levels))
    levels = np.clip(np.rint(unit / scale) + zero_point, 0, query_levels) - zero_point
    error = float(np.sqrt(((unit - levels * scale) ** 2).sum()))
    return (levels * scale).astype(np.float32), scale, zero_point, float(round_up(np.array([error]))[0])


@functools.cache
def _packed_query_levels(dim: int) -> int:
    """The finest query grid (PACKED_QUERY_LEVELS) on which fbgemm screens rows of ``dim``
    values correctly here; 0 where it has none (or torch has no fbgemm)."""
    import torch

    if dim == 0 or "fbgemm" not in torch.backends.quantized.supported_engines:
        return 0
    return next((levels for levels in PACKED_QUERY_LEVELS if _packed_kernel_fits(dim, levels)), 0)


def _packed_kernel_fits(dim: int, query_levels: int) -> bool:
    """Whether, on random and extreme rows (sums that would overflow 16 bits included), in
    several chunks, fbgemm's products stay within a quarter of the stated error."""
    rng = np.random.default_rng(0)
    codes = rng.integers(-INT8_LEVELS, INT8_LEVELS + 1, (700, dim), dtype=np.int8)
    codes[:3], codes[3:6], codes[6:9] = INT8_LEVELS, -INT8_LEVELS, 0
    codes[9, ::2], codes[9, 1::2] = INT8_LEVELS, -INT8_LEVELS
    norms = np.sqrt((codes.astype(np.float64) ** 2).sum(axis=1))
    try:
        packed = PackedCodes._pack(codes, 256, query_levels)
        for query in (rng.standard_normal(dim), np.ones(dim), -np.abs(rng.standard_normal(dim)), np.eye(dim)[0]):
            unit = unit_vector(query)
            products, query_error, _ = packed.products(unit)
            values, scale, _, grid_error = _packed_query(unit, query_levels)
            exact = codes.astype(np.float64) @ values.astype(np.float64)
            kernel_bound = norms * (query_error - grid_error)
            if not np.all(np.abs(products - exact) <= kernel_bound / 4):
                return False
    except (RuntimeError, NotImplementedError, AttributeError, TypeError):
        return False
    return True
