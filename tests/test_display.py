"""The displays PRINT returns: ImageGrid and MediaList as text (paths) and as HTML (thumbnails
and players as data URIs), on real image files of several kinds, missing and broken ones too."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from thanosql import display
from thanosql.display import ImageGrid, MediaItem, MediaList, make_thumbnail, rows_to_items


def data_uris(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r"src='data:[^;]+;base64,([^']+)'", page)]


@pytest.fixture
def pictures(tmp_path):
    """A colour photo, a small grey digit, a transparent PNG, a broken file; relative paths."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "pics"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / "digit.jpg")
    Image.new("RGBA", (50, 20), (255, 0, 0, 128)).save(folder / "clear.png")
    (folder / "broken.jpg").write_bytes(b"not a picture at all")
    return tmp_path


def grid_of(root, paths, **settings):
    table = pa.table({"image_path": paths, "search_result": [0.31656 - i / 100 for i in range(len(paths))]})
    return ImageGrid.from_table(table, "image_path", root=root, **settings)


def test_captions_come_from_the_other_columns_with_scores_to_four_places():
    table = pa.table(
        {
            "image_path": ["a.jpg", None],
            "search_result": [0.316559, None],
            "label": [8, 3],
            "caption": ["x" * 100, "short"],
            "convert_result": pa.array([[0.1, 0.2], [0.3, 0.4]], pa.list_(pa.float32(), 2)),
        }
    )
    items = rows_to_items(table, "image_path")
    assert items[0] == MediaItem("a.jpg", ("search_result: 0.3166", "label: 8", "caption: " + "x" * 59 + "…"))
    assert items[1] == MediaItem(None, ("search_result: NULL", "label: 3", "caption: short"))


def test_the_text_form_is_the_paths_one_per_line(pictures):
    grid = grid_of(pictures, ["pics/photo.jpg", "pics/missing.jpg"])
    assert repr(grid) == str(grid) == "pics/photo.jpg\npics/missing.jpg"
    assert repr(grid_of(pictures, [])) == "(no images)"


def test_html_has_a_thumbnail_per_picture_no_larger_than_the_setting(pictures):
    grid = grid_of(pictures, ["pics/photo.jpg", "pics/digit.jpg", "pics/clear.png"], thumbnail_size=64)
    page = grid._repr_html_()
    pictures_in_page = [Image.open(io.BytesIO(data)) for data in data_uris(page)]
    assert [p.format for p in pictures_in_page] == ["JPEG", "PNG", "PNG"]
    assert pictures_in_page[0].size == (64, 48)  # the photo, reduced keeping its shape
    assert pictures_in_page[1].size == (28, 28)  # small pictures are not enlarged in the file...
    assert "image-rendering:pixelated" in page  # ...the page scales them up sharply
    assert pictures_in_page[2].mode == "RGBA"  # transparency kept
    assert page.count("width:64px;height:64px") == 3 and "160px" not in page
    assert "search_result: 0.3166" in page and "photo.jpg" in page


def test_missing_and_broken_files_show_a_placeholder_with_their_path(pictures):
    grid = grid_of(pictures, ["pics/missing.jpg", "pics/broken.jpg", None])
    page = grid._repr_html_()
    assert "missing: pics/missing.jpg" in page
    assert "unreadable: pics/broken.jpg" in page
    assert "NULL path" in page
    assert data_uris(page) == []


def test_absolute_paths_are_read_as_they_are(pictures, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    grid = grid_of(elsewhere, [str(pictures / "pics" / "photo.jpg")])
    assert len(data_uris(grid._repr_html_())) == 1


def test_paths_and_captions_are_escaped(pictures):
    table = pa.table({"image_path": ["pics/<b>'x'.jpg"], "note": ["<script>alert(1)</script>"]})
    page = ImageGrid.from_table(table, "image_path", root=pictures)._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>" not in page and "&#x27;x&#x27;" in page


def test_a_jpeg_is_decoded_at_reduced_size_and_other_huge_pictures_are_skipped(tmp_path, monkeypatch):
    Image.new("RGB", (3000, 2000), (10, 200, 30)).save(tmp_path / "huge.jpg")
    Image.new("RGB", (3000, 2000), (10, 200, 30)).save(tmp_path / "huge.png")
    monkeypatch.setattr(display, "MAX_FULL_DECODE_PIXELS", 1_000_000)
    thumbnail = make_thumbnail(tmp_path / "huge.jpg", 100)
    assert (thumbnail.width, thumbnail.height) == (100, 67)  # JPEG draft mode: decoded at 1/8
    assert make_thumbnail(tmp_path / "huge.png", 100) == "too large"


def test_thumbnails_are_made_once(pictures):
    grid = grid_of(pictures, ["pics/photo.jpg"])
    first = grid.thumbnails()
    assert grid.thumbnails() is first
    assert grid._repr_html_() == grid._repr_html_()


def test_a_page_shows_at_most_max_shown_pictures_but_the_text_lists_all(pictures):
    grid = grid_of(pictures, ["pics/photo.jpg"] * 5, max_shown=2)
    page = grid._repr_html_()
    assert len(data_uris(page)) == 2
    assert "showing the first 2 of 5 rows" in page
    assert len(str(grid).splitlines()) == 5
    assert len(data_uris(grid_of(pictures, ["pics/photo.jpg"] * 5, max_shown=None)._repr_html_())) == 5


def test_to_html_is_a_standalone_page_holding_the_grid(pictures):
    grid = grid_of(pictures, ["pics/photo.jpg"])
    page = grid.to_html("black cats")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<title>black cats</title>" in page and grid._repr_html_() in page


def test_media_lists_embed_players_and_list_paths(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF....WAVEfmt ")
    table = pa.table({"audio_path": ["a.wav", "gone.wav"], "score": [0.5, 0.25]})
    listing = MediaList.from_table(table, "audio_path", root=tmp_path, kind="audio")
    page = listing._repr_html_()
    assert "<audio controls" in page and "data:audio/" in page
    assert data_uris(page) == [b"RIFF....WAVEfmt "]
    assert "missing: gone.wav" in page and "score: 0.5000" in page
    assert str(listing) == "a.wav\ngone.wav"
    video = MediaList.from_table(pa.table({"video_path": ["a.wav"]}), "video_path", root=tmp_path, kind="video")
    assert "<video controls" in video._repr_html_()


@pytest.fixture
def nulls():
    """One row of values and one of NULLs, in the dtypes DuckDB and pyarrow give pandas."""
    import duckdb

    frame = (
        duckdb.connect()
        .execute(
            "SELECT * FROM (VALUES (1, 'a', 1.5, TIMESTAMP '2020-01-01', [1.0, 2.0]::FLOAT[2], true, INTERVAL 1 DAY),"
            " (NULL, NULL, NULL, NULL, NULL, NULL, NULL)) t(i, s, d, ts, e, b, iv)"
        )
        .df()
    )
    frame["from_arrow"] = pa.table({"x": ["x", None]}).to_pandas()["x"]
    return frame


def test_every_missing_value_shows_as_null_in_text(nulls):
    lines = display.frame_text(nulls, index=False).splitlines()

    assert lines[1].split() == ["1", "a", "1.5", "2020-01-01", "[1.0,", "2.0]", "True", "1", "days", "x"]
    assert lines[2].split() == ["NULL"] * 8


def test_every_missing_value_shows_as_a_dimmed_null_in_html(nulls):
    page = display.frame_html(nulls)

    assert page.count(f"<td>{display.NULL_HTML}</td>") == 8
    assert "<td>1.5</td>" in page and "<td>2020-01-01</td>" in page


def test_a_string_that_reads_null_is_not_dimmed_and_the_values_are_left_alone():
    frame = display.ResultFrame({"word": ["NULL", None]})

    assert frame._repr_html_().count("thanosql-null") == 1
    assert frame["word"].isna().tolist() == [False, True]
    assert isinstance(frame.head(1), display.ResultFrame) and "NULL" in repr(frame[frame["word"].isna()])
