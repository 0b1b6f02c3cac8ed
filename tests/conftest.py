"""Shared fixtures: a fresh workspace and session per test, and GPU/slow markers."""

from __future__ import annotations

import pytest

import thanosql


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder; THANOSQL_* variables of the caller's shell do not leak in."""
    for name in (
        "THANOSQL_WORKSPACE",
        "THANOSQL_OFFLINE",
        "THANOSQL_DATASETS_MANIFEST",
        "THANOSQL_DEVICE",
        "THANOSQL_REUSE_BYTES",
        "THANOSQL_ENGINE",
        "THANOSQL_RAY_ACTORS",
    ):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "workspace"
    root.mkdir()
    return root


@pytest.fixture
def notices():
    """Messages and displays a session sends (``session.notify``), in order."""
    return []


@pytest.fixture
def session(workspace, notices):
    """A session on the fresh workspace, offline, with progress bars off."""
    with thanosql.connect(workspace, offline=True, progress=False, notify=notices.append) as s:
        yield s


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)
