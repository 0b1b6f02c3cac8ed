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

# SimCLR training options (BUILD MODEL ... USING SimCLR, FIT MODEL on a SimCLR model). Defaults of
# None are chosen from the data (models/simclr.py says how and why; tests/test_quality.py measures).
SIMCLR_TRAINING = {
    "image_col": _str("image_path", doc="column of image paths"),
    "max_epochs": _int(5, doc="passes over the images"),
    "batch_size": _int(None, doc="images per step; default: rows / 50 as a power of two, 16 to 256"),
    "input_size": _int(None, doc="side in pixels images are trained at; default: from the images (32 for small ones)"),
    "color": _str(None, choices=("rgb", "gray"), doc="colour mode; default: 'gray' when all images are gray"),
    "stem": _str(None, choices=("small", "cifar", "imagenet"), doc="first layers; default: 'small' below 96 pixels"),
    "learning_rate": _float(None, doc="Adam's step size; default 0.001"),
    "temperature": _float(0.2, doc="NT-Xent temperature"),
    "pretrained": OptionSpec((bool, str), False, None, "start from ImageNet weights (True, or a resnet18 state_dict file)"),
    "overwrite": _bool(False, doc="replace a model of that name"),
    "seed": _int(0, doc="seed of the random weights, crops and order: the same seed, the same model"),
    "min_scale": _float(0.85, doc="random crops keep this much of the area, or more"),
    "horizontal_flip": _bool(None, doc="random left-right flips; default: on for colour images, off for gray ones"),
    "vertical_flip": _bool(False, doc="random upside-down flips"),
    "rotation": _float(10, doc="random rotation, in degrees either way (0: none)"),
    "color_jitter": _bool(True, doc="random brightness, contrast (and colour) changes"),
    "blur": _bool(False, doc="random Gaussian blur"),
    "num_workers": _int(None, doc="augmenting processes; default: none on 2 cores or fewer"),
}

# CLIP training options (BUILD MODEL ... USING CLIP on image-caption pairs).
CLIP_TRAINING = {
    "image_col": _str("image_path", doc="column of image paths"),
    "text_col": _str("text", doc="column of captions"),
    "arch": _str(None, doc="open_clip architecture; default: a small one (models/clip_training.py)"),
    "pretrained": OptionSpec((str, bool), None, None, "weights to fine-tune: a tag, True (the arch's first tag) or a file"),
    "max_epochs": _int(5, doc="passes over the pairs"),
    "batch_size": _int(32, doc="image-caption pairs per step"),
    "learning_rate": _float(None, doc="AdamW's peak step size; default 0.001 from scratch, 1e-5 to fine-tune"),
    "overwrite": _bool(False, doc="replace a model of that name"),
    "seed": _int(0, doc="seed of the random weights, crops and order: the same seed, the same model"),
    "num_workers": _int(None, doc="image-reading processes; default: none"),
}

# FIT MODEL takes the options of the model's family; those not given keep the stored model's value.
FIT_TRAINING = {
    name: OptionSpec(spec.types, False if name == "overwrite" else None, spec.choices, spec.doc)
    for name, spec in {**SIMCLR_TRAINING, **CLIP_TRAINING}.items()
}

OPTIONS: dict[str, dict[str, OptionSpec]] = {
    "get_dataset": {"overwrite": _bool(False, doc="download (or generate) again over a copy already there")},
    "get_model": {
        "model_name": _str(None, doc="name to store the model under"),
        "overwrite": _bool(False, doc="replace a model of that name"),
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
        "arch": _str(None, doc="open_clip architecture name (the config file's name without .json)"),
        "model_config": _str(None, doc="path of the open_clip JSON model config, when arch is not built in"),
        "overwrite": _bool(False, doc="replace a model of that name"),
        "input_size": _int(None, doc="framework='pytorch': side in pixels the encoder takes"),
    },
    "convert": {
        "image_col": _str("image_path", doc="column of image paths (convert_type='image')"),
        "text_col": _str("text", doc="column of texts (convert_type='text')"),
        "convert_type": _str("image", choices=("image", "text")),
        "batch_size": _int(None, doc="rows per batch; default: the model's"),
        "result_col": _str("convert_result", doc="column of embeddings, FLOAT[d] (replaced if it exists)"),
        "table_name": _str(None, doc="legacy: write the result into this table"),
        "on_error": _str("raise", choices=("raise", "null"), doc="unreadable image: fail, or NULL"),
        "num_workers": _int(None, doc="image decoding processes; default: from the CPU count"),
    },
    "search": {
        "search_by": _str(None, choices=("image", "text", "audio", "video"), doc="what search_input is"),
        "search_input": _str(None, doc="the text, or the image path (relative to the workspace), to search for"),
        "emb_col": _str("convert_result", doc="column of embeddings made by CONVERT with the same model"),
        "result_col": _str("search_result", doc="column of cosine similarities (replaced if it exists)"),
        "top_k": OptionSpec((int, type(None)), 1000, None, "rows kept, best first; None = all"),
        "table_name": _str(None, doc="legacy: write the result into this table"),
    },
    "print": {
        "image_col": _str("image_path", doc="column of image paths (PRINT IMAGE)"),
        "audio_col": _str("audio_path", doc="column of audio file paths (PRINT AUDIO)"),
        "video_col": _str("video_path", doc="column of video file paths (PRINT VIDEO)"),
        "limit": _int(None, doc="rows shown; default: all (a notebook page draws the first 1,000)"),
    },
    "build_simclr": SIMCLR_TRAINING,
    "build_clip": CLIP_TRAINING,
    "fit": FIT_TRAINING,
}

# Algorithms BUILD MODEL knows, by lower-cased name -> OPTIONS key.
BUILD_ALGORITHMS = {"simclr": "build_simclr", "clip": "build_clip"}

# How each OPTIONS table is headed in README's reference, in that order.
REFERENCE_TITLES = {
    "get_dataset": "GET THANOSQL DATASET",
    "get_model": "GET THANOSQL MODEL",
    "copy": "COPY",
    "upload": "UPLOAD MODEL",
    "convert": "CONVERT",
    "search": "SEARCH",
    "print": "PRINT",
    "build_simclr": "BUILD MODEL ... USING SimCLR",
    "build_clip": "BUILD MODEL ... USING CLIP",
    "fit": "FIT MODEL (the options of the model's family)",
}


def reference_markdown() -> str:
    """README's options reference, made from the tables above (a test keeps README in step).

    >>> print(reference_markdown().splitlines()[0])
    ### GET THANOSQL DATASET
    """
    lines: list[str] = []
    for key, title in REFERENCE_TITLES.items():
        if key == "fit":
            lines += [f"### {title}", "", "Any option of BUILD MODEL for that family.", ""]
            continue
        aliases = {new: old for old, new in ALIASES.get(key.split("_")[0], {}).items()}
        lines += [f"### {title}", "", "| option | default | meaning |", "| --- | --- | --- |"]
        for name, spec in OPTIONS[key].items():
            default = "—" if spec.default is None else repr(spec.default)
            meaning = spec.doc
            if spec.choices:
                shown = [c for c in spec.choices if not isinstance(c, str) or c == c.lower()] or spec.choices
                meaning = (meaning + "; " if meaning else "") + " \\| ".join(repr(c) for c in shown)
            if name in aliases:
                meaning += f" (older spelling: `{aliases[name]}`)"
            lines.append(f"| `{name}` | `{default}` | {meaning} |".replace("`—`", "—"))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
