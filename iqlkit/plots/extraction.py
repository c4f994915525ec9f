"""Policy extraction figures: AWR weights vs beta, success vs beta, concurrent vs post-hoc, the policy's std."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iqlkit.engine.iql import awr_weight
from iqlkit.experiments.extraction import clip_fraction, effective_sample_size

FLOOR = 1e-6  # weights below this are drawn at it on the log axis: next to the clip of 100 they pull on nothing


def _weight_stats(adv: np.ndarray, beta: float, clip: float) -> tuple[np.ndarray, float, float]:
    w = awr_weight(adv, beta, clip)
    return w.numpy().astype(float), clip_fraction(w, clip), effective_sample_size(w)


def weight_distributions(adv: np.ndarray, betas: Sequence[float] = (0, 1, 3, 10, 30), clip: float = 100.0,
                         beta_grid: np.ndarray | None = None) -> Figure:
    """(a) A = Q_target - V on real samples, (b) w = min(exp(beta A), clip) per beta on a log axis, (c) clip
    fraction and normalised ESS against beta. A fixed layout (no tight_layout) keeps the slider's redraw short."""
    adv = np.asarray(adv, dtype=float)
    beta_grid = np.geomspace(0.1, 300, 60) if beta_grid is None else beta_grid
    fig, (ax_a, ax_w, ax_s) = plt.subplots(1, 3, figsize=(15, 4.3))
    ax_a.hist(adv, bins=100, color="0.4")
    ax_a.axvline(0, color="k", ls="--", lw=1)
    ax_a.set(yscale="log", title=f"(a) advantages of {len(adv):,} dataset (s, a)\n{np.mean(adv > 0):.1%} have A > 0",
             xlabel="A(s, a) = Q_target(s, a) - V(s)", ylabel="samples (log scale)")
    bins = np.geomspace(FLOOR / 1.5, clip * 1.5, 50)
    for beta in betas:
        w, frac, ess = _weight_stats(adv, beta, clip)
        ax_w.hist(np.maximum(w, FLOOR), bins=bins, weights=np.full(len(w), 1 / len(w)), histtype="step", lw=1.5,
                  label=f"beta = {beta:g}: {frac:.1%} at clip, ESS {ess:.2f}")
    ax_w.axvline(clip, color="k", ls="--", lw=1)
    ax_w.text(clip, 1.0, "clip ", va="bottom", ha="right", fontsize=9)
    ax_w.axvline(FLOOR, color="0.5", ls=":", lw=1)
    floor = rf"$10^{{{np.log10(FLOOR):.0f}}}$"
    ax_w.set(xscale="log", yscale="log", xlim=(FLOOR / 4, clip * 2), ylim=(0.5 / len(adv), 20),
             title="(b) AWR weights w = min(exp(beta A), clip)",
             xlabel=f"weight (all weights below {floor} drawn at {floor})", ylabel="fraction of samples")
    ax_w.legend(fontsize=8, loc="upper left")
    stats = np.array([_weight_stats(adv, b, clip)[1:] for b in beta_grid])
    ax_s.plot(beta_grid, stats[:, 0], label="fraction at the clip")
    ax_s.plot(beta_grid, stats[:, 1], label="effective sample size / N")
    ax_s.axhline(np.mean(adv > 0), color="0.5", ls=":", lw=1,
                 label="fraction with A > 0 (clip fraction as beta -> inf)")
    marked = np.array([_weight_stats(adv, b, clip)[1:] for b in betas if b > 0])
    if len(marked):
        ax_s.plot([b for b in betas if b > 0], marked, "ko", ms=4)
    ax_s.set(xscale="log", ylim=(0, 1.02), xlabel="beta", ylabel="fraction",
             title="(c) how many samples the weights keep")
    ax_s.legend(fontsize=8, loc="upper right")
    for ax in (ax_a, ax_w, ax_s):
        ax.grid(alpha=0.3)
        ax.minorticks_off()  # log axes would make hundreds of minor ticks: most of a redraw's time
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.85, wspace=0.25)
    return fig


def beta_weights(adv: np.ndarray, beta: float, clip: float = 100.0) -> Figure:
    """weight_distributions for a single beta (the slider's figure)."""
    return weight_distributions(adv, (beta,), clip)


def _binomial_se(p: np.ndarray, n: int) -> np.ndarray:
    """Standard error of a success rate over n episodes: sqrt(p (1 - p) / n)."""
    return np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / n)


def success_vs_beta(betas: Sequence[float], success: Sequence[float], n_episodes: int,
                    concurrent: float | None = None, concurrent_beta: float | None = None) -> Figure:
    """Post-hoc success rate against beta (symlog x: beta = 0 is behaviour cloning) with binomial error bars."""
    betas, success = np.asarray(betas, dtype=float), np.asarray(success, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(betas, success, yerr=_binomial_se(success, n_episodes), marker="o", capsize=3,
                label="post hoc: fresh actor on the final Q, V")
    if concurrent is not None:
        ax.plot([concurrent_beta], [concurrent], "s", color="C3", ms=8,
                label=f"concurrent actor (beta = {concurrent_beta:g}), same critic")
    if np.any(betas == 0):
        ax.annotate("BC", (0, success[betas == 0][0]), textcoords="offset points", xytext=(6, 6))
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(betas)
    ax.set_xticklabels([f"{b:g}" for b in betas])
    ax.set(ylim=(-0.03, 1.03), xlabel="beta (inverse temperature; 0 = behaviour cloning)",
           ylabel=f"success rate ({n_episodes} episodes)", title="Success of the extracted policy vs beta")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def paired_success(seeds: Sequence[int], success: dict[str, Sequence[float]], n_episodes: int, title: str) -> Figure:
    """Grouped bars: one group per seed (binomial error bars) plus their mean (standard error over seeds), per variant."""
    groups = [f"seed {s}" for s in seeds] + ["mean\n(s.e. over seeds)"]
    width = 0.8 / len(success)
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 4))
    for k, (label, values) in enumerate(success.items()):
        values = np.asarray(values, dtype=float)
        heights = np.append(values, values.mean())
        errors = np.append(_binomial_se(values, n_episodes), values.std() / np.sqrt(len(values)))
        x = np.arange(len(groups)) + (k - (len(success) - 1) / 2) * width
        ax.bar(x, heights, width, yerr=errors, capsize=3, label=label)
        for xi, h, e in zip(x, heights, errors):
            ax.text(xi, h + e + 0.02, f"{h:.2f}", ha="center", fontsize=8)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels(groups)
    ax.set(ylim=(0, 1.2), ylabel=f"success rate ({n_episodes} episodes)", title=title)
    ax.legend(fontsize=8, loc="upper left", ncols=len(success))
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def learned_std(xs: np.ndarray, ys: np.ndarray, std_grid: np.ndarray, data_std: np.ndarray,
                constant_std: Sequence[float], goal: Sequence[float] | None = None) -> Figure:
    """(a) state-dependent sigma(s) (mean over action dims) over the maze at rest, NaN = wall; (b) its histogram on
    the dataset's states per action dim, against the state-independent sigma."""
    fig, (ax_m, ax_h) = plt.subplots(1, 2, figsize=(11, 4.3))
    step_x, step_y = xs[1] - xs[0], ys[0] - ys[1]
    extent = (xs[0] - step_x / 2, xs[-1] + step_x / 2, ys[-1] - step_y / 2, ys[0] + step_y / 2)
    img = ax_m.imshow(std_grid, extent=extent, cmap=plt.get_cmap("viridis").with_extremes(bad="0.2"), origin="upper")
    fig.colorbar(img, ax=ax_m, label="sigma(s), mean over action dims")
    if goal is not None:
        ax_m.plot(*goal, "r*", ms=14, label="goal")
        ax_m.legend(loc="lower right", fontsize=8)
    ax_m.set(title="(a) state-dependent std over the maze (velocity 0)", xlabel="x", ylabel="y")
    data_std = np.asarray(data_std)
    bins = np.linspace(0, np.quantile(data_std, 0.999) * 1.1, 50)
    for d in range(data_std.shape[1]):
        color = f"C{d}"
        ax_h.hist(data_std[:, d], bins=bins, histtype="step", lw=1.5, color=color,
                  label=f"state-dependent, action dim {d} (median {np.median(data_std[:, d]):.2f})")
        ax_h.axvline(constant_std[d], color=color, ls="--", label=f"state-independent, dim {d}: {constant_std[d]:.2f}")
    ax_h.set(xlabel="sigma (policy std)", ylabel="dataset states",
             title="(b) sigma on the dataset's states")
    ax_h.set_ylim(0, ax_h.get_ylim()[1] * 1.6)
    ax_h.legend(fontsize=8, loc="upper left")
    ax_h.grid(alpha=0.3)
    fig.tight_layout()
    return fig
