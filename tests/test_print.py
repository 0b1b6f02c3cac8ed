"""PRINT IMAGE / AUDIO / VIDEO through the session and the command line: what is shown, in which
order, with which options, and the errors for a wrong column or limit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import thanosql
from thanosql import PlanError, cli
from thanosql.display import ImageGrid, MediaList


@pytest.fixture
def pics(session, notices):
    """Table pics(image_path, label, score) of six small pictures; one row's file is missing."""
    rng = np.random.default_rng(0)
    (session.workspace / "pics").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(session.workspace / "pics" / f"{i}.jpg")
    session.execute(
        "CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path, i % 2 AS label, i / 10 AS score "
        "FROM range(6) r(i)"
    )
    notices.clear()
    return session


def test_print_image_shows_a_grid_and_returns_no_rows(pics, notices):
    assert pics.execute("PRINT IMAGE AS SELECT image_path, score FROM pics") is None
    [grid] = notices
    assert isinstance(grid, ImageGrid)
    assert grid.paths == [f"pics/{i}.jpg" for i in range(6)]
    assert grid.items[2].captions == ("score: 0.2000",)
    assert grid.thumbnail_size == pics.settings.thumbnail_size
    page = grid._repr_html_()
    assert page.count("data:image/jpeg") == 5 and "missing: pics/5.jpg" in page


def test_print_keeps_the_order_of_its_query(pics, notices):
    pics.execute("PRINT IMAGE AS (SELECT image_path FROM pics ORDER BY score DESC LIMIT 3)")
    assert notices[-1].paths == ["pics/5.jpg", "pics/4.jpg", "pics/3.jpg"]


def test_image_col_and_its_older_spelling_name_the_path_column(pics, notices):
    pics.execute("CREATE TABLE renamed AS SELECT image_path AS picture, label FROM pics")
    notices.clear()
    pics.execute("PRINT IMAGE OPTIONS (image_col='picture') AS SELECT * FROM renamed")
    pics.execute("PRINT IMAGE OPTIONS (image_column='PICTURE') AS SELECT * FROM renamed")
    assert notices[0].paths == notices[1].paths == [f"pics/{i}.jpg" for i in range(6)]
    assert notices[0].items[0].captions == ("label: 0",)


def test_limit_shows_the_first_rows_and_lifts_the_page_cap(pics, notices):
    pics.execute("PRINT IMAGE OPTIONS (limit=2) AS SELECT * FROM pics")
    assert notices[-1].paths == ["pics/0.jpg", "pics/1.jpg"]
    assert notices[-1].max_shown is None
    pics.execute("PRINT IMAGE AS SELECT * FROM pics")
    assert notices[-1].max_shown is not None


def test_thumbnail_size_comes_from_the_settings(workspace):
    Image.new("RGB", (200, 100)).save(workspace / "wide.jpg")
    shown = []
    with thanosql.connect(workspace, offline=True, progress=False, thumbnail_size=48, notify=shown.append) as session:
        session.execute("PRINT IMAGE AS SELECT 'wide.jpg' AS image_path")
    [grid] = shown
    assert grid.thumbnail_size == 48 and grid.thumbnails()[0].width == 48
    assert "width:48px;height:48px" in grid._repr_html_()


def test_print_audio_and_video_list_players(pics, notices):
    (pics.workspace / "a.wav").write_bytes(b"RIFF")
    pics.execute("PRINT AUDIO AS SELECT 'a.wav' AS audio_path")
    pics.execute("PRINT VIDEO OPTIONS (video_col='clip') AS SELECT 'a.mp4' AS clip")
    audio, video = notices
    assert isinstance(audio, MediaList) and audio.kind == "audio" and audio.paths == ["a.wav"]
    assert video.kind == "video" and "missing: a.mp4" in video._repr_html_()


@pytest.mark.parametrize(
    "statement, message, hint",
    [
        (
            "PRINT IMAGE AS SELECT label FROM pics",
            "column 'image_path' not found in the rows PRINT reads",
            "valid columns: label",
        ),
        (
            "PRINT IMAGE OPTIONS (image_col='imagepath') AS SELECT * FROM pics",
            "column 'imagepath' not found",
            "did you mean 'image_path'?",
        ),
        (
            "PRINT IMAGE OPTIONS (image_col='label') AS SELECT * FROM pics",
            "column 'label' holds int",
            "column of paths",
        ),
        ("PRINT IMAGE OPTIONS (limit=-1) AS SELECT * FROM pics", "limit must be 0 or more rows, not -1", None),
    ],
)
def test_wrong_columns_and_limits_are_explained(pics, statement, message, hint):
    with pytest.raises(PlanError) as caught:
        pics.execute(statement)
    assert message in caught.value.message
    if hint:
        assert hint in caught.value.hint


def test_the_command_line_prints_the_paths_and_can_write_the_grid_to_a_page(pics, capsys, tmp_path):
    pics.close()
    page = tmp_path / "out.html"
    status = cli.main(
        [
            "-w",
            str(pics.workspace),
            "--quiet",
            "--html",
            str(page),
            "-e",
            "PRINT IMAGE AS SELECT image_path FROM pics WHERE label = 1",
        ]
    )
    assert status == 0
    assert capsys.readouterr().out.splitlines() == ["pics/1.jpg", "pics/3.jpg", "pics/5.jpg"]
    assert page.read_text().count("data:image/jpeg") == 2
