"""Which published open_clip weights a statement means, and where their file is: the one copy
of CLIP weight resolution that GET THANOSQL MODEL and BUILD MODEL ... USING CLIP share.

`default_tag` chooses the weights of an architecture when the statement names none;
`open_clip_source` says where open_clip publishes them; `resolve_clip_weights` finds the file
(weights.py: checkpoint, model store, caches, download) and the config those weights need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError, Span, choices_hint
from .catalog import get_prebuilt
from .clip import import_open_clip, model_config, tag_config
from .weights import HF_WEIGHTS_NAME, Resolved, WeightSource, published_sha256, resolve_weights


@dataclass(frozen=True)
class ClipWeights:
    """Resolved weights: the architecture, its tag (None for a checkpoint of one's own), the
    open_clip config they need, and the file."""

    arch: str
    tag: str | None
    config: dict
    resolved: Resolved

    @property
    def path(self) -> Path:
        return self.resolved.path


def open_clip_source(arch: str, tag: str, span: Span | None = None) -> WeightSource:
    """The WeightSource open_clip publishes for ``arch``/``tag`` (open_clip's pretrained.py).

    >>> open_clip_source("ViT-B-32", "openai").hf_repo
    'timm/vit_base_patch32_clip_224.openai'

    Raises ModelError listing the known tags when open_clip has no such weights.
    """
    open_clip = import_open_clip()
    config = open_clip.get_pretrained_cfg(arch, tag)
    if not config:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelError(
            f"open_clip publishes no weights '{tag}' for architecture '{arch}'",
            span=span,
            hint=choices_hint(tag, tags, f"weight tags of {arch}")
            if tags
            else f"'{arch}' has no published weights; give OPTIONS (checkpoint='path/to/weights.pt')",
        )
    # 'org/repo/' names the repository's default file, 'org/repo/file.bin' a given one.
    hf_repo, hf_filename = os.path.split(config.get("hf_hub", ""))
    url = config.get("url", "")
    return WeightSource(
        arch=arch,
        tag=tag,
        hf_repo=hf_repo,
        hf_filename=(hf_filename or HF_WEIGHTS_NAME) if hf_repo else "",
        url=url,
        sha256=published_sha256(url),
    )


def default_tag(arch: str, entry=None) -> str | None:
    """The weights of ``arch`` a statement gets when it names none: the catalogue ``entry``'s
    (default: 'clip') for its architecture, else OpenAI's where they exist (the original CLIP), else the first
    tag open_clip lists; None when open_clip publishes none.

    >>> default_tag("ViT-B-32")
    'openai'
    """
    entry = entry or get_prebuilt("clip")
    if entry is not None and arch == entry.arch:
        return entry.pretrained
    tags = import_open_clip().list_pretrained_tags_by_model(arch)
    if not tags:
        return None
    return "openai" if "openai" in tags else tags[0]


def resolve_clip_weights(
    arch: str,
    tag: str | None,
    *,
    checkpoint: str | os.PathLike | None = None,
    store=None,
    offline: bool = False,
    progress=None,
    span: Span | None = None,
    arch_span: Span | None = None,
    tag_span: Span | None = None,
    no_weights_hint: str = "give a weights file of your own, or choose another arch",
) -> ClipWeights:
    """The file of ``arch``'s weights ``tag`` (or of ``checkpoint``: a path or URL, tried first),
    with the config they need. An unknown architecture, an unknown tag, or neither a tag nor a
    checkpoint is a ModelError at ``arch_span`` or ``tag_span`` (else ``span``); a file that cannot be
    found (offline with a cold cache, a failed download) one at ``span``.
    """
    config = model_config(arch, span=arch_span or tag_span or span)  # an unknown arch stops here
    source = None
    if tag is not None:
        source = open_clip_source(arch, tag, span=tag_span or span)
        config = tag_config(arch, tag)
    elif checkpoint is None:
        raise ModelError(
            f"open_clip publishes no weights for architecture '{arch}'",
            span=tag_span or span,
            hint=no_weights_hint,
        )
    resolved = resolve_weights(
        source, checkpoint=checkpoint, store=store, offline=offline, progress=progress, span=span
    )
    return ClipWeights(arch, tag, config, resolved)
