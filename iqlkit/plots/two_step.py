"""Figures for notebook 02: the two-step MDP, where SARSA (tau = 0.5) picks the wrong first action and IQL does not."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch

from iqlkit.theory.tabular import SampledIQLRun, expectile_value_iteration
from toy_envs.two_step import (DOWN, S0, S1, S2, STATE_NAMES, UP, flip_tau, two_step_behavior, two_step_mdp,
                               v_s1_closed_form)

ACTION_COLORS = {UP: "tab:blue", DOWN: "tab:orange"}
MIX_COLORS = ("tab:green", "tab:purple", "tab:red", "tab:brown", "tab:cyan")


def _reward(r: float) -> str:
    """'r = +10', 'r = -10', 'r = 0'."""
    return f"r = {r:+g}" if r else "r = 0"


def _two_decimals(x: float) -> str:
    """x with 2 decimals and no '-0.00'."""
    return f"{np.round(x, 2) + 0.0:.2f}"


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], label: str, color: str) -> None:
    """An arrow from start to end with its label at the midpoint."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=color, lw=2, shrinkA=22, shrinkB=22))
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    ax.text(*mid, label, ha="center", va="center", fontsize=10, color=color,
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none"))


def mdp_diagram(R: np.ndarray) -> Figure:
    """The MDP as a graph: states as circles, terminal outcomes as boxes, arrows labelled (action, r = R(s, a))."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    states = {S0: (0.0, 0.0), S1: (2.4, 1.2), S2: (2.4, -1.2)}
    for s, xy in states.items():
        ax.add_patch(Circle(xy, 0.36, fc="#e8eef7", ec="black", lw=1.5))
        ax.text(*xy, STATE_NAMES[s], ha="center", va="center", fontsize=14)
    for s in (S1, S2):
        x, y = states[s]
        _arrow(ax, states[S0], (x, y), f"{'up' if s == S1 else 'down'}, {_reward(R[S0, UP if s == S1 else DOWN])}",
               ACTION_COLORS[UP if s == S1 else DOWN])
        for a, dy in ((UP, 0.6), (DOWN, -0.6)):
            end = (x + 2.6, y + dy)
            ax.add_patch(FancyBboxPatch((end[0] - 0.3, end[1] - 0.18), 0.6, 0.36, boxstyle="round,pad=0.02",
                                        fc="#eeeeee", ec="grey"))
            ax.text(*end, "end", ha="center", va="center", fontsize=10, color="dimgrey")
            _arrow(ax, (x, y), end, f"{'up' if a == UP else 'down'}, {_reward(R[s, a])}", ACTION_COLORS[a])
    ax.set_xlim(-0.6, 5.6)
    ax.set_ylim(-2.2, 2.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("The two-step MDP: the episode ends after the second action")
    fig.tight_layout()
    return fig


def q_s0_figure(q_s0: dict[str, np.ndarray]) -> Figure:
    """Grouped bars of Q(s0, up) and Q(s0, down) per method; the greedy action argmax_a Q(s0, a) is named under each."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(q_s0))
    for a, name in ((UP, "up"), (DOWN, "down")):
        values = [q[a] for q in q_s0.values()]
        bars = ax.bar(x + (a - 0.5) * 0.38, values, width=0.36, color=ACTION_COLORS[a], label=f"Q(s0, {name})")
        ax.bar_label(bars, [_two_decimals(v) for v in values], padding=2)
    ax.set_xticks(x, [f"{label}\ngreedy: {'up' if q[UP] > q[DOWN] else 'down'}" for label, q in q_s0.items()])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("Q(s0, a)")
    ax.set_title("First-action values: which way does the greedy policy go from s0?")
    ax.legend(loc="upper left")
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def v_s1_check_figure(taus: np.ndarray, v_computed: np.ndarray, p_up: float = 0.5) -> Figure:
    """Computed V_tau(s1) (markers) against the closed form 10 (p tau - q (1 - tau)) / (p tau + q (1 - tau)) (line)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    grid = np.linspace(0.01, 0.99, 197)
    ax.plot(grid, [v_s1_closed_form(t, p_up) for t in grid], color="black", lw=1.5,
            label="closed form 10 (2 tau - 1)" if p_up == 0.5 else f"closed form (p_up = {p_up:g})")
    ax.plot(taus, v_computed, "o", color="tab:blue", ms=6, mfc="none", label="expectile_value_iteration")
    ax.set_xlabel("tau")
    ax.set_ylabel("V(s1)")
    ax.set_title(f"V(s1) from the computed fixed point vs the closed form (p_up = {p_up:g})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def data_mix_figure(taus: np.ndarray, v_s1: dict[float, np.ndarray], v_s2: float) -> Figure:
    """V_tau(s1) per data mix p_up against V(s2); up wins from s0 where V(s1) > V(s2), from tau* = flip_tau(p_up) on."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.axhline(v_s2, color="black", ls="--", lw=1.2, label=f"V(s2) = {v_s2:g}")
    for color, (p, v) in zip(MIX_COLORS, v_s1.items()):
        t = flip_tau(p)
        ax.plot(taus, v, color=color, lw=2, label=f"V(s1), p_up = {p:g}  (flip at tau* = {t:.3f})")
        ax.axvline(t, color=color, ls=":", lw=1.2)
        ax.plot([t], [v_s2], "o", color=color, ms=8, mec="black", zorder=3)
    ax.set_xlabel("tau")
    ax.set_ylabel("V(s1)")
    ax.set_title("Less 'up' in the data needs a larger tau before up beats down")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig


def flip_tau_figure(p_grid: np.ndarray, flip_computed: np.ndarray, resolution: float) -> Figure:
    """tau*(p) = 11 q / (9 p + 11 q) (line) and the first grid tau where Q(s0, up) > Q(s0, down) (markers)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    fine = np.linspace(0.01, 0.99, 197)
    curve = np.array([flip_tau(p) for p in fine])
    ax.fill_between(fine, curve, 1.0, color=ACTION_COLORS[UP], alpha=0.15, label="greedy first action: up")
    ax.fill_between(fine, 0.0, curve, color=ACTION_COLORS[DOWN], alpha=0.15, label="greedy first action: down")
    ax.plot(fine, curve, color="black", lw=1.5, label="tau* = 11 q / (9 p + 11 q)")
    ax.plot(p_grid, flip_computed, "o", color="tab:red", mfc="none", ms=7,
            label=f"first tau with up greedy (grid step {resolution:g})")
    ax.set_xlabel("p_up (share of 'up' in the data)")
    ax.set_ylabel("flip tau*")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("The tau where the greedy first action flips")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


def sampled_v_s1_figure(taus: np.ndarray, p_up: float, n_episodes: int, v_sampled: np.ndarray,
                        z: float = 2.0) -> Figure:
    """V(s1) of empirical MDPs (one line per dataset) in the band closed_form(p +- z sqrt(p q / (n p))), n p = visits.

    Left: the values; right: their gap to the closed form at the true p_up, where the band is visible.
    """
    v_sampled = np.atleast_2d(v_sampled)
    se = np.sqrt(p_up * (1 - p_up) / (n_episodes * p_up))
    lo, hi = max(p_up - z * se, 1e-6), min(p_up + z * se, 1 - 1e-6)
    grid = np.linspace(taus.min(), taus.max(), 197)
    exact = np.array([v_s1_closed_form(t, p_up) for t in grid])
    band = np.array([[v_s1_closed_form(t, p) for t in grid] for p in (lo, hi)])
    exact_at_taus = np.array([v_s1_closed_form(t, p_up) for t in taus])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, offset, sampled_offset in ((axes[0], 0.0, 0.0), (axes[1], exact, exact_at_taus)):
        ax.fill_between(grid, band[0] - offset, band[1] - offset, color="grey", alpha=0.3,
                        label=f"sampling band: share of up in s1 = p_up +- {z:g} s.e.")
        for i, v in enumerate(v_sampled):
            ax.plot(taus, v - sampled_offset, color="tab:blue", lw=1, alpha=0.7,
                    label="empirical MDP, one line per dataset" if i == 0 else None)
        ax.plot(grid, exact - offset, color="black", lw=2, label=f"closed form, p_up = {p_up:g}")
        ax.set_xlabel("tau")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("V(s1)")
    axes[0].legend(loc="upper left", fontsize=9)
    axes[1].set_ylabel("V(s1) - closed form")
    axes[1].set_title("gap to the closed form")
    fig.suptitle(f"V(s1) from {len(v_sampled)} sampled datasets of {n_episodes} episodes each (p_up = {p_up:g})")
    fig.tight_layout()
    return fig


def sampled_iql_figure(run: SampledIQLRun, v_fixed: np.ndarray, states: tuple[int, ...] = (S0, S1, S2)) -> Figure:
    """Sampled IQL's V(s) over training (lines) against the fixed point of expectile_value_iteration (dashed)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    for color, s in zip(("tab:grey", "tab:blue", "tab:orange"), states):
        name = STATE_NAMES[s]
        ax.plot(run.steps, run.V_history[:, s], color=color, lw=1.5, label=f"sampled IQL V({name})")
        ax.axhline(v_fixed[s], color=color, ls="--", lw=1, label=f"fixed point V({name}) = {v_fixed[s]:.3f}")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("V(s)")
    ax.set_title("Minibatch IQL converges to the fixed point of its empirical MDP")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    fig.tight_layout()
    return fig


def two_step_explorer(tau: float, p_up: float, gamma: float = 0.99) -> Figure:
    """Slider callback: bars of Q_tau(s0, .), V_tau(s1) on its closed-form curve for mix p_up; title = greedy action."""
    mdp = two_step_mdp(gamma)
    Q, V = expectile_value_iteration(mdp.P, mdp.R, two_step_behavior(p_up), gamma, tau)
    greedy = "up" if Q[S0, UP] > Q[S0, DOWN] else "down"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw=dict(width_ratios=(1, 1.6)))
    bars = left.bar(["Q(s0, up)", "Q(s0, down)"], Q[S0], color=[ACTION_COLORS[UP], ACTION_COLORS[DOWN]])
    left.bar_label(bars, [_two_decimals(v) for v in Q[S0]], padding=2)
    left.axhline(0, color="black", lw=0.8)
    left.set_ylim(-10.5 * gamma, 10.5 * gamma)
    left.set_ylabel("Q(s0, a)")
    grid = np.linspace(0.01, 0.99, 197)
    right.plot(grid, [v_s1_closed_form(t, p_up) for t in grid], color="black", lw=1.5, label="closed form V(s1)")
    right.plot([tau], [V[S1]], "o", color="tab:blue", ms=9, label=f"computed V(s1) = {_two_decimals(V[S1])}")
    right.axhline(V[S2], color="tab:orange", ls="--", label=f"V(s2) = {V[S2]:g}")
    right.axvline(flip_tau(p_up), color="grey", ls=":", label=f"flip tau* = {flip_tau(p_up):.3f}")
    right.set_xlabel("tau")
    right.set_ylabel("V(s1)")
    right.set_ylim(-10.5, 10.5)
    right.grid(alpha=0.3)
    right.legend(loc="upper left", fontsize=9)
    fig.suptitle(f"tau = {tau:.2f}, p_up = {p_up:.2f}: greedy first action is {greedy.upper()}")
    fig.tight_layout()
    return fig
