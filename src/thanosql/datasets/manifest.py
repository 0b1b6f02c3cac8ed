"""Read a datasets manifest: the datasets GET THANOSQL DATASET knows and how to make each one.

``load_manifest(path)`` reads the YAML file (None: the bundled datasets_manifest.yaml), checks
every entry and returns a ``Manifest``; anything wrong is a DatasetError naming the file and the
key (``datasets.mnist_data.files[0].sha256``). The format is an interface users write to
(THANOSQL_DATASETS_MANIFEST); FORMAT below is its reference.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import DatasetError, PlanError, choices_hint
from ..stores import check_name

FORMAT = """\
version: 1                          # optional; 1 is the only version
datasets:
  <name>:                           # lands in <workspace>/thanosql-dataset/<name>/
    description: text               # required
    license: text                   # required: the data's licence, and whose it is
    source: text                    # where the data comes from (a URL or a sentence)
    data_type: image                # image | tabular | text | audio | video (LIST shows it)
    files:                          # required unless builtin: downloaded and checked in order
      - url: https://host/data.zip  # http(s), file://, or a path relative to the manifest
        sha256: <64 hex digits>     # or null, with `unverified: <why>` saying why
        size: 1234                  # bytes, or null
        name: data.zip              # optional: file name (default: last part of the URL)
        mirrors: [https://...]      # optional: tried in order when url cannot be fetched
        strip_components: 0         # optional: leading folders dropped when unpacking
        unpacked_size: 5678         # optional, archives: bytes of the unpacked contents; GET
                                    # stops past it (without it: past 100x the archive's size)
    builtin: digits                 # instead of files: generated locally (works offline)
    prepare: mnist                  # optional, with files: turns them into the final layout
    options: {train: 1000}          # keyword arguments of the builtin generator or recipe
    tables:                         # the CSV files the dataset holds; checked after GET
      <table>: {file: t.csv, columns: [image_path, label]}
    alternative: digits_data        # a built-in dataset to offer when this one cannot be fetched
An archive (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) is unpacked so that its contents land
directly in thanosql-dataset/<name>/; any other file is placed there as is. With `prepare`, the
files are unpacked into a scratch folder instead and the recipe writes the dataset's files.
"""

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
DATA_TYPES = ("image", "tabular", "text", "audio", "video")
ENTRY_KEYS = (
    "description",
    "license",
    "source",
    "data_type",
    "files",
    "builtin",
    "prepare",
    "options",
    "tables",
    "alternative",
)
FILE_KEYS = ("url", "sha256", "size", "name", "mirrors", "strip_components", "unverified", "unpacked_size")
TABLE_KEYS = ("file", "columns")
# A dataset name becomes a folder name: keep it to characters that are safe everywhere.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileSpec:
    """One file to download: where from, what it must hash to, and what to call it."""

    url: str
    sha256: str | None
    size: int | None
    name: str
    mirrors: tuple[str, ...] = ()
    strip_components: int = 0
    unverified: str | None = None
    unpacked_size: int | None = None  # archives: bytes unpacking may write (a bomb stops there)

    @property
    def is_archive(self) -> bool:
        return self.name.lower().endswith(ARCHIVE_SUFFIXES)

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)


@dataclass(frozen=True)
class TableSpec:
    """A CSV file of the dataset that COPY turns into a table, and the columns it must have."""

    name: str
    file: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """One manifest entry (see FORMAT)."""

    name: str
    description: str
    license: str
    source: str = ""
    data_type: str | None = None
    files: tuple[FileSpec, ...] = ()
    builtin: str | None = None
    prepare: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[TableSpec, ...] = ()
    alternative: str | None = None

    @property
    def needs_network(self) -> bool:
        """True when getting it opens a network connection (any http or https file)."""
        return any(urlsplit(url).scheme in ("http", "https") for f in self.files for url in f.urls)


@dataclass(frozen=True)
class Manifest:
    """The datasets of one manifest file, by name, in the file's order."""

    path: Path
    datasets: Mapping[str, DatasetSpec]

    def get(self, name: str, span=None) -> DatasetSpec:
        """The entry ``name``; a DatasetError listing the known names if there is none.

        >>> load_manifest().get("digits_data").builtin
        'digits'
        """
        if name in self.datasets:
            return self.datasets[name]
        lowered = {key.lower(): key for key in self.datasets}
        if name.lower() in lowered:
            return self.datasets[lowered[name.lower()]]
        raise DatasetError(
            f"no dataset named '{name}' in {self.path}",
            span=span,
            hint=choices_hint(name, list(self.datasets), "datasets"),
        )

    def builtin_names(self) -> list[str]:
        """Datasets generated locally, which GET makes without a network."""
        return [name for name, spec in self.datasets.items() if spec.builtin]


def bundled_manifest_path() -> Path:
    """The manifest shipped inside the package (src/thanosql/datasets_manifest.yaml)."""
    return Path(__file__).resolve().parent.parent / "datasets_manifest.yaml"


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and check a manifest.

    >>> sorted(load_manifest().datasets)[:2]
    ['digits_data', 'mnist_data']

    Raises DatasetError naming the file and key of the first problem found.
    """
    import yaml

    path = Path(path).expanduser() if path is not None else bundled_manifest_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(
            f"cannot read the datasets manifest {path}: {exc.strerror or exc}",
            hint="THANOSQL_DATASETS_MANIFEST (or connect(datasets_manifest=...)) names the file",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from exc
    return parse_manifest(data, path)


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Check already-loaded manifest data (what ``yaml.safe_load`` returned for ``path``)."""
    checker = _Checker(path)
    top = checker.mapping(data, "the top level", ("version", "datasets"))
    version = top.get("version", 1)
    if version != 1:
        checker.fail("version", f"unsupported version {version!r}", "this thanosql reads version 1")
    entries = checker.mapping(top.get("datasets"), "datasets", None)
    if not entries:
        checker.fail("datasets", "no datasets listed", "add entries under 'datasets:' (see FORMAT)")
    datasets = {}
    for name, entry in entries.items():
        key = f"datasets.{name}"
        checker.name(name, key)
        datasets[name] = checker.entry(name, entry, key)
    for name, spec in datasets.items():
        if spec.alternative is not None and spec.alternative not in datasets:
            checker.fail(
                f"datasets.{name}.alternative",
                f"names '{spec.alternative}', which is not in this manifest",
                choices_hint(spec.alternative, list(datasets), "datasets"),
            )
    return Manifest(path, datasets)


class _Checker:
    """Checks pieces of the manifest, raising DatasetError with the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, hint: str | None = None):
        raise DatasetError(f"{self.path}: {key}: {problem}", hint=hint)

    def name(self, name: Any, key: str) -> None:
        # The name becomes a folder of thanosql-dataset/: the dataset store's rule (a name, not a
        # path) and, stricter, characters that are safe in a folder name everywhere.
        hint = "use letters, digits, '_', '.', '-'"
        if not isinstance(name, str):
            self.fail(key, f"{name!r} cannot be a dataset name: it is not text", hint)
        try:
            check_name(name, "dataset")
        except PlanError as exc:
            self.fail(key, f"cannot be a dataset name: {exc.message}", hint)
        if not NAME_PATTERN.match(name):
            self.fail(key, f"{name!r} cannot be a dataset name", hint)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, found {_describe(value)}", "see the manifest FORMAT")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    self.fail(
                        f"{key}.{name}" if key != "the top level" else str(name),
                        "unknown key",
                        choices_hint(str(name), list(allowed), "keys"),
                    )
        return value

    def text(self, entry: dict, key: str, name: str, required: bool = False) -> str | None:
        value = entry.get(name)
        if value is None:
            if required:
                self.fail(f"{key}.{name}", "missing", f"every dataset needs a {name}")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(f"{key}.{name}", f"expected text, found {_describe(value)}")
        return value

    def entry(self, name: str, entry: Any, key: str) -> DatasetSpec:
        entry = self.mapping(entry, key, ENTRY_KEYS)
        description = self.text(entry, key, "description", required=True)
        license_ = self.text(entry, key, "license", required=True)
        data_type = self.text(entry, key, "data_type")
        if data_type is not None and data_type not in DATA_TYPES:
            self.fail(
                f"{key}.data_type",
                f"unknown data type {data_type!r}",
                choices_hint(data_type, DATA_TYPES, "data types"),
            )
        builtin = self.text(entry, key, "builtin")
        prepare = self.text(entry, key, "prepare")
        files = entry.get("files")
        if builtin is not None and files is not None:
            self.fail(
                key, "has both 'builtin' and 'files'", "a built-in dataset is generated, not downloaded: keep one"
            )
        if builtin is None and files is None:
            self.fail(f"{key}.files", "missing", "list the files to download, or name a builtin generator")
        if builtin is not None and prepare is not None:
            self.fail(f"{key}.prepare", "a built-in dataset has nothing to prepare", "remove 'prepare'")
        if files is not None and (not isinstance(files, list) or not files):
            self.fail(f"{key}.files", f"expected a list of files, found {_describe(files)}")
        file_specs = tuple(self.file(item, f"{key}.files[{i}]") for i, item in enumerate(files or ()))
        names = [f.name for f in file_specs]
        if len(set(names)) != len(names):
            self.fail(f"{key}.files", "two files have the same name", "give one of them a 'name'")
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            self.fail(f"{key}.options", f"expected a mapping, found {_describe(options)}")
        if builtin is not None:
            self.callable_options(key, "builtin", builtin, options)
        if prepare is not None:
            self.callable_options(key, "prepare", prepare, options)
        elif options and builtin is None:
            self.fail(f"{key}.options", "options are for a builtin generator or a prepare recipe")
        return DatasetSpec(
            name=name,
            description=description.strip(),
            license=license_.strip(),
            source=(self.text(entry, key, "source") or "").strip(),
            data_type=data_type,
            files=file_specs,
            builtin=builtin,
            prepare=prepare,
            options=dict(options),
            tables=self.tables(entry.get("tables"), f"{key}.tables"),
            alternative=self.text(entry, key, "alternative"),
        )

    def file(self, item: Any, key: str) -> FileSpec:
        item = self.mapping(item, key, FILE_KEYS)
        url = item.get("url")
        if not isinstance(url, str) or not url.strip():
            self.fail(f"{key}.url", "missing" if url is None else f"expected text, found {_describe(url)}")
        sha256 = item.get("sha256")
        unverified = item.get("unverified")
        if sha256 is None:
            if not isinstance(unverified, str) or not unverified.strip():
                self.fail(
                    f"{key}.sha256",
                    "missing",
                    "give the file's sha256, or write sha256: null and `unverified:` saying why it cannot be pinned",
                )
        elif not isinstance(sha256, str) or not SHA256_PATTERN.match(sha256.lower()):
            self.fail(f"{key}.sha256", f"expected 64 hexadecimal digits, found {sha256!r}")
        size = item.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            self.fail(f"{key}.size", f"expected a number of bytes, found {size!r}")
        mirrors = item.get("mirrors") or []
        if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
            self.fail(f"{key}.mirrors", f"expected a list of URLs, found {_describe(mirrors)}")
        strip = item.get("strip_components", 0)
        if isinstance(strip, bool) or not isinstance(strip, int) or strip < 0:
            self.fail(f"{key}.strip_components", f"expected a number of folders, found {strip!r}")
        name = item.get("name") or _file_name(url)
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            self.fail(f"{key}.name", f"{name!r} cannot be a file name", "give the file a plain 'name'")
        unpacked = item.get("unpacked_size")
        if unpacked is not None:
            if isinstance(unpacked, bool) or not isinstance(unpacked, int) or unpacked < 0:
                self.fail(f"{key}.unpacked_size", f"expected a number of bytes, found {unpacked!r}")
            if not name.lower().endswith(ARCHIVE_SUFFIXES):
                self.fail(
                    f"{key}.unpacked_size",
                    f"{name} is not an archive: nothing is unpacked",
                    "unpacked_size is for .zip and .tar[.gz|.bz2|.xz] files; remove it",
                )
        return FileSpec(
            url=self.resolve_url(url.strip()),
            sha256=sha256.lower() if isinstance(sha256, str) else None,
            size=size,
            name=name,
            mirrors=tuple(self.resolve_url(m.strip()) for m in mirrors),
            strip_components=strip,
            unverified=unverified.strip() if isinstance(unverified, str) else None,
            unpacked_size=unpacked,
        )

    def resolve_url(self, url: str) -> str:
        # A plain path is read beside the manifest, so a manifest and its archives can travel
        # together (and tests need no server for the simplest case).
        if urlsplit(url).scheme in ("http", "https", "file"):
            return url
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
            self.fail("url", f"unsupported URL scheme in {url!r}", "use http://, https://, file:// or a path")
        return (self.path.parent / url).resolve().as_uri()

    def tables(self, tables: Any, key: str) -> tuple[TableSpec, ...]:
        if tables is None:
            return ()
        tables = self.mapping(tables, key, None)
        specs = []
        for name, table in tables.items():
            table = self.mapping(table, f"{key}.{name}", TABLE_KEYS)
            file = table.get("file")
            if (
                not isinstance(file, str)
                or not file
                or PurePosixPath(file).is_absolute()
                or ".." in PurePosixPath(file).parts
            ):
                self.fail(f"{key}.{name}.file", f"expected a path inside the dataset, found {file!r}")
            columns = table.get("columns") or []
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                self.fail(f"{key}.{name}.columns", f"expected a list of column names, found {_describe(columns)}")
            specs.append(TableSpec(str(name), file, tuple(columns)))
        return tuple(specs)

    def callable_options(self, key: str, kind: str, target: str, options: dict) -> None:
        # Check the options against the generator's or recipe's own signature, so a typo in a
        # manifest is reported when it is read, not half-way through a download.
        if kind == "builtin":
            from .builtin import GENERATORS as table
        else:
            from .prepare import RECIPES as table
        if target not in table:
            self.fail(
                f"{key}.{kind}", f"unknown {kind} {target!r}", choices_hint(target, sorted(table), f"{kind} names")
            )
        parameters = inspect.signature(table[target]).parameters
        accepted = [
            p for p, spec in parameters.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY and p != "dataset_name"
        ]
        for option in options:
            if option not in accepted:
                self.fail(
                    f"{key}.options.{option}",
                    f"not an option of {kind} {target!r}",
                    choices_hint(str(option), accepted, "options"),
                )


def _file_name(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"[:80]
