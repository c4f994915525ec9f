import numpy as np
import pytest
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

from iqlkit.plots import two_step as F
from iqlkit.theory.tabular import expectile_value_iteration, sampled_iql
from toy_envs import flip_tau, two_step_behavior, two_step_mdp, v_s1_closed_form
from toy_envs.two_step import S0, S1, S2


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _bar_heights(ax) -> list[float]:
    return [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]


def test_mdp_diagram_draws_three_states_four_outcomes_and_the_rewards():
    fig = F.mdp_diagram(two_step_mdp().R)
    ax = fig.axes[0]
    assert sum(isinstance(p, Circle) for p in ax.patches) == 3
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 4
    texts = _texts(fig)
    assert {"s0", "s1", "s2"} <= set(texts)
    assert "up, r = +10" in texts and "down, r = -10" in texts
    assert texts.count("up, r = +1") == 1 and texts.count("down, r = +1") == 1
    assert "up, r = 0" in texts and "down, r = 0" in texts


def test_q_s0_figure_bars_match_values_and_name_the_greedy_action():
    q = {"SARSA": np.array([0.0, 0.99]), "IQL": np.array([3.96, 0.99])}
    fig = F.q_s0_figure(q)
    ax = fig.axes[0]
    assert sorted(_bar_heights(ax)) == pytest.approx(sorted([0.0, 0.99, 3.96, 0.99]))
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["SARSA\ngreedy: down", "IQL\ngreedy: up"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Q(s0, up)", "Q(s0, down)"]


def test_v_s1_check_figure_plots_the_closed_form_and_the_computed_points():
    taus = np.array([0.5, 0.7, 0.9])
    fig = F.v_s1_check_figure(taus, np.array([0.0, 4.0, 8.0]))
    line, points = fig.axes[0].lines
    x, y = line.get_data()
    assert np.interp(0.75, x, y) == pytest.approx(5.0, abs=1e-6)  # 10 (2 tau - 1)
    assert np.allclose(points.get_ydata(), [0.0, 4.0, 8.0]) and points.get_linestyle() == "None"
    assert "10 (2 tau - 1)" in line.get_label()


def test_data_mix_figure_marks_each_flip_tau_on_the_v_s2_line():
    taus = np.linspace(0.1, 0.9, 5)
    mixes = {p: np.array([v_s1_closed_form(t, p) for t in taus]) for p in (0.5, 0.3, 0.1)}
    fig = F.data_mix_figure(taus, mixes, 1.0)
    ax = fig.axes[0]
    curves = [ln for ln in ax.lines if ln.get_label().startswith("V(s1)")]
    assert len(curves) == 3 and np.allclose(curves[2].get_ydata(), mixes[0.1])
    markers = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert [ln.get_xdata()[0] for ln in markers] == pytest.approx([flip_tau(p) for p in (0.5, 0.3, 0.1)])
    assert all(ln.get_ydata()[0] == 1.0 for ln in markers)
    assert "tau* = 0.917" in curves[2].get_label()


def test_flip_tau_figure_shows_the_formula_and_the_grid_flips():
    p = np.array([0.1, 0.5])
    fig = F.flip_tau_figure(p, np.array([0.918, 0.55]), 0.002)
    curve, points = fig.axes[0].lines
    x, y = curve.get_data()
    assert np.allclose(y, [flip_tau(v) for v in x])
    assert np.allclose(points.get_xdata(), p) and np.allclose(points.get_ydata(), [0.918, 0.55])
    assert len(fig.axes[0].collections) == 2  # the two shaded regions


def test_sampled_v_s1_figure_draws_one_line_per_dataset_and_their_gap():
    taus = np.array([0.3, 0.6, 0.9])
    exact = np.array([v_s1_closed_form(t, 0.3) for t in taus])
    sampled = np.stack([exact + 0.2, exact - 0.1])
    fig = F.sampled_v_s1_figure(taus, 0.3, 1000, sampled)
    values, gaps = fig.axes
    for ax in (values, gaps):
        assert sum(ln.get_color() == "tab:blue" for ln in ax.lines) == 2
        assert len(ax.collections) == 1  # the sampling band
    blue = [ln for ln in gaps.lines if ln.get_color() == "tab:blue"]
    assert np.allclose(blue[0].get_ydata(), 0.2) and np.allclose(blue[1].get_ydata(), -0.1)
    band = values.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() < exact.min() and band[:, 1].max() > exact.max()
    assert "2 sampled datasets of 1000 episodes" in fig._suptitle.get_text()


def test_sampled_iql_figure_draws_histories_and_fixed_points():
    mdp = two_step_mdp()
    data = mdp.dataset([two_step_behavior(0.5)] * 50, seed=0)
    run = sampled_iql(data, 4, 2, mdp.gamma, 0.7, steps=200, log_every=50)
    v_fixed = np.array([2.0, 4.0, 1.0, 0.0])
    fig = F.sampled_iql_figure(run, v_fixed)
    ax = fig.axes[0]
    histories = [ln for ln in ax.lines if ln.get_label().startswith("sampled IQL")]
    assert len(histories) == 3 and np.allclose(histories[1].get_ydata(), run.V_history[:, S1])
    fixed = [ln.get_ydata()[0] for ln in ax.lines if ln.get_label().startswith("fixed point")]
    assert fixed == [2.0, 4.0, 1.0]


@pytest.mark.parametrize("tau, p_up, greedy", [(0.5, 0.5, "DOWN"), (0.7, 0.5, "UP"), (0.9, 0.1, "DOWN"),
                                               (0.95, 0.1, "UP")])
def test_two_step_explorer_shows_q_s0_and_names_the_greedy_action(tau, p_up, greedy):
    fig = F.two_step_explorer(tau, p_up)
    mdp = two_step_mdp()
    Q, V = expectile_value_iteration(mdp.P, mdp.R, two_step_behavior(p_up), mdp.gamma, tau)
    bars, curve = fig.axes
    assert _bar_heights(bars) == pytest.approx(list(Q[S0]))
    assert fig._suptitle.get_text().endswith(f"greedy first action is {greedy}")
    point = [ln for ln in curve.lines if ln.get_label().startswith("computed")][0]
    assert point.get_xdata()[0] == tau and point.get_ydata()[0] == pytest.approx(v_s1_closed_form(tau, p_up))
    assert any(ln.get_label() == f"V(s2) = {V[S2]:g}" for ln in curve.lines)
    assert any(ln.get_label() == f"flip tau* = {flip_tau(p_up):.3f}" for ln in curve.lines)
