"""Search indexes kept in the workspace (``thanosql-index/``), shared by every process: a
CompactIndex's arrays as ``.npy`` files beside a JSON manifest, put in place atomically through
stores.FolderStore and read back memory-mapped. An index is read back only for the table state
it was built for (the fingerprint in its manifest) and only when every file is whole; anything
else is ``UnusableIndex``, and the caller builds the index again.

>>> store = IndexStore(workspace)  # doctest: +SKIP
>>> key = IndexKey(("thanosql", "main", "t"), "emb")  # doctest: +SKIP
>>> store.save(key, fingerprint, index)  # doctest: +SKIP
>>> store.load(key, fingerprint)  # the same index and its manifest, or UnusableIndex  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from ..stores import FolderStore, _lock
from .approximate import ApproximateIndex, Calibration
from .codes import Quantised
from .index import CompactIndex

# The folder beside the database that holds the indexes, one folder each.
INDEX_FOLDER = "thanosql-index"
MANIFEST_FILE = "manifest.json"
# Bump when what an index holds, or how a row quantises (codes.py), changes: an index of another
# format is never read.
FORMAT_VERSION = 1
# The same for an approximate index (approximate.py): faiss files and a calibration.
APPROXIMATE_FORMAT = 1
# The arrays of an index, a .npy file each: the table's rowids and the two int8 levels.
ARRAYS = ("rowids", *Quantised.FIELDS)
# Files up to this size are checksummed whole (about 40 ms per 64 MB); larger ones on the header
# and SAMPLE_BLOCKS blocks spread over the file, so that reading an index back stays far cheaper
# than building it. Their size is checked whole, and the engine re-quantises rows it fetches.
WHOLE_CHECKSUM_BYTES = 64 * 2**20
SAMPLE_BLOCKS = 1024
SAMPLE_BLOCK_BYTES = 4096


class UnusableIndex(Exception):
    """A stored index that must not be used (missing, stale, damaged): build it again."""


@dataclass(frozen=True)
class IndexKey:
    """Which index: a stored table as DuckDB names it (database, schema, table) and a column."""

    table: tuple[str, ...]
    column: str
    kind: str = "exact"  # or "approximate" (approximate.py), kept in a folder of its own

    @property
    def folder_name(self) -> str:
        """``<table>_<column>.<digest>`` (``.ivf`` after it for an approximate index): readable,
        and distinct for every (table, column, kind)."""
        digest = hashlib.sha256(json.dumps([list(self.table), self.column]).encode()).hexdigest()[:16]
        readable = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{self.table[-1]}.{self.column}")[:80]
        suffix = "" if self.kind == "exact" else ".ivf"
        return f"{readable.strip('_') or 'index'}.{digest}{suffix}"


class IndexStore:
    """The indexes of one workspace, by IndexKey (see the package docstring for the design)."""

    def __init__(self, workspace: Path) -> None:
        self.folders = FolderStore(Path(workspace) / INDEX_FOLDER, "search index")

    @contextmanager
    def building(self, key: IndexKey) -> Iterator[None]:
        """Held while an index is looked for and, if unusable, built and saved: a second process
        (or session) wanting the same index waits, then reads the first one's."""
        root = self.folders.root
        try:
            root.mkdir(parents=True, exist_ok=True)
            handle = _lock(root / f".{key.folder_name}.building", exclusive=True)
        except OSError:
            handle = None  # a read-only workspace: nothing will be saved either
        try:
            yield
        finally:
            if handle is not None:
                handle.close()

    def load(self, key: IndexKey, fingerprint: tuple | None) -> tuple[CompactIndex, dict]:
        """The stored index of ``key`` built for the table state ``fingerprint`` (any state when
        it is None: the caller then checks the manifest's ``seal`` to add appended rows) and its
        manifest, its arrays memory-mapped (copy-on-write, so kernels may take them as writable);
        else UnusableIndex saying why."""
        folder = self.folders.root / key.folder_name
        with self.folders.reading():
            manifest = _read_manifest(folder)
            _check_header(manifest, _header(key, FORMAT_VERSION, fingerprint))
            arrays = {name: _read_array(folder, name, manifest) for name in ARRAYS}
        rows, dim = manifest.get("rows"), manifest.get("dim")
        for name, array in arrays.items():
            shape = (rows, dim) if array.ndim == 2 else (rows,)
            if array.shape != shape:
                raise UnusableIndex(f"{name} has shape {array.shape}, not {shape}")
        rowids = arrays.pop("rowids")
        # fbgemm's packed form cannot be saved: a large index is packed again, in the background
        # (about 3 s per million rows of 512 values), and its first queries run unpacked.
        index = CompactIndex(rowids, Quantised(**arrays), pack=False)
        index.pack_in_background()
        return index, manifest

    def save(self, key: IndexKey, fingerprint: tuple, index: CompactIndex, seal: dict | None = None) -> None:
        """Store ``index`` of ``key``, built for the table state ``fingerprint`` (``seal``: what
        recognises an append later, tables.seal), replacing any index of ``key``
        atomically (readers see the old one or the new one, whole)."""
        name = key.folder_name
        with self.folders.staging(name) as folder:
            described = {}
            for array_name in ARRAYS:
                array = index.rowids if array_name == "rowids" else getattr(index.levels, array_name)
                path = folder / f"{array_name}.npy"
                # Not fsynced: a file a power loss cut short fails its size or checksum on load.
                with open(path, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
                described[array_name] = {
                    "dtype": array.dtype.str,
                    "bytes": path.stat().st_size,
                    "sha256": _digest(path),
                }
            manifest = {
                **_header(key, FORMAT_VERSION, fingerprint),
                "seal": as_json(seal),
                "rows": len(index),
                "dim": index.dim,
                "arrays": described,
            }
            # The manifest last: a folder without one is never read (and never put in place).
            (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
            self.folders.put(folder, name)

    def load_approximate(self, key: IndexKey, fingerprint: tuple | None) -> tuple[ApproximateIndex, dict]:
        """The stored approximate index of ``key`` and its manifest, its files memory-mapped by
        faiss; for the table state ``fingerprint``, or for any state when it is None (the caller
        then checks the manifest's ``seal`` to add appended rows); else UnusableIndex."""
        import faiss

        folder = self.folders.root / key.folder_name
        with self.folders.reading():
            manifest = _read_manifest(folder)
            _check_header(manifest, _header(key, APPROXIMATE_FORMAT, fingerprint) | {"faiss": faiss.__version__})
            indexes = []
            for name in manifest["arrays"]:
                path = _checked_file(folder, name, manifest["arrays"][name])
                try:
                    indexes.append(faiss.read_index(str(path), faiss.IO_FLAG_MMAP))
                except RuntimeError as exc:
                    raise UnusableIndex(f"{name} cannot be read: {exc}") from exc
        try:
            calibrations = {int(k): Calibration.from_json(v) for k, v in manifest["calibrations"].items()}
            index = ApproximateIndex(
                indexes[0], calibrations, int(manifest["rows"]), int(manifest["dim"]), int(manifest["max_rowid"])
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UnusableIndex(f"the manifest is not an approximate index's: {exc}") from exc
        index.deltas, index.mapped = indexes[1:], True
        if index.indexed != manifest.get("indexed") or index.base.d != index.dim:
            raise UnusableIndex("the index files do not hold the rows the manifest says")
        return index, manifest

    def save_approximate(
        self, key: IndexKey, fingerprint: tuple, index: ApproximateIndex, seal: dict, kept: dict | None = None
    ) -> None:
        """Store ``index`` of ``key`` for the table state ``fingerprint`` (``seal``: what recognises
        an append later, tables.seal), replacing any index of ``key`` atomically.
        ``kept``: the manifest of the stored index this one extends (its files are linked, not
        written again; only the new delta is)."""
        import faiss

        name = key.folder_name
        with self.folders.staging(name) as folder:
            described = {}
            parts = [index.base, *index.deltas]
            old = list((kept or {}).get("arrays", {}))
            for number, part in enumerate(parts):
                file_name = "base.faiss" if number == 0 else f"delta-{number}.faiss"
                path = folder / file_name
                if number < len(old) and old[number] == file_name:
                    os.link(self.folders.root / name / file_name, path)
                    described[file_name] = kept["arrays"][file_name]
                    continue
                faiss.write_index(part, str(path))
                described[file_name] = {"dtype": "faiss", "bytes": path.stat().st_size, "sha256": _digest(path)}
            manifest = {
                **_header(key, APPROXIMATE_FORMAT, fingerprint),
                "faiss": faiss.__version__,
                "seal": as_json(seal),
                "rows": index.rows,
                "dim": index.dim,
                "indexed": index.indexed,
                "max_rowid": index.max_rowid,
                "calibrations": {str(k): c.as_json() for k, c in index.calibrations.items()},
                "arrays": described,
            }
            (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
            self.folders.put(folder, name)

    def prune(self, database: str, tables: set[tuple[str, ...]]) -> list[str]:
        """Remove the indexes of database ``database``'s tables that are not in ``tables`` (the
        tables it has now: dropped ones leave their indexes behind). Returns the folders removed."""
        removed = []
        for name in self.folders.names():
            try:
                table = tuple(_read_manifest(self.folders.root / name)["table"])
            except (UnusableIndex, TypeError, KeyError):
                continue
            if table and table[0] == database and table not in tables and self.folders.remove(name):
                removed.append(name)
        return removed

    def recover(self) -> list[str]:
        """Remove what killed writers left (FolderStore.recover)."""
        return self.folders.recover()


def as_json(value):
    """``value`` as JSON gives it back (tuples become lists), to compare with a manifest."""
    return json.loads(json.dumps(value))


def _header(key: IndexKey, format_version: int, fingerprint: tuple | None) -> dict:
    """What a manifest says of the index it describes: its format, table, column, DuckDB version
    and table state (``fingerprint``; left out when None, to accept any state on load)."""
    header = {
        "format": format_version,
        "table": as_json(key.table),
        "column": key.column,
        "duckdb": duckdb.__version__,
    }
    if fingerprint is not None:
        header["fingerprint"] = as_json(fingerprint)
    return header


def _check_header(manifest: dict, expected: dict) -> None:
    """UnusableIndex naming the first field of ``expected`` the manifest does not match."""
    for field, value in expected.items():
        if manifest.get(field) != value:
            raise UnusableIndex(f"{field} is {manifest.get(field)!r}, not {value!r}")


def _read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except FileNotFoundError as exc:
        raise UnusableIndex("no stored index") from exc
    except (OSError, ValueError) as exc:
        raise UnusableIndex(f"unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
        raise UnusableIndex("the manifest is not an index's")
    return manifest


def _checked_file(folder: Path, name: str, described) -> Path:
    """The path of file ``name`` of an index, once its size and checksum match ``described``
    (its entry in the manifest)."""
    path = folder / name
    if not isinstance(described, dict):
        raise UnusableIndex(f"the manifest does not describe {name}")
    try:
        size = path.stat().st_size
        if size != described.get("bytes"):
            raise UnusableIndex(f"{name} has {size} bytes, not {described.get('bytes')}")
        if _digest(path) != described.get("sha256"):
            raise UnusableIndex(f"{name} does not match its checksum")
    except OSError as exc:
        raise UnusableIndex(f"{name} cannot be read: {exc}") from exc
    return path


def _read_array(folder: Path, name: str, manifest: dict) -> np.ndarray:
    """Array ``name``, memory-mapped, once its size, checksum and type match the manifest."""
    described = manifest["arrays"].get(name)
    path = _checked_file(folder, f"{name}.npy", described)
    try:
        # Copy-on-write: torch takes the arrays without a copy or a read-only warning.
        array = np.asarray(np.load(path, mmap_mode="c", allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise UnusableIndex(f"{name}.npy cannot be read: {exc}") from exc
    if array.dtype.str != described.get("dtype"):
        raise UnusableIndex(f"{name}.npy holds {array.dtype.str}, not {described.get('dtype')}")
    return array


def _digest(path: Path) -> str:
    """sha256 of the file, whole up to WHOLE_CHECKSUM_BYTES; of its header and SAMPLE_BLOCKS
    evenly spread blocks (the last one included) beyond."""
    hasher = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size <= WHOLE_CHECKSUM_BYTES:
            for block in iter(lambda: handle.read(2**20), b""):
                hasher.update(block)
            return hasher.hexdigest()
        last = size - SAMPLE_BLOCK_BYTES
        for offset in np.linspace(0, last, SAMPLE_BLOCKS).astype(np.int64):
            handle.seek(int(offset))
            hasher.update(handle.read(SAMPLE_BLOCK_BYTES))
    return "sampled:" + hasher.hexdigest()
