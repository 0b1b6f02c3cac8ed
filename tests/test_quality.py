"""What the training defaults learn, measured through SQL on the built-in datasets (bench/quality.py
takes the figures; bench/train.py prints them for several seeds). Slow: each test trains a model.

The thresholds sit below every figure bench/train.py measured on seeds 0-2 and above every
reference: a regression of the defaults fails here, not in a user's notebook.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import numpy as np

from quality import caption_words, digits_report, precision_at_k, query_words, shapes_report


def test_precision_counts_the_neighbours_that_share_the_label():
    # Two tight pairs far apart: each row's nearest other row shares its label.
    rows = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert precision_at_k(rows, [0, 0, 1, 1], k=1) == 1.0
    assert precision_at_k(rows, [0, 1, 0, 1], k=1) == 0.0
    assert precision_at_k(rows, [0, 0, 1, 1], k=3) == pytest.approx(1 / 3)


def test_caption_words_read_count_colour_and_shape_and_make_the_query_back():
    assert caption_words("two red circles on the left of a white background") == ("two", "red", "circle")
    assert caption_words("three blue crosses at the top of a black background") == ("three", "blue", "cross")
    assert caption_words("a green star in the middle of a gray background") == ("a", "green", "star")
    assert query_words("three", "blue", "cross") == "three blue crosses"
    assert query_words("a", "green", "star") == "a green star"


@pytest.mark.slow
def test_one_epoch_of_simclr_finds_digits_of_the_same_label_better_than_pixels_and_the_untrained_network(session):
    report = digits_report(session, "max_epochs=1")

    assert report.trained >= 0.65, report
    assert report.trained >= report.pixels + 0.07, report
    assert report.trained >= report.untrained + 0.15, report


@pytest.mark.slow
def test_clip_trained_in_sql_finds_held_out_pictures_by_caption_colour_and_count(session):
    trained, untrained = shapes_report(session, "max_epochs=5")

    # A held-out caption finds its own picture among the 200 (chance: 5 in 200), and short
    # queries ("two red circles") find the colour and the count (chance: 1/6 and 1/3). Seeds 0-2
    # measured recall 0.945-0.975, colour 0.95-1.00, count 0.61-0.69; untrained 0.035, 0.14, 0.33.
    assert trained.recall_at_5 >= 0.85, trained
    assert trained.recall_at_5 >= untrained.recall_at_5 + 0.5, (trained, untrained)
    assert trained.colour >= 0.9 and trained.colour >= untrained.colour + 0.5, (trained, untrained)
    assert trained.count >= 0.5 and trained.count >= untrained.count + 0.15, (trained, untrained)
    assert trained.queries >= 50, trained
