"""What results look like: rows (ResultFrame, frame_text, frame_html), and what PRINT shows:
ImageGrid (PRINT IMAGE) and MediaList (PRINT AUDIO / PRINT VIDEO).

Rows show a missing value as NULL, whatever pandas holds for it (None, NaN, NaT, <NA>), in the
notebook's table (dimmed) and on the command line alike. PRINT's displays: in a notebook
``_repr_html_`` draws the rows (thumbnails or players as data URIs, each row's other columns as
its caption); in a terminal and on the command line ``repr``/``str`` are the file paths, one per
line; ``to_html()`` is a standalone page. A missing or unreadable file shows a placeholder with its
path, never an exception. PIL is imported only when a picture is drawn.
"""

from __future__ import annotations

import base64
import html
import io
import mimetypes
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

# Pictures past this many pixels are only decoded when their format can decode at a reduced
# size (JPEG's draft mode); others get a placeholder rather than stalling the notebook.
MAX_FULL_DECODE_PIXELS = 40_000_000
# Audio and video files are embedded in the page up to this size; larger ones are listed.
MAX_EMBEDDED_MEDIA_BYTES = 20 * 1024 * 1024
CAPTION_CHARS = 60
# A notebook page holds this many pictures unless PRINT's limit asks for more; the text form
# always lists every path.
MAX_GRID_IMAGES = 1000


# ------------------------------------------------------------------------------------- rows

# One rendering for a missing value, as DuckDB's own command line shows it.
NULL_TEXT = "NULL"
NULL_HTML = "<span class='thanosql-null' style='color:#999'>NULL</span>"
# Stands for NULL in the HTML pandas writes, then becomes NULL_HTML: private-use characters pass
# pandas' escaping unchanged and occur in no data.
_NULL_MARK = "\ue000NULL\ue000"


def frame_text(frame: pd.DataFrame, **options: Any) -> str:
    """``frame.to_string(**options)`` with NULL for every missing value.

    >>> print(frame_text(pd.DataFrame({"a": [1.5, None], "b": ["x", None]}), index=False))
       a    b
     1.5    x
    NULL NULL
    """
    return _marked(frame, NULL_TEXT).to_string(na_rep=NULL_TEXT, **options)


def frame_html(frame: pd.DataFrame, **options: Any) -> str:
    """``frame.to_html(**options)`` with a dimmed NULL for every missing value.

    >>> "<td><span class='thanosql-null'" in frame_html(pd.DataFrame({"a": [None]}))
    True
    """
    return _marked(frame, _NULL_MARK).to_html(na_rep=_NULL_MARK, **options).replace(_NULL_MARK, NULL_HTML)


def _marked(frame: pd.DataFrame, mark: str) -> pd.DataFrame:
    """``frame`` with ``mark`` for the missing values pandas' ``na_rep`` does not reach (None and
    <NA> in object, nullable and list columns); float and time columns keep their dtype, so their
    numbers keep pandas' formatting, and ``na_rep`` writes their NaN and NaT."""
    changed = {}
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if getattr(column.dtype, "kind", "O") in "fmM":
            continue
        missing = column.isna()
        if missing.any():
            changed[position] = column.astype(object).mask(missing, mark)
    if not changed:
        return frame
    marked = frame.copy(deep=False)
    for position, column in changed.items():
        marked.isetitem(position, column)
    return marked


class ResultFrame(pd.DataFrame):
    """A statement's rows as the magic returns them: a pandas DataFrame in every way, shown with
    NULL for every missing value (frame_text, frame_html) under pandas' display options.

    >>> ResultFrame({"nothing": [None]})
      nothing
    0    NULL
    """

    @property
    def _constructor(self):
        return ResultFrame  # frames made from it (head(), a filter) show NULL too

    def __repr__(self) -> str:
        from pandas.io.formats.format import get_dataframe_repr_params

        return frame_text(self, **get_dataframe_repr_params())

    def _repr_html_(self) -> str:
        return frame_html(
            self,
            notebook=True,
            max_rows=pd.get_option("display.max_rows"),
            max_cols=pd.get_option("display.max_columns"),
            show_dimensions=pd.get_option("display.show_dimensions"),
        )


# ------------------------------------------------------------------------------- media rows


@dataclass(frozen=True)
class MediaItem:
    """One row: the file path as the table holds it (None for NULL) and its caption lines."""

    path: str | None
    captions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Thumbnail:
    """A picture ready for a data URI: its MIME type, bytes, and pixel size."""

    mime: str
    data: bytes
    width: int
    height: int

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def rows_to_items(table: pa.Table, path_column: str) -> list[MediaItem]:
    """One MediaItem per row of ``table``: the path from ``path_column``, captions from the other
    columns (``name: value``; floats to 4 decimals, lists and binary data left out).

    >>> rows_to_items(pa.table({"image_path": ["a.jpg"], "search_result": [0.31656]}), "image_path")
    [MediaItem(path='a.jpg', captions=('search_result: 0.3166',))]
    """
    paths = table.column(path_column).to_pylist()
    shown = [
        name
        for name, field in zip(table.column_names, table.schema)
        if name != path_column and not _is_bulky(field.type)
    ]
    values = {name: table.column(name).to_pylist() for name in shown}
    return [
        MediaItem(
            path=None if path is None else str(path),
            captions=tuple(f"{name}: {_caption_value(values[name][row])}" for name in shown),
        )
        for row, path in enumerate(paths)
    ]


def _is_bulky(kind: pa.DataType) -> bool:
    return (
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_struct(kind)
        or pa.types.is_map(kind)
    )


def _caption_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return text if len(text) <= CAPTION_CHARS else text[: CAPTION_CHARS - 1] + "…"


def resolve(root: Path, path: str) -> Path:
    """A path from a table: relative ones start at ``root`` (the workspace)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else root / candidate


def make_thumbnail(path: Path, size: int) -> Thumbnail | str:
    """A picture of ``path`` at most ``size`` pixels on its longer side, or the reason there is
    none ('missing', 'unreadable', 'too large').

    >>> make_thumbnail(Path("photo.jpg"), 160).width <= 160  # doctest: +SKIP
    True

    JPEGs are decoded at a reduced scale (``draft``), so a camera-size photo costs a fraction of
    a full decode; transparency and grey pictures are kept as PNG, colour photos become JPEG.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.draft(None, (size, size))
            if image.width * image.height > MAX_FULL_DECODE_PIXELS:
                return "too large"
            image.thumbnail((size, size))
            return _encode(image)
    except FileNotFoundError:
        return "missing"
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return "unreadable"


def _encode(image) -> Thumbnail:
    if image.mode in ("RGBA", "LA", "P", "PA", "L", "1", "I;16"):
        image = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P", "PA") else "L")
        fmt, mime = "PNG", "image/png"
    else:
        image = image.convert("RGB")
        fmt, mime = "JPEG", "image/jpeg"
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return Thumbnail(mime, buffer.getvalue(), image.width, image.height)


class _MediaDisplay:
    """Rows of media files: the shared text form and page wrapper of the displays below."""

    kind = "media"

    def __init__(
        self,
        items: Sequence[MediaItem],
        *,
        root: Path,
        thumbnail_size: int = 160,
        max_shown: int | None = MAX_GRID_IMAGES,
    ) -> None:
        self.items = list(items)
        self.root = Path(root)
        self.thumbnail_size = int(thumbnail_size)
        self.max_shown = max_shown

    @classmethod
    def from_table(cls, table: pa.Table, path_column: str, **settings):
        """A display of ``table``'s rows, the files named by ``path_column``; ``settings`` are
        the constructor's keywords (root, thumbnail_size, max_shown)."""
        return cls(rows_to_items(table, path_column), **settings)

    @property
    def shown(self) -> list[MediaItem]:
        """The items drawn on a page (all of them, or the first ``max_shown``)."""
        return self.items if self.max_shown is None else self.items[: self.max_shown]

    def _more_html(self) -> str:
        hidden = len(self.items) - len(self.shown)
        if hidden <= 0:
            return ""
        return (
            f"<p style='font-size:12px;color:#666'>showing the first {len(self.shown):,} of "
            f"{len(self.items):,} rows; PRINT ... OPTIONS (limit=...) chooses how many</p>"
        )

    @property
    def paths(self) -> list[str | None]:
        return [item.path for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        if not self.items:
            return f"(no {self.kind}s)"
        return "\n".join("NULL" if path is None else path for path in self.paths)

    __str__ = __repr__

    def to_html(self, title: str | None = None) -> str:
        """A standalone HTML page with this display (for a file a person opens)."""
        heading = html.escape(title or f"thanosql: {len(self)} {self.kind}{'s' if len(self) != 1 else ''}")
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{heading}</title></head><body style='font-family:sans-serif;margin:2em'>"
            f"<h1 style='font-size:1.3em'>{heading}</h1>\n{self._repr_html_()}\n</body></html>\n"
        )

    def _repr_html_(self) -> str:  # pragma: no cover - each display draws itself
        raise NotImplementedError

    def _caption_html(self, item: MediaItem) -> str:
        name = "NULL" if item.path is None else os.path.basename(item.path)
        lines = [f"<span style='color:#666'>{html.escape(name)}</span>"]
        lines += [html.escape(caption) for caption in item.captions]
        return (
            "<figcaption style='font-size:11px;line-height:1.3;word-break:break-all;margin-top:2px'>"
            + "<br>".join(lines)
            + "</figcaption>"
        )


class ImageGrid(_MediaDisplay):
    """PRINT IMAGE's result: a grid of thumbnails captioned with each row's other columns.

    >>> grid = ImageGrid.from_table(rows, "image_path", root=workspace, thumbnail_size=160)  # doctest: +SKIP
    >>> print(grid)                       # the paths, one per line  # doctest: +SKIP
    thanosql-dataset/unsplash_data/UMyfDjQ6Ep8.jpg
    >>> grid._repr_html_()                # what a notebook shows  # doctest: +SKIP

    Thumbnails are made once, the first time the grid is drawn, several at a time.
    """

    kind = "image"

    def __init__(self, items: Sequence[MediaItem], **settings) -> None:
        super().__init__(items, **settings)
        self._thumbnails: list[Thumbnail | str] | None = None

    def thumbnails(self) -> list[Thumbnail | str]:
        """Each shown row's Thumbnail, or the reason it has none ('missing', 'unreadable', ...)."""
        if self._thumbnails is None:

            def one(item: MediaItem) -> Thumbnail | str:
                if item.path is None:
                    return "NULL path"
                return make_thumbnail(resolve(self.root, item.path), self.thumbnail_size)

            # Decoding releases the GIL: a few threads keep a grid of photos quick.
            shown = self.shown
            workers = max(1, min(8, os.cpu_count() or 1, len(shown)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                self._thumbnails = list(pool.map(one, shown))
        return self._thumbnails

    def _repr_html_(self) -> str:
        size = self.thumbnail_size
        cells = []
        box = f"width:{size}px;height:{size}px"
        for item, picture in zip(self.shown, self.thumbnails()):
            title = html.escape(item.path or "NULL", quote=True)
            if isinstance(picture, Thumbnail):
                # Small pictures (28-px digits) are scaled up without blurring.
                crisp = "image-rendering:pixelated;" if max(picture.width, picture.height) < size else ""
                body = (
                    f"<img src='{picture.data_uri()}' alt='{title}' title='{title}' "
                    f"style='{box};object-fit:contain;{crisp}background:#f3f3f3;display:block'>"
                )
            else:
                body = (
                    f"<div title='{title}' style='{box};background:#eee;color:#a33;font-size:11px;"
                    "display:flex;align-items:center;justify-content:center;text-align:center;"
                    f"word-break:break-all;padding:4px;box-sizing:border-box'>"
                    f"{html.escape(picture)}: {title}</div>"
                )
            cells.append(f"<figure style='margin:0;width:{size}px'>{body}{self._caption_html(item)}</figure>")
        if not cells:
            return "<p><em>no images</em></p>"
        grid = "<div class='thanosql-grid' style='display:flex;flex-wrap:wrap;gap:10px'>" + "".join(cells) + "</div>"
        return grid + self._more_html()


class MediaList(_MediaDisplay):
    """PRINT AUDIO / PRINT VIDEO's result: a player per row (the file embedded in the page up to
    MAX_EMBEDDED_MEDIA_BYTES), captioned like ImageGrid; the paths in a terminal."""

    def __init__(self, items: Sequence[MediaItem], *, kind: str = "audio", **settings) -> None:
        super().__init__(items, **settings)
        self.kind = kind

    def _repr_html_(self) -> str:
        cells = [
            f"<figure style='margin:0 0 10px 0'>{self._player(item)}{self._caption_html(item)}</figure>"
            for item in self.shown
        ]
        if not cells:
            return f"<p><em>no {self.kind}s</em></p>"
        return "<div class='thanosql-media'>" + "".join(cells) + "</div>" + self._more_html()

    def _player(self, item: MediaItem) -> str:
        title = html.escape(item.path or "NULL", quote=True)
        if item.path is None:
            return "<div style='color:#a33'>NULL path</div>"
        path = resolve(self.root, item.path)
        try:
            size = path.stat().st_size
        except OSError:
            return f"<div style='color:#a33'>missing: {title}</div>"
        if size > MAX_EMBEDDED_MEDIA_BYTES:
            return f"<div>too large to embed ({size / 1e6:.0f} MB): {title}</div>"
        mime = mimetypes.guess_type(path.name)[0] or f"{self.kind}/*"
        try:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError:
            return f"<div style='color:#a33'>unreadable: {title}</div>"
        width = "" if self.kind == "audio" else f" width='{self.thumbnail_size * 2}'"
        return f"<{self.kind} controls{width} title='{title}' src='data:{mime};base64,{data}'></{self.kind}>"
