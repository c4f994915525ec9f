import numpy as np
import pytest
from matplotlib.image import AxesImage

from iqlkit.envs.data import Transitions
from iqlkit.envs.pointmaze import TASKS, bfs_distances, value_grid
from iqlkit.plots import pointmaze as P

UMAZE = TASKS["umaze"]


def transitions(paths: list[np.ndarray]) -> Transitions:
    """One episode per x-y path: observations [x, y, 0, 0, goal], next observations one point later."""
    def obs(xy):
        return np.concatenate([xy, np.zeros((len(xy), 2)), np.tile([-1.0, 1.0], (len(xy), 1))], 1)
    parts = [(obs(p[:-1]), obs(p[1:]), np.eye(len(p) - 1)[-1]) for p in paths]
    o, n, ends = (np.concatenate(x) for x in zip(*parts))
    return Transitions.from_arrays(o, np.zeros((len(o), 2)), np.zeros(len(o)), n, np.zeros(len(o)), ends)


def centre(cell):
    return UMAZE.cell_xy(cell)


def test_episode_paths_return_each_episode_with_its_last_next_position():
    a = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.1]])
    b = np.array([[1.0, 1.0], [1.0, 0.8]])
    c = np.array([[-1.0, -1.0], [-0.9, -1.0], [-0.8, -1.0], [-0.7, -1.0]])
    paths = P.episode_paths(transitions([a, b, c]), n=3)
    for got, want in zip(paths, [a, b, c]):
        np.testing.assert_allclose(got, want)
    assert len(P.episode_paths(transitions([a, b, c]), n=2, seed=1)) == 2
    assert len(P.episode_paths(transitions([a, b]), n=10)) == 2


def test_episode_spans_count_cell_moves_to_the_farthest_cell_visited():
    stay = np.array([centre((3, 1)), centre((3, 1)) + 0.1])
    one = np.array([centre((3, 1)), centre((3, 2))])
    out_and_back = np.array([centre((3, 1)), centre((3, 2)), centre((3, 3)), centre((3, 2))])  # farthest: 2 moves
    corner = np.array([centre((1, 3)), centre((2, 3)), centre((3, 3)), centre((3, 2))])  # 3 moves
    np.testing.assert_array_equal(P.episode_spans(transitions([stay, one, out_and_back, corner]), UMAZE), [0, 1, 2, 3])


def test_maze_hops_figure_shows_distances_paths_and_span_counts():
    paths = [np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([[1.0, 0.0], [1.0, -1.0], [0.5, -1.0]])]
    spans = np.array([0, 1, 1, 2, 2, 2])
    fig = P.maze_hops_figure(UMAZE, paths, spans)
    left, middle, right = fig.axes
    numbers = sorted(int(t.get_text()) for t in left.texts if t.get_text().isdigit())
    dist = bfs_distances(UMAZE.maze_map, UMAZE.goal)
    assert numbers == sorted(d for c, d in dist.items() if c not in (UMAZE.start, UMAZE.goal))
    assert "6 cell moves" in left.get_title()
    drawn = [line for line in middle.get_lines() if line.get_label() == "episode"]
    assert len(drawn) == 2
    np.testing.assert_allclose(drawn[1].get_xydata(), paths[1])
    assert [p.get_height() for p in right.patches][:3] == [1, 2, 3]
    assert right.get_lines()[0].get_xdata()[0] == 6  # the S -> G distance
    assert "longest: 2" in right.get_title()


def test_value_maps_share_one_colour_scale_and_leave_walls_out():
    grids = [value_grid(lambda obs: obs[:, 0], UMAZE, resolution=2),
             value_grid(lambda obs: 3 * obs[:, 1], UMAZE, resolution=2)]
    fig = P.value_maps(UMAZE, grids, ["x", "3 y"], label="value")
    first, second, bar = fig.axes
    assert [first.get_title(), second.get_title()] == ["x", "3 y"] and bar.get_ylabel() == "value"
    (img1,), (img2,) = ([c for c in ax.get_children() if isinstance(c, AxesImage)] for ax in (first, second))
    finite = np.concatenate([g[2][np.isfinite(g[2])] for g in grids])
    assert (img1.norm.vmin, img1.norm.vmax) == (img2.norm.vmin, img2.norm.vmax) == (finite.min(), finite.max())
    shown = img2.get_array()
    np.testing.assert_allclose(shown.filled(np.nan), grids[1][2])
    assert shown.mask.sum() == np.isnan(grids[1][2]).sum() > 0
    assert img1.get_extent() == pytest.approx([-2.5, 2.5, -2.5, 2.5])
    assert len([p for p in first.patches if p.get_gid() == "wall"]) == UMAZE.walls().sum()
    assert P.value_maps(UMAZE, grids[:1], ["x"], vlim=(-5, 5)).axes[0].get_images()[0].norm.vmax == 5
    with pytest.raises(ValueError):
        P.value_maps(UMAZE, grids, ["only one title"])


def test_distance_grid_and_value_distance_figure():
    dist = P.distance_grid(UMAZE)
    assert dist[UMAZE.goal] == 0 and dist[UMAZE.start] == 6 and np.isnan(dist[0, 0])
    V = -2.0 * dist
    fig = P.value_distance_figure(UMAZE, {"a": V, "b": V + 1})
    ax = fig.axes[0]
    means = [line for line in ax.get_lines() if line.get_label() in ("a", "b")]
    np.testing.assert_allclose(means[0].get_xdata(), np.arange(7))
    np.testing.assert_allclose(means[0].get_ydata(), -2.0 * np.arange(7))
    np.testing.assert_allclose(means[1].get_ydata(), 1 - 2.0 * np.arange(7))
    with pytest.raises(ValueError):
        P.value_distance_figure(UMAZE, {"wrong shape": np.zeros((3, 3))})


def test_success_bars_show_means_and_every_seed():
    table = {"iql": np.array([1.0, 0.9, 0.2]), "bc": np.array([0.0, 0.0, 0.3])}
    ax = P.success_bars(table, "title").axes[0]
    np.testing.assert_allclose([b.get_height() for b in ax.patches], [0.7, 0.1])
    dots = ax.get_lines()
    np.testing.assert_allclose(dots[0].get_ydata(), [1.0, 0.9, 0.2])
    np.testing.assert_allclose(dots[1].get_ydata(), [0.0, 0.0, 0.3])
    assert [t.get_text() for t in ax.texts] == ["0.70", "0.10"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["iql", "bc"] and ax.get_title() == "title"


def test_success_curves_draw_each_seed_and_the_mean():
    def rows(rates):
        return [{"step": s, "success_rate": r} for s, r in zip((10, 20, 30), rates)]
    curves = {"tau 0.7": [rows([0.0, 0.5, 1.0]), rows([0.2, 0.5, 0.6])], "tau 0.9": [rows([0.4, 0.0, 0.0])]}
    ax = P.success_curves(curves).axes[0]
    lines = ax.get_lines()
    assert len(lines) == 2 + 1 + 1 + 1
    np.testing.assert_allclose(lines[2].get_ydata(), [0.1, 0.5, 0.8])
    np.testing.assert_allclose(lines[2].get_xdata(), [10, 20, 30])
    np.testing.assert_allclose(lines[4].get_ydata(), [0.4, 0.0, 0.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["tau 0.7: mean of 2", "tau 0.9: mean of 1"]


def test_q_v_figure_plots_both_means_per_run_and_the_bounds():
    logs = {"on": [{"step": "10", "q_mean": "-1.5", "v_mean": "-1.0"},  # as read from log.csv: strings
                   {"step": "20", "q_mean": "-3", "v_mean": "-2.5"}],
            "off": [{"step": 10, "q_mean": 1.0, "v_mean": 2.0}, {"step": 20, "q_mean": 5.0, "v_mean": 9.0}]}
    q_ax, v_ax = P.q_v_figure(logs, bounds=(-100.0, 0.0)).axes
    np.testing.assert_allclose(q_ax.get_lines()[0].get_ydata(), [-1.5, -3.0])
    np.testing.assert_allclose(q_ax.get_lines()[1].get_ydata(), [1.0, 5.0])
    np.testing.assert_allclose(v_ax.get_lines()[1].get_ydata(), [2.0, 9.0])
    assert [line.get_ydata()[0] for line in q_ax.get_lines()[2:]] == [-100.0, 0.0]
    assert "Q_target" in q_ax.get_title() and "V(s)" in v_ax.get_title()
    assert len(P.q_v_figure(logs).axes[0].get_lines()) == 2
