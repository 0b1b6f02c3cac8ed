"""The model store: ``<workspace>/thanosql-model/<name>/`` holding ``model.json`` and weights.

A model is written into a temporary folder beside the store and renamed into place only when
complete, so an interrupted or failed BUILD/GET/UPLOAD leaves any earlier model of that name as
it was. No torch here: listing and metadata stay cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ..errors import ModelError, Span, choices_hint
from ..transfer import swap_in_folder

METADATA_FILE = "model.json"


@dataclass(frozen=True)
class ModelInfo:
    """What model.json says of a stored model.

    family: 'clip' (open_clip), 'simclr' (lightly/torchvision), or 'pytorch' (uploaded encoder).
    """

    name: str
    family: str
    arch: str
    embedding_dim: int
    options: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    source: str = ""
    path: Path | None = field(default=None, compare=False)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2, sort_keys=True, default=str)


class ModelStore:
    """Models of one workspace, by name.

    >>> store = ModelStore(Path("/tmp/ws/thanosql-model"))
    >>> with store.create("m", family="clip", arch="ViT-B-32", embedding_dim=512) as folder:
    ...     (folder / "weights.pt").write_bytes(b"...")
    >>> store.get("m").arch
    'ViT-B-32'
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / METADATA_FILE).is_file())

    def exists(self, name: str) -> bool:
        return (self.root / name / METADATA_FILE).is_file()

    def list(self) -> list[ModelInfo]:
        return [self.get(name) for name in self.names()]

    def get(self, name: str, span: Span | None = None) -> ModelInfo:
        """The stored model ``name``; a ModelError listing the known ones if there is none."""
        folder = self.root / name
        try:
            data = json.loads((folder / METADATA_FILE).read_text())
        except FileNotFoundError:
            raise ModelError(
                f"no model named '{name}' in this workspace",
                span=span,
                hint=choices_hint(name, self.names(), "models")
                + " (GET THANOSQL MODEL, BUILD MODEL or UPLOAD MODEL make one)",
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"model '{name}' is damaged: cannot read {folder / METADATA_FILE}: {exc}", span=span) from exc
        return ModelInfo(path=folder, **data)

    @contextmanager
    def create(
        self,
        name: str,
        *,
        family: str,
        arch: str,
        embedding_dim: int,
        options: dict[str, Any] | None = None,
        source: str = "",
        overwrite: bool = False,
        span: Span | None = None,
    ) -> Iterator[Path]:
        """Yield an empty folder to write the model's files into; on success, write model.json
        and put the folder in place of any earlier model ``name`` in one rename.

        Raises ModelError if the model exists and ``overwrite`` is False. On any exception,
        KeyboardInterrupt included, the folder is removed and the earlier model stays.
        """
        self.check_writable(name, overwrite=overwrite, span=span)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=self.root))
        try:
            yield staging
            info = ModelInfo(
                name=name,
                family=family,
                arch=arch,
                embedding_dim=int(embedding_dim),
                options=dict(options or {}),
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                source=source,
            )
            (staging / METADATA_FILE).write_text(info.to_json())
            swap_in_folder(staging, self.root / name)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def check_writable(self, name: str, *, overwrite: bool, span: Span | None = None) -> None:
        if self.exists(name) and not overwrite:
            raise ModelError(
                f"model '{name}' already exists",
                span=span,
                hint="add OPTIONS (overwrite=True) to replace it, or choose another name",
            )

    def delete(self, name: str, span: Span | None = None) -> None:
        """Remove model ``name`` (a ModelError listing the known ones if there is none)."""
        self.get(name, span=span)
        retired = self.root / f".{name}.{os.getpid()}.deleted"
        os.replace(self.root / name, retired)
        shutil.rmtree(retired, ignore_errors=True)
