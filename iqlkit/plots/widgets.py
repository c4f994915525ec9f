"""Sliders wired to plain figure functions: the notebook only connects a slider to a tested callback.

The figure is drawn into an `ipywidgets.Image` (a PNG), not into an Output widget. That is what lets notebooks with
sliders run headless: nbclient (behind `jupyter nbconvert --execute`) answers every output that lands in an Output
widget by writing the widget's state back to the kernel on the shell socket, while it waits on that same socket for
the cell's reply; that write can swallow the socket's wake-up, and the run then hangs with the kernel idle
(nbconvert issues #1921, #2003, #2029, nbclient #312). An Image widget gets no such answer.
"""
from __future__ import annotations

import asyncio
import html
import io
import time
import traceback
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython import get_ipython
from matplotlib.figure import Figure

SETTLE_S = 0.15  # a control moved by hand draws after this long without a newer move: a burst draws only its last


def slider(description: str, value: float, min: float, max: float, step: float = 0.01) -> widgets.FloatSlider:
    """A float slider that calls back only on release (continuous_update=False), so plots redraw once."""
    return widgets.FloatSlider(value=value, min=min, max=max, step=step, description=description,
                               continuous_update=False, readout_format=".3g",
                               style={"description_width": "initial"})


def tau_slider(value: float = 0.7, min: float = 0.01, max: float = 0.99) -> widgets.FloatSlider:
    """The expectile slider used across the course: tau in (0, 1)."""
    return slider("tau", value, min, max)


def _moved_by_hand() -> bool:
    """True while the kernel handles a front end's comm message (a control moved by hand), not a cell's code."""
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return False
    return kernel.get_parent("shell").get("header", {}).get("msg_type") == "comm_msg"


class LiveFigure(widgets.VBox):
    """Controls above the PNG of `figure_fn(**values)`, redrawn when a control is released.

    A value set by code (a cell, a test) draws at once, so an error shows in that cell. A value moved by hand waits
    SETTLE_S for a newer one: the kernel handles messages one at a time, so arrow-key presses that arrive during a
    draw are dropped but the last, which is drawn. `draws` lists the values and wall seconds of every draw.
    """

    def __init__(self, figure_fn: Callable[..., Figure], controls: dict[str, widgets.ValueWidget]) -> None:
        self.figure_fn, self.controls = figure_fn, controls
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.error = widgets.HTML()
        self.draws: list[tuple[dict[str, float], float]] = []
        self._pending: asyncio.TimerHandle | None = None
        super().__init__([*controls.values(), self.image, self.error])
        for control in controls.values():
            control.observe(self._moved, names="value")
        self.redraw()

    def values(self) -> dict[str, float]:
        """The controls' current values, by keyword."""
        return {name: control.value for name, control in self.controls.items()}

    def redraw(self) -> None:
        """Draw the figure for the controls' current values now."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        values, start = self.values(), time.perf_counter()
        fig = self.figure_fn(**values)
        try:
            png = io.BytesIO()
            fig.savefig(png, format="png")
        finally:
            plt.close(fig)
        self.image.value = png.getvalue()
        self.error.value = ""
        self.draws.append((values, time.perf_counter() - start))

    def _settled(self) -> None:
        """The deferred draw of a value moved by hand; an error is shown under the figure (no cell to raise in)."""
        self._pending = None
        try:
            self.redraw()
        except Exception:  # noqa: BLE001  (shown to the student, who moves the control again)
            self.error.value = f"<pre style='color: #b00'>{html.escape(traceback.format_exc())}</pre>"

    def _moved(self, change: dict) -> None:
        if not _moved_by_hand():
            self.redraw()
            return
        if self._pending is not None:
            self._pending.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (not in a kernel): draw now
            self._settled()
            return
        self._pending = loop.call_later(SETTLE_S, self._settled)


def interactive_figure(figure_fn: Callable[..., Figure], **controls: widgets.ValueWidget) -> LiveFigure:
    """Redraw `figure_fn(**values)` whenever a control is released; controls are widgets named by keyword."""
    return LiveFigure(figure_fn, controls)
