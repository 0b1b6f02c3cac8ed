"""Exact top-k cosine search over an embedding column, fast because a compact copy is cached.

``search(Source.of(session), sql, column, query, top_k=k)`` returns the rows of ``sql`` ranked by
the cosine similarity of ``column`` to ``query``: exactly the rows and order a float64 brute force
gives (highest first, ties in input order, rows without a usable embedding last with a NaN score).

Modules, each using only those above it (none uses the session or the statements):
  exact    float64 cosines, the order of an answer, Arrow columns as matrices
  codes    embeddings as two int8 levels per row, with the norms the bounds need
  kernels  products of int8 codes with a query and their error bounds (int8, bfloat16, fbgemm)
  index    CompactIndex: screens a query down to about k rows; build_index
  scan     a plain scan of one table, recognised on DuckDB's parse tree
  engine   search(): the index cache, its checks against writes, the direct fallback; Source

Design (why it beats NumPy's brute force, and stays exact):

* What is slow. At 1M x 512, NumPy's float32 matrix-vector product reads 2 GB (105-150 ms on
  this project's two-core machine, with its neighbours' load), DuckDB's
  ``array_cosine_similarity`` scan 4-5x that, and merely reading the column out of DuckDB into
  NumPy costs more than either (about 1.4 s). So a query may read only a few rows from DuckDB,
  and a quarter of those bytes from memory, with integer kernels.
* What is cached. For a plain scan of one table (below), a ``CompactIndex`` of the column: each
  row normalised and quantised in two int8 levels with per-row scales, ``u = s*c + t*r + f``
  (``c`` the codes, ``r`` the codes of the residual ``e = u - s*c``), the norms the bounds need,
  and the table's rowids; for 16k rows or more (of 512 values), the first level once more,
  packed for fbgemm's int8 GEMM. At 1M x 512: 1.5 GB against 2 GB of float32.
* What a query reads. The first level of every row (n*d bytes), with the fastest int8 kernel
  the machine has passed a check for (kernels.py): fbgemm's GEMM on the packed codes (the
  query on an 8-bit grid; 17-22 ms at 1M x 512 on two cores), else torch's int8-weight GEMV
  (bfloat16 query), else ``torch._int_mm``. Then both levels of the few thousand rows left,
  with exact int8 products against the query in int8 levels; then about k rows from DuckDB.
* Why it is exact. Every estimate comes with a bound that holds for every row: Cauchy-Schwarz
  on what the codes leave out (``|e|``, and the query's distance to its grid or its bfloat16
  rounding), plus the kernel's float rounding, plus index.ROUNDING_SLACK. The k-th largest lower
  bound ``L`` is at most the true k-th best score, so every row of the true top k (ties
  included) has an upper bound ``>= L``. The survivors are bounded again with both levels
  (``|cos - v.(s*c + t*r)| <= |f|`` plus the query levels' remainder, about 1e-7), which leaves
  about k rows. Only those are fetched from DuckDB by rowid and scored exactly, in float64 from
  their stored float32 values, each row summed on its own (identical embeddings get identical
  scores, so ties fall back to input order).
* When it is used, and WHERE (scan.py). The AS query must be one SELECT of ``*`` or plain
  columns from one base table, with an optional WHERE and nothing else (no joins, grouping,
  ORDER BY, LIMIT, DISTINCT, CTEs, samples); this is decided on DuckDB's own parse tree
  (``json_serialize_sql``), never on the SQL text, and the SQL we send is rebuilt from that tree
  (``json_deserialize_sql``).
  A WHERE becomes a row mask: ``SELECT rowid FROM t WHERE ...`` (the user's predicate, run by
  DuckDB) mapped onto the index; a small selection is scored exactly without screening.
  Anything else (joins, computed columns, views, nested results; ``top_k=None`` and the inline
  era, which need every row anyway) is searched directly over the query's rows: still exact,
  only without the cache.
* How it stays correct when the table changes, in this process or any other (engine.py). Each
  index remembers the database's change token (thanosql/database.py: the database and WAL files'
  size, time and inode, which every commit of any process moves, and this process's write count)
  and its table's fingerprint: row count and storage layout (``pragma_storage_info``: DuckDB stores
  inserted rows, and updated list or array rows, as new rows in new or longer segments). Before
  each search the token is compared (two stat calls); when it moved, the fingerprint is taken
  again (about 0.15 s at 1M x 512, against 8 s for a rebuild): the same, the index is kept (a
  write to another table); else it is rebuilt. The query that fetches the candidates by rowid
  also counts the table's rows (one round trip), and a sample of the fetched rows is
  re-quantised against their codes: a count other than the index's, a candidate missing
  (DuckDB gives an updated row a new rowid) or changed rebuilds the index and searches again.
"""

from .codes import Quantised, quantise
from .engine import Ranking, Source, clear, search
from .exact import exact_scores, rank, to_matrix, unit_vector
from .index import CompactIndex, build_index
from .kernels import PackedCodes, first_level_products, int8_matvec, int8_matvec_float
from .scan import TableScan, recognise_scan

__all__ = [
    "CompactIndex",
    "PackedCodes",
    "Quantised",
    "Ranking",
    "Source",
    "TableScan",
    "build_index",
    "clear",
    "exact_scores",
    "first_level_products",
    "int8_matvec",
    "int8_matvec_float",
    "quantise",
    "rank",
    "recognise_scan",
    "search",
    "to_matrix",
    "unit_vector",
]
