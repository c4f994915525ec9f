"""Figures for the paper's locomotion rows (notebook 09): the episode returns of D4RL's four modes against two reference
scales, what return scaling does to V, the advantages and the AWR weights (and a slider over the reward scale), and
the normalised score of methods over training with a band over seeds, next to the paper's Table 1."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iqlkit.engine.iql import awr_weight
from iqlkit.experiments.compare import Run
from iqlkit.experiments.finetuning import series
from iqlkit.experiments.scaling import Critic, clipped_share, clipped_shares
from iqlkit.plots.extraction import FLOOR

REFERENCE_STYLE = {"kit": ("black", "the kit's"), "d4rl": ("tab:red", "D4RL's")}  # colour and label of each scale
CRITIC_COLORS = {"none": "tab:orange", "return_range": "tab:blue"}


def _critic_label(critic: Critic) -> str:
    """'raw rewards (c = 1)' or 'scaled: c = 1000 / range = 0.31'."""
    return "raw rewards (c = 1)" if critic.reward == "none" else f"scaled: c = 1000 / range = {critic.factor:.3g}"


def return_histograms(returns: dict[str, np.ndarray], kit_refs: tuple[float, float], d4rl_refs: tuple[float, float],
                      title: str = "") -> Figure:
    """One panel per dataset: the histogram of its episode returns, with the random and expert returns of both
    reference scales marked (the kit's in black, D4RL's in red; dotted: random, dashed: expert)."""
    fig, axes = plt.subplots(1, len(returns), figsize=(3.9 * len(returns), 3.6), sharex=True, squeeze=False)
    edges = np.linspace(min(min(float(np.min(r)) for r in returns.values()), kit_refs[0], d4rl_refs[0]),
                        max(max(float(np.max(r)) for r in returns.values()), kit_refs[1], d4rl_refs[1]), 41)
    for ax, (name, values) in zip(axes[0], returns.items()):
        values = np.asarray(values, dtype=float)
        ax.hist(values, bins=edges, color="0.55")
        for key, (low, high) in (("kit", kit_refs), ("d4rl", d4rl_refs)):
            color, label = REFERENCE_STYLE[key]
            ax.axvline(low, color=color, ls=":", lw=1.5, label=f"{label} random: {low:,.0f}")
            ax.axvline(high, color=color, ls="--", lw=1.5, label=f"{label} expert: {high:,.0f}")
        ax.set(title=f"{name}\n{len(values):,} episodes, mean return {values.mean():,.0f}",
               xlabel="episode return (undiscounted)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("episodes")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncols=4, frameon=False, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def critic_figure(critics: dict[str, Critic], beta: float, clip: float = 100.0,
                  betas: np.ndarray | None = None) -> Figure:
    """The study's two critics side by side: (a) V(s) over the data's states, (b) the advantages A = Q_target - V
    over its (s, a), (c) the share of AWR weights min(exp(beta A), clip) at the clip against beta, beta marked."""
    betas = np.geomspace(0.1, 30, 40) if betas is None else np.asarray(betas)
    fig, (ax_v, ax_a, ax_c) = plt.subplots(1, 3, figsize=(15, 4.3))
    low = min(float(np.min(c.advantages)) for c in critics.values())
    high = max(float(np.max(c.advantages)) for c in critics.values())
    edges = np.linspace(low, high, 80) if high > low else np.linspace(low - 1, low + 1, 3)
    for critic in critics.values():
        color, label = CRITIC_COLORS.get(critic.reward, "0.3"), _critic_label(critic)
        ax_v.hist(critic.values, bins=60, color=color, alpha=0.5, label=f"{label}: mean {critic.values.mean():.3g}")
        ax_a.hist(critic.advantages, bins=edges, color=color, histtype="step", lw=1.8,
                  label=f"{label}: std {critic.advantages.std():.3g}")
        share = clipped_share(critic.advantages, beta, clip)
        # the share at beta b is the share of the advantages b A at beta 1
        ax_c.plot(betas, clipped_shares(critic.advantages, betas, 1.0, clip), color=color, label=label)
        ax_c.plot([beta], [share], "o", color=color, ms=7, label=f"beta = {beta:g}: {share:.1%} at the clip")
    ax_v.set(title="(a) V(s) over the data's states", xlabel="V(s)", ylabel="states")
    ax_a.axvline(0, color="k", ls="--", lw=1)
    ax_a.axvline(np.log(clip) / beta, color="0.4", ls=":", lw=1.2, label=f"ln({clip:g}) / beta: the clip at beta = "
                                                                          f"{beta:g}")
    ax_a.set(yscale="log", title="(b) advantages A = Q_target(s, a) - V(s)", xlabel="A(s, a)",
             ylabel="(s, a) pairs (log scale)")
    ax_c.axvline(beta, color="0.4", ls=":", lw=1.2)
    ax_c.set(xscale="log", ylim=(-0.02, 1.02), xlabel="beta", ylabel="share of weights at the clip",
             title=f"(c) AWR weights at the clip of {clip:g}")
    for ax in (ax_v, ax_a, ax_c):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scale_weights_figure(advantages: np.ndarray, scale: float, beta: float = 3.0, clip: float = 100.0,
                         marks: dict[str, float] | None = None, measured: dict[str, tuple[float, float]] | None = None,
                         scales: np.ndarray | None = None) -> Figure:
    """The slider's figure: rewards multiplied by c = `scale` multiply the advantages by c (Q and V are linear in the
    rewards at their fixed point). Left: the AWR weights min(exp(beta c A), clip); right: the share at the clip
    against c (log axis, over `scales`: by default 0.01 to 10, widened to every factor drawn), with c marked, the
    factors in `marks` (label -> c) as dotted lines and the shares `measured` on critics trained at a factor
    (label -> (c, share)) as points. A fixed layout keeps a redraw short."""
    advantages = np.asarray(advantages, dtype=float)
    if scales is None:  # 0.01 to 10, widened to every factor drawn
        drawn = [scale, *(marks or {}).values(), *(c for c, _ in (measured or {}).values())]
        scales = np.geomspace(min(0.01, min(drawn) / 2), max(10.0, 2 * max(drawn)), 61)
    weights = awr_weight(scale * advantages, beta, clip).numpy().astype(float)
    share = clipped_share(scale * advantages, beta, clip)
    fig, (ax_w, ax_s) = plt.subplots(1, 2, figsize=(12, 4.2))
    bins = np.geomspace(FLOOR / 1.5, clip * 1.5, 50)
    ax_w.hist(np.maximum(weights, FLOOR), bins=bins, weights=np.full(len(weights), 1 / len(weights)), color="tab:blue")
    ax_w.axvline(clip, color="k", ls="--", lw=1)
    ax_w.text(clip, 1.0, f"clip: {share:.1%} ", va="bottom", ha="right", fontsize=9)
    floor = rf"$10^{{{np.log10(FLOOR):.0f}}}$"
    ax_w.set(xscale="log", yscale="log", xlim=(FLOOR / 4, clip * 2), ylim=(0.5 / len(weights), 3),
             title=f"(a) weights min(exp(beta c A), {clip:g}), beta = {beta:g}, c = {scale:.3g}",
             xlabel=f"AWR weight (below {floor} drawn at {floor})", ylabel="fraction of (s, a) pairs")
    ax_s.plot(scales, clipped_shares(advantages, scales, beta, clip), color="0.3", label="share at the clip")
    ax_s.plot([scale], [share], "o", color="tab:blue", ms=8, label=f"c = {scale:.3g}: {share:.1%}")
    for k, (label, c) in enumerate((marks or {}).items()):
        ax_s.axvline(c, color=plt.get_cmap("tab10")(k + 1), ls=":", lw=1.5, label=f"{label}: c = {c:.3g}")
    for k, (label, (c, measured_share)) in enumerate((measured or {}).items()):
        ax_s.plot([c], [measured_share], "s", mfc="none", mew=1.5, ms=9, color=plt.get_cmap("tab10")(k + 1),
                  label=f"{label}: {measured_share:.1%}")
    ax_s.set(xscale="log", ylim=(-0.02, 1.02), xlabel="reward scale c (rewards r -> c r)",
             ylabel="share of weights at the clip", title="(b) the share at the clip against the reward scale")
    ax_s.legend(fontsize=8, loc="upper left")
    for ax in (ax_w, ax_s):
        ax.grid(alpha=0.3)
        ax.minorticks_off()  # log axes would make hundreds of minor ticks: most of a redraw's time
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
    return fig


def by_method(runs: Sequence[Run]) -> dict[str, list[list[dict]]]:
    """The evaluation rows of compare's Runs, per method (in their order) a list of one row list per seed; failed
    Runs (no rows) left out."""
    found: dict[str, list[list[dict]]] = {}
    for run in runs:
        if run.rows:
            found.setdefault(run.method, []).append(list(run.rows))
    return found


def score_curves(panels: dict[str, Sequence[Run]], key: str = "normalized_score",
                 ylabel: str = "normalised score", title: str = "") -> Figure:
    """One panel per dataset: `key` of each method against update step, the mean over seeds as a line and mean +- std
    as a band (fill_between), each seed a thin line."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (name, runs) in zip(axes[0], panels.items()):
        for k, (method, seeds) in enumerate(by_method(runs).items()):
            steps, values = series(seeds, key)
            color, mean, std = plt.get_cmap("tab10")(k), values.mean(0), values.std(0)
            for seed_values in values:
                ax.plot(steps, seed_values, color=color, lw=0.7, alpha=0.4)
            ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)
            ax.plot(steps, mean, "o-", color=color, lw=2, ms=4,
                    label=f"{method}: mean of {len(values)} seeds, band +- std, thin lines seeds")
        ax.set(title=name, xlabel="update step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def table_markdown(finals: dict[str, dict[str, np.ndarray]], paper: dict[str, dict[str, float]],
                   convert: Callable[[np.ndarray], np.ndarray] | None = None, label: str = "this kit") -> str:
    """A markdown table, a row per dataset and method: the final normalised score mean +- std over seeds (and
    `convert`ed to another scale, e.g. D4RL's references, where given) beside the paper's Table 1."""
    head = f"| dataset | method | {label} (mean +- std, seeds) |" + (" on D4RL's scale |" if convert else "")
    lines = [head + " IQL paper, Table 1 |", "| --- " * (4 + bool(convert)) + "|"]
    for dataset, methods in finals.items():
        for method, scores in methods.items():
            scores = np.asarray(scores, dtype=float)
            cells = [dataset, method, f"{scores.mean():.1f} +- {scores.std():.1f} ({len(scores)})"]
            if convert:
                other = convert(scores)
                cells.append(f"{other.mean():.1f} +- {other.std():.1f}")
            cells.append(f"{paper[dataset][method]:.1f}" if method in paper.get(dataset, {}) else "not in the table")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
