"""The workspace database, shared by every process and thread that uses the workspace.

DuckDB lets one process at a time open a database file for writing (it holds an exclusive
``fcntl`` lock on it for as long as any connection is open), and a DuckDB connection must not be
used by two threads at once. So a ``Database`` never keeps the file open between uses:

* ``with database.connect() as connection:`` opens the file for one piece of work (a query, the
  rows a model reads, a table write), so the lock is held only while the database is read or
  written, never while a model computes. Inside one thread the blocks nest (the inner one reuses
  the open connection). Threads open connections of their own; in one process DuckDB shares one
  database instance between them, so they see each other's writes.
* Opening the file costs about 15 ms (DuckDB builds its catalogue of functions), which a loop of
  small statements would pay each time. So after a use the connection is kept ("parked") for
  ``LINGER_S`` and then closed by a background thread; but a process that waits for the file
  touches ``thanosql.duckdb.waiting`` beside it, and the holder then lets go at once if idle, or
  after its current statement once it has held the file for ``QUANTUM_S``: two busy processes
  take turns in slices instead of paying an open per statement.
* Besides DuckDB's own lock (an fcntl lock, which POSIX drops when the process closes any other
  descriptor of the file), a process holds an flock on ``thanosql.duckdb.lock`` while it has the
  file open, with its PID written in it: two thanosql processes never have the file open at once.
* When another process holds the lock, ``connect`` waits, polling with a growing sleep; after
  ``WAIT_NOTICE_S`` it says once what it waits for ("waiting for the workspace database, held
  by PID n (command)"), and after ``lock_timeout`` seconds it raises ``DatabaseBusy`` naming the
  holder.
* State that lives on a connection survives between cells: ``SET``, ``RESET``, ``ATTACH``,
  ``DETACH``, ``USE``, ``LOAD`` statements are replayed on every new connection, in order; and
  while a transaction is open (``BEGIN`` in one cell, ``COMMIT`` in a later one), or temporary
  tables, views or prepared statements exist, the connection is kept ("pinned") and every
  statement of the session uses it, one at a time. The lock is held meanwhile, and other
  processes wait, told who holds it.
* ``change_token()`` is what tells a cache built from table contents (a search index) that the
  database may have changed since: the database and WAL files' size, time and inode (every commit
  by any process touches one of them), plus a count of this process's writes (a write inside an
  open transaction is not in the files yet). A token taken within ``RACY_S`` of a file's
  modification time is not trusted (file times are coarse), as git does for its index.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import threading
import time
import weakref

try:  # POSIX; elsewhere DuckDB's own lock is the only one
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .errors import ExecutionError, ThanoSQLError

# Seconds before a waiting connect says what it waits for (short waits are normal: another
# process's statement takes a few milliseconds of database time).
WAIT_NOTICE_S = 1.0
# Longest sleep between two attempts to open a locked database.
MAX_POLL_S = 0.02
# A file changed this recently may change again within the same clock tick, unseen.
RACY_S = 0.1
# A connection is kept this long after a use, for the next statement: opening costs ~15 ms, and
# a new instance starts with an empty buffer pool (a SEARCH at 1M rows that fetches 1,000 rows
# takes ~180 ms cold against ~40 ms warm). Another thanosql process that waits gets the file at
# once (WAITING_SUFFIX); only other programs wait this long.
LINGER_S = 2.0
# A process that finds another waiting still keeps the file this long, then lets it go once and
# steps back this long before asking again (so two busy processes take turns in slices).
QUANTUM_S = 0.1
YIELD_S = 0.03
RELEASE_POLL_S = 0.05
# Beside the database: touched by a process waiting for it (the holder lets go when it sees it).
WAITING_SUFFIX = ".waiting"
# Beside the database: flocked by the process that has it open (see _connect_guarded).
GUARD_SUFFIX = ".lock"
_LOCK_WORDS = "Could not set lock on file"
_HOLDER = re.compile(r"\(PID (\d+)\)")
# Statement types whose effect lives on the connection: replayed on each new one.
_REPLAYED = ("SET", "ATTACH", "DETACH", "LOAD", "VARIABLE_SET")

# Writes made through any Database of this process, by database file (see change_token).
_writes: dict[str, int] = {}
_writes_lock = threading.Lock()


class DatabaseBusy(ThanoSQLError):
    """Another process held the workspace database for longer than the wait allowed."""


class Database:
    """One workspace's database file, opened for each use and let go soon after.

    >>> database = Database(workspace / "thanosql.duckdb", lock_timeout=60)
    >>> with database.connect() as connection:
    ...     connection.execute("SELECT 42").fetchall()
    [(42,)]
    >>> database.close()
    """

    def __init__(self, path: Path, *, lock_timeout: float, notify: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.notify = notify or (lambda message: None)
        self._local = threading.local()
        self._pinned: duckdb.DuckDBPyConnection | None = None
        self._pin_lock = threading.RLock()
        self._replay: list[str] = []
        # The connection kept for LINGER_S after a use (see _park), when it was opened and
        # parked, and the thread that closes it.
        self._parked: duckdb.DuckDBPyConnection | None = None
        self._opened_ns = 0
        self._parked_at = 0.0
        self._park_lock = threading.Lock()
        self._releaser: threading.Thread | None = None
        self._waiting_file = self.path.with_name(self.path.name + WAITING_SUFFIX)
        _open_databases.add(self)

    # -- connections -----------------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one piece of work; kept briefly after it (unless another process
        waits), then closed, unless pinned or nested."""
        local = self._local
        if getattr(local, "connection", None) is not None:
            yield local.connection  # nested in this thread: the outer block owns it
            return
        pinned = self._take_pinned()
        connection = pinned or self._unpark() or self._open()
        local.connection = connection
        try:
            yield connection
        finally:
            local.connection = None
            if connection is not self._pinned:
                self._park(connection)
            if pinned is not None:
                self._pin_lock.release()

    # -- keeping a connection between uses -------------------------------------------------------

    def _park(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Keep ``connection`` for the next use: opening the file costs about 15 ms, so a loop of
        statements keeps it; the releaser thread closes it after LINGER_S idle, or at once when
        another process says it waits."""
        with self._park_lock:
            if self._parked is None:
                self._parked, self._parked_at = connection, time.monotonic()
                if self._releaser is None:
                    self._releaser = threading.Thread(target=self._release_idle, name="thanosql-db", daemon=True)
                    self._releaser.start()
                return
        _close(connection, self.path)

    def _unpark(self) -> duckdb.DuckDBPyConnection | None:
        """The parked connection, unless another process has waited past our quantum (then it is
        closed and the caller opens again, after the waiter had its turn)."""
        with self._park_lock:
            connection, self._parked = self._parked, None
        if connection is None:
            return None
        held = time.time_ns() - self._opened_ns
        if held >= QUANTUM_S * 1e9 and self._waited_since(self._opened_ns):
            _close(connection, self.path)
            time.sleep(YIELD_S)
            return None
        return connection

    def _release_idle(self) -> None:
        while True:
            time.sleep(RELEASE_POLL_S)
            with self._park_lock:
                connection = self._parked
                if connection is None:
                    self._releaser = None
                    return
                idle = time.monotonic() - self._parked_at
                if idle < LINGER_S and not self._waited_since(self._opened_ns):
                    continue
                self._parked = None
            _close(connection, self.path)

    def _waited_since(self, moment_ns: int) -> bool:
        """Whether another process has said, since ``moment_ns``, that it waits for the file."""
        try:
            return os.stat(self._waiting_file).st_mtime_ns > moment_ns
        except OSError:
            return False

    def _say_waiting(self) -> None:
        try:
            with open(self._waiting_file, "a"):
                pass
            os.utime(self._waiting_file)
        except OSError:
            pass  # a read-only workspace: the holder lets go after LINGER_S anyway

    def _take_pinned(self) -> duckdb.DuckDBPyConnection | None:
        """The pinned connection with its lock held (released by the caller), or None."""
        if self._pinned is None:
            return None
        self._pin_lock.acquire()
        if self._pinned is None:
            self._pin_lock.release()
            return None
        return self._pinned

    @property
    def pinned(self) -> bool:
        """Whether a connection is kept open (an open transaction or temporary objects)."""
        return self._pinned is not None

    def after_statement(self, connection: duckdb.DuckDBPyConnection, kinds: list[str], sql: str) -> None:
        """Keep what a statement left on ``connection``: replay its settings on later
        connections, and pin the connection while it holds a transaction or temporary objects."""
        if any(kind in _REPLAYED for kind in kinds):
            self._replay.append(sql)
        if any(kind not in ("SELECT", "EXPLAIN") for kind in kinds):
            self.wrote()
        if self._pinned is None and all(kind in ("SELECT", "EXPLAIN") for kind in kinds):
            return  # a query leaves no transaction and no temporary object
        keep = _holds_state(connection)
        with self._pin_lock:
            if keep and self._pinned is None:
                self._pinned = connection
            elif not keep and self._pinned is connection:
                self._pinned = None  # connect() closes it when the work is done

    def _open(self) -> duckdb.DuckDBPyConnection:
        started = time.monotonic()
        told = False
        delay = 0.002
        while True:
            try:
                with _instances(self.path):
                    connection = _connect_guarded(self.path)
                self._opened_ns = time.time_ns()
                break
            except (duckdb.IOException, _Held) as exc:
                if _LOCK_WORDS not in str(exc):
                    raise ExecutionError(f"cannot open the workspace database {self.path}: {exc}") from exc
                waited = time.monotonic() - started
                holder = describe_holder(str(exc))
                if waited >= self.lock_timeout:
                    raise DatabaseBusy(
                        f"the workspace database is in use by {holder}; waited {waited:.0f} s",
                        hint="wait for that statement to finish (or stop that process), then run this again; "
                        "a longer wait: connect(lock_timeout=...) or THANOSQL_LOCK_TIMEOUT",
                    ) from exc
                self._say_waiting()
                if not told and waited >= WAIT_NOTICE_S:
                    self.notify(f"waiting for the workspace database, held by {holder}")
                    told = True
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, MAX_POLL_S)
            except duckdb.Error as exc:
                raise ExecutionError(f"cannot open the workspace database {self.path}: {exc}") from exc
        try:
            for sql in self._replay:
                connection.execute(sql)
        except duckdb.Error:
            _close(connection, self.path)
            raise
        return connection

    def close(self) -> None:
        """Close the kept connections (an open transaction is rolled back by DuckDB)."""
        with self._pin_lock:
            if self._pinned is not None:
                _close(self._pinned, self.path)
                self._pinned = None
        with self._park_lock:
            connection, self._parked = self._parked, None
        if connection is not None:
            _close(connection, self.path)

    # -- what changed ----------------------------------------------------------------------------

    def checkpoint(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Write what the WAL holds into the database file now, so that the storage layout a
        cache fingerprints is the one the file keeps (closing the file would checkpoint later and
        move the rows, which would look like a write). Skipped inside an open transaction."""
        try:
            if os.path.getsize(self.path.with_name(self.path.name + ".wal")) == 0:
                return
        except OSError:
            return
        try:
            connection.execute("CHECKPOINT")
        except duckdb.Error:
            pass

    def wrote(self) -> None:
        """Count a write made through this process (see change_token)."""
        key = str(self.path)
        with _writes_lock:
            _writes[key] = _writes.get(key, 0) + 1

    def change_token(self) -> tuple | None:
        """Equal tokens mean nothing was written in between; None means 'cannot tell'."""
        parts: list = [_writes.get(str(self.path), 0), self.pinned]
        now = time.time_ns()
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                parts.append(None)
                continue
            if now - stat.st_mtime_ns < RACY_S * 1e9:
                return None
            parts.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(parts)


def _holds_state(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``connection`` has an open transaction or temporary objects to keep."""
    try:
        first = connection.execute("SELECT txid_current()").fetchall()
        second = connection.execute("SELECT txid_current()").fetchall()
    except duckdb.Error:
        return True  # an aborted transaction: open until ROLLBACK
    if first == second:
        return True
    rows = connection.execute(
        "SELECT (SELECT count(*) FROM duckdb_tables() WHERE temporary) "
        "+ (SELECT count(*) FROM duckdb_views() WHERE temporary AND NOT internal)"
    ).fetchall()
    return bool(rows and rows[0][0])


# Every Database of this process, so that what they keep open is closed at exit (DuckDB then
# checkpoints, and its bindings do not report the connections as leaked).
_open_databases: weakref.WeakSet[Database] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for database in list(_open_databases):
        database.close()


_instance_locks: dict[str, threading.Lock] = {}
_instance_locks_lock = threading.Lock()


def _instances(path: Path) -> threading.Lock:
    """The lock that orders opening and closing ``path`` in this process: DuckDB shares one
    instance between a process's connections to a file, and an instance being shut down (its
    last connection closed, a checkpoint running) must be gone before a new one opens it."""
    with _instance_locks_lock:
        return _instance_locks.setdefault(str(path), threading.Lock())


class _Held(Exception):
    """Another process holds the guard of the database (its message reads like DuckDB's)."""


# Per database file: this process's open connections and the guard file it holds meanwhile.
_guards: dict[str, list] = {}


def _connect_guarded(path: Path) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` under this process's guard on ``<file>.lock``, taken with the first
    connection and kept until the last one closes. DuckDB's own lock is an fcntl lock, which a
    process loses when it closes *any* descriptor of the file (POSIX), for instance when an
    instance that outlived its close (a result still referenced) is finally freed; the guard is an
    flock, which only its own descriptor releases. Call with ``_instances(path)`` held."""
    key = str(path)
    entry = _guards.setdefault(key, [0, None])
    if entry[0] == 0 and fcntl is not None:
        guard = open(key + GUARD_SUFFIX, "a+")  # noqa: SIM115 (held until the last close)
        try:
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            guard.seek(0)
            holder = guard.read().strip()
            guard.close()
            raise _Held(f'{_LOCK_WORDS} "{key}": Conflicting lock is held (PID {holder or "?"})') from None
        guard.seek(0)
        guard.truncate()
        guard.write(str(os.getpid()))
        guard.flush()
        entry[1] = guard
    try:
        connection = duckdb.connect(key)
    except BaseException:
        if entry[0] == 0:
            _release_guard(entry)
        raise
    entry[0] += 1
    return connection


def _release_guard(entry: list) -> None:
    if entry[1] is not None:
        entry[1].close()
        entry[1] = None


def _close(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    with _instances(path):
        try:
            connection.close()
        except duckdb.Error:
            pass
        entry = _guards.get(str(path))
        if entry is not None and entry[0] > 0:
            entry[0] -= 1
            if entry[0] == 0:
                _release_guard(entry)


def describe_holder(message: str) -> str:
    """'PID 4242 (jupyter-lab ...)' from DuckDB's lock error, naming the command where the
    system says it; else DuckDB's own words."""
    found = _HOLDER.search(message)
    if not found:
        return "another process"
    pid = int(found.group(1))
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    except OSError:
        command = ""
    if len(command) > 100:
        command = command[:97] + "..."
    return f"PID {pid} ({command})" if command else f"PID {pid}"
