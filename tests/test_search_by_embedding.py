"""SEARCH by a given embedding (search_by='embedding', search_input=[...]): the same exact ranking
as a search by text or image, on a tiny real open_clip model (random weights, 32-d) and generated
pictures; the vector as a notebook would write it; every mistake refused at the option."""

from __future__ import annotations

import numpy as np
import pytest

import thanosql
from thanosql import ModelError, PlanError
from thanosql.magic import render_literal, substitute
from thanosql.search import exact
from tiny_clip import make_images, save_tiny_checkpoint

PICTURES = 60
DIM = 32  # tiny_clip.json's embed_dim

SEARCH = """SEARCH IMAGE USING tiny
OPTIONS (
search_by='embedding',
search_input={vector},
emb_col='convert_result',
top_k={top_k}
)
AS SELECT * FROM pics_emb"""


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A workspace with the tiny CLIP uploaded as 'tiny' and table pics_emb: 60 generated
    pictures (image_path, n) and their embeddings (convert_result FLOAT[32])."""
    folder = tmp_path_factory.mktemp("by_embedding")
    save_tiny_checkpoint(folder, seed=3)
    paths = make_images(folder / "pics", PICTURES, seed=3)
    # reuse_bytes=0: a CONVERT of one image embeds it alone, as a search by that image does (a kept
    # embedding from the table's CONVERT, made in a batch, differs in float32 rounding).
    with thanosql.connect(folder, offline=True, progress=False, reuse_bytes=0, notify=lambda _: None) as session:
        session.execute("UPLOAD MODEL tiny OPTIONS (model_config='tiny_clip.json') FROM 'tiny.pt'")
        rows = ", ".join(f"('pics/{path.name}', {n})" for n, path in enumerate(paths))
        session.execute(f"CREATE TABLE pics AS SELECT * FROM (VALUES {rows}) v(image_path, n)")
        session.execute("CREATE TABLE pics_emb AS SELECT * FROM (CONVERT USING tiny AS SELECT * FROM pics)")
        yield session


def search_by(session, vector, top_k=5):
    return session.execute(SEARCH.format(vector=vector, top_k=top_k))


def error_of(session, statement):
    with pytest.raises(thanosql.ThanoSQLError) as caught:
        session.execute(statement)
    assert "Traceback" not in str(caught.value)
    return caught.value


def stored_embeddings(session):
    frame = session.execute("SELECT n, image_path, convert_result FROM pics_emb ORDER BY n")
    return frame, np.stack(frame["convert_result"].to_numpy()).astype(np.float32)


# -- the ranking -------------------------------------------------------------------------------------


@pytest.mark.parametrize("picture", [0, 17, 59])
def test_searching_by_an_images_own_embedding_gives_the_rows_and_scores_of_searching_by_the_image(pictures, picture):
    session = pictures
    path = f"pics/{picture}.jpg"
    # The picture's embedding as SQL gives it: CONVERT of that one image, as the search embeds it.
    [vector] = session.execute(f"SELECT * FROM (CONVERT USING tiny AS SELECT '{path}' AS image_path)")["convert_result"]
    by_image = session.execute(
        "SEARCH IMAGE USING tiny OPTIONS (search_by='image', "
        f"search_input='{path}', top_k=None) AS SELECT * FROM pics_emb"
    )
    by_embedding = search_by(session, render_literal(vector), top_k="None")
    assert len(by_embedding) == PICTURES
    assert by_embedding["image_path"].tolist() == by_image["image_path"].tolist()
    np.testing.assert_array_equal(by_embedding["search_result"].to_numpy(), by_image["search_result"].to_numpy())
    assert by_embedding["image_path"].iloc[0] == path


def test_a_numpy_vector_in_a_notebook_variable_searches_as_it_holds(pictures):
    session = pictures
    frame, matrix = stored_embeddings(session)
    vector = matrix[:3].mean(axis=0)  # "rows like these three"
    result = session.execute(substitute(SEARCH.format(vector="{{vector}}", top_k=5), {"vector": vector}))
    order = exact.rank(exact.exact_scores(matrix, np.ones(len(matrix), bool), vector), 5)
    assert result["n"].tolist() == frame["n"].to_numpy()[order].tolist()


def test_a_vector_written_over_several_lines_with_signs_and_exponents_ranks_exactly(pictures):
    session = pictures
    frame, matrix = stored_embeddings(session)
    rng = np.random.default_rng(0)
    numbers = [f"{x:.6e}" for x in rng.normal(size=DIM)]  # '-1.234567e-01', ...
    numbers[0], numbers[1], numbers[2] = "-1.5e-3", "+2", "-7"
    written = "[\n    " + ",\n    ".join(", ".join(numbers[i : i + 4]) for i in range(0, DIM, 4)) + "\n]"
    assert written.count("\n") > 5 and "e-0" in written
    result = search_by(session, written, top_k=10)
    query = np.array([float(x) for x in numbers], dtype=np.float32)
    scores = exact.exact_scores(matrix, np.ones(len(matrix), bool), query)
    order = exact.rank(scores, 10)
    assert result["image_path"].tolist() == frame["image_path"].to_numpy()[order].tolist()
    np.testing.assert_array_equal(result["search_result"].to_numpy(), scores[order])


def test_a_search_by_embedding_never_loads_the_models_weights(pictures):
    session = pictures
    session.execute("UPLOAD MODEL weightless OPTIONS (model_config='tiny_clip.json') FROM 'tiny.pt'")
    for stored in (session.model_dir / "weightless").iterdir():
        if stored.name != "model.json":
            stored.unlink()
    _, matrix = stored_embeddings(session)
    statement = SEARCH.format(vector=render_literal(matrix[4]), top_k=1).replace("USING tiny", "USING weightless")
    assert session.execute(statement)["n"].tolist() == [4]
    # A search by image needs the weights, and says so.
    by_image = statement.replace("search_by='embedding'", "search_by='image'").replace(
        f"search_input={render_literal(matrix[4])}", "search_input='pics/4.jpg'"
    )
    assert isinstance(error_of(session, by_image), ModelError)


# -- mistakes, each at the option that holds it ---------------------------------------------------------


def test_a_vector_of_the_wrong_length_names_both_lengths_at_the_option(pictures):
    error = error_of(pictures, SEARCH.format(vector="[0.1, -0.3, 0.5]", top_k=5))
    assert isinstance(error, PlanError)
    assert error.message == "search_input has 3 values, but column 'convert_result' holds embeddings of 32"
    assert (error.line, error.column) == (4, 1)
    assert "search_input=[0.1, -0.3, 0.5]" in str(error) and "^^^" in str(error)


def test_a_vector_of_the_wrong_length_for_a_list_column_names_the_model(pictures):
    statement = SEARCH.format(vector="[0.1, -0.3, 0.5]", top_k=5).replace(
        "FROM pics_emb", "FROM (SELECT n, convert_result::FLOAT[] AS convert_result FROM pics_emb)"
    )
    error = error_of(pictures, statement)
    assert error.message == "search_input has 3 values, but model 'tiny' makes embeddings of 32"


@pytest.mark.parametrize(
    "item, shown",
    [("'0.5'", "'0.5'"), ("True", "True"), ("None", "None"), ("[1, 2]", "(1, 2)")],
)
def test_anything_but_numbers_in_the_vector_is_refused_naming_it(pictures, item, shown):
    vector = "[" + ", ".join(["0.1", item] + ["0.2"] * (DIM - 2)) + "]"
    error = error_of(pictures, SEARCH.format(vector=vector, top_k=5))
    assert isinstance(error, PlanError)
    assert error.message == f"search_input must hold numbers only, but value 2 is {shown}"
    assert (error.line, error.column) == (4, 1)


def test_an_all_zero_vector_is_refused_as_having_no_direction(pictures):
    error = error_of(pictures, SEARCH.format(vector="[" + ", ".join(["0"] * 31 + ["0.0"]) + "]", top_k=5))
    assert isinstance(error, PlanError)
    assert error.message == "search_input is all zeros: cosine similarity to a zero vector is undefined"
    assert (error.line, error.column) == (4, 1)


@pytest.mark.parametrize("number", ["1e39", "-1e400", "1" + "0" * 400])
def test_a_number_beyond_float32_is_refused_naming_its_place(pictures, number):
    vector = "[" + ", ".join(["0.1"] * 5 + [number] + ["0.1"] * (DIM - 6)) + "]"
    error = error_of(pictures, SEARCH.format(vector=vector, top_k=5))
    assert error.message == "search_input value 6 is beyond the range of a 32-bit float"
    assert (error.line, error.column) == (4, 1)


def test_a_string_given_to_search_by_embedding_is_refused(pictures):
    error = error_of(pictures, SEARCH.format(vector="'0.1, 0.2'", top_k=5))
    assert error.message == "search_by='embedding' takes a list of numbers, not a string"
    assert "search_input=[0.12, -0.3, ...]" in error.hint
    assert (error.line, error.column) == (4, 1)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_a_list_given_to_search_by_text_or_image_is_refused(pictures, kind):
    statement = SEARCH.format(vector="[0.1, 0.2]", top_k=5).replace("'embedding'", f"'{kind}'")
    error = error_of(pictures, statement)
    assert error.message.startswith(f"search_by='{kind}' takes ") and error.message.endswith(", not a list")
    assert "search_by='embedding'" in error.hint
    assert (error.line, error.column) == (4, 1)


def test_a_number_alone_is_neither_a_text_nor_a_vector(pictures):
    error = error_of(pictures, SEARCH.format(vector="0.5", top_k=5))
    assert error.message == "option 'search_input' must be a string or a list, not a number 0.5"
