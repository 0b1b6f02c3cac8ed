"""Finding a column the statement names among the columns of its AS query: names are
case-insensitive in SQL, so an exact spelling wins and a case-insensitive one comes next."""

from __future__ import annotations

from collections.abc import Sequence


def matching_columns(columns: Sequence[str], name: str) -> list[str]:
    """The columns spelt ``name`` exactly, else those equal to it ignoring case (several when the
    query has duplicates).

    >>> matching_columns(["Image_Path", "label"], "image_path")
    ['Image_Path']
    >>> matching_columns(["a", "A"], "A")
    ['A']
    """
    return [c for c in columns if c == name] or [c for c in columns if c.lower() == name.lower()]
