"""The pre-built models GET THANOSQL MODEL knows, as data (no torch here).

Each name maps to an open_clip architecture and weight tag (DESIGN.md decision 9: ``clip`` is
``ViT-B-32`` with OpenAI's weights, the original product's CLIPEn); GET's ``arch`` and
``pretrained`` options reach every other pair open_clip publishes. LIST THANOSQL MODEL shows
`list_pretrained()`; GET looks names up with `get_prebuilt()`. Each name must appear in README.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prebuilt:
    """One pre-built model: ``family`` 'clip' means open_clip ``arch`` with weights ``pretrained``."""

    name: str
    family: str
    arch: str
    pretrained: str
    class_name: str
    description: str


CATALOG: dict[str, Prebuilt] = {
    entry.name: entry
    for entry in (
        Prebuilt(
            "clip",
            "clip",
            "ViT-B-32",
            "openai",
            "CLIPEn",
            "CLIP ViT-B/32 (OpenAI weights): English text and images in one 512-d space",
        ),
    )
}


def get_prebuilt(name: str) -> Prebuilt | None:
    """The catalog entry called ``name`` (case-insensitive), or None.

    >>> get_prebuilt("CLIP").arch
    'ViT-B-32'
    """
    return CATALOG.get(name.lower())


def list_pretrained() -> list[dict]:
    """One row per pre-built model: name, class_name, description.

    >>> list_pretrained()[0]["name"]
    'clip'
    """
    return [
        {"name": entry.name, "class_name": entry.class_name, "description": entry.description}
        for entry in CATALOG.values()
    ]
