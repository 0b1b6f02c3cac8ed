"""Every error a user can cause, and how it is shown.

One root, `ThanoSQLError`. An error that knows where in the cell it comes from carries a `Span`
and renders as ``Line L, column C: message``, the source line, a caret line under the span and an
optional ``Hint:``; plain text, no ANSI codes. `_render_traceback_` makes IPython show only that.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A stretch of the cell text: 0-based offsets ``[start, end)``, 1-based line and column of start."""

    start: int
    end: int
    line: int
    column: int


def span_at(source: str, start: int, end: int | None = None) -> Span:
    """Span(start, end) with the line and column computed from ``source``.

    >>> span_at("SELECT 1;\\nFOO", 10)
    Span(start=10, end=11, line=2, column=1)
    """
    end = start + 1 if end is None else end
    line = source.count("\n", 0, start) + 1
    column = start - (source.rfind("\n", 0, start) + 1) + 1
    return Span(start, max(end, start), line, column)


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to a misspelt ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if not matches:
        return None
    return next(c for c in choices if c.lower() == matches[0])


def choices_hint(name: str | None, choices: Sequence[str], what: str) -> str:
    """``did you mean 'x'? valid <what>: a, b, c`` (the first part only when something is close)."""
    choices = list(choices)
    listing = f"valid {what}: {', '.join(choices)}" if choices else f"no {what} exist yet"
    near = closest(name, choices) if name else None
    return f"did you mean '{near}'? {listing}" if near else listing


class ThanoSQLError(Exception):
    """An error the user caused; shown without a traceback.

    ``span`` points into ``source`` (the cell text); the session fills ``source`` in when an error
    raised deep in a handler reaches it without one.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        span: Span | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.span = span
        self.source = source

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def render(self) -> str:
        """The text a user sees: position, message, source line, carets, hint."""
        parts = []
        if self.span is not None and self.source is not None:
            parts.append(f"Line {self.span.line}, column {self.span.column}: {self.message}")
            lines = self.source.split("\n")
            text = lines[self.span.line - 1] if self.span.line - 1 < len(lines) else ""
            start = self.span.column - 1
            # A span that runs past its line is underlined to the end of that line.
            width = max(1, min(self.span.end - self.span.start, max(len(text) - start, 1)))
            parts.append(text)
            parts.append(" " * start + "^" * width)
        elif self.span is not None:
            parts.append(f"Line {self.span.line}, column {self.span.column}: {self.message}")
        else:
            parts.append(self.message)
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback (see IPython's InteractiveShell).
        return self.render().split("\n")


class ThanoSQLSyntaxError(ThanoSQLError):
    """The tokenizer or parser could not read the cell; always carries a span."""


class PlanError(ThanoSQLError):
    """A statement that reads well but asks for something impossible: bad option, unknown column."""


class ModelError(ThanoSQLError):
    """Unknown model, missing weights, or a model that cannot do what was asked."""


class DatasetError(ThanoSQLError):
    """Manifest, download, checksum or dataset layout problems."""


class Interrupted(ThanoSQLError):
    """Ctrl-C stopped a statement (its changes undone); the command line exits 130 for it."""


class ExecutionError(ThanoSQLError):
    """DuckDB refused a statement; carries the SQL that was sent."""

    def __init__(self, message: str, *, sql: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.sql = sql
