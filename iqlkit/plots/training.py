"""Training curves from the CSV log rows: losses on log scales, evaluation scores over steps."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

LOSS_TITLES = {"v_loss": "V loss (expectile, Eq. 5)", "q_loss": "Q loss (TD, Eq. 6)",
               "actor_loss": "actor loss (AWR, Eq. 7)", "q_mean": "mean Q_target(s, a) and V(s)"}


def training_curves(rows: list[dict]) -> Figure:
    """One panel per loss and one per logged score, against update steps."""
    steps = np.array([float(r["step"]) for r in rows])
    scores = list(dict.fromkeys(k for r in rows for k in r if k not in ("step", "v_mean", *LOSS_TITLES)))
    names = list(LOSS_TITLES) + scores
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        pairs = [(s, float(r[name])) for s, r in zip(steps, rows) if r.get(name) not in (None, "")]
        x, y = (np.array(v) for v in zip(*pairs)) if pairs else (np.array([]), np.array([]))
        ax.plot(x, y, marker="o" if name in scores else None, ms=3, label="Q_target" if name == "q_mean" else None)
        if name == "q_mean" and any("v_mean" in r for r in rows):
            ax.plot(steps, [float(r["v_mean"]) for r in rows], label="V")
            ax.legend()
        if name in ("v_loss", "q_loss") and len(y) and np.all(y > 0):
            ax.set_yscale("log")
        ax.set_title(LOSS_TITLES.get(name, name), fontsize=10)
        ax.set_xlabel("update step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
