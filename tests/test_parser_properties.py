"""Property tests: whatever text a user types, parse() either succeeds or says where it stopped.

Contract: the only exception parse() may raise is ThanoSQLSyntaxError, whose line and column lie
inside the text (the column may sit one past the end of its line: "found end of statement").
Inputs are the fixture statements mutated at token and character level, plus random text.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures_loader import load_cases, load_lines
from thanosql import nodes
from thanosql.errors import ThanoSQLSyntaxError
from thanosql.parser import parse
from thanosql.tokens import tokenize

CORPUS = [case.input for name in ("statements.sql", "errors.sql") for case in load_cases(name)]
CORPUS += [case.input for case in load_lines("passthrough.sql")]
PIECES = [
    "(", ")", "[", "]", ",", ";", "=", ".", "'", '"', "$$", "$t$", "--", "/*", "*/", "::", "-",
    "\n",
    "AS", "USING", "OPTIONS", "FROM", "SEARCH", "IMAGE", "LIST", "MODEL", "THANOSQL", "SELECT",
    "PREDICT", "PRINT", "COPY", "DELETE", "image=", "True", "None", "1e-5", "'x'", "(SEARCH TEXT",
]  # fmt: skip
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(source: str) -> None:
    """parse(source) succeeds with spans inside the text, or fails with a well-placed error."""
    try:
        statements = parse(source)
    except ThanoSQLSyntaxError as error:
        lines = source.split("\n")
        assert error.span is not None and error.source == source
        assert 1 <= error.line <= len(lines)
        assert 1 <= error.column <= len(lines[error.line - 1]) + 1
        assert 0 <= error.span.start <= len(source)
        assert error.render().startswith(f"Line {error.line}, column {error.column}: ")
        return
    for statement in statements:
        assert 0 <= statement.span.start < statement.span.end <= len(source)
        if isinstance(statement, nodes.PassThrough):
            assert source[statement.span.start : statement.span.end] == statement.sql
            for nested in statement.nested:
                assert 0 < nested.start <= nested.end < len(statement.sql)


def pieces_of(source: str) -> list[str]:
    """The source cut into token texts and the gaps between them (or characters, if need be)."""
    try:
        tokens = tokenize(source)
    except ThanoSQLSyntaxError:
        return list(source)
    pieces, position = [], 0
    for token in tokens:
        pieces += [source[position : token.span.start], token.text]
        position = token.span.end
    return pieces + [source[position:]]


@st.composite
def mutated(draw) -> str:
    pieces = pieces_of(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        if not pieces:
            break
        index = draw(st.integers(0, len(pieces) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "cut"]))
        if action == "delete":
            del pieces[index]
        elif action == "duplicate":
            pieces.insert(index, pieces[index])
        elif action == "swap":
            other = draw(st.integers(0, len(pieces) - 1))
            pieces[index], pieces[other] = pieces[other], pieces[index]
        elif action == "insert":
            pieces.insert(index, " " + draw(st.sampled_from(PIECES)) + " ")
        else:  # cut a piece in two at a random character, dropping one side
            piece = pieces[index]
            at = draw(st.integers(0, len(piece)))
            pieces[index] = piece[:at] if draw(st.booleans()) else piece[at:]
    return "".join(pieces)


@SETTINGS
@given(mutated())
def test_mutated_statements_parse_or_fail_with_a_position_inside_the_text(source):
    check(source)


@SETTINGS
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=30).map(" ".join))
def test_random_keyword_soup_parses_or_fails_with_a_position_inside_the_text(source):
    check(source)


@SETTINGS
@given(st.text(max_size=80))
def test_random_text_parses_or_fails_with_a_position_inside_the_text(source):
    check(source)


@SETTINGS
@given(st.text(max_size=40))
def test_any_string_literal_is_one_plain_statement(text):
    sql = "SELECT '" + text.replace("'", "''") + "' AS s"
    assert parse(sql) == [nodes.PassThrough(sql)]
