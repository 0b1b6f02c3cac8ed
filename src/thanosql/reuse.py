"""Embeddings CONVERT has computed, kept in the workspace so that a later CONVERT with the same
model embeds only the images it has not embedded before, and answers exactly as a fresh run.

Layout: ``thanosql-embeddings/<model>/<key>-<time_ns>-<pid>.npz``, one shard per CONVERT that
embedded something new: the images' absolute paths, sizes and modification times (ns) when they
were read, and their float32 embeddings. ``key`` names the model's weights (its model.json
identity) and the device they ran on, so a model overwritten with new weights never reuses the old
ones: their shards are deleted when a CONVERT sees them. An image is reused only when its path,
size and modification time are all unchanged; an image rewritten in place is embedded again.

A shard is written under a temporary name and renamed into place, so a killed CONVERT leaves no
half shard, and a stray temporary file is removed by the next CONVERT of that model. Several
processes may add shards at once (their names differ). DELETE MODEL removes the model's folder.
The whole folder is bounded by the ``reuse_bytes`` setting: past it the oldest shards go first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOLDER = "thanosql-embeddings"
SUFFIX = ".npz"
PARTIAL = ".partial"
# The default bound of the whole folder: 2 GiB, about a million 512-d embeddings.
DEFAULT_BYTES = 2 << 30

Identity = tuple[str, int, int]  # absolute path, size in bytes, modification time in ns


def image_identity(path: str) -> Identity | None:
    """What must be unchanged for an image's embedding to be reused; None when it cannot be read
    (the model then reports the image as it does today).

    >>> image_identity("/no/such/image.jpg") is None
    True
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (str(path), stat.st_size, stat.st_mtime_ns)


def weights_key(name: str, created: str, model_json: Path, device: str) -> str:
    """A short name for one version of a model's weights on one device."""
    stat = model_json.stat()
    text = f"{name}\0{created}\0{stat.st_mtime_ns}\0{stat.st_size}\0{stat.st_ino}\0{device}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Found:
    """Embeddings found for some of the asked images: ``positions`` in the asked list and their
    ``vectors`` (one row each)."""

    positions: list[int]
    vectors: np.ndarray

    @property
    def kept(self) -> set[int]:
        return set(self.positions)


class ReuseStore:
    """The workspace's kept embeddings (module docstring).

    >>> store = ReuseStore(workspace, max_bytes=1 << 20)
    >>> store.add("m", "k1", [("/a.jpg", 10, 1)], np.ones((1, 4), np.float32))
    >>> store.find("m", "k1", [("/b.jpg", 5, 1), ("/a.jpg", 10, 1)]).positions
    [1]
    >>> store.find("m", "k2", [("/a.jpg", 10, 1)]).positions  # other weights: nothing reused
    []
    """

    def __init__(self, workspace: Path, max_bytes: int = DEFAULT_BYTES) -> None:
        self.root = Path(workspace) / FOLDER
        self.max_bytes = max_bytes

    def find(self, model: str, key: str, identities: list[Identity | None]) -> Found:
        """The kept embeddings of ``identities`` made by weights ``key`` of ``model``. Shards of
        other weights of the model are deleted: they can never match again."""
        wanted = {identity: at for at, identity in enumerate(identities) if identity is not None}
        positions, vectors = [], []
        folder = self.root / model
        for shard in sorted(folder.glob(f"*{SUFFIX}")) if wanted else []:
            if not shard.name.startswith(f"{key}-"):
                _remove(shard)
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    paths, sizes, times, embeddings = data["paths"], data["sizes"], data["times"], data["embeddings"]
            except (OSError, ValueError, KeyError):
                _remove(shard)  # damaged: never trusted
                continue
            for row, identity in enumerate(zip(paths.tolist(), sizes.tolist(), times.tolist())):
                at = wanted.pop(identity, None)
                if at is not None:
                    positions.append(at)
                    vectors.append(embeddings[row])
        self._clean_partials(folder)
        if not vectors:
            return Found([], np.zeros((0, 0), np.float32))
        return Found(positions, np.stack(vectors).astype(np.float32, copy=False))

    def add(self, model: str, key: str, identities: list[Identity], embeddings: np.ndarray) -> None:
        """Keep ``embeddings`` (one row per identity) as a new shard, then bound the folder."""
        if not identities:
            return
        folder = self.root / model
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{key}-{time.time_ns()}-{os.getpid()}{SUFFIX}"
        partial = folder / (name + PARTIAL)
        paths, sizes, times = zip(*identities)
        try:
            with open(partial, "wb") as handle:
                np.savez(
                    handle,
                    paths=np.array(paths, dtype=str),
                    sizes=np.array(sizes, dtype=np.int64),
                    times=np.array(times, dtype=np.int64),
                    embeddings=np.ascontiguousarray(embeddings, dtype=np.float32),
                )
            os.replace(partial, folder / name)
        except OSError:
            _remove(partial)  # a full disk: the embeddings are simply not kept
            return
        self._bound()

    def drop(self, model: str) -> None:
        """Forget every embedding of ``model`` (DELETE MODEL)."""
        shutil.rmtree(self.root / model, ignore_errors=True)

    def _bound(self) -> None:
        shards = []
        for shard in self.root.glob(f"*/*{SUFFIX}"):
            try:
                stat = shard.stat()
            except OSError:
                continue
            shards.append((stat.st_mtime_ns, stat.st_size, shard))
        total = sum(size for _, size, _ in shards)
        for _, size, shard in sorted(shards):
            if total <= self.max_bytes:
                break
            _remove(shard)
            total -= size

    @staticmethod
    def _clean_partials(folder: Path) -> None:
        # A partial file older than a minute belongs to a CONVERT that was killed.
        for partial in folder.glob(f"*{PARTIAL}"):
            try:
                if time.time() - partial.stat().st_mtime > 60:
                    partial.unlink()
            except OSError:
                pass


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
