"""Moving bytes safely: a streamed, hashed HTTP download and a file's SHA-256. Datasets
(datasets/download.py) and model weights (models/weights.py) are both fetched through these, each
turning the neutral FetchFailure into its own error; finished folders are put in place by
stores.FolderStore.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHUNK_BYTES = 1 << 20
USER_AGENT = "thanosql-download/1"

Progress = Callable[..., Any]  # session.progress: a tqdm-like factory (update, close)


def no_progress(iterable=None, **kwargs):
    """A progress bar that shows nothing (when the caller gives none)."""
    return _Silent()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class FetchFailure(Exception):
    """One URL could not deliver the file; ``kind`` is 'connection', 'server' or 'content'.
    ``status``: the server's own words for an HTTP error ('Not Found'), else ''."""

    def __init__(self, url: str, kind: str, reason: str, tried: int = 1, status: str = "") -> None:
        super().__init__(reason)
        self.url = url
        self.kind = kind
        self.reason = reason
        self.tried = tried  # URLs tried (the file's url and its mirrors); >1: reason names each
        self.status = status


@dataclass(frozen=True)
class Fetched:
    """A downloaded file: where it came from, its size and sha256."""

    url: str
    size: int
    sha256: str


def stream(
    url: str,
    destination: Path,
    *,
    timeout: float,
    progress: Progress | None = None,
    expected_size: int | None = None,
    label: str | None = None,
) -> Fetched:
    """Download ``url`` to ``destination``, hashing as it goes.

    >>> stream("https://example.org/a.zip", Path("/tmp/a.zip"), timeout=10).size  # doctest: +SKIP
    1234

    Raises FetchFailure (connection refused, HTTP error, transfer cut short, server size
    different from ``expected_size``), or the OSError of a failed write (a full disk);
    ``destination`` may then hold a partial file, which the caller removes (it writes into a
    temporary file or folder).
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise FetchFailure(
            url, "server", f"the server answered {exc.code} {exc.reason}", status=str(exc.reason)
        ) from exc
    except urllib.error.URLError as exc:
        verb = "cannot open" if urlsplit(url).scheme == "file" else "cannot connect"
        raise FetchFailure(url, "connection", f"{verb}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise FetchFailure(url, "connection", f"cannot connect: {exc}") from exc
    with response:
        announced = response.headers.get("Content-Length")
        announced = int(announced) if announced and announced.isdigit() else None
        if expected_size is not None and announced is not None and announced != expected_size:
            raise FetchFailure(
                url, "content", f"the server offers {announced:,} bytes, the manifest expects {expected_size:,}"
            )
        total = announced if announced is not None else expected_size
        digest = hashlib.sha256()
        received = 0
        bar = (progress or no_progress)(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label or destination.name, leave=False
        )
        try:
            with destination.open("wb") as out:
                while chunk := _read(response, url, received):
                    # A failed write (a full disk) is an OSError for the caller to report: it is
                    # not the server's fault, and another mirror would not help.
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    # http.client may also return a short body without complaint when the server hangs up early.
    if announced is not None and received != announced:
        raise FetchFailure(url, "connection", f"the transfer broke off after {received:,} of {announced:,} bytes")
    return Fetched(url, received, digest.hexdigest())


def _read(response, url: str, received: int) -> bytes:
    """The next chunk of ``response``; a FetchFailure if the connection breaks off."""
    try:
        return response.read(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        # http.client raises IncompleteRead when the peer closes before Content-Length.
        raise FetchFailure(url, "connection", f"the transfer broke off after {received:,} bytes ({exc!r})") from exc


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
