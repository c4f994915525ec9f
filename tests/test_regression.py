import numpy as np
import pytest
import torch

from iqlkit.experiments.regression import (BoundedToy, beta_expectiles, expectile_regression_loss,
                                            fit_conditional_expectiles, head_errors, loglog_slope, sample_expectiles,
                                            uniform_expectile)
from iqlkit.theory.expectile import expectile, expectile_loss

TAUS = (0.1, 0.5, 0.9, 0.99)
GRID = np.linspace(-0.95, 0.95, 101)


@pytest.fixture(scope="module")
def toy_fit():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net: one thread is fastest, and robust when the test workers share cores
    toy = BoundedToy()
    x, y = toy.sample(1000, seed=0)
    yield toy, fit_conditional_expectiles(x, y, TAUS, hidden=(64, 64), steps=800, lr=3e-3, seed=0)
    torch.set_num_threads(threads)


def test_beta_expectiles_match_closed_forms():
    taus = (0.1, 0.5, 0.9, 0.99, 0.999)
    np.testing.assert_allclose(beta_expectiles(taus, 1, 1), [uniform_expectile(t) for t in taus], atol=1e-6)
    assert beta_expectiles([0.5], 2, 5)[0] == pytest.approx(2 / 7, abs=1e-6)  # tau = 0.5 is the mean a / (a + b)
    assert uniform_expectile(0.9) == pytest.approx(0.75)


def test_sample_expectiles_are_exact_and_increase_in_tau():
    x = np.random.default_rng(1).normal(size=300)
    taus = np.linspace(0.05, 0.95, 10)
    m = sample_expectiles(x, taus)
    assert m[0] == expectile(x, 0.05) and np.all(np.diff(m) > 0)


def test_loglog_slope_recovers_a_power_law():
    e = np.logspace(-6, -1, 11)
    assert loglog_slope(e, 3.0 * e**0.25) == pytest.approx(0.25)


def test_lemma1_rates_depend_on_the_density_at_the_supremum():
    taus = 1 - np.logspace(-6, -4, 5)
    sample = np.random.default_rng(0).uniform(size=20)
    assert loglog_slope(1 - taus, sample.max() - sample_expectiles(sample, taus)) == pytest.approx(1.0, abs=0.02)
    assert loglog_slope(1 - taus, 1 - beta_expectiles(taus, 1, 1)) == pytest.approx(0.5, abs=0.02)
    assert loglog_slope(1 - taus, 1 - beta_expectiles(taus, 1, 3)) == pytest.approx(0.25, abs=0.02)
    assert 1 - beta_expectiles([0.99], 1, 3)[0] > 0.3  # a thin top: tau = 0.99 is still far from the supremum


def test_toy_samples_lie_in_the_known_support_and_expectiles_are_exact():
    toy = BoundedToy(a=2.0, b=3.0)
    x, y = toy.sample(5000, seed=3)
    assert np.all(x >= -1) and np.all(x <= 1)
    assert np.all(y >= toy.low(x)) and np.all(y <= toy.supremum(x))
    m = toy.expectiles(GRID, [0.5, 0.9, 0.999])
    np.testing.assert_allclose(m[:, 0], toy.mean(GRID), atol=1e-6)
    assert np.all(np.diff(m, axis=1) > 0) and np.all(m[:, -1] < toy.supremum(GRID))
    u = (y - toy.low(x)) / toy.width(x)  # the Beta(2, 3) draws
    assert expectile(u, 0.9) == pytest.approx(beta_expectiles([0.9], 2, 3)[0], abs=0.01)


def test_regression_loss_is_eq2_summed_over_heads():
    pred, y = torch.tensor([[0.0, 1.0], [2.0, -1.0]]), torch.tensor([1.0, 0.0])
    residuals = torch.tensor([[1.0, -2.0], [0.0, 1.0]])  # y - pred, one row per head
    expected = expectile_loss(residuals[0], 0.3).mean() + expectile_loss(residuals[1], 0.9).mean()
    torch.testing.assert_close(expectile_regression_loss(pred, y, (0.3, 0.9)), expected)


def test_fit_rejects_tau_outside_open_interval():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fit_conditional_expectiles(np.zeros(4), np.zeros(4), (0.5, 1.0), steps=1)


def test_fit_loss_decreases_and_heads_have_one_column_per_tau(toy_fit):
    toy, fit = toy_fit
    assert fit(GRID).shape == (len(GRID), len(TAUS))
    assert fit.losses[-1] < 0.5 * fit.losses[0]
    assert fit.nearest_head(0.93) == 2 and fit.nearest_head(0.999) == 3


def test_half_head_tracks_the_conditional_mean(toy_fit):
    toy, fit = toy_fit
    assert np.abs(fit(GRID)[:, 1] - toy.mean(GRID)).mean() < 0.04


def test_heads_are_ordered_in_tau_and_match_exact_expectiles(toy_fit):
    toy, fit = toy_fit
    assert np.all(np.diff(fit(GRID), axis=1) > 0)
    assert np.all(head_errors(fit, toy, GRID) < 0.04)


def test_top_head_approaches_the_supremum(toy_fit):
    toy, fit = toy_fit
    pred, sup = fit(GRID), toy.supremum(GRID)
    assert np.abs(pred[:, 3] - sup).mean() < 0.1  # exact gap: width(x) (1 - m_0.99(U)) ~ 0.064 on average
    assert np.abs(pred[:, 3] - sup).mean() < 0.5 * np.abs(pred[:, 2] - sup).mean()
