"""Turn a parsed statement into a Plan: the extension statements to run, innermost first, and
the plain SQL that reads their results.

Pure: no I/O, no DuckDB, no torch. Each nested extension statement becomes a Step whose result
the session registers under ``Step.output``; its parenthesised text in the enclosing SQL is
replaced by ``SELECT * FROM <output>``, so plain SQL reaches DuckDB as written otherwise.
Options are checked here, once (names, types, allowed values, ranges: options.py), legacy
spellings resolved, defaults filled in, so handlers receive one complete dict of valid values; which
options the user wrote, and where, travel beside it on the Step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import nodes
from .errors import PlanError, Span, choices_hint
from .options import OptionSpec, older_spellings
from .sourcemap import Piece, SourceMap

RESULT_PREFIX = "__thanosql_result_"


@dataclass(frozen=True)
class Step:
    """Run one extension statement.

    ``source`` is the SQL whose rows feed it (its AS query, with nested results already replaced),
    or None for statements without one; ``output`` names the relation its rows are registered
    under for later steps, or is None for the statement whose result is the answer.
    ``options`` holds every option of the statement's table, checked, defaults filled in;
    ``given`` names those the user wrote and ``spans`` says where (for errors that point at one).
    ``sort`` is SEARCH's era (DESIGN.md decision 2): True ranks rows by score (search_by), False
    keeps them in input order (inline image='...'); None for other statements.
    """

    statement: Any
    options: Mapping[str, Any] = field(compare=False)
    source: str | None = None
    output: str | None = None
    given: frozenset[str] = field(default=frozenset(), compare=False)
    spans: Mapping[str, Span] = field(default_factory=dict, compare=False)
    sort: bool | None = None
    # Where each character of ``source`` comes from in the cell (DuckDB's errors point there).
    source_map: SourceMap | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Plan:
    """Steps in order; then ``sql`` (plain SQL over their outputs), or None when the last step's
    result is the answer."""

    steps: tuple[Step, ...]
    sql: str | None = None
    sql_map: SourceMap | None = field(default=None, compare=False, repr=False)


def plan(statement) -> Plan:
    """Plan one statement.

    >>> plan(parse("SELECT 1")[0])  # doctest: +SKIP
    Plan(steps=(), sql='SELECT 1')
    """
    planner = _Planner()
    if isinstance(statement, nodes.PassThrough):
        sql, sql_map = planner.query(statement)
        return Plan(tuple(planner.steps), sql, sql_map)
    planner.statement(statement, output=None)
    return Plan(tuple(planner.steps), None)


class _Planner:
    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.count = 0

    def query(self, passthrough: nodes.PassThrough) -> tuple[str, SourceMap]:
        """The SQL of ``passthrough`` with each nested statement replaced by its result, and where
        each of its characters comes from in the cell."""
        text, origin = passthrough.sql, passthrough.span.start
        outputs = {}
        for nested in sorted(passthrough.nested, key=lambda n: n.start, reverse=True):  # numbered from the end
            outputs[nested.start] = output = self._name()
            self.statement(nested.statement, output=output)
        pieces, parts, copied, length = [], [], 0, 0
        for nested in sorted(passthrough.nested, key=lambda n: n.start):
            replacement = f"SELECT * FROM {outputs[nested.start]}"
            kept = text[copied : nested.start]
            pieces.append(Piece(length, length + len(kept), origin + copied))
            pieces.append(
                Piece(length + len(kept), length + len(kept) + len(replacement), origin + nested.start, False)
            )
            parts += [kept, replacement]
            length += len(kept) + len(replacement)
            copied = nested.end
        rest = text[copied:]
        pieces.append(Piece(length, length + len(rest), origin + copied))
        return "".join(parts) + rest, SourceMap(tuple(pieces))

    def source(self, source) -> tuple[str, SourceMap | None]:
        if isinstance(source, nodes.PassThrough):
            return self.query(source)
        output = self._name()
        self.statement(source, output=output)
        return f"SELECT * FROM {output}", None

    def statement(self, statement, output: str | None) -> None:
        source = getattr(statement, "source", None)
        source_sql, source_map = None, None
        if source is not None and not isinstance(source, str):
            source_sql, source_map = self.source(source)
        options, given, spans = check_options(statement)
        sort = statement.inline is None if isinstance(statement, nodes.Search) else None
        self.steps.append(Step(statement, options, source_sql, output, given, spans, sort, source_map))

    def _name(self) -> str:
        self.count += 1
        return f"{RESULT_PREFIX}{self.count}"


def option_table(statement) -> nodes.OptionTable | None:
    """The OPTIONS table that applies to ``statement`` (None: not checked here); a statement with
    several (BUILD MODEL) picks the one of its algorithm."""
    record = nodes.record_of(statement)
    tables = record.options if record is not None else ()
    if len(tables) <= 1:
        return tables[0] if tables else None
    written = statement.algorithm
    for table in tables:
        if table.algorithm.lower() == written.lower():
            return table
    raise PlanError(
        f"unknown algorithm '{written}' for {record.words}",
        span=statement.span,
        hint=choices_hint(written, [table.algorithm for table in tables], "algorithms"),
    )


def check_options(statement) -> tuple[dict[str, Any], frozenset[str], dict[str, Span]]:
    """Options of ``statement`` as a complete dict (aliases resolved, defaults filled in, every
    value of the right type, among its choices and in its range), the names the user wrote, and
    their spans."""
    written = getattr(statement, "options", ())
    table = option_table(statement)
    spans: dict[str, Span] = {}
    if table is None:
        for option in written:
            spans[option.name] = option.span
        return {option.name: option.value for option in written}, frozenset(spans), spans
    specs = table.specs
    aliases = older_spellings(specs)
    given: dict[str, Any] = {}
    for option in written:
        name = aliases.get(option.name, option.name)
        if name not in specs:
            raise PlanError(
                f"unknown option '{option.name}' for {_statement_words(statement)}",
                span=option.span,
                hint=choices_hint(option.name, sorted(specs), "options"),
            )
        if name in given:
            raise PlanError(
                f"option '{name}' is given twice (once as '{option.name}')",
                span=option.span,
                hint=f"'{option.name}' is the older spelling of '{name}'; keep one",
            )
        given[name] = _check_value(statement, option, name, specs[name])
        spans[name] = option.span
    resolved = {name: spec.default for name, spec in specs.items()}
    resolved.update(given)
    _resolve_era(statement, resolved, given)
    return resolved, frozenset(given), spans


def _check_value(statement, option: nodes.Option, name: str, spec: OptionSpec) -> Any:
    value = option.value
    if value is None:
        return None
    if isinstance(value, bool) and bool not in spec.types:
        ok = False
    else:
        ok = isinstance(value, spec.types)
    if not ok:
        wanted = " or ".join(_type_word(t) for t in spec.types)
        raise PlanError(
            f"option '{option.name}' must be {wanted}, not {_type_word(type(value))} {value!r}",
            span=option.span,
        )
    if spec.choices is not None and value not in spec.choices:
        lowered = value.lower() if isinstance(value, str) else value
        if lowered in spec.choices:
            return lowered
        shown = [c for c in spec.choices if not isinstance(c, str) or c == c.lower()] or list(spec.choices)
        raise PlanError(
            f"option '{option.name}' cannot be {value!r}",
            span=option.span,
            hint=choices_hint(str(value), [str(c) for c in shown], "values"),
        )
    problem = spec.range_error(name, value)
    if problem is not None:
        raise PlanError(problem, span=option.span, hint=spec.range_hint)
    return value


def _type_word(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "True or False",
        tuple: "a list",
        type(None): "None",
    }.get(kind, kind.__name__)


def _resolve_era(statement, resolved: dict[str, Any], given: dict[str, Any]) -> None:
    """Map the older syntax eras onto the current options (DESIGN.md decision 1)."""
    if isinstance(statement, nodes.Copy) and given.get("overwrite") is not None:
        if "if_exists" in given:
            raise PlanError(
                "give either 'overwrite' or 'if_exists', not both",
                span=statement.span,
                hint="overwrite=True is the older spelling of if_exists='replace'",
            )
        resolved["if_exists"] = "replace" if given["overwrite"] else "fail"
    if isinstance(statement, nodes.GetModel) and statement.alias is not None:
        if "model_name" in given:
            raise PlanError(
                "give the model's name either with AS or with model_name, not both",
                span=statement.span,
            )
        resolved["model_name"] = statement.alias
    if isinstance(statement, nodes.Search):
        _resolve_search(statement, resolved, given)


def _resolve_search(statement: nodes.Search, resolved: dict[str, Any], given: dict[str, Any]) -> None:
    # The inline era (image='...') returns every row in input order with a score; the
    # search_by era sorts by score and keeps top_k (DESIGN.md decisions 1 and 2).
    inline = statement.inline
    if inline is None:
        return
    if "search_input" in given or "search_by" in given:
        raise PlanError(
            f"the search input is given twice: inline ({inline.kind}=...) and in OPTIONS",
            span=inline.span,
            hint="keep one: either the inline form or search_by/search_input",
        )
    value = inline.value
    if isinstance(value, tuple):
        if len(value) != 1:
            raise PlanError(
                f"{inline.kind}= lists more than one search input ({len(value)})",
                span=inline.span,
                hint="run one SEARCH per input",
            )
        value = value[0]
    if not isinstance(value, str):
        raise PlanError(f"{inline.kind}= must be a string", span=inline.span)
    resolved["search_by"] = "image" if inline.kind.startswith("image") else "text"
    resolved["search_input"] = value
    if "top_k" not in given:
        resolved["top_k"] = None


def _statement_words(statement) -> str:
    words = nodes.record_of(statement).words
    algorithm = getattr(statement, "algorithm", None)
    return f"{words} ... USING {algorithm}" if algorithm is not None else words
