"""The OPTIONS each statement takes: names, defaults, allowed values and ranges, legacy spellings.

Data only (no I/O, no heavy imports); the planner checks a statement's options against these
(types, choices, ranges) and hands the handlers a complete dict with defaults filled in, so a
handler never checks an option again. A spec lists every name a user may write, so an unknown
name gets "did you mean ...?" and the list of valid ones. Which table a statement reads is in its
record in nodes.STATEMENTS; the training configs (models/simclr.py, models/clip_training.py) take
their defaults from here, so each default is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

ANY = object()  # type marker: any literal


@dataclass(frozen=True)
class OptionSpec:
    """One option: the Python types it accepts, its default, its allowed values if closed, its
    range if it is a number, and the older spellings that mean it (DESIGN.md decision 1).

    >>> OptionSpec((int,), minimum=1).range_error("top_k", 0)
    'top_k must be at least 1, not 0'
    """

    types: tuple[type, ...]
    default: Any = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    older: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None
    above: bool = False  # the minimum itself is refused: the value must be above it
    # The message for a value out of range ({name} and {value} filled in), when the generic
    # "must be at least ..." is not what the statement has always said.
    range_message: str | None = None
    range_hint: str | None = None

    def range_error(self, name: str, value: Any) -> str | None:
        """Why ``value`` is out of this option's range, or None when it is in range."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        least, most = self.minimum, self.maximum
        too_small = least is not None and (value <= least if self.above else value < least)
        if not too_small and (most is None or value <= most):
            return None
        if self.range_message is not None:
            return self.range_message.format(name=name, value=value)
        bounds = f"above {least}" if self.above else f"at least {least}"
        if most is not None:
            bounds += f" and at most {most}"
        return f"{name} must be {bounds}, not {value}"


def _str(default=None, choices=None, doc="", **more):
    return OptionSpec((str,), default, choices, doc, **more)


def _int(default=None, doc="", **more):
    return OptionSpec((int,), default, None, doc, **more)


def _float(default=None, doc="", **more):
    return OptionSpec((float, int), default, None, doc, **more)


def _bool(default=False, doc="", **more):
    return OptionSpec((bool,), default, None, doc, **more)


def older_spellings(specs: dict[str, OptionSpec]) -> dict[str, str]:
    """Older spelling -> option, for the options of one table.

    >>> older_spellings(CONVERT)
    {'column_name': 'result_col'}
    """
    return {old: name for name, spec in specs.items() for old in spec.older}


def default_of(specs: dict[str, OptionSpec], name: str) -> Any:
    """The default of option ``name`` (for configs that must agree with the statement)."""
    return specs[name].default


# Step sizes when a training statement gives none (learning_rate's default stays None, so that FIT
# MODEL can tell "not given" from a value): Adam's for SimCLR; AdamW's peak for CLIP from scratch,
# and for fine-tuning published weights (which a larger step would wash out).
SIMCLR_LEARNING_RATE = 1e-3
CLIP_LEARNING_RATE = 1e-3
CLIP_FINE_TUNING_LEARNING_RATE = 1e-5


def _shown(number: float) -> str:
    return f"{number:g}".replace("e-0", "e-")


# Where CONVERT, BUILD MODEL and FIT MODEL run (engines.py); None leaves it to the engine setting.
ENGINES = ("local", "ray")
ENGINE = OptionSpec((str,), None, ENGINES, "where it runs: this process, or a Ray cluster; default: the engine setting")


# SimCLR training options (BUILD MODEL ... USING SimCLR, FIT MODEL on a SimCLR model). Defaults of
# None are chosen from the data (models/simclr.py says how and why; tests/test_quality.py measures).
SIMCLR_TRAINING = {
    "image_col": _str("image_path", doc="column of image paths"),
    "max_epochs": _int(5, doc="passes over the images", older=("epochs",), minimum=1),
    "batch_size": _int(None, doc="images per step; default: rows / 50 as a power of two, 16 to 256", minimum=2),
    "input_size": _int(
        None,
        doc="side in pixels images are trained at; default: from the images (32 for small ones)",
        minimum=8,
        maximum=4096,
    ),
    "color": _str(None, choices=("rgb", "gray"), doc="colour mode; default: 'gray' when all images are gray"),
    "stem": _str(None, choices=("small", "cifar", "imagenet"), doc="first layers; default: 'small' below 96 pixels"),
    "learning_rate": _float(
        None, doc=f"Adam's step size; default {_shown(SIMCLR_LEARNING_RATE)}", minimum=0, above=True
    ),
    "temperature": _float(0.2, doc="NT-Xent temperature", minimum=0, above=True),
    "pretrained": OptionSpec(
        (bool, str), False, None, "start from ImageNet weights (True, or a resnet18 state_dict file)"
    ),
    "overwrite": _bool(False, doc="replace a model of that name"),
    "seed": _int(0, doc="seed of the random weights, crops and order: the same seed, the same model"),
    "min_scale": _float(0.85, doc="random crops keep this much of the area, or more", minimum=0, maximum=1, above=True),
    "horizontal_flip": _bool(None, doc="random left-right flips; default: on for colour images, off for gray ones"),
    "vertical_flip": _bool(False, doc="random upside-down flips"),
    "rotation": _float(10, doc="random rotation, in degrees either way (0: none)", minimum=0, maximum=180),
    "color_jitter": _bool(True, doc="random brightness, contrast (and colour) changes"),
    "blur": _bool(False, doc="random Gaussian blur"),
    "num_workers": _int(None, doc="augmenting processes; default: none on 2 cores or fewer", minimum=0, maximum=64),
    "engine": ENGINE,
}

# CLIP training options (BUILD MODEL ... USING CLIP on image-caption pairs).
CLIP_TRAINING = {
    "image_col": _str("image_path", doc="column of image paths"),
    "text_col": _str("text", doc="column of captions"),
    "arch": _str(None, doc="open_clip architecture; default: a small one (models/clip_training.py)"),
    "pretrained": OptionSpec(
        (str, bool), None, None, "weights to fine-tune: a tag, True (the arch's first tag) or a file"
    ),
    "max_epochs": _int(5, doc="passes over the pairs", older=("epochs",), minimum=1),
    "batch_size": _int(32, doc="image-caption pairs per step", minimum=2),
    "learning_rate": _float(
        None,
        doc=f"AdamW's peak step size; default {_shown(CLIP_LEARNING_RATE)} from scratch, "
        f"{_shown(CLIP_FINE_TUNING_LEARNING_RATE)} to fine-tune",
        minimum=0,
        above=True,
    ),
    "overwrite": _bool(False, doc="replace a model of that name"),
    "seed": _int(0, doc="seed of the random weights, crops and order: the same seed, the same model"),
    "num_workers": _int(None, doc="image-reading processes; default: none", minimum=0, maximum=64),
    "engine": ENGINE,
}

# FIT MODEL takes the options of the model's family; those not given keep the stored model's value.
# Settings a model does not record (where its rows are, whether to replace it) keep their defaults.
NOT_RECORDED = ("image_col", "text_col", "overwrite", "num_workers")
FIT_TRAINING = {
    name: spec if name in NOT_RECORDED else replace(spec, default=None)
    for name, spec in {**SIMCLR_TRAINING, **CLIP_TRAINING}.items()
}

GET_DATASET = {"overwrite": _bool(False, doc="download (or generate) again over a copy already there")}

GET_MODEL = {
    "model_name": _str(None, doc="name to store the model under"),
    "overwrite": _bool(False, doc="replace a model of that name"),
    "arch": _str(None, doc="open_clip architecture"),
    "pretrained": _str(None, doc="open_clip weight tag"),
    "checkpoint": _str(None, doc="local checkpoint file to use instead of a download"),
}

COPY = {
    "if_exists": _str("fail", choices=("fail", "replace", "append")),
    "overwrite": _bool(None, doc="legacy: True = if_exists='replace'"),
    "format": _str(
        None,
        choices=("csv", "parquet", "json", "pickle", "excel"),
        doc="how to read the file; default: from its extension",
    ),
}

UPLOAD = {
    "framework": _str("open_clip", choices=("open_clip", "pytorch")),
    "arch": _str(None, doc="open_clip architecture name (the config file's name without .json)"),
    "model_config": _str(None, doc="path of the open_clip JSON model config, when arch is not built in"),
    "overwrite": _bool(False, doc="replace a model of that name"),
    "input_size": _int(
        None,
        doc="framework='pytorch': side in pixels the encoder takes",
        minimum=1,
        range_message="input_size must be a positive number of pixels",
    ),
}
# The side a framework='pytorch' encoder takes when input_size is not given.
PYTORCH_INPUT_SIZE = 224

CONVERT = {
    "image_col": _str("image_path", doc="column of image paths (convert_type='image')"),
    "text_col": _str("text", doc="column of texts (convert_type='text')"),
    "convert_type": _str("image", choices=("image", "text")),
    "batch_size": _int(None, doc="rows per batch; default: the model's", minimum=1),
    "result_col": _str(
        "convert_result", doc="column of embeddings, FLOAT[d] (replaced if it exists)", older=("column_name",)
    ),
    "table_name": _str(None, doc="legacy: write the result into this table"),
    "on_error": _str("raise", choices=("raise", "null"), doc="unreadable image: fail, or NULL"),
    "num_workers": _int(None, doc="image decoding processes; default: from the CPU count", minimum=0),
    "engine": ENGINE,
}

SEARCH = {
    "search_by": _str(
        None,
        choices=("image", "text", "embedding", "audio", "video"),
        doc="what search_input is",
        older=("search_input_type",),
    ),
    "search_input": OptionSpec(
        (str, tuple),
        None,
        None,
        "the text, the image path (relative to the workspace), or the embedding (search_by='embedding': "
        "a list of the column's d numbers, e.g. [0.12, -0.3, ...]) to search for",
    ),
    "emb_col": _str("convert_result", doc="column of embeddings made by CONVERT with the same model"),
    "result_col": _str(
        "search_result", doc="column of cosine similarities (replaced if it exists)", older=("column_name",)
    ),
    "top_k": OptionSpec(
        (int, type(None)),
        1000,
        None,
        "rows kept, best first; None = all",
        minimum=1,
        range_message="top_k must be a positive number of rows, not {value}",
        range_hint="top_k=None keeps every row",
    ),
    "recall": OptionSpec(
        (float, int),
        None,
        None,
        "the share of the exact top_k an approximate search must find, in (0, 1]; 1 = exact. Default: exact "
        "below 2M rows of 512 values (2^30 values), 0.95 above",
        minimum=0,
        maximum=1,
        above=True,
        range_message="recall must be above 0 and at most 1, not {value}",
        range_hint="recall=0.95 finds 95% of the exact top_k; recall=1 is the exact answer",
    ),
    "table_name": _str(None, doc="legacy: write the result into this table"),
}

PRINT = {
    "image_col": _str("image_path", doc="column of image paths (PRINT IMAGE)", older=("image_column",)),
    "audio_col": _str("audio_path", doc="column of audio file paths (PRINT AUDIO)", older=("audio_column",)),
    "video_col": _str("video_path", doc="column of video file paths (PRINT VIDEO)", older=("video_column",)),
    "limit": _int(
        None,
        doc="rows shown; default: all (a notebook page draws the first 1,000)",
        minimum=0,
        range_message="limit must be 0 or more rows, not {value}",
    ),
}


def reference_markdown() -> str:
    """README's options reference, made from each statement's tables in nodes.STATEMENTS (a test
    keeps README in step).

    >>> print(reference_markdown().splitlines()[0])
    ### GET THANOSQL DATASET
    """
    from .nodes import option_tables  # nodes reads the tables above, so it is imported here

    lines: list[str] = []
    for table in option_tables():
        lines += [f"### {table.title}", ""]
        if table.summary:
            lines += [table.summary, ""]
            continue
        lines += ["| option | default | meaning |", "| --- | --- | --- |"]
        for name, spec in table.specs.items():
            default = "—" if spec.default is None else repr(spec.default)
            meaning = spec.doc
            if spec.choices:
                shown = [c for c in spec.choices if not isinstance(c, str) or c == c.lower()] or spec.choices
                meaning = (meaning + "; " if meaning else "") + " \\| ".join(repr(c) for c in shown)
            for old in spec.older:
                meaning += f" (older spelling: `{old}`)"
            lines.append(f"| `{name}` | `{default}` | {meaning} |".replace("`—`", "—"))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
