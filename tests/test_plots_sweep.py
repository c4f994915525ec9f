from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_hex

from iqlkit.engine.iql import IQLConfig
from iqlkit.experiments.sweep import config_id
from iqlkit.plots.sweep import diagnostics, tabular_study, tau_and_double_q

BASE = IQLConfig(max_steps=20)


def rows_for(configs: list[IQLConfig]) -> list[dict]:
    """Sweep-shaped rows: two log points per config and seed; Q and V fall over training."""
    return [{"config": config_id(c), "seed": seed, "steps": 20, "step": step, "q_mean": -step - seed,
             "v_mean": -step - seed - 0.5, "v_probe": -step * (1 - c.tau), "pos_frac": 0.3, "ess": 0.1,
             "success_rate": 0.5} for c in configs for seed in (0, 1) for step in (10, 20)]


def test_double_q_panel_shows_q_and_v_of_both_settings():
    on, off = replace(BASE, tau=0.9), replace(BASE, tau=0.9, clipped_double_q=False)
    fig = tau_and_double_q(rows_for([on, off, replace(BASE, tau=0.7)]), BASE, (0.7, 0.9))
    ax_q = fig.axes[2]
    assert [t.get_text() for t in ax_q.get_legend().get_texts()] == [
        "min(Q1, Q2): mean Q_target", "min(Q1, Q2): mean V", "Q1 alone: mean Q_target", "Q1 alone: mean V"]
    np.testing.assert_allclose(ax_q.lines[1].get_ydata(), [-11.0, -21.0])  # V of clipped double Q, mean of 2 seeds


def test_diagnostics_tell_variants_apart_and_share_one_legend():
    variants = {f"v{k}": replace(BASE, tau=0.99, beta=float(k + 1)) for k in range(6)}
    fig = diagnostics(rows_for(list(variants.values())), variants, keys=("pos_frac", "ess", "v_probe", "success_rate"))
    colors = [to_hex(line.get_color()) for line in fig.axes[0].lines]
    assert len(set(colors)) == 6  # distinct colours, not a sequential ramp
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == list(variants)
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert fig.axes[2].get_title() == "mean V(s) on the probe states"
    assert np.array(fig.axes[0].get_subplotspec().get_gridspec().get_geometry()).tolist() == [2, 2]


def test_diagnostics_of_an_ordered_sweep_use_a_sequential_palette():
    taus = {f"tau {t:g}": replace(BASE, tau=t) for t in (0.5, 0.7, 0.9, 0.99)}
    fig = diagnostics(rows_for(list(taus.values())), taus, keys=("v_probe",), ordered=True)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_color(), plt.cm.viridis(0.0))


def test_tabular_return_axis_starts_at_zero():
    fig = tabular_study([{"tau": t, "gap": 1 - t, "v_above": t, "pos_frac": 0.3, "ess": 0.5, "ret": 1.27 - t / 50,
                          "ret_sampled": 1.25} for t in (0.5, 0.9, 0.99)])
    assert fig.axes[2].get_ylim()[0] == 0  # a 2 % dip looks like 2 %
