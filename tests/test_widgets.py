import matplotlib.pyplot as plt

from iqlkit.smoke import pick
from iqlkit.widgets import interactive_figure, slider, tau_slider


def test_sliders_update_on_release_only():
    assert tau_slider().continuous_update is False
    assert slider("beta", 3.0, 0.0, 10.0).continuous_update is False


def test_interactive_figure_redraws_when_a_slider_moves():
    calls, before = [], set(plt.get_fignums())

    def figure(tau, beta):
        calls.append((tau, beta))
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, tau])
        return fig

    w = interactive_figure(figure, tau=tau_slider(0.7), beta=slider("beta", 1.0, 0.0, 5.0))
    w.update()
    w.children[0].value = 0.9
    assert calls[0] == (0.7, 1.0) and calls[-1] == (0.9, 1.0)
    assert set(plt.get_fignums()) == before  # every drawn figure was closed


def test_pick_reads_the_smoke_flag(monkeypatch):
    monkeypatch.setenv("IQLKIT_SMOKE", "1")
    assert pick(1000, 10) == 10
    monkeypatch.setenv("IQLKIT_SMOKE", "0")
    assert pick(1000, 10) == 1000
