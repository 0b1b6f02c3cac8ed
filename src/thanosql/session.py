"""A Session owns one DuckDB connection on the workspace's database and runs cells.

``execute(text)`` parses, plans and runs each statement in order and returns the last one's rows
as a DataFrame (None for statements without rows). Plain SQL goes to DuckDB as written; extension
statements go to the handler registered for their node type (imported only when used, so plain
SQL never imports torch). Messages and pictures go to ``notify`` (the magic displays them, the
command line prints them).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import pandas as pd
import pyarrow as pa

from . import nodes
from .errors import ExecutionError, PlanError, ThanoSQLError, closest
from .parser import STATEMENT_KEYWORDS, parse
from .planner import Plan, Step, plan

DATABASE_FILE = "thanosql.duckdb"
DATASET_DIR = "thanosql-dataset"
MODEL_DIR = "thanosql-model"

# Node type -> "module:function" of its handler. A handler takes (session, step) and returns a
# pyarrow.Table or pandas.DataFrame (rows), a str (a message; no rows) or None ("Success").
HANDLERS: dict[type, str] = {
    nodes.GetDataset: "thanosql.statements.data:get_dataset",
    nodes.Copy: "thanosql.statements.data:copy",
    nodes.ListObjects: "thanosql.statements.data:list_objects",
    nodes.GetModel: "thanosql.statements.models:get_model",
    nodes.UploadModel: "thanosql.statements.models:upload_model",
    nodes.DeleteModel: "thanosql.statements.models:delete_model",
    nodes.Convert: "thanosql.statements.convert:convert",
    nodes.Search: "thanosql.statements.search:search",
    nodes.Print: "thanosql.statements.printing:print_media",
    nodes.BuildModel: "thanosql.statements.training:build_model",
    nodes.FitModel: "thanosql.statements.training:fit_model",
}

# Statements of the dialect that this engine does not run (models outside image search).
UNSUPPORTED = {
    nodes.Predict: "PREDICT",
    nodes.Evaluate: "EVALUATE",
    nodes.Generate: "GENERATE",
    nodes.Function: "FUNCTION",
    nodes.Transform: "TRANSFORM (retired in 2022)",
    nodes.Preprocess: "PREPROCESS (retired in 2022; FUNCTION preprocess.video_to_df replaced it)",
}


@dataclass(frozen=True)
class Settings:
    """Where the session works and how; each has an environment variable (see ``from_env``)."""

    workspace: Path
    offline: bool = False
    device: str = "auto"
    datasets_manifest: Path | None = None
    thumbnail_size: int = 160
    progress: bool = True

    @classmethod
    def from_env(cls, workspace: str | os.PathLike | None = None, **overrides: Any) -> "Settings":
        """Settings from arguments, falling back to THANOSQL_* environment variables.

        >>> Settings.from_env("/tmp/ws", offline=True).offline
        True
        """
        env = os.environ
        root = workspace or env.get("THANOSQL_WORKSPACE") or os.getcwd()
        manifest = overrides.pop("datasets_manifest", None) or env.get("THANOSQL_DATASETS_MANIFEST")
        offline = overrides.pop("offline", None)
        if offline is None:
            offline = env.get("THANOSQL_OFFLINE", "").strip().lower() in ("1", "true", "yes")
        device = overrides.pop("device", None) or env.get("THANOSQL_DEVICE") or "auto"
        if device not in ("auto", "cpu", "cuda"):
            raise ThanoSQLError(
                f"unknown device {device!r}", hint="valid devices: auto, cpu, cuda"
            )
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
            **overrides,
        )


def _print_notice(obj: Any) -> None:
    print(obj if isinstance(obj, str) else repr(obj))


class Session:
    """One workspace and its database.

    >>> session = connect("/tmp/ws")
    >>> session.execute("SELECT 42 AS answer")
       answer
    0      42
    """

    def __init__(self, settings: Settings, notify: Callable[[Any], None] | None = None) -> None:
        self.settings = settings
        self.notify = notify or _print_notice
        settings.workspace.mkdir(parents=True, exist_ok=True)
        self.connection = duckdb.connect(str(settings.workspace / DATABASE_FILE))
        # Per-session caches that handlers own (loaded models, search indexes), by key.
        self.cache: dict[Any, Any] = {}
        # Bumped by every statement that may change data (anything but a query), so caches
        # built from table contents (search indexes) know when to rebuild. Writes made through
        # ``session.connection`` directly are not seen: use execute() or write_table().
        self.data_version = 0

    # -- running cells -------------------------------------------------------------------------

    def execute(self, text: str) -> pd.DataFrame | None:
        """Run every statement of ``text``; return the last one's rows (None if it has none)."""
        result = None
        for _statement, result in self.run(text):
            pass
        return result

    def run(self, text: str) -> Iterator[tuple[Any, pd.DataFrame | None]]:
        """Run the statements of ``text`` one by one, yielding each with its rows (or None).

        The whole text is parsed first, so a syntax error anywhere runs nothing.
        """
        try:
            statements = parse(text)
            for statement in statements:
                yield statement, self._run_statement(statement)
        except ThanoSQLError as exc:
            if exc.source is None:
                exc.source = text
            raise

    def _run_statement(self, statement) -> pd.DataFrame | None:
        the_plan = plan(statement)
        registered: list[str] = []
        try:
            answer = None
            for step in the_plan.steps:
                answer = self._run_step(step)
                if step.output is not None:
                    self.connection.register(step.output, _as_arrow(answer, step))
                    registered.append(step.output)
            if the_plan.sql is not None:
                return self._run_sql(the_plan.sql, statement)
            return self._finish(answer)
        finally:
            for name in registered:
                self.connection.unregister(name)

    def _run_step(self, step: Step) -> Any:
        statement = step.statement
        if type(statement) in UNSUPPORTED:
            raise PlanError(
                f"{UNSUPPORTED[type(statement)]} is not supported by this engine",
                span=statement.span,
                hint="thanosql runs the image and text search statements: GET, COPY, LIST, "
                "BUILD MODEL, FIT MODEL, UPLOAD MODEL, DELETE MODEL, CONVERT, SEARCH, PRINT",
            )
        module_name, function_name = HANDLERS[type(statement)].split(":")
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
        try:
            parsed = self.connection.extract_statements(sql)
            kinds = [s.expected_result_type for s in parsed]
            if not all(k and k[0] == duckdb.ExpectedResultType.QUERY_RESULT for k in kinds):
                self.data_version += 1
            relation = self.connection.execute(sql)
            frame = relation.df() if relation.description else None
        except duckdb.Error as exc:
            raise self.sql_error(exc, sql, statement) from exc
        if frame is None:
            return self._finish(None)
        rows_first = bool(kinds) and kinds[-1] and kinds[-1][0] == duckdb.ExpectedResultType.QUERY_RESULT
        if not rows_first and list(frame.columns) == ["Count"]:
            count = int(frame["Count"].iloc[0]) if len(frame) else 0
            return self._finish(f"Success ({count:,} row{'s' if count != 1 else ''})")
        return frame

    def sql_error(self, exc: duckdb.Error, sql: str, statement=None) -> ExecutionError:
        """A ThanoSQLError for a DuckDB error, pointing at ``statement``; with a hint when the
        statement begins with a misspelt ThanoSQL keyword."""
        message = str(exc).strip()
        hint = None
        span = getattr(statement, "span", None)
        first = sql.split(None, 1)[0].upper() if sql.strip() else ""
        near = closest(first, STATEMENT_KEYWORDS) if first not in STATEMENT_KEYWORDS else None
        if near and isinstance(statement, nodes.PassThrough) and not statement.nested:
            hint = f"did you mean the ThanoSQL statement {near}?"
        return ExecutionError(f"DuckDB could not run this statement: {message}", sql=sql, span=span, hint=hint)

    # -- services for handlers -----------------------------------------------------------------

    def query(self, sql: str, statement=None) -> pa.Table:
        """The rows of ``sql`` as a pyarrow Table, fully read (an unread result blocks the
        connection)."""
        try:
            return self.connection.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise self.sql_error(exc, sql, statement) from exc

    def columns(self, sql: str, statement=None) -> list[str]:
        """Column names of ``sql`` without reading its rows."""
        try:
            return list(self.connection.sql(sql).columns)
        except duckdb.Error as exc:
            raise self.sql_error(exc, sql, statement) from exc

    def write_table(self, name: str, rows: pa.Table | pd.DataFrame, if_exists: str = "replace") -> None:
        """Create, replace or append to table ``name`` in one transaction: a failure leaves the
        old table as it was."""
        con = self.connection
        self.data_version += 1
        con.register("__thanosql_incoming", rows)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                exists = self.table_exists(name)
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
                con.execute("ROLLBACK")
                raise
        except duckdb.Error as exc:
            raise ExecutionError(f"could not write table '{name}': {exc}") from exc
        finally:
            con.unregister("__thanosql_incoming")

    def table_exists(self, name: str) -> bool:
        # fetchall, not fetchone: an unread result blocks the connection (register() fails).
        rows = self.connection.execute(
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

    def model(self, name: str, span=None):
        """The loaded adapter of stored model ``name``, kept while the stored model is unchanged."""
        info = self.models.get(name, span=span)
        key = ("model", name, info.created, (info.path / "model.json").stat().st_mtime_ns)
        if key not in self.cache:
            for old in [k for k in self.cache if isinstance(k, tuple) and k[:2] == ("model", name)]:
                del self.cache[old]
            from .models import load_adapter

            self.cache[key] = load_adapter(info, device=self.settings.device)
        return self.cache[key]

    def progress(self, iterable=None, **kwargs):
        """A tqdm progress bar (the notebook widget in Jupyter), silenced by settings.progress."""
        from tqdm.auto import tqdm

        kwargs.setdefault("disable", not self.settings.progress)
        kwargs.setdefault("file", sys.stderr)
        return tqdm(iterable, **kwargs)

    def configure(self, **changes: Any) -> None:
        """Change settings; a new workspace reopens the database there."""
        settings = replace(self.settings, **changes)
        if settings.workspace != self.settings.workspace:
            self.connection.close()
            settings.workspace.mkdir(parents=True, exist_ok=True)
            self.connection = duckdb.connect(str(settings.workspace / DATABASE_FILE))
            self.cache.clear()
        self.settings = settings

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


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

    >>> session = connect("/tmp/ws", offline=True)
    >>> session.execute("CREATE TABLE t AS SELECT 1 AS x")
    Success
    """
    notify = settings.pop("notify", None)
    return Session(Settings.from_env(workspace, **settings), notify=notify)
