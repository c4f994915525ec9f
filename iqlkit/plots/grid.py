"""Figures for grid mazes (notebook 03, the paper's Fig. 2 U-maze): walls, start and goal, value heatmaps on a shared
colour scale, greedy-policy arrows, and the curves behind the SARSA-vs-IQL comparison."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from iqlkit.theory.tabular import SampledIQLRun, expectile_value_iteration, greedy_policy, policy_evaluation
from toy_envs.grid_maze import MOVES, GridMaze

WALL_COLOR = "0.25"
CMAP = "viridis"


def shared_norm(values: Sequence[np.ndarray], log: bool = False,
                vlim: tuple[float, float] | None = None) -> Normalize:
    """One colour scale for all panels: [min, max] of the finite values (of the positive ones when log)."""
    if vlim is None:
        finite = np.concatenate([np.ravel(v)[np.isfinite(v)] for v in values])
        finite = finite[finite > 0] if log else finite
        if finite.size == 0:
            raise ValueError("no finite values to scale" + (" (a log scale needs positive values)" if log else ""))
        vlim = float(finite.min()), float(finite.max())
    return LogNorm(*vlim) if log else Normalize(*vlim)


def draw_maze(ax: Axes, maze: GridMaze, values: np.ndarray | None = None,
              norm: Normalize | None = None, cmap: str = CMAP) -> AxesImage | None:
    """Walls as dark cells, per-state `values` as a heatmap (nan and the absorbing goal left white), S and G marked."""
    image = None
    if values is not None:
        values = np.where(maze.mdp.terminal, np.nan, np.asarray(values, dtype=float))
        image = ax.imshow(maze.to_grid(values), cmap=plt.get_cmap(cmap).with_extremes(bad="white"), norm=norm)
    rows, cols = maze.shape
    for i, row in enumerate(maze.layout):
        for j, c in enumerate(row):
            if c == "#":
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color=WALL_COLOR, label="wall"))
    for s, letter, color in ((maze.mdp.start, "S", "tab:red"), (maze.goal, "G", "gold")):
        i, j = maze.cells[s]
        ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, ec=color, lw=2.5, label=letter))
        ax.text(j - 0.38, i - 0.36, letter, ha="left", va="top", fontsize=8, fontweight="bold", color="black",
                bbox=dict(boxstyle="square,pad=0.1", fc=color, ec="none"))
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="0.85", lw=0.8)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_aspect("equal")
    return image


def draw_policy(ax: Axes, maze: GridMaze, policy: np.ndarray) -> None:
    """An arrow per non-terminal cell in the direction of the policy's most likely move (toy_envs MOVES)."""
    live = ~maze.mdp.terminal
    step = np.array(MOVES)[np.asarray(policy)[live].argmax(1)]
    i, j = maze.cells[live].T
    ax.quiver(j - 0.3 * step[:, 1], i - 0.3 * step[:, 0], step[:, 1], step[:, 0], angles="xy", scale_units="xy",
              scale=1 / 0.6, color="white", edgecolor="black", linewidth=0.6, width=0.012, headwidth=4)


def maze_panels(maze: GridMaze, values: Sequence[np.ndarray | None], titles: Sequence[str],
                policies: Sequence[np.ndarray | None] | None = None, label: str = "V(s)", log: bool = False,
                vlim: tuple[float, float] | None = None, suptitle: str | None = None) -> Figure:
    """Side-by-side mazes; heatmaps share one colour scale and one colorbar; optional greedy arrows per panel."""
    if len(values) != len(titles) or (policies is not None and len(policies) != len(values)):
        raise ValueError("values, titles (and policies) need one entry per panel")
    fig, axes = plt.subplots(1, len(values), figsize=(3.3 * len(values) + 0.9, 3.8), squeeze=False,
                             layout="constrained")
    shown = [v for v in values if v is not None]
    norm = shared_norm([np.where(maze.mdp.terminal, np.nan, v) for v in shown], log, vlim) if shown else None
    image = None
    for k, (ax, v, title) in enumerate(zip(axes[0], values, titles)):
        image = draw_maze(ax, maze, v, norm) or image
        if policies is not None and policies[k] is not None:
            draw_policy(ax, maze, policies[k])
        ax.set_title(title, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label=label)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def tau_maze_figure(maze: GridMaze, P: np.ndarray, R: np.ndarray, behavior: np.ndarray, tau: float,
                    vlim: tuple[float, float] | None = None) -> Figure:
    """Slider callback: V_tau of the data's MDP, its in-support greedy arrows, and that policy's true return."""
    mdp = maze.mdp
    Q, V = expectile_value_iteration(P, R, behavior, mdp.gamma, tau)
    policy = greedy_policy(Q, behavior > 0)
    true_return = policy_evaluation(mdp.P, mdp.R, policy, mdp.gamma)[1][mdp.start]
    title = f"IQL tau = {tau:.3g}: V(start) = {V[mdp.start]:.3g}\ngreedy policy's true return {true_return:.3f}"
    return maze_panels(maze, [V], [title], [policy], label="V_tau(s)", vlim=vlim)


def return_vs_noise_figure(sigmas: np.ndarray, returns: dict[str, np.ndarray], optimum: float) -> Figure:
    """Mean true return from the start of greedy(Q + N(0, sigma^2)) vs sigma (log x), a band of +-1 standard error.

    returns[label] has shape [len(sigmas), n_trials] (e.g. noisy_greedy_values(...)[:, start] per sigma).
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, r in returns.items():
        r = np.asarray(r, dtype=float)
        if r.shape[0] != len(sigmas):
            raise ValueError(f"returns[{label!r}] has {r.shape[0]} rows for {len(sigmas)} sigmas")
        mean, se = r.mean(1), r.std(1) / np.sqrt(r.shape[1])
        line, = ax.plot(sigmas, mean, marker="o", ms=3, label=label)
        ax.fill_between(sigmas, mean - se, mean + se, color=line.get_color(), alpha=0.2)
    ax.axhline(optimum, color="black", ls="--", lw=1, label=f"optimal policy ({optimum:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("noise std sigma added to Q before the greedy argmax")
    ax.set_ylabel("true return from start (mean over noise draws)")
    ax.set_title("How much estimation error each greedy policy tolerates")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def value_vs_tau_figure(taus: np.ndarray, V: np.ndarray, start: int, V_support: np.ndarray,
                        V_optimal: np.ndarray | None = None, states: np.ndarray | None = None) -> Figure:
    """V_tau(start) and the mean of V_tau over `states` vs tau (V [n_tau, S]), with the limit of Theorem 3."""
    V = np.asarray(V, dtype=float)
    states = np.arange(V.shape[1]) if states is None else np.asarray(states)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, reduce, what in ((axes[0], lambda x: x[..., start], "V(start)"),
                           (axes[1], lambda x: x[..., states].mean(-1), "mean of V over the data's states")):
        ax.plot(taus, reduce(V), marker="o", ms=3, label="V_tau (expectile fixed point, data's MDP)")
        ax.axhline(reduce(V_support), color="tab:red", ls="--",
                   label=f"support-constrained optimum (Thm. 3): {reduce(V_support):.3f}")
        if V_optimal is not None:
            ax.axhline(reduce(V_optimal), color="black", ls=":",
                       label=f"optimum of the true MDP: {reduce(V_optimal):.3f}")
        ax.set_xscale("logit")
        ax.set_xticks([t for t in (0.5, 0.9, 0.99, 0.999, 0.9999) if t <= max(taus)])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("tau (logit scale)")
        ax.set_ylabel(what)
        ax.set_title(f"{what} rises with tau (Lemma 2)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def sampled_convergence_figure(runs: dict[str, SampledIQLRun], exact: dict[str, np.ndarray],
                               states: np.ndarray) -> Figure:
    """max_s and mean_s |V_t(s) - V_exact(s)| over `states` vs update step t (log y), one colour per run."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, run in runs.items():
        err = np.abs(run.V_history[:, states] - exact[label][states])
        line, = ax.plot(run.steps, err.max(1), label=f"{label}: max over states")
        ax.plot(run.steps, err.mean(1), color=line.get_color(), ls="--", label=f"{label}: mean over states")
    ax.set_yscale("log")
    ax.set_xlabel("update step")
    ax.set_ylabel("|V_sampled - V_exact| over the data's states")
    ax.set_title("Sampled IQL (minibatch updates) approaches the exact fixed point")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
