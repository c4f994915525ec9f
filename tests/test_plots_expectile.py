import matplotlib.pyplot as plt
import numpy as np
import pytest

from iqlkit.experiments.regression import BoundedToy, beta_expectiles, fit_conditional_expectiles, sample_expectiles
from iqlkit.plots import expectile as plots
from iqlkit.plots.widgets import interactive_figure, tau_slider
from iqlkit.theory.expectile import expectile_loss, normal_expectile


@pytest.fixture(scope="module")
def toy_data_fit():
    toy = BoundedToy()
    x, y = toy.sample(300, seed=0)
    return toy, x, y, fit_conditional_expectiles(x, y, (0.1, 0.5, 0.9, 0.99), hidden=(16,), steps=5)


def labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_loss_figure_draws_one_asymmetric_curve_per_tau():
    ax = plots.loss_figure((0.1, 0.5, 0.9)).axes[0]
    curves = [line for line in ax.get_lines() if line.get_label().startswith("τ")]
    assert [c.get_label() for c in curves] == ["τ = 0.1", "τ = 0.5", "τ = 0.9"]
    u, loss = curves[2].get_data()
    np.testing.assert_allclose(loss, expectile_loss(u, 0.9))
    assert loss[-1] == pytest.approx(9 * loss[0])  # tau = 0.9 weighs positive errors 9 times more
    assert "L" in ax.get_title() and ax.get_xlabel().startswith("u")


def test_normal_expectiles_figure_contrasts_expectiles_with_quantiles():
    left, right = plots.normal_expectiles_figure(marked=(0.1, 0.5, 0.9), n_samples=500, n_taus=9).axes
    expectiles, quantiles = left.get_lines()[:2]
    taus, m = expectiles.get_data()
    np.testing.assert_allclose(m, [normal_expectile(t) for t in taus])
    _, q = quantiles.get_data()
    assert q[0] < m[0] < 0 < m[-1] < q[-1]  # expectiles are less extreme than quantiles
    assert len(right.patches) == 60
    marks = [line for line in right.get_lines() if line.get_label().startswith("m")]
    # m_0.9 of N(0, 1) solves 0.9 E(X - m)+ = 0.1 E(m - X)+ (checked with scipy): 0.86159
    assert [line.get_xdata()[0] for line in marks] == pytest.approx([-0.86159, 0.0, 0.86159], abs=1e-4)
    assert "m$_{0.5}$ = +0.00" in labels(right)


def test_conditional_expectiles_figure_draws_net_exact_and_supremum(toy_data_fit):
    toy, x, y, fit = toy_data_fit
    ax = plots.conditional_expectiles_figure(x, y, fit, toy, taus=(0.5, 0.99)).axes[0]
    assert len(ax.collections[0].get_offsets()) == 300
    by_label = {line.get_label(): line for line in ax.get_lines()}
    grid, sup = by_label["supremum x*(x)"].get_data()
    np.testing.assert_allclose(sup, toy.supremum(grid))
    np.testing.assert_allclose(by_label["net head τ = 0.99"].get_ydata(), fit(grid)[:, 3], rtol=1e-6)
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(dashed) == 2
    np.testing.assert_allclose(dashed[0].get_ydata(), toy.mean(grid), atol=1e-6)


def test_lemma1_figure_plots_gaps_with_their_slopes():
    taus = 1 - np.logspace(-5, -1, 9)
    sample = np.array([0.0, 0.5, 1.0])
    fig = plots.lemma1_figure(taus, {"sample": (sample_expectiles(sample, taus), 1.0),
                                     "U(0, 1)": (beta_expectiles(taus, 1, 1), 1.0)})
    left, right = fig.axes
    assert right.get_xscale() == right.get_yscale() == "log" and right.xaxis_inverted()
    gap_lines = right.get_lines()
    assert len(gap_lines) == 2
    np.testing.assert_allclose(gap_lines[1].get_ydata(), 1 - beta_expectiles(taus, 1, 1))
    slopes = [float(label.rsplit(" ", 1)[1]) for label in labels(right)]
    assert slopes[0] == pytest.approx(1.0, abs=0.05) and slopes[1] == pytest.approx(0.5, abs=0.05)
    assert [line.get_ydata()[0] for line in left.get_lines() if line.get_linestyle() == ":"] == [1.0, 1.0]


def test_tau_panel_figure_follows_tau(toy_data_fit):
    toy, x, y, fit = toy_data_fit
    fig = plots.tau_panel_figure(0.93, fit, x, y, toy)
    loss_ax, normal_ax, cond_ax = fig.axes
    assert fig._suptitle.get_text() == "τ = 0.93"
    assert labels(loss_ax) == ["τ = 0.93", "τ = 0.5 (reference)"]
    m_line = [line for line in normal_ax.get_lines() if line.get_label().startswith("expectile")][0]
    assert m_line.get_xdata()[0] == pytest.approx(normal_expectile(0.93))
    assert "net, τ = 0.9" in labels(cond_ax)  # the fitted head nearest to 0.93
    other = plots.tau_panel_figure(0.2, fit, x, y, toy)
    assert [ax.get_ylim() for ax in other.axes] == [ax.get_ylim() for ax in fig.axes]  # positions compare across tau
    assert fig.get_figwidth() <= 12 and plt.rcParams["font.size"] < 11 <= loss_ax.title.get_fontsize()


def test_tau_panel_redraws_from_a_slider(toy_data_fit):
    toy, x, y, fit = toy_data_fit
    seen = []

    def figure(tau):
        seen.append(tau)
        return plots.tau_panel_figure(tau, fit, x, y, toy)

    w = interactive_figure(figure, tau=tau_slider(0.9))
    w.children[0].value = 0.5
    assert seen[0] == 0.9 and seen[-1] == 0.5 and not plt.get_fignums()
