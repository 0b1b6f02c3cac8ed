"""The adapter protocol every model family implements (clip, simclr, pytorch).

An adapter wraps one loaded model of the store and turns images or texts into embeddings: an
``(n, d)`` float32 matrix, one row per input, in input order, exactly what the model's own encoder
gives. Statements (CONVERT, SEARCH) only talk to models through this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .store import ModelInfo

# A tqdm-like factory: progress(total=n, desc=..., unit=...) returns a bar with update(k) and
# close(); Session.progress is one. None means no bar.
ProgressFactory = Callable[..., object]


@runtime_checkable
class ModelAdapter(Protocol):
    """What CONVERT and SEARCH need of a model.

    >>> adapter = session.model("tutorial_search_clip")  # doctest: +SKIP
    >>> adapter.embed_texts(["a black cat"]).shape  # doctest: +SKIP
    (1, 512)

    ``info`` is the store's metadata, ``embedding_dim`` the d of every embedding and
    ``modalities`` what it can embed: ``{'image'}`` or ``{'image', 'text'}``.

    ``embed_images(paths, ...)``: ``paths`` are absolute (callers resolve them against the
    workspace). ``batch_size``/``num_workers`` of None mean the adapter's defaults. ``progress`` is
    a ProgressFactory or None. With ``on_error='raise'`` a missing or unreadable image raises
    `thanosql.models.images.ImageReadError` (a DatasetError naming the path and its index in
    ``paths``); with ``on_error='null'`` that row comes back as NaN and the caller turns it into NULL.
    Returns an ``(len(paths), embedding_dim)`` float32 array.

    ``embed_texts(texts, ...)``: the same for texts; an adapter without 'text' in
    ``modalities`` raises ModelError.
    """

    info: ModelInfo
    embedding_dim: int
    modalities: frozenset[str]

    def embed_images(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int | None = None,
        num_workers: int | None = None,
        progress: ProgressFactory | None = None,
        on_error: str = "raise",
    ) -> np.ndarray: ...

    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: ProgressFactory | None = None,
    ) -> np.ndarray: ...
