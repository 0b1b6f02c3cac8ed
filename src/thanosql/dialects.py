"""SQL from other dialects (setting ``sql_dialect``) transpiled to DuckDB by sqlglot.

>>> transpile("SELECT to_char(ts, 'YYYY-MM-DD') FROM t", "postgres").sql
"SELECT STRFTIME(ts, '%Y-%m-%d') FROM t"

Only plain SQL comes here (a plain statement, an AS query): extension statements never go through
sqlglot, and with the default ``'duckdb'`` this module (and sqlglot) is not even imported, except
to suggest the DuckDB form in the hint of an error. Where sqlglot's own PostgreSQL-to-DuckDB
translation is missing or wrong for what ThanoSQL's users wrote (the original engine ran on
PostgreSQL), it is extended as sqlglot means it to be: ``Postgres`` reads more (parser functions,
``to_char`` formats), ``DuckDB`` writes more (generator transforms). The returned SourceMap says
where each character of the DuckDB text came from, so DuckDB's errors still point into the cell.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from sqlglot import exp, transforms
from sqlglot.dialects.dialect import Dialect, Dialects, build_json_extract_path
from sqlglot.dialects.duckdb import DuckDB as _DuckDB
from sqlglot.dialects.postgres import Postgres as _Postgres
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.helper import seq_get
from sqlglot.time import format_time
from sqlglot.tokens import TokenType

from .errors import ThanoSQLError, choices_hint
from .sourcemap import Piece, SourceMap

DEFAULT = "duckdb"
SETTING_HINT = "%config ThanoSQLMagic.sql_dialect = 'postgres', connect(sql_dialect=...) or THANOSQL_SQL_DIALECT"


class JSONArrayElements(exp.Expression, exp.Func):
    """PostgreSQL's ``json_array_elements[_text](x)``: one row per element of a JSON array."""

    arg_types = {"this": True, "text": False}


def _to_char(args: list) -> exp.Expr:
    # to_char(ts, 'YYYY-MM-DD"T"HH24:MI'): text in double quotes is literal in PostgreSQL; sqlglot
    # maps its letters too and keeps the quotes. Map the pattern pieces only.
    value, pattern = seq_get(args, 0), seq_get(args, 1)
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return exp.TimeToStr(this=value, format=pattern)
    pieces = pattern.name.split('"')
    mapping, trie = Postgres.TIME_MAPPING, Postgres.TIME_TRIE
    written = [
        format_time(piece, mapping, trie) if index % 2 == 0 else piece.replace("%", "%%")
        for index, piece in enumerate(pieces)
    ]
    return exp.TimeToStr(this=value, format=exp.Literal.string("".join(written)))


def _json_object(args: list) -> exp.JSONObject:
    pairs = zip(args[0::2], args[1::2])
    return exp.JSONObject(expressions=[exp.JSONKeyValue(this=key, expression=value) for key, value in pairs])


def _path_array(this: exp.Expr, path: exp.Expr, kind: type[exp.Expr]) -> exp.Expr:
    # x #> '{a,b}' and x #>> '{a,b}': a PostgreSQL text array of keys, read as json_extract_path.
    if isinstance(path, exp.Literal) and path.is_string and path.name.startswith("{"):
        keys = [exp.Literal.string(key.strip().strip('"')) for key in path.name.strip("{}").split(",")]
        return build_json_extract_path(kind)([this, *keys])
    jsonb = exp.JSONBExtract if kind is exp.JSONExtract else exp.JSONBExtractScalar
    return jsonb(this=this, expression=path)


class Postgres(_Postgres):
    """PostgreSQL as ThanoSQL's users wrote it, read into expressions DuckDB can write."""

    TIME_MAPPING = {
        **_Postgres.TIME_MAPPING,
        "Day": "%A",
        "DAY": "%A",
        "Dy": "%a",
        "Month": "%B",
        "Mon": "%b",
        "HH": "%I",
        "AM": "%p",
        "PM": "%p",
        "MS": "%g",
    }

    class Parser(_Postgres.Parser):
        FUNCTIONS = {
            **_Postgres.Parser.FUNCTIONS,
            "JSON_ARRAY_ELEMENTS": lambda args: JSONArrayElements(this=seq_get(args, 0)),
            "JSONB_ARRAY_ELEMENTS": lambda args: JSONArrayElements(this=seq_get(args, 0)),
            "JSON_ARRAY_ELEMENTS_TEXT": lambda args: JSONArrayElements(this=seq_get(args, 0), text=exp.true()),
            "JSONB_ARRAY_ELEMENTS_TEXT": lambda args: JSONArrayElements(this=seq_get(args, 0), text=exp.true()),
            "JSONB_EXTRACT_PATH": build_json_extract_path(exp.JSONExtract),
            "JSONB_EXTRACT_PATH_TEXT": build_json_extract_path(exp.JSONExtractScalar),
            "JSON_BUILD_OBJECT": _json_object,
            "JSONB_BUILD_OBJECT": _json_object,
            "JSON_BUILD_ARRAY": lambda args: exp.JSONArray(expressions=args),
            "JSONB_BUILD_ARRAY": lambda args: exp.JSONArray(expressions=args),
            "UUID_GENERATE_V4": lambda args: exp.Uuid(),
            "TO_CHAR": _to_char,
        }
        JSON_OPERATORS = {
            **_Postgres.Parser.JSON_OPERATORS,
            TokenType.HASH_ARROW: lambda self, this, path: _path_array(this, path, exp.JSONExtract),
            TokenType.DHASH_ARROW: lambda self, this, path: _path_array(this, path, exp.JSONExtractScalar),
        }


SERIAL_TYPES = {
    exp.DataType.Type.SMALLSERIAL: exp.DataType.Type.SMALLINT,
    exp.DataType.Type.SERIAL: exp.DataType.Type.INT,
    exp.DataType.Type.BIGSERIAL: exp.DataType.Type.BIGINT,
}


def _sequences_for_serials(create: exp.Create) -> list[exp.Expr]:
    """``CREATE TABLE t (id SERIAL ...)`` as DuckDB has it: a sequence ``t_id_seq`` (PostgreSQL's
    name for it) and ``id INT DEFAULT nextval('t_id_seq')``; likewise GENERATED ... AS IDENTITY.
    The sequence outlives a DROP TABLE (DuckDB keeps it), so a re-made table counts on."""
    schema = create.this
    if create.kind != "TABLE" or not isinstance(schema, exp.Schema):
        return [create]
    create = create.copy()
    schema = create.this
    table = schema.this.name
    sequences: list[exp.Expr] = []
    for column in schema.expressions:
        if not isinstance(column, exp.ColumnDef):
            continue
        kind = column.args.get("kind")
        identity = [
            c
            for c in column.constraints
            if isinstance(c.args.get("kind"), exp.GeneratedAsIdentityColumnConstraint) and c.kind.this is not False
        ]
        serial = isinstance(kind, exp.DataType) and kind.this in SERIAL_TYPES
        if not (serial or identity):
            continue
        name = f"{table}_{column.name}_seq"
        sequences.append(exp.Create(this=exp.to_table(name), kind="SEQUENCE", exists=True))
        if serial:
            column.set("kind", exp.DataType.build(SERIAL_TYPES[kind.this]))
        for constraint in identity:
            constraint.pop()
        default = exp.func("nextval", exp.Literal.string(name))
        column.append("constraints", exp.ColumnConstraint(kind=exp.DefaultColumnConstraint(this=default)))
    return [*sequences, create]


def _create_sql(self, expression: exp.Create) -> str:
    made = _sequences_for_serials(expression)
    return ";\n".join(self.create_sql(statement) for statement in made)


def _json_array_elements_sql(self, expression: JSONArrayElements) -> str:
    extract = "JSON_EXTRACT_STRING" if expression.args.get("text") else "JSON_EXTRACT"
    return self.func("UNNEST", self.func(extract, expression.this, exp.Literal.string("$[*]")))


def _value_column(expression: exp.Expr) -> exp.Expr:
    # FROM json_array_elements_text(x) [AS e]: PostgreSQL names the column "value".
    if isinstance(expression, exp.Select):
        for table in expression.find_all(exp.Table):
            if isinstance(table.this, JSONArrayElements):
                alias = table.args.get("alias")
                if alias is None or not alias.columns:
                    name = alias.name if alias is not None else "elements"
                    table.set(
                        "alias", exp.TableAlias(this=exp.to_identifier(name), columns=[exp.to_identifier("value")])
                    )
    return expression


class DuckDB(_DuckDB):
    """DuckDB, writing what sqlglot's own DuckDB dialect leaves untranslated."""

    class Generator(_DuckDB.Generator):
        TRANSFORMS = {
            **_DuckDB.Generator.TRANSFORMS,
            JSONArrayElements: _json_array_elements_sql,
            exp.Create: _create_sql,
        }
        TRANSFORMS[exp.Select] = transforms.preprocess([_value_column], _DuckDB.Generator.TRANSFORMS[exp.Select])


# Our reading of a dialect, where we have one; any other is sqlglot's.
READERS = {"postgres": Postgres}


@dataclass(frozen=True)
class Transpiled:
    """DuckDB's text for a statement, and where each of its characters came from in the input."""

    sql: str
    source_map: SourceMap


def dialect_names() -> list[str]:
    """Every dialect sqlglot reads, by the name the sql_dialect setting takes."""
    return sorted(d.value for d in Dialects if d.value)


def check_dialect(name: str) -> str:
    """``name`` lower-cased if sqlglot reads it; else a ThanoSQLError listing the nearest names.

    >>> check_dialect("Postgres")
    'postgres'
    """
    lowered = (name or "").strip().lower()
    if lowered not in dialect_names():
        raise ThanoSQLError(
            f"unknown sql_dialect {name!r}",
            hint=choices_hint(lowered, dialect_names(), "dialects"),
        )
    return lowered


def transpile(sql: str, dialect: str) -> Transpiled:
    """``sql`` written in ``dialect``, as DuckDB runs it; a text sqlglot cannot read is returned
    unchanged (DuckDB's own error then says what is wrong with it)."""
    reader = READERS[dialect]() if dialect in READERS else Dialect.get_or_raise(dialect)
    try:
        expressions = reader.parse(sql)
        written = [DuckDB().generate(e, unsupported_level=ErrorLevel.IGNORE) for e in expressions if e is not None]
    except SqlglotError:
        return Transpiled(sql, SourceMap.shifted(len(sql), 0))
    out = ";\n".join(written)
    return Transpiled(out, _alignment(out, sql, reader))


def _alignment(out: str, sql: str, reader) -> SourceMap:
    """Where each token of ``out`` came from in ``sql``: the two token streams aligned (a token
    written as it was read maps exactly; a rewritten one to the start of what it replaced)."""
    try:
        read = list(reader.tokenize(sql))
        wrote = list(DuckDB().tokenize(out))
    except SqlglotError:
        return SourceMap((Piece(0, len(out), 0, False),))
    matcher = difflib.SequenceMatcher(
        None, [t.text.upper() for t in read], [t.text.upper() for t in wrote], autojunk=False
    )
    pieces = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if j1 == j2:
            continue
        if tag == "equal":
            for a, b in zip(read[i1:i2], wrote[j1:j2]):
                same = sql[a.start : a.end + 1] == out[b.start : b.end + 1]
                pieces.append(Piece(b.start, b.end + 1, a.start, same))
        else:
            target = read[i1].start if i1 < len(read) else len(sql)
            pieces.append(Piece(wrote[j1].start, wrote[j2 - 1].end + 1, target, False))
    return SourceMap(tuple(pieces))


def translate_plan(the_plan, dialect: str):
    """A planner.Plan whose plain SQL (the statement's, each step's AS query) is DuckDB's."""
    steps = []
    for step in the_plan.steps:
        if step.source is not None:
            done = transpile(step.source, dialect)
            step = replace(step, source=done.sql, source_map=_through(done.source_map, step.source_map))
        steps.append(step)
    if the_plan.sql is None:
        return replace(the_plan, steps=tuple(steps))
    done = transpile(the_plan.sql, dialect)
    return replace(the_plan, steps=tuple(steps), sql=done.sql, sql_map=_through(done.source_map, the_plan.sql_map))


def _through(outer: SourceMap, inner: SourceMap | None) -> SourceMap | None:
    return outer.through(inner) if inner is not None else None


def duckdb_form(sql: str) -> str | None:
    """What ``sql`` means if read as PostgreSQL, in DuckDB's words (None where it reads the same
    or not at all); for the hint of an error in the default mode."""
    done = transpile(sql, "postgres")
    return done.sql if done.sql != sql else None
