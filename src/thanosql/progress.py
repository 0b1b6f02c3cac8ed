"""Progress bars that read right wherever they are read: a terminal, a live notebook, a notebook
saved and reopened later, and its HTML export.

``progress_bar(total=n, desc=..., unit=...)`` is a tqdm bar. In a terminal (the command line, a
script, a plain IPython shell) it is tqdm's own text bar on stderr. In a Jupyter kernel it is a
NotebookBar: a live bar (an ipywidgets progress bar when ipywidgets is installed, else a line of
text and HTML updated in place), whose output is replaced, when the bar closes, by its final line
as text and HTML (``CONVERT: 100% 1000/1000 img [00:12, 80.3 img/s]``). A widget saved in a
notebook is only a reference to state the kernel held, so a reopened notebook showed it frozen at
0% and an HTML export showed nothing (issue 13); the final line is what the saved file keeps.
"""

from __future__ import annotations

import html
import sys
from typing import Any

from tqdm.std import tqdm

# Notebook bars redraw at most this often (seconds): each redraw is a message to the browser.
NOTEBOOK_REFRESH_S = 0.25


def progress_bar(iterable=None, *, disable: bool = False, **options: Any) -> tqdm:
    """A tqdm bar for where this code runs.

    >>> bar = progress_bar(total=3, desc="CONVERT", unit="img", disable=True)
    >>> bar.update(3); bar.close()

    ``options`` are tqdm's (total, desc, unit, unit_scale, leave, ...).
    """
    if not disable and in_notebook():
        options.pop("file", None)
        return NotebookBar(iterable, **options)
    options.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=disable, **options)


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (a front end that shows rich output), not in a
    terminal; IPython is not imported to find out."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class NotebookBar(tqdm):
    """A tqdm bar drawn as notebook output and replaced by its final line when closed.

    >>> bar = NotebookBar(total=1000, desc="CONVERT", unit="img")  # doctest: +SKIP
    >>> bar.update(1000); bar.close()  # the output now reads "CONVERT: 100% 1000/1000 img [...]"  # doctest: +SKIP

    ``leave=False`` empties the output instead (as a terminal bar is wiped).
    """

    def __init__(self, iterable=None, **options: Any) -> None:
        from IPython.display import display

        options.setdefault("mininterval", NOTEBOOK_REFRESH_S)
        # gui=True: tqdm keeps the counts and calls display(), but prints nothing itself.
        super().__init__(iterable, gui=True, **options)
        self._widgets = _make_widgets(self)
        if self._widgets is None:
            self._handle = display(bar_bundle(self.format_dict), raw=True, display_id=True)
        else:
            self._handle = display(self._widgets[0], display_id=True)
        self.display()

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        # tqdm calls this on each redraw (at most every mininterval seconds).
        if getattr(self, "_handle", None) is None:
            return False
        if self._widgets is None:
            self._handle.update(bar_bundle(self.format_dict), raw=True)
        else:
            _, bar, label = self._widgets
            bar.value = min(self.n, bar.max)
            label.value = html.escape(meter_line(self.format_dict))
        return True

    def close(self) -> None:
        if self.disable or getattr(self, "_handle", None) is None:
            super().close()
            return
        super().close()
        if self.leave is False:
            final = {"text/plain": ""}
        else:
            final = bar_bundle(self.format_dict, final=True)
        self._handle.update(final, raw=True)
        if self._widgets is not None:
            for widget in self._widgets:
                widget.close()  # the kernel forgets it; the output no longer refers to it
            self._widgets = None
        self._handle = None

    def clear(self, *_, **__) -> None:
        pass  # nothing is printed, so there is nothing to wipe before other output


def _make_widgets(bar: NotebookBar):
    """(box, progress, label) when ipywidgets is installed, else None (the text bar is used)."""
    try:
        import ipywidgets
    except ImportError:
        return None
    total = bar.total or 1
    progress = ipywidgets.FloatProgress(value=0, min=0, max=total, layout=ipywidgets.Layout(width="20em"))
    if not bar.total:
        progress.value, progress.bar_style = total, "info"
    label = ipywidgets.HTML(html.escape(meter_line(bar.format_dict)))
    return ipywidgets.HBox([progress, label]), progress, label


def meter_line(meter: dict[str, Any], final: bool = False) -> str:
    """A bar's state as one line of text, from tqdm's ``format_dict``.

    >>> meter_line({"prefix": "CONVERT", "n": 1000, "total": 1000, "elapsed": 12.5, "unit": "img"}, final=True)
    'CONVERT: 100% 1000/1000 img [00:12, 80.0 img/s]'

    A live line has the time left (``[00:05<00:07, ...]``); a final line whose count stopped short
    of the total ends in ``(stopped)``.
    """
    n, total, unit = meter["n"], meter.get("total"), meter.get("unit") or "it"
    elapsed = meter.get("elapsed") or 0.0
    count = _count_formatter(meter)
    rate = n / elapsed if (final or not meter.get("rate")) and elapsed > 0 else meter.get("rate")
    timing = tqdm.format_interval(elapsed)
    if not final and total and rate:
        timing += "<" + tqdm.format_interval(max(total - n, 0) / rate)
    stats = [timing, f"{_rate_text(rate, count)} {unit}/s" if rate else f"? {unit}/s"]
    if meter.get("postfix"):
        stats.append(meter["postfix"])
    if total:
        amount = f"{100 * n / total:3.0f}% {count(n)}/{count(total)} {unit}"
    else:
        amount = f"{count(n)} {unit}"
    line = f"{meter['prefix']}: " if meter.get("prefix") else ""
    line += f"{amount.strip()} [{', '.join(stats)}]"
    if final and total and n < total:
        line += " (stopped)"
    return line


def bar_bundle(meter: dict[str, Any], final: bool = False) -> dict[str, str]:
    """A bar as a display bundle: text/plain for terminals and text-only viewers, text/html (a
    static <progress> element and the line) for notebooks and HTML exports."""
    line = meter_line(meter, final)
    total, n = meter.get("total"), meter["n"]
    value = f" value='{min(n, total)}' max='{total}'" if total else ""
    return {
        "text/plain": line,
        "text/html": (
            "<div class='thanosql-progress' style='font-family:monospace;font-size:12px;white-space:pre'>"
            f"<progress{value} style='width:12em;vertical-align:middle'></progress> {html.escape(line)}</div>"
        ),
    }


def _count_formatter(meter: dict[str, Any]):
    scale = meter.get("unit_scale")
    if scale is True:
        divisor = meter.get("unit_divisor") or 1000
        return lambda value: tqdm.format_sizeof(value, divisor=divisor)
    if scale:
        return lambda value: f"{value * scale:g}"
    return lambda value: f"{value:g}" if isinstance(value, float) else str(value)


def _rate_text(rate: float, count) -> str:
    if count(1) != "1":  # a scaled unit (bytes): 12.3M
        return count(rate)
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"
