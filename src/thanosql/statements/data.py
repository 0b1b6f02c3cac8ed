"""Handlers of the workspace-data statements: GET THANOSQL DATASET, COPY and LIST.

GET installs a manifest dataset into ``thanosql-dataset/<name>/`` (datasets.download); COPY reads
a file (CSV, Parquet, JSON, pickle, Excel), a folder of media files, or JSON records written in
the statement, into a table through ``session.write_table`` (one transaction); LIST returns the
catalogues as rows, so ``SELECT * FROM (LIST TABLE)`` works like any derived table.
"""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import DatasetError, PlanError, ThanoSQLError

# ------------------------------------------------------------------------------------- GET


def get_dataset(session, step) -> str | None:
    """``GET THANOSQL DATASET name [OPTIONS (overwrite=...)]``: None ("Success") once the
    dataset is in place, or a message when it already was and overwrite is False."""
    from ..datasets.download import install
    from ..datasets.manifest import load_manifest

    statement = step.statement
    try:
        manifest = load_manifest(session.settings.datasets_manifest)
        spec = manifest.get(statement.name, span=statement.span)
        return install(
            spec,
            manifest,
            session.dataset_dir,
            overwrite=bool(step.options.get("overwrite")),
            offline=session.settings.offline,
            progress=session.progress,
            notify=session.notify,
        )
    except ThanoSQLError as exc:
        if exc.span is None:
            exc.span = statement.span
        raise


# ------------------------------------------------------------------------------------- COPY

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
MEDIA_COLUMNS = {"image_path": IMAGE_SUFFIXES, "audio_path": AUDIO_SUFFIXES, "video_path": VIDEO_SUFFIXES}
FORMATS_BY_SUFFIX = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".csv.gz": "csv", ".tsv.gz": "csv",
    ".parquet": "parquet", ".pqt": "parquet",
    ".json": "json", ".jsonl": "json", ".ndjson": "json", ".json.gz": "json",
    ".pkl": "pickle", ".pickle": "pickle",
    ".xls": "excel", ".xlsx": "excel", ".xlsm": "excel", ".xlsb": "excel",
}


def copy(session, step) -> None:
    """``COPY table [OPTIONS (if_exists=..., format=...)] FROM 'file' | 'folder/' | '<json>'``.

    Replaces or appends in one transaction: a failure (unreadable file, rows that do not fit
    the table) leaves the old table as it was.
    """
    statement = step.statement
    if_exists = step.options.get("if_exists") or "fail"
    if if_exists == "fail" and session.table_exists(statement.table):
        raise PlanError(
            f"table '{statement.table}' already exists",
            span=statement.span,
            hint="add OPTIONS (if_exists='replace') to replace it, or 'append' to add rows",
        )
    try:
        rows = read_source(session, statement.source, step.options.get("format"))
        session.write_table(statement.table, rows, if_exists)
    except ThanoSQLError as exc:
        if exc.span is None:
            exc.span = statement.span
        raise
    return None


def read_source(session, source: str, fmt: str | None = None) -> pa.Table:
    """The rows of a COPY source, as a pyarrow Table.

    >>> read_source(session, "thanosql-dataset/mnist_data/mnist_test.csv").num_rows
    200
    """
    text = source.strip()
    if text[:1] in ("[", "{"):
        return _read_json_text(text)
    path = session.resolve_path(source)
    if not path.exists():
        raise DatasetError(f"no such file or folder: {path}", hint=_missing_hint(session, source, path))
    if path.is_dir():
        return read_media_folder(path, session.workspace)
    kind = fmt or _format_of(path)
    reader = {"csv": _read_csv, "parquet": _read_parquet, "json": _read_json_file,
              "pickle": _read_pickle, "excel": _read_excel}[kind]
    return reader(session, path)


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in sorted(FORMATS_BY_SUFFIX.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return kind
    raise DatasetError(
        f"cannot tell the format of {path.name}",
        hint="COPY reads .csv, .tsv, .parquet, .json, .jsonl, .pkl, .xlsx files and folders of "
        "images; or say OPTIONS (format='csv'|'parquet'|'json'|'pickle'|'excel')",
    )


def _missing_hint(session, source: str, path: Path) -> str:
    parts = Path(source).parts
    if len(parts) >= 2 and parts[0] == "thanosql-dataset" and not (session.dataset_dir / parts[1]).exists():
        return f"dataset '{parts[1]}' is not in this workspace yet: run GET THANOSQL DATASET {parts[1]} first"
    return f"relative paths start at the workspace, {session.workspace}"


def _duckdb_read(session, path: Path, function: str, what: str, retry: str | None = None) -> pa.Table:
    # The path goes in as a parameter, never pasted into the SQL text.
    connection = session.connection
    try:
        return connection.sql(f"SELECT * FROM {function}($path)", params={"path": str(path)}).to_arrow_table()
    except duckdb.Error as exc:
        if retry is None:
            raise DatasetError(f"cannot read {what} {path}: {_first_line(exc)}") from exc
        first = exc
    try:
        # Type detection samples the first rows; a later value of another type needs all of them.
        return connection.sql(f"SELECT * FROM {function}($path, {retry})", params={"path": str(path)}).to_arrow_table()
    except duckdb.Error as exc:
        raise DatasetError(f"cannot read {what} {path}: {_first_line(first)}") from exc


def _read_csv(session, path: Path) -> pa.Table:
    return _duckdb_read(session, path, "read_csv_auto", "CSV file", retry="sample_size=-1")


def _read_parquet(session, path: Path) -> pa.Table:
    return _duckdb_read(session, path, "read_parquet", "Parquet file")


def _read_json_file(session, path: Path) -> pa.Table:
    return _duckdb_read(session, path, "read_json_auto", "JSON file", retry="sample_size=-1")


def _read_pickle(session, path: Path) -> pa.Table:
    # A pickle runs code when read: COPY reads the user's own files, as the original did.
    import pandas as pd

    try:
        frame = pd.read_pickle(path)
    except Exception as exc:  # unpickling can raise anything the pickled objects raise
        raise DatasetError(f"cannot read pickle file {path}: {exc}") from exc
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise DatasetError(f"{path.name} holds a {type(frame).__name__}, not a pandas DataFrame",
                           hint="pickle a DataFrame (df.to_pickle(path)) to COPY it")
    return _frame_to_arrow(frame, path.name)


EXCEL_ENGINES = {".xlsx": "openpyxl", ".xlsm": "openpyxl", ".xls": "xlrd", ".xlsb": "pyxlsb"}


def _read_excel(session, path: Path) -> pa.Table:
    import importlib.util
    import zipfile

    import pandas as pd

    # pandas reads Excel through optional packages; say which one is missing before it fails
    # somewhere inside.
    engine = EXCEL_ENGINES.get(path.suffix.lower(), "openpyxl")
    if importlib.util.find_spec(engine) is None:
        raise DatasetError(
            f"reading {path.name} needs the package {engine}, which is not installed",
            hint=f"pip install {engine}, or save the sheet as CSV and COPY that",
        )
    try:
        frame = pd.read_excel(path, engine=engine)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"cannot read Excel file {path}: {exc}") from exc
    return _frame_to_arrow(frame, path.name)


def _frame_to_arrow(frame, what: str) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    # Cells holding numpy arrays of any shape (the original's pickled images): nested lists.
    import numpy as np

    converted = frame.copy()
    for column in converted.columns:
        if converted[column].dtype == object:
            converted[column] = converted[column].map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    try:
        return pa.Table.from_pandas(converted, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise DatasetError(f"cannot store the columns of {what} in a table: {exc}") from exc


def _read_json_text(text: str) -> pa.Table:
    """JSON records spliced into the statement (a DataFrame's ``to_json(orient="records")``)."""
    import pandas as pd

    try:
        records = json.loads(text)
    except ValueError as exc:
        raise DatasetError(
            f"the COPY source looks like JSON but is not valid JSON: {exc}",
            hint="paste df.to_json(orient='records'), or give the path of a file",
        ) from exc
    if isinstance(records, dict):
        if records and all(isinstance(v, dict) for v in records.values()):
            # The default orient of DataFrame.to_json: {"column": {"0": value, ...}, ...}.
            return _frame_to_arrow(pd.read_json(io.StringIO(text), orient="columns"), "the JSON text")
        records = [records]
    if not all(isinstance(r, dict) for r in records):
        raise DatasetError("JSON text after COPY ... FROM must be a list of records (objects)",
                           hint="write it with df.to_json(orient='records')")
    if not records:
        raise DatasetError("the JSON text after COPY ... FROM holds no records", hint="a table needs at least one row")
    frame = pd.DataFrame.from_records(records)
    return _frame_to_arrow(frame, "the JSON records")


def read_media_folder(folder: Path, workspace: Path) -> pa.Table:
    """One row per image (or audio, or video) file under ``folder``, in path order.

    >>> read_media_folder(Path("/ws/thanosql-dataset/diet_data/diet"), Path("/ws")).column_names
    ['image_path', 'filename', 'label']

    Columns: ``image_path`` (``audio_path``, ``video_path`` for those media), relative to the
    workspace when the file is inside it, else absolute; ``filename``; and ``label``, the name
    of the sub-folder a file sits in, when every file sits in a sub-folder (one folder per
    class, as torchvision's ImageFolder reads them).
    """
    found: dict[str, list[Path]] = {column: [] for column in MEDIA_COLUMNS}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            suffix = os.path.splitext(name)[1].lower()
            for column, suffixes in MEDIA_COLUMNS.items():
                if suffix in suffixes and not name.startswith("."):
                    found[column].append(Path(root) / name)
    kinds = {column: paths for column, paths in found.items() if paths}
    if not kinds:
        raise DatasetError(
            f"no image, audio or video files in {folder}",
            hint="COPY from a folder reads " + ", ".join(IMAGE_SUFFIXES + AUDIO_SUFFIXES + VIDEO_SUFFIXES),
        )
    if len(kinds) > 1:
        counts = ", ".join(f"{len(paths):,} {column.split('_')[0]}" for column, paths in kinds.items())
        raise DatasetError(f"{folder} mixes media kinds ({counts} files)",
                           hint="put each kind in a folder of its own and COPY them one by one")
    column, paths = next(iter(kinds.items()))
    paths.sort(key=lambda p: p.relative_to(folder).as_posix())
    relative = [p.relative_to(folder) for p in paths]
    data: dict[str, Any] = {
        column: [_table_path(p, workspace) for p in paths],
        "filename": [p.name for p in paths],
    }
    if all(len(r.parts) > 1 for r in relative):
        data["label"] = [r.parts[0] for r in relative]
    return pa.table(data)


def _table_path(path: Path, workspace: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path(os.path.abspath(workspace))).as_posix()
    except ValueError:
        return absolute.as_posix()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n")[0]


# ------------------------------------------------------------------------------------- LIST

# The class names the original product showed (DIALECT.md §5): CLIPEn, SimCLR, User_PyTorch.
CLASS_NAMES = {"clip": "CLIPEn", "simclr": "SimCLR", "pytorch": "User_PyTorch"}
MODEL_SCHEMA = pa.schema([
    ("name", pa.string()), ("class_name", pa.string()), ("last_updated_utc", pa.timestamp("s")),
    ("arch", pa.string()), ("embedding_dim", pa.int32()),
])
PRETRAINED_SCHEMA = pa.schema([
    ("name", pa.string()), ("class_name", pa.string()), ("last_updated_utc", pa.timestamp("s")),
    ("description", pa.string()),
])
DATASET_SCHEMA = pa.schema([
    ("dataset_name", pa.string()), ("data_type", pa.string()), ("description", pa.string()),
    ("builtin", pa.bool_()), ("downloaded", pa.bool_()),
])
TABLE_SCHEMA = pa.schema([("table_name", pa.string())])


def list_objects(session, step) -> pa.Table:
    """``LIST MODEL | TABLE | THANOSQL MODEL | THANOSQL DATASET``: the catalogue as rows.

    Columns: models ``name, class_name, last_updated_utc, arch, embedding_dim``; pre-built
    models ``name, class_name, last_updated_utc (NULL), description``; datasets
    ``dataset_name, data_type, description, builtin, downloaded``; tables ``table_name``.
    """
    what = step.statement.what
    if what == "table":
        return _list_tables(session)
    if what == "model":
        return _list_models(session)
    if what == "thanosql model":
        return _list_pretrained()
    if what == "thanosql dataset":
        return _list_datasets(session, step.statement)
    raise PlanError(f"LIST {what.upper()} is not a catalogue", span=step.statement.span,
                    hint="LIST MODEL, LIST TABLE, LIST THANOSQL MODEL or LIST THANOSQL DATASET")


def _list_tables(session) -> pa.Table:
    rows = session.connection.execute(
        "SELECT CASE WHEN schema_name = 'main' THEN table_name ELSE schema_name || '.' || table_name END "
        "FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary AND NOT internal "
        "ORDER BY schema_name <> 'main', schema_name, table_name"
    ).fetchall()
    return pa.table({"table_name": [r[0] for r in rows]}, schema=TABLE_SCHEMA)


def _list_models(session) -> pa.Table:
    infos = session.models.list()
    return pa.table(
        {
            "name": [i.name for i in infos],
            "class_name": [CLASS_NAMES.get(i.family, i.family) for i in infos],
            "last_updated_utc": [_utc(i.created) for i in infos],
            "arch": [i.arch for i in infos],
            "embedding_dim": [i.embedding_dim for i in infos],
        },
        schema=MODEL_SCHEMA,
    )


def _list_pretrained() -> pa.Table:
    from ..models.catalog import list_pretrained

    rows = [dict(row) if isinstance(row, dict) else dict(zip(("name", "class_name", "description"), row))
            for row in list_pretrained()]
    return pa.table(
        {
            "name": [r["name"] for r in rows],
            "class_name": [r.get("class_name") for r in rows],
            "last_updated_utc": [None] * len(rows),
            "description": [r.get("description") for r in rows],
        },
        schema=PRETRAINED_SCHEMA,
    )


def _list_datasets(session, statement) -> pa.Table:
    from ..datasets.download import is_installed
    from ..datasets.manifest import load_manifest

    try:
        manifest = load_manifest(session.settings.datasets_manifest)
    except ThanoSQLError as exc:
        exc.span = exc.span or statement.span
        raise
    specs = list(manifest.datasets.values())
    return pa.table(
        {
            "dataset_name": [s.name for s in specs],
            "data_type": [s.data_type for s in specs],
            "description": [s.description for s in specs],
            "builtin": [s.builtin is not None for s in specs],
            "downloaded": [is_installed(session.dataset_dir, s.name) for s in specs],
        },
        schema=DATASET_SCHEMA,
    )


def _utc(text: str) -> datetime | None:
    """model.json's ISO time as a naive UTC datetime (DuckDB TIMESTAMP)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
