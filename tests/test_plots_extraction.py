import numpy as np
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.image import AxesImage

from iqlkit.plots import extraction as E


def step_patches(ax):
    return [p for p in ax.patches if p.get_label() and not p.get_label().startswith("_")]


def test_weight_distributions_draws_advantages_weights_per_beta_and_statistics():
    adv = np.array([-1.0, -0.5, 0.0, 0.2, 0.5, 1.0] * 10)
    fig = E.weight_distributions(adv, betas=(0, 1, 10), clip=100.0, beta_grid=np.array([0.1, 1.0, 10.0, 100.0]))
    ax_a, ax_w, ax_s = fig.axes
    assert "50.0% have A > 0" in ax_a.get_title()
    assert sum(p.get_height() for p in ax_a.patches) == len(adv)
    labels = [t.get_text() for t in ax_w.get_legend().get_texts()]
    assert labels[0] == "beta = 0: 0.0% at clip, ESS 1.00"
    # beta 10: exp(10 * 0.5) = 148 and exp(10) are clipped, exp(2) = 7.4 is not -> 2 of 6 at the clip
    assert labels[2].startswith("beta = 10: 33.3% at clip")
    assert len(step_patches(ax_w)) == 3 and ax_w.get_xscale() == "log"
    low, high = ax_w.get_xlim()
    assert E.FLOOR / 10 < low < E.FLOOR and 100.0 < high < 1000.0  # spans the drawn weights: the floor to the clip
    clip_line, ess_line = ax_s.get_lines()[:2]
    np.testing.assert_allclose(clip_line.get_ydata(), [0, 0, 2 / 6, 0.5])  # beta 100: exp(20) and exp(50) too
    assert ess_line.get_ydata()[0] < 1 and ax_s.get_xscale() == "log"
    np.testing.assert_allclose(ax_s.get_lines()[2].get_ydata(), [0.5, 0.5])  # the A > 0 asymptote


def test_beta_weights_shows_one_beta():
    fig = E.beta_weights(np.linspace(-1, 1, 11), beta=5.0)
    (label,) = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert label.startswith("beta = 5: 9.1% at clip")  # only A = 1: exp(5) > 100


def test_success_vs_beta_plots_points_with_binomial_errors_and_the_concurrent_marker():
    fig = E.success_vs_beta([0, 1, 10], [0.2, 0.5, 0.9], n_episodes=100, concurrent=0.95, concurrent_beta=10)
    (ax,) = fig.axes
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    np.testing.assert_allclose(bars.lines[0].get_ydata(), [0.2, 0.5, 0.9])
    segments = bars.lines[2][0].get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments], 2 * np.sqrt([0.0016, 0.0025, 0.0009]))
    marker = [ln for ln in ax.get_lines() if ln.get_label().startswith("concurrent")][0]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (10, 0.95)
    assert ax.get_xscale() == "symlog" and [t.get_text() for t in ax.texts] == ["BC"]


def test_paired_success_has_a_group_per_seed_and_the_mean():
    fig = E.paired_success([0, 1], {"concurrent": [1.0, 0.5], "post hoc": [0.5, 0.0]}, n_episodes=50, title="t")
    (ax,) = fig.axes
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_label() for b in bars] == ["concurrent", "post hoc"]
    np.testing.assert_allclose([p.get_height() for p in bars[0]], [1.0, 0.5, 0.75])
    np.testing.assert_allclose([p.get_height() for p in bars[1]], [0.5, 0.0, 0.25])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["seed 0", "seed 1", "mean\n(s.e. over seeds)"]
    np.testing.assert_allclose(bars[0].errorbar.lines[2][0].get_segments()[2][:, 1], [0.75 - 0.25 / np.sqrt(2), 0.75 + 0.25 / np.sqrt(2)])
    assert ax.get_title() == "t" and "0.75" in [t.get_text() for t in ax.texts]


def test_learned_std_maps_sigma_and_marks_the_constant_std():
    xs, ys = np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.0])
    grid = np.array([[0.1, np.nan, 0.3], [0.2, 0.4, 0.5]])
    data_std = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    fig = E.learned_std(xs, ys, grid, data_std, constant_std=[0.45, 0.55], goal=(2.0, 1.0))
    ax_m, ax_h, cbar = fig.axes
    assert cbar.get_ylabel() == "sigma(s), mean over action dims"
    (img,) = [c for c in ax_m.get_children() if isinstance(c, AxesImage)]
    assert np.ma.is_masked(img.get_array()[0, 1]) and img.get_array()[1, 2] == 0.5
    assert img.get_extent() == [-0.5, 2.5, -0.5, 1.5]
    assert len(step_patches(ax_h)) == 2
    vlines = [ln.get_xdata()[0] for ln in ax_h.get_lines()]
    assert vlines == [0.45, 0.55]
    assert "median 0.30" in ax_h.get_legend().get_texts()[0].get_text()
