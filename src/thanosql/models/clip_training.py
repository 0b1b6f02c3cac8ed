"""Train a CLIP model (Radford et al. 2021, https://arxiv.org/abs/2103.00020) on image-caption
pairs with open_clip's contrastive ClipLoss: from scratch on SMALL_CONFIG (the default), or
fine-tuning resolved weights. The result is an ordinary open_clip model that models/clip.py stores
and loads (``store_clip_model``), so CONVERT and SEARCH by text treat it like a pre-built one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import options
from ..errors import ModelError
from .epochs import Shard, run_epochs
from .images import decode_for_training, read_training_images

# The default architecture when BUILD MODEL ... USING CLIP names none: open_clip's modified ResNet
# (CLIP's own convolutional tower, one block per stage, width 32) on 64-pixel images, and a 3-layer
# text transformer of width 128 over 32 tokens of open_clip's tokenizer; 128-d embeddings. On the
# built-in shapes (1,000 captioned pictures, two cores) five epochs take about 40 s. Chosen by
# measuring, on the held-out shapes (bench/quality.py's scoring), against a ViT of width 128 in
# 8x8 patches: the ViT took as long and put the queried colour in the top 5 far less often
# (0.81 against 0.98). Larger images (96, 128 pixels) and more epochs (up to 20) changed little.
SMALL_ARCH = "clip-small"
SMALL_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 32, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}

# Images decoded once and kept in memory for every epoch when they take less than this.
CACHE_BYTES = 1 << 30


@dataclass(frozen=True)
class ClipTrainingConfig:
    """How a CLIP model is trained: AdamW at ``learning_rate`` with a linear warm-up over the first
    tenth of the steps and a cosine decay after it (open_clip's training recipe), weight decay 0.1
    on weight matrices only, ``batch_size`` pairs per step, ``max_epochs`` passes. The defaults
    are BUILD MODEL ... USING CLIP's (options.CLIP_TRAINING)."""

    max_epochs: int = options.default_of(options.CLIP_TRAINING, "max_epochs")
    batch_size: int = options.default_of(options.CLIP_TRAINING, "batch_size")
    learning_rate: float = options.CLIP_LEARNING_RATE
    weight_decay: float = 0.1
    seed: int = options.default_of(options.CLIP_TRAINING, "seed")

    def to_options(self) -> dict[str, Any]:
        return {
            "max_epochs": self.max_epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
        }

    @classmethod
    def from_options(cls, stored: dict[str, Any]) -> ClipTrainingConfig:
        """The settings a stored model was trained with (its model.json "training"), defaults for
        those it does not record."""
        return cls(
            **{key: stored[key] for key in ("max_epochs", "batch_size", "learning_rate", "seed") if key in stored}
        )


# Options that fix what a model is; FIT MODEL keeps them from the model it continues.
ARCHITECTURE_OPTIONS = ("arch", "pretrained")


def build_config(chosen: dict[str, Any], *, published: bool) -> ClipTrainingConfig:
    """How BUILD MODEL ... USING CLIP trains: the statement's settings (already checked), the
    learning rate for ``published`` weights (fine-tuning) or for a model from scratch when it
    gives none.

    >>> build_config({"max_epochs": 5, "batch_size": 64, "learning_rate": None, "seed": 0}, published=True)
    ClipTrainingConfig(max_epochs=5, batch_size=64, learning_rate=1e-05, weight_decay=0.1, seed=0)
    """
    return ClipTrainingConfig(
        max_epochs=chosen["max_epochs"],
        batch_size=chosen["batch_size"],
        learning_rate=float(chosen["learning_rate"] or default_learning_rate(published)),
        seed=chosen["seed"],
    )


def fit_config(stored: dict[str, Any], chosen: dict[str, Any]) -> ClipTrainingConfig:
    """How FIT MODEL continues a stored CLIP model (its model.json options ``stored``): as it was
    trained, with the settings the statement gives; a model whose weights began as published ones
    gets the fine-tuning learning rate unless the statement names one.

    >>> fit_config({"training": {"max_epochs": 5, "batch_size": 64, "learning_rate": 0.001, "seed": 0}},
    ...            {"max_epochs": 2, "batch_size": None, "learning_rate": None, "seed": None})
    ClipTrainingConfig(max_epochs=2, batch_size=64, learning_rate=0.001, weight_decay=0.1, seed=0)
    """
    before = ClipTrainingConfig.from_options(stored.get("training", {}))
    return replace(
        before,
        max_epochs=chosen["max_epochs"] or before.max_epochs,
        batch_size=chosen["batch_size"] or before.batch_size,
        learning_rate=float(
            chosen["learning_rate"]
            or (default_learning_rate(True) if published_origin(stored) else before.learning_rate)
        ),
        seed=chosen["seed"] if chosen["seed"] is not None else before.seed,
    )


def published_origin(stored: dict[str, Any]) -> str | None:
    """The published weights (a tag, or the file) a stored model began from, or None when it was
    trained from scratch."""
    return stored.get("fine_tuned_from") or stored.get("pretrained") or None


def default_learning_rate(pretrained: bool) -> float:
    """1e-3 from scratch (a small model, few steps); 1e-5 to fine-tune published weights, which
    a larger step would wash out."""
    return options.CLIP_FINE_TUNING_LEARNING_RATE if pretrained else options.CLIP_LEARNING_RATE


class CaptionedImages:
    """Image-caption pairs: item i is ``(image tensor, token ids)`` of pair i.

    >>> CaptionedImages(paths, texts, preprocess, tokenizer, input_size=64)[0][1].shape  # doctest: +SKIP
    torch.Size([32])

    Captions are tokenized once. Images are decoded once (reduced, see `_decoded`) and kept when
    they fit in CACHE_BYTES, else decoded at each epoch; every file is opened before training
    starts, so an unreadable one fails at once (ImageReadError naming it).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        texts: Sequence[str],
        preprocess,
        tokenizer,
        *,
        input_size: int,
        progress=None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.preprocess = preprocess
        self.input_size = input_size
        self.tokens = tokenizer([str(text) for text in texts])
        keep = len(self.paths) * 3 * (2 * input_size) ** 2 <= CACHE_BYTES
        self.images = read_training_images(self.paths, self._decoded, keep=keep, progress=progress)

    def _decoded(self, path: str):
        return decode_for_training(path, self.input_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = self.images[index] if self.images is not None else self._decoded(self.paths[index])
        return self.preprocess(image), self.tokens[index]


def training_preprocess(model):
    """open_clip's training transform for ``model``: a random crop of 90-100% of the picture,
    resized to the input side, and the model's normalisation. No flips: captions say 'left'."""
    from .clip import import_open_clip

    import_open_clip()
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=True)


def input_side(model) -> int:
    size = model.visual.preprocess_cfg.get("size", 224)
    return min(size) if isinstance(size, (tuple, list)) else int(size)


def _parameter_groups(model, weight_decay: float):
    # Decay weight matrices only: not gains, biases, embeddings of position or the logit scale
    # (open_clip's main.py excludes every parameter with fewer than two dimensions).
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        small = parameter.ndim < 2 or "logit_scale" in name or "positional_embedding" in name
        (no_decay if small else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _learning_rate_at(step: int, total: int, base: float) -> float:
    warmup = max(1, total // 10)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def train_clip(
    model,
    dataset: CaptionedImages,
    config: ClipTrainingConfig,
    *,
    device: str = "cpu",
    num_workers: int | None = None,
    progress=None,
    shard: Shard | None = None,
):
    """Train ``model`` (an open_clip CLIP) on ``dataset`` in place: ``(model, report)``.

    >>> model, report = train_clip(model, CaptionedImages(paths, texts, preprocess, tokenizer, input_size=64), config)  # doctest: +SKIP

    Each step embeds ``batch_size`` images and their captions and takes open_clip's ClipLoss
    (symmetric cross-entropy over the batch's image-text similarities, scaled by the model's
    learnt temperature). Seeded by ``config.seed``. A progress bar from the ``progress`` factory
    shows the running loss. ``shard``: this worker's part of data-parallel training on Ray
    (epochs.Shard). Returns the model in eval mode, on the CPU.
    """
    import torch

    from .clip import import_open_clip

    import_open_clip()
    from open_clip.loss import ClipLoss

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = model.to(device).train()
    shard = shard or Shard()
    shard.share_weights(list(model.parameters()))
    optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    criterion = ClipLoss()

    def step(batch, index: int, total: int) -> float:
        images, tokens = (part.to(device, non_blocking=True) for part in batch)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate_at(index, total, config.learning_rate)
        image_features = model.encode_image(images, normalize=True)
        text_features = model.encode_text(tokens, normalize=True)
        loss = criterion(image_features, text_features, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        shard.average_gradients(model.parameters())
        optimizer.step()
        # CLIP clamps its temperature so the logits never exceed 100 (paper, section 2.5).
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        return float(loss.detach())

    report = run_epochs(
        dataset,
        step,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs,
        seed=config.seed,
        num_workers=0 if num_workers is None else num_workers,
        device=device,
        progress=progress,
        desc="CLIP",
        shard=shard,
    )
    return model.to("cpu").eval(), report


def new_clip_model(arch: str | None, config: dict | None = None, *, seed: int = 0):
    """``(arch, config, model, tokenizer)`` for a model trained from scratch, its random weights
    drawn with ``seed``: SMALL_CONFIG when ``arch`` is None, else open_clip's config of ``arch``
    (ModelError listing them if unknown)."""
    import torch

    from .clip import build_open_clip, model_config

    if arch is None:
        arch, config = SMALL_ARCH, SMALL_CONFIG
    config = model_config(arch, config)
    torch.manual_seed(seed)
    model, _, tokenizer = build_open_clip(arch, config, "cpu")
    if not isinstance(model, torch.nn.Module):  # pragma: no cover - open_clip always builds one
        raise ModelError(f"open_clip did not build a model for '{arch}'")
    return arch, config, model, tokenizer
