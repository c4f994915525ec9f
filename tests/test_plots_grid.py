import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm
from matplotlib.image import AxesImage
from matplotlib.quiver import Quiver

from iqlkit.plots import grid as G
from iqlkit.theory.tabular import empirical_mdp, expectile_value_iteration, sampled_iql, value_iteration
from toy_envs import grid_maze, maze_dataset, u_maze
from toy_envs.grid_maze import MOVES


@pytest.fixture(scope="module")
def maze():
    return u_maze()


@pytest.fixture(scope="module")
def data_mdp(maze):
    data = maze_dataset(maze, n_random=20, seed=0)
    return data, empirical_mdp(data, maze.mdp.n_states, maze.mdp.n_actions)


def images(ax):
    return [c for c in ax.get_children() if isinstance(c, AxesImage)]


def quivers(ax):
    return [c for c in ax.get_children() if isinstance(c, Quiver)]


def test_shared_norm_spans_all_panels_and_log_ignores_non_positive():
    norm = G.shared_norm([np.array([0.0, 2.0, np.nan]), np.array([5.0, 1.0])])
    assert (norm.vmin, norm.vmax) == (0.0, 5.0)
    log = G.shared_norm([np.array([0.0, 1e-3]), np.array([10.0])], log=True)
    assert isinstance(log, LogNorm) and (log.vmin, log.vmax) == (1e-3, 10.0)
    assert G.shared_norm([np.array([1.0])], vlim=(0, 3)).vmax == 3
    with pytest.raises(ValueError):
        G.shared_norm([np.array([0.0, -1.0])], log=True)


def test_maze_panels_draw_values_walls_markers_arrows_and_one_colorbar(maze):
    V = value_iteration(maze.mdp.P, maze.mdp.R, maze.mdp.gamma).max(1)
    policy = np.eye(4)[np.arange(maze.mdp.n_states) % 4]
    fig = G.maze_panels(maze, [None, V, 2 * V], ["layout", "V", "2V"], [None, policy, None], label="value")
    layout_ax, v_ax, v2_ax, cbar_ax = fig.axes
    assert [ax.get_title() for ax in fig.axes[:3]] == ["layout", "V", "2V"]
    assert cbar_ax.get_ylabel() == "value"
    assert not images(layout_ax)
    (img,), (img2,) = images(v_ax), images(v2_ax)
    assert img.norm.vmin == img2.norm.vmin
    assert img.norm.vmax == img2.norm.vmax == pytest.approx(2 * V[~maze.mdp.terminal].max())
    shown = np.asarray(img.get_array().filled(np.nan))
    i, j = maze.cells[maze.mdp.start]
    assert shown[i, j] == V[maze.mdp.start]
    assert np.isnan(shown[tuple(maze.cells[maze.goal])])  # the absorbing goal is not coloured
    n_walls = "".join(maze.layout).count("#")
    for ax in fig.axes[:3]:
        labels = [p.get_label() for p in ax.patches]
        assert labels.count("wall") == n_walls and "S" in labels and "G" in labels
    (arrows,) = quivers(v_ax)
    assert not quivers(layout_ax) and not quivers(v2_ax)
    live = ~maze.mdp.terminal
    np.testing.assert_allclose(arrows.U, np.array(MOVES)[np.arange(maze.mdp.n_states) % 4][live, 1])
    np.testing.assert_allclose(arrows.V, np.array(MOVES)[np.arange(maze.mdp.n_states) % 4][live, 0])


def test_maze_panels_log_scale_and_mismatched_inputs(maze):
    fig = G.maze_panels(maze, [np.arange(maze.mdp.n_states, dtype=float)], ["counts"], log=True)
    assert isinstance(images(fig.axes[0])[0].norm, LogNorm)
    with pytest.raises(ValueError):
        G.maze_panels(maze, [np.zeros(maze.mdp.n_states)], ["a", "b"])


def test_draw_maze_works_for_other_layouts():
    maze = grid_maze(("S.#", "..G"))
    fig, ax = plt.subplots()
    img = G.draw_maze(ax, maze, np.array([1.0, 2.0, 3.0, 4.0, 0.0]))
    grid = img.get_array().filled(np.nan)
    np.testing.assert_allclose(grid, [[1, 2, np.nan], [3, 4, np.nan]])
    assert [p.get_label() for p in ax.patches].count("wall") == 1


def test_tau_maze_figure_shows_the_values_and_true_return_for_that_tau(maze, data_mdp):
    _, (P, R, b) = data_mdp
    fig = G.tau_maze_figure(maze, P, R, b, 0.9, vlim=(0.0, 10.0))
    ax = fig.axes[0]
    _, V = expectile_value_iteration(P, R, b, maze.mdp.gamma, 0.9)
    assert "tau = 0.9" in ax.get_title() and f"{V[maze.mdp.start]:.3g}" in ax.get_title()
    assert "true return" in ax.get_title()
    img = images(ax)[0]
    assert (img.norm.vmin, img.norm.vmax) == (0.0, 10.0)
    i, j = maze.cells[3]
    assert img.get_array()[i, j] == pytest.approx(V[3])
    assert len(quivers(ax)[0].U) == maze.mdp.n_states - 1


def test_return_vs_noise_figure_plots_means_and_the_optimum():
    sigmas = np.logspace(-3, 0, 4)
    returns = {"SARSA": np.array([[1.0, 1.2], [0.5, 0.7], [0.1, 0.1], [0.0, 0.0]]), "IQL": np.ones((4, 2))}
    fig = G.return_vs_noise_figure(sigmas, returns, optimum=1.3)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3 and ax.get_xscale() == "log"
    np.testing.assert_allclose(lines[0].get_ydata(), [1.1, 0.6, 0.1, 0.0])
    np.testing.assert_allclose(lines[2].get_ydata(), [1.3, 1.3])
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["SARSA", "IQL"]
    with pytest.raises(ValueError):
        G.return_vs_noise_figure(sigmas[:2], returns, optimum=1.3)


def test_value_vs_tau_figure_plots_start_and_mean_with_theorem_3_line():
    taus = np.array([0.5, 0.9, 0.99])
    V = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    fig = G.value_vs_tau_figure(taus, V, start=0, V_support=np.array([2.5, 3.5]), V_optimal=np.array([2.2, 3.3]),
                                states=np.array([0, 1]))
    left, right = fig.axes
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(right.get_lines()[0].get_ydata(), [0.5, 1.5, 2.5])
    np.testing.assert_allclose(left.get_lines()[1].get_ydata(), [2.5, 2.5])
    np.testing.assert_allclose(right.get_lines()[2].get_ydata(), [2.75, 2.75])
    assert left.get_xscale() == "logit" and "Lemma 2" in left.get_title()


def test_sampled_convergence_figure_plots_max_and_mean_errors(maze, data_mdp):
    data, (P, R, b) = data_mdp
    S, A, gamma = maze.mdp.n_states, maze.mdp.n_actions, maze.mdp.gamma
    run = sampled_iql(data, S, A, gamma, 0.9, steps=300, log_every=50)
    exact = expectile_value_iteration(P, R, b, gamma, 0.9)[1]
    states = np.array([0, 1, 2])
    fig = G.sampled_convergence_figure({"tau = 0.9": run}, {"tau = 0.9": exact}, states)
    ax = fig.axes[0]
    max_line, mean_line = ax.get_lines()
    err = np.abs(run.V_history[:, states] - exact[states])
    np.testing.assert_allclose(max_line.get_xdata(), run.steps)
    np.testing.assert_allclose(max_line.get_ydata(), err.max(1))
    np.testing.assert_allclose(mean_line.get_ydata(), err.mean(1))
    assert ax.get_yscale() == "log"
