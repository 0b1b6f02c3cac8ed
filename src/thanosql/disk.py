"""Disk faults as clear errors: a full disk (or quota) says so, with what was being written,
instead of a bare OSError or a library's RuntimeError; and a long job checks for room first.

``raise disk_error(exc, "saving model 'm'") from exc`` where ``disk_error`` recognises the fault.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .errors import Span, ThanoSQLError

# errno values that mean "no room": ENOSPC (device full), EDQUOT (quota), EFBIG (file too large).
_NO_ROOM = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
# Words libraries use when they wrap the OSError in another exception (torch.save's
# "PytorchStreamWriter failed writing file", DuckDB's "No space left on device").
_NO_ROOM_WORDS = ("no space left on device", "disk quota exceeded", "file too large", "failed writing file")


# Below this many free bytes, a failed write is taken for a full disk.
LOW_SPACE_BYTES = 1 << 20


class DiskFullError(ThanoSQLError):
    """The disk (or the user's quota) had no room for what a statement wrote."""


def is_disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """Whether ``exc`` (or an exception it wraps) is a lack of room on the disk. With ``where``
    (the folder being written), a write error of a library that hides the errno (torch.save's zip
    writer says only "unexpected pos") counts too when that disk is now all but full.

    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    True
    """
    if where is not None and isinstance(exc, (OSError, RuntimeError)):
        free = free_bytes(where)
        if free is not None and free < LOW_SPACE_BYTES:
            return True
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            return True
        if any(words in str(exc).lower() for words in _NO_ROOM_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_error(exc: BaseException, doing: str, where: Path | None = None, span: Span | None = None) -> DiskFullError:
    """The error to raise for a full disk met while ``doing`` (e.g. "saving model 'm'")."""
    place = f" ({where})" if where is not None else ""
    free = free_bytes(where) if where is not None else None
    room = f"; {format_bytes(free)} free there now" if free is not None else ""
    return DiskFullError(
        f"the disk is full: {doing} failed{place}{room}; nothing was changed",
        span=span,
        hint="free some space (old models: DELETE MODEL; tables: DROP TABLE) and run the statement again",
    )


def free_bytes(path: Path) -> int | None:
    """Bytes free to this user on the file system holding ``path`` (its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def check_free_space(path: Path, needed: int, doing: str, span: Span | None = None) -> None:
    """Refuse to start ``doing`` when the disk holding ``path`` has less than ``needed`` bytes free
    (checked before a long job, so it fails in a second rather than after an hour)."""
    free = free_bytes(path)
    if free is not None and free < needed:
        raise DiskFullError(
            f"not enough disk space for {doing}: it needs about {format_bytes(needed)}, "
            f"and {format_bytes(free)} is free at {path}",
            span=span,
            hint="free some space (old models: DELETE MODEL; tables: DROP TABLE) and run the statement again",
        )


def format_bytes(count: int) -> str:
    """``format_bytes(45_000_000)`` -> '42.9 MiB'."""
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fsync_folder(path: Path) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is synced)."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
