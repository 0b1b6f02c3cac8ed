"""The built-in datasets: deterministic, in the tutorials' layout, and right about what they show.

Digits: the layout and columns of mnist_data, recognisable but varied (pixel similarity finds
the right digit often, not always). Shapes: the columns of unsplash_data, and every caption is
checked against its picture (background, colour, count and position read back from pixels).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter, deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thanosql.datasets.builtin import BACKGROUNDS, COLOURS, COUNTS, generate_digits, generate_shapes

WORDS_TO_COUNT = {word: number for number, word in COUNTS.items()}
CAPTION = re.compile(
    r"^(?P<count>a|two|three) (?P<colour>\w+) (?P<shape>circle|square|triangle|star|cross)(?:es|s)? "
    r"(?P<position>on the left|on the right|at the top|at the bottom|in the middle) of a (?P<background>\w+) background$"
)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits") / "digits_data"
    generate_digits(folder)
    return folder


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes") / "shapes_data"
    generate_shapes(folder, count=300, test=50)
    return folder


# ------------------------------------------------------------------------- digits


def test_digits_have_the_layout_and_columns_of_mnist_data(digits):
    train, test = _rows(digits / "digits_train.csv"), _rows(digits / "digits_test.csv")

    assert len(train) == 1000 and len(test) == 200
    assert list(train[0]) == ["image_path", "filename", "label"]
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            assert row["image_path"] == f"thanosql-dataset/digits_data/{split}/{row['filename']}"
            assert (digits / split / row["filename"]).is_file()
    assert len({r["filename"] for r in test}) == 200


def test_digits_are_balanced_28_pixel_grayscale_jpegs(digits):
    test = _rows(digits / "digits_test.csv")

    assert Counter(r["label"] for r in test) == {str(d): 20 for d in range(10)}
    with Image.open(digits / "test" / test[0]["filename"]) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "L", (28, 28))


def test_the_tutorials_query_image_test_923_is_an_eight(digits):
    rows = {r["filename"]: r for r in _rows(digits / "digits_test.csv")}

    assert rows["923.jpg"]["label"] == "8"


def _pixels(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    rows = _rows(folder / f"digits_{split}.csv")
    images = np.stack([np.asarray(Image.open(folder / split / r["filename"]), dtype=np.float32).ravel() for r in rows])
    return images / np.linalg.norm(images, axis=1, keepdims=True), np.array([int(r["label"]) for r in rows])


def test_pixel_similarity_finds_the_right_digit_often_but_not_always(digits):
    # Recognisable: far better than chance (10%). Varied like handwriting: well short of
    # perfect, so a trained model has room to do better than comparing pixels.
    train, train_labels = _pixels(digits, "train")
    test, test_labels = _pixels(digits, "test")

    nearest = np.argmax(test @ train.T, axis=1)
    accuracy = float(np.mean(train_labels[nearest] == test_labels))

    assert 0.6 < accuracy < 0.95


def test_digits_of_one_class_differ_from_each_other(digits):
    test, labels = _pixels(digits, "test")
    eights = test[labels == 8]

    similarity = eights @ eights.T
    off_diagonal = similarity[~np.eye(len(eights), dtype=bool)]

    assert off_diagonal.mean() < 0.75
    assert off_diagonal.max() < 0.98  # no two eights are near copies


def test_the_digits_generator_writes_the_same_bytes_every_run(tmp_path):
    generate_digits(tmp_path / "a", train=30, test=20)
    generate_digits(tmp_path / "b", train=30, test=20)

    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_another_seed_writes_other_digits(tmp_path):
    generate_digits(tmp_path / "a", train=10, test=10, seed=0)
    generate_digits(tmp_path / "b", train=10, test=10, seed=1)

    assert _digest(tmp_path / "a") != _digest(tmp_path / "b")


def test_the_csv_prefix_and_dataset_name_make_a_stand_in_for_mnist_data(tmp_path):
    written = generate_digits(tmp_path / "mnist_data", dataset_name="mnist_data", csv_prefix="mnist", train=10, test=10)

    assert written == {"mnist_train.csv": 10, "mnist_test.csv": 10}
    assert _rows(tmp_path / "mnist_data" / "mnist_test.csv")[0]["image_path"].startswith(
        "thanosql-dataset/mnist_data/test/"
    )


# ------------------------------------------------------------------------- shapes


def test_shapes_have_the_columns_of_unsplash_data_and_a_train_test_split(shapes):
    everything = _rows(shapes / "shapes.csv")
    train, test = _rows(shapes / "shapes_train.csv"), _rows(shapes / "shapes_test.csv")

    assert list(everything[0]) == ["photo_id", "image_path", "photo_image_url", "photo_description", "ai_description"]
    assert (len(everything), len(train), len(test)) == (300, 250, 50)
    assert train + test == everything
    assert len({r["photo_id"] for r in everything}) == 300
    for row in everything:
        assert row["image_path"] == f"thanosql-dataset/shapes_data/{row['photo_id']}.jpg"
        assert row["photo_image_url"] == ""


def _nearest_colour(rgb: np.ndarray, palette: dict = COLOURS) -> str:
    return min(palette, key=lambda name: float(np.sum((np.asarray(palette[name]) - rgb) ** 2)))


def _components(mask: np.ndarray, smallest: int = 6) -> list[list[tuple[int, int]]]:
    seen = np.zeros_like(mask, dtype=bool)
    found = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        queue, pixels = deque([start]), []
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        if len(pixels) >= smallest:
            found.append(pixels)
    return found


def _read_scene(path: Path) -> dict:
    """What the picture shows, read from its pixels alone."""
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = np.median(border, axis=0)
    distance = np.sqrt(((image - background) ** 2).sum(axis=2))
    objects = _components(distance > 70)
    core = distance > 0.6 * distance.max()
    ys, xs = np.nonzero(distance > 70)
    return {
        "background": _nearest_colour(background, BACKGROUNDS),
        "colour": _nearest_colour(image[core].mean(axis=0)),
        "count": len(objects),
        "centre": (xs.mean() / image.shape[1], ys.mean() / image.shape[0]),
    }


def _position_holds(position: str, centre: tuple[float, float]) -> bool:
    x, y = centre
    return {
        "on the left": x < 0.45,
        "on the right": x > 0.55,
        "at the top": y < 0.45,
        "at the bottom": y > 0.55,
        "in the middle": abs(x - 0.5) < 0.15 and abs(y - 0.5) < 0.15,
    }[position]


def test_every_caption_says_what_its_picture_shows(shapes):
    wrong = []
    for row in _rows(shapes / "shapes.csv"):
        said = CAPTION.match(row["ai_description"])
        assert said, row["ai_description"]
        seen = _read_scene(shapes / f"{row['photo_id']}.jpg")
        checks = {
            "background": seen["background"] == said["background"],
            "colour": seen["colour"] == said["colour"],
            "count": seen["count"] == WORDS_TO_COUNT[said["count"]],
            "position": _position_holds(said["position"], seen["centre"]),
        }
        if not all(checks.values()):
            wrong.append((row["ai_description"], {k: seen[k] for k, ok in checks.items() if not ok}))
    assert wrong == []


def test_the_short_caption_agrees_with_the_long_one(shapes):
    for row in _rows(shapes / "shapes.csv"):
        said = CAPTION.match(row["ai_description"])
        short = row["photo_description"].lower()
        assert short.startswith(said["colour"] + " " + said["shape"])
        assert short.endswith(" on " + said["background"])


def test_the_captions_cover_every_shape_colour_count_and_position(shapes):
    said = [CAPTION.match(r["ai_description"]) for r in _rows(shapes / "shapes.csv")]

    assert {m["shape"] for m in said} == {"circle", "square", "triangle", "star", "cross"}
    assert {m["colour"] for m in said} == set(COLOURS)
    assert {m["count"] for m in said} == {"a", "two", "three"}
    assert len({m["position"] for m in said}) == 5
    assert {m["background"] for m in said} == set(BACKGROUNDS)
    # A colour word names the objects only: backgrounds have words of their own.
    assert not set(COLOURS) & set(BACKGROUNDS)


def test_shapes_are_square_rgb_jpegs_of_the_asked_size(tmp_path):
    generate_shapes(tmp_path, count=3, test=1, size=96)

    for row in _rows(tmp_path / "shapes.csv"):
        with Image.open(tmp_path / f"{row['photo_id']}.jpg") as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (96, 96))


def test_the_shapes_generator_writes_the_same_bytes_every_run(tmp_path):
    generate_shapes(tmp_path / "a", count=40, test=10)
    generate_shapes(tmp_path / "b", count=40, test=10)

    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


# ------------------------------------------------------------------------- through GET


def test_get_of_a_builtin_dataset_twice_writes_identical_files(session, workspace):
    folder = workspace / "thanosql-dataset" / "shapes_data"
    session.execute("GET THANOSQL DATASET shapes_data")
    first = _digest(folder)

    session.execute("GET THANOSQL DATASET shapes_data OPTIONS (overwrite=True)")

    assert _digest(folder) == first
    assert first[".thanosql-dataset.json"]  # the stamp, too: it holds no timestamp


def test_the_image_by_image_tutorial_runs_offline_as_written_with_digits_standing_in_for_mnist(
    tmp_path, workspace, notices
):
    import yaml

    import thanosql

    manifest = tmp_path / "offline.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "mnist_data": {
                        "description": "generated digits under the tutorial's name",
                        "license": "Apache-2.0",
                        "builtin": "digits",
                        "options": {"csv_prefix": "mnist", "train": 100, "test": 50},
                    }
                }
            }
        )
    )

    with thanosql.connect(
        workspace, offline=True, progress=False, datasets_manifest=manifest, notify=notices.append
    ) as session:
        session.execute("GET THANOSQL DATASET mnist_data\nOPTIONS (overwrite=True)")
        session.execute('COPY mnist_test \nOPTIONS (overwrite=True)\nFROM "thanosql-dataset/mnist_data/mnist_test.csv"')
        row = session.execute(
            "SELECT label FROM mnist_test WHERE image_path = 'thanosql-dataset/mnist_data/test/923.jpg'"
        )

    assert row["label"].tolist() == [8]
    assert (workspace / "thanosql-dataset/mnist_data/test/923.jpg").is_file()
