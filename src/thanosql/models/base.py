"""The adapter every model family implements (clip, simclr, pytorch), and the kinds of input a
statement may hand it.

An adapter wraps one loaded model of the store and turns inputs into embeddings: an ``(n, d)``
float32 matrix, one row per input, in input order, exactly what the model's own encoder gives.
Statements (CONVERT, SEARCH) only talk to models through ``embed(kind, values)``, which
dispatches on the kind of input (INPUT_KINDS); a new kind (a given embedding, audio) is a row
there and a method on the adapters that take it, not a branch in the statements (a given
embedding needs no model: SEARCH takes it as written, statements/search.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, Span
from .store import ModelInfo

# A tqdm-like factory: progress(total=n, desc=..., unit=...) returns a bar with update(k) and
# close(); Session.progress is one. None means no bar.
ProgressFactory = Callable[..., object]


@dataclass(frozen=True)
class InputKind:
    """One kind of input: the adapter method that embeds a list of them, and the keyword
    arguments of ``embed`` that method takes."""

    method: str
    keywords: tuple[str, ...]


INPUT_KINDS: dict[str, InputKind] = {
    "image": InputKind("embed_images", ("batch_size", "num_workers", "progress", "on_error")),
    "text": InputKind("embed_texts", ("batch_size", "progress")),
}


def check_input(adapter: ModelAdapter, kind: str, *, span: Span | None = None, purpose: str = "") -> None:
    """A ModelError at ``span`` unless ``adapter`` embeds inputs of ``kind``; ``purpose`` says what
    the statement wanted them for (", so it cannot search by text")."""
    if kind in adapter.modalities and kind in INPUT_KINDS:
        return
    hint = f"it embeds: {', '.join(sorted(adapter.modalities))}"
    if kind == "text":
        needs = "search by text" if purpose else "embedding texts"
        hint += f" ({needs} needs a CLIP model: GET THANOSQL MODEL clip, or BUILD MODEL ... USING CLIP)"
    raise ModelError(
        f"model '{adapter.info.name}' ({adapter.info.family}) cannot embed {kind}s{purpose}", span=span, hint=hint
    )


class ModelAdapter:
    """What CONVERT and SEARCH may use of a model.

    >>> adapter = session.model("tutorial_search_clip")  # doctest: +SKIP
    >>> adapter.embed("text", ["a black cat"]).shape  # doctest: +SKIP
    (1, 512)

    ``info`` is the store's metadata, ``embedding_dim`` the d of every embedding and
    ``modalities`` the kinds of input it embeds: ``{'image'}`` or ``{'image', 'text'}``.

    ``embed(kind, values, ...)`` checks the kind and calls the family's method for it:

    ``embed_images(paths, ...)``: ``paths`` are absolute (callers resolve them against the
    workspace). ``batch_size``/``num_workers`` of None mean the adapter's defaults. ``progress`` is
    a ProgressFactory or None. With ``on_error='raise'`` a missing or unreadable image raises
    `thanosql.models.images.ImageReadError` (a DatasetError naming the path and its index in
    ``paths``); with ``on_error='null'`` that row comes back as NaN and the caller turns it into NULL.
    Returns an ``(len(paths), embedding_dim)`` float32 array.

    ``embed_texts(texts, ...)``: the same for texts, on adapters with 'text' in ``modalities``.
    """

    info: ModelInfo
    embedding_dim: int
    modalities: frozenset[str] = frozenset()

    def embed(
        self,
        kind: str,
        values: Sequence,
        *,
        batch_size: int | None = None,
        num_workers: int | None = None,
        progress: ProgressFactory | None = None,
        on_error: str = "raise",
        span: Span | None = None,
    ) -> np.ndarray:
        """Embeddings of ``values``, inputs of ``kind`` (a key of INPUT_KINDS)."""
        check_input(self, kind, span=span)
        given = {"batch_size": batch_size, "num_workers": num_workers, "progress": progress, "on_error": on_error}
        spec = INPUT_KINDS[kind]
        return getattr(self, spec.method)(values, **{name: given[name] for name in spec.keywords})

    def embed_images(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int | None = None,
        num_workers: int | None = None,
        progress: ProgressFactory | None = None,
        on_error: str = "raise",
    ) -> np.ndarray:
        check_input(self, "image")
        raise NotImplementedError

    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: ProgressFactory | None = None,
    ) -> np.ndarray:
        check_input(self, "text")
        raise NotImplementedError
