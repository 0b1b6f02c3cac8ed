"""Preparation recipes: turn a dataset's public sources into the layout the tutorials use.

A recipe is called by GET (download.install) after the manifest's files were downloaded and
verified: ``recipe(sources, output, context, dataset_name=..., **options)`` reads ``sources``
(the unpacked downloads) and writes the dataset's files into ``output``, which is renamed into
the workspace afterwards. Recipes are deterministic given their sources and options.
"""

from __future__ import annotations

import gzip
import random
import re
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .builtin import DIGIT_COLUMNS, JPEG_QUALITY, UNSPLASH_COLUMNS, pin_label, write_csv


@dataclass(frozen=True)
class Context:
    """What a recipe may use of the session: progress bars, notices, the network settings."""

    progress: Callable[..., Any] | None = None
    notify: Callable[[str], None] = field(default=lambda message: None)
    offline: bool = False
    timeout: float = 10.0

    def bar(self, **kwargs):
        """A progress bar (a silent one when the session gave none)."""
        from ..transfer import no_progress

        return (self.progress or no_progress)(**kwargs)


# ---------------------------------------------------------------------------------- MNIST

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# idx type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT") -> numpy dtypes;
# multi-byte values are big-endian.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an idx file (``.gz`` or plain).

    >>> read_idx(Path("t10k-labels-idx1-ubyte.gz")).shape  # doctest: +SKIP
    (10000,)
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path.name}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DatasetError(f"{path.name} is not an idx file (its first bytes are {data[:4].hex()})")
    dims = data[3]
    if len(data) < 4 + 4 * dims:
        raise DatasetError(f"{path.name} ends inside its header")
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * dims :]
    if len(body) != expected:
        raise DatasetError(f"{path.name} holds {len(body):,} bytes of data, its header promises {expected:,}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _find(sources: Path, stem: str) -> Path:
    for candidate in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        found = sorted(sources.rglob(candidate))
        if found:
            return found[0]
    present = sorted(p.name for p in sources.rglob("*") if p.is_file())
    raise DatasetError(f"the MNIST sources lack {stem}(.gz)", hint=f"found: {', '.join(present) or 'nothing'}")


def prepare_mnist(
    sources: Path,
    output: Path,
    context: Context,
    *,
    dataset_name: str = "mnist_data",
    train: int = 1000,
    test: int = 200,
    seed: int = 0,
    csv_prefix: str = "mnist",
    include_test: tuple[int, ...] | list[int] = (923,),
) -> None:
    """The tutorials' mnist_data from the four MNIST idx files.

    Picks ``train`` images of the 60,000 and ``test`` of the 10,000, the same number of each
    digit, always including the test images numbered in ``include_test`` (923, the tutorial's
    query image); writes ``train/<index>.jpg`` and ``test/<index>.jpg`` (the index in the
    original file, as the tutorial's file names are), ``<csv_prefix>_train.csv`` and
    ``<csv_prefix>_test.csv`` with columns image_path, filename, label.
    """
    from PIL import Image

    rng = random.Random(f"mnist:{seed}")
    for split, count in (("train", train), ("test", test)):
        images_file, labels_file = (_find(sources, stem) for stem in MNIST_FILES[split])
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(
                f"{images_file.name} and {labels_file.name} do not match: {images.shape} images, {labels.shape} labels"
            )
        chosen = _balanced(labels, count, rng, split)
        if split == "test":
            for number in include_test:
                if number < len(labels) and number not in chosen:
                    chosen_labels = [int(labels[i]) for i in chosen]
                    pin_label(chosen, chosen_labels, number, int(labels[number]))
        (output / split).mkdir(parents=True, exist_ok=True)
        rows = []
        with context.bar(total=len(chosen), desc=f"{dataset_name} {split}", unit="image", leave=False) as bar:
            for index in chosen:
                filename = f"{index}.jpg"
                Image.fromarray(np.ascontiguousarray(images[index], dtype=np.uint8), "L").save(
                    output / split / filename, quality=JPEG_QUALITY
                )
                rows.append((f"thanosql-dataset/{dataset_name}/{split}/{filename}", filename, int(labels[index])))
                bar.update(1)
        write_csv(output / f"{csv_prefix}_{split}.csv", DIGIT_COLUMNS, rows)


def _balanced(labels: np.ndarray, count: int, rng: random.Random, split: str) -> list[int]:
    """``count`` indices, as many of each label as possible, in a shuffled order."""
    classes = sorted(int(c) for c in np.unique(labels))
    if count > len(labels):
        raise DatasetError(f"the MNIST {split} file has {len(labels):,} images, fewer than the {count:,} asked for")
    chosen: list[int] = []
    for position, label in enumerate(classes):
        share = count // len(classes) + (1 if position < count % len(classes) else 0)
        pool = [int(i) for i in np.flatnonzero(labels == label)]
        chosen.extend(rng.sample(pool, min(share, len(pool))))
    if len(chosen) < count:  # a class with too few images: fill from the rest
        rest = sorted(set(range(len(labels))) - set(chosen))
        chosen.extend(rng.sample(rest, count - len(chosen)))
    rng.shuffle(chosen)
    return chosen


# ---------------------------------------------------------------------------------- Unsplash

# Unsplash photo ids are 11 characters of this alphabet; anything else is not used as a file name.
PHOTO_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
JPEG_MAGIC = b"\xff\xd8\xff"


def prepare_unsplash_lite(
    sources: Path,
    output: Path,
    context: Context,
    *,
    dataset_name: str = "unsplash_data",
    image_width: int = 640,
    limit: int | None = None,
    workers: int = 8,
    csv_name: str = "unsplash.csv",
) -> None:
    """The tutorials' unsplash_data from the Unsplash Lite archive (its photos.tsv000).

    Downloads each photo from its ``photo_image_url`` (resized by the image CDN to
    ``image_width`` pixels wide, as JPEG) to ``<photo_id>.jpg`` and writes ``csv_name`` with
    columns photo_id, image_path, photo_image_url, photo_description, ai_description. A photo
    that cannot be downloaded (the Lite file lists a few dead links) is left out and counted in
    a notice; none at all is an error. ``limit`` keeps the first rows only.
    """
    import pandas as pd

    table = _photos_file(sources)
    separator = "\t" if "\t" in table.open(encoding="utf-8").readline() else ","
    try:
        photos = pd.read_csv(table, sep=separator, dtype=str, keep_default_na=False, quoting=0)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {table.name}: {exc}") from exc
    missing = [c for c in ("photo_id", "photo_image_url", "photo_description", "ai_description") if c not in photos]
    if missing:
        raise DatasetError(
            f"{table.name} lacks the column(s) {', '.join(missing)}",
            hint=f"its columns are: {', '.join(photos.columns)}",
        )
    photos = photos[photos["photo_id"].str.match(PHOTO_ID) & (photos["photo_image_url"] != "")]
    if limit is not None:
        photos = photos.head(limit)
    jobs = list(photos[["photo_id", "photo_image_url"]].itertuples(index=False, name=None))
    saved: dict[str, bool] = {}
    errors: list[str] = []
    with (
        context.bar(total=len(jobs), desc=f"{dataset_name} photos", unit="photo", leave=False) as bar,
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
    ):
        for photo_id, ok, error in pool.map(
            lambda job: _download_photo(job, output, image_width, context.timeout), jobs
        ):
            saved[photo_id] = ok
            if error and len(errors) < 3:
                errors.append(error)
            bar.update(1)
    kept = photos[photos["photo_id"].map(saved)]
    if kept.empty:
        raise DatasetError(
            f"none of the {len(jobs):,} Unsplash photos could be downloaded",
            hint="; ".join(errors) or "the photo list is empty",
        )
    if len(kept) < len(jobs):
        context.notify(
            f"{len(jobs) - len(kept):,} of {len(jobs):,} photos could not be downloaded and were "
            f"left out (e.g. {errors[0]})"
        )
    rows = [
        (
            row.photo_id,
            f"thanosql-dataset/{dataset_name}/{row.photo_id}.jpg",
            row.photo_image_url,
            row.photo_description or None,
            row.ai_description or None,
        )
        for row in kept.itertuples(index=False)
    ]
    write_csv(output / csv_name, UNSPLASH_COLUMNS, rows)


def _photos_file(sources: Path) -> Path:
    found = sorted(
        p for p in sources.rglob("photos.*") if p.is_file() and p.suffix.lower().lstrip(".").startswith(("tsv", "csv"))
    )
    if not found:
        present = sorted(p.name for p in sources.rglob("*") if p.is_file())[:12]
        raise DatasetError(
            "the Unsplash archive has no photos.tsv000 (nor photos.csv000)",
            hint=f"found: {', '.join(present) or 'nothing'}",
        )
    return found[0]


def _download_photo(job: tuple[str, str], output: Path, width: int, timeout: float) -> tuple[str, bool, str | None]:
    from ..transfer import FetchFailure, stream

    photo_id, url = job
    joiner = "&" if "?" in url else "?"
    sized = f"{url}{joiner}w={width}&fm=jpg&q=85&fit=max"
    destination = output / f"{photo_id}.jpg"
    for _attempt in range(2):  # one retry: a CDN drops the odd request among 25,000
        try:
            stream(sized, destination, timeout=timeout)
            with destination.open("rb") as handle:
                if handle.read(3) != JPEG_MAGIC:
                    raise FetchFailure(sized, "content", "the answer is not a JPEG image")
            return photo_id, True, None
        except FetchFailure as failure:
            error = f"{photo_id}: {failure.reason}"
    destination.unlink(missing_ok=True)
    return photo_id, False, error


RECIPES: dict[str, Callable[..., None]] = {
    "mnist": prepare_mnist,
    "unsplash_lite": prepare_unsplash_lite,
}
