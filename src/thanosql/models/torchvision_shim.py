"""Import torchvision where its native operators are missing (a CUDA-built wheel on a CPU box).

torchvision registers fake kernels for ``torchvision::nms``/``qnms`` at import, which fails when
its compiled ``_C`` library cannot load. `import_torchvision` declares those operator schemas
(no kernels) and imports again; everything that imports torchvision, open_clip or lightly calls it
first. Where torchvision imports normally, nothing is declared.
"""

from __future__ import annotations

import sys

# Schemas of the operators torchvision's _meta_registrations.py registers fake kernels for without
# first checking that its library loaded (the register_meta ones are guarded by _has_ops()). They
# are copied from torchvision/csrc/ops/nms.cpp; calling them still fails, as it would have anyway.
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

# The torch.library.Library that owns the declarations: dropping it would undeclare them.
_declared = None


def import_torchvision():
    """Import and return torchvision, declaring its missing native operators if needed.

    >>> torchvision = import_torchvision()
    >>> torchvision.transforms.functional.to_tensor  # the pure-Python parts work
    <function to_tensor at ...>
    """
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc) or "does not exist" not in str(exc):
            raise
        _forget_partial_import()
        _declare_operators()
        import torchvision
    return torchvision


def _forget_partial_import() -> None:
    # The failed import left half-initialised torchvision modules behind; a second import
    # would find them in sys.modules and never run their code again.
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def _declare_operators() -> None:
    global _declared
    import torch

    if _declared is not None:
        return
    library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _SCHEMAS.items():
        if not _exists(name):
            library.define(schema)
    _declared = library


def _exists(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True
