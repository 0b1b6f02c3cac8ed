"""Built-in datasets, generated locally so that every tutorial runs offline and can be checked.

``generate_digits`` writes handwriting-like digits in the layout of the tutorials' mnist_data;
``generate_shapes`` writes captioned pictures of coloured shapes with the columns of
unsplash_data. Both are deterministic (a fixed seed, fixed JPEG settings, no timestamps: the
same bytes on every run with the same Pillow) and take seconds. GENERATORS maps the manifest's
``builtin:`` names to them.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The columns of the digit tables (mnist_train, mnist_test), generated or prepared from MNIST.
DIGIT_COLUMNS = ("image_path", "filename", "label")

JPEG_QUALITY = 92
SUPERSAMPLE = 4  # drawn at 4x and reduced: anti-aliased edges without a blur pass

# ---------------------------------------------------------------------------------- digits

# Strokes of each digit in a unit box (x to the right, y down), a few variants per digit the way
# people write them (a 1 with or without a flag, a 7 with or without a bar, an open or closed 4).
# A stroke is a list of points; arcs are sampled from ellipses, angles in degrees, 0 = right,
# 90 = down.


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> list:
    angles = np.radians(np.linspace(a0, a1, n))
    return list(zip(cx + rx * np.cos(angles), cy + ry * np.sin(angles)))


def _curve(p0: tuple, p1: tuple, p2: tuple, n: int = 16) -> list:
    """A quadratic Bezier curve from p0 to p2 pulled towards p1."""
    t = np.linspace(0, 1, n)[:, None]
    a, b, c = (np.asarray(p, dtype=float) for p in (p0, p1, p2))
    return [tuple(p) for p in (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t**2 * c]


def _line(*points: tuple[float, float]) -> list:
    out = []
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        steps = max(2, int(math.hypot(x1 - x0, y1 - y0) / 0.04))
        out.extend((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in np.linspace(0, 1, steps, endpoint=False))
    out.append(points[-1])
    return out


DIGIT_STROKES: dict[int, list[list[list]]] = {
    0: [
        [_arc(0.5, 0.5, 0.2, 0.33, -100, 265, 40)],
        [_arc(0.5, 0.5, 0.24, 0.31, -80, 290, 40)],
    ],
    1: [
        [_line((0.5, 0.15), (0.5, 0.86))],
        [_line((0.44, 0.23), (0.52, 0.14), (0.52, 0.86))],
        [_line((0.45, 0.22), (0.52, 0.14), (0.52, 0.86)), _line((0.43, 0.86), (0.61, 0.86))],
    ],
    2: [
        [_arc(0.5, 0.34, 0.2, 0.19, 190, 380, 20) + _line((0.68, 0.42), (0.28, 0.85), (0.76, 0.85))],
        [
            _arc(0.5, 0.34, 0.19, 0.19, 180, 370, 20)
            + _line((0.68, 0.4), (0.34, 0.78))
            + _arc(0.34, 0.8, 0.07, 0.06, -90, 200, 12)
            + _line((0.3, 0.84), (0.78, 0.84))
        ],
    ],
    3: [
        [_arc(0.48, 0.31, 0.19, 0.16, -160, 90, 20) + _arc(0.48, 0.66, 0.22, 0.19, -90, 160, 22)],
        [_line((0.28, 0.16), (0.7, 0.16), (0.45, 0.44)) + _arc(0.48, 0.66, 0.22, 0.21, -100, 160, 22)],
    ],
    4: [
        [_line((0.62, 0.14), (0.24, 0.62), (0.8, 0.62)), _line((0.62, 0.14), (0.62, 0.88))],
        [_line((0.32, 0.15), (0.28, 0.58), (0.76, 0.58)), _line((0.64, 0.3), (0.64, 0.88))],
    ],
    5: [
        [_line((0.72, 0.15), (0.36, 0.15), (0.33, 0.46)) + _arc(0.49, 0.65, 0.22, 0.21, -125, 150, 22)],
        [
            _line((0.36, 0.15), (0.33, 0.46)) + _arc(0.49, 0.65, 0.22, 0.21, -125, 150, 22),
            _line((0.36, 0.15), (0.72, 0.14)),
        ],
    ],
    6: [
        [_line((0.66, 0.13), (0.46, 0.3), (0.34, 0.55)) + _arc(0.5, 0.68, 0.18, 0.18, 190, 540, 32)],
        [_curve((0.68, 0.14), (0.32, 0.3), (0.32, 0.68)) + _arc(0.5, 0.68, 0.19, 0.17, 180, 530, 32)],
    ],
    7: [
        [_line((0.25, 0.17), (0.76, 0.17), (0.42, 0.87))],
        [_line((0.25, 0.17), (0.76, 0.17), (0.42, 0.87)), _line((0.38, 0.53), (0.7, 0.53))],
        [_line((0.25, 0.24), (0.27, 0.17), (0.76, 0.17)) + _curve((0.76, 0.17), (0.5, 0.45), (0.46, 0.87))],
    ],
    8: [
        [_arc(0.5, 0.31, 0.16, 0.16, 90, 450, 30), _arc(0.5, 0.67, 0.2, 0.19, -90, 270, 30)],
        [_arc(0.5, 0.3, 0.18, 0.15, 90, 450, 30), _arc(0.5, 0.66, 0.17, 0.2, -90, 270, 30)],
    ],
    9: [
        [_arc(0.5, 0.33, 0.18, 0.17, 0, 370, 30) + _line((0.68, 0.35), (0.64, 0.87))],
        [_arc(0.5, 0.33, 0.19, 0.16, 0, 370, 30) + _curve((0.69, 0.36), (0.68, 0.75), (0.44, 0.87))],
    ],
}


@dataclass(frozen=True)
class _Hand:
    """How one sample is written: the random choices that make each digit different."""

    variant: int
    scale_x: float
    scale_y: float
    slant: float
    rotation: float
    offset: tuple[float, float]
    thickness: float
    wobble: tuple[tuple[float, float, float, float, float], ...]

    @classmethod
    def draw(cls, rng: random.Random, variants: int) -> _Hand:
        return cls(
            variant=rng.randrange(variants),
            scale_x=rng.uniform(0.75, 1.15),
            scale_y=rng.uniform(0.82, 1.08),
            slant=rng.uniform(-0.2, 0.38),  # > 0 leans the top to the right, as most hands do
            rotation=math.radians(rng.uniform(-12, 12)),
            offset=(rng.gauss(0, 0.055), rng.gauss(0, 0.045)),
            thickness=rng.uniform(0.055, 0.12),
            # A smooth random displacement field (a few sine waves): the elastic wobble of a hand.
            wobble=tuple(
                (
                    rng.uniform(-0.035, 0.035),
                    rng.uniform(-0.035, 0.035),
                    rng.uniform(0.6, 2.2),
                    rng.uniform(0.6, 2.2),
                    rng.uniform(0, 2 * math.pi),
                )
                for _ in range(3)
            ),
        )

    def place(self, points: np.ndarray) -> np.ndarray:
        """Stroke points of the unit box moved by this hand (still in unit coordinates)."""
        x, y = points[:, 0] - 0.5, points[:, 1] - 0.5
        for ax, ay, fx, fy, phase in self.wobble:
            wave = np.sin(2 * math.pi * (fx * x + fy * y) + phase)
            x, y = x + ax * wave, y + ay * np.cos(2 * math.pi * (fy * x - fx * y) + phase)
        x, y = x * self.scale_x + self.slant * -y, y * self.scale_y
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        x, y = x * cos - y * sin, x * sin + y * cos
        return np.stack([x + 0.5 + self.offset[0], y + 0.5 + self.offset[1]], axis=1)


def render_digit(label: int, rng: random.Random, size: int = 28):
    """One handwriting-like digit: a PIL 'L' image, white strokes on black (as in MNIST).

    >>> render_digit(8, random.Random(0)).size
    (28, 28)
    """
    from PIL import Image, ImageDraw

    variants = DIGIT_STROKES[label]
    hand = _Hand.draw(rng, len(variants))
    canvas = size * SUPERSAMPLE
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    width = max(2, round(hand.thickness * canvas))
    radius = width / 2
    ink = rng.randint(215, 255)
    for stroke in variants[hand.variant]:
        points = hand.place(np.asarray(stroke, dtype=float)) * canvas
        # The digits keep a margin like MNIST's 20-pixel box in 28: clamp what wandered off.
        points = np.clip(points, radius + 1, canvas - radius - 1)
        flat = [tuple(p) for p in points]
        draw.line(flat, fill=ink, width=width, joint="curve")
        for px, py in (flat[0], flat[-1]):
            draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=ink)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def generate_digits(
    folder: str | Path,
    *,
    dataset_name: str = "digits_data",
    train: int = 1000,
    test: int = 200,
    seed: int = 0,
    csv_prefix: str = "digits",
    size: int = 28,
) -> dict[str, int]:
    """Write a digits dataset laid out like the tutorials' mnist_data.

    >>> generate_digits("/tmp/ws/thanosql-dataset/digits_data")
    {'digits_train.csv': 1000, 'digits_test.csv': 200}

    Files: ``train/<n>.jpg`` and ``test/<n>.jpg`` (``size`` x ``size`` grayscale JPEG, white on
    black), ``<csv_prefix>_train.csv`` and ``<csv_prefix>_test.csv`` with columns
    ``image_path, filename, label``; image_path is relative to the workspace
    (``thanosql-dataset/<dataset_name>/test/923.jpg``). Labels are balanced over 0-9; the
    numbers in the file names are drawn like MNIST's indices, and ``test/923.jpg`` is always an
    8 (the query image of the image-by-image tutorial).
    """
    folder = Path(folder)
    rng = random.Random(f"digits:{seed}")
    written = {}
    for split, rows, id_range in (("train", train, 60000), ("test", test, 10000)):
        if rows > id_range:
            raise ValueError(f"at most {id_range} {split} images")
        (folder / split).mkdir(parents=True, exist_ok=True)
        labels = [i % 10 for i in range(rows)]
        rng.shuffle(labels)
        ids = rng.sample(range(id_range), rows)
        if split == "test" and rows:
            pin_label(ids, labels, 923, 8)
        records = []
        for number, label in zip(ids, labels):
            filename = f"{number}.jpg"
            render_digit(label, rng, size).save(folder / split / filename, quality=JPEG_QUALITY)
            records.append((f"thanosql-dataset/{dataset_name}/{split}/{filename}", filename, label))
        name = f"{csv_prefix}_{split}.csv"
        write_csv(folder / name, DIGIT_COLUMNS, records)
        written[name] = rows
    return written


def pin_label(ids: list[int], labels: list[int], number: int, label: int) -> None:
    """Make image ``number`` exist with ``label``, keeping ids unique and labels balanced."""
    if number in ids:
        at = ids.index(number)
    else:
        at = labels.index(label) if label in labels else 0
        ids[at] = number
    if labels[at] != label and label in labels:
        other = labels.index(label)
        labels[at], labels[other] = labels[other], labels[at]
    labels[at] = label


# ---------------------------------------------------------------------------------- shapes

COLOURS = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 210),
    "yellow": (240, 215, 40),
    "purple": (135, 60, 180),
    "orange": (245, 135, 25),
}
# Backgrounds are neutral tones with words of their own: "red" in a caption is always the
# objects' colour, so a model learns what a colour word means without first having to learn
# which noun it belongs to (with shared words, a small CLIP trained on 1,000 captions matched
# "two red circles" with red backgrounds).
BACKGROUNDS = {
    "white": (245, 245, 245),
    "gray": (150, 150, 150),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
COUNTS = {1: "a", 2: "two", 3: "three"}
# Where the group of objects sits: the region of the picture (x0, y0, x1, y1) and the words.
POSITIONS = {
    "left": ((0.0, 0.0, 0.5, 1.0), "on the left of"),
    "right": ((0.5, 0.0, 1.0, 1.0), "on the right of"),
    "top": ((0.0, 0.0, 1.0, 0.5), "at the top of"),
    "bottom": ((0.0, 0.5, 1.0, 1.0), "at the bottom of"),
    "middle": ((0.1, 0.22, 0.9, 0.78), "in the middle of"),
}
# The columns of the unsplash tables, which the generated shapes stand in for.
UNSPLASH_COLUMNS = ("photo_id", "image_path", "photo_image_url", "photo_description", "ai_description")
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass(frozen=True)
class Scene:
    """What one shapes picture shows; the caption is written from it."""

    shape: str
    colour: str
    count: int
    position: str
    background: str

    @property
    def noun(self) -> str:
        if self.count == 1:
            return self.shape
        return "crosses" if self.shape == "cross" else self.shape + "s"

    @property
    def caption(self) -> str:
        """``two red circles on the left of a blue background``"""
        phrase = POSITIONS[self.position][1]
        return f"{COUNTS[self.count]} {self.colour} {self.noun} {phrase} a {self.background} background"

    @property
    def short_caption(self) -> str:
        """``Red circles on blue``: fewer words, a different wording of the same picture."""
        return f"{self.colour.capitalize()} {self.noun} on {self.background}"


def _contrasting(rng: random.Random, colour: str) -> str:
    # Keep the objects visible: no background close to their colour (no yellow on white).
    choices = [name for name, rgb in BACKGROUNDS.items() if math.dist(rgb, COLOURS[colour]) > 100]
    return rng.choice(choices)


def draw_scene(scene: Scene, rng: random.Random, size: int = 64):
    """The picture of ``scene``: a PIL RGB image ``size`` x ``size``."""
    from PIL import Image, ImageDraw

    canvas = size * SUPERSAMPLE
    background = _shade(rng, BACKGROUNDS[scene.background])
    image = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(image)
    (x0, y0, x1, y1), _ = POSITIONS[scene.position]
    horizontal = (x1 - x0) >= (y1 - y0)
    for i in range(scene.count):
        # Split the region into one cell per object along its long side.
        if horizontal:
            cx0, cx1 = x0 + (x1 - x0) * i / scene.count, x0 + (x1 - x0) * (i + 1) / scene.count
            cy0, cy1 = y0, y1
        else:
            cx0, cx1 = x0, x1
            cy0, cy1 = y0 + (y1 - y0) * i / scene.count, y0 + (y1 - y0) * (i + 1) / scene.count
        cell = min(cx1 - cx0, cy1 - cy0)
        # Radius and jitter keep a gap of at least 14% of a cell between neighbours, so the
        # objects can be counted.
        radius = cell * rng.uniform(0.26, 0.36)
        slack = cell / 2 - radius
        cx = (cx0 + cx1) / 2 + rng.uniform(-slack, slack) * 0.5
        cy = (cy0 + cy1) / 2 + rng.uniform(-slack, slack) * 0.5
        polygon = _shape_points(scene.shape, cx * canvas, cy * canvas, radius * canvas, rng)
        colour = _shade(rng, COLOURS[scene.colour])
        if polygon is None:
            r = radius * canvas
            draw.ellipse((cx * canvas - r, cy * canvas - r, cx * canvas + r, cy * canvas + r), fill=colour)
        else:
            draw.polygon(polygon, fill=colour)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _shade(rng: random.Random, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-12, 12))) for c in rgb)


def _shape_points(shape: str, cx: float, cy: float, r: float, rng: random.Random):
    """Polygon of ``shape`` centred at (cx, cy) with outer radius r; None for a circle."""
    if shape == "circle":
        return None
    turn = math.radians(rng.uniform(-10, 10))
    if shape == "square":
        corners = [(a, r) for a in (45, 135, 225, 315)]
    elif shape == "triangle":
        corners = [(a, r) for a in (-90, 30, 150)]
    elif shape == "star":
        corners = [(-90 + 36 * k, r if k % 2 == 0 else r * 0.45) for k in range(10)]
    else:  # cross: a plus sign made of two bars, its arms reaching r
        w = 0.34
        outline = [
            (w, 1),
            (w, w),
            (1, w),
            (1, -w),
            (w, -w),
            (w, -1),
            (-w, -1),
            (-w, -w),
            (-1, -w),
            (-1, w),
            (-w, w),
            (-w, 1),
        ]
        corners = [(math.degrees(math.atan2(y, x)), r * math.hypot(x, y) / math.hypot(1, w)) for x, y in outline]
    return [(cx + d * math.cos(math.radians(a) + turn), cy + d * math.sin(math.radians(a) + turn)) for a, d in corners]


def generate_shapes(
    folder: str | Path,
    *,
    dataset_name: str = "shapes_data",
    count: int = 1200,
    test: int = 200,
    size: int = 64,
    seed: int = 0,
    csv_name: str = "shapes.csv",
) -> dict[str, int]:
    """Write captioned pictures of coloured shapes with the columns of unsplash_data.

    >>> generate_shapes("/tmp/ws/thanosql-dataset/shapes_data")
    {'shapes.csv': 1200, 'shapes_train.csv': 1000, 'shapes_test.csv': 200}

    Each picture shows one to three objects of one shape (circle, square, triangle, star,
    cross) and one colour, grouped on the left, right, top, bottom or middle of a plain
    background of another colour; ``ai_description`` says all of that ("two red circles on the
    left of a blue background"), ``photo_description`` is a shorter wording ("Red circles on
    blue"). Files: ``<photo_id>.jpg`` (RGB JPEG, ``size`` pixels square) and ``csv_name`` with
    columns photo_id, image_path, photo_image_url (empty: nothing online), photo_description,
    ai_description; the same rows split in two files, ``<stem>_train.csv`` (the first
    ``count - test``) and ``<stem>_test.csv`` (the last ``test``), for training on one part
    and searching with captions held apart.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"shapes:{seed}")
    ids: set[str] = set()
    records = []
    for _ in range(count):
        colour = rng.choice(list(COLOURS))
        scene = Scene(
            shape=rng.choice(SHAPES),
            colour=colour,
            count=rng.choice(list(COUNTS)),
            position=rng.choice(list(POSITIONS)),
            background=_contrasting(rng, colour),
        )
        photo_id = "".join(rng.choice(_ID_ALPHABET) for _ in range(11))
        while photo_id in ids:
            photo_id = "".join(rng.choice(_ID_ALPHABET) for _ in range(11))
        ids.add(photo_id)
        draw_scene(scene, rng, size).save(folder / f"{photo_id}.jpg", quality=JPEG_QUALITY)
        path = f"thanosql-dataset/{dataset_name}/{photo_id}.jpg"
        records.append((photo_id, path, "", scene.short_caption, scene.caption))
    stem = Path(csv_name).stem
    test = min(test, count)
    files = {
        csv_name: records,
        f"{stem}_train.csv": records[: count - test],
        f"{stem}_test.csv": records[count - test :],
    }
    for name, rows in files.items():
        write_csv(folder / name, UNSPLASH_COLUMNS, rows)
    return {name: len(rows) for name, rows in files.items()}


def write_csv(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    """A UTF-8 CSV with a header row; None is written as an empty field (COPY reads NULL)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


GENERATORS: dict[str, Callable[..., dict[str, int]]] = {
    "digits": generate_digits,
    "shapes": generate_shapes,
}
