import numpy as np
import pytest
import torch

from iqlkit.theory.expectile import expectile, expectile_loss, expectile_rows, normal_expectile


def first_order_condition(x, tau, w, m):
    return np.sum(w * np.abs(tau - (x < m)) * (x - m))


def test_loss_is_asymmetric_l2_for_numpy_and_torch():
    u = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    expected = np.array([0.3 * 4, 0.3 * 0.25, 0.0, 0.7 * 0.25, 0.7 * 4])
    np.testing.assert_allclose(expectile_loss(u, 0.7), expected)
    torch.testing.assert_close(expectile_loss(torch.tensor(u), 0.7), torch.tensor(expected))


def test_loss_gradient_matches_closed_form():
    u = torch.tensor([-1.5, 0.7], requires_grad=True)
    expectile_loss(u, 0.9).sum().backward()
    torch.testing.assert_close(u.grad, torch.tensor([2 * 0.1 * -1.5, 2 * 0.9 * 0.7]))


@pytest.mark.parametrize("tau", [0.0, 1.0, -0.1, 1.5])
def test_tau_outside_open_interval_is_rejected(tau):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        expectile_loss(np.ones(3), tau)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        expectile([1.0, 2.0], tau)


def test_half_is_weighted_mean_and_root_satisfies_first_order_condition():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=500), rng.uniform(0, 2, size=500)
    assert expectile(x, 0.5, w) == pytest.approx(np.average(x, weights=w))
    for tau in (0.05, 0.3, 0.8, 0.99):
        m = expectile(x, tau, w)
        assert abs(first_order_condition(x, tau, w, m)) < 1e-9 * len(x)


def test_exact_expectile_beats_any_other_point_on_the_loss():
    x = np.array([0.0, 1.0, 5.0, 5.0, 9.0])
    m = expectile(x, 0.8)
    loss = lambda c: expectile_loss(x - c, 0.8).sum()
    assert all(loss(m) <= loss(m + d) for d in (-1e-3, 1e-3, -0.5, 0.5))


def test_monotone_in_tau_and_tends_to_support_max_lemma_1():
    x = np.random.default_rng(1).uniform(-3, 4, size=200)
    taus = np.linspace(0.01, 0.999, 40)
    m = np.array([expectile(x, t) for t in taus])
    assert np.all(np.diff(m) > 0)
    assert expectile(x, 1 - 1e-7) == pytest.approx(x.max(), abs=1e-3)
    assert expectile(x, 1e-7) == pytest.approx(x.min(), abs=1e-3)


def test_zero_weights_are_out_of_support():
    x, w = np.array([1.0, 100.0, 3.0]), np.array([1.0, 0.0, 1.0])
    assert expectile(x, 0.9, w) == pytest.approx(expectile([1.0, 3.0], 0.9))


def test_rows_match_one_dimensional_version():
    rng = np.random.default_rng(2)
    X, W = rng.normal(size=(6, 5)), rng.uniform(size=(6, 5)) * (rng.uniform(size=(6, 5)) > 0.3)
    W[:, 0] += 0.1
    np.testing.assert_allclose(expectile_rows(X, 0.7, W), [expectile(x, 0.7, w) for x, w in zip(X, W)])


def test_ties_are_handled():
    assert expectile([2.0, 2.0, 2.0], 0.9) == pytest.approx(2.0)
    assert expectile([0.0, 0.0, 1.0], 0.5) == pytest.approx(1 / 3)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="one entry per sample"):
        expectile([1.0, 2.0], 0.5, weights=[1.0])
    with pytest.raises(ValueError, match="positive total weight"):
        expectile([1.0, 2.0], 0.5, weights=[0.0, 0.0])
    with pytest.raises(ValueError, match="empty"):
        expectile([], 0.5)


def test_normal_expectile_is_symmetric_and_matches_sampling():
    assert normal_expectile(0.5) == pytest.approx(0.0, abs=1e-9)
    assert normal_expectile(0.2) == pytest.approx(-normal_expectile(0.8), abs=1e-9)
    sample = np.random.default_rng(3).normal(size=400_000)
    assert normal_expectile(0.9) == pytest.approx(expectile(sample, 0.9), abs=0.01)
