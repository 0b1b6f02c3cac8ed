"""Named folders of a workspace (``thanosql-model/``, ``thanosql-dataset/``): names that stay
names, replacement that every process sees as atomic, and recovery of what a killed statement
left behind.

``<root>/<name>/`` is a complete entry. Every name that starts with a dot is the store's own:

    .lock                         flock: shared while an entry is read, exclusive while one is
                                  put in place, removed or recovered
    .<name>.<token>.partial/      an entry being written; its writer holds ``.writing`` in it
                                  locked, so a partial folder nobody holds is abandoned
    .<name>.<token>.old/          the entry being replaced, moved aside during the swap
    .<name>.<token>.deleted/      a removed entry, until its files are gone

A folder cannot be renamed over a non-empty one, so a replacement is two renames (the old entry
aside, the new one in). Both happen under the exclusive lock, and readers take the shared lock,
so no thanosql process ever sees the instant between them; a process killed between them leaves
``.old`` without ``<name>``, and ``recover()`` (run when a session opens the workspace, and
before every write) renames it back. Locks are ``flock`` locks: the kernel drops them when their
holder dies, so a kill -9 never leaves a store locked.
"""

from __future__ import annotations

import os
import secrets
import shutil
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .disk import disk_error, fsync_folder, is_disk_full
from .errors import PlanError, Span

try:  # POSIX; elsewhere the store works without cross-process locks
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".lock"
WRITING_FILE = ".writing"
MAX_NAME_LENGTH = 200
_KINDS = ("partial", "old", "deleted")


def check_name(name: str, what: str, span: Span | None = None) -> str:
    """``name`` if it can name a ``what`` ('model', 'dataset'); else a PlanError saying why.

    A name is one folder name: no path separators, not ``.`` or ``..``, no leading dot (the
    store's own files), no control characters, at most 200 characters.

    >>> check_name("my_model", "model")
    'my_model'
    """
    problem = None
    if not isinstance(name, str) or not name:
        problem = "is empty"
    elif "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        problem = "contains a path separator"
    elif name in (".", "..") or name.startswith("."):
        problem = "starts with a dot"
    elif any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        problem = "contains a control character"
    elif name != name.strip():
        problem = "starts or ends with a space"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"is longer than {MAX_NAME_LENGTH} characters"
    if problem:
        raise PlanError(
            f"{what} name {name!r} {problem}: a {what} name is a name, not a path",
            span=span,
            hint=f"use letters, digits, '_' and '-' (e.g. my_{what}); {what}s live in the workspace's store",
        )
    return name


def _lock(path: Path, exclusive: bool, blocking: bool = True):
    """An open file holding a flock on ``path`` (None if non-blocking and someone holds it)."""
    handle = open(path, "a+b")  # noqa: SIM115 (the caller holds the lock by holding it)
    if fcntl is None:
        return handle
    flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
    try:
        fcntl.flock(handle.fileno(), flags)
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    return handle


class FolderStore:
    """The entries of one store folder, by name.

    >>> store = FolderStore(Path("/tmp/ws/thanosql-model"), "model")  # doctest: +SKIP
    >>> with store.staging("m") as folder:  # doctest: +SKIP
    ...     (folder / "model.json").write_text("{}")
    ...     store.put(folder, "m")
    >>> store.names()  # doctest: +SKIP
    ['m']
    """

    def __init__(self, root: Path, what: str) -> None:
        self.root = Path(root)
        self.what = what

    # -- names -----------------------------------------------------------------------------------

    def path(self, name: str, span: Span | None = None) -> Path:
        """The folder of entry ``name``, checked to be a name and to lie inside the store (a
        symbolic link pointing elsewhere is refused too)."""
        check_name(name, self.what, span)
        folder = self.root / name
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(folder)
        if os.path.dirname(real) != real_root:
            raise PlanError(
                f"{self.what} '{name}' resolves to {real}, outside the {self.what} store {real_root}",
                span=span,
                hint=f"remove the link {folder}, or choose another name",
            )
        return folder

    def names(self) -> list[str]:
        """Names of the entries present (complete ones; the store's own dot-files excluded)."""
        if not self.root.is_dir():
            return []
        with self.reading():
            return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir())

    def exists(self, name: str, span: Span | None = None) -> bool:
        return self.path(name, span).is_dir()

    # -- locks -----------------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the store still (no entry replaced or removed) while entries are read."""
        with self._locked(exclusive=False):
            yield

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        if not self.root.is_dir():
            yield
            return
        handle = _lock(self.root / LOCK_FILE, exclusive)
        try:
            yield
        finally:
            handle.close()

    # -- writing ---------------------------------------------------------------------------------

    @contextmanager
    def staging(self, name: str, span: Span | None = None) -> Iterator[Path]:
        """An empty folder to write entry ``name`` into; call ``put(folder, name)`` when it is
        complete. On leaving (an error, Ctrl-C), whatever was not put in place is removed."""
        self.path(name, span)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.recover()
            folder = self.root / f".{name}.{os.getpid():x}{secrets.token_hex(4)}.partial"
            with self._locked(exclusive=True):  # recover() never sees it without its lock
                folder.mkdir()
                writing = _lock(folder / WRITING_FILE, exclusive=True)
        except OSError as exc:
            if is_disk_full(exc, self.root):
                raise disk_error(exc, f"writing {self.what} '{name}'", self.root, span) from exc
            raise
        try:
            yield folder
        except (OSError, RuntimeError) as exc:
            # RuntimeError: torch.save reports a full disk from its zip writer ("unexpected pos").
            if not is_disk_full(exc, self.root):
                raise
            shutil.rmtree(folder, ignore_errors=True)  # first, so the error tells the room left
            raise disk_error(exc, f"writing {self.what} '{name}'", self.root, span) from exc
        finally:
            writing.close()
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def put(self, folder: Path, name: str) -> None:
        """Put the complete ``folder`` (from ``staging``) in place as entry ``name``, replacing
        any entry of that name, atomically as any thanosql process sees it."""
        target = self.path(name)
        (folder / WRITING_FILE).unlink(missing_ok=True)
        fsync_folder(folder)
        retired = None
        with self._locked(exclusive=True):
            if target.exists():
                retired = self._aside(name, "old")
                os.replace(target, retired)
            try:
                os.replace(folder, target)
            except BaseException:
                if retired is not None:  # Ctrl-C or a failure between the renames: undo the first
                    os.replace(retired, target)
                raise
            fsync_folder(self.root)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)

    def remove(self, name: str, span: Span | None = None) -> bool:
        """Remove entry ``name``; False if there was none."""
        target = self.path(name, span)
        with self._locked(exclusive=True):
            if not target.exists():
                return False
            retired = self._aside(name, "deleted")
            os.replace(target, retired)
        shutil.rmtree(retired, ignore_errors=True)
        return True

    def _aside(self, name: str, kind: str) -> Path:
        return self.root / f".{name}.{os.getpid():x}{secrets.token_hex(4)}.{kind}"

    # -- recovery --------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Finish or undo what killed statements left: an abandoned ``.partial`` folder is
        removed, an ``.old`` one is put back if its entry is missing (else removed), and
        ``.deleted`` ones are removed. Returns what was done, a line each."""
        if not self.root.is_dir():
            return []
        done: list[str] = []
        with self._locked(exclusive=True):
            for entry in sorted(self.root.iterdir()):
                parsed = _parse_leftover(entry.name)
                if parsed is None or not entry.is_dir():
                    continue
                name, kind = parsed
                if kind == "partial":
                    holder = _lock(entry / WRITING_FILE, exclusive=True, blocking=False)
                    if holder is None:
                        continue  # its writer is alive
                    holder.close()
                    shutil.rmtree(entry, ignore_errors=True)
                    done.append(f"removed an unfinished {self.what} '{name}'")
                elif kind == "old" and not (self.root / name).exists():
                    os.replace(entry, self.root / name)
                    done.append(f"restored {self.what} '{name}' (its replacement was interrupted)")
                else:
                    shutil.rmtree(entry, ignore_errors=True)
        return done


def _parse_leftover(file_name: str) -> tuple[str, str] | None:
    """``('m', 'old')`` for ``.m.1a2b3c4d5e.old``; None for anything else."""
    if not file_name.startswith("."):
        return None
    parts = file_name[1:].rsplit(".", 2)
    if len(parts) != 3 or parts[2] not in _KINDS or not parts[0]:
        return None
    return parts[0], parts[2]
