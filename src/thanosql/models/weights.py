"""Find the weight file of a pre-built model, in DESIGN.md decision 9's order.

An explicit checkpoint (a path, or a URL to download), then a model of the workspace store with
the same architecture and tag, then the caches open_clip itself uses (the Hugging Face hub cache
and open_clip's URL cache, ~/.cache/clip), then a download (never when offline). Downloads stream
into a temporary file beside the target, are checked against the published SHA-256, and are renamed
into place only when complete. Offline with a cold cache, the error says every place searched.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from ..disk import disk_error, is_disk_full
from ..errors import ModelError, Span
from ..transfer import FetchFailure, sha256_of, stream

# open_clip's default file names on the Hugging Face hub (open_clip/constants.py).
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"

DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class WeightSource:
    """Where the published weights of open_clip ``arch`` with tag ``tag`` come from.

    ``hf_repo``/``hf_filename``: a Hugging Face hub file; ``url``: a direct download; ``sha256``:
    the published checksum or a prefix of it ("" when none is published).
    """

    arch: str
    tag: str
    hf_repo: str = ""
    hf_filename: str = ""
    url: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class Resolved:
    """A weight file and where it was found: 'checkpoint', 'model store', 'cache' or 'download'."""

    path: Path
    origin: str
    detail: str = field(default="", compare=False)


def published_sha256(url: str) -> str:
    """The checksum (or its prefix) a weights URL carries, by open_clip's conventions, else "".

    >>> published_sha256("https://openaipublic.azureedge.net/clip/models/40d3657159/ViT-B-32.pt")
    '40d3657159'

    OpenAI's URLs hold it as the folder name, OpenCLIP's releases as the file name's last part
    (``vit_b_32-quickgelu-laion400m_e31-d867053b.pt``), and any URL may end with
    ``#sha256=<hex>`` (pip's convention).
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.fragment.startswith("sha256="):
        return parsed.fragment[len("sha256=") :].lower()
    if "openaipublic" in parsed.netloc:
        return parsed.path.split("/")[-2]
    if "mlfoundations" in parsed.path:
        return os.path.splitext(os.path.basename(parsed.path))[0].split("-")[-1]
    return ""


def url_cache_dir() -> Path:
    """open_clip's cache for URL downloads (download_pretrained_from_url's default)."""
    return Path(os.path.expanduser("~/.cache/clip"))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, by huggingface_hub's rules, read now rather than at import.

    HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
    ~/.cache/huggingface/hub (https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables).
    """
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    cache = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "huggingface" / "hub"


def resolve_weights(
    source: WeightSource | None,
    *,
    checkpoint: str | os.PathLike | None = None,
    store=None,
    offline: bool = False,
    progress=None,
    span: Span | None = None,
) -> Resolved:
    """The weight file for ``source``, found or fetched in decision 9's order.

    >>> found = resolve_weights(open_clip_source("ViT-B-32", "openai"), store=session.models, offline=True)  # doctest: +SKIP
    >>> found.origin, found.path.name  # doctest: +SKIP
    ('cache', 'open_clip_model.safetensors')

    ``checkpoint``: an absolute path, or an http(s) URL (downloaded into open_clip's URL cache).
    ``store``: a ModelStore whose clip models of the same arch and tag count as a source.
    Raises ModelError when nothing is found (offline) or a download fails or mismatches.
    """
    if checkpoint is not None:
        return _from_checkpoint(str(checkpoint), offline=offline, progress=progress, span=span)
    if source is None:
        raise ModelError("no weights to look for: give a checkpoint", span=span)
    searched: list[str] = []
    found = _from_store(source, store, searched) or _from_caches(source, searched)
    if found is not None:
        return found
    if offline:
        raise _offline_error(source, searched, span)
    return _download_source(source, progress=progress, span=span)


def _from_checkpoint(checkpoint: str, *, offline: bool, progress, span) -> Resolved:
    if urllib.parse.urlsplit(checkpoint).scheme in ("http", "https"):
        target = url_cache_dir() / _url_file_name(checkpoint)
        expected = published_sha256(checkpoint)
        if _valid_file(target, expected):
            return Resolved(target, "cache", f"downloaded earlier from {_without_fragment(checkpoint)}")
        if offline:
            raise ModelError(
                f"the checkpoint is a URL, and downloads are off (offline); it is not in the cache at {target}",
                span=span,
                hint=f"download it to {target} yourself, or give a local path in checkpoint=",
            )
        download(checkpoint, target, sha256=expected, progress=progress, span=span)
        return Resolved(target, "download", f"downloaded from {_without_fragment(checkpoint)}")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ModelError(
            f"checkpoint file not found: {checkpoint}",
            span=span,
            hint="relative paths start at the workspace folder" if not path.is_absolute() else None,
        )
    return Resolved(path, "checkpoint", str(checkpoint))


def _from_store(source: WeightSource, store, searched: list[str]) -> Resolved | None:
    if store is None:
        return None
    searched.append(
        f"the workspace model store ({store.root}): no clip model of {source.arch} with '{source.tag}' weights"
    )
    for name in store.names():
        try:
            info = store.get(name)
        except ModelError:
            continue  # a damaged model is reported when it is used, not here
        weights = info.path / "weights.pt"
        if (
            info.family == "clip"
            and info.arch == source.arch
            and info.options.get("pretrained") == source.tag
            and weights.is_file()
        ):
            return Resolved(weights, "model store", f"model '{name}' of this workspace")
    return None


def _from_caches(source: WeightSource, searched: list[str]) -> Resolved | None:
    if source.hf_repo:
        cache = hf_cache_dir()
        names = _hf_file_names(source.hf_filename)
        hit = _hf_cached(source.hf_repo, names, cache)
        if hit is not None:
            return Resolved(hit, "cache", f"Hugging Face cache ({source.hf_repo})")
        folder = cache / ("models--" + source.hf_repo.replace("/", "--"))
        searched.append(f"the Hugging Face cache: {folder} ({' or '.join(names)})")
    if source.url:
        target = url_cache_dir() / _url_file_name(source.url)
        if _valid_file(target, source.sha256):
            return Resolved(target, "cache", "open_clip's download cache")
        searched.append(f"open_clip's download cache: {target}")
    return None


def _hf_file_names(filename: str) -> list[str]:
    # open_clip prefers a .safetensors twin of the file named in its config (pretrained.py
    # _get_safe_alternatives): look for it first, as a download would fetch it first.
    names = []
    if filename == HF_WEIGHTS_NAME:
        names.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    return names + [filename]


def _hf_cached(repo: str, names: list[str], cache: Path) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in names:
        hit = try_to_load_from_cache(repo_id=repo, filename=name, cache_dir=str(cache))
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def _offline_error(source: WeightSource, searched: list[str], span) -> ModelError:
    places = "\n".join(f"  - {place}" for place in searched)
    if source.url:
        placement = f"download {source.url} to {url_cache_dir() / _url_file_name(source.url)}"
    elif source.hf_repo:
        name = _hf_file_names(source.hf_filename)[-1]
        placement = f"fetch {name} of https://huggingface.co/{source.hf_repo} into the Hugging Face cache"
    else:
        placement = "place the weight file on this machine"
    return ModelError(
        f"the weights of open_clip {source.arch} '{source.tag}' are not on this machine, "
        "and downloads are off (offline)",
        span=span,
        hint=f"searched:\n{places}\n{placement}, or use OPTIONS (checkpoint='path/to/file.pt'), "
        "or go online (THANOSQL_OFFLINE=0)",
    )


def _download_source(source: WeightSource, *, progress, span) -> Resolved:
    failures = []
    if source.hf_repo:
        try:
            return _download_hf(source)
        except ModelError as exc:
            failures.append(exc.message)
    if source.url:
        target = url_cache_dir() / _url_file_name(source.url)
        download(source.url, target, sha256=source.sha256, progress=progress, span=span)
        return Resolved(target, "download", f"downloaded from {source.url}")
    raise ModelError(
        f"could not download the weights of open_clip {source.arch} '{source.tag}': " + "; ".join(failures),
        span=span,
        hint="check the network, or use OPTIONS (checkpoint='path/to/file.pt')",
    )


def _download_hf(source: WeightSource) -> Resolved:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise ModelError("huggingface_hub is not installed") from exc
    errors = []
    # hf_hub_download writes into an .incomplete blob and links it into place when complete.
    for name in _hf_file_names(source.hf_filename):
        try:
            path = hf_hub_download(repo_id=source.hf_repo, filename=name, cache_dir=str(hf_cache_dir()))
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        return Resolved(Path(path), "download", f"downloaded from the Hugging Face hub ({source.hf_repo})")
    raise ModelError(f"the Hugging Face hub download of {source.hf_repo} failed ({'; '.join(errors)})")


def download(
    url: str,
    target: Path,
    *,
    sha256: str = "",
    progress=None,
    span: Span | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Stream ``url`` to ``target`` through a temporary file (transfer.stream); check ``sha256``
    (a hex prefix is enough); rename into place. A failure leaves no file behind.

    >>> download("https://example.org/w.pt", Path("/tmp/w.pt"), sha256="ab12")  # doctest: +SKIP
    PosixPath('/tmp/w.pt')
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
    ) as handle:
        partial = Path(handle.name)
    plain = _without_fragment(url)
    try:
        fetched = stream(plain, partial, timeout=timeout, progress=progress, label=target.name)
        if sha256 and not fetched.sha256.startswith(sha256.lower()):
            raise ModelError(
                f"the download from {plain} is damaged: its SHA-256 is {fetched.sha256}, expected {sha256}",
                span=span,
                hint="try again; if it persists, the file at that address changed",
            )
        os.replace(partial, target)
    except FetchFailure as failure:
        raise ModelError(
            f"could not download {plain}: {failure.status or failure.reason}",
            span=span,
            hint="check the network, or use OPTIONS (checkpoint='path/to/file.pt')",
        ) from failure
    except OSError as exc:
        if not is_disk_full(exc, target.parent):
            raise
        partial.unlink(missing_ok=True)
        raise disk_error(exc, f"downloading {target.name}", target.parent, span) from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``) rather than a torch.save file.

    >>> is_torchscript("ViT-B-32.pt")  # OpenAI's original checkpoint  # doctest: +SKIP
    True

    Both are zips; TorchScript's holds constants.pkl beside its code (torch.serialization tells
    them apart the same way).
    """
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _valid_file(path: Path, sha256: str) -> bool:
    # A cached file with a published checksum counts only if it matches (open_clip re-downloads
    # a mismatching one); without a checksum its presence is enough.
    if not path.is_file():
        return False
    return not sha256 or sha256_of(path).startswith(sha256.lower())


def _url_file_name(url: str) -> str:
    return os.path.basename(urllib.parse.urlsplit(url).path) or "weights.pt"


def _without_fragment(url: str) -> str:
    return urllib.parse.urldefrag(url).url
