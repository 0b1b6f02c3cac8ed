"""The IPython boundary: ``%thanosql`` (line) and ``%%thanosql`` (cell) magics.

Thin by design: read the magic line, substitute ``{{name}}`` variables (in code only, never inside
strings or comments), hand the text to the Session, show what comes back. A ThanoSQLError shows
as its message alone (its ``_render_traceback_``); anything else is a bug and keeps its traceback.
``%config ThanoSQLMagic.debug = True`` shows full tracebacks for user errors too.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope
from IPython.display import display
from traitlets import Bool, Int, Unicode, observe
from traitlets.config.configurable import Configurable

from .display import ResultFrame
from .errors import ThanoSQLError, span_at
from .session import Session, connect
from .tokens import code_stretches

# `{{ name }}`: a notebook variable, rendered as a SQL literal (never pasted raw).
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class _LineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit the kernel
        raise ThanoSQLError(f"%thanosql: {message}", hint=self.format_usage().strip())


def _line_parser() -> _LineParser:
    parser = _LineParser(prog="%thanosql", add_help=False)
    parser.add_argument("-o", "--out", help="store the result in this notebook variable")
    parser.add_argument("-w", "--workspace", help="workspace folder")
    parser.add_argument("--offline", action="store_true", default=None, help="never use the network")
    parser.add_argument("--online", dest="offline", action="store_false", help="allow downloads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--manifest", help="datasets manifest file")
    return parser


def render_literal(value: Any, name: str | None = None) -> str:
    """A Python value as a literal for a cell: strings quoted with '' escapes, numbers as is.

    >>> render_literal("it's")
    "'it''s'"

    numpy scalars count as the Python numbers and booleans they hold, and numpy arrays as lists
    (an embedding for search_input, its float32 values exact). ``name`` (the notebook variable)
    is named in the error for a value no literal can hold, such as NaN.
    """
    numpy = sys.modules.get("numpy")  # a numpy value exists only once numpy is imported
    if numpy is not None and isinstance(value, numpy.generic):
        # np.float64 passes isinstance(float), but its repr is 'np.float64(1.5)' (numpy 2).
        value = value.item()
    if numpy is not None and isinstance(value, numpy.ndarray):
        value = value.tolist()
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and not math.isfinite(value):
        raise _not_finite(value, name)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_literal(v, name) for v in value) + "]"
    if hasattr(value, "__fspath__"):
        return render_literal(str(value))
    raise ThanoSQLError(
        f"cannot put a {type(value).__name__} into a query",
        hint="{{name}} takes strings, numbers, booleans, None and lists of them",
    )


def _not_finite(value: float, name: str | None) -> ThanoSQLError:
    what = f"notebook variable '{name}'" if name else "value"
    return ThanoSQLError(
        f"the {what} is {value!r}, which cannot be written as a SQL literal",
        hint="replace it first (None for a missing value), or write 'NaN'::DOUBLE or "
        "'Infinity'::DOUBLE in the query if you mean that number",
    )


def substitute(text: str, namespace: dict[str, Any]) -> str:
    """Replace each ``{{name}}`` in the code of ``text`` by the variable's value as a literal.

    >>> substitute("SELECT {{n}}, '{{n}}' -- {{n}}", {"n": 2})
    "SELECT 2, '{{n}}' -- {{n}}"

    Inside strings, quoted identifiers and comments it stays as written: a value pasted there
    could close the quote or end the comment and run as code (DESIGN.md, decision 16).
    """
    pieces, copied = [], 0
    for start, end in code_stretches(text):
        for match in _TEMPLATE.finditer(text, start, end):
            pieces += [text[copied : match.start()], _render_variable(text, match, namespace)]
            copied = match.end()
    pieces.append(text[copied:])
    return "".join(pieces)


def _render_variable(text: str, match: re.Match, namespace: dict[str, Any]) -> str:
    name, span = match.group(1), span_at(text, match.start(), match.end())
    if name not in namespace:
        raise ThanoSQLError(
            f"no notebook variable named '{name}'",
            span=span,
            source=text,
            hint="define it in a Python cell first",
        )
    try:
        return render_literal(namespace[name], name)
    except ThanoSQLError as exc:
        exc.span, exc.source = span, text
        raise


@magics_class
class ThanoSQLMagic(Magics, Configurable):
    """``%%thanosql`` runs a cell of ThanoSQL; ``%thanosql STATEMENT`` returns its result."""

    debug = Bool(False, help="Show full tracebacks for user errors too.").tag(config=True)
    workspace = Unicode(None, allow_none=True, help="Workspace folder (default: THANOSQL_WORKSPACE or cwd).").tag(
        config=True
    )
    thumbnail_size = Int(160, help="Side of PRINT IMAGE thumbnails, in pixels.").tag(config=True)
    sql_dialect = Unicode(
        None, allow_none=True, help="Dialect of plain SQL: 'duckdb' (as written) or e.g. 'postgres' (sqlglot)."
    ).tag(config=True)
    engine = Unicode(
        None, allow_none=True, help="Where CONVERT, BUILD and FIT MODEL run: 'local' or 'ray' (a Ray cluster)."
    ).tag(config=True)

    def __init__(self, shell=None, **kwargs) -> None:
        Configurable.__init__(self, config=shell.config if shell else None)
        Magics.__init__(self, shell=shell, **kwargs)
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            traits = {
                name: getattr(self, name) for name in ("sql_dialect", "engine") if getattr(self, name) is not None
            }
            self._session = connect(self.workspace, notify=self._show, thumbnail_size=self.thumbnail_size, **traits)
        return self._session

    @observe("sql_dialect", "engine")
    def _setting_changed(self, change) -> None:
        # %config ThanoSQLMagic.sql_dialect = 'postgres' (or .engine = 'ray') applies to the open
        # session at once.
        if self._session is not None:
            self._session.configure(**{change["name"]: change["new"]})

    @staticmethod
    def _show(obj: Any) -> None:
        if isinstance(obj, str):
            print(obj, flush=True)  # a statement's label shows before the statement runs
        else:
            display(obj)

    @needs_local_scope
    @line_cell_magic
    def thanosql(self, line: str = "", cell: str | None = None, local_ns: dict | None = None):
        """Run ThanoSQL. Line: ``%thanosql [-o NAME] [-w DIR] [--offline] [STATEMENT]``."""
        try:
            return self._run(line, cell, {**self.shell.user_ns, **(local_ns or {})})
        except ThanoSQLError as exc:
            if self.debug:
                raise RuntimeError(str(exc)) from exc
            raise

    def _run(self, line: str, cell: str | None, namespace: dict[str, Any]):
        line = line.strip()
        first = line.split(None, 1)[0] if line else ""
        if first.upper().startswith("API_TOKEN"):
            print("API_TOKEN is not needed: thanosql runs locally (ignored).")
            return None
        if "://" in first:
            print("An engine URL is not needed: thanosql runs locally (ignored).")
            return None
        args, statement = split_magic_line(line)
        if cell is not None and statement:
            raise ThanoSQLError(
                f"unexpected text after %%thanosql: {statement!r}",
                hint="put the statement in the cell body; the magic line takes options such as -o NAME",
            )
        self._apply_options(args)
        text = cell if cell is not None else statement
        if not text.strip():
            return None
        result = self.session.execute(substitute(text, namespace))
        if result is not None:
            result = ResultFrame(result)  # NULL for every missing value (display.py)
        if args.out:
            self.shell.user_ns[args.out] = result
        return result

    def _apply_options(self, args: argparse.Namespace) -> None:
        changes = {
            key: value
            for key, value in (
                ("offline", args.offline),
                ("device", args.device),
                ("datasets_manifest", args.manifest),
            )
            if value is not None
        }
        if args.workspace:
            self._switch_workspace(args.workspace, changes)
        elif changes:
            self.session.configure(**changes)

    def _switch_workspace(self, workspace: str, changes: dict[str, Any]) -> None:
        """Open a session on ``workspace``, and only once it is open close the current one.

        So a workspace that cannot be opened (a file, a folder that cannot be made) leaves the
        current session as it was, and the next cell still runs; Session.configure is not used
        for this, as it changes the session in place.
        """
        old = self._session
        if old is not None and old.settings.workspace == Path(workspace).expanduser().resolve():
            if changes:
                old.configure(**changes)
            return
        settings = {"thumbnail_size": self.thumbnail_size}
        if old is not None:  # the new session keeps every other setting of the current one
            settings = {f.name: getattr(old.settings, f.name) for f in fields(old.settings) if f.init}
            del settings["workspace"]
        self._session = connect(workspace, notify=self._show, **{**settings, **changes})
        if old is not None:
            old.close()


# Options that take a value; the others are switches.
_VALUED = {"-o", "--out", "-w", "--workspace", "--device", "--manifest"}
_OPTION_WORD = re.compile(r"""\s*(--?[A-Za-z][\w-]*)""")
_OPTION_VALUE = re.compile(r"""(?:\s+|=)("[^"]*"|'[^']*'|[^\s'"]+)""")


def split_magic_line(line: str) -> tuple[argparse.Namespace, str]:
    """Leading options of a magic line, then the statement that follows them.

    >>> split_magic_line("-o df SELECT 1")
    (Namespace(out='df', ...), 'SELECT 1')
    """
    taken: list[str] = []
    position = 0
    while match := _OPTION_WORD.match(line, position):
        taken.append(match.group(1))
        position = match.end()
        if match.group(1) in _VALUED:
            value = _OPTION_VALUE.match(line, position)
            if value is None:
                break  # argparse reports the missing value
            taken.append(value.group(1).strip("'\""))
            position = value.end()
    return _line_parser().parse_args(taken), line[position:].strip()
