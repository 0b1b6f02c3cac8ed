"""How good a trained model's search is, measured through SQL on the built-in datasets.

Used by bench/train.py (figures for the README) and tests/test_quality.py (the claims those
figures support). Everything goes through a real session: GET THANOSQL DATASET, COPY, BUILD MODEL,
CONVERT; only the scoring of the embeddings is done here, with NumPy.

Digits (SimCLR): precision at 4 of the 200 held-out digits, each one searching the other 199:
the share of its 4 most similar (cosine) that carry its label. References in the same run: raw
pixels, and the same ResNet-18 with its random initial weights (stored as a model and converted
through the same CONVERT).

Shapes (CLIP), on the 200 held-out pictures (the model never saw them or their captions):
recall at 5, the share of held-out captions whose own picture is among the 5 most similar of
the 200 (chance: 5/200); and for every distinct "<count> <colour> <shape>" among them, the text
query in those words ("two red circles"): the share of its top 5 whose caption has that colour,
that shape, that count (chance: 1/6, 1/5, 1/3). The reference in the same run is the same
architecture with its random initial weights, stored and converted the same way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

CAPTION = re.compile(r"^(?P<count>a|two|three) (?P<colour>\w+) (?P<noun>\w+) ")
QUERY_IMAGE = "thanosql-dataset/digits_data/test/923.jpg"


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def nearest(embeddings: np.ndarray, k: int) -> np.ndarray:
    """For each row, the indices of its ``k`` most cosine-similar other rows, best first."""
    unit = _unit(embeddings)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def precision_at_k(embeddings: np.ndarray, labels, k: int = 4) -> float:
    """Mean share, over the rows, of their ``k`` nearest other rows that carry their label."""
    labels = np.asarray(labels)
    return float((labels[nearest(embeddings, k)] == labels[:, None]).mean())


def pixels(session, paths) -> np.ndarray:
    """Raw gray pixels of each image, as rows."""
    from PIL import Image

    return np.stack(
        [np.asarray(Image.open(session.resolve_path(path)).convert("L"), dtype=np.float32).ravel() for path in paths]
    )


def convert(session, model: str, table: str) -> np.ndarray:
    """CONVERT ``table``'s images with ``model`` into the table ``<model>_<table>``; its
    embeddings as rows, in image_path order."""
    session.execute(
        f"CREATE OR REPLACE TABLE {model}_{table} AS SELECT * FROM (CONVERT USING {model} "
        f"OPTIONS (image_col='image_path') AS SELECT * FROM {table})"
    )
    column = session.query(f"SELECT convert_result FROM {model}_{table} ORDER BY image_path").column("convert_result")
    return np.stack(column.to_numpy(zero_copy_only=False))


@dataclass
class DigitsReport:
    trained: float
    untrained: float
    pixels: float
    neighbours_of_923: list[int]
    train_seconds: float


def load_digits(session) -> None:
    """digits_data's files and its two tables in the workspace (once per workspace)."""
    if session.table_exists("digits_test"):
        return
    session.execute("GET THANOSQL DATASET digits_data OPTIONS (overwrite=True)")
    session.execute(
        "COPY digits_train OPTIONS (if_exists='replace') FROM 'thanosql-dataset/digits_data/digits_train.csv'"
    )
    session.execute(
        "COPY digits_test OPTIONS (if_exists='replace') FROM 'thanosql-dataset/digits_data/digits_test.csv'"
    )


def digits_report(session, options: str = "max_epochs=1") -> DigitsReport:
    """Train SimCLR on digits_train with ``options`` (an OPTIONS list) and score it on digits_test
    against pixels and the untrained network."""
    from thanosql.models import simclr

    load_digits(session)
    started = time.perf_counter()
    session.execute(
        f"BUILD MODEL digits_simclr USING SimCLR OPTIONS (image_col='image_path', overwrite=True, "
        f"{options}) AS SELECT * FROM digits_train"
    )
    train_seconds = time.perf_counter() - started
    trained = session.models.get("digits_simclr")
    _, _, config = simclr.read_simclr_model(trained)
    import torch

    torch.manual_seed(config.seed)
    untrained = simclr.build_backbone(config.stem).eval()
    simclr.store_simclr_model(
        session.models, "digits_untrained", untrained, simclr.build_head(), config, overwrite=True
    )
    scores = {model: convert(session, model, "digits_test") for model in ("digits_simclr", "digits_untrained")}
    rows = session.query("SELECT image_path, label FROM digits_test ORDER BY image_path")
    paths, labels = rows.column("image_path").to_pylist(), np.asarray(rows.column("label").to_pylist())
    query = paths.index(QUERY_IMAGE)
    return DigitsReport(
        trained=precision_at_k(scores["digits_simclr"], labels),
        untrained=precision_at_k(scores["digits_untrained"], labels),
        pixels=precision_at_k(pixels(session, paths), labels),
        neighbours_of_923=labels[nearest(scores["digits_simclr"], 4)[query]].tolist(),
        train_seconds=train_seconds,
    )


@dataclass
class ShapesReport:
    recall_at_5: float
    colour: float
    shape: float
    count: float
    all_three: float
    queries: int
    train_seconds: float


def caption_words(caption: str) -> tuple[str, str, str]:
    """("two", "red", "circle") of "two red circles on the left of a white background"."""
    found = CAPTION.match(caption)
    if not found:
        raise ValueError(f"not a shapes caption: {caption!r}")
    noun = found["noun"]
    shape = noun[:-2] if noun.endswith("sses") else noun[:-1] if noun.endswith("s") and found["count"] != "a" else noun
    return found["count"], found["colour"], shape


def query_words(count: str, colour: str, shape: str) -> str:
    if count == "a":
        return f"a {colour} {shape}"
    return f"{count} {colour} {'crosses' if shape == 'cross' else shape + 's'}"


def load_shapes(session) -> None:
    """shapes_data's files and its train/test tables in the workspace (once per workspace)."""
    if session.table_exists("shapes_test"):
        return
    session.execute("GET THANOSQL DATASET shapes_data OPTIONS (overwrite=True)")
    for table in ("shapes_train", "shapes_test"):
        session.execute(f"COPY {table} OPTIONS (if_exists='replace') FROM 'thanosql-dataset/shapes_data/{table}.csv'")


def shapes_report(session, options: str = "max_epochs=5", k: int = 5) -> tuple[ShapesReport, ShapesReport]:
    """Train CLIP on shapes_train's captions with ``options``; score it and the same architecture
    untrained on shapes_test: ``(trained, untrained)``."""
    from thanosql.models import clip, clip_training

    load_shapes(session)
    started = time.perf_counter()
    session.execute(
        f"BUILD MODEL shapes_clip USING CLIP OPTIONS (image_col='image_path', text_col='ai_description', "
        f"overwrite=True, {options}) AS SELECT * FROM shapes_train"
    )
    train_seconds = time.perf_counter() - started
    arch, config, model, _ = clip_training.new_clip_model(None)
    clip.store_clip_model(
        session.models, "shapes_clip_untrained", model.eval(), arch=arch, config=config, pretrained=None, overwrite=True
    )
    return _score_clip(session, "shapes_clip", k, train_seconds), _score_clip(session, "shapes_clip_untrained", k, 0.0)


def _score_clip(session, model: str, k: int, train_seconds: float) -> ShapesReport:
    images = _unit(convert(session, model, "shapes_test"))
    captions = (
        session.query("SELECT ai_description FROM shapes_test ORDER BY image_path").column("ai_description").to_pylist()
    )
    adapter = session.model(model)
    own = np.argsort(-(_unit(adapter.embed_texts(captions)) @ images.T), axis=1, kind="stable")[:, :k]
    recall = float(np.mean([index in row for index, row in enumerate(own)]))
    seen = [caption_words(caption) for caption in captions]
    wanted = sorted(set(seen))
    texts = _unit(adapter.embed_texts([query_words(*words) for words in wanted]))
    top = np.argsort(-(texts @ images.T), axis=1, kind="stable")[:, :k]
    hits = np.array(
        [[[seen[j][part] == words[part] for part in range(3)] for j in row] for words, row in zip(wanted, top)]
    )
    return ShapesReport(
        recall_at_5=recall,
        count=float(hits[..., 0].mean()),
        colour=float(hits[..., 1].mean()),
        shape=float(hits[..., 2].mean()),
        all_three=float(hits.all(axis=2).mean()),
        queries=len(wanted),
        train_seconds=train_seconds,
    )
