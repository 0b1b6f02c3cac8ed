"""Progress bars: tqdm's text bar in a terminal; in a notebook a live bar whose output becomes its
final line, so that a saved notebook and its HTML export show where the work ended (issue 13).

The notebook tests execute real notebooks in a real kernel (nbclient), save them with nbformat
and read back what the file holds, with ipywidgets installed and without it.
"""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

import thanosql
from thanosql.progress import NotebookBar, bar_bundle, meter_line, progress_bar

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_a_finished_bar_reads_as_one_line_with_count_time_and_rate():
    meter = {"prefix": "CONVERT", "n": 1000, "total": 1000, "elapsed": 12.5, "unit": "img"}

    assert meter_line(meter, final=True) == "CONVERT: 100% 1000/1000 img [00:12, 80.0 img/s]"


def test_a_live_line_has_the_time_left_and_a_stopped_one_says_so():
    meter = {"prefix": "BUILD", "n": 25, "total": 100, "elapsed": 5.0, "unit": "step", "rate": 5.0}

    assert meter_line(meter) == "BUILD: 25% 25/100 step [00:05<00:15, 5.0 step/s]"
    assert meter_line(meter, final=True).endswith("(stopped)")


def test_bytes_are_counted_in_scaled_units_and_the_postfix_is_kept():
    meter = {
        "prefix": "mnist_data",
        "n": 3 * 1024**2,
        "total": 3 * 1024**2,
        "elapsed": 2.0,
        "unit": "B",
        "unit_scale": True,
        "unit_divisor": 1024,
        "postfix": "mirror=1",
    }

    assert meter_line(meter, final=True) == "mnist_data: 100% 3.00M/3.00M B [00:02, 1.50M B/s, mirror=1]"


def test_the_html_form_is_a_static_progress_element_with_the_escaped_line():
    bundle = bar_bundle({"prefix": "<x>", "n": 2, "total": 4, "elapsed": 1.0, "unit": "img"}, final=True)

    assert "<progress value='2' max='4'" in bundle["text/html"]
    assert "&lt;x&gt;: 50% 2/4 img" in bundle["text/html"]
    assert bundle["text/plain"] == "<x>: 50% 2/4 img [00:01, 2.0 img/s] (stopped)"


def test_outside_a_notebook_the_bar_is_tqdms_text_bar_on_stderr(workspace, capsys):
    with thanosql.connect(workspace, notify=lambda _: None) as session:
        bar = session.progress(total=4, desc="CONVERT", unit="img")
        bar.update(4)
        bar.close()

    assert not isinstance(bar, NotebookBar)
    assert "CONVERT: 100%" in capsys.readouterr().err


def test_a_silenced_session_draws_no_bar(workspace, capsys):
    with thanosql.connect(workspace, progress=False, notify=lambda _: None) as session:
        bar = session.progress(total=4, desc="CONVERT")
        bar.update(4)
        bar.close()

    assert capsys.readouterr().err == ""
    assert progress_bar(total=1, disable=True).disable


NOTEBOOK_CELLS = [
    "%load_ext thanosql",
    # A bar the way statements make them (Session.progress), redrawn a few times while it runs.
    "import time\n"
    "import thanosql\n"
    "session = thanosql.connect()\n"
    "bar = session.progress(total=1000, desc='CONVERT', unit='img')\n"
    "for _ in range(4):\n"
    "    time.sleep(0.3)\n"
    "    bar.update(250)\n"
    "bar.close()",
    # Interrupted work: the saved line says where it stopped.
    "bar = session.progress(total=10, desc='BUILD MODEL', unit='step')\nbar.update(4)\nbar.close()",
    # A download-style bar (leave=False) leaves nothing behind.
    "bar = session.progress(total=10, desc='download', unit='B', leave=False)\nbar.update(10)\nbar.close()",
    "%%thanosql\nCREATE TABLE t AS SELECT 1 AS x;\nSELECT x, NULL AS nothing FROM t",
]


def run_notebook(tmp_path, monkeypatch, *, widgets: bool) -> nbformat.NotebookNode:
    """The cells above executed in a fresh kernel, saved to a file and read back from it."""
    cells = list(NOTEBOOK_CELLS)
    if not widgets:  # as if ipywidgets were not installed
        cells.insert(0, "import sys\nsys.modules['ipywidgets'] = None")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.setenv("THANOSQL_WORKSPACE", str(workspace))
    monkeypatch.setenv("THANOSQL_OFFLINE", "1")
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
    NotebookClient(book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = tmp_path / "saved.ipynb"
    nbformat.write(book, saved)
    return nbformat.read(saved, as_version=4)


def cell_outputs(book, start: str) -> list:
    (cell,) = [cell for cell in book.cells if cell.source.startswith(start)]
    return cell.outputs


@pytest.fixture(scope="module", params=[True, False], ids=["with ipywidgets", "without ipywidgets"])
def saved_notebook(request, tmp_path_factory):
    if request.param and "ipywidgets" not in sys.modules:
        pytest.importorskip("ipywidgets")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield run_notebook(tmp_path_factory.mktemp("book"), monkeypatch, widgets=request.param)


def test_a_saved_notebook_shows_the_finished_bar_as_its_final_line(saved_notebook):
    (output,) = cell_outputs(saved_notebook, "import time")

    assert output.output_type == "display_data"
    assert output.data["text/plain"].startswith("CONVERT: 100% 1000/1000 img [00:01, ")
    assert "<progress value='1000' max='1000'" in output.data["text/html"]
    assert "CONVERT: 100% 1000/1000 img" in output.data["text/html"]


def test_a_saved_notebook_holds_no_widget_views_frozen_bars_or_widget_warnings(saved_notebook):
    text = json.dumps(saved_notebook)

    assert WIDGET_VIEW not in text
    assert "0%|" not in text and " 0/1000" not in text
    assert "IProgress" not in text
    assert not [output for cell in saved_notebook.cells for output in cell.outputs if output.get("name") == "stderr"]


def test_a_stopped_bar_is_saved_at_the_count_it_reached(saved_notebook):
    (output,) = cell_outputs(saved_notebook, "bar = session.progress(total=10, desc='BUILD")

    assert output.data["text/plain"].startswith("BUILD MODEL: 40% 4/10 step [")
    assert output.data["text/plain"].endswith("(stopped)")


def test_a_bar_that_does_not_stay_leaves_an_empty_output(saved_notebook):
    outputs = cell_outputs(saved_notebook, "bar = session.progress(total=10, desc='download'")

    assert [output.data for output in outputs] == [{"text/plain": ""}]
