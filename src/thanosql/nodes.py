"""The statements the parser produces: frozen dataclasses, each with its source span; and
STATEMENTS, the one table of every extension statement (its words, node, parse method, OPTIONS,
handler), from which the parser, the planner, the session and README's reference read.

The parser records what was written, era by era (legacy spellings included); the planner
resolves aliases and defaults. ``repr(node)`` is the golden form of tests/fixtures/statements.sql,
so spans are left out of repr and equality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

from . import options
from .errors import Span
from .options import OptionSpec

NO_SPAN = Span(0, 0, 1, 1)


def _span():
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Option:
    """One ``name = value`` of an OPTIONS list; value is a Python literal (str, int, float,
    bool, None, or a tuple for a list)."""

    name: str
    value: object
    span: Span = _span()


@dataclass(frozen=True)
class Nested:
    """An extension statement written inside plain SQL, in parentheses.

    ``start``/``end`` are offsets into the enclosing PassThrough's ``sql`` of the text between the
    parentheses, which the planner replaces by a query over the statement's result.
    """

    start: int
    end: int
    statement: Statement


@dataclass(frozen=True)
class PassThrough:
    """Plain SQL, sliced unchanged from the cell text, with the extension statements in it."""

    sql: str
    nested: tuple[Nested, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class InlineInput:
    """Legacy search input written after the media keyword: ``image='a.jpg'``, ``texts=[...]``."""

    kind: str  # 'image' | 'images' | 'text' | 'texts', as written (lower-cased)
    value: object  # str, or tuple of str
    span: Span = _span()


# The AS source of an extension statement: plain SQL, or another extension statement (N6).
Source = Union[PassThrough, "Statement"]


@dataclass(frozen=True)
class GetDataset:
    # GET THANOSQL DATASET name [OPTIONS (...)]
    name: str
    options: tuple[Option, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class GetModel:
    # GET THANOSQL MODEL name [OPTIONS (...)] [AS alias]
    name: str
    options: tuple[Option, ...] = ()
    alias: str | None = None
    span: Span = _span()


@dataclass(frozen=True)
class ListObjects:
    # LIST MODEL | LIST TABLE | LIST THANOSQL MODEL | LIST THANOSQL DATASET
    what: str  # 'model' | 'table' | 'thanosql model' | 'thanosql dataset'
    span: Span = _span()


@dataclass(frozen=True)
class Copy:
    # COPY table [OPTIONS (...)] FROM 'file' | 'folder/' | '<json records>'
    table: str
    options: tuple[Option, ...]
    source: str
    span: Span = _span()


@dataclass(frozen=True)
class BuildModel:
    # BUILD MODEL name USING algorithm [OPTIONS (...)] AS source
    name: str
    algorithm: str  # as written (case kept)
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class FitModel:
    # FIT MODEL name USING base_model [OPTIONS (...)] AS source
    name: str
    base_model: str
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class UploadModel:
    # UPLOAD MODEL name [OPTIONS (...)] FROM 'file'
    name: str
    options: tuple[Option, ...]
    path: str
    span: Span = _span()


@dataclass(frozen=True)
class DeleteModel:
    # DELETE MODEL name
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Convert:
    # CONVERT USING model [OPTIONS (...)] AS source
    model: str
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class Search:
    # SEARCH {IMAGE|TEXT|VIDEO|AUDIO|KEYWORD} [inline] USING model [OPTIONS (...)] AS source
    media: str  # lower-cased
    model: str
    options: tuple[Option, ...]
    source: Source
    inline: InlineInput | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Print:
    # PRINT {IMAGE|AUDIO|VIDEO} [OPTIONS (...)] AS source
    media: str
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class Predict:
    # PREDICT USING model [OPTIONS (...)] AS source
    model: str
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class Evaluate:
    # EVALUATE USING model [OPTIONS (...)] AS source
    model: str
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class Generate:
    # GENERATE USING model [OPTIONS (...)] AS source
    model: str
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class Function:
    # FUNCTION module.name [OPTIONS (...)] (AS source | FROM 'path')
    module: str
    name: str
    options: tuple[Option, ...]
    source: Source | None = None
    path: str | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Transform:
    # TRANSFORM USING model [OPTIONS (...)] AS source          (retired in 2022)
    model: str
    options: tuple[Option, ...]
    source: Source
    span: Span = _span()


@dataclass(frozen=True)
class Preprocess:
    # PREPROCESS media USING method [OPTIONS (...)] FROM 'path'   (retired in 2022)
    media: str
    method: str
    options: tuple[Option, ...]
    path: str
    span: Span = _span()


# ---------------------------------------------------------------- the statement registry

# Words after a statement's keyword that the grammar reads (parser.py compares them upper-cased).
SEARCH_MEDIA = ("IMAGE", "TEXT", "VIDEO", "AUDIO", "KEYWORD")
PRINT_MEDIA = ("IMAGE", "AUDIO", "VIDEO")
PREPROCESS_MEDIA = ("TEXT", "IMAGE", "AUDIO", "VIDEO")
INLINE_INPUTS = ("IMAGE", "IMAGES", "TEXT", "TEXTS")


@dataclass(frozen=True)
class OptionTable:
    """The OPTIONS of a statement (specs from options.py), headed ``title`` in README.

    A statement with several tables picks one by its ``algorithm`` (BUILD MODEL ... USING SimCLR);
    ``summary`` stands in README for a table that repeats others (FIT MODEL).
    """

    key: str
    title: str
    specs: Mapping[str, OptionSpec]
    algorithm: str | None = None
    summary: str | None = None


@dataclass(frozen=True)
class StatementRecord:
    """One extension statement: everything the layers above need to know about it.

    ``keywords``: the word that starts it, then every word its grammar reads (parser.KEYWORDS).
    ``parse``: the Parser method that reads it. ``second_words``: the words that, after its
    keyword inside parentheses, make it this statement and not SQL (None: Parser._statement_form
    has a rule of its own). ``words``: how messages name it. ``handler``: "module:function", imported
    on first use (session.py); or ``unsupported``: what "... is not supported by this engine" says.
    ``rows``: it returns rows, so it may stand where a derived table can (DIALECT.md §3).
    """

    node: type
    keywords: tuple[str, ...]
    parse: str
    words: str
    handler: str | None = None
    unsupported: str | None = None
    rows: bool = False
    options: tuple[OptionTable, ...] = ()
    second_words: tuple[str, ...] | None = None

    @property
    def keyword(self) -> str:
        return self.keywords[0]


def _model_statement(node: type, keyword: str, **more) -> StatementRecord:
    # KEYWORD USING model [OPTIONS (...)] AS source
    return StatementRecord(
        node, (keyword, "USING", "OPTIONS", "AS"), f"_parse_{keyword.lower()}", keyword, second_words=("USING",), **more
    )


# In the order of the docs' statement list (parser.STATEMENT_KEYWORDS keeps it).
STATEMENTS: tuple[StatementRecord, ...] = (
    StatementRecord(
        GetDataset,
        ("GET", "THANOSQL", "DATASET", "OPTIONS"),
        "_parse_get",
        "GET THANOSQL DATASET",
        handler="thanosql.statements.data:get_dataset",
        second_words=("THANOSQL",),
        options=(OptionTable("get_dataset", "GET THANOSQL DATASET", options.GET_DATASET),),
    ),
    StatementRecord(
        GetModel,
        ("GET", "THANOSQL", "MODEL", "OPTIONS", "AS"),
        "_parse_get",
        "GET THANOSQL MODEL",
        handler="thanosql.statements.models:get_model",
        second_words=("THANOSQL",),
        options=(OptionTable("get_model", "GET THANOSQL MODEL", options.GET_MODEL),),
    ),
    StatementRecord(
        Copy,
        ("COPY", "OPTIONS", "FROM"),
        "_parse_copy",
        "COPY",
        handler="thanosql.statements.data:copy",
        options=(OptionTable("copy", "COPY", options.COPY),),
    ),
    StatementRecord(
        BuildModel,
        ("BUILD", "MODEL", "USING", "OPTIONS", "AS"),
        "_parse_build",
        "BUILD MODEL",
        handler="thanosql.statements.training:build_model",
        second_words=("MODEL",),
        options=(
            OptionTable("build_simclr", "BUILD MODEL ... USING SimCLR", options.SIMCLR_TRAINING, "SimCLR"),
            OptionTable("build_clip", "BUILD MODEL ... USING CLIP", options.CLIP_TRAINING, "CLIP"),
        ),
    ),
    StatementRecord(
        FitModel,
        ("FIT", "MODEL", "USING", "OPTIONS", "AS"),
        "_parse_fit",
        "FIT MODEL",
        handler="thanosql.statements.training:fit_model",
        second_words=("MODEL",),
        options=(
            OptionTable(
                "fit",
                "FIT MODEL (the options of the model's family)",
                options.FIT_TRAINING,
                summary="Any option of BUILD MODEL for that family.",
            ),
        ),
    ),
    StatementRecord(
        UploadModel,
        ("UPLOAD", "MODEL", "OPTIONS", "FROM"),
        "_parse_upload",
        "UPLOAD MODEL",
        handler="thanosql.statements.models:upload_model",
        second_words=("MODEL",),
        options=(OptionTable("upload", "UPLOAD MODEL", options.UPLOAD),),
    ),
    StatementRecord(
        DeleteModel,
        ("DELETE", "MODEL"),
        "_parse_delete",
        "DELETE MODEL",
        handler="thanosql.statements.models:delete_model",
        second_words=("MODEL",),
    ),
    _model_statement(
        Convert,
        "CONVERT",
        handler="thanosql.statements.convert:convert",
        rows=True,
        options=(OptionTable("convert", "CONVERT", options.CONVERT),),
    ),
    StatementRecord(
        Search,
        ("SEARCH", *SEARCH_MEDIA, *INLINE_INPUTS, "USING", "OPTIONS", "AS"),
        "_parse_search",
        "SEARCH",
        handler="thanosql.statements.search:search",
        rows=True,
        options=(OptionTable("search", "SEARCH", options.SEARCH),),
    ),
    StatementRecord(
        Print,
        ("PRINT", *PRINT_MEDIA, "OPTIONS", "AS"),
        "_parse_print",
        "PRINT",
        handler="thanosql.statements.printing:print_media",
        second_words=PRINT_MEDIA,
        options=(OptionTable("print", "PRINT", options.PRINT),),
    ),
    _model_statement(Predict, "PREDICT", unsupported="PREDICT", rows=True),
    _model_statement(Evaluate, "EVALUATE", unsupported="EVALUATE", rows=True),
    _model_statement(Generate, "GENERATE", unsupported="GENERATE", rows=True),
    StatementRecord(
        Function,
        ("FUNCTION", "OPTIONS", "FROM", "AS"),
        "_parse_function",
        "FUNCTION",
        unsupported="FUNCTION",
        rows=True,
    ),
    StatementRecord(
        ListObjects,
        ("LIST", "MODEL", "TABLE", "THANOSQL", "DATASET"),
        "_parse_list",
        "LIST",
        handler="thanosql.statements.data:list_objects",
        rows=True,
        second_words=("MODEL", "MODELS", "TABLE", "TABLES", "THANOSQL"),
    ),
    _model_statement(Transform, "TRANSFORM", unsupported="TRANSFORM (retired in 2022)"),
    StatementRecord(
        Preprocess,
        ("PREPROCESS", *PREPROCESS_MEDIA, "USING", "OPTIONS", "FROM"),
        "_parse_preprocess",
        "PREPROCESS",
        unsupported="PREPROCESS (retired in 2022; FUNCTION preprocess.video_to_df replaced it)",
    ),
)

_RECORDS = {record.node: record for record in STATEMENTS}

Statement = Union[(PassThrough, *_RECORDS)]

# Statements that yield rows, and so may stand where a derived table can (DIALECT.md §3).
TABLE_STATEMENTS = tuple(record.node for record in STATEMENTS if record.rows)


def record_of(statement) -> StatementRecord | None:
    """The registry record of ``statement``'s kind (None for plain SQL).

    >>> record_of(DeleteModel("m")).words
    'DELETE MODEL'
    """
    return _RECORDS.get(type(statement))


def option_tables() -> list[OptionTable]:
    """Every OPTIONS table, in the order of STATEMENTS (README's reference follows it)."""
    return [table for record in STATEMENTS for table in record.options]


# OPTIONS table key -> its specs; BUILD MODEL's algorithms (lower-cased) -> their table's key.
OPTIONS: dict[str, Mapping[str, OptionSpec]] = {table.key: table.specs for table in option_tables()}
BUILD_ALGORITHMS = {table.algorithm.lower(): table.key for table in _RECORDS[BuildModel].options}
