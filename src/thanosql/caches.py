"""What a session keeps between statements, each cache with its own key and its own rule for
when an entry is no longer true. Every cache is safe to use from several threads.

- ``ModelCache``: loaded adapters, by model name; an entry holds while the stored model's
  ``model.json`` is the same file (same creation time and modification time), so a model
  replaced by another process or session is loaded again.
- ``QueryEmbeddings``: SEARCH inputs already embedded, by model and input (an image by path,
  size and modification time); an entry holds while its model's adapter is the one loaded.
- ``IndexCache``: search indexes by table and column, with the database change token and the
  table fingerprint they were last known current at (search/engine.py decides with them).
- ``LRU``: the plain bounded map the others are built on (also the parsed-scan cache).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

MAX_CACHED_QUERIES = 64
MAX_CACHED_SCANS = 64
# Indexes kept per session (each holds about 2 x rows x dimension bytes).
MAX_CACHED_INDEXES = 4
MAX_CACHED_INDEX_BYTES = 4 * 2**30


class LRU:
    """A bounded map that forgets its least recently used entries first.

    >>> cache = LRU(2)
    >>> cache.put("a", 1); cache.put("b", 2); cache.put("c", 3)
    >>> cache.get("a") is None, cache.get("c")
    (True, 3)
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()
        self.lock = threading.RLock()

    def get(self, key: Hashable) -> Any:
        with self.lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self.lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def pop(self, key: Hashable) -> Any:
        with self.lock:
            return self._entries.pop(key, None)

    def pop_oldest(self) -> Any:
        with self.lock:
            return self._entries.popitem(last=False)[1] if self._entries else None

    def forget(self, keep: Callable[[Hashable, Any], bool]) -> None:
        """Drop every entry for which ``keep(key, value)`` is false."""
        with self.lock:
            for key in [k for k, v in self._entries.items() if not keep(k, v)]:
                del self._entries[key]

    def clear(self) -> None:
        with self.lock:
            self._entries.clear()

    def values(self) -> list:
        with self.lock:
            return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class _LoadedModel:
    identity: tuple
    adapter: Any


class ModelCache:
    """Loaded model adapters, one per model name.

    >>> adapter = session.caches.models.get(info, identity, load)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._entries: dict[str, _LoadedModel] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, name: str, identity: tuple, load: Callable[[], Any]) -> Any:
        """The adapter of model ``name`` as stored now (``identity``), loading it at most once
        at a time (two threads asking for the same model wait for one load)."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.identity == identity:
                return entry.adapter
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            with self._lock:
                entry = self._entries.get(name)
                if entry is not None and entry.identity == identity:
                    return entry.adapter
            adapter = load()
            with self._lock:
                self._entries[name] = _LoadedModel(identity, adapter)
            return adapter

    def forget(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class QueryEmbeddings:
    """SEARCH inputs embedded by a model: ``(model name, input identity) -> vector``."""

    def __init__(self, max_entries: int = MAX_CACHED_QUERIES) -> None:
        self._cache = LRU(max_entries)

    def get(self, model: str, identity: tuple, adapter: Any):
        entry = self._cache.get((model, identity))
        # The adapter is part of the entry: a model rebuilt under the same name is a new one.
        if entry is not None and entry[0] is adapter:
            return entry[1]
        return None

    def put(self, model: str, identity: tuple, adapter: Any, vector) -> None:
        self._cache.put((model, identity), (adapter, vector))

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()


@dataclass
class CachedIndex:
    """A search index, the database change token when it was last known current (None: not
    known), and the table's fingerprint then."""

    index: Any
    token: tuple | None
    fingerprint: tuple


class IndexCache:
    """Search indexes by ``(table key, column)``, the least recently used dropped first past a
    count or a memory budget (the newest always stays)."""

    def __init__(self, max_entries: int = MAX_CACHED_INDEXES, max_bytes: int = MAX_CACHED_INDEX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._cache = LRU(max_entries)
        # One build at a time per key: two threads searching a new table build its index once.
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def building(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._building.setdefault(key, threading.Lock())

    def get(self, key: Hashable) -> CachedIndex | None:
        return self._cache.get(key)

    def put(self, key: Hashable, entry: CachedIndex) -> None:
        with self._cache.lock:
            self._cache.put(key, entry)
            while len(self._cache) > 1 and sum(e.index.nbytes for e in self._cache.values()) > self.max_bytes:
                self._cache.pop_oldest()

    def drop(self, key: Hashable) -> None:
        self._cache.pop(key)

    def indexes(self) -> list:
        return [entry.index for entry in self._cache.values()]

    def clear(self) -> None:
        self._cache.clear()


class Caches:
    """The caches of one session."""

    def __init__(self, index_bytes: int = MAX_CACHED_INDEX_BYTES) -> None:
        self.models = ModelCache()
        self.queries = QueryEmbeddings()
        self.indexes = IndexCache(max_bytes=index_bytes)
        self.scans = LRU(MAX_CACHED_SCANS)

    def clear(self) -> None:
        self.models.clear()
        self.queries.clear()
        self.indexes.clear()
        self.scans.clear()
