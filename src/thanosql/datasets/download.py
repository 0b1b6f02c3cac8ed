"""Put a dataset into the workspace: download, verify, unpack, and put in place.

``install(spec, dataset_dir, ...)`` builds ``<dataset_dir>/<name>/`` in a staging folder of the
dataset store (stores.FolderStore) and puts it in place only when every file has arrived, matched
its size and sha256, been unpacked (within a size limit) or prepared or generated, and the tables
the manifest lists are there. An error, Ctrl-C, a full disk or a kill -9 at any moment leaves the
old dataset or the new one, never a mix; what a killed GET left is cleared by the next one.
``fetch`` is the streamed, checked download of one file (urllib, a short timeout); offline,
install fails before any.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from ..disk import check_free_space, format_bytes, is_disk_full
from ..errors import DatasetError
from ..stores import WRITING_FILE, FolderStore
from ..transfer import CHUNK_BYTES, Fetched, FetchFailure, Progress, sha256_of, stream
from .manifest import DatasetSpec, FileSpec, Manifest

# Seconds to wait for a connection or for the next bytes: long enough for a slow mirror, short
# enough that a machine without a network fails "within seconds" rather than hanging.
TIMEOUT_S = 10.0
STAMP_FILE = ".thanosql-dataset.json"
# Downloads (and, with a recipe, their unpacked sources) go here inside the staging folder, so a
# killed GET leaves them where the store's recovery removes them; deleted before put in place.
SCRATCH_DIR = ".thanosql-scratch"
# An archive may unpack to what its manifest entry declares (unpacked_size); without one, to
# UNPACK_RATIO times its own size, and at least UNPACK_FLOOR_BYTES. Text compresses 3-10x and
# images not at all, while a decompression bomb (a zip of zeros) expands 1,000x and more.
UNPACK_RATIO = 100
UNPACK_FLOOR_BYTES = 32 << 20


def fetch(
    spec: FileSpec, destination: Path, *, timeout: float = TIMEOUT_S, progress: Progress | None = None
) -> Fetched:
    """Download ``spec`` to ``destination`` and check its size and sha256, trying mirrors in turn.

    >>> fetch(FileSpec(url="https://example.org/a.zip", sha256="...", size=1234, name="a.zip"), path)  # doctest: +SKIP
    Fetched(url='https://example.org/a.zip', size=1234, sha256='...')

    Raises FetchFailure naming the first URL; when mirrors were tried too, its reason lists
    each URL's failure.
    """
    failures: list[FetchFailure] = []
    for url in spec.urls:
        try:
            fetched = stream(
                url, destination, timeout=timeout, progress=progress, expected_size=spec.size, label=spec.name
            )
            _verify(spec, fetched)
            return fetched
        except FetchFailure as failure:
            failures.append(failure)
    if len(failures) == 1:
        raise failures[0]
    reason = "; ".join(f"{f.url}: {f.reason}" for f in failures)
    # One damaged copy makes the whole a content problem; else a server's answer beats silence.
    kinds = {f.kind for f in failures}
    kind = next(k for k in ("content", "server", "connection") if k in kinds)
    raise FetchFailure(failures[0].url, kind, reason, len(failures))


def _verify(spec: FileSpec, fetched: Fetched) -> None:
    if spec.size is not None and fetched.size != spec.size:
        raise FetchFailure(
            fetched.url, "content", f"received {fetched.size:,} bytes, the manifest expects {spec.size:,}"
        )
    if spec.sha256 is not None and fetched.sha256 != spec.sha256:
        raise FetchFailure(
            fetched.url,
            "content",
            f"failed its checksum: sha256 {fetched.sha256}, the manifest expects {spec.sha256}",
        )


# --------------------------------------------------------------------------------- install


def install(
    spec: DatasetSpec,
    manifest: Manifest,
    dataset_dir: Path,
    *,
    overwrite: bool = False,
    offline: bool = False,
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
    timeout: float = TIMEOUT_S,
) -> str | None:
    """Make ``<dataset_dir>/<spec.name>/``; return a message when nothing had to be done.

    >>> install(manifest.get("digits_data"), manifest, Path("/tmp/ws/thanosql-dataset"))  # doctest: +SKIP

    Without ``overwrite`` an existing folder is kept (a message says so). Offline, a dataset
    that needs the network fails at once, before any socket is opened, naming its URL and the
    built-in datasets. Every failure (a full disk: DiskFullError) leaves the workspace as it was,
    an older copy of the dataset included.
    """
    store = FolderStore(dataset_dir, "dataset")
    target = store.path(spec.name)
    # A GET killed earlier may have left its dataset moved aside: put it back before looking.
    store.recover()
    if target.exists() and not overwrite:
        return (
            f"dataset '{spec.name}' is already in the workspace ({dataset_dir.name}/{spec.name}); "
            "nothing was downloaded. OPTIONS (overwrite=True) gets it again"
        )
    if offline and spec.needs_network:
        raise DatasetError(
            f"cannot get dataset '{spec.name}': the session is offline (THANOSQL_OFFLINE) "
            f"and it downloads {spec.files[0].url}",
            hint=_alternatives_hint(spec, manifest),
        )
    _check_room(spec, dataset_dir)
    try:
        with store.staging(spec.name) as folder:
            scratch = folder / SCRATCH_DIR
            fetched = _build(
                spec, manifest, scratch, folder, progress=progress, notify=notify, offline=offline, timeout=timeout
            )
            shutil.rmtree(scratch, ignore_errors=True)
            check_tables(spec, folder)
            _write_stamp(spec, manifest, folder, fetched)
            store.put(folder, spec.name)
    except BaseException:
        # Ctrl-C between put()'s two renames leaves the old copy aside and no dataset: put it
        # back now rather than at the next GET. (staging() has removed the new folder.)
        store.recover()
        raise
    return None


def _check_room(spec: DatasetSpec, dataset_dir: Path) -> None:
    # What the manifest declares (downloads, and archives' unpacked sizes) must fit before the
    # first byte is fetched: failing in a second beats failing after an hour's download.
    needed = sum((f.size or 0) + (f.unpacked_size or 0) for f in spec.files)
    if needed:
        check_free_space(dataset_dir, needed, f"getting dataset '{spec.name}'")


def _build(spec, manifest, scratch, content, *, progress, notify, offline, timeout) -> list[Fetched]:
    if spec.builtin is not None:
        from .builtin import GENERATORS

        GENERATORS[spec.builtin](content, dataset_name=spec.name, **spec.options)
        return []
    downloads = scratch / "downloads"
    downloads.mkdir(parents=True)
    sources = scratch / "sources" if spec.prepare else content
    sources.mkdir(exist_ok=True)
    fetched = []
    for file in spec.files:
        path = downloads / file.name
        try:
            fetched.append(fetch(file, path, timeout=timeout, progress=progress))
        except FetchFailure as failure:
            raise _download_error(spec, manifest, file, failure) from failure
        if file.is_archive:
            unpack(path, sources, strip_components=file.strip_components, unpacked_size=file.unpacked_size)
            path.unlink()
        else:
            os.replace(path, sources / file.name)
    if spec.prepare is not None:
        from .prepare import RECIPES, Context

        context = Context(progress=progress, notify=notify or (lambda message: None), offline=offline, timeout=timeout)
        RECIPES[spec.prepare](sources, content, context, dataset_name=spec.name, **spec.options)
    return fetched


def _download_error(spec: DatasetSpec, manifest: Manifest, file: FileSpec, failure: FetchFailure) -> DatasetError:
    where = f"from {failure.url}" if failure.tried == 1 else f"from any of its {failure.tried} URLs"
    if failure.kind in ("connection", "server"):
        retry = "try again later; " if failure.kind == "server" else ""
        return DatasetError(
            f"cannot get dataset '{spec.name}': {file.name} could not be downloaded {where}: {failure.reason}",
            hint=retry + _alternatives_hint(spec, manifest),
        )
    separator = " " if failure.reason.startswith("failed its checksum") else ": "
    return DatasetError(
        f"cannot get dataset '{spec.name}': file {file.name} {where}{separator}{failure.reason}",
        hint="the download was damaged or the file changed on the server; nothing was kept. "
        f"Try again, or check the entry in {manifest.path}",
    )


def _alternatives_hint(spec: DatasetSpec, manifest: Manifest) -> str:
    names = manifest.builtin_names()
    if spec.alternative in names:
        names.remove(spec.alternative)
        names.insert(0, spec.alternative)
    if not names:
        return "connect to the network, or point THANOSQL_DATASETS_MANIFEST at a manifest with local files"
    offered = ", ".join(f"GET THANOSQL DATASET {name}" for name in names)
    return f"built-in datasets need no network: {offered}"


# --------------------------------------------------------------------------------- unpacking


def unpack(archive: Path, destination: Path, *, strip_components: int = 0, unpacked_size: int | None = None) -> None:
    """Unpack a .zip or .tar[.gz|.bz2|.xz] archive into ``destination``.

    >>> unpack(Path("toy.zip"), Path("/tmp/out"), unpacked_size=1_234)  # doctest: +SKIP

    Members that would land outside ``destination`` (absolute paths, ``..``), links and
    devices are refused; ``strip_components`` drops leading folders as ``tar`` does. The bytes
    written are counted as they are written: past ``unpacked_size`` (or, when it is None, past
    UNPACK_RATIO times the archive's size) the unpacking stops with a DatasetError. A full
    disk is left as the OSError it is, for the caller to report.
    """
    try:
        budget = _Budget(archive, unpacked_size)
        members = _zip_members(archive, budget) if archive.name.lower().endswith(".zip") else _tar_members(archive)
        for parts, is_dir, opener in members:
            parts = parts[strip_components:]
            if not parts:
                continue
            path = destination.joinpath(*parts)
            if is_dir:
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with opener() as source, path.open("wb") as out:
                while chunk := source.read(CHUNK_BYTES):
                    budget.take(len(chunk))
                    out.write(chunk)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise
        raise DatasetError(f"{archive.name} is not a readable archive: {exc}") from exc


class _Budget:
    """The bytes one archive may still unpack to (see UNPACK_RATIO), counted as they are written."""

    def __init__(self, archive: Path, declared: int | None) -> None:
        self.archive = archive
        self.declared = declared
        self.size = archive.stat().st_size
        self.limit = declared if declared is not None else max(UNPACK_RATIO * self.size, UNPACK_FLOOR_BYTES)
        self.used = 0

    def expect(self, total: int) -> None:
        """Refuse at once an archive whose own listing adds up to more than the limit."""
        if total > self.limit:
            raise self.error(f"its listing adds up to {total:,} bytes")

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise self.error(f"stopped after {self.used:,} bytes")

    def error(self, found: str) -> DatasetError:
        if self.declared is not None:
            return DatasetError(
                f"{self.archive.name} unpacks to more than the {self.limit:,} bytes the manifest "
                f"declares (unpacked_size): {found}",
                hint="the archive is not the one the manifest describes; nothing was kept. "
                "If it changed on purpose, correct unpacked_size in the manifest",
            )
        return DatasetError(
            f"{self.archive.name} ({format_bytes(self.size)}) unpacks to more than "
            f"{format_bytes(self.limit)}, over {UNPACK_RATIO} times its size: {found}",
            hint="an archive that expands this much is likely a decompression bomb; nothing was kept. "
            "If it is genuine, declare its size in the manifest entry (unpacked_size: <bytes>)",
        )


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DatasetError(
            f"{archive.name} holds a file that would land outside the dataset folder: {name!r}",
            hint="the archive is unsafe; nothing was unpacked",
        )
    return tuple(part for part in path.parts if part not in ("", "."))


def _zip_members(archive: Path, budget: _Budget) -> Iterator[tuple[tuple[str, ...], bool, Callable]]:
    with zipfile.ZipFile(archive) as zf:
        # A zip lists its members' sizes up front: refuse a bomb before writing a byte (and
        # count what is written all the same, in case the listing lies).
        budget.expect(sum(info.file_size for info in zf.infolist()))
        for info in zf.infolist():
            parts = _safe_parts(info.filename, archive)
            if parts and parts[0] == "__MACOSX":  # resource forks a Mac adds; never data
                continue
            yield parts, info.is_dir(), (lambda info=info: zf.open(info))


def _tar_members(archive: Path) -> Iterator[tuple[tuple[str, ...], bool, Callable]]:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            parts = _safe_parts(member.name, archive)
            if member.isdir():
                yield parts, True, None
            elif member.isfile():
                yield parts, False, (lambda member=member: tf.extractfile(member))
            else:
                raise DatasetError(
                    f"{archive.name} holds a link or special file: {member.name!r}",
                    hint="datasets are unpacked from plain files and folders only",
                )


# --------------------------------------------------------------------------------- checks


def check_tables(spec: DatasetSpec, content: Path) -> None:
    """Each table file the manifest lists exists in ``content`` with the listed columns."""
    import csv

    for table in spec.tables:
        path = content / table.file
        if not path.is_file():
            present = sorted(p.name for p in content.iterdir() if p.name != WRITING_FILE)[:12]
            raise DatasetError(
                f"dataset '{spec.name}' has no {table.file} (the manifest lists it for table {table.name})",
                hint=f"the download holds: {', '.join(present) or 'nothing'}",
            )
        if not table.columns or path.suffix.lower() not in (".csv", ".tsv"):
            continue
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","), [])
        missing = [c for c in table.columns if c not in header]
        if missing:
            raise DatasetError(
                f"dataset '{spec.name}': {table.file} lacks the column(s) {', '.join(missing)}",
                hint=f"its columns are: {', '.join(header)}",
            )


def _write_stamp(spec: DatasetSpec, manifest: Manifest, content: Path, fetched: list[Fetched]) -> None:
    # What was installed and from where, with the sha256 of every file written: files that had
    # no published checksum (prepared, generated) can still be checked later. No timestamps, so
    # a generated dataset is the same bytes on every run.
    contents = {}
    for path in sorted(p for p in content.rglob("*") if p.is_file()):
        name = path.relative_to(content).as_posix()
        if name != WRITING_FILE:  # the store's lock file, removed when the folder is put in place
            contents[name] = sha256_of(path)
    stamp = {
        "name": spec.name,
        "manifest": str(manifest.path),
        "builtin": spec.builtin,
        "prepare": spec.prepare,
        "options": dict(spec.options),
        "downloads": [{"url": f.url, "size": f.size, "sha256": f.sha256} for f in fetched],
        "files": contents,
    }
    (content / STAMP_FILE).write_text(json.dumps(stamp, indent=1, sort_keys=True), encoding="utf-8")


def is_installed(dataset_dir: Path, name: str) -> bool:
    """Whether ``<dataset_dir>/<name>/`` exists (GET renames it in only when complete)."""
    return (dataset_dir / name).is_dir()
