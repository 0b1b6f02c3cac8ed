"""The OPTIONS each statement takes: names, defaults, allowed values, and legacy aliases.

Data only (no I/O, no heavy imports); the planner checks a statement's options against these
and hands the handlers a complete dict with defaults filled in. A spec lists every name a user
may write, so an unknown name gets "did you mean ...?" and the list of valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANY = object()  # type marker: any literal


@dataclass(frozen=True)
class OptionSpec:
    """One option: the Python types it accepts, its default, and its allowed values if closed."""

    types: tuple[type, ...]
    default: Any = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""


def _str(default=None, choices=None, doc=""):
    return OptionSpec((str,), default, choices, doc)


def _int(default=None, doc=""):
    return OptionSpec((int,), default, None, doc)


def _float(default=None, doc=""):
    return OptionSpec((float, int), default, None, doc)


def _bool(default=False, doc=""):
    return OptionSpec((bool,), default, None, doc)


def _list(default=None, doc=""):
    return OptionSpec((tuple,), default, None, doc)


# Legacy spellings: the planner rewrites the key on the left to the one on the right (DESIGN.md
# decision 1). A statement that gives both spellings is an error.
ALIASES: dict[str, dict[str, str]] = {
    "convert": {"column_name": "result_col"},
    "search": {"column_name": "result_col", "search_input_type": "search_by"},
    "print": {"image_column": "image_col", "audio_column": "audio_col", "video_column": "video_col"},
    "build": {"epochs": "max_epochs"},
    "fit": {"epochs": "max_epochs"},
}

# SimCLR training options (BUILD MODEL ... USING SimCLR, FIT MODEL on a SimCLR model).
SIMCLR_TRAINING = {
    "image_col": _str("image_path", doc="column of image paths"),
    "max_epochs": _int(5, doc="passes over the data"),
    "batch_size": _int(256),
    "input_size": _int(None, doc="side in pixels the images are resized to; default: from the data"),
    "color": _str(None, choices=("RGB", "GRAY", "rgb", "gray"), doc="colour mode; default: from the data"),
    "learning_rate": _float(None),
    "temperature": _float(0.5, doc="NT-Xent temperature"),
    "pretrained": _bool(False, doc="start from ImageNet weights"),
    "overwrite": _bool(False),
    "seed": _int(0),
    "horizontal_flip": _bool(None, doc="random left-right flips; default: off for small gray images"),
    "vertical_flip": _bool(False),
    "color_jitter": _bool(None, doc="random colour changes; default: on for colour images"),
    "embedding_dim": _int(None),
    "num_workers": _int(None),
}

# CLIP training options (BUILD MODEL ... USING CLIP on image-caption pairs).
CLIP_TRAINING = {
    "image_col": _str("image_path"),
    "text_col": _str("text"),
    "arch": _str(None, doc="open_clip architecture; default: a small one"),
    "pretrained": OptionSpec((str, bool), None, None, "weights tag to fine-tune from"),
    "max_epochs": _int(5),
    "batch_size": _int(64),
    "learning_rate": _float(None),
    "overwrite": _bool(False),
    "seed": _int(0),
    "num_workers": _int(None),
}

OPTIONS: dict[str, dict[str, OptionSpec]] = {
    "get_dataset": {"overwrite": _bool(False, doc="download (or generate) again over a copy already there")},
    "get_model": {
        "model_name": _str(None, doc="name to store the model under"),
        "overwrite": _bool(False),
        "arch": _str(None, doc="open_clip architecture"),
        "pretrained": _str(None, doc="open_clip weight tag"),
        "checkpoint": _str(None, doc="local checkpoint file to use instead of a download"),
    },
    "copy": {
        "if_exists": _str("fail", choices=("fail", "replace", "append")),
        "overwrite": _bool(None, doc="legacy: True = if_exists='replace'"),
        "format": _str(
            None,
            choices=("csv", "parquet", "json", "pickle", "excel"),
            doc="how to read the file; default: from its extension",
        ),
    },
    "upload": {
        "framework": _str("open_clip", choices=("open_clip", "pytorch")),
        "arch": _str(None),
        "model_config": _str(None),
        "overwrite": _bool(False),
        "input_size": _int(None),
    },
    "convert": {
        "image_col": _str("image_path"),
        "text_col": _str("text"),
        "convert_type": _str("image", choices=("image", "text")),
        "batch_size": _int(None, doc="rows per batch; default: the model's"),
        "result_col": _str("convert_result"),
        "table_name": _str(None, doc="legacy: write the result into this table"),
        "on_error": _str("raise", choices=("raise", "null"), doc="unreadable image: fail, or NULL"),
        "num_workers": _int(None),
    },
    "search": {
        "search_by": _str(None, choices=("image", "text", "audio", "video")),
        "search_input": _str(None),
        "emb_col": _str("convert_result"),
        "result_col": _str("search_result"),
        "top_k": OptionSpec((int, type(None)), 1000),
        "table_name": _str(None, doc="legacy: write the result into this table"),
    },
    "print": {
        "image_col": _str("image_path"),
        "audio_col": _str("audio_path"),
        "video_col": _str("video_path"),
        "limit": _int(None, doc="rows shown; default: all"),
    },
    "build_simclr": SIMCLR_TRAINING,
    "build_clip": CLIP_TRAINING,
    "fit": {**SIMCLR_TRAINING, **CLIP_TRAINING},
}

# Algorithms BUILD MODEL knows, by lower-cased name -> OPTIONS key.
BUILD_ALGORITHMS = {"simclr": "build_simclr", "clip": "build_clip"}
