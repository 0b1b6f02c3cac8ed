"""The model store: ``<workspace>/thanosql-model/<name>/`` holding ``model.json`` and weights.

A model is written into a temporary folder beside the store and swapped into place only when
complete (stores.FolderStore: atomic as every process sees it, recovered after a kill), so an
interrupted or failed BUILD/GET/UPLOAD leaves any earlier model of that name as it was. Names
are names, never paths (stores.check_name). A model whose model.json cannot be read is listed as
damaged and can be deleted. No torch here: listing and metadata stay cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ModelError, Span, choices_hint
from ..stores import FolderStore

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

    >>> store = ModelStore(Path("/tmp/ws/thanosql-model"))  # doctest: +SKIP
    >>> with store.create("m", family="clip", arch="ViT-B-32", embedding_dim=512) as folder:  # doctest: +SKIP
    ...     (folder / "weights.pt").write_bytes(b"...")
    >>> store.get("m").arch  # doctest: +SKIP
    'ViT-B-32'
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folders = FolderStore(self.root, "model")

    def names(self) -> list[str]:
        """Names of the stored models, damaged ones included."""
        return self.folders.names()

    def exists(self, name: str, span: Span | None = None) -> bool:
        return self.folders.exists(name, span)

    def list(self) -> list[ModelInfo]:
        """The models whose model.json reads well (``damaged()`` lists the others)."""
        return [info for info in map(self._read, self.names()) if isinstance(info, ModelInfo)]

    def damaged(self) -> dict[str, str]:
        """``{name: what is wrong}`` for the models whose model.json cannot be read."""
        return {name: found for name in self.names() if isinstance(found := self._read(name), str)}

    def get(self, name: str, span: Span | None = None) -> ModelInfo:
        """The stored model ``name``; a ModelError listing the known ones if there is none."""
        folder = self.folders.path(name, span)
        found = self._read(name)
        if found is None:
            raise ModelError(
                f"no model named '{name}' in this workspace",
                span=span,
                hint=choices_hint(name, self.names(), "models")
                + " (GET THANOSQL MODEL, BUILD MODEL or UPLOAD MODEL make one)",
            )
        if isinstance(found, str):
            raise ModelError(
                f"model '{name}' is damaged: {found}",
                span=span,
                hint=f"DELETE MODEL {name} removes it; then build or upload it again ({folder})",
            )
        return found

    def _read(self, name: str) -> ModelInfo | str | None:
        """The model's info, what is wrong with its model.json (a str), or None if absent."""
        folder = self.root / name
        path = folder / METADATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "model.json is missing" if folder.is_dir() else None
        except (OSError, ValueError) as exc:
            return f"cannot read model.json: {exc}"
        if not isinstance(data, dict):
            return "model.json does not hold a JSON object"
        try:
            info = ModelInfo(path=folder, **data)
        except TypeError as exc:
            return f"model.json has fields this version does not know or lacks some: {exc}"
        if info.name != name or not info.family or not info.arch or not isinstance(info.embedding_dim, int):
            return "model.json lacks its name, family, arch or embedding_dim"
        return info

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
        with self.folders.staging(name, span) as staging:  # a full disk: stores.DiskFullError
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
            (staging / METADATA_FILE).write_text(info.to_json(), encoding="utf-8")
            self.folders.put(staging, name)

    def check_writable(self, name: str, *, overwrite: bool, span: Span | None = None) -> None:
        if self.exists(name) and not overwrite:
            raise ModelError(
                f"model '{name}' already exists",
                span=span,
                hint="add OPTIONS (overwrite=True) to replace it, or choose another name",
            )

    def delete(self, name: str, span: Span | None = None) -> None:
        """Remove model ``name``, damaged or not (a ModelError listing the known ones if there
        is none)."""
        if not self.folders.remove(name, span):
            raise ModelError(
                f"no model named '{name}' in this workspace",
                span=span,
                hint=choices_hint(name, self.names(), "models"),
            )
