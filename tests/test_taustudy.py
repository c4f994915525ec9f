from dataclasses import replace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from iqlkit.engine.iql import IQLConfig
from iqlkit.experiments.sweep import ablation, config_id
from iqlkit.experiments.taustudy import tabular_tau_study
from iqlkit.plots.sweep import ablation_panels, curve, diagnostics, tabular_study, tau_and_double_q
from toy_envs import maze_dataset, u_maze

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def study():
    maze = u_maze()
    return tabular_tau_study(maze.mdp, maze_dataset(maze, seed=0), (0.5, 0.7, 0.9, 0.99), steps=6000, lr=0.1)


def test_exact_values_climb_to_the_support_optimum_as_tau_grows(study):
    gaps = [r["gap"] for r in study]
    above = [r["v_above"] for r in study]
    assert all(a > b for a, b in zip(gaps, gaps[1:])) and 0 <= gaps[-1] < 0.15 * gaps[0]  # Lemma 2, Theorem 3
    assert above[0] == pytest.approx(0, abs=1e-9) and all(a < b for a, b in zip(above, above[1:]))


def test_sampled_tabular_iql_converges_to_the_exact_fixed_point_for_every_tau(study):
    for row in study:
        assert row["err"] < 0.02, row
        assert row["converge"] < 6000
        assert 0 <= row["pos_frac"] <= 1 and 0 < row["ess"] <= 1
    assert study[-1]["err"] > 2 * study[0]["err"]  # tau 0.99 rests on few samples: a noisier fixed point


def synthetic_rows(base, scores):
    """Rows shaped like sweep results: two log points per seed, the final one with a success rate."""
    rows = []
    for config, per_seed in scores.items():
        for seed, score in enumerate(per_seed):
            rows.append({"config": config_id(config), "seed": seed, "steps": 20, "step": 10, "q_mean": 1.0 + seed,
                         "v_probe": 0.5, "pos_frac": 0.3, "success_rate": float("nan")})
            rows.append({"config": config_id(config), "seed": seed, "steps": 20, "step": 20, "q_mean": 2.0 + seed,
                         "v_probe": 0.5 + config.tau, "pos_frac": 0.1, "success_rate": score})
    return rows


def test_sweep_figures_draw_means_over_seeds():
    base = IQLConfig(max_steps=20)
    entries = ablation(base, {"tau": (0.7, 0.9), "beta": (3.0, 10.0)})
    scores = {c: (0.2, 0.4) for _, _, c in entries}
    scores[replace(base, tau=0.9, clipped_double_q=False)] = (0.0, 0.0)
    rows = synthetic_rows(base, scores)
    steps, mean, std = curve(rows, base, "q_mean")
    np.testing.assert_allclose(mean, [1.5, 2.5])
    np.testing.assert_allclose(std, [0.5, 0.5])
    fig = ablation_panels(rows, entries, base)
    bars = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(bars, [30.0, 30.0])
    assert [ax.get_xlabel() for ax in fig.axes] == ["Expectile (tau)", "Temperature (beta)"]
    fig = tau_and_double_q(rows, base, (0.7, 0.9))
    np.testing.assert_allclose([p.get_height() for p in fig.axes[1].patches], [30.0, 0.0])
    fig = diagnostics(rows, {"0.7": replace(base, tau=0.7), "0.9": replace(base, tau=0.9)},
                      reference=replace(base, tau=0.7), keys=("pos_frac", "v_above"))
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), [0.0, 0.2])  # V_0.9 - V_0.7 at the two steps
    fig = tabular_study([{"tau": t, "gap": 1 - t, "v_above": t, "pos_frac": 0.3, "ess": 0.5, "ret": 1.0,
                          "ret_sampled": 0.9} for t in (0.5, 0.9)])
    assert len(fig.axes) == 3
    plt.close("all")
