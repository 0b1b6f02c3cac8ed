"""DuckDB's errors in the cell's coordinates, through a real IPython shell: one caret at the line
and column DuckDB points to (nested AS queries and multi-statement cells included), DuckDB's
message once, and a hint only where it helps (issue 13)."""

from __future__ import annotations

import pytest

from test_magic import run, shell  # noqa: F401 (the IPython shell fixture)

SETUP = (
    "%%thanosql\n"
    "CREATE TABLE ev AS SELECT 1 AS id, TIMESTAMP '2024-03-05 10:11:12' AS ts, 'Cat' AS name, 2.5 AS score;\n"
    "CREATE TABLE pics AS SELECT 'a.jpg' AS image_path, [0.1, 0.2]::FLOAT[2] AS emb"
)
SEARCH = "SEARCH IMAGE USING clip OPTIONS (search_by='text', search_input='cat', emb_col='emb')"
PRINT = "PRINT IMAGE OPTIONS (image_col='image_path')"
CONVERT = "CONVERT USING clip OPTIONS (image_col='image_path')"

# (cell, line, column, caret width, text in the message, the hint: None, or a text it holds)
MISTAKES = [
    ("SELECT id, count(*)\nFROM ev\nGROUP BY name", 1, 8, 2, "must appear in the GROUP BY", "ANY_VALUE"),
    ("SELECT * FROM ev WHERE id = = 1", 1, 29, 1, "syntax error at or near", None),
    ("SELECT *\nFROM missing_table", 2, 6, 13, "missing_table does not exist", None),
    ("SELECT id,\n       nmae\nFROM ev", 2, 8, 4, 'column "nmae" not found', '"name"'),
    ("SELECT id + 'abc' FROM ev", 1, 11, 1, "Could not choose a best candidate", "Candidate functions"),
    ("SELECT lenght(name) FROM ev", 1, 8, 12, "lenght does not exist", 'did you mean "length"'),
    ("SELECT 1;\nSELECT 2;\nSELECT 3;\nSELECT nope FROM ev", 4, 8, 4, '"nope" not found', None),
    ("SELECT 1;\n\n  SELECT * FROM ev WHERE (id", 3, 26, 1, "'(' is never closed", None),
    ("INSERT INTO nowhere VALUES (1)", 1, 13, 7, "nowhere does not exist", None),
    ("SELECT CAST(name AS INTEGER) FROM ev", 1, 8, 21, "Could not convert string 'Cat'", None),
    ("SELECT 'é', foo(1)", 1, 13, 6, "foo does not exist", None),
    (
        f"SELECT * FROM (\n  {SEARCH}\n  AS SELECT *\n     FROM missing_table)",
        4,
        11,
        13,
        "missing_table does not exist",
        None,
    ),
    (f"{SEARCH}\nAS SELECT image_path, emb\n   FROM pics WHERE nope > 1", 3, 20, 4, '"nope" not found', None),
    (f"{PRINT}\nAS SELECT image_path, count(*)\n   FROM pics", 2, 11, 10, "must appear in the GROUP BY", None),
    (f"{PRINT}\nAS (SELECT image_path FROM pics\n    WHERE image_path = 1 +)", 3, 26, 1, "syntax error", None),
    (
        f"{PRINT}\nAS SELECT CAST(image_path AS INTEGER) AS image_path\n   FROM pics",
        2,
        11,
        27,
        "Could not convert string 'a.jpg'",
        None,
    ),
    (
        f"SELECT count(*) FROM (\n  {SEARCH}\n  AS SELECT * FROM (SELECT * FROM pics) p\n  WHERE p.emb > 1)",
        4,
        9,
        9,
        "Cannot compare values of type FLOAT[2]",
        None,
    ),
    ("SELEC id FROM ev", 1, 1, 5, "syntax error", "did you mean SELECT?"),
    ("SERACH IMAGE USING clip AS SELECT * FROM ev", 1, 1, 6, "syntax error", "ThanoSQL statement SEARCH"),
    ("DELETE FROM ev WHERE nope = 1", 1, 22, 4, '"nope" not found', None),
]


def _layout(printed: str) -> tuple[list[str], int]:
    """The error's lines from 'Line L, column C: ...' on, and where its caret line is."""
    lines = printed.rstrip("\n").split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith("Line "))
    error = lines[first:]
    carets = [i for i, line in enumerate(error) if line.strip() and set(line.strip()) == {"^"}]
    assert len(carets) == 1, printed
    return error, carets[0]


@pytest.mark.parametrize(("cell", "line", "column", "width", "message", "hint"), MISTAKES)
def test_a_plain_sql_mistake_shows_one_caret_where_duckdb_points(shell, cell, line, column, width, message, hint):  # noqa: F811
    run(shell, SETUP)
    outcome, printed = run(shell, "%%thanosql\n" + cell)
    assert outcome.error_in_exec is not None
    assert "Traceback" not in printed
    error, caret = _layout(printed)
    assert error[0].startswith(f"Line {line}, column {column}: "), printed
    assert message in error[0] and printed.count(message) == 1, printed
    assert caret == 2 and error[1] == cell.split("\n")[line - 1]
    assert error[2] == " " * (column - 1) + "^" * width, printed
    assert "LINE " not in printed  # DuckDB's own position block is not repeated
    hints = [text for text in error if text.startswith("Hint:")]
    if hint is None:
        assert not any("ThanoSQL statement" in text for text in hints), printed
    else:
        assert hints and hint in "\n".join(error[3:]), printed


def test_sql_errors_never_point_a_beginner_at_a_thanosql_statement(shell):  # noqa: F811
    run(shell, SETUP)
    for cell in ("DELETE FROM missing WHERE x = 1", "INSERT INTO missing VALUES (1)", "SELECT a, count(*) FROM ev"):
        _, printed = run(shell, "%%thanosql\n" + cell)
        assert "ThanoSQL statement" not in printed


def test_a_postgres_only_function_gets_the_duckdb_form_and_the_setting_in_its_hint(shell):  # noqa: F811
    run(shell, SETUP)
    _, printed = run(shell, "%%thanosql\nSELECT id,\n       to_char(ts, 'YYYY-MM-DD') AS day FROM ev")
    error, _ = _layout(printed)
    assert error[0].startswith("Line 2, column 8: ")
    assert "STRFTIME(ts, '%Y-%m-%d')" in printed and "sql_dialect='postgres'" in printed


def test_postgres_mode_keeps_the_cell_coordinates_of_an_error(shell):  # noqa: F811
    run(shell, SETUP)
    run(shell, "%config ThanoSQLMagic.sql_dialect = 'postgres'")
    outcome, printed = run(shell, "%%thanosql\nSELECT to_char(ts, 'YYYY') AS y,\n       nmae::text FROM ev")
    assert outcome.error_in_exec is not None
    error, _ = _layout(printed)
    assert error[0].startswith("Line 2, column 8: ") and error[2] == "       ^^^^"


def test_convert_maps_its_as_query_into_the_cell():
    # CONVERT loads its model before it reads rows, so its AS query is checked through the plan:
    # the map the session uses for DuckDB's errors leads each character back to the cell.
    from thanosql.parser import parse
    from thanosql.planner import plan

    cell = f"SELECT 1;\n{CONVERT}\nAS SELECT *\n   FROM (SELECT * FROM missing_table)"
    step = plan(parse(cell)[1]).steps[0]
    at = step.source.index("missing_table")
    assert step.source_map.cell_offset(at) == cell.index("missing_table")
