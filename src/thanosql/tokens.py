"""Cut a cell into tokens that remember where they came from.

``tokenize(source)`` returns every token except whitespace and comments; each token's span holds
0-based offsets into ``source`` (so the parser can slice plain SQL unchanged) and the 1-based line
and column of its start. Only an unterminated string, quoted identifier or comment, or a lone
surrogate character, is an error. ``code_stretches(source)`` tells code from strings and comments.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from enum import Enum, auto

from .errors import Span, ThanoSQLSyntaxError, span_at


class TokenType(Enum):
    IDENTIFIER = auto()  # bare word: a keyword or a name; the parser decides which
    QUOTED_IDENTIFIER = auto()  # "name" ("" stands for one ")
    STRING = auto()  # 'text' ('' stands for one '), or E'text' with backslash escapes
    DOLLAR_STRING = auto()  # $$text$$ or $tag$text$tag$
    NUMBER = auto()  # 1, 1.5, .5, 3e-5
    PARAMETER = auto()  # ?, $1, $name
    L_PAREN = auto()
    R_PAREN = auto()
    L_BRACKET = auto()
    R_BRACKET = auto()
    COMMA = auto()
    DOT = auto()
    SEMICOLON = auto()
    EQ = auto()
    DCOLON = auto()  # ::
    OPERATOR = auto()  # any other symbol: + - * / < >= -> || ...
    END = auto()  # made by the parser for "end of statement"; tokenize never produces it


@dataclass(frozen=True)
class Token:
    type: TokenType
    text: str  # exactly as written, quotes included
    span: Span


SINGLE_CHARS = {
    "(": TokenType.L_PAREN,
    ")": TokenType.R_PAREN,
    "[": TokenType.L_BRACKET,
    "]": TokenType.R_BRACKET,
    ",": TokenType.COMMA,
    ".": TokenType.DOT,
    ";": TokenType.SEMICOLON,
    "=": TokenType.EQ,
}

# Symbols are not glued together freely (as PostgreSQL does) so that ``batch_size=-1`` stays
# ``=`` then ``-``; only these pairs and triples are one token (the longest match wins).
MULTI_CHAR_OPERATORS = frozenset(
    {
        "->>", "#>>", "::", "->", "<=", ">=", "<>", "!=", "==", "||", "**", "//",
        "=>", ":=", "#>", "@>", "<@", "&&", "<<", ">>", "~~", "!~",
    }
)  # fmt: skip


def _is_word_start(char: str) -> bool:
    return char.isalpha() or char == "_"


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, dropping whitespace and comments.

    >>> [t.text for t in tokenize("SELECT 'a;b' -- note\\nFROM t;")]
    ['SELECT', "'a;b'", 'FROM', 't', ';']

    Raises ThanoSQLSyntaxError (span = the opening quote or ``/*``) for an unterminated
    string, quoted identifier, dollar-quoted string or block comment, and (span = the character)
    for a lone surrogate.
    """
    _refuse_lone_surrogates(source)
    return _Tokenizer(source).run()


# Tokens whose text is data, not code: a ``{{name}}`` inside one stays as written (DESIGN.md 16).
_DATA_TOKENS = frozenset({TokenType.STRING, TokenType.QUOTED_IDENTIFIER, TokenType.DOLLAR_STRING})


def code_stretches(source: str) -> list[tuple[int, int]]:
    """Offsets ``[start, end)`` of the parts of ``source`` outside strings, quoted identifiers and comments.

    >>> code_stretches("SELECT '{{a}}', 1 -- {{b}}")
    [(0, 7), (14, 18)]

    Never raises: the text from an unterminated quote or comment to the end is not code.
    """
    tokenizer = _Tokenizer(source)
    unread = len(source)
    try:
        tokenizer.run()
    except ThanoSQLSyntaxError as exc:
        unread = exc.span.start
    inert = [(t.span.start, t.span.end) for t in tokenizer.tokens if t.type in _DATA_TOKENS]
    inert += tokenizer.comments
    inert.append((unread, len(source)))
    stretches, position = [], 0
    for start, end in sorted(inert):
        if start > position:
            stretches.append((position, start))
        position = max(position, end)
    return stretches


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_lone_surrogates(source: str) -> None:
    # Python keeps each byte it could not decode as a lone surrogate (PEP 383, errors=
    # "surrogateescape"); UTF-8 cannot encode one, so DuckDB would refuse the text with a TypeError.
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ThanoSQLSyntaxError(
            f"a lone surrogate character (U+{ord(source[exc.start]):04X}) cannot be stored or sent to DuckDB",
            hint="the text likely came from a badly decoded file: read it again as UTF-8, or remove the character",
            span=span_at(source, exc.start),
            # The message quotes its line: shown with U+FFFD so that printing it cannot fail too.
            source=_LONE_SURROGATE.sub("\ufffd", source),
        ) from None


class _Tokenizer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0
        self.tokens: list[Token] = []
        self.comments: list[tuple[int, int]] = []  # offsets, for code_stretches()
        self.line_starts = [0] + [i + 1 for i, char in enumerate(source) if char == "\n"]

    def span(self, start: int, end: int) -> Span:
        line = bisect.bisect_right(self.line_starts, start)
        return Span(start, end, line, start - self.line_starts[line - 1] + 1)

    def add(self, type: TokenType, start: int, end: int) -> None:
        self.tokens.append(Token(type, self.source[start:end], self.span(start, end)))
        self.pos = end

    def fail(self, message: str, start: int, width: int, hint: str) -> ThanoSQLSyntaxError:
        return ThanoSQLSyntaxError(message, hint=hint, span=self.span(start, start + width), source=self.source)

    def run(self) -> list[Token]:
        source = self.source
        while self.pos < len(source):
            start = self.pos
            char = source[start]
            pair = source[start : start + 2]
            if char.isspace():
                end = start + 1
                while end < len(source) and source[end].isspace():
                    end += 1
                self.pos = end
            elif pair == "--":
                newline = source.find("\n", start)
                self.pos = len(source) if newline < 0 else newline
                self.comments.append((start, self.pos))
            elif pair == "/*":
                self.pos = self.block_comment_end(start)
                self.comments.append((start, self.pos))
            elif char == "'":
                self.add(TokenType.STRING, start, self.quoted_end(start, "'", "string"))
            elif char in "eE" and source[start + 1 : start + 2] == "'":
                self.add(TokenType.STRING, start, self.escape_string_end(start))
            elif char == '"':
                end = self.quoted_end(start, '"', "quoted identifier")
                self.add(TokenType.QUOTED_IDENTIFIER, start, end)
            elif char == "$":
                self.dollar(start)
            elif _is_digit(char) or (char == "." and _is_digit(source[start + 1 : start + 2])):
                self.add(TokenType.NUMBER, start, self.number_end(start))
            elif _is_word_start(char):
                end = start + 1
                while end < len(source) and _is_word_char(source[end]):
                    end += 1
                self.add(TokenType.IDENTIFIER, start, end)
            elif char == "?":
                self.add(TokenType.PARAMETER, start, start + 1)
            else:
                self.symbol(start)
        return self.tokens

    def symbol(self, start: int) -> None:
        for width in (3, 2):
            operator = self.source[start : start + width]
            if len(operator) == width and operator in MULTI_CHAR_OPERATORS:
                kind = TokenType.DCOLON if operator == "::" else TokenType.OPERATOR
                self.add(kind, start, start + width)
                return
        char = self.source[start]
        self.add(SINGLE_CHARS.get(char, TokenType.OPERATOR), start, start + 1)

    def quoted_end(self, start: int, quote: str, what: str) -> int:
        """End offset of a '...' or "..." token; a doubled quote stands for one."""
        source, index = self.source, start + 1
        while True:
            index = source.find(quote, index)
            if index < 0:
                inside = "text" if quote == "'" else "name"
                doubled = quote * 2
                hint = f"add a closing {quote} (write {doubled} for a {quote} inside the {inside})"
                raise self.fail(f"unterminated {what}", start, 1, hint)
            if source.startswith(quote * 2, index):
                index += 2
                continue
            return index + 1

    def escape_string_end(self, start: int) -> int:
        """End offset of E'...', where a backslash escapes the next character."""
        source, index = self.source, start + 2
        while index < len(source):
            char = source[index]
            if char == "\\" or source.startswith("''", index):
                index += 2
            elif char == "'":
                return index + 1
            else:
                index += 1
        raise self.fail("unterminated string", start, 2, "add a closing '")

    def block_comment_end(self, start: int) -> int:
        # Block comments nest in DuckDB and PostgreSQL: /* a /* b */ c */ is one comment.
        source, index, depth = self.source, start + 2, 1
        while depth:
            opening = source.find("/*", index)
            closing = source.find("*/", index)
            if closing < 0:
                raise self.fail("unterminated comment", start, 2, "add a closing */")
            if 0 <= opening < closing:
                depth, index = depth + 1, opening + 2
            else:
                depth, index = depth - 1, closing + 2
        return index

    def dollar(self, start: int) -> None:
        """$$...$$ and $tag$...$tag$ strings; $1 and $name parameters; else a lone symbol."""
        source, index = self.source, start + 1
        if index < len(source) and _is_digit(source[index]):
            while index < len(source) and _is_digit(source[index]):
                index += 1
            self.add(TokenType.PARAMETER, start, index)
            return
        if index < len(source) and _is_word_start(source[index]):
            while index < len(source) and (source[index].isalnum() or source[index] == "_"):
                index += 1
        if not source.startswith("$", index):
            kind = TokenType.PARAMETER if index > start + 1 else TokenType.OPERATOR
            self.add(kind, start, index)
            return
        delimiter = source[start : index + 1]
        closing = source.find(delimiter, index + 1)
        if closing < 0:
            message, hint = "unterminated dollar-quoted string", f"add a closing {delimiter}"
            raise self.fail(message, start, len(delimiter), hint)
        self.add(TokenType.DOLLAR_STRING, start, closing + len(delimiter))

    def number_end(self, start: int) -> int:
        source, index = self.source, start
        while index < len(source) and _is_digit(source[index]):
            index += 1
        if source.startswith(".", index) and not source.startswith("..", index):
            index += 1
            while index < len(source) and _is_digit(source[index]):
                index += 1
        if source[index : index + 1] in ("e", "E"):
            exponent = index + 1
            if source[exponent : exponent + 1] in ("+", "-"):
                exponent += 1
            if _is_digit(source[exponent : exponent + 1] or "x"):
                index = exponent
                while index < len(source) and _is_digit(source[index]):
                    index += 1
        return index
