"""Sweep figures: the ablation per hyperparameter, score vs tau with clipped double Q on/off (paper Fig. 3),
the tau diagnostics over training, and the exact tabular study."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iqlkit.engine.iql import IQLConfig
from iqlkit.experiments.sweep import AXIS_LABELS, config_id, final_scores


def _score_points(ax, x: float, scores: np.ndarray, color: str) -> None:
    """Mean +- std as a bar with error bar, each seed a dot."""
    if len(scores) == 0:
        return
    ax.bar(x, scores.mean(), yerr=scores.std(), color=color, alpha=0.5, capsize=4, width=0.7)
    ax.plot(np.full(len(scores), x) + np.linspace(-0.15, 0.15, len(scores)), scores, "o", color="k", ms=4)


def ablation_panels(rows: list[dict], entries: list[tuple[str, float, IQLConfig]], base: IQLConfig,
                    metric: str = "success_rate", scale: float = 100.0, title: str = "") -> Figure:
    """One panel per hyperparameter: final score (x scale) per value, mean +- std over seeds as bars, seeds as dots."""
    axes_names = list(dict.fromkeys(axis for axis, _, _ in entries))
    fig, axes = plt.subplots(1, len(axes_names), figsize=(3.2 * len(axes_names), 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], axes_names):
        mine = [(v, c) for a, v, c in entries if a == name]
        for i, (value, config) in enumerate(mine):
            color = "tab:blue" if config == base else "tab:gray"
            _score_points(ax, i, scale * final_scores(rows, config, metric), color)
        ax.set_xticks(range(len(mine)), [f"{v:g}" for v, _ in mine])
        ax.set(xlabel=AXIS_LABELS.get(name, name), ylim=(0, 1.05 * scale) if scale == 100 else (None, None))
    axes[0][0].set_ylabel(f"final {metric.replace('_', ' ')}" + (" (x100)" if scale == 100 else ""))
    fig.suptitle(title or "one hyperparameter at a time (blue: the base config); bars mean +- std, dots seeds")
    fig.tight_layout()
    return fig


def tau_and_double_q(rows: list[dict], base: IQLConfig, taus: Sequence[float], tau_cdq: float = 0.9,
                     metric: str = "success_rate") -> Figure:
    """The paper's Fig. 3 in the kit's runs: (a) final score vs tau, (b) clipped double Q on / off at tau_cdq,
    (c) the mean Q_target (solid) and V (dashed) over training, on / off: whether the values race without the min."""
    fig, (ax_t, ax_c, ax_q) = plt.subplots(1, 3, figsize=(15, 4))
    for i, tau in enumerate(taus):
        _score_points(ax_t, i, 100 * final_scores(rows, replace(base, tau=tau), metric), "tab:blue")
    ax_t.set_xticks(range(len(taus)), [f"{t:g}" for t in taus])
    ax_t.set(xlabel="expectile tau", ylabel=f"final {metric.replace('_', ' ')} (x100)", ylim=(0, 105),
             title="(a) score vs tau")
    on, off = replace(base, tau=tau_cdq), replace(base, tau=tau_cdq, clipped_double_q=False)
    for i, (config, label, color) in enumerate(((on, "min(Q1, Q2)", "tab:blue"), (off, "Q1 alone", "tab:red"))):
        _score_points(ax_c, i, 100 * final_scores(rows, config, metric), color)
        for key, style, name in (("q_mean", "-", "Q_target"), ("v_mean", "--", "V")):
            steps, mean, std = curve(rows, config, key)
            ax_q.plot(steps, mean, style, color=color, label=f"{label}: mean {name}")
            ax_q.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)
    ax_c.set_xticks([0, 1], ["clipped double Q", "single Q"])
    ax_c.set(ylim=(0, 105), title=f"(b) tau = {tau_cdq:g}: clipped double Q on / off")
    ax_q.set(xlabel="update", ylabel="mean over the batch", title=f"(c) Q and V over training, tau = {tau_cdq:g}")
    ax_q.legend(fontsize=8)
    fig.tight_layout()
    return fig


def compare_bars(rows: list[dict], labelled: dict[str, IQLConfig], metric: str = "success_rate",
                 title: str = "") -> Figure:
    """Final score (x100) of named configs side by side: mean +- std over seeds, seeds as dots."""
    fig, ax = plt.subplots(figsize=(1.6 * len(labelled) + 1.5, 3.8))
    colors = plt.cm.tab10(np.arange(len(labelled)) % 10)
    for i, (config, color) in enumerate(zip(labelled.values(), colors)):
        _score_points(ax, i, 100 * final_scores(rows, config, metric), color)
    ax.set_xticks(range(len(labelled)), list(labelled), fontsize=9)
    ax.set(ylabel=f"final {metric.replace('_', ' ')} (x100)", ylim=(0, 105), title=title)
    fig.tight_layout()
    return fig


def curve(rows: list[dict], config: IQLConfig, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, std) of a logged quantity over the seeds of one config (rows where it was logged)."""
    cid, per_seed = config_id(config), {}
    for r in rows:
        if r["config"] == cid and key in r and np.isfinite(r[key]):
            per_seed.setdefault(int(r["seed"]), {})[int(r["step"])] = r[key]
    if not per_seed:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    steps = sorted(set.intersection(*(set(d) for d in per_seed.values())))
    values = np.array([[d[s] for s in steps] for d in per_seed.values()])
    return np.array(steps), values.mean(0), values.std(0)


DIAGNOSTICS = {"success_rate": "success rate", "pos_frac": "share of u = Q - V > 0 (weight tau)",
               "v_se": "std. error of a minibatch expectile", "adv_std": "spread of advantages std(A)",
               "ess": "AWR effective sample share", "v_above": "V_tau - V_0.5 on probe states",
               "v_probe": "mean V(s) on the probe states",
               "awr_quality": "quality of what AWR imitates (BC: data mean)", "adv_quality_corr": "corr(A, action quality)"}


def diagnostics(rows: list[dict], configs: dict[str, IQLConfig], reference: IQLConfig | None = None,
                keys: Sequence[str] = tuple(DIAGNOSTICS), ordered: bool = False) -> Figure:
    """Each diagnostic over training for labelled configs (mean over seeds, band +- std), one legend for all panels;
    'v_above' subtracts the reference config's (tau = 0.5) mean V on the same probe states. ordered: a sequential
    palette (a sweep of one value, e.g. tau), else distinct colours (variants that are not on one scale)."""
    n = len(keys)
    cols = 2 if n == 4 else 3 if n > 4 else n
    rows_n = -(-n // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.4 * rows_n + 0.6), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(configs))) if ordered else plt.cm.tab10(np.arange(len(configs)))
    for ax, key in zip(axes.flat, keys):
        for (label, config), color in zip(configs.items(), colors):
            if key == "v_above":
                steps, mean, std = curve(rows, config, "v_probe")
                ref_steps, ref, _ = curve(rows, reference, "v_probe")
                common = np.isin(steps, ref_steps)
                steps, mean, std = steps[common], mean[common] - ref[np.isin(ref_steps, steps)], std[common]
            else:
                steps, mean, std = curve(rows, config, key)
            ax.plot(steps, mean, "o-" if key == "success_rate" else "-", color=color, label=label, ms=4)
            ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.15)
        ax.set(title=DIAGNOSTICS.get(key, key), xlabel="update")
        if key in ("v_se", "ess"):
            ax.set_yscale("log")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper center", ncols=len(configs), frameon=False)
    return fig


def tabular_study(rows: list[dict]) -> Figure:
    """The exact tabular study against tau: (a) gap to the support optimum and V above behaviour, (b) sample
    shares (pos_frac, ESS), (c) true return of the greedy policy, exact and sampled."""
    taus = np.array([r["tau"] for r in rows])
    x = np.arange(len(taus))
    fig, (ax_v, ax_s, ax_r) = plt.subplots(1, 3, figsize=(15, 4))
    ax_v.plot(x, [r["gap"] for r in rows], "o-", label="V*_support(start) - V_tau(start)")
    ax_v.plot(x, [r["v_above"] for r in rows], "s-", label="mean V_tau - V_0.5 over data states")
    ax_v.set(title="(a) V_tau climbs to the support optimum", ylabel="value")
    ax_s.plot(x, [r["pos_frac"] for r in rows], "o-", label="share of data (s, a) with Q > V")
    ax_s.plot(x, [r["ess"] for r in rows], "s-", label="AWR effective sample share")
    ax_s.set(title="(b) who carries the weight", ylim=(0, 1.05))
    ax_r.plot(x, [r["ret"] for r in rows], "o-", label="exact V_tau, greedy")
    ax_r.plot(x, [r["ret_sampled"] for r in rows], "s--", label="sampled IQL, greedy")
    ax_r.set(title="(c) true return from the start (axis from 0)", ylabel="discounted return",
             ylim=(0, 1.1 * max(max(r["ret"], r["ret_sampled"]) for r in rows)))
    for ax in (ax_v, ax_s, ax_r):
        ax.set_xticks(x, [f"{t:g}" for t in taus])
        ax.set_xlabel("expectile tau")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
