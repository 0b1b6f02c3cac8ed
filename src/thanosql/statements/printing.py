"""Handler of PRINT {IMAGE|AUDIO|VIDEO} [OPTIONS (image_col=..., limit=...)] AS query.

Returns a display object (display.ImageGrid, or MediaList for audio and video) of the query's
rows in their order; the session shows it through ``notify`` (a grid in a notebook, the paths in
a terminal) and PRINT itself yields no rows (DESIGN.md decision 12).
"""

from __future__ import annotations

import pyarrow as pa

from ..display import MAX_GRID_IMAGES, ImageGrid, MediaList
from ..errors import PlanError, choices_hint
from .columns import matching_columns


def print_media(session, step):
    """PRINT IMAGE|AUDIO|VIDEO [OPTIONS (image_col | audio_col | video_col, limit)] AS query."""
    node, options, spans = step.statement, step.options, step.spans
    media = node.media
    if media not in ("image", "audio", "video"):
        raise PlanError(f"PRINT {media.upper()} is not supported", span=node.span, hint="PRINT IMAGE, AUDIO or VIDEO")
    limit = options["limit"]
    option = f"{media}_col"
    rows = session.query(step.source, node)
    column = _path_column(rows, options[option], option, spans.get(option, node.span))
    if limit is not None:
        rows = rows.slice(0, limit)
    settings = {
        "root": session.workspace,
        "thumbnail_size": session.settings.thumbnail_size,
        # An explicit limit is what the user wants to see, even past the page's default.
        "max_shown": None if limit is not None else MAX_GRID_IMAGES,
    }
    if media == "image":
        return ImageGrid.from_table(rows, column, **settings)
    return MediaList.from_table(rows, column, kind=media, **settings)


def _path_column(rows: pa.Table, name: str, option: str, span) -> str:
    columns = rows.column_names
    matches = matching_columns(columns, name)
    if not matches:
        raise PlanError(
            f"column '{name}' not found in the rows PRINT reads",
            span=span,
            hint=choices_hint(name, columns, "columns") + f" (set {option}=... to the column of file paths)",
        )
    column = matches[0]
    kind = rows.schema.field(columns.index(column)).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise PlanError(
            f"column '{column}' holds {kind}, not file paths",
            span=span,
            hint=f"{option} must name a column of paths, e.g. 'thanosql-dataset/<dataset>/<file>.jpg'",
        )
    return column
