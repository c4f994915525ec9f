import numpy as np
import pytest

from iqlkit.theory import tabular as T
from toy_envs import flip_tau, maze_dataset, two_step_behavior, two_step_mdp, u_maze, v_s1_closed_form
from toy_envs.two_step import DOWN, S0, S1, S2, UP


@pytest.mark.parametrize("tau", [0.5, 0.6, 0.7, 0.9, 0.99])
def test_two_step_v_s1_closed_form(tau):
    mdp = two_step_mdp()
    _, V = T.expectile_value_iteration(mdp.P, mdp.R, two_step_behavior(0.5), mdp.gamma, tau)
    assert V[S1] == pytest.approx(10 * (2 * tau - 1))
    assert V[S1] == pytest.approx(v_s1_closed_form(tau, 0.5))
    assert V[S2] == pytest.approx(1.0)


def test_two_step_sarsa_picks_down_and_iql_picks_up():
    mdp = two_step_mdp()
    b = two_step_behavior(0.5)
    Q_sarsa, _ = T.expectile_value_iteration(mdp.P, mdp.R, b, mdp.gamma, 0.5)
    Q_iql, _ = T.expectile_value_iteration(mdp.P, mdp.R, b, mdp.gamma, 0.7)
    assert Q_sarsa[S0].argmax() == DOWN and Q_iql[S0].argmax() == UP


@pytest.mark.parametrize("p_up", [0.1, 0.3, 0.5])
def test_flip_tau_is_where_greedy_choice_changes(p_up):
    mdp = two_step_mdp()
    b = two_step_behavior(p_up)
    t = flip_tau(p_up)
    assert v_s1_closed_form(t, p_up) == pytest.approx(1.0)
    for tau, action in ((t - 0.01, DOWN), (t + 0.01, UP)):
        Q, V = T.expectile_value_iteration(mdp.P, mdp.R, b, mdp.gamma, tau)
        assert Q[S0].argmax() == action
        assert V[S1] == pytest.approx(v_s1_closed_form(tau, p_up))
    assert flip_tau(0.1) > flip_tau(0.5) == pytest.approx(0.55)


def test_two_step_sampled_data_reaches_the_same_values():
    mdp = two_step_mdp()
    data = mdp.dataset([two_step_behavior(0.5)] * 4000, seed=0)
    P, R, b = T.empirical_mdp(data, 4, 2)
    _, V = T.expectile_value_iteration(P, R, b, mdp.gamma, 0.8)
    assert V[S1] == pytest.approx(10 * (2 * 0.8 - 1), abs=0.3)
    with pytest.raises(ValueError, match="p_up"):
        two_step_behavior(1.0)


def test_u_maze_dynamics_and_dataset():
    maze = u_maze()
    mdp = maze.mdp
    assert mdp.gamma == 0.9 and maze.cells.shape == (mdp.n_states, 2)
    # commanded move happens with 0.75 + 0.25/4; moving 'up' from the start bumps the wall and stays
    assert mdp.P[mdp.start, 1].max() == pytest.approx(0.75 + 0.0625)
    assert mdp.P[mdp.start, 0, mdp.start] == pytest.approx(0.75 + 0.25 * 2 / 4)
    data = maze_dataset(maze, n_random=99, n_optimal=1, seed=0)
    episodes = np.flatnonzero(data.dones)
    assert data.rewards[data.dones].min() == 10.0 and set(np.unique(data.rewards)) <= {0.0, 10.0}
    assert data.states[0] == mdp.start and np.sum(data.states == mdp.start) >= 100
    assert np.all(data.next_states[episodes] == maze.goal)


def test_u_maze_iql_values_and_policy_beat_sarsa_like_fig_2():
    maze = u_maze()
    mdp = maze.mdp
    data = maze_dataset(maze, seed=0)
    P, R, b = T.empirical_mdp(data, mdp.n_states, mdp.n_actions)
    optimal = T.value_iteration(mdp.P, mdp.R, mdp.gamma).max(1)[mdp.start]
    (Q_sarsa, V_sarsa), (Q_iql, V_iql) = (T.expectile_value_iteration(P, R, b, mdp.gamma, t) for t in (0.5, 0.95))
    # one-step values collapse far from the goal; IQL's stay within reach of the optimum
    assert V_sarsa[mdp.start] < 0.01 * optimal and V_iql[mdp.start] > 0.5 * optimal
    # a little estimation noise (sigma = 0.01) ruins the one-step greedy policy but not IQL's
    noisy = {name: T.noisy_greedy_values(mdp.P, mdp.R, mdp.gamma, Q, b > 0, 0.01)[:, mdp.start].mean()
             for name, Q in (("sarsa", Q_sarsa), ("iql", Q_iql))}
    assert noisy["iql"] > 0.9 * optimal and noisy["sarsa"] < 0.5 * optimal
