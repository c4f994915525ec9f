"""The two-step MDP from the practitioner's blog post: SARSA picks the wrong first action, IQL does not.

s0 --up--> s1 (up: +10, down: -10), s0 --down--> s2 (up or down: +1); the episode ends after the second step.
"""
from __future__ import annotations

import numpy as np

from iqlkit.theory.expectile import check_tau
from toy_envs.tabular_mdp import TabularMDP

S0, S1, S2, END = 0, 1, 2, 3
UP, DOWN = 0, 1
STATE_NAMES = ("s0", "s1", "s2", "end")


def _check_share(p_up: float) -> float:
    if not 0.0 < p_up < 1.0:
        raise ValueError(f"p_up (the data's share of 'up') must lie strictly between 0 and 1; got {p_up}")
    return float(p_up)


def two_step_mdp(gamma: float = 0.99) -> TabularMDP:
    """The MDP: deterministic moves, rewards on the second step, an absorbing END state."""
    P = np.zeros((4, 2, 4))
    P[S0, UP, S1] = P[S0, DOWN, S2] = 1.0
    P[[S1, S2, END], :, [END, END, END]] = 1.0
    reward = np.zeros((4, 2, 4))
    reward[S1, :, END] = (10.0, -10.0)
    reward[S2, :, END] = (1.0, 1.0)
    return TabularMDP(P, reward, gamma, start=S0, terminal=np.array([False, False, False, True]),
                      action_names=("up", "down"))


def two_step_behavior(p_up: float) -> np.ndarray:
    """The dataset's policy: 'up' with probability p_up in every state."""
    p_up = _check_share(p_up)
    return np.tile([p_up, 1.0 - p_up], (4, 1))


def v_s1_closed_form(tau: float, p_up: float = 0.5) -> float:
    """V_tau(s1), the root of p tau (10 - v) = (1 - p)(1 - tau)(v + 10); equals 10 (2 tau - 1) when p = 0.5."""
    tau, p = check_tau(tau), _check_share(p_up)
    up, down = p * tau, (1 - p) * (1 - tau)
    return 10.0 * (up - down) / (up + down)


def flip_tau(p_up: float) -> float:
    """Smallest tau whose greedy first action is 'up': V_tau(s1) = V(s2) = 1, i.e. tau = 11 q / (9 p + 11 q)."""
    p = _check_share(p_up)
    q = 1.0 - p
    return 11 * q / (9 * p + 11 * q)
