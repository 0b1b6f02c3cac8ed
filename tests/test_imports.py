"""Start-up stays light: loading the extension and plain SQL never import torch, nor sqlglot in the
default sql_dialect."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str, tmp_path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_load_ext_and_a_plain_select_do_not_import_torch(tmp_path):
    out = _run(
        """
        import sys
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        ip.run_line_magic("load_ext", "thanosql")
        frame = ip.run_cell_magic("thanosql", "", "SELECT 1 AS one")
        heavy = sorted(m for m in ("torch", "torchvision", "open_clip", "lightly", "sqlglot") if m in sys.modules)
        print(int(frame["one"][0]), heavy)
        """,
        tmp_path,
    )
    assert out.splitlines()[-1] == "1 []"


def test_parsing_and_planning_import_neither_duckdb_nor_torch(tmp_path):
    out = _run(
        """
        import sys
        from thanosql.parser import parse
        from thanosql.planner import plan
        plan(parse("SELECT * FROM (SEARCH IMAGE USING m OPTIONS (search_by='text', search_input='x') AS SELECT * FROM t)")[0])
        print(sorted(m for m in ("duckdb", "torch", "pandas") if m in sys.modules))
        """,
        tmp_path,
    )
    assert out == "[]"
