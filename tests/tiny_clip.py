"""Test helpers for CLIP: a tiny open_clip model (tests/fixtures/tiny_clip.json: ViT of width 64,
2 layers, 32-px input; 2-layer text tower; 32-d embeddings), its checkpoint, generated images, and
open_clip's own reference pipeline to compare against. Real models and files, no stand-ins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_clip.json"
ARCH = "tiny_clip"


def tiny_config() -> dict:
    return json.loads(FIXTURE.read_text())


def save_tiny_checkpoint(folder: Path, seed: int = 0, name: str = "tiny.pt") -> Path:
    """A randomly initialised tiny CLIP's state_dict (torch.save), written to ``folder/name``;
    the config is copied beside it as ``tiny_clip.json`` (open_clip names an arch after its file)."""
    import torch

    from thanosql.models.clip import build_open_clip

    torch.manual_seed(seed)
    model, _, _ = build_open_clip(ARCH, tiny_config())
    # open_clip initialises some weights to constants (zeros, ones); spread them so that every
    # parameter matters for the equality checks.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save(model.state_dict(), path)
    shutil.copy(FIXTURE, folder / "tiny_clip.json")
    return path


def make_images(folder: Path, count: int, *, size=(48, 40), seed: int = 0, kind: str = "jpg") -> list[Path]:
    """``count`` smooth random pictures (so that JPEG keeps them meaningful) of ``size``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    width, height = size
    for index in range(count):
        coarse = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
        path = folder / f"{index}.{kind}"
        image.save(path, quality=90) if kind == "jpg" else image.save(path)
        paths.append(path)
    return paths


def upload_tiny(session, checkpoint: Path, overwrite: bool = False) -> None:
    """UPLOAD MODEL tiny from ``checkpoint`` (save_tiny_checkpoint's) into ``session``'s workspace."""
    shutil.copy(checkpoint, session.workspace / "tiny.pt")
    shutil.copy(checkpoint.parent / "tiny_clip.json", session.workspace / "tiny_clip.json")
    session.execute(f"UPLOAD MODEL tiny OPTIONS (model_config='tiny_clip.json', overwrite={overwrite}) FROM 'tiny.pt'")


def captioned_pictures(session, count: int = 12) -> None:
    """Table pics(image_path, caption, n) of ``count`` generated pictures in ``session``'s workspace
    (made again, its files rewritten, when it is there)."""
    make_images(session.workspace / "pics", count, seed=3)
    session.execute(
        "CREATE OR REPLACE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path, 'a picture number ' || i AS caption, "
        f"i AS n FROM range({count}) r(i)"
    )


def reference_pipeline(checkpoint: Path, arch_name: str = "thanosql_test_reference"):
    """open_clip's own loading path for the same checkpoint: register the config, then
    ``create_model_and_transforms(name, pretrained=checkpoint)`` and ``get_tokenizer(name)``."""
    import tempfile

    from thanosql.models.clip import import_open_clip

    open_clip = import_open_clip()
    if open_clip.get_model_config(arch_name) is None:
        folder = Path(tempfile.mkdtemp())
        shutil.copy(FIXTURE, folder / f"{arch_name}.json")
        open_clip.add_model_config(folder / f"{arch_name}.json")
    model, _, preprocess = open_clip.create_model_and_transforms(arch_name, pretrained=str(checkpoint))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(arch_name)


def reference_image_embeddings(checkpoint: Path, paths) -> np.ndarray:
    """The plain open_clip loop: open, preprocess, encode, one image at a time."""
    import torch
    from PIL import Image

    model, preprocess, _ = reference_pipeline(checkpoint)
    with torch.no_grad():
        return np.stack([model.encode_image(preprocess(Image.open(p))[None])[0].numpy() for p in paths])


def reference_text_embeddings(checkpoint: Path, texts) -> np.ndarray:
    import torch

    model, _, tokenizer = reference_pipeline(checkpoint)
    with torch.no_grad():
        return model.encode_text(tokenizer(list(texts))).numpy()


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 serving ``files`` (path -> bytes), counting requests.

    ``cut_short`` paths announce their full length but send only half, then hang up.
    """

    def __init__(self, files: dict[str, bytes], cut_short: frozenset[str] = frozenset()) -> None:
        import http.server
        import threading

        self.files, self.cut_short, self.requests = files, cut_short, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.cut_short else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
