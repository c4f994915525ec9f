"""iqlkit.plots.strips: a slider's figure at several values, as the course site shows a slider."""
import matplotlib.pyplot as plt
import numpy as np
import pytest

from iqlkit.plots.strips import DPI, slider_strip
from iqlkit.plots.widgets import interactive_figure, slider, tau_slider


def line_figure(tau: float, offset: float) -> plt.Figure:
    """A small figure that depends on both controls."""
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [offset, tau])
    return fig


@pytest.fixture
def live():
    return interactive_figure(line_figure, tau=tau_slider(0.7), offset=slider("offset", 0.2, 0.0, 1.0))


def test_one_labelled_panel_per_value_at_the_slider_resolution(live):
    fig = slider_strip(live, "tau", [0.1, 0.5, 0.9])
    axes = fig.get_axes()
    assert [ax.get_title(loc="left") for ax in axes] == ["tau = 0.1", "tau = 0.5", "tau = 0.9"]
    for ax in axes:
        panel = ax.get_images()[0].get_array()
        assert panel.shape[:2] == (2 * DPI, 3 * DPI)  # the 3 x 2 inch figure, pixel for pixel
        assert (np.asarray(panel)[..., :3] < 0.9).any()  # something is drawn
    assert fig.get_size_inches()[0] == pytest.approx(3.0)


def test_the_panels_come_from_the_slider_function_and_the_slider_stays(live):
    low, high = (slider_strip(live, "tau", [v]).get_axes()[0].get_images()[0].get_array() for v in (0.1, 0.9))
    assert not np.array_equal(low, high)
    assert live.values() == {"tau": 0.7, "offset": 0.2}  # the other control as it was; nothing moved


def test_values_outside_the_slider_or_an_unknown_control_are_refused(live):
    with pytest.raises(ValueError, match=r"within the slider's range \[0.01, 0.99\], not \[1.5\]"):
        slider_strip(live, "tau", [0.5, 1.5])
    with pytest.raises(ValueError, match="give values"):
        slider_strip(live, "tau", [])
    with pytest.raises(KeyError, match="no control 'beta'"):
        slider_strip(live, "beta", [1.0])
