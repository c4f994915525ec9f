import numpy as np
import pytest

from iqlkit.theory import tabular as T
from iqlkit.theory.expectile import expectile


def random_mdp(seed, n_states=7, n_actions=3, sparse_support=True):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(n_states) * 0.3, size=(n_states, n_actions))
    R = rng.normal(size=(n_states, n_actions))
    behavior = rng.dirichlet(np.ones(n_actions), size=n_states)
    if sparse_support:  # drop one action from the support in half of the states
        drop = rng.integers(n_actions, size=n_states)
        behavior[np.arange(n_states)[::2], drop[::2]] = 0.0
        behavior /= behavior.sum(1, keepdims=True)
    return P, R, behavior


@pytest.mark.parametrize("seed", range(5))
def test_expectile_fixed_point_equations_hold(seed):
    P, R, b = random_mdp(seed)
    for tau in (0.3, 0.5, 0.8, 0.95):
        Q, V = T.expectile_value_iteration(P, R, b, 0.9, tau)
        np.testing.assert_allclose(Q, R + 0.9 * P @ V, atol=1e-8)
        np.testing.assert_allclose(V, [expectile(Q[s], tau, b[s]) for s in range(len(V))], atol=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_half_is_policy_evaluation_of_behaviour(seed):
    P, R, b = random_mdp(seed)
    Q, V = T.expectile_value_iteration(P, R, b, 0.9, 0.5)
    Q_pi, V_pi = T.policy_evaluation(P, R, b, 0.9)
    np.testing.assert_allclose(V, V_pi, atol=1e-8)
    np.testing.assert_allclose(Q, Q_pi, atol=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_monotone_in_tau_and_bounded_by_support_optimum_lemma_2_theorem_3(seed):
    P, R, b = random_mdp(seed)
    Q_star = T.support_optimal_q(P, R, b, 0.9)
    V_star = np.where(b > 0, Q_star, -np.inf).max(1)
    values = np.array([T.expectile_value_iteration(P, R, b, 0.9, tau)[1] for tau in (0.1, 0.5, 0.7, 0.9, 0.99)])
    assert np.all(np.diff(values, axis=0) >= -1e-9)
    assert np.all(values <= V_star + 1e-9)
    V_near_one = T.expectile_value_iteration(P, R, b, 0.9, 1 - 1e-6)[1]
    np.testing.assert_allclose(V_near_one, V_star, atol=1e-3)


def test_support_optimum_equals_value_iteration_with_full_support():
    P, R, b = random_mdp(0, sparse_support=False)
    np.testing.assert_allclose(T.support_optimal_q(P, R, b, 0.9), T.value_iteration(P, R, 0.9), atol=1e-8)


def test_value_iteration_satisfies_bellman_optimality():
    P, R, _ = random_mdp(1)
    Q = T.value_iteration(P, R, 0.95)
    np.testing.assert_allclose(Q, R + 0.95 * P @ Q.max(1), atol=1e-8)
    _, V_greedy = T.policy_evaluation(P, R, T.greedy_policy(Q), 0.95)
    np.testing.assert_allclose(V_greedy, Q.max(1), atol=1e-8)


def test_greedy_respects_support():
    Q = np.array([[1.0, 5.0], [2.0, 0.0]])
    support = np.array([[True, False], [True, True]])
    np.testing.assert_array_equal(T.greedy_policy(Q, support), [[1, 0], [1, 0]])
    np.testing.assert_array_equal(T.greedy_policy(Q), [[0, 1], [1, 0]])


def test_awr_policy_interpolates_between_behaviour_and_greedy():
    Q, V = np.array([[1.0, 0.0, 3.0]]), np.array([1.0])
    b = np.array([[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(T.awr_policy(Q, V, b, beta=0.0), b)
    pi = T.awr_policy(Q, V, b, beta=3.0)
    assert pi[0, 2] == 0.0 and pi[0, 0] == pytest.approx(np.e**0 / (1 + np.exp(-3.0)))
    clipped = T.awr_policy(np.array([[10.0, 0.0]]), np.array([0.0]), np.array([[0.5, 0.5]]), beta=1.0, clip=100.0)
    assert clipped[0, 0] == pytest.approx(100 / 101)


def test_empirical_mdp_recovers_counts():
    data = T.TabularData(states=np.array([0, 0, 0, 1]), actions=np.array([0, 0, 1, 1]),
                         rewards=np.array([1.0, 3.0, 0.0, 5.0]), next_states=np.array([1, 2, 1, 2]),
                         dones=np.array([False, True, False, True]))
    P, R, b = T.empirical_mdp(data, n_states=3, n_actions=2)
    np.testing.assert_allclose(P[0, 0], [0, 0.5, 0.5])
    np.testing.assert_allclose(R[0], [2.0, 0.0])
    np.testing.assert_allclose(b[0], [2 / 3, 1 / 3])
    np.testing.assert_allclose(b[1], [0, 1])
    np.testing.assert_allclose(P[2, :, 2], [1, 1])  # the terminal state is absorbing
    np.testing.assert_allclose(P[1, 0, 1], 1.0)  # unseen (s, a) loops in place


def test_sampled_iql_converges_to_exact_fixed_point_of_the_data():
    from toy_envs import maze_dataset, u_maze

    maze = u_maze()
    data = maze_dataset(maze, n_random=30, seed=1)
    n, m = maze.mdp.n_states, maze.mdp.n_actions
    P, R, b = T.empirical_mdp(data, n, m)
    _, V_exact = T.expectile_value_iteration(P, R, b, 0.9, 0.8)
    run = T.sampled_iql(data, n, m, gamma=0.9, tau=0.8, steps=6000, seed=0)
    visited = np.isin(np.arange(n), data.states)
    first = np.abs(run.V_history[1] - V_exact)[visited].max()
    last = np.abs(run.V - V_exact)[visited].max()
    assert last < 0.05 * np.abs(V_exact).max() and last < first / 5


@pytest.mark.parametrize("call", [
    lambda P, R, b: T.expectile_value_iteration(P, R, b, 0.9, 1.0),
    lambda P, R, b: T.expectile_value_iteration(P, R, b, 0.9, 0.0),
    lambda P, R, b: T.sampled_iql(T.TabularData(*[np.zeros(1, int)] * 5), 1, 1, 0.9, -0.2),
])
def test_tau_outside_open_interval_is_rejected(call):
    with pytest.raises(ValueError, match="tau must lie strictly between 0 and 1"):
        call(*random_mdp(0))


def test_bad_shapes_and_probabilities_say_what_is_wrong():
    P, R, b = random_mdp(0)
    with pytest.raises(ValueError, match=r"R must have shape \[S, A\]"):
        T.value_iteration(P, R[:, :2], 0.9)
    with pytest.raises(ValueError, match=r"P must have shape \[S, A, S\]"):
        T.value_iteration(P[:, :, :3], R, 0.9)
    with pytest.raises(ValueError, match="sum to 1"):
        T.value_iteration(P * 0.9, R, 0.9)
    with pytest.raises(ValueError, match="behavior.*sum to 1"):
        T.expectile_value_iteration(P, R, b * 2, 0.9, 0.7)
    with pytest.raises(ValueError, match="behavior must have shape"):
        T.expectile_value_iteration(P, R, b[:3], 0.9, 0.7)
    with pytest.raises(ValueError, match="gamma"):
        T.value_iteration(P, R, 1.5)
    with pytest.raises(ValueError, match="entries but states"):
        T.TabularData(np.zeros(2), np.zeros(1), np.zeros(2), np.zeros(2), np.zeros(2))


def test_action_gap_is_best_minus_second_best_in_support():
    Q = np.array([[3.0, 1.0, 2.5, 9.0], [1.0, 2.0, 3.0, 4.0], [5.0, 0.0, 0.0, 0.0]])
    support = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    np.testing.assert_allclose(T.action_gap(Q, support), [0.5, 1.0, np.nan])
