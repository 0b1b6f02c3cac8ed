"""The torchvision shim, in fresh interpreters (an import can only be tried once per process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_torchvision_open_clip_and_lightly_import_after_the_shim():
    result = run(
        """
        from thanosql.models.torchvision_shim import import_torchvision
        torchvision = import_torchvision()
        assert import_torchvision() is torchvision
        import open_clip, lightly
        from torchvision.transforms import functional
        from PIL import Image
        tensor = functional.to_tensor(Image.new("RGB", (4, 3)))
        assert tuple(tensor.shape) == (3, 3, 4)
        model = torchvision.models.resnet18(weights=None)
        print("ok", type(model).__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "ResNet"]


def test_the_shim_declares_operators_only_where_the_plain_import_fails():
    result = run(
        """
        import sys
        try:
            import torchvision
            plain = "works"
        except RuntimeError as exc:
            plain = "fails" if "torchvision::nms does not exist" in str(exc) else "other"
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        from thanosql.models import torchvision_shim
        torchvision_shim.import_torchvision()
        print(plain, torchvision_shim._declared is not None)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() in (["works", "False"], ["fails", "True"])
