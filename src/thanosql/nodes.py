"""The statements the parser produces: frozen dataclasses, each with its source span.

The parser records what was written, era by era (legacy spellings included); the planner
resolves aliases and defaults. ``repr(node)`` is the golden form of tests/fixtures/statements.sql,
so spans are left out of repr and equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .errors import Span

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
    statement: "Statement"


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


Statement = Union[
    PassThrough,
    GetDataset,
    GetModel,
    ListObjects,
    Copy,
    BuildModel,
    FitModel,
    UploadModel,
    DeleteModel,
    Convert,
    Search,
    Print,
    Predict,
    Evaluate,
    Generate,
    Function,
    Transform,
    Preprocess,
]

# Statements that yield rows, and so may stand where a derived table can (DIALECT.md §3).
TABLE_STATEMENTS = (Convert, Search, Predict, Evaluate, Generate, Function, ListObjects)
