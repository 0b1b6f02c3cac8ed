"""The shared image pipeline: files -> the model's own preprocessing -> encoder -> (n, d) float32.

Decoding and preprocessing run in DataLoader worker processes while the main process runs the
encoder under ``torch.inference_mode`` (fp16 autocast on CUDA), when timing the first batch shows
that they pay off. Large JPEGs are decoded at a
reduced size (``Image.draft``) when the model needs far fewer pixels; images that are not reduced
go through exactly the preprocessing the caller passes, so their embeddings are bit-for-bit the
reference pipeline's up to batching noise. Failures are recorded per image, never swallowed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..cores import available_cores, torch_threads
from ..errors import DatasetError

# The channel statistics of ImageNet, with which torchvision's ImageNet-trained networks (and so
# the SimCLR ResNet and uploaded PyTorch encoders here) normalise their input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Reduced-size JPEG decoding keeps at least this many times the model's input side, so that the
# model's own (antialiased) resize still does most of the downscaling: the preprocessed pixels then
# differ from a full decode's by a fraction of a grey level on average, where decoding straight to
# about the input size (a margin of 1) gives 2x (smooth photos) to 7x (sharp edges) more;
# bench/convert.py prints both. JPEG can only reduce by 2, 4 or 8, so an image is reduced only when
# its short side is at least 2 * DRAFT_MARGIN * input side.
DRAFT_MARGIN = 2

# Images a worker process decodes before handing them over (see _Schedule.batches).
MAX_CHUNK = 8

# Seconds worker processes take to start and hand over their first images, beyond decoding them
# (0.15-0.2 s measured on 2 cores with ViT-B-32 loaded): the decoding time they must save.
WORKER_START_S = 0.25

# Images decoded and encoded here, and timed, before deciding whether workers pay off.
PROBE_IMAGES = 8


def _read_errors() -> tuple[type[BaseException], ...]:
    """What PIL and a preprocessing raise for a file that is missing, not an image, truncated, or
    too large to be safe (DecompressionBombError derives from Exception only)."""
    from PIL import Image

    return (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class ImageReadError(DatasetError):
    """An image could not be opened or decoded; ``index`` is its position in the paths given."""

    def __init__(self, message: str, *, path: str, index: int, reason: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.path = path
        self.index = index
        self.reason = reason

    def __reduce__(self):
        # Raised in a Ray worker, it crosses to the statement's process by pickling.
        return _image_read_error, (type(self), self.message, self.path, self.index, self.reason, self.hint)


def _image_read_error(cls, message: str, path: str, index: int, reason: str, hint: str | None) -> ImageReadError:
    return cls(message, path=path, index=index, reason=reason, hint=hint)


def open_image(path: str | Path, input_size: int | None = None):
    """Open ``path`` with PIL, asking JPEGs to decode at a reduced size when the model needs less.

    >>> open_image("photo.jpg", input_size=224).size  # a 3000x2000 camera JPEG  # doctest: +SKIP
    (750, 500)

    750x500 is the largest reduction that keeps ``DRAFT_MARGIN * input_size`` pixels on the short
    side; ``input_size`` None never reduces.
    """
    from PIL import Image

    image = Image.open(path)
    if input_size and image.format == "JPEG":
        width, height = image.size
        needed = DRAFT_MARGIN * int(input_size)
        short = min(width, height)
        if short >= 2 * needed:
            scale = needed / short
            # Keep the mode: draft() could also switch the colour conversion, which would change
            # pixels beyond the size reduction.
            image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    return image


def decode_for_training(path: str | Path, input_size: int, color: str = "rgb"):
    """The image at ``path`` in ``color`` ('rgb', or 'gray': one channel repeated thrice), its
    short side shrunk to at most twice ``input_size``: random crops then still resize down,
    never up from a thumbnail, and tens of thousands of photos fit in memory."""
    from PIL import Image

    with open_image(path, input_size) as image:
        image = image.convert("L").convert("RGB") if color == "gray" else image.convert("RGB")
    side = 2 * input_size
    if min(image.size) > side:
        scale = side / min(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
        )
    return image


def read_training_images(paths: Sequence[str], decode, *, keep: bool, progress=None) -> list | None:
    """Open every image of a training set before training starts, so that an unreadable one fails
    at once (ImageReadError naming it) rather than after minutes: ``decode(path)`` of each when
    ``keep`` (the list), else only a check that each opens (None)."""
    from PIL import Image

    bar = progress(total=len(paths), desc="reading images", unit="img") if progress else None
    images = []
    try:
        for index, path in enumerate(paths):
            try:
                if keep:
                    images.append(decode(path))
                else:
                    with Image.open(path) as image:
                        image.verify()
            except _read_errors() as exc:
                reason = describe_failure(exc)
                raise ImageReadError(
                    f"cannot read image '{path}': {reason}", path=path, index=index, reason=reason
                ) from exc
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return images if keep else None


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed image: 'file not found', 'not an image', or the error text."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file that PIL can read"
    return f"{type(exc).__name__}: {exc}"


class ImageFiles:
    """A map-style dataset (torch DataLoader protocol): item i is ``(i, tensor or None, reason or
    None, CPU seconds spent)``.

    >>> ImageFiles(["a.jpg"], preprocess, input_size=224)[0]  # doctest: +SKIP
    (0, tensor([...]), None, 0.004)

    Defined at module level so that worker processes started with spawn/forkserver can pickle it.
    """

    def __init__(self, paths: Sequence[str | Path], preprocess: Callable, input_size: int | None) -> None:
        self.paths = [str(p) for p in paths]
        self.preprocess = preprocess
        self.input_size = input_size

    def __len__(self) -> int:
        return len(self.paths)

    # Workers started with spawn or forkserver (macOS; Linux from Python 3.14) unpickle the
    # dataset, and with it the preprocessing, a torchvision object: run the torchvision shim first.
    def __getstate__(self) -> dict:
        import pickle

        return {**self.__dict__, "preprocess": pickle.dumps(self.preprocess)}

    def __setstate__(self, state: dict) -> None:
        import pickle

        from .torchvision_shim import import_torchvision

        import_torchvision()
        self.__dict__.update({**state, "preprocess": pickle.loads(state["preprocess"])})

    def __getitem__(self, index: int):
        started = time.thread_time()
        try:
            with open_image(self.paths[index], self.input_size) as image:
                tensor, reason = self.preprocess(image), None
        except _read_errors() as exc:
            tensor, reason = None, describe_failure(exc)
        return index, tensor, reason, time.thread_time() - started


def collate(items):
    """Stack the images that loaded, keep the failed ones aside, add up the CPU seconds spent:
    ``(indexes, batch or None, [(index, reason), ...], seconds)``."""
    import torch

    loaded = [(index, tensor) for index, tensor, _, _ in items if tensor is not None]
    failures = [(index, reason) for index, tensor, reason, _ in items if tensor is None]
    batch = torch.stack([tensor for _, tensor in loaded]) if loaded else None
    return [index for index, _ in loaded], batch, failures, sum(item[3] for item in items)


def _regroup(chunks, batch_size: int):
    """Join consecutive collated chunks into batches of ``batch_size`` images (the last smaller)."""
    pending: list = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk[0]) + len(chunk[2])
        if size >= batch_size:
            yield _join(pending)
            pending, size = [], 0
    if pending:
        yield _join(pending)


def _join(chunks: list):
    import torch

    tensors = [batch for _, batch, _, _ in chunks if batch is not None]
    return (
        [index for indexes, _, _, _ in chunks for index in indexes],
        torch.cat(tensors) if tensors else None,
        [failure for _, _, failures, _ in chunks for failure in failures],
        sum(seconds for _, _, _, seconds in chunks),
    )


def _batches_here(dataset: ImageFiles, batch_size: int, indexes: range):
    # Without workers, preprocess on one thread: open_clip's ToTensor/Normalize are tiny tensor
    # ops that an OpenMP team slows down (by 100x on a busy 2-core machine).
    for start in range(indexes.start, indexes.stop, batch_size):
        with torch_threads(1):
            items = [dataset[index] for index in range(start, min(start + batch_size, indexes.stop))]
        yield collate(items)


class _Schedule:
    """Where images are decoded and how many threads the encoder gets, from what batches cost.

    With ``workers`` None the first PROBE_IMAGES images are decoded and encoded here, timed, and
    worker processes start for the rest only if they would save more than they cost
    (`_workers_pay_off`). While workers run
    on the CPU's cores, the encoder keeps all its threads if encoding costs more CPU than decoding
    (a large model) and drops to one otherwise (a small model on large JPEGs): an OpenMP team that
    shares its cores with busy workers waits at every barrier for a descheduled member, which made
    a small model's encoder several times slower than on one thread.
    """

    def __init__(self, dataset: ImageFiles, batch_size: int, workers: int | None, device: str) -> None:
        import torch

        self.dataset, self.batch_size, self.workers, self.device = dataset, batch_size, workers, device
        self.threads = torch.get_num_threads()
        self.images = 0
        self.decode_seconds = self.encode_cpu_seconds = self.encode_seconds = 0.0

    def batches(self):
        """Yield ``(indexes, batch, failures, decode CPU seconds)`` in input order."""
        from torch.utils.data import DataLoader, Subset

        count = len(self.dataset)
        start = 0
        if self.workers is None:
            start = min(self.batch_size, PROBE_IMAGES, count)
            yield from _batches_here(self.dataset, self.batch_size, range(0, start))
            self.workers = decode_workers() if self._workers_pay_off(count - start) else 0
        if start == count:
            return
        if not self.workers:
            yield from _batches_here(self.dataset, self.batch_size, range(start, count))
            return
        # Workers hand over small chunks that the encoder's batches are then made of: one worker
        # per whole batch would leave the others idle when there are only a few batches.
        chunk = max(1, min(MAX_CHUNK, math.ceil(self.batch_size / self.workers)))
        chunks = iter(
            DataLoader(
                Subset(self.dataset, range(start, count)),
                batch_size=chunk,
                num_workers=self.workers,
                collate_fn=collate,
                pin_memory=self.device == "cuda",
            )
        )
        try:
            yield from _regroup(chunks, self.batch_size)
        finally:
            del chunks  # stops the worker processes at once when we leave early

    def record(self, images: int, decode_seconds: float, encode_cpu_seconds: float, encode_seconds: float) -> None:
        """Account for one batch; rebalance the encoder's threads while workers run."""
        import torch

        self.images += images
        self.decode_seconds += decode_seconds
        self.encode_cpu_seconds += encode_cpu_seconds
        self.encode_seconds += encode_seconds
        if self.device != "cpu" or not self.workers:
            return
        light = self.encode_cpu_seconds * self.workers < self.decode_seconds
        wanted = 1 if light else self.threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def _workers_pay_off(self, remaining: int) -> bool:
        # Decoding here costs d + e per image (d: decode, e: encode, one after the other). With W
        # workers on C cores, decoding leaves the encoder's path but shares its cores on a CPU:
        # about max(e + d / C, d / W) per image, plus the start. Ask for a 10% gain, because the
        # sharing costs more than that estimate on a busy machine.
        if remaining == 0 or self.images == 0:
            return False
        decode = self.decode_seconds / self.images
        encode = self.encode_seconds / self.images
        workers = decode_workers()
        shared = encode + decode / available_cores() if self.device == "cpu" else encode
        here = remaining * (decode + encode)
        there = remaining * max(shared, decode / workers) + WORKER_START_S
        return there < 0.9 * here

    def restore(self) -> None:
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


def decode_workers() -> int:
    """Decoding processes to run beside the encoder: one per available core, at most 4."""
    return min(4, available_cores())


def embed_image_batches(
    paths: Sequence[str | Path],
    preprocess: Callable,
    encode: Callable,
    *,
    batch_size: int,
    num_workers: int | None = None,
    device: str = "cpu",
    progress=None,
    on_error: str = "raise",
    input_size: int | None = None,
    dim: int | None = None,
) -> np.ndarray:
    """Embed the image files ``paths``: an ``(len(paths), d)`` float32 array, in input order.

    >>> embed_image_batches(paths, preprocess, model.encode_image, batch_size=32, input_size=224).shape  # doctest: +SKIP
    (1000, 512)

    ``preprocess`` maps a PIL image to a ``(3, H, W)`` tensor and ``encode`` a ``(B, 3, H, W)``
    batch on ``device`` to ``(B, d)``. ``num_workers``: decoding processes (0: decode here; None:
    decide after timing the first few images). ``input_size``: the model's input side, for
    reduced-size JPEG decoding (None: off). ``on_error='raise'``: ImageReadError at the first
    unreadable image; ``'null'``: its row is NaN. ``dim``: d, needed only to shape the result when
    no image at all could be read.
    """
    import torch

    count = len(paths)
    result = None
    if count == 0:
        return np.empty((0, dim or 0), dtype=np.float32)
    schedule = _Schedule(ImageFiles(paths, preprocess, input_size), batch_size, num_workers, device)
    batches = schedule.batches()
    bar = progress(total=count, desc="images", unit="img") if progress is not None else None
    try:
        with torch.inference_mode(), autocast(device):
            for indexes, batch, failures, decode_seconds in batches:
                if failures and on_error == "raise":
                    index, reason = failures[0]
                    raise ImageReadError(
                        f"cannot read image '{paths[index]}': {reason}",
                        path=str(paths[index]),
                        index=index,
                        reason=reason,
                    )
                started, started_cpu = time.perf_counter(), time.process_time()
                if batch is not None:
                    embeddings = encode(batch.to(device, non_blocking=True)).float().cpu().numpy()
                    if result is None:
                        result = np.full((count, embeddings.shape[1]), np.nan, dtype=np.float32)
                    result[indexes] = embeddings
                schedule.record(
                    len(indexes) + len(failures),
                    decode_seconds,
                    time.process_time() - started_cpu,
                    time.perf_counter() - started,
                )
                if bar is not None:
                    bar.update(len(indexes) + len(failures))
    finally:
        batches.close()
        schedule.restore()
        if bar is not None:
            bar.close()
    if result is None:  # not one image could be read
        result = np.full((count, dim or 0), np.nan, dtype=np.float32)
    return result


def autocast(device: str):
    import contextlib

    import torch

    if device == "cuda":
        # Half precision on the GPU: twice the throughput, embeddings within ~1e-3 of fp32.
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
