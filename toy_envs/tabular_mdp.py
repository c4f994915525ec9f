"""A small discrete MDP that can be solved exactly and sampled to make offline datasets."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iqlkit.theory.tabular import TabularData, check_mdp


@dataclass(frozen=True)
class TabularMDP:
    """P[s, a, s'], reward[s, a, s'], discount, a start state and absorbing terminal states (entering one ends)."""

    P: np.ndarray
    reward: np.ndarray
    gamma: float
    start: int
    terminal: np.ndarray
    action_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.reward.shape != self.P.shape:
            raise ValueError(f"reward must have the shape of P {self.P.shape}; got {self.reward.shape}")
        check_mdp(self.P, self.R, self.gamma)

    @property
    def R(self) -> np.ndarray:
        """Expected reward R(s, a) = sum_s' P(s, a, s') reward(s, a, s')."""
        return (self.P * self.reward).sum(-1)

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    def step(self, s: int, a: int, rng: np.random.Generator) -> tuple[int, float, bool]:
        """Sample s' ~ P(.|s, a); return (s', reward(s, a, s'), s' is terminal)."""
        s2 = int(rng.choice(self.n_states, p=self.P[s, a]))
        return s2, float(self.reward[s, a, s2]), bool(self.terminal[s2])

    def rollout(self, policy: np.ndarray, rng: np.random.Generator, max_steps: int = 100) -> TabularData:
        """One episode from the start state with actions a ~ policy[s], until a terminal state or max_steps."""
        rows, s = [], self.start
        for _ in range(max_steps):
            a = int(rng.choice(self.n_actions, p=policy[s]))
            s2, r, done = self.step(s, a, rng)
            rows.append((s, a, r, s2, done))
            s = s2
            if done:
                break
        states, actions, rewards, next_states, dones = map(np.array, zip(*rows))
        return TabularData(states, actions, rewards.astype(float), next_states, dones.astype(bool))

    def dataset(self, policies: list[np.ndarray], seed: int = 0, max_steps: int = 100) -> TabularData:
        """Concatenate one rollout per entry of `policies` (a list of [S, A] action-probability tables)."""
        rng = np.random.default_rng(seed)
        return TabularData.concat([self.rollout(pi, rng, max_steps) for pi in policies])
