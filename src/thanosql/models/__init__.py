"""Models: the workspace store (store.py), pre-built names (catalog.py), weight resolution
(weights.py) and one adapter per family (clip.py, simclr.py, pytorch.py).

`load_adapter(info, device)` picks the family's loader from LOADERS and imports it only then:
nothing here imports torch, so plain SQL and LIST stay cheap.
"""

from __future__ import annotations

import importlib

from ..errors import ModelError, choices_hint
from .store import ModelInfo

# family -> "module:function" that takes (info, device) and returns a ModelAdapter (base.py).
LOADERS: dict[str, str] = {
    "clip": "thanosql.models.clip:load",
    "simclr": "thanosql.models.simclr:load",
    "pytorch": "thanosql.models.pytorch:load",
}


def resolve_device(device: str | None = "auto") -> str:
    """'cuda' or 'cpu' for a setting of 'auto', 'cpu' or 'cuda'.

    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("auto") in ("cpu", "cuda")
    True

    Asking for 'cuda' where there is none is a ModelError (not a silent fall back to the CPU).
    """
    device = (device or "auto").lower()
    if device == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise ModelError(
            "device 'cuda' was asked for, but torch sees no CUDA device here",
            hint="use device='auto' or 'cpu' (THANOSQL_DEVICE)",
        )
    if device not in ("auto", "cuda"):
        raise ModelError(f"unknown device {device!r}", hint="valid devices: auto, cpu, cuda")
    return "cuda" if available else "cpu"


def load_adapter(info: ModelInfo, device: str = "auto"):
    """The adapter for stored model ``info``, its weights loaded on ``device``.

    >>> adapter = load_adapter(session.models.get("tutorial_search_clip"), "cpu")  # doctest: +SKIP
    >>> adapter.embedding_dim  # doctest: +SKIP
    512
    """
    target = LOADERS.get(info.family)
    if target is None:
        raise ModelError(
            f"model '{info.name}' has family '{info.family}', which this version cannot load",
            hint=choices_hint(info.family, sorted(LOADERS), "families"),
        )
    module_name, function_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ModelError(f"models of family '{info.family}' are not available in this installation") from exc
    return getattr(module, function_name)(info, resolve_device(device))
