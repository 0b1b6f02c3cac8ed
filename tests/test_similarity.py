"""The search engine (thanosql.search) against a float64 brute force: exact rows and order,
ties, rows without embeddings, WHERE filters, the plain-scan recognition, and the index cache
staying right when the table changes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from thanosql import PlanError
from thanosql.search import kernels
from thanosql.search.codes import quantise
from thanosql.search.engine import search
from thanosql.search.exact import exact_scores, rank, to_matrix
from thanosql.search.index import CompactIndex, _above_kth
from thanosql.search.kernels import PackedCodes, int8_matvec, int8_matvec_float
from thanosql.search.scan import recognise_scan


def brute_force(matrix, present, query, top_k=None, keep=None):
    """Row numbers of the answer, by the plainest means: float64 cosines, a Python sort."""
    rows = range(len(matrix)) if keep is None else np.flatnonzero(keep)
    scored, unscored = [], []
    q = np.asarray(query, np.float64)
    for row in rows:
        x = matrix[row].astype(np.float64)
        norm = np.sqrt((x * x).sum())
        if not present[row] or not np.isfinite(norm) or norm == 0:
            unscored.append(row)
        else:
            scored.append((-(x * q).sum() / (norm * np.sqrt((q * q).sum())), row))
    order = [row for _, row in sorted(scored)] + unscored
    return order if top_k is None else order[:top_k]


def make_table(session, matrix, present=None, name="t", extra=None):
    rows, dim = matrix.shape
    present = np.ones(rows, bool) if present is None else present
    column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), dim, mask=pa.array(~present))
    data = {"id": np.arange(rows), "grp": np.arange(rows) % 3, "emb": column, **(extra or {})}
    session.write_table("__incoming", pa.table(data))
    session.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * REPLACE (emb::FLOAT[{dim}] AS emb) FROM __incoming")
    session.execute("DROP TABLE __incoming")


def ids(ranking):
    return ranking.rows.column("id").to_pylist()


@pytest.fixture
def data():
    """6,000 random 24-d rows (more than are scored without screening), three exact duplicates
    of row 7 at rows 5, 7 and 4000, and two NULL rows; a query near row 7."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((6000, 24)).astype(np.float32)
    matrix[5] = matrix[7]
    matrix[4000] = matrix[7]
    present = np.ones(6000, bool)
    present[[3, 2500]] = False
    query = matrix[7] + 0.05 * rng.standard_normal(24).astype(np.float32)
    return matrix, present, query


# -- exact scores and ranking ------------------------------------------------------------------


def test_exact_scores_equal_float64_cosines_and_nan_where_there_is_no_embedding():
    matrix = np.array([[3, 4], [0, 0], [1, np.nan], [-3, -4], [1e30, 1e30]], np.float32)
    present = np.array([True, True, True, True, True])
    scores = exact_scores(matrix, present, np.array([3.0, 4.0]))
    assert scores[0] == 1.0 and scores[3] == -1.0
    assert np.isnan(scores[1]) and np.isnan(scores[2])
    assert scores[4] == pytest.approx((3 + 4) / (5 * np.sqrt(2)), abs=1e-12)
    assert np.isnan(exact_scores(matrix[:1], np.array([False]), np.array([3.0, 4.0]))[0])


def test_identical_rows_get_identical_scores_wherever_they_sit():
    rng = np.random.default_rng(1)
    row = rng.standard_normal(37).astype(np.float32)
    matrix = rng.standard_normal((3001, 37)).astype(np.float32)
    positions = [0, 1, 2, 511, 512, 513, 1023, 2999, 3000]
    matrix[positions] = row
    scores = exact_scores(matrix, np.ones(3001, bool), rng.standard_normal(37))
    assert len(set(scores[positions].tolist())) == 1


def test_rank_sorts_best_first_ties_in_input_order_and_nan_last():
    scores = np.array([0.5, np.nan, 0.9, 0.5, 0.9, np.nan, 0.1])
    assert rank(scores, None).tolist() == [2, 4, 0, 3, 6, 1, 5]
    assert rank(scores, 3).tolist() == [2, 4, 0]
    assert rank(scores, 6).tolist() == [2, 4, 0, 3, 6, 1]
    assert rank(scores, 3, keep_input_order=True).tolist() == [0, 2, 4]
    assert rank(scores, None, keep_input_order=True).tolist() == list(range(7))


def test_rank_cut_inside_a_run_of_ties_keeps_the_earliest_rows():
    scores = np.array([0.2, 0.7, 0.7, 0.7, 0.7, 0.9])
    assert rank(scores, 3).tolist() == [5, 1, 2]


def test_to_matrix_reads_lists_and_rejects_mixed_lengths_and_non_numbers():
    matrix, present = to_matrix(pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float32())))
    assert matrix.tolist() == [[1, 2], [0, 0], [3, 4]] and present.tolist() == [True, False, True]
    ints, _ = to_matrix(pa.array([[1, 2]], pa.list_(pa.int32(), 2)))
    assert ints.dtype == np.float32 and ints.tolist() == [[1, 2]]
    with pytest.raises(PlanError, match="row 2 has 3 values"):
        to_matrix(pa.array([[1.0, 2.0], [1.0, 2.0, 3.0]]), "emb")
    with pytest.raises(PlanError, match="holds string, not embeddings"):
        to_matrix(pa.array(["a"]), "emb")


def test_to_matrix_of_a_sliced_fixed_size_list_reads_the_right_rows():
    column = pa.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], pa.list_(pa.float32(), 2)).slice(1, 2)
    assert to_matrix(column)[0].tolist() == [[2, 2], [3, 3]]


# -- the compact index -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gaussian", "shifted", "one_hot", "tiny_and_huge", "integers"])
def test_quantisation_bound_holds_for_every_row(kind):
    rng = np.random.default_rng(2)
    matrix = {
        "gaussian": lambda: rng.standard_normal((500, 64)),
        "shifted": lambda: rng.standard_normal((500, 64)) * 0.1 + 1.0,  # like CLIP's common offset
        "one_hot": lambda: np.eye(64)[rng.integers(0, 64, 500)] + 1e-3 * rng.standard_normal((500, 64)),
        "tiny_and_huge": lambda: rng.standard_normal((500, 64)) * 10.0 ** rng.integers(-20, 20, (500, 1)),
        "integers": lambda: rng.integers(-3, 4, (500, 64)).astype(float),
    }[kind]().astype(np.float32)
    present = np.ones(500, bool)
    rows = quantise(matrix, present)
    valid = rows.valid
    for query in (rng.standard_normal(64), matrix[0].astype(np.float64), np.eye(64)[3]):
        exact = exact_scores(matrix, present, query)
        # First level: both sides quantised.
        q = quantise(np.asarray(query, np.float32)[None, :], np.array([True]))
        approx = (
            rows.scale.astype(np.float64) * q.scale[0] * (rows.codes.astype(np.int64) @ q.codes[0].astype(np.int64))
        )
        bound = rows.code_norm * q.residual[0] + rows.residual
        assert np.all(np.abs(exact[valid] - approx[valid]) <= bound[valid] + 1e-6)
        # Second level: the query as it is, the rows to two levels; the bound is far tighter.
        unit = query / np.linalg.norm(query)
        fine = rows.scale * (rows.codes @ unit) + rows.fine_scale * (rows.fine_codes @ unit)
        assert np.all(np.abs(exact[valid] - fine[valid]) <= rows.remainder[valid] + 1e-6)
        assert np.median(rows.remainder[valid]) < np.median(rows.residual[valid]) / 50


@pytest.mark.parametrize("dim", [24, 32, 512])
def test_first_level_products_stay_within_their_stated_error(dim):
    rng = np.random.default_rng(5)
    codes = rng.integers(-127, 128, (3000, dim), dtype=np.int8)
    codes[:10] = 127  # the extremes
    for query in (rng.standard_normal(dim), np.eye(dim)[0], np.ones(dim)):
        products, query_error, relative_error = kernels.first_level_products(codes, query)
        unit = query / np.linalg.norm(query)
        exact = codes.astype(np.float64) @ unit
        norms = np.linalg.norm(codes.astype(np.float64), axis=1)
        assert np.all(np.abs(exact - products) <= norms * query_error + np.abs(products) * relative_error)


def has_fbgemm() -> bool:
    import torch

    return "fbgemm" in torch.backends.quantized.supported_engines


def fbgemm_packed(codes, chunk_rows):
    if not has_fbgemm():
        pytest.skip("this build of torch has no fbgemm")
    packed = PackedCodes.pack(codes, chunk_rows=chunk_rows)
    assert packed is not None  # fbgemm is there and passed its check
    return packed


@pytest.mark.parametrize("dim", [24, 32, 512])
def test_packed_products_stay_within_their_stated_error(dim):
    rng = np.random.default_rng(6)
    codes = rng.integers(-127, 128, (3000, dim), dtype=np.int8)
    codes[:10], codes[10:20] = 127, -127
    packed = fbgemm_packed(codes, chunk_rows=1000)
    assert packed.bounds == [(0, 1000), (1000, 2000), (2000, 3000)]
    norms = np.linalg.norm(codes.astype(np.float64), axis=1)
    for query in (rng.standard_normal(dim), np.eye(dim)[0], np.ones(dim), -np.ones(dim), rng.uniform(0, 1, dim)):
        products, query_error, relative_error = kernels.first_level_products(codes, query, packed)
        exact = codes.astype(np.float64) @ (query / np.linalg.norm(query))
        assert np.all(np.abs(exact - products) <= norms * query_error + np.abs(products) * relative_error)
        assert query_error < 0.03  # a 7-bit grid: far tighter than the codes' own residual allows


def test_packing_chunk_by_chunk_while_rows_arrive_gives_the_same_products():
    rng = np.random.default_rng(7)
    codes = rng.integers(-127, 128, (2500, 32), dtype=np.int8)
    whole = fbgemm_packed(codes, chunk_rows=1000)
    filling = np.zeros_like(codes)
    packing = PackedCodes.packing(filling, chunk_rows=1000)
    filled = 0
    for stop in (700, 1500, 2200, 2500):  # batches that do not line up with the chunks
        filling[filled:stop] = codes[filled:stop]
        packing.rows_ready(stop)
        filled = stop
    packed = packing.finish(2500)
    assert packed.bounds == [(0, 1000), (1000, 2000), (2000, 2500)]
    query = rng.standard_normal(32)
    assert np.array_equal(packed.products(query)[0], whole.products(query)[0])


def test_the_bfloat16_kernel_is_never_used_where_its_loop_would_read_past_a_row():
    assert not kernels._bf16_kernel_fits(24)
    assert not kernels._bf16_kernel_fits(1000)


def test_int8_product_is_exact_on_both_paths():
    rng = np.random.default_rng(3)
    for rows, dim in [(1, 1), (7, 3), (1000, 513), (64, 2048)]:
        codes = rng.integers(-127, 128, (rows, dim), dtype=np.int8)
        query = rng.integers(-127, 128, dim, dtype=np.int8)
        expected = codes.astype(np.int64) @ query.astype(np.int64)
        assert np.array_equal(int8_matvec(codes, query), expected)
        assert np.array_equal(int8_matvec_float(codes, query), expected)


# The int8, the bfloat16 and the packed fbgemm kernels.
@pytest.mark.parametrize("dim, pack", [(24, False), (32, False), (24, True)])
def test_screen_keeps_every_row_of_the_exact_top_k(data, dim, pack):
    matrix, present, query = data
    if dim != matrix.shape[1]:
        rng = np.random.default_rng(dim)
        matrix = rng.standard_normal((len(matrix), dim)).astype(np.float32)
        query = matrix[7] + 0.05 * rng.standard_normal(dim).astype(np.float32)
    index = CompactIndex(np.arange(len(matrix)), quantise(matrix, present), pack=pack)
    assert (index.packed is not None) == (pack and has_fbgemm())
    scores = exact_scores(matrix, present, query)
    for top_k in (1, 3, 10, 100):
        candidates = index.screen(query, top_k)
        assert set(rank(scores, top_k).tolist()) <= set(candidates.tolist())
        assert len(candidates) <= top_k + 2  # and it narrows down to about top_k
    # A selection: gathered (small) and masked (large) paths.
    for keep in (np.arange(0, 6000, 7), np.arange(0, 6000, 2)):
        candidates = index.screen(query, 10, keep)
        subset = rank(scores[keep], 10)
        assert set(keep[subset].tolist()) <= set(candidates.tolist())
        assert set(candidates.tolist()) <= set(keep.tolist()) and len(candidates) <= 12


def test_index_holds_half_the_float32_bytes_and_a_few_per_row(data):
    matrix, present, _ = data
    index = CompactIndex(np.arange(len(matrix)), quantise(matrix, present))
    assert matrix.nbytes / 2 <= index.nbytes <= matrix.nbytes / 2 + 48 * len(matrix)


def test_kth_bound_selection_equals_a_full_sort():
    rng = np.random.default_rng(4)
    for count, top_k in [(10, 3), (1000, 10), (1003, 7), (5000, 1000), (64, 64), (17, 1)]:
        lower = rng.standard_normal(count).astype(np.float32)
        lower[rng.integers(0, count, count // 10)] = -np.inf
        lower[: count // 5] = np.round(lower[: count // 5], 1)  # ties
        upper = lower + rng.uniform(0, 0.3, count).astype(np.float32)
        threshold = np.sort(lower)[::-1][min(top_k, count) - 1]
        expected = np.flatnonzero(upper >= threshold)
        assert np.array_equal(_above_kth(lower, upper, top_k), expected)


# -- recognising a plain scan ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t",
        "select * from T where grp = 1 and id > 3",
        "SELECT id, emb FROM main.t WHERE id IN (SELECT id FROM t WHERE grp = 2)",
        "SELECT id, emb AS e FROM t",
        'SELECT * FROM "t"',
    ],
)
def test_plain_scans_of_one_table_are_recognised(session, sql):
    session.execute("CREATE TABLE t (id INTEGER, grp INTEGER, emb FLOAT[2])")
    with session.connect() as connection:
        scan = recognise_scan(connection, sql)
    assert scan is not None and scan.key[-1] == "t"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t ORDER BY id",
        "SELECT * FROM t LIMIT 3",
        "SELECT DISTINCT * FROM t",
        "SELECT * FROM t JOIN u USING (id)",
        "SELECT *, 1 AS one FROM t",
        "SELECT id + 1 AS id, emb FROM t",
        "SELECT * EXCLUDE (grp) FROM t",
        "SELECT * FROM t USING SAMPLE 10",
        "SELECT grp, count(*) FROM t GROUP BY grp",
        "WITH x AS (SELECT * FROM t) SELECT * FROM x",
        "SELECT * FROM (SELECT * FROM t)",
        "SELECT * FROM t UNION ALL SELECT * FROM t",
        "SELECT * FROM t; SELECT 1",
        "SELECT * FROM read_parquet('x.parquet')",
        "SELECT * FROM t QUALIFY row_number() OVER () < 3",
    ],
)
def test_anything_but_a_plain_scan_is_not_recognised(session, sql):
    with session.connect() as connection:
        assert recognise_scan(connection, sql) is None


# -- search over DuckDB tables ---------------------------------------------------------------------


def test_search_of_a_table_uses_the_index_and_equals_brute_force(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    for top_k in (1, 3, 10, 1000):
        ranking = search(session, "SELECT * FROM t", "emb", query, top_k=top_k)
        assert ranking.method == "index"
        assert ids(ranking) == brute_force(matrix, present, query, top_k)
        assert ranking.rows.column_names == ["id", "grp", "emb"]
    assert ids(search(session, "SELECT * FROM t", "emb", query, top_k=3)) == [5, 7, 4000]  # the ties


def test_scores_are_the_exact_cosines(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    ranking = search(session, "SELECT * FROM t", "emb", query, top_k=20)
    expected = exact_scores(matrix, present, query)[ids(ranking)]
    assert np.array_equal(ranking.scores, expected)


def test_index_search_screens_instead_of_scoring_every_row(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    ranking = search(session, "SELECT * FROM t", "emb", query, top_k=10)
    assert ranking.candidates <= 12


def test_where_filter_is_applied_through_the_index(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    for where, keep in [
        ("grp = 1", np.arange(6000) % 3 == 1),
        ("id >= 10", np.arange(6000) >= 10),
        ("id % 97 = 0", np.arange(6000) % 97 == 0),
        ("FALSE", np.zeros(6000, bool)),
    ]:
        ranking = search(session, f"SELECT * FROM t WHERE {where}", "emb", query, top_k=10)
        assert ranking.method == "index"
        assert ids(ranking) == brute_force(matrix, present, query, 10, keep)


def test_a_column_list_with_an_alias_is_searched_through_the_index(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    ranking = search(session, "SELECT emb AS vector, id FROM t WHERE grp = 0", "vector", query, top_k=5)
    assert ranking.method == "index"
    assert ranking.rows.column_names == ["vector", "id"]
    assert ids(ranking) == brute_force(matrix, present, query, 5, np.arange(6000) % 3 == 0)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t ORDER BY id DESC",
        "SELECT t.* FROM t JOIN (SELECT DISTINCT grp FROM t) g USING (grp)",
        "SELECT * FROM v",
        "SELECT * FROM t LIMIT 5000",
    ],
)
def test_other_queries_are_searched_directly_with_the_same_rules(session, data, sql):
    matrix, present, query = data
    make_table(session, matrix, present)
    session.execute("CREATE VIEW v AS SELECT * FROM t")
    rows = session.query(sql).column("id").to_numpy()
    ranking = search(session, sql, "emb", query, top_k=10)
    assert ranking.method == "direct"
    assert ids(ranking) == rows[brute_force(matrix[rows], present[rows], query, 10)].tolist()


def test_registered_frames_and_files_are_searched_directly(session, data, tmp_path):
    matrix, present, query = data
    make_table(session, matrix, present)
    session.execute(f"COPY (SELECT * FROM t) TO '{tmp_path / 'rows.parquet'}'")
    expected = brute_force(matrix, present, query, 5)
    with session.connect() as connection:
        connection.register("frame", session.query("SELECT * FROM t"))
        for sql in ["SELECT * FROM frame", f"SELECT * FROM '{tmp_path / 'rows.parquet'}'"]:
            ranking = search(session, sql, "emb", query, top_k=5)
            assert ranking.method == "direct" and ids(ranking) == expected
    assert cached_indexes(session) == []


def test_rows_without_embeddings_come_last_to_fill_top_k(session):
    matrix = np.array([[1, 0], [0, 0], [0, 1], [1, 1], [5, 0]], np.float32)
    present = np.array([True, True, False, True, True])
    make_table(session, matrix, present)
    ranking = search(session, "SELECT * FROM t", "emb", np.array([1, 0]), top_k=5)
    assert ids(ranking) == [0, 4, 3, 1, 2]
    assert np.isnan(ranking.scores[-2:]).all() and ranking.scores[0] == 1.0
    assert ids(search(session, "SELECT * FROM t", "emb", np.array([1, 0]), top_k=4)) == [0, 4, 3, 1]


def test_keep_input_order_keeps_the_best_rows_in_table_order(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    ranking = search(session, "SELECT * FROM t", "emb", query, top_k=4, keep_input_order=True)
    assert ids(ranking) == sorted(brute_force(matrix, present, query, 4))


def test_all_rows_in_input_order_without_top_k(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    ranking = search(session, "SELECT * FROM t", "emb", query, top_k=None, keep_input_order=True)
    assert ids(ranking) == list(range(6000))
    np.testing.assert_array_equal(ranking.scores, exact_scores(matrix, present, query))
    ranked = search(session, "SELECT * FROM t", "emb", query, top_k=None)
    assert ids(ranked) == brute_force(matrix, present, query)


def test_empty_tables_and_tables_without_embeddings_give_empty_or_unscored_answers(session):
    make_table(session, np.zeros((0, 3), np.float32))
    assert search(session, "SELECT * FROM t", "emb", np.ones(3), top_k=10).rows.num_rows == 0
    make_table(session, np.zeros((3, 3), np.float32), np.array([False, False, False]))
    ranking = search(session, "SELECT * FROM t", "emb", np.ones(3), top_k=2)
    assert ids(ranking) == [0, 1] and np.isnan(ranking.scores).all()


def test_embeddings_of_another_dimension_are_refused(session, data):
    matrix, present, _ = data
    make_table(session, matrix, present)
    with pytest.raises(PlanError, match="embeddings of 24 values, but the model makes 5"):
        search(session, "SELECT * FROM t", "emb", np.ones(5), top_k=10)
    with pytest.raises(PlanError, match="embeddings of 24 values, but the model makes 5"):
        search(session, "SELECT * FROM t ORDER BY id", "emb", np.ones(5), top_k=10)


def test_a_query_without_direction_or_a_top_k_below_one_is_refused(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    with pytest.raises(PlanError, match="query embedding is zero"):
        search(session, "SELECT * FROM t", "emb", np.zeros(24), top_k=10)
    with pytest.raises(PlanError, match="top_k must be a positive number"):
        search(session, "SELECT * FROM t", "emb", query, top_k=0)


def test_a_column_named_rowid_falls_back_to_the_direct_search(session):
    session.execute("CREATE TABLE t AS SELECT 10 - i AS rowid, i AS id, [i, 1]::FLOAT[2] AS emb FROM range(5) r(i)")
    ranking = search(session, "SELECT * FROM t", "emb", np.array([1, 0]), top_k=2)
    assert ranking.method == "direct" and ids(ranking) == [4, 3]


# -- the cache ---------------------------------------------------------------------------------


def cached_indexes(session):
    return session.caches.indexes.indexes()


def test_a_large_table_is_packed_while_it_is_read_and_searched_exactly(session):
    rng = np.random.default_rng(8)
    matrix = rng.standard_normal((17000, 512)).astype(np.float32)  # 8.7 MB of codes: packed
    present = np.ones(len(matrix), bool)
    make_table(session, matrix)
    for query in (rng.standard_normal(512), matrix[16999]):
        for top_k in (1, 10, 300):
            ranking = search(session, "SELECT * FROM t", "emb", query, top_k=top_k)
            assert ids(ranking) == brute_force(matrix, present, query, top_k)
    (index,) = cached_indexes(session)
    if has_fbgemm():
        assert index.packed is not None and index.packed.rows == 17000


def test_the_index_is_built_once_and_reused(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    search(session, "SELECT * FROM t", "emb", query, top_k=10)
    first = cached_indexes(session)
    search(session, "SELECT * FROM t WHERE grp = 2", "emb", -query, top_k=3)
    session.execute("SELECT count(*) FROM t")  # a pure query changes nothing
    search(session, "SELECT id, emb FROM t", "emb", query, top_k=10)
    assert len(first) == 1 and cached_indexes(session)[0] is first[0]


@pytest.mark.parametrize(
    "change",
    [
        "INSERT INTO t SELECT 9000 + i, 0, {near} FROM range(3) r(i)",
        "UPDATE t SET emb = {near} WHERE id = 1234",
        "DELETE FROM t WHERE id IN (5, 7, 4000)",
        "CREATE OR REPLACE TABLE t AS SELECT * FROM t WHERE id % 2 = 0",
        "DELETE FROM t WHERE id = 1234; INSERT INTO t SELECT 1234, 0, {near}",  # the same row count
        "UPDATE t SET emb = list_transform(emb, lambda x: -x)::FLOAT[24]",  # every row, in place
    ],
)
def test_changes_made_through_the_session_are_seen_by_the_next_search(session, data, change):
    matrix, present, query = data
    make_table(session, matrix, present)
    search(session, "SELECT * FROM t", "emb", query, top_k=10)
    (before,) = cached_indexes(session)
    near = "[" + ", ".join(f"{v:.6f}" for v in query) + "]::FLOAT[24]"
    session.execute(change.format(near=near))
    search(session, "SELECT * FROM t", "emb", query, top_k=1)
    assert cached_indexes(session)[0] is not before  # rebuilt at once, not caught later
    table = session.query("SELECT id, emb FROM t")
    current, current_present = to_matrix(table.column("emb"))
    expected = table.column("id").to_numpy()[brute_force(current, current_present, query, 10)]
    assert ids(search(session, "SELECT * FROM t", "emb", query, top_k=10)) == expected.tolist()


def test_rows_written_with_write_table_are_seen(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    search(session, "SELECT * FROM t", "emb", query, top_k=5)
    session.write_table("t", session.query("SELECT * FROM t WHERE id <> 7"), "replace")
    assert 7 not in ids(search(session, "SELECT * FROM t", "emb", query, top_k=5))


def test_a_direct_write_that_changes_the_row_count_or_a_candidate_is_still_caught(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    search(session, "SELECT * FROM t", "emb", query, top_k=3)
    # Behind the session's back, on a raw connection: the database's files tell.
    direct = session.database.connect
    with direct() as connection:
        connection.execute("DELETE FROM t WHERE id = 5")
    assert ids(search(session, "SELECT * FROM t", "emb", query, top_k=3)) == [
        7,
        4000,
        brute_force(matrix, present, query, 4)[3],
    ]
    # A new best row: no candidate of the old index moves, only the count tells.
    with direct() as connection:
        connection.execute("INSERT INTO t VALUES (9999, 0, ?::FLOAT[24])", [query.tolist()])
    assert ids(search(session, "SELECT * FROM t", "emb", query, top_k=3)) == [9999, 7, 4000]
    with direct() as connection:
        connection.execute("DELETE FROM t WHERE id = 9999")
    # Every row changes, the count does not: the re-fetched candidates no longer match their codes.
    with direct() as connection:
        connection.execute("UPDATE t SET emb = list_transform(emb, lambda x: -x)::FLOAT[24]")
    flipped = np.delete(-matrix, 5, axis=0)
    expected = np.delete(np.arange(6000), 5)[brute_force(flipped, np.delete(present, 5), query, 10)]
    assert ids(search(session, "SELECT * FROM t", "emb", query, top_k=10)) == expected.tolist()


def test_a_write_elsewhere_keeps_the_index_and_a_write_to_its_table_replaces_it(session, data):
    matrix, present, query = data
    make_table(session, matrix, present)
    search(session, "SELECT * FROM t", "emb", query, top_k=5)
    (index,) = cached_indexes(session)
    session.execute("CREATE TABLE other (x INTEGER)")
    session.execute("INSERT INTO other VALUES (1)")
    search(session, "SELECT * FROM t", "emb", query, top_k=5)
    assert cached_indexes(session) == [index]  # kept: t is as it was
    session.execute("DELETE FROM t WHERE id = 7")
    ranking = search(session, "SELECT * FROM t", "emb", query, top_k=5)
    (rebuilt,) = cached_indexes(session)
    assert rebuilt is not index and len(rebuilt) == len(index) - 1
    assert (
        ids(ranking)
        == np.delete(np.arange(6000), 7)[brute_force(np.delete(matrix, 7, 0), np.delete(present, 7), query, 5)].tolist()
    )
