"""SimCLR (Chen et al. 2020, https://arxiv.org/abs/2002.05709) assembled from lightly's parts on a
torchvision ResNet-18: the two-view transform, the projection head and the NT-Xent loss; the
embedding is the backbone's pooled output (512 floats). `train` fits a model on image files,
`store_simclr_model` writes it, `load` gives the SimCLRAdapter that CONVERT and SEARCH use.

A SimCLR model folder of the store (``thanosql-model/<name>/``) holds:
  weights.pt   the backbone's ``state_dict()``: torchvision ``resnet18(weights=None)`` with its
               stem as ``options['stem']`` says and ``fc`` removed
  head.pt      the projection head's ``state_dict()`` (lightly SimCLRProjectionHead 512-512-128),
               kept so that FIT MODEL continues training where BUILD stopped
  model.json   family='simclr', arch='resnet18', embedding_dim=512, options: the SimCLRConfig
               fields (stem, input_size, color, mean, std, augmentations and training settings)
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import options
from ..cores import available_cores
from ..errors import ModelError, PlanError, Span
from .base import ModelAdapter
from .epochs import Shard, TrainingReport, run_epochs
from .images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    _read_errors,
    decode_for_training,
    embed_image_batches,
    read_training_images,
)
from .store import ModelInfo, ModelStore

ARCH = "resnet18"
EMBEDDING_DIM = 512
WEIGHTS_FILE = "weights.pt"
HEAD_FILE = "head.pt"

# torchvision's ImageNet weights of ResNet-18 (ResNet18_Weights.IMAGENET1K_V1); the file name ends
# with the first hex digits of its SHA-256, as torch.hub checks them.
IMAGENET_WEIGHTS_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
IMAGENET_WEIGHTS_SHA256 = "f37072fd"

# Stems: how the first layers meet the image. ImageNet's 7x7 stride-2 conv and max-pool shrink a
# 32-pixel digit to 8x8 before the first block; 'small' (3x3 stride 2, no max-pool) keeps 16x16 at
# a quarter of the cost of 'cifar' (3x3 stride 1, He et al.'s CIFAR layout), which measured no
# better after one epoch on 28-pixel digits (see the report in tests/test_quality.py).
STEMS = ("small", "cifar", "imagenet")

# Images decoded once and kept in memory for every epoch when they take less than this.
CACHE_BYTES = 1 << 30
# Options that fix what a model is (FIT MODEL keeps them from the model it continues), and the
# training settings FIT MODEL may change.
ARCHITECTURE_OPTIONS = ("input_size", "color", "stem", "pretrained")
FIT_SETTINGS = (
    "batch_size",
    "max_epochs",
    "learning_rate",
    "temperature",
    "seed",
    "min_scale",
    "horizontal_flip",
    "vertical_flip",
    "rotation",
    "color_jitter",
    "blur",
)
# Parameters of a stored model (ResNet-18 and its projection head: 11.2M + 0.5M), for the
# free-space check before training; its float32 file is about 4 bytes a parameter.
PARAMETERS = 11_800_000
# Embedding batches when CONVERT does not say: a ResNet-18 on small images is cheap per image.
DEFAULT_BATCH_SIZE = {"cpu": 128, "cuda": 512}


def _default(name: str) -> Any:
    return options.default_of(options.SIMCLR_TRAINING, name)


# What a stored model.json that does not record a setting (one written by hand) was trained with,
# where that differs from BUILD MODEL's default: FIT MODEL continues such a model one epoch at a
# time unless told otherwise, as it always has.
UNRECORDED = {"max_epochs": 1}


@dataclass(frozen=True)
class SimCLRConfig:
    """Everything that defines a SimCLR model and how it is trained (model.json options).

    >>> SimCLRConfig(input_size=32, color="gray").stem
    'small'

    Preprocessing: ``stem``, ``input_size`` (side in pixels), ``color`` ('gray': one channel
    repeated thrice, so colour never counts; 'rgb'), ``mean``/``std``. Augmentations of each view:
    a random crop keeping ``min_scale`` to all of the area, ``horizontal_flip``/``vertical_flip``
    (probability 0.5 each when on), ``rotation`` (degrees either way), ``color_jitter`` (lightly's
    brightness/contrast/saturation/hue jitter at half strength with p=0.8, and random gray p=0.2
    for colour images), ``blur`` (Gaussian, p=0.5). Training: Adam at ``learning_rate``,
    NT-Xent at ``temperature``, ``batch_size`` images (2 views each) per step.

    The defaults were measured on the built-in digits (bench/train.py: one epoch of 1,000 images,
    precision of the 4 nearest of 200 held-out ones): crops of 70-100% of the area, no rotation
    and temperature 0.5 gave 0.64-0.67; crops of 85-100%, rotations of up to 10 degrees and temperature
    0.2 gave 0.735-0.748 over seeds 0-2, against 0.575 for pixel similarity and 0.38-0.48 for
    the same network untrained. Without the brightness/contrast jitter (earlier crops, seed 0) it
    fell to 0.45.
    """

    # The statement's defaults (options.SIMCLR_TRAINING) where it has one; where it chooses from
    # the images (input_size, color, stem, flips, batch_size), what a model.json without the key
    # (written by hand) means.
    input_size: int = 32
    color: str = "rgb"
    stem: str = "small"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    min_scale: float = _default("min_scale")
    horizontal_flip: bool = False
    vertical_flip: bool = _default("vertical_flip")
    rotation: float = float(_default("rotation"))
    color_jitter: bool = _default("color_jitter")
    blur: bool = _default("blur")
    batch_size: int = 16
    max_epochs: int = _default("max_epochs")
    learning_rate: float = options.SIMCLR_LEARNING_RATE
    temperature: float = _default("temperature")
    seed: int = _default("seed")
    pretrained: bool = _default("pretrained")

    def to_options(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SimCLRConfig:
        """The config stored in model.json (unknown keys, from other versions, are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {**UNRECORDED, **{key: value for key, value in options.items() if key in known}}
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True)
class ImageSurvey:
    """What a look at some of the training images says: their typical short side, and whether
    they are all gray (one channel, or three equal ones)."""

    short_side: int
    gray: bool


def survey_images(paths: Sequence[str | Path], sample: int = 32) -> ImageSurvey:
    """Median short side and colour of up to ``sample`` images spread over ``paths``.

    >>> survey_images(["digit.jpg"])  # doctest: +SKIP
    ImageSurvey(short_side=28, gray=True)

    Unreadable images are skipped here (training reports them); none readable: 224, colour.
    """
    from PIL import Image

    step = max(1, len(paths) // sample)
    sides, gray = [], True
    for path in list(paths)[::step][:sample]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
                if gray and image.mode not in ("L", "LA", "1", "I", "I;16", "F"):
                    thumb = np.asarray(image.convert("RGB").resize((16, 16)), dtype=np.int16)
                    gray = bool(np.abs(thumb - thumb[..., :1]).max() <= 8)
        except _read_errors():
            continue
    if not sides:
        return ImageSurvey(224, False)
    return ImageSurvey(int(np.median(sides)), gray)


def default_input_size(short_side: int, pretrained: bool) -> int:
    """The side images are trained at when the statement does not say.

    >>> default_input_size(28, pretrained=False)
    32

    Small images are not blown up: 28-pixel digits train at 32 (seconds per epoch on two cores;
    224 costs 20x more and found nothing more). ImageNet weights learnt on 224-pixel photos and
    their stem shrinks by 4 before the first block, so they get at least 64.
    """
    if pretrained:
        return 64 if short_side <= 64 else (128 if short_side <= 160 else 224)
    if short_side <= 48:
        return 32
    if short_side <= 96:
        return 64
    return 128


def default_batch_size(rows: int) -> int:
    """Images per step when the statement does not say: enough steps for one epoch to learn.

    >>> default_batch_size(1000)
    16

    A power of two near rows / 50, between 16 and 256: 1,000 images make 62 steps of 16, while
    lightly's usual 256 makes 3, after which the network has learnt nothing (measured: search
    precision below the untrained network's).
    """
    wanted = max(1, rows // 50)
    return int(min(256, max(16, 2 ** int(math.log2(wanted)))))


def build_backbone(stem: str):
    """A torchvision ResNet-18 with random weights, the ``stem`` of STEMS, and no classifier:
    ``(B, 3, S, S)`` -> ``(B, 512)`` pooled features."""
    from torch import nn

    from .torchvision_shim import import_torchvision

    torchvision = import_torchvision()
    network = torchvision.models.resnet18(weights=None)
    if stem == "small":
        network.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        network.maxpool = nn.Identity()
    elif stem == "cifar":
        network.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        network.maxpool = nn.Identity()
    network.fc = nn.Identity()
    return network


def build_head():
    """lightly's SimCLR projection head: 512 -> 512 -> 128 (BatchNorm, ReLU), as in SimCLR v1."""
    from .torchvision_shim import import_torchvision

    import_torchvision()
    from lightly.models.modules import SimCLRProjectionHead

    return SimCLRProjectionHead(input_dim=EMBEDDING_DIM, hidden_dim=EMBEDDING_DIM, output_dim=128)


def load_imagenet_weights(backbone, path: str | os.PathLike) -> None:
    """Load torchvision ResNet-18 ImageNet weights (a state_dict file) into ``backbone`` (its
    classifier's weights are dropped); ModelError naming the file when they do not fit."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        backbone.load_state_dict(state, strict=True)
    except Exception as exc:
        summary = " ".join(str(exc).split())[:300]
        raise ModelError(
            f"cannot load {path} as ImageNet weights of a ResNet-18: {summary}",
            hint="pretrained= takes True (torchvision's resnet18 ImageNet weights) or the path of "
            "such a state_dict (torch.save(resnet18.state_dict(), path))",
        ) from exc


def resolve_imagenet_weights(*, offline: bool, progress=None, span: Span | None = None) -> Path:
    """The file of torchvision's ResNet-18 ImageNet weights: torch hub's cache, else a download
    into it (checked against its SHA-256), never a download when ``offline``.

    >>> resolve_imagenet_weights(offline=True)  # doctest: +SKIP
    PosixPath('/root/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth')
    """
    import torch

    from .weights import download

    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(IMAGENET_WEIGHTS_URL)
    if target.is_file():
        return target
    if offline:
        raise ModelError(
            "the ImageNet weights of ResNet-18 are not on this machine, and downloads are off (offline)",
            span=span,
            hint=f"searched torch hub's cache: {target}\ndownload {IMAGENET_WEIGHTS_URL} there, or give "
            "pretrained='path/to/resnet18.pth', or pretrained=False to train from scratch",
        )
    return download(IMAGENET_WEIGHTS_URL, target, sha256=IMAGENET_WEIGHTS_SHA256, progress=progress, span=span)


# -- images -------------------------------------------------------------------------------------


def _to_color(image, color: str):
    return image.convert("L").convert("RGB") if color == "gray" else image.convert("RGB")


def view_transform(config: SimCLRConfig):
    """One random view of a PIL image: a ``(3, S, S)`` float tensor (torchvision + lightly parts)."""
    from .torchvision_shim import import_torchvision

    import_torchvision()
    from lightly.transforms import GaussianBlur
    from torchvision import transforms as T

    steps = [T.RandomResizedCrop(config.input_size, scale=(config.min_scale, 1.0))]
    if config.horizontal_flip:
        steps.append(T.RandomHorizontalFlip(0.5))
    if config.vertical_flip:
        steps.append(T.RandomVerticalFlip(0.5))
    if config.rotation:
        steps.append(T.RandomRotation(config.rotation))
    if config.color_jitter:
        # Half of lightly's default strength, its advice for small images (SimCLRTransform docs).
        steps.append(T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8))
        if config.color == "rgb":
            steps.append(T.RandomGrayscale(p=0.2))
    if config.blur:
        steps.append(GaussianBlur(sigmas=(0.1, 2.0), prob=0.5))
    steps += [T.ToTensor(), T.Normalize(config.mean, config.std)]
    return T.Compose(steps)


def two_view_transform(config: SimCLRConfig):
    """lightly's MultiViewTransform of two independent views: PIL image -> [view, view]."""
    from .torchvision_shim import import_torchvision

    import_torchvision()
    from lightly.transforms.multi_view_transform import MultiViewTransform

    view = view_transform(config)
    return MultiViewTransform([view, view])


class EvalTransform:
    """The deterministic preprocessing of CONVERT: colour mode, resize of the short side, centre
    crop, tensor, normalisation. A class (not a lambda) so DataLoader workers can pickle it."""

    def __init__(self, config: SimCLRConfig) -> None:
        from .torchvision_shim import import_torchvision

        import_torchvision()
        from torchvision import transforms as T

        self.color = config.color
        self.transform = T.Compose(
            [
                T.Resize(config.input_size),
                T.CenterCrop(config.input_size),
                T.ToTensor(),
                T.Normalize(config.mean, config.std),
            ]
        )

    def __call__(self, image):
        return self.transform(_to_color(image, self.color))


def _decoded(path: str, config: SimCLRConfig):
    """The image at ``path`` in the model's colour mode, reduced (images.decode_for_training)."""
    return decode_for_training(path, config.input_size, config.color)


class TrainingImages:
    """The training set: item i is image i as two random views ``(view, view)``.

    >>> TrainingImages(paths, config)[0][0].shape  # doctest: +SKIP
    torch.Size([3, 32, 32])

    Images are decoded once and kept (shrunk, see `_decoded`) when they fit in CACHE_BYTES, else
    decoded again at each epoch. Either way, every file is opened before training starts, so an
    unreadable one fails at once (ImageReadError naming it) rather than after minutes.
    """

    def __init__(self, paths: Sequence[str | Path], config: SimCLRConfig, progress=None) -> None:
        self.paths = [str(p) for p in paths]
        self.config = config
        self.transform = two_view_transform(config)
        keep = len(self.paths) * 3 * (2 * config.input_size) ** 2 <= CACHE_BYTES
        self.images = read_training_images(self.paths, partial(_decoded, config=config), keep=keep, progress=progress)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = self.images[index] if self.images is not None else _decoded(self.paths[index], self.config)
        first, second = self.transform(image)
        return first, second


# -- training -----------------------------------------------------------------------------------


def augment_workers(cached: bool) -> int:
    """Augmenting processes beside the training loop: none on two cores or fewer when the images
    are in memory (augmenting a small image costs a fraction of its training step, and a worker
    would take a core from the ResNet's threads); else up to 4, leaving the loop a core."""
    cores = available_cores()
    if cached and cores <= 2:
        return 0
    return max(0, min(4, cores - 1))


def train(
    dataset: TrainingImages,
    config: SimCLRConfig,
    *,
    device: str = "cpu",
    backbone=None,
    head=None,
    num_workers: int | None = None,
    progress=None,
    shard: Shard | None = None,
) -> tuple[Any, Any, TrainingReport]:
    """Train SimCLR on ``dataset`` for ``config.max_epochs``: ``(backbone, head, report)``.

    >>> backbone, head, report = train(TrainingImages(paths, config), config)  # doctest: +SKIP
    >>> backbone(torch.zeros(1, 3, 32, 32)).shape  # doctest: +SKIP
    torch.Size([1, 512])

    ``backbone``/``head``: modules to continue training (FIT MODEL); new random ones otherwise.
    Each step embeds two views of ``batch_size`` images, projects them with the head and takes
    NT-Xent (lightly's NTXentLoss) between them; Adam updates both. Seeded by ``config.seed``:
    the same data and config give the same model on the same machine. A progress bar (from the
    ``progress`` factory) shows the running loss. ``shard``: this worker's part of data-parallel
    training on Ray (epochs.Shard). Returns both modules in eval mode, on the CPU.
    """
    import torch

    from .torchvision_shim import import_torchvision

    import_torchvision()
    from lightly.loss import NTXentLoss

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    backbone = backbone if backbone is not None else build_backbone(config.stem)
    head = head if head is not None else build_head()
    # channels_last lets oneDNN pick its fast convolutions on CPU (and tensor cores on CUDA).
    backbone = backbone.to(device, memory_format=torch.channels_last).train()
    head = head.to(device).train()
    criterion = NTXentLoss(temperature=config.temperature)
    parameters = list(backbone.parameters()) + list(head.parameters())
    shard = shard or Shard()
    shard.share_weights(parameters)
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)

    def step(views, index: int, total: int) -> float:
        first, second = (
            view.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last) for view in views
        )
        loss = criterion(head(backbone(first)), head(backbone(second)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        shard.average_gradients(parameters)
        optimizer.step()
        return float(loss.detach())

    report = run_epochs(
        dataset,
        step,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs,
        seed=config.seed,
        num_workers=augment_workers(dataset.images is not None) if num_workers is None else num_workers,
        device=device,
        progress=progress,
        desc="SimCLR",
        shard=shard,
    )
    backbone = backbone.to("cpu", memory_format=torch.contiguous_format).eval()
    head = head.to("cpu").eval()
    return backbone, head, report


def store_simclr_model(
    store: ModelStore,
    name: str,
    backbone,
    head,
    config: SimCLRConfig,
    *,
    source: str = "",
    overwrite: bool = False,
    extra_options: dict[str, Any] | None = None,
    span: Span | None = None,
) -> ModelInfo:
    """Write a trained model into the store as ``name`` (the layout of this module's docstring),
    in one atomic step (ModelStore.create)."""
    import torch

    options = {**config.to_options(), **(extra_options or {})}
    with store.create(
        name,
        family="simclr",
        arch=ARCH,
        embedding_dim=EMBEDDING_DIM,
        options=options,
        source=source,
        overwrite=overwrite,
        span=span,
    ) as folder:
        torch.save(backbone.state_dict(), folder / WEIGHTS_FILE)
        torch.save(head.state_dict(), folder / HEAD_FILE)
    return store.get(name)


def read_simclr_model(info: ModelInfo):
    """``(backbone, head, config)`` of a stored SimCLR model, on the CPU in eval mode; the head is
    None when the folder has none (a model written by hand)."""
    import torch

    config = SimCLRConfig.from_options(info.options)
    if config.stem not in STEMS:
        raise ModelError(f"model '{info.name}' has stem '{config.stem}', which this version cannot build")
    folder = Path(info.path)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(
            f"model '{info.name}' is damaged: {weights} is missing",
            hint=f"DELETE MODEL {info.name}, then build it again",
        )
    backbone = build_backbone(config.stem)
    try:
        backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        head = None
        if (folder / HEAD_FILE).is_file():
            head = build_head()
            head.load_state_dict(torch.load(folder / HEAD_FILE, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"model '{info.name}' is damaged: cannot load its weights: {exc}",
            hint=f"DELETE MODEL {info.name}, then build it again",
        ) from exc
    return backbone.eval(), (head.eval() if head is not None else None), config


# -- the adapter --------------------------------------------------------------------------------


class SimCLRAdapter(ModelAdapter):
    """A stored SimCLR model, ready to embed images (see base.ModelAdapter).

    >>> adapter = load(session.models.get("my_image_search_model"), "cpu")  # doctest: +SKIP
    >>> adapter.embed_images(["thanosql-dataset/digits_data/test/923.jpg"]).shape  # doctest: +SKIP
    (1, 512)
    """

    modalities = frozenset({"image"})

    def __init__(self, info: ModelInfo, backbone, config: SimCLRConfig, device: str) -> None:
        import torch

        self.info = info
        self.config = config
        self.device = device
        self.embedding_dim = EMBEDDING_DIM
        self.backbone = backbone.to(device, memory_format=torch.channels_last).eval()
        self.preprocess = EvalTransform(config)

    def _encode(self, batch):
        import torch

        return self.backbone(batch.contiguous(memory_format=torch.channels_last))

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
            batch_size=batch_size or DEFAULT_BATCH_SIZE.get(self.device, 128),
            num_workers=num_workers,
            device=self.device,
            progress=progress,
            on_error=on_error,
            input_size=self.config.input_size,
            dim=EMBEDDING_DIM,
        )

    def embed_texts(self, texts: Sequence[str], *, batch_size: int | None = None, progress=None) -> np.ndarray:
        raise ModelError(
            f"model '{self.info.name}' is a SimCLR model: it has no text encoder, only an image one",
            hint="search by text needs a CLIP model (GET THANOSQL MODEL clip, or BUILD MODEL ... USING CLIP); "
            "with a SimCLR model, search by image (search_by='image')",
        )


def load(info: ModelInfo, device: str) -> SimCLRAdapter:
    """The SimCLRAdapter of stored model ``info`` on ``device`` ('cpu' or 'cuda')."""
    backbone, _, config = read_simclr_model(info)
    return SimCLRAdapter(info, backbone, config, device)


def build_config(
    chosen: Mapping[str, Any], survey: ImageSurvey, rows: int, span_of: Callable[[str], Span | None]
) -> SimCLRConfig:
    """The SimCLRConfig of BUILD MODEL ... USING SimCLR: the statement's ``chosen`` options (already
    checked; None where it leaves the choice to the images), completed from the ``survey`` of its
    ``rows`` images. ``span_of(option)`` places a PlanError (ImageNet weights need the 'imagenet' stem).

    >>> chosen = {name: spec.default for name, spec in options.SIMCLR_TRAINING.items()}
    >>> config = build_config(chosen, ImageSurvey(28, gray=True), 1000, lambda name: None)
    >>> config.stem, config.input_size, config.color, config.horizontal_flip, config.batch_size
    ('small', 32, 'gray', False, 16)
    """
    pretrained = chosen["pretrained"]
    input_size = chosen["input_size"] or default_input_size(survey.short_side, bool(pretrained))
    stem = chosen["stem"] or ("imagenet" if pretrained or input_size >= 96 else "small")
    if pretrained and stem != "imagenet":
        raise PlanError(
            f"ImageNet weights need the 'imagenet' stem, not '{stem}'",
            span=span_of("stem"),
            hint="leave stem out (or stem='imagenet') with pretrained, or train from scratch",
        )
    color = chosen["color"] or ("gray" if survey.gray else "rgb")
    flip = chosen["horizontal_flip"]
    return SimCLRConfig(
        input_size=input_size,
        color=color,
        stem=stem,
        min_scale=float(chosen["min_scale"]),
        # Flips keep a photo's meaning but not a digit's or a letter's (seed 002's note).
        horizontal_flip=(color == "rgb") if flip is None else flip,
        vertical_flip=chosen["vertical_flip"],
        rotation=float(chosen["rotation"]),
        color_jitter=chosen["color_jitter"],
        blur=chosen["blur"],
        batch_size=chosen["batch_size"] or default_batch_size(rows),
        max_epochs=chosen["max_epochs"],
        learning_rate=float(chosen["learning_rate"] or options.SIMCLR_LEARNING_RATE),
        temperature=float(chosen["temperature"]),
        seed=chosen["seed"],
        pretrained=bool(pretrained),
    )


def fit_config(stored: SimCLRConfig, chosen: Mapping[str, Any]) -> SimCLRConfig:
    """The config FIT MODEL continues with: the stored model's, with the training settings the
    statement gives (FIT_SETTINGS; None keeps the stored value)."""
    return with_changes(stored, **{name: chosen.get(name) for name in FIT_SETTINGS})


def with_changes(config: SimCLRConfig, **changes: Any) -> SimCLRConfig:
    """``config`` with the given fields changed (None values leave a field as it is)."""
    return replace(config, **{key: value for key, value in changes.items() if value is not None})
