"""Plain PyTorch image encoders uploaded with ``UPLOAD MODEL m OPTIONS (framework='pytorch')``.

The file is a TorchScript archive (``torch.jit.save``) or a whole pickled module (``torch.save``
of an ``nn.Module``: loading it runs the file's code, which is why only a file the user uploads is
ever loaded this way, and its class must be importable). The encoder maps a ``(B, 3, S, S)`` batch
to ``(B, d)`` (or ``(B, d, 1, 1)``). Images get torchvision's usual preprocessing: bicubic resize of
the short side to S, centre crop, ImageNet mean and std. Folder: ``model.pt`` (the file as
uploaded) and model.json (family='pytorch', arch=<class name>, options: input_size, format).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import ModelAdapter
from .images import IMAGENET_MEAN, IMAGENET_STD, embed_image_batches
from .store import ModelInfo, ModelStore
from .weights import is_torchscript

MODEL_FILE = "model.pt"
DEFAULT_BATCH_SIZE = {"cpu": 32, "cuda": 256}


def read_module(path: str | Path):
    """``(module, format)`` from a TorchScript archive or a pickled ``nn.Module``, on the CPU, in
    eval mode; ModelError when the file is neither."""
    import torch

    from .torchvision_shim import import_torchvision

    import_torchvision()  # a pickled torchvision model imports it while unpickling
    if is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location="cpu").eval(), "torchscript"
        except RuntimeError as exc:
            raise ModelError(f"cannot load the TorchScript archive {path}: {exc}") from exc
    try:
        module = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelError(
            f"cannot load {path} as a PyTorch model: {type(exc).__name__}: {exc}",
            hint="save it with torch.jit.save(torch.jit.script(model), path) (or torch.save(model, path) "
            "with its class importable here)",
        ) from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelError(
            f"{path} holds a {type(module).__name__}, not a model",
            hint="a state_dict alone does not say how to build the model: save the whole module, "
            "or TorchScript (torch.jit.save)",
        )
    return module.eval(), "pickle"


def embedding_width(module, input_size: int) -> int:
    """d, from running ``module`` on one blank ``(1, 3, S, S)`` image; ModelError if it fails."""
    import torch

    try:
        with torch.inference_mode():
            output = module(torch.zeros(1, 3, input_size, input_size))
    except Exception as exc:
        raise ModelError(
            f"the model fails on a (1, 3, {input_size}, {input_size}) image: {type(exc).__name__}: {exc}",
            hint="give the side it expects with OPTIONS (input_size=...)",
        ) from exc
    if not isinstance(output, torch.Tensor) or output.dim() < 2 or output[0].numel() != output.shape[1]:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ModelError(f"the model returns {shape} for one image; an image encoder returns (1, d) or (1, d, 1, 1)")
    return int(output.shape[1])


def store_pytorch_model(
    store: ModelStore, name: str, path: Path, *, input_size: int, source: str, overwrite: bool = False, span=None
) -> ModelInfo:
    """Check the file, then copy it into the store as ``name``."""
    module, file_format = read_module(path)
    dim = embedding_width(module, input_size)
    arch = getattr(module, "original_name", None) or type(module).__name__
    with store.create(
        name,
        family="pytorch",
        arch=arch,
        embedding_dim=dim,
        options={"input_size": input_size, "format": file_format},
        source=source,
        overwrite=overwrite,
        span=span,
    ) as folder:
        shutil.copyfile(path, folder / MODEL_FILE)
    return store.get(name)


def image_preprocess(input_size: int):
    from .torchvision_shim import import_torchvision

    transforms = import_torchvision().transforms
    return transforms.Compose(
        [
            transforms.Resize(input_size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(input_size),
            transforms.Lambda(_rgb),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _rgb(image):
    return image if image.mode == "RGB" else image.convert("RGB")


class PytorchAdapter(ModelAdapter):
    """An uploaded image encoder (see base.ModelAdapter); images only."""

    modalities = frozenset({"image"})

    def __init__(self, info: ModelInfo, module, device: str) -> None:
        self.info = info
        self.module = module.to(device)
        self.device = device
        self.embedding_dim = int(info.embedding_dim)
        self.input_size = int(info.options.get("input_size", 224))
        self.preprocess = image_preprocess(self.input_size)

    def _encode(self, batch):
        return self.module(batch).flatten(1)

    def embed_images(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int | None = None,
        num_workers: int | None = None,
        progress=None,
        on_error: str = "raise",
    ) -> np.ndarray:
        return embed_image_batches(
            paths,
            self.preprocess,
            self._encode,
            batch_size=batch_size or DEFAULT_BATCH_SIZE.get(self.device, 32),
            num_workers=num_workers,
            device=self.device,
            progress=progress,
            on_error=on_error,
            input_size=self.input_size,
            dim=self.embedding_dim,
        )


def load(info: ModelInfo, device: str) -> PytorchAdapter:
    path = Path(info.path) / MODEL_FILE
    if not path.is_file():
        raise ModelError(
            f"model '{info.name}' is damaged: {path} is missing", hint=f"DELETE MODEL {info.name}, then upload it again"
        )
    module, _ = read_module(path)
    return PytorchAdapter(info, module, device)
