"""SEARCH end to end: both tutorials' statements as written, on the built-in datasets, with a tiny
open_clip model (random weights, 32-d) in the store; results checked against a brute force over
the stored embeddings, the order guarantees (sorted, ties, NULLs, through SELECT and PRINT) and
every user error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import thanosql
from seeds import SEED_002_CONVERT, SEED_002_PRINT, SEED_002_SEARCH
from thanosql import ModelError, PlanError
from thanosql.display import ImageGrid
from thanosql.search import exact
from tiny_clip import reference_text_embeddings, save_tiny_checkpoint

MANIFEST = """\
version: 1
datasets:
  unsplash_data:
    description: the built-in shapes in unsplash_data's layout
    license: Apache-2.0
    builtin: shapes
    options: {count: 1200, test: 200, size: 64, seed: 0, csv_name: unsplash.csv}
  mnist_data:
    description: the built-in digits in mnist_data's layout
    license: Apache-2.0
    builtin: digits
    options: {train: 1000, test: 200, seed: 0, csv_prefix: mnist}
"""

# Seed 000 (search image by text), its statements as the tutorial writes them.
SEED_000_SETUP = [
    "GET THANOSQL DATASET unsplash_data\nOPTIONS (overwrite=True)",
    "COPY unsplash_data\nOPTIONS (if_exists='replace')\nFROM 'thanosql-dataset/unsplash_data/unsplash.csv'",
    """CREATE TABLE unsplash_data_convert_en AS
SELECT * FROM (
CONVERT USING tutorial_search_clip
OPTIONS (
image_col='image_path',
convert_type='image',
batch_size=128,
result_col='convert_result'
)
AS
SELECT *
FROM unsplash_data
)""",
]
SEED_000_SEARCH = """SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='a black cat',
emb_col='convert_result',
result_col='search_result'
)
AS
SELECT *
FROM unsplash_data_convert_en"""
SEED_000_SELECT = """SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='a black cat',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM unsplash_data_convert_en
)"""
SEED_000_PRINT = """PRINT IMAGE
AS (
SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='{text}',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM unsplash_data_convert_en
)
)"""
SEED_000_TEXTS = ["a black cat", "a dog on a chair", "gloomy photos", "the feeling when your program finally works"]

# Seed 002 (search image by image), as written; UPLOAD stands in for BUILD MODEL ... USING SimCLR.
SEED_002_SETUP = [
    "GET THANOSQL DATASET mnist_data\nOPTIONS (overwrite=True)",
    'COPY mnist_train \nOPTIONS (overwrite=True)\nFROM "thanosql-dataset/mnist_data/mnist_train.csv"',
    'COPY mnist_test \nOPTIONS (overwrite=True)\nFROM "thanosql-dataset/mnist_data/mnist_test.csv"',
    SEED_002_CONVERT,
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=2)


def open_workspace(folder, checkpoint, model_name):
    """A session on ``folder`` with the test manifest and the tiny CLIP uploaded as ``model_name``."""
    (folder / "manifest.yaml").write_text(MANIFEST)
    notices: list = []
    session = thanosql.connect(
        folder, offline=True, progress=False, datasets_manifest=folder / "manifest.yaml", notify=notices.append
    )
    shutil.copy(checkpoint, folder / "tiny.pt")
    shutil.copy(checkpoint.parent / "tiny_clip.json", folder / "tiny_clip.json")
    session.execute(f"UPLOAD MODEL {model_name} OPTIONS (model_config='tiny_clip.json') FROM 'tiny.pt'")
    return session, notices


@pytest.fixture(scope="module")
def seed000(tmp_path_factory, checkpoint):
    """Seed 000's workspace after its setup statements: unsplash_data (built-in shapes, 1,200
    rows) converted into unsplash_data_convert_en by the tiny CLIP 'tutorial_search_clip'."""
    session, notices = open_workspace(tmp_path_factory.mktemp("seed000"), checkpoint, "tutorial_search_clip")
    for statement in SEED_000_SETUP:
        session.execute(statement)
    yield session, notices
    session.close()


@pytest.fixture(scope="module")
def seed002(tmp_path_factory, checkpoint):
    """Seed 002's workspace after its setup statements: mnist_test (built-in digits, 200 rows)
    converted in place by the tiny CLIP 'my_image_search_model'."""
    session, notices = open_workspace(tmp_path_factory.mktemp("seed002"), checkpoint, "my_image_search_model")
    for statement in SEED_002_SETUP:
        session.execute(statement)
    yield session, notices
    session.close()


def with_options(statement, extra):
    """A seed statement with more options after its result column (search_result)."""
    for written in ("result_col='search_result'", 'column_name="search_result"'):
        if written in statement:
            return statement.replace(written, f"{written}, {extra}")
    raise AssertionError("no result column option to extend")


def with_source(statement, source):
    """A seed statement searching ``source`` instead of its table."""
    for table in ("FROM unsplash_data_convert_en", "FROM mnist_test"):
        if table in statement:
            return statement.replace(table, f"FROM {source}")
    raise AssertionError("no source table to replace")


def embeddings(session, table, column="convert_result"):
    frame = session.execute(f"SELECT * FROM {table}")
    return frame, np.stack(frame[column].to_numpy()).astype(np.float32)


def expected_order(matrix, query, top_k=None):
    scores = exact.exact_scores(matrix, np.ones(len(matrix), bool), query)
    return exact.rank(scores, top_k), scores


def text_vector(session, model, text):
    return session.model(model).embed_texts([text])[0]


# -- seed 000: search by text ------------------------------------------------------------------


def test_seed_000_search_returns_the_best_1000_rows_sorted_by_cosine(seed000, checkpoint):
    session, _ = seed000
    result = session.execute(SEED_000_SEARCH)
    frame, matrix = embeddings(session, "unsplash_data_convert_en")
    query = text_vector(session, "tutorial_search_clip", "a black cat")
    # The query is the model's own text embedding (open_clip's pipeline agrees).
    np.testing.assert_allclose(query, reference_text_embeddings(checkpoint, ["a black cat"])[0], rtol=1e-4, atol=1e-5)
    order, scores = expected_order(matrix, query, 1000)
    assert len(result) == 1000
    assert list(result.columns) == [
        "photo_id",
        "image_path",
        "photo_image_url",
        "photo_description",
        "ai_description",
        "convert_result",
        "search_result",
    ]
    assert result["photo_id"].tolist() == frame["photo_id"].to_numpy()[order].tolist()
    np.testing.assert_array_equal(result["search_result"].to_numpy(), scores[order])
    assert result["search_result"].is_monotonic_decreasing


def test_seed_000_select_from_a_search_keeps_its_order(seed000):
    session, _ = seed000
    nested = session.execute(SEED_000_SELECT)
    full = session.execute(SEED_000_SEARCH)
    assert list(nested.columns) == ["image_path", "search_result"]
    assert nested["image_path"].tolist() == full["image_path"].head(5).tolist()
    assert nested["search_result"].tolist() == full["search_result"].head(5).tolist()


@pytest.mark.parametrize("text", SEED_000_TEXTS)
def test_seed_000_print_image_shows_the_top_5_in_order(seed000, text):
    session, notices = seed000
    notices.clear()
    assert session.execute(SEED_000_PRINT.format(text=text)) is None
    [grid] = notices
    assert isinstance(grid, ImageGrid)
    top = session.execute(SEED_000_SEARCH.replace("'a black cat'", f"'{text}'")).head(5)
    assert grid.paths == top["image_path"].tolist()
    assert grid.items[0].captions == (f"search_result: {top['search_result'].iloc[0]:.4f}",)
    assert str(grid).splitlines() == top["image_path"].tolist()


def test_seed_000_print_of_a_plain_select_lists_the_first_rows(seed000):
    session, notices = seed000
    notices.clear()
    session.execute("PRINT IMAGE\nAS\nSELECT image_path\nFROM unsplash_data\nLIMIT 5")
    assert notices[0].paths == session.execute("SELECT image_path FROM unsplash_data LIMIT 5")["image_path"].tolist()


def test_search_by_one_picture_finds_it_first_and_pictures_like_it_next(seed000):
    session, _ = seed000
    frame = session.execute("SELECT image_path, ai_description FROM unsplash_data_convert_en")
    background = {p: d.rsplit(" ", 2)[-2] for p, d in zip(frame["image_path"], frame["ai_description"])}
    for path in frame["image_path"].iloc[[0, 100, 500, 999]]:
        hits = session.execute(
            "SEARCH IMAGE USING tutorial_search_clip OPTIONS "
            f"(search_by='image', search_input='{path}', top_k=5) AS SELECT * FROM unsplash_data_convert_en"
        )
        assert hits["image_path"].iloc[0] == path
        assert hits["search_result"].iloc[0] == pytest.approx(1.0, abs=1e-6)
        # This tiny model sees the background colour first: its neighbours share it.
        assert all(background[p] == background[path] for p in hits["image_path"])


def test_inline_text_search_scores_every_row_in_table_order(seed000):
    session, _ = seed000
    inline = session.execute(
        'SEARCH IMAGE text="a black cat" USING tutorial_search_clip OPTIONS (emb_col="convert_result") '
        "AS SELECT * FROM unsplash_data_convert_en"
    )
    ranked = session.execute(with_options(SEED_000_SEARCH, "top_k=None"))
    assert len(inline) == 1200
    assert (
        inline["photo_id"].tolist()
        == session.execute("SELECT photo_id FROM unsplash_data_convert_en")["photo_id"].tolist()
    )
    by_id = dict(zip(ranked["photo_id"], ranked["search_result"]))
    assert all(by_id[i] == score for i, score in zip(inline["photo_id"], inline["search_result"]))


def test_search_text_ranks_caption_embeddings(seed000):
    session, _ = seed000
    session.execute(
        "CREATE OR REPLACE TABLE captions AS SELECT * FROM (CONVERT USING tutorial_search_clip "
        "OPTIONS (convert_type='text', text_col='ai_description') "
        "AS SELECT photo_id, ai_description FROM unsplash_data LIMIT 40)"
    )
    captions = session.execute("SELECT * FROM captions")
    wanted = captions["ai_description"].iloc[7]
    hits = session.execute(
        f"SEARCH TEXT USING tutorial_search_clip OPTIONS (search_by='text', search_input='{wanted}', top_k=3) "
        "AS SELECT * FROM captions"
    )
    assert hits["ai_description"].iloc[0] == wanted
    assert hits["search_result"].iloc[0] == pytest.approx(1.0, abs=1e-6)


# -- seed 002: search by image, the older forms ----------------------------------------------------


def test_seed_002_inline_search_scores_every_row_in_table_order(seed002):
    session, _ = seed002
    result = session.execute(SEED_002_SEARCH)
    frame, matrix = embeddings(session, "mnist_test")
    assert list(result.columns) == ["image_path", "filename", "label", "convert_result", "search_result"]
    assert result["image_path"].tolist() == frame["image_path"].tolist()
    query = matrix[frame["filename"].tolist().index("923.jpg")]
    _, scores = expected_order(matrix, query)
    np.testing.assert_allclose(result["search_result"].to_numpy(), scores, rtol=0, atol=1e-6)
    assert result.loc[result["filename"] == "923.jpg", "search_result"].item() == pytest.approx(1.0, abs=1e-6)


def test_seed_002_print_of_the_ordered_search_shows_the_four_best(seed002):
    session, notices = seed002
    notices.clear()
    assert session.execute(SEED_002_PRINT) is None
    [grid] = notices
    frame, matrix = embeddings(session, "mnist_test")
    order, _ = expected_order(matrix, matrix[frame["filename"].tolist().index("923.jpg")], 4)
    assert grid.paths == frame["image_path"].to_numpy()[order].tolist()
    assert grid.paths[0] == "thanosql-dataset/mnist_data/test/923.jpg"


def test_legacy_table_name_writes_the_search_result_into_a_table(seed002):
    session, _ = seed002
    statement = with_options(SEED_002_SEARCH, 'table_name="found"')
    returned = session.execute(statement)
    stored = session.execute("SELECT * FROM found")
    assert stored["image_path"].tolist() == returned["image_path"].tolist()
    assert stored["search_result"].tolist() == returned["search_result"].tolist()
    session.execute(statement)  # re-running replaces the table
    assert session.execute("SELECT count(*) AS n FROM found")["n"].item() == 200


@pytest.mark.parametrize(
    "form",
    [
        "SEARCH IMAGE images=['thanosql-dataset/mnist_data/test/923.jpg'] USING my_image_search_model "
        "OPTIONS (emb_col='convert_result') AS SELECT * FROM mnist_test",
        "SEARCH IMAGE USING my_image_search_model OPTIONS (search_input_type='image', "
        "search_input='thanosql-dataset/mnist_data/test/923.jpg', column_name='search_result', top_k=None) "
        "AS SELECT * FROM mnist_test",
    ],
)
def test_other_spellings_of_a_search_by_image_agree(seed002, form):
    session, _ = seed002
    result = session.execute(form)
    reference = session.execute(SEED_002_SEARCH)
    assert len(result) == 200
    by_path = dict(zip(reference["image_path"], reference["search_result"]))
    assert all(by_path[p] == s for p, s in zip(result["image_path"], result["search_result"]))


def test_inline_search_with_top_k_keeps_the_best_rows_in_table_order(seed002):
    session, _ = seed002
    result = session.execute(with_options(SEED_002_SEARCH, "top_k=5"))
    everything = session.execute(SEED_002_SEARCH)
    best = set(everything.sort_values("search_result", ascending=False, kind="stable")["image_path"].head(5))
    assert set(result["image_path"]) == best
    assert result["image_path"].tolist() == [p for p in everything["image_path"] if p in best]


def test_search_by_image_on_the_digits_finds_the_same_digit(tmp_path):
    """With a plain pixel encoder (8x8 average pooling, uploaded as framework='pytorch'), the
    nearest digits share the query's label far more often than chance (10%)."""
    import torch

    encoder = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(8), torch.nn.Flatten()))
    torch.jit.save(encoder, str(tmp_path / "pixels.pt"))
    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    with thanosql.connect(
        tmp_path, offline=True, progress=False, datasets_manifest=tmp_path / "manifest.yaml", notify=lambda _: None
    ) as session:
        session.execute("UPLOAD MODEL pixels OPTIONS (framework='pytorch', input_size=32) FROM 'pixels.pt'")
        session.execute(SEED_002_SETUP[0])
        session.execute(SEED_002_SETUP[2])
        session.execute(SEED_002_SETUP[3].replace("my_image_search_model", "pixels"))
        paths = session.execute("SELECT image_path, label FROM mnist_test")
        shared = []
        for path, label in zip(paths["image_path"][::10], paths["label"][::10]):
            hits = session.execute(
                f"SEARCH IMAGE USING pixels OPTIONS (search_by='image', search_input='{path}', top_k=5) "
                "AS SELECT image_path, label, convert_result FROM mnist_test"
            )
            assert hits["image_path"].iloc[0] == path
            shared.extend(hits["label"].iloc[1:] == label)
        assert np.mean(shared) > 0.4


# -- order guarantees ------------------------------------------------------------------------------


def test_the_order_survives_an_outer_select_and_print_for_every_row(seed000):
    session, notices = seed000
    search = with_options(SEED_000_SEARCH, "top_k=None")
    full = session.execute(search)
    outer = session.execute(f"SELECT image_path, search_result FROM ({search})")
    assert len(full) == 1200
    assert outer["image_path"].tolist() == full["image_path"].tolist()
    notices.clear()
    session.execute(f"PRINT IMAGE AS (SELECT image_path, search_result FROM ({search}))")
    assert notices[0].paths == full["image_path"].tolist()


def test_ties_keep_input_order_and_missing_embeddings_come_last(seed002):
    session, _ = seed002
    session.execute(
        "CREATE OR REPLACE TABLE twins AS "
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a'), (4, NULL), (5, 'c'), (6, 'a')) v(n, picture)"
    )
    session.execute(
        "CREATE OR REPLACE TABLE twins AS SELECT n, image_path, convert_result FROM twins "
        "LEFT JOIN (SELECT image_path, convert_result, filename FROM mnist_test) m "
        "ON m.filename = CASE picture WHEN 'a' THEN '923.jpg' WHEN 'b' THEN (SELECT min(filename) FROM mnist_test) "
        "WHEN 'c' THEN (SELECT max(filename) FROM mnist_test) END ORDER BY n"
    )
    query = "'thanosql-dataset/mnist_data/test/923.jpg'"
    ranked = session.execute(
        "SEARCH IMAGE USING my_image_search_model "
        f"OPTIONS (search_by='image', search_input={query}) AS SELECT * FROM twins"
    )
    assert ranked["n"].tolist()[:3] == [1, 3, 6]
    assert ranked["n"].tolist()[-1] == 4 and np.isnan(ranked["search_result"].iloc[-1])
    inline = session.execute(f"SEARCH IMAGE image={query} USING my_image_search_model AS SELECT * FROM twins")
    assert inline["n"].tolist() == [1, 2, 3, 4, 5, 6] and np.isnan(inline["search_result"].iloc[3])


def test_an_existing_result_column_is_replaced_where_it_stands(seed002):
    session, _ = seed002
    first = session.execute(with_options(SEED_002_SEARCH, 'table_name="again"'))
    again = session.execute(with_source(SEED_002_SEARCH, "again"))
    assert list(again.columns) == list(first.columns)
    assert again["search_result"].tolist() == first["search_result"].tolist()


def test_the_query_embedding_is_computed_once_per_input(seed000):
    session, _ = seed000
    session.caches.queries.clear()
    session.execute(SEED_000_SELECT)
    session.execute(SEED_000_SELECT)
    assert len(session.caches.queries) == 1
    session.execute(SEED_000_SELECT.replace("a black cat", "a white dog"))
    assert len(session.caches.queries) == 2


def test_a_search_string_never_reaches_sql(seed000):
    session, _ = seed000
    text = "x'); DROP TABLE unsplash_data_convert_en; --"
    result = session.execute(SEED_000_SELECT.replace("'a black cat'", '"' + text + '"'))
    assert len(result) == 5
    assert session.execute("SELECT count(*) AS n FROM unsplash_data_convert_en")["n"].item() == 1200


def test_a_where_filter_in_the_source_searches_only_the_rows_it_keeps(seed000):
    session, _ = seed000
    filtered = session.execute(
        with_source(SEED_000_SELECT, "unsplash_data_convert_en WHERE ai_description LIKE '%circle%'")
    )
    full = session.execute(with_options(SEED_000_SEARCH, "top_k=None"))
    circles = full[full["ai_description"].str.contains("circle")]
    assert filtered["image_path"].tolist() == circles["image_path"].head(5).tolist()


# -- errors ------------------------------------------------------------------------------------------


def error_of(session, statement):
    with pytest.raises(thanosql.ThanoSQLError) as caught:
        session.execute(statement)
    return caught.value


def test_a_missing_emb_col_lists_the_columns_and_the_nearest(seed000):
    session, _ = seed000
    error = error_of(session, SEED_000_SEARCH.replace("emb_col='convert_result'", "emb_col='convert_results'"))
    assert isinstance(error, PlanError)
    assert "column 'convert_results' not found" in error.message
    assert "did you mean 'convert_result'?" in error.hint and "photo_id" in error.hint
    assert (error.line, error.column) == (6, 1)  # points at the option


def test_embeddings_of_another_size_are_refused_naming_both(seed000, tmp_path):
    session, _ = seed000
    error = error_of(session, with_source(SEED_000_SEARCH, "(SELECT [1, 2, 3]::FLOAT[3] AS convert_result)"))
    assert "holds embeddings of 3 values, but model 'tutorial_search_clip' makes 32" in error.message
    error = error_of(session, with_source(SEED_000_SEARCH, "(SELECT [1.0, 2.0]::FLOAT[] AS convert_result)"))
    assert "embeddings of 2 values, but the model makes 32" in error.message


def test_embeddings_made_by_another_model_are_refused(seed000):
    import torch

    session, _ = seed000
    encoder = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten()))
    torch.jit.save(encoder, str(session.workspace / "pool.pt"))
    session.execute("UPLOAD MODEL pool OPTIONS (framework='pytorch', input_size=16, overwrite=True) FROM 'pool.pt'")
    session.execute(
        "CREATE OR REPLACE TABLE pooled AS SELECT * FROM "
        "(CONVERT USING pool AS SELECT image_path FROM unsplash_data LIMIT 3)"
    )
    error = error_of(session, with_source(SEED_000_SEARCH, "pooled"))
    assert "holds embeddings of 12 values, but model 'tutorial_search_clip' makes 32" in error.message
    assert "CONVERT" in error.hint
    # And an image-only model cannot search by text.
    by_pool = with_source(SEED_000_SEARCH, "pooled").replace("USING tutorial_search_clip", "USING pool")
    error = error_of(session, by_pool)
    assert isinstance(error, ModelError)
    assert "model 'pool' (pytorch) cannot embed texts, so it cannot search by text" in error.message
    assert "it embeds: image" in error.hint


def test_a_missing_query_image_names_the_path_looked_at(seed002):
    session, _ = seed002
    error = error_of(session, SEED_002_SEARCH.replace("923.jpg", "no_such.jpg"))
    assert "image 'thanosql-dataset/mnist_data/test/no_such.jpg' not found" in error.message
    assert str(session.workspace / "thanosql-dataset/mnist_data/test/no_such.jpg") in error.message
    assert error.line == 1


@pytest.mark.parametrize(
    "options, message",
    [
        ("search_input='a cat'", "SEARCH needs to know what it searches by"),
        ("search_by='text'", "SEARCH needs a search_input"),
        ("search_by='text', search_input='  '", "SEARCH needs a search_input"),
        ("search_by='video', search_input='a.mp4'", "search_by='video' is not supported"),
        ("search_by='text', search_input='a cat', top_k=0", "top_k must be a positive number of rows, not 0"),
        ("search_by='text', search_input='a cat', emb_col='image_path'", "'image_path' holds VARCHAR, not embeddings"),
    ],
)
def test_incomplete_or_impossible_options_are_explained(seed000, options, message):
    session, _ = seed000
    statement = f"SEARCH IMAGE USING tutorial_search_clip OPTIONS ({options}) AS SELECT * FROM unsplash_data_convert_en"
    error = error_of(session, statement)
    assert message in error.message
    assert "Traceback" not in str(error)


def test_search_of_an_unsupported_media_and_of_an_unknown_model_say_so(seed000):
    session, _ = seed000
    error = error_of(session, SEED_000_SEARCH.replace("SEARCH IMAGE", "SEARCH VIDEO"))
    assert "SEARCH VIDEO is not supported" in error.message
    error = error_of(session, SEED_000_SEARCH.replace("USING tutorial_search_clip", "USING tutorial_search_clp"))
    assert isinstance(error, ModelError) and "did you mean 'tutorial_search_clip'?" in error.hint
