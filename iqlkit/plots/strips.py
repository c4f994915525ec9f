"""A slider's figure at several values in one image: what a page that cannot run Python (the course site) shows
in place of a slider. The figures come from the function the slider is wired to (iqlkit.plots.widgets)."""
from __future__ import annotations

import io
from typing import Sequence

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iqlkit.plots.widgets import LiveFigure

DPI = 100  # the panels are drawn and shown at this resolution, so the strip shows them pixel for pixel
TITLE_IN = 0.4  # inches above each panel for its "name = value" label


def _png_pixels(fig: Figure) -> np.ndarray:
    """The figure as the slider shows it (a PNG), read back as an RGBA array; the figure is closed."""
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    buffer.seek(0)
    return mpimg.imread(buffer, format="png")


def slider_strip(live: LiveFigure, name: str, values: Sequence[float]) -> Figure:
    """`live`'s figure at each of `values` of its control `name` (the other controls as they are), one row per value,
    each labelled; the controls themselves are left unchanged."""
    if name not in live.controls:
        raise KeyError(f"no control {name!r}: this figure has {sorted(live.controls)}")
    control = live.controls[name]
    outside = [v for v in values if not control.min <= v <= control.max]
    if not values or outside:
        raise ValueError(f"{name}: give values within the slider's range [{control.min:g}, {control.max:g}]"
                         + (f", not {outside}" if outside else ""))
    panels = [_png_pixels(live.figure_fn(**{**live.values(), name: value})) for value in values]
    height, width = max(p.shape[0] for p in panels), max(p.shape[1] for p in panels)
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, dpi=DPI,
                             figsize=(width / DPI, len(panels) * (height / DPI + TITLE_IN)))
    for ax, panel, value in zip(axes[:, 0], panels, values):
        ax.imshow(panel, interpolation="none")
        ax.set_axis_off()
        ax.set_title(f"{name} = {value:g}", loc="left", fontsize=13, fontweight="bold")
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=1.0 - TITLE_IN / (height / DPI + TITLE_IN) / len(panels),
                        hspace=TITLE_IN / (height / DPI))
    return fig
