"""CLIP models through open_clip: build from an architecture name or a config dict, load and
store weights, and the ClipAdapter that embeds images and texts.

A CLIP model folder of the store (``thanosql-model/<name>/``) holds:
  weights.pt         the open_clip model's ``state_dict()`` (torch.save), loadable with
                     ``open_clip.load_checkpoint``; read back memory-mapped (mapped.py)
  model_config.json  optional: the open_clip config dict ``{embed_dim, vision_cfg, text_cfg,
                     quick_gelu, ...}``; without it ``arch`` must be a config open_clip ships
  model.json         family='clip', arch=<config name>, embedding_dim=<embed_dim>, options:
                     ``pretrained`` (weight tag or None), ``preprocess`` (open_clip's preprocess
                     cfg: size, mean, std, interpolation, resize_mode, fill_color; default:
                     open_clip's defaults for the model)
`store_clip_model` writes this layout (GET, UPLOAD and BUILD MODEL USING CLIP all use it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, Span, choices_hint
from .base import ModelAdapter
from .images import autocast, embed_image_batches
from .mapped import load_mapped, without_random_init
from .store import ModelInfo, ModelStore
from .weights import is_torchscript

WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "model_config.json"

# Rows per encoder call when the statement does not say: CPU matrix products gain little past 32,
# and a GPU needs large batches to be kept busy.
DEFAULT_BATCH_SIZE = {"cpu": 32, "cuda": 256}


def import_open_clip():
    """open_clip, imported after the torchvision shim (open_clip imports torchvision)."""
    from .torchvision_shim import import_torchvision

    import_torchvision()
    import open_clip

    return open_clip


def model_config(arch: str, config: dict | None = None, span: Span | None = None) -> dict:
    """The open_clip config dict of ``arch``: ``config`` itself when given, else open_clip's own.

    >>> model_config("ViT-B-32")["embed_dim"]
    512
    """
    if config is not None:
        missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in config]
        if missing:
            raise ModelError(
                f"the model config of '{arch}' lacks {', '.join(missing)}",
                span=span,
                hint="an open_clip model config has embed_dim, vision_cfg and text_cfg "
                "(see open_clip/model_configs/*.json)",
            )
        return copy.deepcopy(config)
    open_clip = import_open_clip()
    found = open_clip.get_model_config(arch)
    if found is None:
        raise ModelError(
            f"open_clip has no architecture '{arch}'",
            span=span,
            hint=choices_hint(
                arch, [name for name in open_clip.list_models() if "-thanosql-" not in name], "architectures"
            )
            + "; or give model_config='path/to/<arch>.json'",
        )
    return found


def build_open_clip(
    arch: str,
    config: dict | None = None,
    device: str = "cpu",
    *,
    checkpoint: str | os.PathLike | None = None,
    mapped: bool = False,
    preprocess_cfg: dict | None = None,
):
    """An open_clip model in eval mode with its inference preprocessing and tokenizer.

    >>> model, preprocess, tokenizer = build_open_clip("ViT-B-32", checkpoint="weights.pt")  # doctest: +SKIP
    >>> model.encode_image(preprocess(image)[None]).shape  # doctest: +SKIP
    torch.Size([1, 512])

    ``config``: an open_clip config dict (for architectures open_clip does not ship; ``arch`` is
    then only its name). ``checkpoint``: weights to load (strictly: they must fit). Without one the
    weights are random. ``mapped``: the checkpoint is a store's own weights file (this very
    architecture's state_dict), so the model is built without its random initialisation and
    given the file's tensors memory-mapped (mapped.py). ``preprocess_cfg``: overrides of
    open_clip's preprocess cfg (mean, std, interpolation, resize_mode, ...), e.g. those a weight
    tag was trained with.
    """
    open_clip = import_open_clip()
    from open_clip.transform import PreprocessCfg, image_transform_v2

    name = _registered_name(arch, model_config(arch, config))
    try:
        with _quiet_logging(), without_random_init() if mapped and checkpoint is not None else nullcontext():
            model = open_clip.create_model(
                name,
                device="cpu",
                pretrained_image=False,
                pretrained_text=False,
                force_preprocess_cfg=preprocess_cfg or None,
            )
        # Configs with a Hugging Face text tower fetch their tokenizer from the hub.
        tokenizer = open_clip.get_tokenizer(name)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError, OSError) as exc:
        raise ModelError(
            f"open_clip cannot build architecture '{arch}': {type(exc).__name__}: {exc}",
            hint="check the model config against open_clip's (open_clip/model_configs/*.json); "
            "configs that name Hugging Face towers need those files on this machine",
        ) from exc
    if checkpoint is not None:
        load_weights(model, checkpoint, arch=arch, mapped=mapped)
    model = model.to(device).eval()
    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    return model, preprocess, tokenizer


def _registered_name(arch: str, config: dict) -> str:
    """The name under which open_clip knows ``config``: ``arch`` when it is that built-in config,
    else a name derived from the config's content (registered on first use).

    open_clip creates models only from registered names (``add_model_config``). A custom config is
    registered under ``<arch>-thanosql-<hash>`` so that it can never replace a built-in config,
    nor another custom config of the same name, in open_clip's process-wide registry.
    """
    open_clip = import_open_clip()
    if open_clip.get_model_config(arch) == config:
        return arch
    text = json.dumps(config, sort_keys=True)
    name = f"{arch}-thanosql-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if open_clip.get_model_config(name) is None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{name}.json"
            path.write_text(text)
            open_clip.add_model_config(path)
    return name


@contextmanager
def _quiet_logging():
    # open_clip logs "No pretrained weights loaded ... initialized randomly" on the root logger,
    # which notebooks print as a warning; we always load the weights right after.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def load_weights(model, checkpoint: str | os.PathLike, *, arch: str = "", mapped: bool = False) -> None:
    """Load an open_clip checkpoint into ``model`` (strict: every weight must fit).

    >>> load_weights(model, "weights.pt", arch="ViT-B-32")  # doctest: +SKIP

    Accepts what open_clip accepts (a state_dict, a training checkpoint with 'state_dict',
    .safetensors) and OpenAI's TorchScript archives. Raises ModelError naming the file when it is
    not a checkpoint of this architecture. ``mapped``: a store's own weights file, whose tensors
    the model takes memory-mapped (mapped.py).
    """
    open_clip = import_open_clip()
    path = str(checkpoint)
    try:
        if mapped:
            load_mapped(model, path)
        elif is_torchscript(path):
            _load_torchscript(model, path)
        else:
            open_clip.load_checkpoint(model, path, strict=True, weights_only=True)
    except Exception as exc:
        detail = str(exc).strip().split("\n")
        summary = " ".join(line.strip() for line in detail[:4])
        if len(summary) > 400:
            summary = summary[:400] + " ..."
        raise ModelError(
            f"cannot load {path} as weights of open_clip {arch or 'model'}: {summary}",
            hint="the checkpoint must come from the same architecture (a state_dict saved with "
            "torch.save(model.state_dict(), ...), an open_clip training checkpoint or .safetensors)",
        ) from exc


def _load_torchscript(model, path: str) -> None:
    # OpenAI's original ViT-B-32.pt is a TorchScript archive, which torch.load refuses with
    # weights_only=True; torch.jit.load reads it without unpickling arbitrary objects.
    import torch

    open_clip = import_open_clip()
    state_dict = torch.jit.load(path, map_location="cpu").state_dict()
    # TorchScript keeps what the model does not persist (attn_mask) and OpenAI's archive adds
    # three scalars; open_clip's load_openai_model drops the same.
    transient = {name for name, _ in model.named_buffers()} - set(model.state_dict())
    for key in transient | {"input_resolution", "context_length", "vocab_size"}:
        state_dict.pop(key, None)
    with tempfile.TemporaryDirectory() as folder:
        plain = os.path.join(folder, "state_dict.pt")
        torch.save(state_dict, plain)
        open_clip.load_checkpoint(model, plain, strict=True, weights_only=True)


def tag_preprocess_cfg(arch: str, tag: str | None) -> dict:
    """The preprocessing open_clip pairs with weights ``tag`` of ``arch`` (mean, std, ...).

    >>> tag_preprocess_cfg("ViT-B-32", "openai")["interpolation"]
    'bicubic'
    """
    if not tag:
        return {}
    open_clip = import_open_clip()
    from open_clip.transform import merge_preprocess_dict

    return merge_preprocess_dict({}, open_clip.get_pretrained_cfg(arch, tag))


def tag_config(arch: str, tag: str | None, span: Span | None = None) -> dict:
    """``arch``'s config as weights ``tag`` need it.

    >>> tag_config("ViT-B-32", "openai")["quick_gelu"]
    True

    OpenAI's weights were trained with QuickGELU, which open_clip's plain ``ViT-B-32`` config
    leaves out (its ``-quickgelu`` twin has it); open_clip only warns about the mismatch.
    """
    config = model_config(arch, span=span)
    if tag:
        open_clip = import_open_clip()
        if open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu"):
            config["quick_gelu"] = True
    return config


def store_clip_model(
    store: ModelStore,
    name: str,
    model,
    *,
    arch: str,
    config: dict,
    pretrained: str | None = None,
    source: str = "",
    overwrite: bool = False,
    extra_options: dict[str, Any] | None = None,
    span: Span | None = None,
) -> ModelInfo:
    """Write ``model`` into the store as ``name`` in the layout of this module's docstring.

    >>> store_clip_model(session.models, "m", model, arch="ViT-B-32", config=config).embedding_dim  # doctest: +SKIP
    512
    """
    import torch

    preprocess = {
        key: list(value) if isinstance(value, tuple) else value for key, value in model.visual.preprocess_cfg.items()
    }
    options = {"pretrained": pretrained, "preprocess": preprocess, **(extra_options or {})}
    with store.create(
        name,
        family="clip",
        arch=arch,
        embedding_dim=int(config["embed_dim"]),
        options=options,
        source=source,
        overwrite=overwrite,
        span=span,
    ) as folder:
        torch.save(model.state_dict(), folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    return store.get(name)


class ClipAdapter(ModelAdapter):
    """A stored CLIP model, ready to embed (see base.ModelAdapter).

    >>> adapter = load(session.models.get("tutorial_search_clip"), "cpu")  # doctest: +SKIP
    >>> adapter.embed_texts(["a black cat", "a red car"]).shape  # doctest: +SKIP
    (2, 512)

    Embeddings are open_clip's ``encode_image``/``encode_text`` outputs, not normalised.
    ``reduced_decode`` False turns off reduced-size JPEG decoding (images.open_image), for
    pixel-exact preprocessing of large photos at ~5x the decoding cost. ``packed_tower`` False
    runs open_clip's own image tower on a CPU instead of the copy with oneDNN-packed linear
    layers (models/onednn.py: ~1.2x faster, equal to about 1e-6).
    """

    modalities = frozenset({"image", "text"})

    def __init__(self, info: ModelInfo, model, preprocess, tokenizer, device: str) -> None:
        self.info = info
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.embedding_dim = int(info.embedding_dim)
        size = model.visual.preprocess_cfg.get("size", 224)
        self.input_side = min(size) if isinstance(size, (tuple, list)) else int(size)
        self.reduced_decode = True
        self.packed_tower = True
        self._cpu_tower = None  # built at the first image batch on a CPU; False: not possible

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH_SIZE.get(self.device, 32)

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
            self._image_encoder(batch_size or self.default_batch_size),
            batch_size=batch_size or self.default_batch_size,
            num_workers=num_workers,
            device=self.device,
            progress=progress,
            on_error=on_error,
            input_size=self.input_side if self.reduced_decode else None,
            dim=self.embedding_dim,
        )

    def _image_encoder(self, batch_size: int):
        """``encode_image``, or on a CPU the same tower with packed linear layers."""
        if self.device != "cpu" or not self.packed_tower:
            return self.model.encode_image
        if self._cpu_tower is None:
            from .onednn import packed_tower

            grid = getattr(self.model.visual, "grid_size", None)
            tokens = grid[0] * grid[1] + 1 if grid else 1
            self._cpu_tower = packed_tower(self.model.visual, rows=batch_size * tokens) or False
        return self._cpu_tower or self.model.encode_image

    def embed_texts(self, texts: Sequence[str], *, batch_size: int | None = None, progress=None) -> np.ndarray:
        import torch

        texts = [str(text) for text in texts]
        batch_size = batch_size or self.default_batch_size
        result = np.empty((len(texts), self.embedding_dim), dtype=np.float32)
        bar = progress(total=len(texts), desc="texts", unit="text") if progress is not None and texts else None
        try:
            with torch.inference_mode(), autocast(self.device):
                for start in range(0, len(texts), batch_size):
                    tokens = self.tokenizer(texts[start : start + batch_size]).to(self.device)
                    result[start : start + len(tokens)] = self.model.encode_text(tokens).float().cpu().numpy()
                    if bar is not None:
                        bar.update(len(tokens))
        finally:
            if bar is not None:
                bar.close()
        return result


def read_clip_model(info: ModelInfo, device: str = "cpu"):
    """``(model, preprocess, tokenizer, config)`` of stored model ``info`` on ``device``: the open_clip
    model with its weights, its image preprocessing, its tokenizer and the config it was built
    from (for FIT MODEL, which trains and stores it again). A missing or damaged file is a
    ModelError saying how to recover."""
    folder = Path(info.path)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(
            f"model '{info.name}' is damaged: {weights} is missing",
            hint=f"DELETE MODEL {info.name}, then make it again",
        )
    config = None
    if (folder / CONFIG_FILE).is_file():
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
        except ValueError as exc:
            raise ModelError(f"model '{info.name}' is damaged: {folder / CONFIG_FILE}: {exc}") from exc
    model, preprocess, tokenizer = build_open_clip(
        info.arch,
        config,
        device,
        checkpoint=weights,
        mapped=True,
        preprocess_cfg=info.options.get("preprocess") or None,
    )
    return model, preprocess, tokenizer, config if config is not None else model_config(info.arch)


def load(info: ModelInfo, device: str) -> ClipAdapter:
    """The ClipAdapter of stored model ``info`` on ``device`` ('cpu' or 'cuda')."""
    model, preprocess, tokenizer, _ = read_clip_model(info, device)
    return ClipAdapter(info, model, preprocess, tokenizer, device)
