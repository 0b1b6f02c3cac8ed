"""What the docstring examples of src/thanosql may use: ``workspace``, a fresh folder for each."""

from __future__ import annotations

import pytest
from _pytest.doctest import DoctestItem


@pytest.fixture(autouse=True)
def _doctest_workspace(request, doctest_namespace, tmp_path_factory):
    if isinstance(request.node, DoctestItem):
        doctest_namespace["workspace"] = tmp_path_factory.mktemp("workspace")
