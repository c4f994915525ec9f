"""Training curves from the CSV log rows: losses on log scales, evaluation scores over steps, one line per agent."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

LOSS_TITLES = {"v_loss": "V loss (expectile, Eq. 5)", "q_loss": "Q loss (TD, Eq. 6)",
               "actor_loss": "actor loss (AWR, Eq. 7)", "q_mean": "mean Q_target(s, a) and V(s)"}
NOT_SCORES = {"step", "v_mean", "agent", "seed", "tau", "beta", "config", "steps", *LOSS_TITLES}


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def training_curves(rows: list[dict]) -> Figure:
    """One panel per loss and one per logged score, against update steps; one line per agent when the rows carry
    an `agent` column (a run of several seeds), labelled with its seed (and tau when they differ)."""
    scores = list(dict.fromkeys(k for r in rows for k in r if k not in NOT_SCORES))
    names = list(LOSS_TITLES) + scores
    agents = sorted({int(_number(r["agent"])) for r in rows}) if any("agent" in r for r in rows) else [None]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
    taus = {r.get("tau") for r in rows}
    for k in agents:
        mine = [r for r in rows if k is None or int(_number(r["agent"])) == k]
        color = None if k is None else f"C{k % 10}"
        for ax, name in zip(axes[0], names):
            pairs = [(_number(r["step"]), _number(r[name])) for r in mine if not math.isnan(_number(r.get(name)))]
            x, y = (np.array(v) for v in zip(*pairs)) if pairs else (np.array([]), np.array([]))
            label = (f"seed {mine[0].get('seed', k)}" + (f", tau {mine[0]['tau']}" if len(taus) > 1 else "")
                     if k is not None else "Q_target" if name == "q_mean" else None)
            ax.plot(x, y, marker="o" if name in scores else None, ms=3, color=color, label=label)
            if name == "q_mean" and any("v_mean" in r for r in mine):
                ax.plot([_number(r["step"]) for r in mine], [_number(r["v_mean"]) for r in mine], color=color,
                        ls="--", label="V" if k is None else None)
    for ax, name in zip(axes[0], names):
        if name in ("v_loss", "q_loss") and all(np.all(np.asarray(line.get_ydata()) > 0) for line in ax.get_lines()):
            ax.set_yscale("log")
        title = LOSS_TITLES.get(name, name)
        ax.set_title(title + (" (V dashed)" if name == "q_mean" and agents != [None] else ""), fontsize=10)
        ax.set_xlabel("update step")
        ax.grid(alpha=0.3)
    axes[0][names.index("q_mean") if agents == [None] else 0].legend(fontsize=8)
    fig.tight_layout()
    return fig
