"""The ``thanosql`` command: run ThanoSQL from a shell.

    thanosql [-w DIR] [-e QUERY | FILE.sql ...] [--format table|csv|json] [--html PAGE] [--sql-dialect NAME]

Exit 0 on success, 1 on a user error (the message on stderr, no traceback), 130 on Ctrl-C.
Messages go to stderr, results to stdout; PRINT IMAGE prints the image paths (and, with --html,
adds the grid to a page a person can open). Files and stdin are read as UTF-8.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .display import frame_html, frame_text
from .errors import Interrupted, ThanoSQLError
from .session import Session, connect


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="thanosql", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help=".sql files to run in order")
    parser.add_argument(
        "-e", "--execute", action="append", default=[], metavar="QUERY", help="text to run (repeatable)"
    )
    parser.add_argument(
        "-w", "--workspace", help="workspace folder (default: THANOSQL_WORKSPACE or the current folder)"
    )
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="how results are printed")
    parser.add_argument("--offline", action="store_true", default=None, help="never open a network connection")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where models run")
    parser.add_argument(
        "--html", type=Path, metavar="PAGE", help="also write every result and image grid to this HTML page"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--sql-dialect",
        metavar="NAME",
        help="dialect of plain SQL: duckdb (default) or one sqlglot reads, e.g. postgres",
    )
    return parser.parse_args(argv)


class _Output:
    """Prints results and notices; collects them for the --html page when asked."""

    def __init__(self, fmt: str, page: Path | None) -> None:
        self.format = fmt
        self.page = page
        self.sections: list[str] = []

    def notice(self, obj: Any) -> None:
        if isinstance(obj, str):
            print(obj, file=sys.stderr)
            return
        print(str(obj))
        if self.page is not None and hasattr(obj, "_repr_html_"):
            self.sections.append(obj._repr_html_())

    def result(self, text: str, frame) -> None:
        if frame is None:
            return
        if self.format == "csv":
            print(frame.to_csv(index=False), end="")
        elif self.format == "json":
            print(frame.to_json(orient="records", default_handler=str))
        else:
            with _pandas_display():
                print(frame_text(frame, index=False, max_rows=60, max_colwidth=60))
        if self.page is not None:
            self.sections.append(frame_html(frame.head(50), index=False, max_cols=20))

    def write_page(self, title: str) -> None:
        if self.page is None:
            return
        from html import escape

        body = "\n<hr>\n".join(self.sections)
        self.page.parent.mkdir(parents=True, exist_ok=True)
        self.page.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse}"
            " td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style></head>"
            f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n",
            encoding="utf-8",
        )
        print(f"Wrote {self.page}", file=sys.stderr)


def _pandas_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 20)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``thanosql`` command; returns the exit status.

    >>> main(["--quiet", "--format", "csv", "-e", "SELECT 1 AS one"])
    one
    1
    0
    """
    try:
        return _run(_arguments(argv))
    except KeyboardInterrupt:
        # Ctrl-C is how a person stops a long CONVERT or BUILD MODEL: one line, and the status
        # shells expect after SIGINT (128 + 2), so a script running thanosql stops too.
        print("thanosql: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    output = _Output(args.format, args.html)
    scripts = [(f"-e {i + 1}", text) for i, text in enumerate(args.execute)]
    where = "arguments"
    try:
        for path in args.files:
            where = str(path)
            scripts.append((where, _read_script(path)))
        if not scripts:
            where = "stdin"
            scripts.append((where, _read_stdin()))
        where = "arguments"
        with _connect(args, output) as session:
            for where, text in scripts:  # noqa: B007 (the except clause names where it stopped)
                for _statement, frame in session.run(text):
                    output.result(text, frame)
    except Interrupted as exc:  # Ctrl-C inside a statement, which the session rolled back
        print(f"thanosql: {exc.message} (in {where})", file=sys.stderr)
        output.write_page("thanosql (interrupted)")
        return 130
    except ThanoSQLError as exc:
        print(f"thanosql: error in {where}:", file=sys.stderr)
        print(exc.render(), file=sys.stderr)
        output.write_page("thanosql (stopped on an error)")
        return 1
    output.write_page("thanosql results")
    return 0


def _read_script(path: Path) -> str:
    try:
        return _decode(str(path), path.read_bytes())
    except OSError as exc:
        raise ThanoSQLError(f"cannot read {path}: {exc.strerror}") from exc


def _read_stdin() -> str:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream put in place of stdin (tests, embedding)
        return sys.stdin.read()
    return _decode("stdin", stream.read())


def _decode(name: str, data: bytes) -> str:
    """``data`` as UTF-8 text; a byte that is not UTF-8 is a ThanoSQLError saying where it is."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ThanoSQLError(
            f"{name} must be UTF-8 text, but byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}) is not valid UTF-8",
            hint="convert it to UTF-8 first, for example: iconv -f latin1 -t utf-8 old.sql > new.sql",
        ) from exc


def _connect(args: argparse.Namespace, output: _Output) -> Session:
    settings = {"progress": not args.quiet, "notify": output.notice}
    if args.offline is not None:
        settings["offline"] = args.offline
    if args.device:
        settings["device"] = args.device
    if args.sql_dialect:
        settings["sql_dialect"] = args.sql_dialect
    return connect(args.workspace, **settings)


if __name__ == "__main__":
    sys.exit(main())
