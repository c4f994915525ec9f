"""Grid mazes with slippery moves, drawn from text layouts; the U-maze of the IQL paper's Fig. 2.

Reading of the paper's 'with probability 0.25 the agent transitions to a random state': with probability
`slip` the commanded move is replaced by one of the four moves drawn uniformly (it may be the commanded one);
a move into a wall or off the grid leaves the agent where it is. Entering the goal pays `goal_reward` and ends
the episode (the goal is absorbing, with value 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iqlkit.theory.tabular import TabularData, greedy_policy, value_iteration
from toy_envs.tabular_mdp import TabularMDP

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right as (row, col) steps
ACTION_NAMES = ("up", "down", "left", "right")

U_MAZE = (
    "S..#..G",
    "...#...",
    "...#...",
    "...#...",
    "...#...",
    ".......",
    ".......",
)


@dataclass(frozen=True)
class GridMaze:
    """A maze from a text layout: '.' free, '#' wall, 'S' start, 'G' goal. States are the free cells, row-major."""

    layout: tuple[str, ...]
    mdp: TabularMDP
    cells: np.ndarray  # [S, 2] (row, col) of each state

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.layout), len(self.layout[0])

    @property
    def goal(self) -> int:
        return int(np.flatnonzero(self.mdp.terminal)[0])

    def to_grid(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Per-state values on the 2-D grid, `fill` on walls."""
        grid = np.full(self.shape, fill, dtype=float)
        grid[self.cells[:, 0], self.cells[:, 1]] = values
        return grid


def grid_maze(layout: tuple[str, ...] = U_MAZE, slip: float = 0.25, gamma: float = 0.9,
              goal_reward: float = 10.0) -> GridMaze:
    """Build the MDP of a text layout with slippery moves (see the module docstring)."""
    if len({len(row) for row in layout}) != 1:
        raise ValueError("every row of the layout must have the same length")
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must lie in [0, 1]; got {slip}")
    cells = np.array([(i, j) for i, row in enumerate(layout) for j, c in enumerate(row) if c != "#"])
    index = {tuple(c): k for k, c in enumerate(cells)}
    kinds = "".join(layout[i][j] for i, j in cells)
    if kinds.count("S") != 1 or kinds.count("G") != 1:
        raise ValueError("the layout needs exactly one 'S' and one 'G'")
    start, goal = kinds.index("S"), kinds.index("G")
    n = len(cells)
    move = np.zeros((n, 4, n))  # deterministic effect of each move
    for k, (i, j) in enumerate(cells):
        for a, (di, dj) in enumerate(MOVES):
            move[k, a, index.get((i + di, j + dj), k)] = 1.0
    P = (1 - slip) * move + slip * move.mean(1, keepdims=True)
    P[goal] = np.eye(n)[goal]
    reward = np.zeros_like(P)
    reward[:, :, goal] = goal_reward
    reward[goal] = 0.0
    terminal = np.zeros(n, dtype=bool)
    terminal[goal] = True
    return GridMaze(tuple(layout), TabularMDP(P, reward, gamma, start, terminal, ACTION_NAMES), cells)


def u_maze(slip: float = 0.25, gamma: float = 0.9) -> GridMaze:
    """The U-maze of the paper's Fig. 2: start and goal at the tips of the U, reward 10 on entering the goal."""
    return grid_maze(U_MAZE, slip=slip, gamma=gamma)


def maze_dataset(maze: GridMaze, n_random: int = 99, n_optimal: int = 1, max_steps: int = 100,
                 seed: int = 0) -> TabularData:
    """The paper's corrupted dataset: n_optimal rollouts of the optimal policy, n_random of uniform actions."""
    mdp = maze.mdp
    optimal = greedy_policy(value_iteration(mdp.P, mdp.R, mdp.gamma))
    uniform = np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    return mdp.dataset([optimal] * n_optimal + [uniform] * n_random, seed=seed, max_steps=max_steps)
