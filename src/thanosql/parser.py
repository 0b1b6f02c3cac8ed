"""Read a cell into statements: ThanoSQL extension statements as nodes, everything else as SQL.

``parse(source)`` returns one node per ``;``-separated statement (see nodes.py). Plain SQL becomes
``PassThrough``, sliced unchanged from the cell text, with the extension statements written inside
its parentheses recorded as ``Nested`` (DESIGN.md decisions 6, 7, 13). Every error is a
``ThanoSQLSyntaxError`` with the span of the offending token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import nodes
from .errors import Span, ThanoSQLSyntaxError, choices_hint, closest, span_at
from .nodes import INLINE_INPUTS, PREPROCESS_MEDIA, PRINT_MEDIA, SEARCH_MEDIA
from .tokens import Token, TokenType, tokenize


def parse(source: str) -> list[nodes.Statement]:
    """Parse a cell into its statements.

    >>> parse("LIST MODEL; SELECT 1")
    [ListObjects(what='model'), PassThrough(sql='SELECT 1', nested=())]
    """
    return Parser(source).parse()


LIST_CHOICES = ("MODEL", "TABLE", "THANOSQL MODEL", "THANOSQL DATASET")
# The keywords of nodes.TABLE_STATEMENTS: statements that return rows and so may be nested.
TABLE_KEYWORDS = tuple(dict.fromkeys(record.keyword for record in nodes.STATEMENTS if record.rows))
# Deep enough for any real query (the docs go to five levels), shallow enough for Python's stack.
MAX_DEPTH = 50


@dataclass(frozen=True)
class Choices:
    """A hint that lists the valid words, led by the one nearest to what was written."""

    what: str
    names: tuple[str, ...]


Expected = TokenType | str | tuple | Callable[[Token], bool]


class Parser:
    """Recursive descent over the tokens of one cell; one ``_parse_<rule>`` method per rule."""

    # Every word the extension grammar reads: the literal words of values, and each statement's
    # keywords (nodes.STATEMENTS). Words stay identifiers in the token list; the parser compares
    # them upper-cased, so keywords are case-insensitive.
    KEYWORDS = frozenset({"TRUE", "FALSE", "NONE"}).union(*(record.keywords for record in nodes.STATEMENTS))
    # Keywords that can follow a name, so they cannot be one (quote them to use them).
    NOT_A_NAME = frozenset({"AS", "FROM", "OPTIONS", "USING"})

    # Statement keyword -> the name of the method that parses it (nodes.STATEMENTS names them).
    STATEMENT_PARSERS = {record.keyword: record.parse for record in nodes.STATEMENTS}

    # The word that must follow a statement keyword for "(KEYWORD ..." to count as that statement
    # and not as SQL (`list(x)`, a column named `search`). SEARCH, FUNCTION, COPY and PREPROCESS
    # (second_words None) are recognised in _statement_form.
    SECOND_WORDS = {
        record.keyword: record.second_words for record in nodes.STATEMENTS if record.second_words is not None
    }

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0  # next token
        self.end = 0  # end of the current scope: a statement, or the inside of a parenthesis
        self.closing: dict[int, int] = {}  # index of each '(' -> index of its ')'
        self.depth = 0

    def parse(self) -> list[nodes.Statement]:
        statements = []
        start = 0
        # Strings, quoted identifiers and comments are single tokens (or none), so every
        # SEMICOLON token really separates statements.
        for index in range(len(self.tokens) + 1):
            if index < len(self.tokens) and self.tokens[index].type is not TokenType.SEMICOLON:
                continue
            if index > start:
                self._match_parentheses(start, index)
                keyword = self._top_level_keyword(start, index)
                statements.append(self._parse_statement(start, index, keyword))
            start = index + 1
        return statements

    # ---------------------------------------------------------------- statements and dispatch

    def _parse_statement(self, start: int, end: int, keyword: str | None) -> nodes.Statement:
        saved = self.pos, self.end
        self.pos, self.end = start, end
        try:
            if keyword is None:
                return self._parse_passthrough(start, end)
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self._error("statements nest too deeply", self.tokens[start].span)
            statement = getattr(self, self.STATEMENT_PARSERS[keyword])()
            ending = "')'" if self._in_parentheses() else "';' or end of statement"
            self._expect(TokenType.END, ending)
            self.depth -= 1
            return statement
        finally:
            self.pos, self.end = saved

    def _top_level_keyword(self, start: int, end: int) -> str | None:
        """The extension keyword that begins the statement, or None for plain SQL."""
        keyword = self._word(start, end)
        if keyword not in self.STATEMENT_PARSERS:
            return None
        if keyword == "DELETE" and self._word(start + 1, end) == "FROM":
            return None  # DuckDB's DELETE FROM
        if keyword == "COPY" and not self._is_thanosql_copy(start, end):
            return None  # DuckDB's COPY ... TO / FROM ... (FORMAT ...)
        return keyword

    def _statement_form(self, start: int, end: int) -> str | None:
        """The extension keyword if tokens[start:end] open with an extension statement's words.

        Used after '(' and after AS, where a word like LIST or SEARCH may also be SQL.
        """
        keyword, second = self._word(start, end), self._word(start + 1, end)
        if keyword == "SEARCH":
            # Also a misspelt media kind (SEARCH IMAGES USING), so that it gets a hint.
            third = self._word(start + 2, end)
            found = second in SEARCH_MEDIA or "USING" in (second, third)
        elif keyword == "FUNCTION":
            found = second is not None and self._type(start + 2, end) is TokenType.DOT
        elif keyword == "COPY":
            found = self._is_thanosql_copy(start, end)
        elif keyword == "PREPROCESS":
            found = self._word(start + 2, end) == "USING"
        else:
            found = second in self.SECOND_WORDS.get(keyword, ())
        return keyword if found else None

    def _is_thanosql_copy(self, start: int, end: int) -> bool:
        # COPY name OPTIONS ... | COPY name FROM 'file' <end>; anything else is DuckDB's COPY.
        name = self._type(start + 1, end)
        if name is TokenType.IDENTIFIER:
            if self._word(start + 1, end) in ("FROM", "TO"):
                return False
        elif name is not TokenType.QUOTED_IDENTIFIER:
            return False
        after = self._word(start + 2, end)
        if after == "OPTIONS":
            return True
        path = self._type(start + 3, end)
        quoted = path in (TokenType.STRING, TokenType.QUOTED_IDENTIFIER)
        return after == "FROM" and quoted and start + 4 == end

    def _parse_nested(self, start: int, end: int, keyword: str) -> nodes.Statement:
        statement = self._parse_statement(start, end, keyword)
        if not isinstance(statement, nodes.TABLE_STATEMENTS):
            raise self._error(
                f"{keyword} cannot be used as a table: it returns no rows",
                self.tokens[start].span,
                "statements that return rows: " + ", ".join(TABLE_KEYWORDS),
            )
        return statement

    # ---------------------------------------------------------------- plain SQL and sources

    # <any SQL>, with "(" table_statement ")" wherever it stands
    def _parse_passthrough(self, start: int, end: int) -> nodes.PassThrough:
        first, last = self.tokens[start], self.tokens[end - 1]
        offset = first.span.start
        nested = []
        index = start
        while index < end:
            if self.tokens[index].type is TokenType.L_PAREN:
                close = self.closing[index]
                keyword = self._statement_form(index + 1, close)
                if keyword is not None:
                    statement = self._parse_nested(index + 1, close, keyword)
                    # The text between the parentheses, which the planner swaps for a query.
                    inside_start = self.tokens[index].span.end - offset
                    inside_end = self.tokens[close].span.start - offset
                    nested.append(nodes.Nested(inside_start, inside_end, statement))
                    index = close + 1
                    continue
            index += 1
        self.pos = end
        sql = self.source[first.span.start : last.span.end]
        return nodes.PassThrough(sql, tuple(nested), self._span(first, last))

    # AS ( query | "(" query ")" | table_statement | "(" table_statement ")" )
    def _parse_source(self, what: str = "AS and a query") -> nodes.Source:
        found = self._peek()
        hint = None
        if found.type is TokenType.IDENTIFIER and closest(found.text, ("OPTIONS",)):
            hint = "did you mean 'OPTIONS'?"
        self._expect("AS", what, hint)
        if self._peek().type is TokenType.L_PAREN and self.closing[self.pos] == self.end - 1:
            source = self._parse_query(self.pos + 1, self.end - 1, "a query inside the parentheses")
        else:
            source = self._parse_query(self.pos, self.end, "a query after AS")
        self.pos = self.end
        return source

    # query | table_statement     (runs to the end of the statement or of the parenthesis)
    def _parse_query(self, start: int, end: int, what: str) -> nodes.Source:
        saved = self.pos, self.end
        self.pos, self.end = start, end
        try:
            self._expect(lambda token: token.type is not TokenType.END, what, advance=False)
        finally:
            self.pos, self.end = saved
        keyword = self._statement_form(start, end)
        if keyword is None:
            return self._parse_statement(start, end, None)
        return self._parse_nested(start, end, keyword)

    # ---------------------------------------------------------------- extension statements

    # GET THANOSQL DATASET name [OPTIONS (...)] | GET THANOSQL MODEL name [OPTIONS (...)] [AS alias]
    def _parse_get(self) -> nodes.GetDataset | nodes.GetModel:
        start = self._advance()
        self._expect("THANOSQL", "THANOSQL after GET")
        kinds = ("DATASET", "MODEL")
        kind = self._expect(kinds, "DATASET or MODEL after GET THANOSQL", Choices("kinds", kinds))
        if kind.text.upper() == "DATASET":
            name = self._parse_name("a dataset name after GET THANOSQL DATASET")
            options = self._parse_options()
            return nodes.GetDataset(name, options, self._span_from(start))
        name = self._parse_name("a model name after GET THANOSQL MODEL")
        options = self._parse_options()
        alias = self._parse_name("a new model name after AS") if self._match("AS") else None
        return nodes.GetModel(name, options, alias, self._span_from(start))

    # LIST MODEL | LIST TABLE | LIST THANOSQL MODEL | LIST THANOSQL DATASET
    def _parse_list(self) -> nodes.ListObjects:
        start = self._advance()
        words = ("MODEL", "TABLE", "THANOSQL")
        hint = Choices("lists", LIST_CHOICES)
        word = self._expect(words, "MODEL, TABLE or THANOSQL after LIST", hint)
        what = word.text.lower()
        if what == "thanosql":
            kinds = ("MODEL", "DATASET")
            hint = Choices("kinds", kinds)
            kind = self._expect(kinds, "MODEL or DATASET after LIST THANOSQL", hint)
            what = f"thanosql {kind.text.lower()}"
        return nodes.ListObjects(what, self._span_from(start))

    # COPY name [OPTIONS (...)] FROM 'file' | 'folder/' | '<json records>'
    def _parse_copy(self) -> nodes.Copy:
        start = self._advance()
        table = self._parse_name("a table name after COPY")
        options = self._parse_options()
        self._expect("FROM", "FROM and a quoted path")
        path = self._parse_path("a quoted file, folder or JSON text after FROM")
        return nodes.Copy(table, options, path, self._span_from(start))

    # BUILD MODEL name USING algorithm [OPTIONS (...)] AS source
    def _parse_build(self) -> nodes.BuildModel:
        start = self._advance()
        self._expect("MODEL", "MODEL after BUILD")
        name = self._parse_name("a model name after BUILD MODEL")
        self._expect("USING", "USING and an algorithm after the model name")
        algorithm = self._parse_name("an algorithm name after USING", fold=False)
        options = self._parse_options()
        source = self._parse_source()
        return nodes.BuildModel(name, algorithm, options, source, self._span_from(start))

    # FIT MODEL name USING base_model [OPTIONS (...)] AS source
    def _parse_fit(self) -> nodes.FitModel:
        start = self._advance()
        self._expect("MODEL", "MODEL after FIT")
        name = self._parse_name("a model name after FIT MODEL")
        self._expect("USING", "USING and the model to start from after the model name")
        base_model = self._parse_name("the name of the model to start from after USING")
        options = self._parse_options()
        source = self._parse_source()
        return nodes.FitModel(name, base_model, options, source, self._span_from(start))

    # UPLOAD MODEL name [OPTIONS (...)] FROM 'file'
    def _parse_upload(self) -> nodes.UploadModel:
        start = self._advance()
        self._expect("MODEL", "MODEL after UPLOAD")
        name = self._parse_name("a model name after UPLOAD MODEL")
        options = self._parse_options()
        self._expect("FROM", "FROM and the quoted path of the model file")
        path = self._parse_path("a quoted file path after FROM")
        return nodes.UploadModel(name, options, path, self._span_from(start))

    # DELETE MODEL name
    def _parse_delete(self) -> nodes.DeleteModel:
        start = self._advance()
        self._expect("MODEL", "MODEL after DELETE (or DELETE FROM for rows)")
        name = self._parse_name("a model name after DELETE MODEL")
        return nodes.DeleteModel(name, self._span_from(start))

    # CONVERT USING model [OPTIONS (...)] AS source
    def _parse_convert(self) -> nodes.Convert:
        return self._parse_model_statement(nodes.Convert)

    # PREDICT USING model [OPTIONS (...)] AS source
    def _parse_predict(self) -> nodes.Predict:
        return self._parse_model_statement(nodes.Predict)

    # EVALUATE USING model [OPTIONS (...)] AS source
    def _parse_evaluate(self) -> nodes.Evaluate:
        return self._parse_model_statement(nodes.Evaluate)

    # GENERATE USING model [OPTIONS (...)] AS source
    def _parse_generate(self) -> nodes.Generate:
        return self._parse_model_statement(nodes.Generate)

    # TRANSFORM USING model [OPTIONS (...)] AS source
    def _parse_transform(self) -> nodes.Transform:
        return self._parse_model_statement(nodes.Transform)

    # KEYWORD USING model [OPTIONS (...)] AS source
    def _parse_model_statement(self, node_class):
        start = self._advance()
        self._expect("USING", f"USING after {start.text.upper()}")
        model = self._parse_name("a model name after USING")
        options = self._parse_options()
        source = self._parse_source()
        return node_class(model, options, source, self._span_from(start))

    # SEARCH (IMAGE|TEXT|VIDEO|AUDIO|KEYWORD) [inline_input] USING model [OPTIONS (...)] AS source
    def _parse_search(self) -> nodes.Search:
        start = self._advance()
        media = self._expect(SEARCH_MEDIA, "a media kind after SEARCH", Choices("media kinds", SEARCH_MEDIA))
        inline = self._parse_inline_input()
        self._expect("USING", "USING and a model name")
        model = self._parse_name("a model name after USING")
        options = self._parse_options()
        source = self._parse_source()
        span = self._span_from(start)
        return nodes.Search(media.text.lower(), model, options, source, inline, span)

    # (image | images | text | texts) = (string | [string, ...])
    def _parse_inline_input(self) -> nodes.InlineInput | None:
        first = self._peek()
        if first.type is not TokenType.IDENTIFIER or self._peek(1).type is not TokenType.EQ:
            return None
        self._expect(
            INLINE_INPUTS,
            "image, images, text or texts before '='",
            Choices("inputs", tuple(word.lower() for word in INLINE_INPUTS)),
        )
        kind = first.text.lower()
        self._advance()  # '='
        value_start = self._peek()
        value = self._parse_value(f"a quoted search input after {kind}=")
        strings = value if isinstance(value, tuple) else (value,)
        if not all(isinstance(item, str) for item in strings):
            raise self._error(
                f"{kind}= takes a quoted string or a list of quoted strings",
                self._span_from(value_start),
            )
        return nodes.InlineInput(kind, value, self._span_from(first))

    # PRINT (IMAGE|AUDIO|VIDEO) [OPTIONS (...)] AS source
    def _parse_print(self) -> nodes.Print:
        start = self._advance()
        hint = Choices("media kinds", PRINT_MEDIA)
        media = self._expect(PRINT_MEDIA, "IMAGE, AUDIO or VIDEO after PRINT", hint)
        options = self._parse_options()
        source = self._parse_source()
        return nodes.Print(media.text.lower(), options, source, self._span_from(start))

    # FUNCTION module.name [OPTIONS (...)] (AS source | FROM 'file')
    def _parse_function(self) -> nodes.Function:
        start = self._advance()
        module = self._parse_name("a module name after FUNCTION")
        self._expect(TokenType.DOT, "'.' and a function name after the module name")
        name = self._parse_name("a function name after '.'")
        options = self._parse_options()
        if self._match("FROM"):
            path = self._parse_path("a quoted file path after FROM")
            return nodes.Function(module, name, options, None, path, self._span_from(start))
        source = self._parse_source("AS and a query, or FROM and a quoted path")
        return nodes.Function(module, name, options, source, None, self._span_from(start))

    # PREPROCESS (TEXT|IMAGE|AUDIO|VIDEO) USING method [OPTIONS (...)] FROM 'file'
    def _parse_preprocess(self) -> nodes.Preprocess:
        start = self._advance()
        hint = Choices("media kinds", PREPROCESS_MEDIA)
        media = self._expect(PREPROCESS_MEDIA, "a media kind after PREPROCESS", hint)
        self._expect("USING", "USING and a method name")
        method = self._parse_name("a method name after USING")
        options = self._parse_options()
        self._expect("FROM", "FROM and a quoted file path")
        path = self._parse_path("a quoted file path after FROM")
        span = self._span_from(start)
        return nodes.Preprocess(media.text.lower(), method, options, path, span)

    # ---------------------------------------------------------------- options and literals

    # [OPTIONS ( [name = value {, name = value}] [,] )]
    def _parse_options(self) -> tuple[nodes.Option, ...]:
        if not self._match("OPTIONS"):
            return ()
        options = self._parse_wrapped(
            self._parse_option,
            "'(' after OPTIONS",
            "',' or ')' in OPTIONS",
            "separate options with commas",
        )
        seen = set()
        for option in options:
            if option.name in seen:
                raise self._error(f"option '{option.name}' is given twice", option.span)
            seen.add(option.name)
        return tuple(options)

    # name = value
    def _parse_option(self) -> nodes.Option:
        first = self._expect(TokenType.IDENTIFIER, "an option name")
        name = first.text.lower()
        self._expect(TokenType.EQ, f"'=' after option '{name}'")
        value = self._parse_value(f"a value for option '{name}'", name)
        return nodes.Option(name, value, self._span_from(first))

    # string | number | -number | True | False | None | "[" [value {, value}] [,] "]"
    def _parse_value(self, what: str, option: str | None = None) -> object:
        found = self._peek()
        if found.type is TokenType.IDENTIFIER and option:
            hint = f"put text in quotes: {option}='{found.text}'"
        else:
            hint = "a value is a quoted string, a number, True, False, None or a [list]"
        token = self._expect(self._starts_value, what, hint, advance=False)
        if token.type is TokenType.L_BRACKET:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self._error("lists nest too deeply", token.span)
            items = self._parse_wrapped(
                lambda: self._parse_value("a list item"),
                "'['",
                "',' or ']' in the list",
                brackets=(TokenType.L_BRACKET, TokenType.R_BRACKET),
            )
            self.depth -= 1
            return tuple(items)
        self._advance()
        if token.type in (TokenType.STRING, TokenType.QUOTED_IDENTIFIER):
            return _string_value(token)
        if token.type is TokenType.NUMBER:
            return _number_value(token.text)
        if token.type is TokenType.OPERATOR:  # a sign; _starts_value saw the number after it
            number = _number_value(self._advance().text)
            return -number if token.text == "-" else number
        return {"TRUE": True, "FALSE": False, "NONE": None}[token.text.upper()]

    def _starts_value(self, token: Token) -> bool:
        if token.type is TokenType.OPERATOR:
            return token.text in ("-", "+") and self._peek(1).type is TokenType.NUMBER
        if token.type is TokenType.IDENTIFIER:
            return token.text.upper() in ("TRUE", "FALSE", "NONE")
        return token.type in (TokenType.STRING, TokenType.QUOTED_IDENTIFIER, TokenType.NUMBER, TokenType.L_BRACKET)

    # 'text' | "text"       (a double-quoted path is a string here, as the 2022 docs write it)
    def _parse_path(self, what: str) -> str:
        quoted = (TokenType.STRING, TokenType.QUOTED_IDENTIFIER)
        return _string_value(self._expect(lambda token: token.type in quoted, what))

    # identifier | "quoted identifier"
    def _parse_name(self, what: str, fold: bool = True) -> str:
        found = self._peek()
        hint = None
        if found.type is TokenType.IDENTIFIER and found.text.upper() in self.NOT_A_NAME:
            word = found.text.upper()
            hint = f'{word} is a keyword; write "{word.lower()}" to use it as a name'
        token = self._expect(self._is_name, what, hint)
        if token.type is TokenType.QUOTED_IDENTIFIER:
            return token.text[1:-1].replace('""', '"')
        # Unquoted names fold to lower case, as the original did (its FAQ: names are lower case).
        return token.text.lower() if fold else token.text

    def _is_name(self, token: Token) -> bool:
        if token.type is TokenType.QUOTED_IDENTIFIER:
            return True
        return token.type is TokenType.IDENTIFIER and token.text.upper() not in self.NOT_A_NAME

    # ---------------------------------------------------------------- helpers

    def _parse_csv(self, parse_item: Callable[[], object], closing: TokenType) -> list:
        """item {, item} [,] up to (not including) the ``closing`` token; may be empty."""
        items = []
        while self._peek().type is not closing:
            items.append(parse_item())
            if not self._match(TokenType.COMMA):
                break
        return items

    def _parse_wrapped(
        self,
        parse_item: Callable[[], object],
        opening: str,
        closing: str,
        hint: str | None = None,
        brackets: tuple[TokenType, TokenType] = (TokenType.L_PAREN, TokenType.R_PAREN),
    ) -> list:
        """( item {, item} [,] ); ``opening`` and ``closing`` describe the brackets in errors."""
        self._expect(brackets[0], opening)
        items = self._parse_csv(parse_item, brackets[1])
        self._expect(brackets[1], closing, hint)
        return items

    def _peek(self, offset: int = 0) -> Token:
        index = self.pos + offset
        if index < self.end:
            return self.tokens[index]
        return self._end_token()

    def _advance(self) -> Token:
        token = self._peek()
        if self.pos < self.end:
            self.pos += 1
        return token

    def _match(self, expected: Expected) -> Token | None:
        if self._accepts(self._peek(), expected):
            return self._advance()
        return None

    def _expect(self, expected: Expected, what: str, hint: str | Choices | None = None, advance: bool = True) -> Token:
        """The next token if it is ``expected``; else "expected <what>, found <token>"."""
        found = self._peek()
        if self._accepts(found, expected):
            return self._advance() if advance else found
        if isinstance(hint, Choices):
            written = found.text if found.type is TokenType.IDENTIFIER else None
            hint = choices_hint(written, hint.names, hint.what)
        raise self._error(f"expected {what}, found {_describe(found)}", found.span, hint)

    def _accepts(self, token: Token, expected: Expected) -> bool:
        if isinstance(expected, TokenType):
            return token.type is expected
        if callable(expected):
            return expected(token)
        words = (expected,) if isinstance(expected, str) else expected
        assert self.KEYWORDS.issuperset(words), words
        return token.type is TokenType.IDENTIFIER and token.text.upper() in words

    def _end_token(self) -> Token:
        """A stand-in for the end of the scope: its ')', or the place after its last token."""
        if self._in_parentheses():
            return Token(TokenType.END, ")", self.tokens[self.end].span)
        last = self.tokens[self.end - 1] if self.end > 0 else None
        if last is None:
            return Token(TokenType.END, "", span_at(self.source, 0))
        if "\n" in last.text:
            return Token(TokenType.END, "", span_at(self.source, last.span.end))
        column = last.span.column + len(last.text)
        span = Span(last.span.end, last.span.end + 1, last.span.line, column)
        return Token(TokenType.END, "", span)

    def _in_parentheses(self) -> bool:
        return self.end < len(self.tokens) and self.tokens[self.end].type is TokenType.R_PAREN

    def _word(self, index: int, end: int) -> str | None:
        """The upper-cased bare word at ``index`` (before ``end``), or None."""
        if index < end and self.tokens[index].type is TokenType.IDENTIFIER:
            return self.tokens[index].text.upper()
        return None

    def _type(self, index: int, end: int) -> TokenType | None:
        return self.tokens[index].type if index < end else None

    def _match_parentheses(self, start: int, end: int) -> None:
        """Pair every '(' with its ')' in tokens[start:end], or raise on the first stray one."""
        stack = []
        for index in range(start, end):
            kind = self.tokens[index].type
            if kind is TokenType.L_PAREN:
                stack.append(index)
            elif kind is TokenType.R_PAREN:
                if not stack:
                    message = "unbalanced parentheses: this ')' has no matching '('"
                    raise self._error(message, self.tokens[index].span)
                self.closing[stack.pop()] = index
        if stack:
            message = "unbalanced parentheses: this '(' is never closed"
            raise self._error(message, self.tokens[stack[-1]].span)

    def _span(self, first: Token, last: Token) -> Span:
        return Span(first.span.start, last.span.end, first.span.line, first.span.column)

    def _span_from(self, first: Token) -> Span:
        """From ``first`` to the last token consumed."""
        return self._span(first, self.tokens[max(self.pos - 1, 0)])

    def _error(self, message: str, span: Span, hint: str | None = None) -> ThanoSQLSyntaxError:
        return ThanoSQLSyntaxError(message, hint=hint, span=span, source=self.source)


# Every keyword that starts an extension statement (for docs tests and hints).
STATEMENT_KEYWORDS = tuple(Parser.STATEMENT_PARSERS)


def _describe(token: Token) -> str:
    if token.type is TokenType.END:
        return "')'" if token.text == ")" else "end of statement"
    text = token.text if len(token.text) <= 30 else token.text[:27] + "..."
    if token.type in (TokenType.STRING, TokenType.DOLLAR_STRING):
        return f"string {text}"
    return f"'{text}'"


def _string_value(token: Token) -> str:
    text = token.text
    if token.type is TokenType.QUOTED_IDENTIFIER:
        return text[1:-1].replace('""', '"')
    if text[0] in "eE":
        return _unescape(text[2:-1])
    return text[1:-1].replace("''", "'")


def _unescape(body: str) -> str:
    """The value of an E'...' string body: backslash escapes and doubled quotes."""
    escapes = {"n": "\n", "t": "\t", "r": "\r"}
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(escapes.get(body[index + 1], body[index + 1]))
            index += 2
        elif body.startswith("''", index):
            out.append("'")
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _number_value(text: str) -> int | float:
    return float(text) if any(char in text for char in ".eE") else int(text)
