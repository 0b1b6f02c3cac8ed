"""The tokenizer: what becomes one token, what is dropped, and where each token sits.

Contract: tokenize(source) drops whitespace and comments, keeps strings, quoted identifiers and
dollar quotes whole (so ';' and keywords inside them are inert), and gives each token a span whose
offsets slice its text out of the source. Only unterminated quotes and comments, and lone surrogate
characters, are errors. code_stretches(source) gives the parts outside strings and comments.
"""

import pytest

from thanosql.errors import ThanoSQLSyntaxError
from thanosql.tokens import Token, TokenType, code_stretches, tokenize


def texts(source):
    return [token.text for token in tokenize(source)]


def types(source):
    return [token.type for token in tokenize(source)]


def test_empty_and_blank_sources_have_no_tokens():
    assert tokenize("") == []
    assert tokenize("  \n\t -- only a comment\n /* and another */ ") == []


def test_every_token_slices_its_own_text_out_of_the_source():
    source = "SELECT a.b, 'x''y' AS \"Q\"\"R\" -- c\nFROM t /* d */ WHERE n >= 1.5e-3;"
    for token in tokenize(source):
        assert source[token.span.start : token.span.end] == token.text


def test_tokens_carry_one_based_line_and_column():
    tokens = tokenize("LIST MODEL;\n  BUILD MODEL")
    build = tokens[3]
    assert build == Token(TokenType.IDENTIFIER, "BUILD", build.span)
    assert (build.span.line, build.span.column, build.span.start, build.span.end) == (2, 3, 14, 19)


def test_comments_and_whitespace_are_dropped():
    assert texts("SELECT -- one\n 1 /* two */ + /* three\n lines */ 2") == ["SELECT", "1", "+", "2"]


def test_block_comments_nest_as_in_duckdb():
    assert texts("SELECT /* a /* b */ still comment */ 1") == ["SELECT", "1"]


def test_semicolon_inside_string_is_part_of_the_string():
    assert texts("SELECT 'a;b'; LIST MODEL") == ["SELECT", "'a;b'", ";", "LIST", "MODEL"]


def test_doubled_quotes_stay_inside_strings_and_quoted_identifiers():
    assert types("'it''s' \"a\"\"b\"") == [TokenType.STRING, TokenType.QUOTED_IDENTIFIER]
    assert texts("'it''s' \"a\"\"b\"") == ["'it''s'", '"a""b"']


def test_escape_string_keeps_a_backslash_quote_inside():
    assert texts(r"SELECT E'it\'s; fine' AS s") == ["SELECT", r"E'it\'s; fine'", "AS", "s"]


def test_dollar_quoted_strings_with_and_without_a_tag():
    source = "SELECT $$a;'b$$, $fn$ $$ nested; $fn$"
    assert types(source) == [
        TokenType.IDENTIFIER,
        TokenType.DOLLAR_STRING,
        TokenType.COMMA,
        TokenType.DOLLAR_STRING,
    ]
    assert texts(source)[3] == "$fn$ $$ nested; $fn$"


@pytest.mark.parametrize("parameter", ["?", "$1", "$12", "$name"])
def test_question_marks_and_dollar_names_are_parameters(parameter):
    assert types(f"x = {parameter}") == [TokenType.IDENTIFIER, TokenType.EQ, TokenType.PARAMETER]


@pytest.mark.parametrize("number", ["1", "1.5", ".5", "3e-5", "1E+3", "2.", "10e2"])
def test_numbers_in_every_spelling_are_one_token(number):
    assert [(t.type, t.text) for t in tokenize(number)] == [(TokenType.NUMBER, number)]


def test_double_colon_cast_is_one_token():
    assert types("x::text::float") == [
        TokenType.IDENTIFIER,
        TokenType.DCOLON,
        TokenType.IDENTIFIER,
        TokenType.DCOLON,
        TokenType.IDENTIFIER,
    ]


def test_minus_after_equals_is_not_glued_to_it():
    assert texts("seed=-42") == ["seed", "=", "-", "42"]


def test_json_arrows_are_single_operators():
    assert texts("keyword -> 'score' ->> 'x'") == ["keyword", "->", "'score'", "->>", "'x'"]


def test_parentheses_brackets_and_punctuation_have_their_own_types():
    assert types("([,.;=])") == [
        TokenType.L_PAREN,
        TokenType.L_BRACKET,
        TokenType.COMMA,
        TokenType.DOT,
        TokenType.SEMICOLON,
        TokenType.EQ,
        TokenType.R_BRACKET,
        TokenType.R_PAREN,
    ]


def test_non_ascii_letters_make_identifiers():
    assert [(t.type, t.text) for t in tokenize("사과파이 AS é")] == [
        (TokenType.IDENTIFIER, "사과파이"),
        (TokenType.IDENTIFIER, "AS"),
        (TokenType.IDENTIFIER, "é"),
    ]


def test_unknown_symbols_are_single_operators_not_errors():
    assert types("a @ b % c ~ d") == [
        TokenType.IDENTIFIER,
        TokenType.OPERATOR,
        TokenType.IDENTIFIER,
        TokenType.OPERATOR,
        TokenType.IDENTIFIER,
        TokenType.OPERATOR,
        TokenType.IDENTIFIER,
    ]


@pytest.mark.parametrize(
    "source, start, width, message",
    [
        ("SELECT 'abc", 7, 1, "unterminated string"),
        ("SELECT 'it''s", 7, 1, "unterminated string"),
        ("SELECT E'a\\'", 7, 2, "unterminated string"),
        ('SELECT "name', 7, 1, "unterminated quoted identifier"),
        ("SELECT 1 /* never closed", 9, 2, "unterminated comment"),
        ("SELECT /* a /* b */", 7, 2, "unterminated comment"),
        ("SELECT $$abc", 7, 2, "unterminated dollar-quoted string"),
        ("SELECT $tag$abc$tog$", 7, 5, "unterminated dollar-quoted string"),
    ],
)
def test_unterminated_quotes_and_comments_point_at_their_opening(source, start, width, message):
    with pytest.raises(ThanoSQLSyntaxError) as caught:
        tokenize(source)
    error = caught.value
    assert error.message == message
    assert (error.span.start, error.span.end - error.span.start) == (start, width)
    assert error.hint.startswith("add a closing")
    assert error.source == source


def test_unterminated_string_error_reports_line_and_column():
    with pytest.raises(ThanoSQLSyntaxError) as caught:
        tokenize("SELECT 1;\nSELECT\n  'oops")
    assert (caught.value.line, caught.value.column) == (3, 3)


@pytest.mark.parametrize("operator", ["!~", "&&", "->>", "::", "-"])
def test_an_operator_at_the_end_of_the_text_keeps_its_own_width(operator):
    [token] = tokenize(operator)
    assert (token.text, token.span.end) == (operator, len(operator))


def code(source):
    return [source[start:end] for start, end in code_stretches(source)]


def test_code_stretches_leave_out_strings_quoted_identifiers_and_comments():
    source = "SELECT {{a}}, '{{b}}', \"{{c}}\", $${{d}}$$, E'{{e}}' -- {{f}}\nFROM t /* {{g}} */ x"
    assert code(source) == ["SELECT {{a}}, ", ", ", ", ", ", ", " ", "\nFROM t ", " x"]


def test_code_stretches_skip_a_nested_block_comment_whole():
    assert code("a /* b /* c */ {{d}} */ e") == ["a ", " e"]


@pytest.mark.parametrize("opening", ["'", '"', "/*", "$$", "E'"])
def test_code_stretches_end_at_an_unterminated_quote_or_comment(opening):
    assert code(f"SELECT {{{{a}}}} {opening} {{{{b}}}}") == ["SELECT {{a}} "]


def test_a_lone_surrogate_is_a_syntax_error_at_its_line_and_column():
    with pytest.raises(ThanoSQLSyntaxError) as caught:
        tokenize("SELECT 1;\nSELECT 'caf\udce9'")
    error = caught.value
    assert (error.line, error.column) == (2, 12)
    assert "lone surrogate character (U+DCE9) cannot be stored or sent to DuckDB" in error.message
    assert "badly decoded file" in error.hint


def test_the_message_for_a_lone_surrogate_can_itself_be_printed():
    with pytest.raises(ThanoSQLSyntaxError) as caught:
        tokenize("SELECT '\ud800'")
    assert caught.value.render().encode("utf-8").decode("utf-8").splitlines()[1] == "SELECT '\ufffd'"


def test_a_lone_surrogate_reaches_a_session_as_a_syntax_error(session):
    with pytest.raises(ThanoSQLSyntaxError) as caught:
        session.execute("SELECT 'caf\udce9' AS word")
    assert "lone surrogate" in caught.value.message
    assert session.execute("SELECT 1 AS one")["one"].tolist() == [1]
