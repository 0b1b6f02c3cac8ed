"""CONVERT USING end to end: a tiny open_clip model uploaded into the workspace, generated images,
and open_clip's own pipeline as the reference for what the embedding column must hold."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from thanosql import DatasetError, ModelError, PlanError
from tiny_clip import (
    captioned_pictures,
    make_images,
    reference_image_embeddings,
    reference_text_embeddings,
    save_tiny_checkpoint,
    upload_tiny,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=1)


@pytest.fixture
def tiny(session, checkpoint):
    """Session with model 'tiny' uploaded and table pics(image_path, caption) of 12 images."""
    upload_tiny(session, checkpoint)
    captioned_pictures(session)
    return session


def vectors(frame, column="convert_result"):
    return np.stack(frame[column].to_numpy())


def test_image_embeddings_equal_open_clips_reference_pipeline(tiny, checkpoint):
    frame = tiny.execute(
        "CONVERT USING tiny OPTIONS (image_col='image_path', convert_type='image', batch_size=5) AS SELECT * FROM pics"
    )
    paths = [tiny.workspace / "pics" / f"{i}.jpg" for i in range(12)]
    expected = reference_image_embeddings(checkpoint, paths)
    assert list(frame.columns) == ["image_path", "caption", "n", "convert_result"]
    np.testing.assert_allclose(vectors(frame), expected, atol=1e-5, rtol=0)


def test_images_of_every_mode_embed_as_open_clip_embeds_them(tiny, checkpoint):
    folder = tiny.workspace / "modes"
    folder.mkdir()
    base = Image.open(tiny.workspace / "pics" / "0.jpg")
    base.convert("L").save(folder / "gray.png")
    base.convert("RGBA").save(folder / "alpha.png")
    base.convert("P").save(folder / "palette.gif")
    base.convert("CMYK").save(folder / "cmyk.jpg")
    names = ["gray.png", "alpha.png", "palette.gif", "cmyk.jpg"]
    rows = " UNION ALL ".join(f"SELECT {i} AS k, 'modes/{name}' AS image_path" for i, name in enumerate(names))
    frame = tiny.execute(f"CONVERT USING tiny AS SELECT * FROM ({rows}) ORDER BY k")
    expected = reference_image_embeddings(checkpoint, [folder / name for name in names])
    np.testing.assert_allclose(vectors(frame), expected, atol=1e-5, rtol=0)


def test_text_embeddings_equal_open_clips_reference_pipeline(tiny, checkpoint):
    frame = tiny.execute(
        "CONVERT USING tiny OPTIONS (convert_type='text', text_col='caption', batch_size=4) AS SELECT * FROM pics"
    )
    expected = reference_text_embeddings(checkpoint, [f"a picture number {i}" for i in range(12)])
    np.testing.assert_allclose(vectors(frame), expected, atol=1e-5, rtol=0)


def test_naming_only_text_col_converts_texts(tiny, checkpoint):
    frame = tiny.execute("CONVERT USING tiny OPTIONS (text_col='caption') AS SELECT * FROM pics WHERE n < 2")
    expected = reference_text_embeddings(checkpoint, ["a picture number 0", "a picture number 1"])
    np.testing.assert_allclose(vectors(frame), expected, atol=1e-5, rtol=0)


def test_embedding_column_is_a_duckdb_float_array_of_the_models_width(tiny):
    tiny.execute(
        "CREATE TABLE pics_convert AS SELECT * FROM (CONVERT USING tiny OPTIONS (result_col='emb') AS SELECT * FROM pics)"
    )
    frame = tiny.execute(
        "SELECT typeof(emb) AS kind, len(emb) AS width, count(*) AS rows FROM pics_convert GROUP BY ALL"
    )
    assert frame.to_dict("records") == [{"kind": "FLOAT[32]", "width": 32, "rows": 12}]


def test_embeddings_work_with_duckdb_array_functions(tiny):
    tiny.execute("CREATE TABLE e AS SELECT * FROM (CONVERT USING tiny AS SELECT * FROM pics)")
    frame = tiny.execute(
        "SELECT array_cosine_similarity(a.convert_result, b.convert_result) AS s FROM e a, e b "
        "WHERE a.n = 3 AND b.n = 3"
    )
    assert frame["s"][0] == pytest.approx(1.0, abs=1e-6)


def test_null_paths_and_texts_give_null_embeddings(tiny):
    frame = tiny.execute(
        "CONVERT USING tiny AS SELECT CASE WHEN n % 3 = 0 THEN NULL ELSE image_path END AS image_path, n "
        "FROM pics ORDER BY n"
    )
    nulls = frame["convert_result"].isna().tolist()
    assert nulls == [n % 3 == 0 for n in range(12)]
    texts = tiny.execute(
        "CONVERT USING tiny OPTIONS (convert_type='text', text_col='t') "
        "AS SELECT CASE WHEN n = 1 THEN NULL ELSE caption END AS t FROM pics ORDER BY n"
    )
    assert texts["convert_result"].isna().tolist() == [n == 1 for n in range(12)]


def test_an_existing_result_column_is_replaced_in_place(tiny):
    frame = tiny.execute("CONVERT USING tiny OPTIONS (result_col='caption') AS SELECT * FROM pics")
    assert list(frame.columns) == ["image_path", "caption", "n"]
    assert len(frame["caption"][0]) == 32


def test_legacy_column_name_and_table_name_write_the_table(tiny):
    # Seed 002's form: the result is written into table_name (replacing it) and returned.
    frame = tiny.execute(
        'CONVERT USING tiny OPTIONS (table_name="pics", image_col="image_path", column_name="convert_result") '
        "AS SELECT * FROM pics"
    )
    assert len(frame) == 12
    stored = tiny.execute("SELECT n, convert_result FROM pics ORDER BY n")
    np.testing.assert_array_equal(vectors(stored), vectors(frame.sort_values("n")))


def test_converting_zero_rows_gives_an_empty_float_array_column(tiny):
    tiny.execute("CREATE TABLE none AS SELECT * FROM (CONVERT USING tiny AS SELECT * FROM pics WHERE n < 0)")
    frame = tiny.execute("SELECT column_type FROM (DESCRIBE none) WHERE column_name = 'convert_result'")
    assert frame["column_type"][0] == "FLOAT[32]"


def test_a_missing_image_names_its_path_and_row(tiny):
    tiny.execute("UPDATE pics SET image_path = 'pics/gone.jpg' WHERE n = 7")
    with pytest.raises(DatasetError) as caught:
        tiny.execute("CONVERT USING tiny AS SELECT * FROM pics ORDER BY n")
    message = caught.value.render()
    assert "cannot read image 'pics/gone.jpg' in row 8 of 12: file not found" in message
    assert "on_error='null'" in message


def test_a_file_that_is_not_an_image_is_a_clear_error(tiny):
    (tiny.workspace / "pics" / "notes.jpg").write_text("not a picture")
    with pytest.raises(DatasetError, match="'pics/notes.jpg' in row 1 of 1: not an image file"):
        tiny.execute("CONVERT USING tiny AS SELECT 'pics/notes.jpg' AS image_path")


def test_on_error_null_gives_unreadable_images_null_and_reports_how_many(tiny, notices):
    tiny.execute("UPDATE pics SET image_path = 'pics/gone' || n || '.jpg' WHERE n IN (2, 5)")
    frame = tiny.execute("CONVERT USING tiny OPTIONS (on_error='null', batch_size=4) AS SELECT * FROM pics ORDER BY n")
    assert frame["convert_result"].isna().tolist() == [n in (2, 5) for n in range(12)]
    assert any("2 of 12 images could not be read" in str(n) and "'pics/gone2.jpg'" in str(n) for n in notices)


def test_a_misspelt_image_column_lists_the_columns(tiny):
    with pytest.raises(PlanError) as caught:
        tiny.execute("CONVERT USING tiny OPTIONS (image_col='image_pth') AS SELECT * FROM pics")
    assert caught.value.hint.startswith("did you mean 'image_path'? valid columns: image_path, caption, n")
    assert caught.value.column == 29


def test_an_unknown_model_lists_the_stored_ones(tiny):
    with pytest.raises(ModelError) as caught:
        tiny.execute("CONVERT USING tiny2 AS SELECT * FROM pics")
    assert "no model named 'tiny2'" in caught.value.message
    assert "did you mean 'tiny'?" in caught.value.hint


def test_a_non_text_image_column_is_refused(tiny):
    with pytest.raises(PlanError, match="holds int values, not image paths"):
        tiny.execute("CONVERT USING tiny OPTIONS (image_col='n') AS SELECT * FROM pics")


def test_absolute_image_paths_are_read_as_they_are(tiny, checkpoint, tmp_path):
    outside = make_images(tmp_path / "elsewhere", 2, seed=9)
    frame = tiny.execute(f"CONVERT USING tiny AS SELECT '{outside[1]}' AS image_path")
    np.testing.assert_allclose(vectors(frame), reference_image_embeddings(checkpoint, outside[1:]), atol=1e-5, rtol=0)


def test_a_nested_convert_feeds_another_statement(tiny):
    frame = tiny.execute(
        "SELECT n, len(convert_result) AS d FROM (CONVERT USING tiny AS SELECT * FROM pics WHERE n < 3) ORDER BY n"
    )
    assert frame.to_dict("list") == {"n": [0, 1, 2], "d": [32, 32, 32]}


def test_a_batch_size_below_one_is_refused_before_any_work(tiny):
    with pytest.raises(PlanError, match="batch_size must be at least 1, not 0"):
        tiny.execute("CONVERT USING tiny OPTIONS (batch_size=0) AS SELECT * FROM pics")


def test_when_no_image_can_be_read_every_row_is_null(tiny):
    frame = tiny.execute(
        "CONVERT USING tiny OPTIONS (on_error='null') AS SELECT 'pics/none' || n || '.jpg' AS image_path FROM pics"
    )
    assert frame["convert_result"].isna().all() and len(frame) == 12
    kind = tiny.execute(
        "SELECT typeof(convert_result) AS t FROM (CONVERT USING tiny OPTIONS (on_error='null') "
        "AS SELECT 'x.jpg' AS image_path)"
    )
    assert kind["t"][0] == "FLOAT[32]"
