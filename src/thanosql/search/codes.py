"""Embeddings quantised to two int8 levels per row, with per-row scales and the norms that bound
what the codes leave out (pure NumPy). Each row's codes depend on that row alone, so a row read
again quantises to the same codes.

>>> rows = quantise(matrix, present)            # two int8 levels per row, with per-row scales  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT8_LEVELS = 127
# Rows quantised per block: small enough for the temporaries to stay in cache.
QUANTISE_BLOCK_ROWS = 256


@dataclass
class Quantised:
    """Rows in two int8 levels, each row with its own scales: ``u = s*c + t*r + f`` where ``u``
    is the row normalised, ``c`` its codes, ``r`` the codes of the first residual
    ``e = u - s*c``, and ``f`` what is left. Norms for the bounds, rounded up:
    ``code_norm`` = s*|c|, ``residual`` = |e|, ``fine_norm`` = t*|r|, ``remainder`` = |f|."""

    codes: np.ndarray  # int8 (n, d)
    scale: np.ndarray  # float32 (n,)
    code_norm: np.ndarray  # float32 (n,)
    residual: np.ndarray  # float32 (n,)
    fine_codes: np.ndarray  # int8 (n, d)
    fine_scale: np.ndarray  # float32 (n,)
    fine_norm: np.ndarray  # float32 (n,)
    remainder: np.ndarray  # float32 (n,)
    valid: np.ndarray  # bool (n,): present, finite, not zero

    FIELDS = ("codes", "scale", "code_norm", "residual", "fine_codes", "fine_scale", "fine_norm", "remainder", "valid")

    @classmethod
    def empty(cls, rows: int, dim: int) -> Quantised:
        def matrix():
            return np.empty((rows, dim), np.int8)

        def vector(kind=np.float32):
            return np.empty(rows, kind)

        return cls(matrix(), vector(), vector(), vector(), matrix(), vector(), vector(), vector(), vector(bool))

    def take(self, order: np.ndarray) -> Quantised:
        return Quantised(*(getattr(self, name)[order] for name in self.FIELDS))


def quantise(matrix: np.ndarray, present: np.ndarray) -> Quantised:
    """Normalise each row of ``matrix`` (n, d) and quantise it in two int8 levels.

    >>> quantise(np.array([[3, 4]], np.float32), np.array([True])).codes.tolist()
    [[95, 127]]

    Works in float32 blocks that stay in cache; the float32 rounding of the normalised row and
    of the residuals (under 1e-6) is covered by index.ROUNDING_SLACK. Each row's result depends on that row
    alone, so re-quantising a fetched row reproduces its codes exactly.
    """
    out = Quantised.empty(*matrix.shape)
    quantise_into(out, 0, matrix, present)
    return out


def quantise_into(out: Quantised, first_row: int, matrix: np.ndarray, present: np.ndarray) -> None:
    """``quantise(matrix, present)`` written into rows ``first_row`` onwards of ``out``."""
    rows = len(matrix)
    for start in range(0, rows, QUANTISE_BLOCK_ROWS):
        stop = min(start + QUANTISE_BLOCK_ROWS, rows)
        _quantise_block(matrix[start:stop], present[start:stop], out, slice(first_row + start, first_row + stop))


def _quantise_block(matrix: np.ndarray, present: np.ndarray, out: Quantised, rows: slice) -> None:
    values = np.array(matrix, dtype=np.float32)
    squares = np.einsum("ij,ij->i", values, values)
    # float32 is plenty for the norm (its error is far below index.ROUNDING_SLACK) unless it
    # overflows, underflows or meets a NaN: those rows are normalised in float64.
    awkward = ~((squares > 1e-30) & (squares < 1e30))
    norms = np.sqrt(squares)
    valid = present.copy()
    if awkward.any():
        wide = values[awkward].astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            wide_norms = np.sqrt((wide * wide).sum(axis=1))
            good = np.isfinite(wide_norms) & (wide_norms > 0)
            values[awkward] = np.where(good[:, None], wide / np.where(good, wide_norms, 1.0)[:, None], 0.0)
        norms[awkward] = 1.0
        valid[awkward] &= good
    values *= (np.float32(1.0) / norms)[:, None]
    values[~valid] = 0.0
    codes, scale, code_norm, residual = _int8_level(values)
    fine_codes, fine_scale, fine_norm, remainder = _int8_level(residual)
    out.codes[rows], out.scale[rows], out.code_norm[rows] = codes, scale, code_norm
    out.residual[rows] = _norm_up(residual)
    out.fine_codes[rows], out.fine_scale[rows], out.fine_norm[rows] = fine_codes, fine_scale, fine_norm
    out.remainder[rows] = _norm_up(remainder)
    out.valid[rows] = valid


def _int8_level(values: np.ndarray):
    """Codes, scale, s*|codes| (rounded up) and what the codes leave, of rows (m, d) float32."""
    if values.shape[1] == 0:
        empty = np.zeros(len(values), np.float32)
        return values.astype(np.int8), empty + 1, empty, values
    peak = np.maximum(values.max(axis=1), -values.min(axis=1))
    scale = np.where(peak > 0, peak / np.float32(INT8_LEVELS), np.float32(1.0)).astype(np.float32)
    # |values / scale| <= 127 up to a rounding step, so rint lands in [-127, 127].
    codes = values * (np.float32(1.0) / scale)[:, None]
    np.rint(codes, out=codes)
    left = codes * scale[:, None]
    np.subtract(values, left, out=left)
    code_norm = round_up(scale * np.sqrt(np.einsum("ij,ij->i", codes, codes)))
    return codes.astype(np.int8), scale, code_norm, left


def _norm_up(values: np.ndarray) -> np.ndarray:
    return round_up(np.sqrt(np.einsum("ij,ij->i", values, values)))


def round_up(values: np.ndarray) -> np.ndarray:
    """``values`` as float32, each moved up one unit in the last place (an upper bound)."""
    return np.nextafter(values.astype(np.float32), np.float32(np.inf))


def query_levels(unit: np.ndarray, count: int) -> tuple[list[tuple[np.ndarray, float]], list[float]]:
    """``unit`` (d,) float64 as a sum of ``count`` int8 levels, each the codes of what the levels
    before it leave: ``[(codes, scale)]``, and the norm of what is left after each, rounded up.

    >>> levels, left = query_levels(np.array([0.6, 0.8]), 2)
    >>> [codes.tolist() for codes, _ in levels], left[-1] < 1e-5
    ([[95, 127], [127, 0]], True)
    """
    levels, left, remainder = [], np.asarray(unit, np.float64).copy(), []
    for _ in range(count):
        peak = float(np.abs(left).max(initial=0.0))
        scale = peak / INT8_LEVELS if peak > 0 else 1.0
        codes = np.rint(left / scale)  # |left / scale| <= 127 up to a rounding step
        left -= codes * scale
        levels.append((codes.astype(np.int8), scale))
        remainder.append(float(np.sqrt((left * left).sum())) * (1 + 2.0**-40))
    return levels, remainder
