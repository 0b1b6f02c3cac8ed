"""The tutorials end to end, offline: both notebooks in real kernels at the same time in one
workspace folder (as two notebooks open side by side), and the example scripts.

Slow (they train models): marked `slow`, run by .ci/run. Notebooks whose metadata says
{"thanosql": {"needs_network": true}} are the online versions and are skipped here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXAMPLES = sorted((ROOT / "examples").glob("*.sql"))

pytestmark = pytest.mark.slow


def needs_network(path: Path) -> bool:
    return bool(nbformat.read(path, as_version=4).metadata.get("thanosql", {}).get("needs_network"))


RUN_NOTEBOOK = """
import sys
import nbformat
from nbclient import NotebookClient

book = nbformat.read(sys.argv[1], as_version=4)
book.cells.append(nbformat.v4.new_code_cell("print(hits.to_json(orient='records'))"))
NotebookClient(book, timeout=900, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(book, sys.argv[3])
"""


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    """Both offline notebooks executed at the same time, each in a kernel of its own, in ONE
    workspace folder (two notebooks open side by side in JupyterLab); each executed notebook has
    one extra cell at the end that printed the ``hits`` frame as JSON. By name."""
    workspace = tmp_path_factory.mktemp("shared_workspace")
    # One compute thread each: two kernels of two threads on two cores would fight for them
    # (training threads that fight slow down several times; a busy machine is issue 13's matter).
    env = {**os.environ, "THANOSQL_WORKSPACE": str(workspace), "THANOSQL_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    runs = {}
    for name in ("search_image_by_image", "search_image_by_text"):
        executed = workspace.parent / f"{name}.executed.ipynb"
        command = [
            sys.executable,
            "-c",
            RUN_NOTEBOOK,
            str(ROOT / "notebooks" / f"{name}.ipynb"),
            str(workspace),
            str(executed),
        ]
        runs[name] = (
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            executed,
        )
    books = {}
    for name, (process, executed) in runs.items():
        output, _ = process.communicate(timeout=1800)
        assert process.returncode == 0, output[-4000:]
        books[name] = nbformat.read(executed, as_version=4)
    return books


def printed(cell) -> str:
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


def shown_images(book) -> int:
    """How many PRINT IMAGE grids the notebook displayed as HTML with pictures."""
    return sum(
        1
        for cell in book.cells
        for out in cell.get("outputs", [])
        if out.output_type == "display_data" and "<img" in out.get("data", {}).get("text/html", "")
    )


def test_the_online_notebooks_are_marked_as_needing_the_network():
    online = [path.name for path in NOTEBOOKS if needs_network(path)]
    assert sorted(online) == ["search_image_by_image_online.ipynb", "search_image_by_text_online.ipynb"]


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code"), path.name


def test_the_two_notebooks_run_side_by_side_in_one_folder_without_a_traceback(side_by_side):
    for name, book in side_by_side.items():
        for cell in book.cells:
            for out in cell.get("outputs", []):
                text = out.get("text", "") + "".join(out.get("traceback", [])) + out.get("ename", "")
                assert out.output_type != "error" and "Traceback" not in text, (name, text[-2000:])


def test_search_image_by_image_notebook_finds_eights_for_the_eight(side_by_side):
    book = side_by_side["search_image_by_image"]
    hits = json.loads(printed(book.cells[-1]))
    labels = [row["label"] for row in hits]
    # The query image itself comes first, and 8s lead its neighbours: by chance 0.4 of the next 4
    # would be. (bench/train.py's seeds 0, 1, 2 put 4, 2 and 2 eights there; tests/test_quality.py
    # holds the precision over all 200 queries.)
    assert labels[0] == 8
    assert sum(label == 8 for label in labels[1:]) >= 2, labels
    assert shown_images(book) >= 1


def test_search_image_by_text_notebook_finds_the_captioned_pictures(side_by_side):
    book = side_by_side["search_image_by_text"]
    hits = json.loads(printed(book.cells[-1]))
    captions = [row["ai_description"] for row in hits]
    # Held-apart pictures: the model never saw them or their captions in training. Red pictures
    # are 1 in 6; red circles about 1 in 30.
    assert sum(" red " in caption for caption in captions) >= 4, captions
    assert sum("red circle" in caption for caption in captions) >= 2, captions
    assert shown_images(book) >= 4


@pytest.mark.parametrize("script", [p for p in EXAMPLES if not p.stem.endswith("_online")], ids=lambda p: p.stem)
def test_example_scripts_run_offline_and_write_the_result_page(script, tmp_path):
    # The command line a user runs, in a process of its own: it must also end cleanly (no leak
    # report from DuckDB's bindings at exit, which an unclosed relation once caused).
    env = {key: value for key, value in os.environ.items() if key != "THANOSQL_WORKSPACE"}
    page = tmp_path / "page.html"
    command = ["--offline", "--quiet", "-w", str(tmp_path / "ws"), "--html", str(page), str(script)]
    done = subprocess.run(
        [sys.executable, "-m", "thanosql.cli", *command], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "thanosql-dataset/" in done.stdout  # PRINT IMAGE lists the paths in a terminal
    assert page.read_text().count("<img") >= 4
    assert "leaked" not in done.stderr, done.stderr[-2000:]
