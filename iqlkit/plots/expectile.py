"""Figures for notebook 01: the asymmetric loss, expectiles of a normal, conditional expectile regression, Lemma 1."""
from __future__ import annotations

from statistics import NormalDist
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iqlkit.experiments.regression import BoundedToy, ExpectileFit, loglog_slope
from iqlkit.theory.expectile import expectile_loss, normal_expectile

U_RANGE = (-2.0, 2.0)


def tau_color(tau: float) -> tuple[float, float, float, float]:
    """One colour per tau, shared by every figure: plasma at 0.85 (1 - sqrt(1 - tau)), spread out near tau = 1."""
    return plt.cm.plasma(0.85 * (1.0 - np.sqrt(1.0 - tau)))


def normal_quantile(tau: float) -> float:
    """q_tau of N(0, 1): the inverse of the normal CDF, for contrast with the expectile m_tau."""
    return NormalDist().inv_cdf(tau)


def _normal_density(z: np.ndarray) -> np.ndarray:
    """phi(z) = exp(-z^2 / 2) / sqrt(2 pi)."""
    return np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)


def _loss_axes(ax: plt.Axes, taus: Sequence[float]) -> None:
    """L_tau(u) for each tau on [-2, 2]."""
    u = np.linspace(*U_RANGE, 401)
    for tau in taus:
        ax.plot(u, expectile_loss(u, tau), color=tau_color(tau), lw=2, label=f"τ = {tau:g}")
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("u = y − m")
    ax.set_ylabel("L$_τ$(u)")
    ax.set_title("Asymmetric squared loss  L$_τ$(u) = |τ − 1(u < 0)| u²")
    ax.legend()


def loss_figure(taus: Sequence[float] = (0.1, 0.5, 0.9)) -> Figure:
    """Fig. 1 left: L_tau(u) = |tau - 1(u < 0)| u^2 for several tau; tau = 0.5 is half the usual squared error."""
    fig, ax = plt.subplots(figsize=(6, 4))
    _loss_axes(ax, taus)
    fig.tight_layout()
    return fig


def normal_expectiles_figure(marked: Sequence[float] = (0.1, 0.5, 0.9), n_samples: int = 5000, seed: int = 0,
                             n_taus: int = 99) -> Figure:
    """Fig. 1 center: m_tau and q_tau of N(0, 1) against tau; a sample's histogram with m_tau marked for some tau."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    taus = np.linspace(0.01, 0.99, n_taus)
    left.plot(taus, [normal_expectile(t) for t in taus], color="tab:blue", lw=2, label="expectile m$_τ$")
    left.plot(taus, [normal_quantile(t) for t in taus], color="tab:grey", lw=2, ls="--", label="quantile q$_τ$")
    left.axhline(0.0, color="grey", lw=0.8)
    left.axvline(0.5, color="grey", lw=0.8)
    left.set_xlabel("τ")
    left.set_ylabel("statistic of N(0, 1)")
    left.set_title("Expectiles vs quantiles of N(0, 1)")
    left.legend()
    sample = np.random.default_rng(seed).normal(size=n_samples)
    right.hist(sample, bins=60, density=True, color="lightgrey", label=f"{n_samples} draws of N(0, 1)")
    z = np.linspace(-4.0, 4.0, 401)
    right.plot(z, _normal_density(z), color="black", lw=1, label="N(0, 1) density")
    for tau in marked:
        m = normal_expectile(tau)
        right.axvline(m, color=tau_color(tau), lw=2.5, label=f"m$_{{{tau:g}}}$ = {m:+.2f}")
    right.set_xlabel("x")
    right.set_ylabel("density")
    right.set_title("Expectiles of a normal distribution")
    right.legend(fontsize=9, loc="upper left")
    fig.tight_layout()
    return fig


def _conditional_axes(ax: plt.Axes, x: np.ndarray, y: np.ndarray, fit: ExpectileFit, toy: BoundedToy,
                      taus: Sequence[float]) -> None:
    """Scatter of (x, y); per tau the net's nearest head (solid) and the exact m_tau(x) (dashed); the supremum x*(x)."""
    grid = np.linspace(-1.0, 1.0, 200)
    ax.scatter(x, y, s=4, color="silver", alpha=0.6, label="data (x, y)")
    ax.plot(grid, toy.supremum(grid), color="black", lw=1.5, label="supremum x*(x)")
    predictions = fit(grid)
    for tau in taus:
        k = fit.nearest_head(tau)
        ax.plot(grid, predictions[:, k], color=tau_color(fit.taus[k]), lw=2.5, label=f"net head τ = {fit.taus[k]:g}")
        ax.plot(grid, toy.expectiles(grid, [fit.taus[k]])[:, 0], color=tau_color(fit.taus[k]), lw=1.5, ls="--")
    ax.plot([], [], color="grey", ls="--", label="exact m$_τ$(x)")
    ax.set_xlabel("x  (think: state s)")
    ax.set_ylabel("y  (think: Q(s, a) of a data action)")
    ax.set_title("Conditional expectiles m$_τ$(x)")
    ax.legend(fontsize=8, loc="upper left")


def conditional_expectiles_figure(x: np.ndarray, y: np.ndarray, fit: ExpectileFit, toy: BoundedToy,
                                  taus: Sequence[float] = (0.1, 0.5, 0.9, 0.99)) -> Figure:
    """Fig. 1 right: argmin_m E[L_tau(y - m(x))] fitted by a network, against the exact m_tau(x) and x*(x)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    _conditional_axes(ax, x, y, fit, toy, taus)
    fig.tight_layout()
    return fig


def lemma1_figure(taus: np.ndarray, curves: dict[str, tuple[np.ndarray, float]]) -> Figure:
    """Lemma 1: m_tau -> x* as tau -> 1 (left); the gap x* - m_tau against 1 - tau on log axes, with its slope (right).

    curves maps a distribution's name to (m_tau for each tau, its supremum x*).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    one_minus_tau = 1.0 - np.asarray(taus)
    for (name, (m, x_star)), color in zip(curves.items(), plt.cm.tab10.colors):
        left.semilogx(one_minus_tau, m, color=color, lw=2, label=f"{name}: x* = {x_star:.3g}")
        left.axhline(x_star, color=color, lw=1, ls=":")
        gap = x_star - np.asarray(m)
        right.loglog(one_minus_tau, gap, color=color, lw=2, marker="o", ms=3,
                     label=f"{name}: slope {loglog_slope(one_minus_tau, gap):.2f}")
    left.set_ylabel("m$_τ$")
    left.set_title("Expectiles climb towards the supremum x* (dotted)")
    right.set_ylabel("x* − m$_τ$")
    right.set_title("Gap to the supremum: x* − m$_τ$ ∝ (1 − τ)$^{slope}$")
    for ax in (left, right):
        ax.invert_xaxis()
        ax.set_xlabel("1 − τ   (log scale; τ → 1 to the right)")
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def tau_panel_figure(tau: float, fit: ExpectileFit, x: np.ndarray, y: np.ndarray, toy: BoundedToy) -> Figure:
    """The slider's figure for one tau: L_tau (vs L_0.5), m_tau and q_tau on N(0, 1), and m_tau(x) on the toy.

    Sized for a laptop-wide notebook (12 inches, 11-point text) with fixed axes, so that positions compare across tau,
    and a fixed layout instead of tight_layout (a second full draw), so that a redraw stays well under a second.
    """
    with plt.rc_context({"font.size": 11, "legend.fontsize": 9.5}):
        fig, (loss_ax, normal_ax, cond_ax) = plt.subplots(1, 3, figsize=(12, 4.3))
        u = np.linspace(*U_RANGE, 401)
        loss_ax.plot(u, expectile_loss(u, tau), color=tau_color(tau), lw=2.5, label=f"τ = {tau:.2f}")
        loss_ax.plot(u, expectile_loss(u, 0.5), color="grey", ls="--", label="τ = 0.5 (reference)")
        loss_ax.axvline(0.0, color="grey", lw=0.8)
        loss_ax.set(xlim=U_RANGE, ylim=(-0.05, 4.0), xlabel="u = y − m", ylabel="L$_τ$(u)",
                    title="Loss  |τ − 1(u < 0)| u²")  # max of L_tau on [-2, 2] is 4 max(tau, 1 - tau) < 4
        loss_ax.legend(loc="upper center")
        z = np.linspace(-4.0, 4.0, 401)
        m, q = normal_expectile(tau), normal_quantile(tau)
        normal_ax.plot(z, _normal_density(z), color="black", lw=1.5, label="density")
        normal_ax.axvline(m, color=tau_color(tau), lw=2.5, label=f"expectile m$_τ$ = {m:+.2f}")
        normal_ax.axvline(q, color=tau_color(tau), lw=1.5, ls=":", label=f"quantile q$_τ$ = {q:+.2f}")
        normal_ax.set(xlim=(-4.0, 4.0), ylim=(0.0, 0.55), xlabel="x", title="N(0, 1): expectile vs quantile")
        normal_ax.set_yticks([0.0, 0.2, 0.4])
        normal_ax.legend(loc="upper left")
        k = fit.nearest_head(tau)
        grid = np.linspace(-1.0, 1.0, 200)
        cond_ax.scatter(x, y, s=3, color="silver", alpha=0.6, rasterized=True)
        cond_ax.plot(grid, toy.supremum(grid), color="black", lw=1.5, label="supremum")
        cond_ax.plot(grid, fit(grid)[:, k], color=tau_color(fit.taus[k]), lw=2.5, label=f"net, τ = {fit.taus[k]:g}")
        cond_ax.plot(grid, toy.expectiles(grid, [fit.taus[k]])[:, 0], color=tau_color(fit.taus[k]), lw=1.5, ls="--",
                     label="exact m$_τ$(x)")
        cond_ax.set(xlabel="x  (a state)", ylabel="y  (Q of a data action)", title="Conditional expectile m$_τ$(x)")
        cond_ax.set_ylim(cond_ax.get_ylim()[0], cond_ax.get_ylim()[1] + 0.35 * np.ptp(cond_ax.get_ylim()))
        cond_ax.legend(loc="upper left", ncols=2)
        fig.suptitle(f"τ = {tau:.2f}", fontsize=13)
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.84, wspace=0.28)
    return fig
