"""The ``thanosql`` command: run ThanoSQL from a shell.

    thanosql [-w DIR] [-e QUERY | FILE.sql ...] [--format table|csv|json] [--html PAGE]

Exit 0 on success, 1 on a user error (the message on stderr, no traceback). Messages go to
stderr, results to stdout; PRINT IMAGE prints the image paths (and, with --html, adds the grid
to a page a person can open).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import ThanoSQLError
from .session import connect


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="thanosql", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help=".sql files to run in order")
    parser.add_argument("-e", "--execute", action="append", default=[], metavar="QUERY", help="text to run (repeatable)")
    parser.add_argument("-w", "--workspace", help="workspace folder (default: THANOSQL_WORKSPACE or the current folder)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="how results are printed")
    parser.add_argument("--offline", action="store_true", default=None, help="never open a network connection")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where models run")
    parser.add_argument("--html", type=Path, metavar="PAGE", help="also write every result and image grid to this HTML page")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
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
                print(frame.to_string(index=False, max_rows=60, max_colwidth=60))
        if self.page is not None:
            self.sections.append(frame.head(50).to_html(index=False, max_cols=20))

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
    """Entry point of the ``thanosql`` command; returns the exit status."""
    args = _arguments(argv)
    output = _Output(args.format, args.html)
    scripts = [(f"-e {i + 1}", text) for i, text in enumerate(args.execute)]
    try:
        for path in args.files:
            try:
                scripts.append((str(path), path.read_text(encoding="utf-8")))
            except OSError as exc:
                raise ThanoSQLError(f"cannot read {path}: {exc.strerror}") from exc
        if not scripts:
            scripts.append(("stdin", sys.stdin.read()))
        settings = {"progress": not args.quiet, "notify": output.notice}
        if args.offline is not None:
            settings["offline"] = args.offline
        if args.device:
            settings["device"] = args.device
        with connect(args.workspace, **settings) as session:
            for name, text in scripts:
                for _statement, frame in session.run(text):
                    output.result(text, frame)
    except ThanoSQLError as exc:
        print(f"thanosql: error in {name if 'name' in locals() else 'arguments'}:", file=sys.stderr)
        print(exc.render(), file=sys.stderr)
        output.write_page("thanosql (stopped on an error)")
        return 1
    output.write_page("thanosql results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
