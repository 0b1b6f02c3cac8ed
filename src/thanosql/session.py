"""A Session runs cells on one workspace: its database (database.py), its model and dataset
stores (stores.py) and its caches (caches.py).

``execute(text)`` parses, plans and runs each statement in order and returns the last one's rows
as a DataFrame (None for statements without rows). Plain SQL goes to DuckDB as written; extension
statements go to the handler registered for their node type (imported only when used, so plain
SQL never imports torch). Messages and pictures go to ``notify`` (the magic displays them, the
command line prints them).

Sharing (DESIGN.md decision 14). A workspace is used at once by several processes (notebooks,
the command line, scripts) and threads, so a Session holds nothing open between statements:

* The database is opened for each piece of work that reads or writes it (``with
  session.connect() as connection``) and closed after, never held while a model computes: a
  CONVERT holds it while it reads its rows and again while it writes its table, not while it
  embeds. DuckDB allows one process at a time on a database file, so a process that finds it
  held waits (and says so after a second) and fails only after ``lock_timeout`` seconds, with a
  ThanoSQLError naming the holder. An open transaction (BEGIN in one cell, COMMIT in a later
  one) or a temporary table keeps the connection, and so the lock, until it ends.
* Each thread's statements use connections of their own, and the results of a statement's
  nested steps are registered only on its own connections: threads never see each other's rows.
* Caches built from the database (search indexes) check the database's change token before each
  use, so a write by any process or session is seen by the next statement.
* Models and datasets are replaced by a swap that every process sees as atomic; what a killed
  statement left is recovered when a session opens the workspace (stores.py).
* Ctrl-C stops the statement: its writes are rolled back, its unfinished files removed, and it
  says so in one line.
"""

from __future__ import annotations

import gc
import importlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from . import nodes
from .caches import Caches
from .database import Database
from .disk import disk_error, is_disk_full
from .duckdb_errors import execution_error, located, positions, with_position
from .engines import checked_engine
from .errors import ExecutionError, Interrupted, PlanError, ThanoSQLError
from .parser import parse
from .planner import Step, plan
from .sourcemap import Piece, SourceMap

DATABASE_FILE = "thanosql.duckdb"
DATASET_DIR = "thanosql-dataset"
MODEL_DIR = "thanosql-model"

# A handler (nodes.STATEMENTS names it "module:function") takes (session, step) and returns a
# pyarrow.Table or pandas.DataFrame (rows), a str (a message; no rows) or None ("Success").


def _supported() -> str:
    """The statements this engine runs, as the unsupported ones' hint lists them: those of tables
    and datasets (statements/data.py) first, and GET once for its two forms."""
    records = [record for record in nodes.STATEMENTS if record.handler is not None]
    records.sort(key=lambda record: not record.handler.startswith("thanosql.statements.data:"))
    return ", ".join(dict.fromkeys(record.words.split(" THANOSQL")[0] for record in records))


@dataclass(frozen=True)
class Settings:
    """Where the session works and how; each has an environment variable (see ``from_env``)."""

    workspace: Path
    offline: bool = False
    device: str = "auto"
    datasets_manifest: Path | None = None
    thumbnail_size: int = 160
    progress: bool = True
    lock_timeout: float = 60.0
    # 'duckdb': plain SQL runs as written; another dialect is transpiled by sqlglot (dialects.py).
    sql_dialect: str = "duckdb"
    # Bytes of embeddings CONVERT keeps for reuse (reuse.py); 0 keeps none.
    reuse_bytes: int = 2 << 30
    # Bytes of memory search indexes may hold (search/engine.py): past it, exact search of a
    # table reads it in batches instead of indexing it, and older indexes are dropped first.
    search_memory: int = 4 << 30
    # Where CONVERT, BUILD MODEL and FIT MODEL run: 'local' (this process) or 'ray' (engines.py).
    engine: str = "local"

    @classmethod
    def from_env(cls, workspace: str | os.PathLike | None = None, **overrides: Any) -> Settings:
        """Settings from arguments, falling back to THANOSQL_* environment variables.

        >>> Settings.from_env(workspace, offline=True).offline
        True
        """
        env = os.environ
        root = workspace or env.get("THANOSQL_WORKSPACE") or os.getcwd()
        manifest = overrides.pop("datasets_manifest", None) or env.get("THANOSQL_DATASETS_MANIFEST")
        offline = overrides.pop("offline", None)
        if offline is None:
            offline = env.get("THANOSQL_OFFLINE", "").strip().lower() in ("1", "true", "yes")
        device = overrides.pop("device", None) or env.get("THANOSQL_DEVICE") or "auto"
        lock_timeout = overrides.pop("lock_timeout", None)
        if lock_timeout is None:
            lock_timeout = env.get("THANOSQL_LOCK_TIMEOUT") or 60.0
        try:
            lock_timeout = float(lock_timeout)
        except (TypeError, ValueError):
            lock_timeout = -1.0
        if not lock_timeout >= 0:
            raise ThanoSQLError(
                "lock_timeout must be a number of seconds, 0 or more",
                hint="e.g. connect(lock_timeout=120) or THANOSQL_LOCK_TIMEOUT=120",
            )
        overrides["reuse_bytes"] = _bytes_setting(
            overrides.pop("reuse_bytes", None),
            "reuse_bytes",
            Settings.reuse_bytes,
            "e.g. connect(reuse_bytes=4e9) or THANOSQL_REUSE_BYTES=4e9; 0 keeps no embeddings for reuse",
        )
        overrides["search_memory"] = _bytes_setting(
            overrides.pop("search_memory", None),
            "search_memory",
            default_search_memory(),
            "e.g. connect(search_memory=8e9) or THANOSQL_SEARCH_MEMORY=8e9",
        )
        overrides["sql_dialect"] = checked_dialect(overrides.get("sql_dialect") or env.get("THANOSQL_SQL_DIALECT"))
        overrides["engine"] = checked_engine(overrides.get("engine") or env.get("THANOSQL_ENGINE"))
        if device not in ("auto", "cpu", "cuda"):
            raise ThanoSQLError(f"unknown device {device!r}", hint="valid devices: auto, cpu, cuda")
        unknown = set(overrides) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ThanoSQLError(
                f"unknown setting {sorted(unknown)[0]!r}",
                hint="valid settings: " + ", ".join(cls.__dataclass_fields__),
            )
        return cls(
            workspace=Path(root).expanduser().resolve(),
            offline=bool(offline),
            device=device,
            datasets_manifest=Path(manifest).expanduser() if manifest else None,
            lock_timeout=lock_timeout,
            **overrides,
        )


def checked_dialect(name: str | None) -> str:
    """A sql_dialect setting: 'duckdb' (the default) or a dialect sqlglot reads (imported only then)."""
    if name is None or name.strip().lower() in ("", "duckdb"):
        return "duckdb"
    from .dialects import check_dialect

    return check_dialect(name)


def _bytes_setting(value: Any, name: str, default: int, hint: str) -> int:
    """A setting given in bytes (argument, else THANOSQL_<NAME>, else ``default``), checked."""
    if value is None:
        value = os.environ.get(f"THANOSQL_{name.upper()}") or default
    try:
        value = int(float(value))
    except (TypeError, ValueError):
        value = -1
    if value < 0:
        raise ThanoSQLError(f"{name} must be a number of bytes, 0 or more", hint=hint)
    return value


def default_search_memory() -> int:
    """A third of the machine's memory (8 GB on a 24 GB machine); 4 GiB where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 3
    except (ValueError, OSError, AttributeError):
        return Settings.search_memory


def _print_notice(obj: Any) -> None:
    print(obj if isinstance(obj, str) else repr(obj))


class Session:
    """One workspace: its database, stores and caches.

    >>> session = connect(workspace)
    >>> session.execute("SELECT 42 AS answer")
       answer
    0      42
    >>> session.close()
    """

    def __init__(self, settings: Settings, notify: Callable[[Any], None] | None = None) -> None:
        self.settings = settings
        self.notify = notify or _print_notice
        self.database = self._open_workspace(settings)
        self.caches = Caches(index_bytes=settings.search_memory)
        # Per thread: the results of the running statement's nested steps, registered on each
        # connection that statement opens (never on another thread's).
        self._local = threading.local()
        self._recover()

    def _open_workspace(self, settings: Settings) -> Database:
        """The workspace folder made (a clear error where it cannot be) and its database."""
        _prepare_workspace(settings.workspace)
        # Through a lambda: the magic and tests may rebind self.notify later.
        return Database(
            settings.workspace / DATABASE_FILE,
            lock_timeout=settings.lock_timeout,
            notify=lambda message: self.notify(message),
        )

    def _recover(self) -> None:
        """Finish or undo what killed statements left in the stores (stores.py)."""
        from .stores import FolderStore

        for store in (self.models.folders, FolderStore(self.dataset_dir, "dataset")):
            try:
                for line in store.recover():
                    self.notify(line)
            except OSError as exc:
                self.notify(f"could not tidy {store.root}: {exc}")

    # -- running cells -------------------------------------------------------------------------

    def execute(self, text: str) -> pd.DataFrame | None:
        """Run every statement of ``text``; return the last one's rows (None if it has none)."""
        result = None
        for _statement, result in self.run(text):  # noqa: B007 (the last one is kept)
            pass
        return result

    def run(self, text: str) -> Iterator[tuple[Any, pd.DataFrame | None]]:
        """Run the statements of ``text`` one by one, yielding each with its rows (or None).

        The whole text is parsed first, so a syntax error anywhere runs nothing.
        """
        try:
            statements = parse(text)
            for number, statement in enumerate(statements, 1):
                if len(statements) > 1:  # said before it runs: a slow statement is not silence
                    self.notify(statement_label(text, statement, number, len(statements)))
                try:
                    answer = self._run_statement(statement)
                except (KeyboardInterrupt, duckdb.InterruptException, RuntimeError) as exc:
                    # DuckDB answers Ctrl-C during a query with RuntimeError('Query interrupted').
                    if isinstance(exc, RuntimeError) and str(exc) != "Query interrupted":
                        raise
                    raise _interrupted(statement, number, len(statements)) from exc
                yield statement, answer
        except ThanoSQLError as exc:
            if exc.source is None:
                exc.source = text
            if exc.source == text:  # DuckDB's errors know their offset; the line is counted here
                exc.span = located(exc.span, text)
            raise

    def _run_statement(self, statement) -> pd.DataFrame | None:
        the_plan = plan(statement)
        if self.settings.sql_dialect != "duckdb":
            from .dialects import translate_plan

            the_plan = translate_plan(the_plan, self.settings.sql_dialect)
        outer = getattr(self._local, "relations", None)
        outer_maps = getattr(self._local, "source_maps", None)
        self._local.relations = relations = {}
        self._local.source_maps = _source_maps(the_plan)
        try:
            answer = None
            for step in the_plan.steps:
                answer = self._run_step(step)
                if step.output is not None:
                    relations[step.output] = _as_arrow(answer, step)
            if the_plan.sql is not None:
                return self._run_sql(the_plan.sql, statement)
            return self._finish(answer)
        finally:
            self._local.relations = outer
            self._local.source_maps = outer_maps

    def _run_step(self, step: Step) -> Any:
        statement = step.statement
        record = nodes.record_of(statement)
        if record.handler is None:
            raise PlanError(
                f"{record.unsupported} is not supported by this engine",
                span=statement.span,
                hint=f"thanosql runs the image and text search statements: {_supported()}",
            )
        module_name, function_name = record.handler.split(":")
        return getattr(importlib.import_module(module_name), function_name)(self, step)

    def _finish(self, answer: Any) -> pd.DataFrame | None:
        if answer is None:
            self.notify("Success")
            return None
        if isinstance(answer, str):
            self.notify(answer)
            return None
        if isinstance(answer, pa.Table):
            return answer.to_pandas()
        if isinstance(answer, pd.DataFrame):
            return answer
        # A display object (PRINT's image grid): shown, and the statement has no rows.
        self.notify(answer)
        return None

    def _run_sql(self, sql: str, statement) -> pd.DataFrame | None:
        with self.connect() as connection:
            try:
                with positions(connection):
                    parsed = connection.extract_statements(sql)
                    kinds = [s.type.name for s in parsed]
                    results = [s.expected_result_type for s in parsed]
                    relation = connection.execute(sql)
                    # Read before positions() resets the setting: that would replace the result.
                    frame = relation.df() if relation.description else None
            except duckdb.InterruptException:
                raise
            except duckdb.Error as exc:
                raise self.sql_error(exc, sql, statement, connection) from exc
            self.database.after_statement(connection, kinds, sql)
        if frame is None:
            return self._finish(None)
        rows_first = bool(results) and results[-1] and results[-1][0] == duckdb.ExpectedResultType.QUERY_RESULT
        if not rows_first and list(frame.columns) == ["Count"]:
            count = int(frame["Count"].iloc[0]) if len(frame) else 0
            return self._finish(f"Success ({count:,} row{'s' if count != 1 else ''})")
        return frame

    def sql_error(self, exc: duckdb.Error, sql: str, statement=None, connection=None) -> ThanoSQLError:
        """A ThanoSQLError for DuckDB's error running ``sql`` for ``statement``: at the place in the
        cell DuckDB points to, with a hint only where one helps (duckdb_errors.py)."""
        span = getattr(statement, "span", None)
        if is_disk_full(exc):
            return disk_error(exc, "writing the workspace database", self.workspace, span)
        return execution_error(
            exc,
            sql,
            statement,
            self._source_map(sql),
            connection=connection,
            dialect=self.settings.sql_dialect,
        )

    def _source_map(self, sql: str) -> SourceMap | None:
        """Where ``sql`` (the running statement's SQL, or a handler's query around it) comes from
        in the cell."""
        maps = getattr(self._local, "source_maps", None) or {}
        if sql in maps:
            return maps[sql]
        for text, found in sorted(maps.items(), key=lambda item: -len(item[0])):
            at = sql.find(text)
            if at >= 0 and text.strip():
                return SourceMap((Piece(at, at + len(text), 0),)).through(found)
        return None

    # -- services for handlers -----------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The workspace database for one piece of work, with the running statement's nested
        results registered; held only inside the block (see the module docstring).

        >>> with session.connect() as connection:  # doctest: +SKIP
        ...     connection.execute("SELECT count(*) FROM images").fetchall()
        [(200,)]
        """
        local = self._local
        depth = getattr(local, "depth", 0)
        with self.database.connect() as connection:
            relations = getattr(local, "relations", None) or {}
            if depth == 0:
                for name, table in relations.items():
                    connection.register(name, table)
            local.depth = depth + 1
            try:
                yield connection
            finally:
                local.depth = depth
                if depth == 0:
                    for name in relations:
                        _unregister(connection, name)

    def query(self, sql: str, statement=None) -> pa.Table:
        """The rows of ``sql`` as a pyarrow Table, fully read."""
        with self.connect() as connection:
            relation = None
            try:
                relation = connection.sql(sql)
                return relation.to_arrow_table()
            except duckdb.InterruptException:
                raise
            except duckdb.Error as exc:
                # Positions cost a setting's round trips on every query; an error pays for them.
                positioned = with_position(connection, sql, exc)
                raise self.sql_error(positioned, sql, statement, connection) from exc
            finally:
                if relation is not None:
                    relation.close()  # see describe

    def columns(self, sql: str, statement=None) -> list[str]:
        """Column names of ``sql`` without reading its rows."""
        return self.describe(sql, statement).columns

    def describe(self, sql: str, statement=None) -> Shape:
        """Column names and DuckDB types of ``sql``, without reading its rows."""
        with self.connect() as connection:
            try:
                relation = connection.sql(sql)
                try:
                    return Shape(list(relation.columns), list(relation.types))
                finally:
                    # A relation left open keeps its connection's state alive past the close at
                    # exit, and DuckDB's bindings then report leaks.
                    relation.close()
            except duckdb.Error as exc:
                raise self.sql_error(exc, sql, statement, connection) from exc

    def write_table(self, name: str, rows: pa.Table | pd.DataFrame, if_exists: str = "replace") -> None:
        """Create, replace or append to table ``name`` in one transaction: a failure (a full
        disk, Ctrl-C) leaves the old table as it was."""
        with self.connect() as con:
            self.database.wrote()
            con.register("__thanosql_incoming", rows)
            try:
                _write_in_transaction(con, name, if_exists, self.table_exists)
            except duckdb.InterruptException:
                raise
            except duckdb.Error as exc:
                if is_disk_full(exc):
                    raise disk_error(exc, f"writing table '{name}'", self.workspace) from exc
                raise ExecutionError(f"could not write table '{name}': {exc}") from exc
            finally:
                _unregister(con, "__thanosql_incoming")

    def table_exists(self, name: str) -> bool:
        with self.connect() as connection:
            # fetchall, not fetchone: an unread result blocks the connection (register() fails).
            rows = connection.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [name]
            ).fetchall()
        return bool(rows and rows[0][0])

    def resolve_path(self, path: str | os.PathLike) -> Path:
        """A path from a table, an option or FROM '...': relative ones start at the workspace."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.settings.workspace / candidate

    @property
    def workspace(self) -> Path:
        return self.settings.workspace

    @property
    def dataset_dir(self) -> Path:
        return self.settings.workspace / DATASET_DIR

    @property
    def model_dir(self) -> Path:
        return self.settings.workspace / MODEL_DIR

    @property
    def models(self):
        """The workspace's model store (no torch imported)."""
        from .models.store import ModelStore

        return ModelStore(self.model_dir)

    @property
    def reuse(self):
        """The embeddings CONVERT keeps for its next runs (reuse.py)."""
        from .reuse import ReuseStore

        return ReuseStore(self.workspace, self.settings.reuse_bytes)

    def model(self, name: str, span=None):
        """The loaded adapter of stored model ``name``, kept while the stored model is unchanged."""
        store = self.models
        with store.folders.reading():  # not replaced while it loads
            info = store.get(name, span=span)
            identity = (info.created, (info.path / "model.json").stat().st_mtime_ns)

            def load():
                from .models import load_adapter

                return load_adapter(info, device=self.settings.device)

            return self.caches.models.get(name, identity, load)

    def progress(self, iterable=None, **kwargs):
        """A tqdm progress bar, silenced by settings.progress: text on stderr in a terminal; in a
        notebook a live bar that leaves its final line in the saved file (progress.py)."""
        from .progress import progress_bar

        kwargs.setdefault("disable", not self.settings.progress)
        return progress_bar(iterable, **kwargs)

    def configure(self, **changes: Any) -> None:
        """Change settings; a new workspace is opened first, and this session moves to it only
        when that succeeded (a failed switch leaves it where it was)."""
        if "sql_dialect" in changes:
            changes["sql_dialect"] = checked_dialect(changes["sql_dialect"])
        if "engine" in changes:
            changes["engine"] = checked_engine(changes["engine"])
        settings = replace(self.settings, **changes)
        if settings.workspace != self.settings.workspace or settings.lock_timeout != self.settings.lock_timeout:
            database = self._open_workspace(settings)
            self.database.close()
            self.database = database
            self.caches.clear()
            self.settings = settings
            self._recover()
            return
        self.settings = settings

    def close(self) -> None:
        self.database.close()
        # An exception caught on the way (no index in the workspace yet, a stale one) keeps its
        # frames, and so a DuckDB connection, in a reference cycle until the garbage collector
        # runs; collected here, so that nothing of DuckDB outlives the session (a process ending
        # right after would print DuckDB's binding-leak report, at random).
        gc.collect()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@dataclass(frozen=True)
class Shape:
    """The columns of a query and their DuckDB types, read without its rows."""

    columns: list
    types: list


def _source_maps(the_plan) -> dict[str, SourceMap]:
    """The plan's SQL texts (the statement's, each step's AS query) and where each comes from."""
    maps = {step.source: step.source_map for step in the_plan.steps if step.source and step.source_map}
    if the_plan.sql is not None and the_plan.sql_map is not None:
        maps[the_plan.sql] = the_plan.sql_map
    return maps


def _write_in_transaction(con, name: str, if_exists: str, table_exists) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        exists = table_exists(name)
        quoted = quote_identifier(name)
        if exists and if_exists == "fail":
            raise PlanError(
                f"table '{name}' already exists",
                hint="add OPTIONS (if_exists='replace') to replace it, or 'append' to add rows",
            )
        if exists and if_exists == "append":
            con.execute(f"INSERT INTO {quoted} BY NAME SELECT * FROM __thanosql_incoming")
        else:
            con.execute(f"CREATE OR REPLACE TABLE {quoted} AS SELECT * FROM __thanosql_incoming")
        con.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed (a full disk) has already ended the transaction.
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise


def _unregister(connection, name: str) -> None:
    try:
        connection.unregister(name)
    except duckdb.Error:
        pass


def _prepare_workspace(root: Path) -> None:
    """Make the workspace folder; a clear error where it cannot be one."""
    if root.exists() and not root.is_dir():
        raise ThanoSQLError(
            f"the workspace {root} is a file, not a folder",
            hint="give a folder (it is made if missing): -w DIR, connect(DIR) or THANOSQL_WORKSPACE",
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ThanoSQLError(f"cannot make the workspace folder {root}: {exc.strerror}") from exc
    database = root / DATABASE_FILE
    if database.exists() and not database.is_file():
        raise ThanoSQLError(f"{database} is not a file", hint="move it away; it is where the tables live")


def _interrupted(statement, number: int, count: int) -> Interrupted:
    where = f"statement {number} of {count}" if count > 1 else "the statement"
    before = " (the statements before it had run)" if number > 1 else ""
    return Interrupted(
        f"interrupted; {where} changed nothing{before}",
        span=getattr(statement, "span", None),
    )


# A statement's label shows at most this many characters of its text.
LABEL_CHARS = 72


def statement_label(text: str, statement, number: int, count: int) -> str:
    """The line that heads statement ``number`` of ``count`` in a cell's output.

    >>> from thanosql import parse
    >>> cell = "CREATE TABLE t AS SELECT 1 AS x;\\n\\nSELECT   x\\n  FROM t"
    >>> statement_label(cell, parse(cell)[1], 2, 2)
    '[2/2] line 3: SELECT x FROM t'
    """
    span = statement.span
    words = " ".join(text[span.start : span.end].split())
    if len(words) > LABEL_CHARS:
        words = words[: LABEL_CHARS - 1].rstrip() + "…"
    return f"[{number}/{count}] line {span.line}: {words}"


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB identifier, quoted so any text is safe."""
    return '"' + name.replace('"', '""') + '"'


def _as_arrow(answer: Any, step: Step) -> pa.Table:
    if isinstance(answer, pa.Table):
        return answer
    if isinstance(answer, pd.DataFrame):
        return pa.Table.from_pandas(answer, preserve_index=False)
    raise PlanError(
        "this statement has no rows to select from",
        span=step.statement.span,
        hint="only statements that return rows (CONVERT, SEARCH, LIST, ...) can be nested",
    )


def connect(workspace: str | os.PathLike | None = None, **settings: Any) -> Session:
    """Open a session on a workspace (default: THANOSQL_WORKSPACE, else the current folder).

    >>> session = connect("/tmp/ws", offline=True)  # doctest: +SKIP
    >>> session.execute("CREATE TABLE t AS SELECT 1 AS x")  # doctest: +SKIP
    Success
    """
    notify = settings.pop("notify", None)
    return Session(Settings.from_env(workspace, **settings), notify=notify)
