"""The parser: golden parses, plain SQL kept verbatim, and the exact error texts.

Contract: parse(cell) returns one node per ';'-separated statement; extension statements become
nodes.py dataclasses, anything else a PassThrough sliced from the cell (checked against a real
DuckDB), with nested extension statements recorded by offsets into that slice.
"""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from fixtures_loader import load_cases, load_lines
from thanosql import nodes
from thanosql.errors import ThanoSQLSyntaxError
from thanosql.parser import STATEMENT_KEYWORDS, TABLE_KEYWORDS, Parser, parse

STATEMENTS = load_cases("statements.sql")
ERRORS = load_cases("errors.sql")
PASSTHROUGH = load_lines("passthrough.sql")
NODE_NAMES = {name: getattr(nodes, name) for name in dir(nodes) if not name.startswith("_")}


def case_id(case):
    return f"line{case.line}"


def only(source):
    [statement] = parse(source)
    return statement


def raises(source) -> ThanoSQLSyntaxError:
    with pytest.raises(ThanoSQLSyntaxError) as caught:
        parse(source)
    return caught.value


def walk(node):
    """Every node reachable from ``node``, with the PassThrough each Nested sits in."""
    yield node
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if dataclasses.is_dataclass(child) and not isinstance(child, nodes.Span):
                yield from walk(child)


# ---------------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("case", STATEMENTS, ids=case_id)
def test_statement_fixture_parses_to_its_golden_repr(case):
    expected = eval(case.expected, NODE_NAMES)
    assert repr(parse(case.input)) == repr(expected)


@pytest.mark.parametrize("case", STATEMENTS, ids=case_id)
def test_every_span_in_the_fixtures_points_at_its_own_text(case):
    source = case.input
    for statement in parse(source):
        for node in walk(statement):
            span = getattr(node, "span", None)
            if span is None:
                continue
            text = source[span.start : span.end]
            assert text and text == text.strip()
            assert source.count("\n", 0, span.start) + 1 == span.line
            if isinstance(node, nodes.PassThrough):
                assert text == node.sql
                for nested in node.nested:
                    inside = node.sql[nested.start : nested.end]
                    written = source[nested.statement.span.start : nested.statement.span.end]
                    assert inside.strip() == written
            elif isinstance(node, nodes.Option):
                assert text.lower().startswith(node.name)
            elif not isinstance(node, (nodes.Nested, nodes.InlineInput)):
                assert text.split()[0].upper() in STATEMENT_KEYWORDS


def test_statement_fixture_holds_every_seed_cell_every_era_and_every_nesting_form():
    seeds = [case.meta.get("seed") for case in STATEMENTS]
    assert (seeds.count("000"), seeds.count("002")) == (13, 8)
    assert {case.meta.get("era") for case in STATEMENTS} >= {"0", "A", "B", "B'", "C", "D", "E"}
    forms = {case.meta.get("nesting") for case in STATEMENTS}
    assert forms >= {f"N{number}" for number in range(1, 12)} | {"CTE", "IN", "INSERT", "scalar"}
    covered = {type(node) for case in STATEMENTS for s in parse(case.input) for node in walk(s)}
    parts = {nodes.Nested, nodes.InlineInput, nodes.Option}
    assert covered >= set(nodes.Statement.__args__) | parts


def test_seed_cells_keep_their_trailing_spaces():
    seed_002 = [case.input for case in STATEMENTS if case.meta.get("seed") == "002"]
    assert seed_002[1].startswith("COPY mnist_train \nOPTIONS (overwrite=True)\n")
    assert "    ORDER BY search_result DESC \n" in seed_002[-1]


@pytest.mark.parametrize("case", ERRORS, ids=case_id)
def test_error_fixture_renders_exactly(case):
    error = raises(case.input)
    assert error.render() == case.expected
    assert case.expected.startswith(f"Line {error.line}, column {error.column}: ")


@pytest.fixture
def duckdb_with_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE unsplash_data(photo_id VARCHAR, image_path VARCHAR,"
        " photo_description VARCHAR);"
        "CREATE TABLE diet(image_path VARCHAR, label VARCHAR);"
        "CREATE TABLE t(x INTEGER, search VARCHAR, list INTEGER[]);"
        "INSERT INTO diet VALUES ('diet/apple.jpg', 'apple');"
        "COPY diet TO 'diet.csv' (HEADER);"
    )
    yield connection
    connection.close()


@pytest.mark.parametrize("case", PASSTHROUGH, ids=case_id)
def test_plain_sql_passes_through_unchanged_and_duckdb_accepts_it(case, duckdb_with_tables):
    assert parse(case.input) == [nodes.PassThrough(case.input)]
    params = None
    if "params" in case.meta:
        params = [int(value) for value in case.meta["params"].split(",")]
    if case.meta.get("run") == "yes":
        duckdb_with_tables.execute(case.input, params)
    else:
        duckdb_with_tables.execute("EXPLAIN " + case.input, params)


# ---------------------------------------------------------------------------------- statements


def test_semicolon_inside_string_does_not_split_statements():
    assert parse("SELECT 'a;b'") == [nodes.PassThrough("SELECT 'a;b'")]


def test_empty_statements_and_empty_cells_give_nothing():
    assert parse("") == []
    assert parse(" ;\n; -- nothing\n;") == []
    assert parse("LIST MODEL;;") == [nodes.ListObjects("model")]


def test_each_statement_keeps_its_own_span_in_the_whole_cell():
    source = "SELECT 1 ;\n  -- note\n  LIST TABLE ;  SELECT 2"
    first, second, third = parse(source)
    assert source[first.span.start : first.span.end] == "SELECT 1"
    assert (second.span.line, second.span.column) == (3, 3)
    assert source[second.span.start : second.span.end] == "LIST TABLE"
    assert third.sql == "SELECT 2" and third.span.start == source.index("SELECT 2")


def test_passthrough_is_sliced_without_semicolon_comments_or_surrounding_whitespace():
    source = "\n  /* lead */ SELECT  *\n FROM t  -- tail\n ;"
    assert parse(source) == [nodes.PassThrough("SELECT  *\n FROM t")]


def test_keywords_are_case_insensitive_and_names_fold_to_lower_case():
    statement = only("search Image using My_Model options (Top_K=5) as select * from T")
    assert statement == nodes.Search(
        "image", "my_model", (nodes.Option("top_k", 5),), nodes.PassThrough("select * from T")
    )


def test_algorithm_name_after_build_model_keeps_its_case():
    assert only("BUILD MODEL M USING SimCLR AS SELECT 1").algorithm == "SimCLR"


def test_quoted_names_keep_their_case_and_unescape_doubled_quotes():
    assert only('DELETE MODEL "My ""best"" Model"').name == 'My "best" Model'


@pytest.mark.parametrize(
    "source, kind",
    [
        ("DELETE MODEL m", nodes.DeleteModel),
        ("delete model m", nodes.DeleteModel),
        ("DELETE FROM diet WHERE label = 'x'", nodes.PassThrough),
        ("COPY t FROM 'a.csv'", nodes.Copy),
        ('COPY t FROM "a.csv"', nodes.Copy),
        ("COPY t OPTIONS (if_exists='replace') FROM 'a.csv'", nodes.Copy),
        ('COPY "T" OPTIONS(overwrite=True) FROM "a.csv"', nodes.Copy),
        ("COPY t TO 'a.csv'", nodes.PassThrough),
        ("COPY (SELECT 1) TO 'a.csv'", nodes.PassThrough),
        ("COPY t FROM 'a.csv' (FORMAT csv)", nodes.PassThrough),
        ("COPY t FROM 'a.csv' WITH (HEADER true)", nodes.PassThrough),
        ("COPY t(a, b) FROM 'a.csv'", nodes.PassThrough),
        ("COPY main.t FROM 'a.csv'", nodes.PassThrough),
        ("COPY FROM DATABASE a TO b", nodes.PassThrough),
    ],
)
def test_thanosql_and_duckdb_forms_of_delete_and_copy_stay_apart(source, kind):
    assert type(only(source)) is kind


def test_copy_source_may_be_a_folder_or_json_text():
    assert only("COPY d FROM 'images/'").source == "images/"
    records = '[{"a": "x;y", "b": 1}]'
    assert only(f"COPY d OPTIONS (if_exists='append') FROM '{records}'").source == records


@pytest.mark.parametrize(
    "source",
    [
        'UPLOAD MODEL m FROM "model.pth"',
        'FUNCTION preprocess.video_to_df FROM "model.pth"',
        'PREPROCESS VIDEO USING split FROM "model.pth"',
        'COPY m FROM "model.pth"',
    ],
)
def test_double_quoted_text_after_from_is_a_path_not_a_name(source):
    statement = only(source)
    assert getattr(statement, "path", None) or statement.source == "model.pth"


def test_get_model_with_legacy_alias():
    statement = only("GET THANOSQL MODEL clip OPTIONS (overwrite=True) AS Tutorial_Clip")
    assert statement.alias == "tutorial_clip"


def test_function_reads_either_a_query_or_a_file():
    with_query = only("FUNCTION compute.similarity AS SELECT * FROM t")
    with_file = only("FUNCTION preprocess.video_to_df FROM 'v.mp4'")
    assert (with_query.source, with_query.path) == (nodes.PassThrough("SELECT * FROM t"), None)
    assert (with_file.source, with_file.path) == (None, "v.mp4")


def test_statement_keywords_are_exactly_the_dispatch_table():
    assert tuple(Parser.STATEMENT_PARSERS) == STATEMENT_KEYWORDS
    assert set(STATEMENT_KEYWORDS) == {
        "GET", "COPY", "BUILD", "FIT", "UPLOAD", "DELETE", "CONVERT", "SEARCH", "PRINT",
        "PREDICT", "EVALUATE", "GENERATE", "FUNCTION", "LIST", "TRANSFORM", "PREPROCESS",
    }  # fmt: skip


# ---------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "written, value",
    [
        ("'a'", "a"),
        ('"a"', "a"),
        ("'it''s'", "it's"),
        ("E'a\\nb'", "a\nb"),
        ("True", True),
        ("true", True),
        ("FALSE", False),
        ("None", None),
        ("none", None),
        ("128", 128),
        ("-1", -1),
        ("+2", 2),
        ("1.5", 1.5),
        (".5", 0.5),
        ("3e-5", 3e-5),
        ("-1e-4", -1e-4),
        ("[]", ()),
        ("[1, 2,]", (1, 2)),
        ("['name', \"ticket\"]", ("name", "ticket")),
        ("[[1, 2], ['x', None]]", ((1, 2), ("x", None))),
    ],
)
def test_option_values_follow_python_literal_rules(written, value):
    [option] = only(f"GET THANOSQL DATASET d OPTIONS (v = {written})").options
    assert option.value == value and type(option.value) is type(value)


def test_option_names_are_lower_cased_and_spans_cover_name_and_value():
    source = "GET THANOSQL DATASET d OPTIONS(Overwrite = True , x=[1,\n 2],)"
    first, second = only(source).options
    assert (first.name, second.name) == ("overwrite", "x")
    assert source[first.span.start : first.span.end] == "Overwrite = True"
    assert source[second.span.start : second.span.end] == "x=[1,\n 2]"


def test_duplicate_option_points_at_the_second_one():
    error = raises("GET THANOSQL DATASET d OPTIONS (overwrite=True, OVERWRITE=False)")
    assert error.message == "option 'overwrite' is given twice"
    assert error.column == len("GET THANOSQL DATASET d OPTIONS (overwrite=True, ") + 1


def test_inline_search_input_keeps_its_kind_and_value():
    statement = only("SEARCH IMAGE Images=['a.jpg', \"b.jpg\"] USING m AS SELECT 1")
    assert statement.inline == nodes.InlineInput("images", ("a.jpg", "b.jpg"))


# ---------------------------------------------------------------------------------- sources


def test_bare_source_runs_to_the_end_of_the_statement():
    query = "SELECT * FROM t WHERE a = 1 ORDER BY b LIMIT 3 OFFSET 1"
    predict, _ = parse(f"PREDICT USING m AS {query}; LIST MODEL")
    assert predict.source.sql == query


def test_parenthesised_source_holds_the_stripped_text_inside_the_parentheses():
    statement = only("PRINT IMAGE AS (\n   SELECT image_path FROM t  -- why\n)")
    assert statement.source == nodes.PassThrough("SELECT image_path FROM t")


def test_extension_statement_can_be_the_source_with_or_without_parentheses():
    inner = nodes.ListObjects("model")
    assert only("PREDICT USING m AS LIST MODEL").source == inner
    assert only("PREDICT USING m AS ( LIST MODEL )").source == inner


def test_source_may_only_be_a_statement_that_returns_rows():
    error = raises("PREDICT USING m AS (PRINT IMAGE AS SELECT 1)")
    assert error.message == "PRINT cannot be used as a table: it returns no rows"


# ---------------------------------------------------------------------------------- nesting


def test_nested_offsets_let_the_planner_swap_in_a_query_that_duckdb_accepts(duckdb_with_tables):
    seed_000 = [case for case in STATEMENTS if case.meta.get("seed") == "000"]
    [case] = [case for case in seed_000 if case.input.startswith("SELECT image_path")]
    statement = only(case.input)
    [nested] = statement.nested
    assert isinstance(nested.statement, nodes.Search)
    sql = statement.sql
    rewritten = sql[: nested.start] + "SELECT * FROM result_0" + sql[nested.end :]
    assert rewritten == "SELECT image_path, search_result\nFROM (SELECT * FROM result_0)"
    duckdb_with_tables.execute("CREATE TABLE result_0(image_path VARCHAR, search_result DOUBLE)")
    duckdb_with_tables.execute("EXPLAIN " + rewritten)


def test_nested_statement_spans_point_into_the_whole_cell():
    source = "LIST MODEL;\nSELECT * FROM (\n  PREDICT USING m AS SELECT 1\n)"
    nested = parse(source)[1].nested[0]
    span = nested.statement.span
    assert source[span.start : span.end] == "PREDICT USING m AS SELECT 1"
    assert (span.line, span.column) == (3, 3)
    assert nested.statement.source.span.start == source.index("SELECT 1")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT list(x) FROM t",
        "SELECT (list(x)) FROM t",
        "SELECT (search) FROM t",
        "SELECT (search || 'x') FROM t",
        "SELECT (convert) FROM t",
        "SELECT (function) FROM t",
        "SELECT (print) FROM t",
        "SELECT (list) FROM t",
        "SELECT * FROM (SELECT search FROM t)",
    ],
)
def test_keyword_lookalikes_after_a_parenthesis_stay_sql(sql):
    assert parse(sql) == [nodes.PassThrough(sql)]


@pytest.mark.parametrize("keyword", TABLE_KEYWORDS)
def test_every_statement_that_returns_rows_can_be_nested(keyword):
    written = {
        "CONVERT": "CONVERT USING m AS SELECT 1",
        "SEARCH": "SEARCH TEXT USING m AS SELECT 1",
        "PREDICT": "PREDICT USING m AS SELECT 1",
        "EVALUATE": "EVALUATE USING m AS SELECT 1",
        "GENERATE": "GENERATE USING m AS SELECT 1",
        "FUNCTION": "FUNCTION compute.similarity AS SELECT 1",
        "LIST": "LIST THANOSQL DATASET",
    }[keyword]
    [nested] = only(f"SELECT * FROM ({written})").nested
    assert isinstance(nested.statement, nodes.TABLE_STATEMENTS)


@pytest.mark.parametrize(
    "written",
    [
        "PRINT IMAGE AS SELECT 1",
        "BUILD MODEL m USING SimCLR AS SELECT 1",
        "FIT MODEL m USING n AS SELECT 1",
        "UPLOAD MODEL m FROM 'm.pth'",
        "DELETE MODEL m",
        "GET THANOSQL DATASET d",
        "COPY t FROM 'a.csv'",
        "TRANSFORM USING m AS SELECT 1",
        "PREPROCESS VIDEO USING split FROM 'v.mp4'",
    ],
)
def test_statements_without_rows_cannot_be_nested(written):
    error = raises(f"SELECT * FROM ({written})")
    assert error.message.endswith("cannot be used as a table: it returns no rows")
    assert error.column == len("SELECT * FROM (") + 1


def test_nesting_works_to_any_reasonable_depth():
    source = "SELECT 1"
    for _ in range(20):
        source = f"SELECT * FROM (SEARCH TEXT USING m AS {source})"
    statement = only(source)
    depth = 0
    while isinstance(statement, nodes.PassThrough) and statement.nested:
        statement = statement.nested[0].statement.source
        depth += 1
    assert depth == 20


def test_nesting_beyond_the_limit_is_a_syntax_error_not_a_crash():
    source = "LIST MODEL"
    for _ in range(200):
        source = f"PREDICT USING m AS ({source})"
    assert raises(source).message == "statements nest too deeply"


def test_deep_parentheses_in_plain_sql_are_fine():
    sql = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    assert parse(sql) == [nodes.PassThrough(sql)]


# ---------------------------------------------------------------------------------- errors


def test_errors_carry_line_column_and_the_cell_text():
    source = "SELECT 1;\nBUILD MODEL  USING SimCLR AS SELECT 1"
    error = raises(source)
    assert (error.line, error.column) == (2, 14)
    assert error.source == source
    first_line = "Line 2, column 14: expected a model name after BUILD MODEL, found 'USING'"
    assert str(error).splitlines()[0] == first_line
