"""thanosql: the ThanoSQL notebook dialect (SQL with machine learning) on an embedded DuckDB.

Modules, in the order they depend on each other:
  errors      ThanoSQLError and its kinds; spans and caret rendering
  tokens      tokenize(source) -> tokens with spans
  options     OPTIONS each statement takes (names, defaults, ranges, legacy spellings)
  nodes       the statements, as frozen dataclasses, and STATEMENTS: one record per statement
              (keywords, node, parse method, OPTIONS tables, handler or 'not supported')
  parser      parse(source) -> list of statements (plain SQL kept as a slice of the text)
  planner     statement -> Plan (steps for extension statements, SQL over their results)
  sourcemap   where each character of the SQL sent to DuckDB comes from in the cell
  dialects    sql_dialect: other dialects' plain SQL transpiled to DuckDB (sqlglot, imported only then)
  duckdb_errors  DuckDB's errors at the cell's line and column, with the hints that help
  disk        a full disk as a clear error; free space checked before long jobs
  engines     the engine setting ('local' | 'ray'): the Ray cluster found or started (Ray imported only then)
  stores      named folders (models, datasets): names that stay names, atomic replacement
              seen by every process, recovery after a kill
  database    the workspace database, opened per use and shared by processes and threads
  caches      what a session keeps between statements (models, query embeddings, indexes)
  session     Session: a workspace's database, stores and caches; runs plans, calls handlers
  transfer    streamed, hashed HTTP downloads
  search      exact top-k cosine search over a cached index of a table's column, in int8 codes
              (exact scores, codes, kernels, index, plain-scan recognition, the cached engine)
  statements  handlers of the extension statements (data, models, convert, search, ...)
  datasets    dataset manifest, checksummed downloads, built-in generated datasets
  models      model store, CLIP (open_clip) and SimCLR (lightly) adapters, weights,
              the CPU image tower on oneDNN-packed layers
  ray_convert, ray_training  CONVERT on a Ray Data actor pool; BUILD and FIT MODEL on Ray Train
  display     image grids and results as pictures or text
  magic       %%thanosql (the IPython boundary); cli: the `thanosql` command
"""

from .errors import (
    DatasetError,
    ExecutionError,
    ModelError,
    PlanError,
    ThanoSQLError,
    ThanoSQLSyntaxError,
)
from .parser import parse

__all__ = [
    "DatasetError",
    "ExecutionError",
    "ModelError",
    "PlanError",
    "Session",
    "Settings",
    "ThanoSQLError",
    "ThanoSQLSyntaxError",
    "connect",
    "parse",
    "load_ipython_extension",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The session (and with it DuckDB and pandas) loads on first use, so that parsing and
    # planning stay importable on their own.
    if name in ("Session", "Settings", "connect"):
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'thanosql' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """``%load_ext thanosql``: register the %thanosql / %%thanosql magics."""
    from .magic import ThanoSQLMagic

    ipython.register_magics(ThanoSQLMagic)
