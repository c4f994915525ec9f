import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import same_color

from iqlkit.envs.pointmaze import TASKS
from iqlkit.plots import online as P

UMAZE = TASKS["umaze"]


def run(rates, shares, every=100):
    """Log rows as the loop writes them: losses and online_share at every log point, success at evaluations."""
    rows = []
    for k, (rate, share) in enumerate(zip(rates, shares)):
        rows.append({"step": (k + 1) * every, "q_loss": 1.0, "online_share": share})
        if rate is not None:
            rows[-1]["success_rate"] = rate
    return rows


def test_phase_curves_draw_seeds_means_and_the_two_phases():
    curves = {"IQL": [run([0.2, None, 0.6, 1.0], [0, 0, 0.1, 0.2]), run([0.0, None, 0.4, 0.8], [0, 0, 0.1, 0.2])],
              "frozen": [run([0.1, None, 0.1, 0.1], [0, 0, 0.1, 0.2])]}
    fig = P.phase_curves(curves, switch=200)
    ax = fig.axes[0]
    means = [line for line in ax.get_lines() if line.get_label().startswith(("IQL", "frozen"))]
    assert [line.get_label() for line in means] == ["IQL (mean of 2)", "frozen (mean of 1)"]
    np.testing.assert_allclose(means[0].get_xydata(), [[100, 0.1], [300, 0.5], [400, 0.9]])
    labels = ax.get_legend_handles_labels()[1]
    assert "offline phase" in labels and "switch to online (step 200)" in labels
    assert ax.get_xlim() == (0, 400) and "update step" in ax.get_xlabel()


def test_online_share_figure_draws_the_measured_share_and_what_uniform_sampling_implies():
    curves = {"IQL": [run([None] * 4, [0, 0, 0.1, 0.3])], "no offline data": [run([None] * 4, [0, 0, 1, 1])]}
    fig = P.online_share_figure(curves, switch=200, n_offline=1000)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["no offline data: measured"].get_ydata(), [0, 0, 1, 1])
    expected = lines["t / (1,000 + t): offline data kept"]
    x, y = expected.get_xdata(), expected.get_ydata()
    np.testing.assert_allclose(y, (x - 200) / (1000 + x - 200))
    assert ax.get_ylabel() == "share of online rows in a batch"


def test_visit_maps_show_the_share_of_points_per_cell_on_one_scale():
    start, goal = UMAZE.cell_xy([UMAZE.start, UMAZE.goal])
    groups = {"offline": np.array([start, start, goal, start]), "online": np.array([goal] * 3)}
    fig = P.visit_maps(UMAZE, groups)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    first, second = (im.get_array() for im in images)
    assert first[UMAZE.start] == pytest.approx(0.75) and first[UMAZE.goal] == pytest.approx(0.25)
    assert second[UMAZE.goal] == pytest.approx(1.0) and np.ma.is_masked(second[UMAZE.start])
    assert images[0].norm.vmin == images[1].norm.vmin == pytest.approx(0.25)
    assert "(4 transitions)" in fig.axes[0].get_title()


def test_path_success_is_ending_within_the_goal_radius_of_the_goal_centre():
    goal = UMAZE.cell_xy(UMAZE.goal)
    paths = [np.array([[0.0, 0.0], goal + [0.3, 0.3]]), np.array([goal, goal + [0.0, 0.44]]),
             np.array([goal, goal + [0.0, 0.46]])]  # 0.42 and 0.44 from G: reached; 0.46: not, though it passed G
    np.testing.assert_array_equal(P.path_success(UMAZE, paths), [True, True, False])


def test_rollouts_figure_draws_every_path_with_its_start_and_end():
    goal = UMAZE.cell_xy(UMAZE.goal)
    paths = {"at the switch": [np.array([[0.0, 0.0], [0.5, 0.2]])],
             "after fine-tuning": [np.array([[0.0, 0.0], goal]), np.array([[0.1, 0.0], [0.2, 0.3]])]}
    fig = P.rollouts_figure(UMAZE, paths)
    left, right = fig.axes
    assert len(right.get_lines()) - len(left.get_lines()) == 3  # 3 more markers and lines: one path more
    np.testing.assert_allclose(right.get_lines()[-3].get_xydata(), [[0.1, 0.0], [0.2, 0.3]])
    assert right.get_title() == "after fine-tuning\n1 of 2 rollouts reach G"
    assert left.get_title() == "at the switch\n0 of 1 rollouts reach G"


def test_rollouts_figure_lays_panels_out_in_rows():
    path = [np.array([[0.0, 0.0], [0.5, 0.2]])]
    fig = P.rollouts_figure(UMAZE, {f"seed {k}": path for k in range(5)}, ncols=3)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 6 and len(shown) == 5
    assert fig.get_size_inches()[1] == pytest.approx(2 * 4.4)


def test_goal_rate_figure_draws_windows_at_their_centres_and_the_offline_rate():
    rates = {"IQL": np.array([[0.0, 2.0, 4.0], [0.0, 4.0, 6.0]])}
    fig = P.goal_rate_figure(rates, window=100, offline_rate=1.5)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    np.testing.assert_allclose(lines["IQL (mean of 2)"].get_xydata(), [[50, 0], [150, 3], [250, 5]])
    np.testing.assert_allclose(lines["offline data: 1.50"].get_ydata(), [1.5, 1.5])
    assert fig.axes[0].get_ylabel() == "goal reaches per 1,000 transitions"


def test_drops_figure_draws_the_mean_bar_and_a_dot_per_seed():
    fig = P.drops_figure({"frozen policy": np.array([0.1, 0.2, 0.0]), "IQL": np.array([0.5, 0.3, 0.4])})
    ax = fig.axes[0]
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.1, 0.4]
    dots = [line.get_ydata() for line in ax.get_lines()]
    np.testing.assert_allclose(dots[1], [0.5, 0.3, 0.4])
    assert [t.get_text() for t in ax.texts] == ["0.10", "0.40"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["frozen policy", "IQL"]


def test_figures_take_one_colour_per_label_across_figures():
    colors = {"IQL": "tab:red", "offline only": "tab:gray"}
    curves = {"offline only": [run([0.2, 0.4], [0, 0])], "IQL": [run([0.2, 0.6], [0, 0.1])]}
    lines = {line.get_label(): line for line in P.phase_curves(curves, 100, colors=colors).axes[0].get_lines()}
    assert lines["IQL (mean of 1)"].get_color() == "tab:red"
    assert lines["offline only (mean of 1)"].get_color() == "tab:gray"
    bars = P.drops_figure({"IQL": np.array([0.1]), "other": np.array([0.2])}, colors=colors).axes[0].patches
    assert same_color(bars[0].get_facecolor()[:3], "tab:red")
    assert same_color(bars[1].get_facecolor()[:3], plt.get_cmap("tab10")(1)[:3])  # not in colors
