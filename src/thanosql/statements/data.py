"""Handlers of the workspace-data statements: GET THANOSQL DATASET, COPY and LIST.

GET installs a manifest dataset into ``thanosql-dataset/<name>/`` (datasets.download); COPY reads
a file (CSV, Parquet, JSON, pickle, Excel), a folder of media files, or JSON records written in
the statement, into a table through ``session.write_table`` (one transaction); LIST returns the
catalogues as rows, so ``SELECT * FROM (LIST TABLE)`` works like any derived table.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import DatasetError, PlanError, ThanoSQLError
from ..stores import FolderStore, check_name

# ------------------------------------------------------------------------------------- GET


def get_dataset(session, step) -> str | None:
    """``GET THANOSQL DATASET name [OPTIONS (overwrite=...)]``: None ("Success") once the
    dataset is in place, or a message when it already was and overwrite is False.

    The name is a name, never a path (``"../x"`` is a PlanError before anything is read), and
    the folder it resolves to is checked to lie inside thanosql-dataset/ (DESIGN.md 15).
    """
    from ..datasets.download import install
    from ..datasets.manifest import load_manifest

    statement = step.statement
    check_name(statement.name, "dataset", statement.span)
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
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".csv.gz": "csv",
    ".tsv.gz": "csv",
    ".parquet": "parquet",
    ".pqt": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json.gz": "json",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".xls": "excel",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xlsb": "excel",
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

    >>> read_source(session, "thanosql-dataset/mnist_data/mnist_test.csv").num_rows  # doctest: +SKIP
    200

    Files are read through a private in-memory DuckDB connection, never the workspace's: the
    workspace database is opened only to write the rows (session.write_table).
    """
    text = source.strip()
    if text[:1] in ("[", "{"):
        return _read_json_text(text)
    path = session.resolve_path(source)
    with _dataset_held(session, path):
        if not path.exists():
            raise DatasetError(f"no such file or folder: {path}", hint=_missing_hint(session, source, path))
        if path.is_dir():
            return read_media_folder(path, session.workspace)
        kind = fmt or _format_of(path)
        reader = {
            "csv": _read_csv,
            "parquet": _read_parquet,
            "json": _read_json_file,
            "pickle": _read_pickle,
            "excel": _read_excel,
        }[kind]
        return reader(path)


@contextmanager
def _dataset_held(session, path: Path) -> Iterator[None]:
    # A file of thanosql-dataset/ is read under the store's shared lock, so that a GET ... overwrite
    # in another process cannot swap the dataset while COPY is half-way through its folder.
    dataset_dir = Path(os.path.abspath(session.dataset_dir))
    with ExitStack() as stack:
        if Path(os.path.abspath(path)).is_relative_to(dataset_dir):
            try:
                stack.enter_context(FolderStore(dataset_dir, "dataset").reading())
            except OSError:
                pass  # a read-only store (a shared, mounted folder) has no writer to wait for
        yield


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
    if (
        len(parts) >= 2
        and parts[0] == "thanosql-dataset"
        and _is_name(parts[1])
        and not (session.dataset_dir / parts[1]).exists()
    ):
        return f"dataset '{parts[1]}' is not in this workspace yet: run GET THANOSQL DATASET {parts[1]} first"
    return f"relative paths start at the workspace, {session.workspace}"


def _is_name(text: str) -> bool:
    try:
        check_name(text, "dataset")
    except PlanError:
        return False
    return True


def _scan(connection, function: str, path: Path, extra: str = "") -> pa.Table:
    # The path goes in as a parameter, never pasted into the SQL text.
    return connection.sql(f"SELECT * FROM {function}($path{extra})", params={"path": str(path)}).to_arrow_table()


def _read_csv(path: Path) -> pa.Table:
    _refuse_blank(path, "CSV")
    with duckdb.connect() as connection:
        try:
            table = _scan(connection, "read_csv_auto", path)
        except duckdb.Error as first:
            _refuse_bad_text(path, "CSV", first)
            _refuse_ragged_rows(path, None, first)
            try:
                # Type detection samples the first rows; a later value of another type needs all.
                table = _scan(connection, "read_csv_auto", path, ", sample_size=-1")
            except duckdb.Error:
                raise DatasetError(f"cannot read CSV file {path}: {_first_line(first)}") from first
        suspect = _suspect_delimiter(connection, path, table)
    if suspect is not None:
        _refuse_ragged_rows(path, suspect)
    return table


def _suspect_delimiter(connection, path: Path, table: pa.Table) -> str | None:
    """The delimiter to count the fields of each line with, when DuckDB's reading hints that
    the counts differ; None when nothing does.

    DuckDB's sniffer makes a file whose lines have different numbers of fields consistent in one
    of two ways: it reads it as one column of whole lines, or it skips its first lines as if they
    were a preamble (SkipRows). Both lose the table silently.
    """
    if table.num_columns == 1:
        name = table.column_names[0]
        found = [d for d in CSV_DELIMITERS if d in name]
        return max(found, key=name.count) if found else None  # no delimiter: a one-column file
    try:
        # fetchall, not fetchone: an unfinished result blocks the connection.
        [(delimiter, skipped)] = connection.execute(
            "SELECT Delimiter, SkipRows FROM sniff_csv($path)", {"path": str(path)}
        ).fetchall()
    except duckdb.Error:
        return None
    if not skipped:
        return None
    # A real preamble ("Exported on ...") is prose; skipped lines holding the delimiter are rows.
    with _open_text_bytes(path) as handle:
        preamble = [handle.readline().decode("utf-8", "replace") for _ in range(skipped)]
    return delimiter if any(delimiter in line for line in preamble) else None


def _read_parquet(path: Path) -> pa.Table:
    with duckdb.connect() as connection:
        try:
            return _scan(connection, "read_parquet", path)
        except duckdb.Error as exc:
            raise DatasetError(f"cannot read Parquet file {path}: {_first_line(exc)}") from exc


def _read_json_file(path: Path) -> pa.Table:
    _refuse_blank(path, "JSON")
    with duckdb.connect() as connection:
        try:
            return _scan(connection, "read_json_auto", path)
        except duckdb.Error as first:
            _refuse_bad_text(path, "JSON", first)
            try:
                return _scan(connection, "read_json_auto", path, ", sample_size=-1")
            except duckdb.Error:
                raise DatasetError(f"cannot read JSON file {path}: {_first_line(first)}") from first


# Delimiters DuckDB's CSV sniffer tries (https://duckdb.org/docs/data/csv/auto_detection).
CSV_DELIMITERS = (",", "\t", ";", "|")


def _refuse_ragged_rows(path: Path, delimiter: str | None, cause: Exception | None = None) -> None:
    """A DatasetError naming the first line whose number of fields differs from the header's.

    ``delimiter``: the one to split lines with (and no line skipped), or None for DuckDB's own
    guess. DuckDB itself finds the bad lines: with ``store_rejects`` it lists them in the
    ``reject_errors`` table (https://duckdb.org/docs/data/csv/reading_faulty_csv_files).
    """
    options = ", store_rejects=true" + (", delim=$delim, skip=0" if delimiter else "")
    params = {"path": str(path)} | ({"delim": delimiter} if delimiter else {})
    with duckdb.connect() as connection:
        try:
            relation = connection.sql(f"SELECT * FROM read_csv($path{options})", params=params)
            expected = len(relation.columns)
            relation.aggregate("count(*)").fetchall()  # the rejects are recorded as it runs
            rows = connection.execute(
                "SELECT line, error_message FROM reject_errors "
                "WHERE error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS') ORDER BY line"
            ).fetchall()
        except duckdb.Error:
            return  # not a problem of field counts: the caller reports DuckDB's own error
    if not rows:
        return
    line, message = rows[0]
    counts = re.search(r"Found: (\d+)", message or "")
    found = counts.group(1) if counts else "another number of"
    others = f" ({len(rows):,} lines in all have a different number)" if len(rows) > 1 else ""
    shown = {"\t": "tab", None: ","}.get(delimiter, delimiter)
    raise DatasetError(
        f"cannot read CSV file {path}: line {line} has {found} fields where {expected} are expected{others}",
        hint=f"fix the file so that every line has {expected} fields, or put double quotes around "
        f"fields that hold the delimiter ({shown!r})",
    ) from cause


def _refuse_blank(path: Path, kind: str) -> None:
    # DuckDB reads an empty file as a table of one column named column0 (json for JSON) and no
    # rows: refuse it rather than make that table.
    try:
        with _open_text_bytes(path) as handle:
            while chunk := handle.read(1 << 16):
                if chunk.strip():
                    return
    except (OSError, EOFError):
        return  # unreadable (say, a damaged .gz): DuckDB's error says so
    raise DatasetError(
        f"cannot read {kind} file {path}: the file is empty",
        hint="a CSV file needs at least a header line naming the columns"
        if kind == "CSV"
        else "a JSON file needs at least one record",
    )


def _refuse_bad_text(path: Path, kind: str, cause: Exception) -> None:
    """A DatasetError naming the position of the first bytes that are not UTF-8, if any."""
    try:
        bad = _first_invalid_utf8(path)
    except (OSError, EOFError):
        return  # unreadable (say, a damaged .gz): DuckDB's error says so
    if bad is None:
        return
    line, column, offset, sample = bad
    if kind == "CSV":
        with _open_text_bytes(path) as handle:
            utf16 = handle.read(2) in (b"\xff\xfe", b"\xfe\xff")  # UTF-16's byte-order marks
        encoding = "utf-16" if utf16 else "latin-1"
        quoted = str(path).replace("'", "''")
        hint = (
            f"save the file as UTF-8, or read it with DuckDB, which decodes other encodings: "
            f"CREATE TABLE t AS SELECT * FROM read_csv('{quoted}', encoding='{encoding}')"
        )
    else:
        hint = "JSON files are UTF-8 (RFC 8259): save it as UTF-8, e.g. iconv -f latin1 -t utf-8 in.json > out.json"
    raise DatasetError(
        f"cannot read {kind} file {path}: it is not UTF-8 text: line {line}, column {column} "
        f"(byte {offset:,}) holds {sample.hex(' ')}",
        hint=hint,
    ) from cause


def _first_invalid_utf8(path: Path) -> tuple[int, int, int, bytes] | None:
    """``(line, column, byte offset, bytes)`` of the first sequence that is not UTF-8, or None.
    Lines and columns count from 1; the column counts bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, line_start = 0, 1, 0
    with _open_text_bytes(path) as handle:
        while True:
            chunk = handle.read(1 << 20)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                before = chunk[: max(0, at - offset)]
                line += before.count(b"\n")
                if b"\n" in before:
                    line_start = offset + before.rindex(b"\n") + 1
                return line, at - line_start + 1, at, exc.object[exc.start : exc.end]
            if not chunk:
                return None
            line += chunk.count(b"\n")
            if b"\n" in chunk:
                line_start = offset + chunk.rindex(b"\n") + 1
            offset += len(chunk)


def _open_text_bytes(path: Path):
    """The file's bytes, decompressed when it is a .gz file (DuckDB reads those as they are)."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _read_pickle(path: Path) -> pa.Table:
    # A pickle runs code when read: COPY reads the user's own files, as the original did.
    import pandas as pd

    try:
        frame = pd.read_pickle(path)
    except Exception as exc:  # unpickling can raise anything the pickled objects raise
        raise DatasetError(f"cannot read pickle file {path}: {exc}") from exc
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise DatasetError(
            f"{path.name} holds a {type(frame).__name__}, not a pandas DataFrame",
            hint="pickle a DataFrame (df.to_pickle(path)) to COPY it",
        )
    return _frame_to_arrow(frame, path.name)


EXCEL_ENGINES = {".xlsx": "openpyxl", ".xlsm": "openpyxl", ".xls": "xlrd", ".xlsb": "pyxlsb"}


def _read_excel(path: Path) -> pa.Table:
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
        raise DatasetError(
            "JSON text after COPY ... FROM must be a list of records (objects)",
            hint="write it with df.to_json(orient='records')",
        )
    if not records:
        raise DatasetError("the JSON text after COPY ... FROM holds no records", hint="a table needs at least one row")
    frame = pd.DataFrame.from_records(records)
    return _frame_to_arrow(frame, "the JSON records")


def read_media_folder(folder: Path, workspace: Path) -> pa.Table:
    """One row per image (or audio, or video) file under ``folder``, in path order.

    >>> read_media_folder(Path("/ws/thanosql-dataset/diet_data/diet"), Path("/ws")).column_names  # doctest: +SKIP
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
        raise DatasetError(
            f"{folder} mixes media kinds ({counts} files)",
            hint="put each kind in a folder of its own and COPY them one by one",
        )
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
MODEL_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("class_name", pa.string()),
        ("last_updated_utc", pa.timestamp("s")),
        ("arch", pa.string()),
        ("embedding_dim", pa.int32()),
        ("status", pa.string()),
    ]
)
# No time column: a catalogue entry has no creation time (it showed as a column of NaT).
PRETRAINED_SCHEMA = pa.schema([("name", pa.string()), ("class_name", pa.string()), ("description", pa.string())])
DATASET_SCHEMA = pa.schema(
    [
        ("dataset_name", pa.string()),
        ("data_type", pa.string()),
        ("description", pa.string()),
        ("builtin", pa.bool_()),
        ("downloaded", pa.bool_()),
    ]
)
TABLE_SCHEMA = pa.schema([("table_name", pa.string())])


def list_objects(session, step) -> pa.Table:
    """``LIST MODEL | TABLE | THANOSQL MODEL | THANOSQL DATASET``: the catalogue as rows.

    Columns: models ``name, class_name, last_updated_utc, arch, embedding_dim``; pre-built
    models ``name, class_name, description``; datasets
    ``dataset_name, data_type, description, builtin, downloaded``; tables ``table_name``.
    """
    what = step.statement.what
    if what == "table":
        return _list_tables(session)
    if what == "model":
        return _list_models(session)
    if what == "thanosql model":
        if step.output is None:  # shown to the user, not read by an outer query
            session.notify(_catalogue_notice(session))
        return _list_pretrained()
    if what == "thanosql dataset":
        return _list_datasets(session, step.statement)
    raise PlanError(
        f"LIST {what.upper()} is not a catalogue",
        span=step.statement.span,
        hint="LIST MODEL, LIST TABLE, LIST THANOSQL MODEL or LIST THANOSQL DATASET",
    )


def _list_tables(session) -> pa.Table:
    with session.connect() as connection:
        rows = connection.execute(
            "SELECT CASE WHEN schema_name = 'main' THEN table_name ELSE schema_name || '.' || table_name END "
            "FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary AND NOT internal "
            "ORDER BY schema_name <> 'main', schema_name, table_name"
        ).fetchall()
    return pa.table({"table_name": [r[0] for r in rows]}, schema=TABLE_SCHEMA)


def _list_models(session) -> pa.Table:
    """Every stored model; one whose model.json cannot be read is listed with its name and a
    ``status`` saying what is wrong (DELETE MODEL removes it), the rest with status 'ok'."""
    store = session.models
    infos = {info.name: info for info in store.list()}
    damaged = store.damaged()
    names = sorted([*infos, *damaged])
    rows = [infos.get(name) for name in names]
    return pa.table(
        {
            "name": names,
            "class_name": [CLASS_NAMES.get(i.family, i.family) if i else None for i in rows],
            "last_updated_utc": [_utc(i.created) if i else None for i in rows],
            "arch": [i.arch if i else None for i in rows],
            "embedding_dim": [i.embedding_dim if i else None for i in rows],
            "status": ["ok" if i else f"damaged: {damaged[name]}" for name, i in zip(names, rows)],
        },
        schema=MODEL_SCHEMA,
    )


def _list_pretrained() -> pa.Table:
    from ..models.catalog import list_pretrained

    rows = [
        dict(row) if isinstance(row, dict) else dict(zip(("name", "class_name", "description"), row))
        for row in list_pretrained()
    ]
    return pa.table(
        {
            "name": [r["name"] for r in rows],
            "class_name": [r.get("class_name") for r in rows],
            "description": [r.get("description") for r in rows],
        },
        schema=PRETRAINED_SCHEMA,
    )


def _catalogue_notice(session) -> str:
    """What LIST THANOSQL MODEL lists, and where the user's own models are (issue 13: a user
    looked for a model they had built in the catalogue)."""
    own = len(session.models.list())
    yours = f"this workspace has {own} model{'s' if own != 1 else ''} of its own" if own else "none yet"
    return (
        "The pre-built models that GET THANOSQL MODEL can fetch. "
        f"Models built, fetched or uploaded into this workspace are listed by LIST MODEL ({yours})."
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
