"""Clustered unit vectors like real image embeddings, generated chunk by chunk (bench/search.py and
bench/ann.py): uniform random vectors are not realistic for approximate search.

Every row is ``0.45 * mean + centre + 0.5 * spread + 0.2 * noise``, normalised: a direction all
rows share (CLIP's embeddings have one), the centre of one of ``clusters`` clusters (each near one
of 64 themes), a variation inside the cluster along 32 directions of its theme (real embeddings
vary in few directions: pose, colour, ...), and isotropic noise. With a thousand rows per
cluster, a query's nearest row has a cosine of about 0.90, its tenth nearest about 0.88, a random
row about 0.14 (as CLIP ViT-B/32 image embeddings of a photo library do, roughly).

The structure depends only on ``clusters`` and ``dim``; ``seed`` draws the rows, so queries drawn
with another seed are held out from the table.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

THEMES = 64
INTRINSIC = 32


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def clustered(rows: int, dim: int, clusters: int, seed: int, chunk: int = 65536) -> Iterator[np.ndarray]:
    """``rows`` float32 unit vectors of ``dim`` values, in chunks of ``chunk`` rows."""
    structure = np.random.default_rng(1234)
    mean = _unit(structure.standard_normal(dim)).astype(np.float32)
    themes = _unit(structure.standard_normal((THEMES, dim)))
    theme_of = structure.integers(0, THEMES, clusters)
    centres = _unit(0.6 * themes[theme_of] + 0.8 * _unit(structure.standard_normal((clusters, dim))))
    centres = (centres + 0.45 * mean).astype(np.float32)
    bases = _unit(structure.standard_normal((THEMES, INTRINSIC, dim))).astype(np.float32) / np.sqrt(INTRINSIC)
    rng = np.random.default_rng(seed)
    for start in range(0, rows, chunk):
        count = min(chunk, rows - start)
        which = rng.integers(0, clusters, count)
        theme = theme_of[which]
        coefficients = rng.standard_normal((count, INTRINSIC), dtype=np.float32)
        out = rng.standard_normal((count, dim), dtype=np.float32)
        out *= 0.2 / np.sqrt(dim)
        out += centres[which]
        for number in np.unique(theme):
            rows_of = np.flatnonzero(theme == number)
            out[rows_of] += 0.5 * (coefficients[rows_of] @ bases[number])
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        yield out
