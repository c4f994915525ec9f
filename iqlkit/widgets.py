"""Sliders wired to plain figure functions: the notebook only connects a slider to a tested callback."""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure


def slider(description: str, value: float, min: float, max: float, step: float = 0.01) -> widgets.FloatSlider:
    """A float slider that calls back only on release (continuous_update=False), so plots redraw once."""
    return widgets.FloatSlider(value=value, min=min, max=max, step=step, description=description,
                               continuous_update=False, readout_format=".3g",
                               style={"description_width": "initial"})


def tau_slider(value: float = 0.7, min: float = 0.01, max: float = 0.99) -> widgets.FloatSlider:
    """The expectile slider used across the course: tau in (0, 1)."""
    return slider("tau", value, min, max)


def interactive_figure(figure_fn: Callable[..., Figure], **controls: widgets.ValueWidget) -> widgets.interactive:
    """Redraw `figure_fn(**values)` whenever a control is released; controls are widgets named by keyword."""

    def draw(**values: float) -> None:
        fig = figure_fn(**values)
        display(fig)
        plt.close(fig)

    return widgets.interactive(draw, **controls)
