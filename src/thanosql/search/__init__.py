"""Top-k cosine search over an embedding column: exact, fast because a compact copy is cached;
or, for large tables, approximate with a recall promise.

``search(Source.of(session), sql, column, query, top_k=k)`` returns the rows of ``sql`` ranked by
the cosine similarity of ``column`` to ``query``: exactly the rows and order a float64 brute force
gives (highest first, ties in input order, rows without a usable embedding last with a NaN score).
With ``recall=r`` below 1 (the default above engine.EXACT_LINE values), at least the share ``r``
of those rows, as measured on the table's own rows, with exact scores.

Modules, each using only those above it (none uses the session or the statements):
  exact    float64 cosines, the order of an answer, Arrow columns as matrices
  codes    embeddings as two int8 levels per row, with the norms the bounds need
  kernels  products of int8 codes with a query and their error bounds (int8, bfloat16, fbgemm)
  index    CompactIndex: screens a query down to about k rows; build_index
  scan     a plain scan of one table, recognised on DuckDB's parse tree
  approximate  ApproximateIndex: faiss IVF-SQ8 of the rows, its calibration, appended deltas
  stored   indexes kept in the workspace (thanosql-index/) for every process: save, load, check
  engine   search(): the index caches, their checks against writes, appends, the memory budget,
           the direct and streamed fallbacks; Source

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
  and its table's fingerprint: row count and storage layout, with each segment's min/max
  statistics (``pragma_storage_info``: DuckDB stores inserted rows, and updated list or array
  rows, as new rows in new or longer segments). Before each search the token is compared (two
  stat calls); when it moved, the fingerprint is taken again (about 0.15 s at 1M x 512, against
  8 s for a rebuild): the same, the index is kept (a write to another table); else it is read
  from the workspace if one there fits, or rebuilt. The query that fetches the candidates by rowid
  also counts the table's rows (one round trip), and a sample of the fetched rows is
  re-quantised against their codes: a count other than the index's, a candidate missing
  (DuckDB gives an updated row a new rowid) or changed rebuilds the index and searches again.
* What is kept in the workspace, for every process (stored.py). An index built for a table of
  the workspace database is saved beside it, in ``thanosql-index/<table>_<column>.<digest>/``:
  one ``.npy`` file per array (rowids, both levels, scales, norms, valid) and ``manifest.json``
  (format version, the table as DuckDB names it and the column, DuckDB's version, the table's
  fingerprint, the rows and dimension, and each file's size and sha256: whole up to 64 MB, on
  1,024 spread blocks beyond). It is written into a staging folder (``.<name>.<token>.partial/``,
  whose writer holds its ``.writing`` file locked) and renamed into place under the folder's lock
  (stores.FolderStore), so every process sees the old index or the new one, whole; folders that
  killed writers left are removed before the next index is read or saved. It is saved only if the
  table's fingerprint after the build is the one taken before it.
* When it is read. A process without the index in memory (a new kernel, the command line; or
  after a write) takes the table's fingerprint after the checkpoint, and reads the stored index
  only if the manifest names that table, column, format, DuckDB version and fingerprint, every
  file has its recorded size, checksum and type, and 128 rows spread over the table, fetched by
  rowid, quantise to its codes (a table dropped and made again, even with the same layout, fails
  this). The arrays are memory-mapped copy-on-write (the kernels take them as they are; nothing
  is written); a large index is packed for fbgemm again (its packed form cannot be saved), on a
  background thread: the first queries run the unpacked kernels meanwhile (index.py).
  Anything else (no index, a damaged or missing file, another fingerprint) is never trusted: the
  index is built from the table and replaces the stored one. Loading and building happen under
  an flock (``.<name>.building``) with the database open, so of two processes that want the same
  index, the second waits and reads what the first saved. The in-memory cache stays on top: a
  process that holds the index reads nothing from disk.
* Appends (tables.appended_rows). A stored index also records a seal: the table's last rowid
  and a digest of 256 rows at rowids spread up to it. DuckDB's rowids stay with their rows (a
  delete leaves a gap; a checkpoint does not renumber), new rows take rowids above all earlier
  ones, and an UPDATE of a list or array column deletes the row and inserts it under a new rowid.
  So when the fingerprint moved, the table had only appends if it has exactly the indexed number
  of rows up to the sealed last rowid, more after it, and the same sealed rows (not a table made
  again); then only the rows after the last rowid are read and quantised (an exact index's
  arrays are then copied once; an approximate index gets a delta file, its earlier files linked
  into the new folder, not rewritten). Anything else rebuilds. The seal is not DuckDB's storage
  layout: a checkpoint after an append reorganises it (it merges the partial row groups that
  separate appends leave), which would make most appends look like rewrites. Indexes of dropped
  tables are removed when another index is saved.
* Approximate search (approximate.py, engine._search_approximate). Exact search reads n*d bytes
  a query, whatever kernel does it, so large tables need to read fewer: a faiss IVF index with
  8-bit codes (chosen over usearch's HNSW by bench/ann.py: builds several times faster on two
  cores, which matters at ten million rows, and memory-maps from one file), √n lists around
  k-means centres trained on a sample of the table. It is built in one pass over the table (a
  progress bar), saved in ``thanosql-index/<table>_<column>.<digest>.ivf/`` like the exact one,
  and read back memory-mapped (IO_FLAG_MMAP): a query touches only its lists' pages.
  The promise: during the build, 200 rows of the sample become queries and their exact top 100
  among the other rows is kept as the pass goes; then for 1, 2, 4, ... probes the index's
  candidates for them are compared with it (recall@10 and @100), which is the recall the search
  has after scoring its candidates exactly. A query with ``recall=r`` uses the fewest probes whose
  measured recall less two standard errors is at least r; none (or top_k above 100): exact.
  The candidates (4*top_k, at least 40) are fetched by rowid and scored exactly, like the exact
  path's. Default: exact below EXACT_LINE values (2M rows of 512: 27 ms a query measured at 1M,
  growing with the rows; little to gain), approximate at 0.95 above it.
  A WHERE: up to NARROW_SELECTION kept rows are scored exactly (reading them is cheaper than
  probing); more are searched with faiss's ID bitmap of the kept rows and the probes divided by
  the share kept, and if fewer than top_k kept rows come back, exactly. Staleness is checked as
  for the exact index (change token, fingerprint, counts and rowids of the fetched rows).
* Memory (engine._over_budget). The session's ``search_memory`` (a third of the machine's memory
  by default) bounds what the index cache holds; an exact index that would not fit (3 bytes per
  value) is not built: the exact answer is then read from DuckDB in batches, keeping the best
  rows so far (slow, bounded). The approximate index counts only what is not memory-mapped.
"""

from .approximate import ApproximateIndex, build_approximate
from .codes import Quantised, quantise
from .engine import Ranking, Source, clear, search
from .exact import exact_scores, rank, to_matrix, unit_vector
from .index import CompactIndex, build_index
from .kernels import PackedCodes, first_level_products, int8_matvec, int8_matvec_float
from .scan import TableScan, recognise_scan
from .stored import IndexKey, IndexStore, UnusableIndex

__all__ = [
    "ApproximateIndex",
    "CompactIndex",
    "IndexKey",
    "IndexStore",
    "PackedCodes",
    "Quantised",
    "Ranking",
    "Source",
    "TableScan",
    "UnusableIndex",
    "build_approximate",
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
