import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from iqlkit.plots import online as P  # noqa: E402
from iqlkit.pointmaze import TASKS  # noqa: E402

UMAZE = TASKS["umaze"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


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


def test_rollouts_figure_draws_every_path_with_its_start_and_end():
    paths = {"at the switch": [np.array([[0.0, 0.0], [0.5, 0.2]])],
             "after fine-tuning": [np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[0.1, 0.0], [0.2, 0.3]])]}
    fig = P.rollouts_figure(UMAZE, paths, {"after fine-tuning": 0.5})
    left, right = fig.axes
    assert len(right.get_lines()) == 6 and len(left.get_lines()) == 3
    assert right.get_title() == "after fine-tuning: 2 rollouts, success 0.50"
    assert left.get_title() == "at the switch: 1 rollout"


def test_goal_rate_figure_draws_windows_at_their_centres_and_the_offline_rate():
    rates = {"IQL": np.array([[0.0, 2.0, 4.0], [0.0, 4.0, 6.0]])}
    fig = P.goal_rate_figure(rates, window=100, offline_rate=1.5)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    np.testing.assert_allclose(lines["IQL (mean of 2)"].get_xydata(), [[50, 0], [150, 3], [250, 5]])
    np.testing.assert_allclose(lines["offline data: 1.50"].get_ydata(), [1.5, 1.5])
    assert fig.axes[0].get_ylabel() == "goal reaches per 1,000 transitions"
