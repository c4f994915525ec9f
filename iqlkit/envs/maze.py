"""Maze geometry shared by PointMaze, AntMaze and the figures: layouts, cells <-> x-y, shortest paths, success.

gymnasium-robotics lays a maze map (row 0 at the top, 1 = wall) out on the plane with square cells of side
`cell_size` (its maze_size_scaling: 1 for PointMaze, 4 for AntMaze) and the map centred on the origin:
cell (i, j) has its centre at x = (j + 1/2) c - n_cols c / 2, y = n_rows c / 2 - (i + 1/2) c.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

GOAL_RADIUS = 0.45  # success: the agent's x-y within 0.45 of the goal (reward 1 in PointMaze and AntMaze)
START, GOAL = "r", "g"  # gymnasium-robotics' marks of a fixed reset and goal cell in a maze map
MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1))  # the four cell moves (row, col)


@dataclass(frozen=True)
class MazeTask:
    """A maze layout (1 = wall, 0 = floor) with the evaluation start and goal cells (row, col) and its cell size."""

    name: str
    maze_map: tuple[tuple[int, ...], ...]
    start: tuple[int, int]
    goal: tuple[int, int]
    cell_size: float = 1.0

    @classmethod
    def from_marked(cls, name: str, marked: Sequence[Sequence], cell_size: float = 1.0) -> "MazeTask":
        """The task of a map whose start and goal cells are marked 'r' and 'g' (gymnasium-robotics' format)."""
        cells = {c: (i, j) for i, row in enumerate(marked) for j, c in enumerate(row) if c in (START, GOAL)}
        if set(cells) != {START, GOAL}:
            raise ValueError(f"a marked maze map needs one 'r' and one 'g' cell; found {sorted(map(str, cells))}")
        plain = tuple(tuple(1 if c == 1 else 0 for c in row) for row in marked)
        return cls(name, plain, cells[START], cells[GOAL], cell_size)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the map."""
        return len(self.maze_map), len(self.maze_map[0])

    def eval_map(self) -> list[list]:
        """The layout with 'r' (reset) and 'g' (goal) cells: gymnasium-robotics' fixed start and goal."""
        rows = [list(r) for r in self.maze_map]
        rows[self.start[0]][self.start[1]], rows[self.goal[0]][self.goal[1]] = START, GOAL
        return rows

    def free_cells(self) -> list[tuple[int, int]]:
        """The floor cells, row by row."""
        return [(i, j) for i, row in enumerate(self.maze_map) for j, c in enumerate(row) if c == 0]

    def walls(self) -> np.ndarray:
        """1 on wall cells, 0 on floor cells: [rows, cols]."""
        return np.array(self.maze_map, dtype=int)

    def cell_xy(self, cells: np.ndarray | Sequence) -> np.ndarray:
        """x-y centres of (row, col) cells: [..., 2] -> [..., 2] (see the module docstring)."""
        cells, (rows, cols), c = np.asarray(cells, dtype=float), self.shape, self.cell_size
        return np.stack([(cells[..., 1] + 0.5) * c - cols * c / 2, rows * c / 2 - (cells[..., 0] + 0.5) * c], -1)

    def xy_cell(self, xy: np.ndarray | Sequence) -> np.ndarray:
        """(row, col) of the cells holding the points xy [..., 2] (clipped to the map): int [..., 2]."""
        xy, (rows, cols), c = np.asarray(xy, dtype=float), self.shape, self.cell_size
        row = np.clip(np.floor(rows / 2 - xy[..., 1] / c), 0, rows - 1)
        col = np.clip(np.floor(xy[..., 0] / c + cols / 2), 0, cols - 1)
        return np.stack([row, col], -1).astype(int)

    def distances(self, target: tuple[int, int] | None = None) -> dict[tuple[int, int], int]:
        """Cell moves from every floor cell to `target` (default: the goal), by breadth-first search."""
        return bfs_distances(self.maze_map, self.goal if target is None else target)


def bfs_distances(maze_map: Sequence[Sequence[int]], target: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Number of cell moves from every floor cell to `target` (breadth-first search; 1 = wall)."""
    dist, queue = {tuple(target): 0}, deque([tuple(target)])
    while queue:
        i, j = queue.popleft()
        for di, dj in MOVES:
            n = (i + di, j + dj)
            if maze_map[n[0]][n[1]] != 1 and n not in dist:
                dist[n] = dist[(i, j)] + 1
                queue.append(n)
    return dist


def next_cells(dist: dict[tuple[int, int], int], cells: np.ndarray) -> np.ndarray:
    """The next cell on a shortest path to the target of `dist` (bfs_distances) from each cell [n, 2]; the target
    itself from the target cell (and from a cell off the map's floor): int [n, 2]."""
    target = min(dist, key=dist.get)
    out = []
    for r, c in np.asarray(cells).reshape(-1, 2):
        near = [(r + di, c + dj) for di, dj in MOVES if (r + di, c + dj) in dist]
        out.append(target if (r, c) == target or not near else min(near, key=dist.get))
    return np.array(out, dtype=int)


def first_success(rewards: np.ndarray | Sequence[float]) -> int:
    """Index of the first step with a positive reward (the first success of a maze episode), or -1 if none."""
    hit = np.asarray(rewards) > 0
    return int(np.argmax(hit)) if hit.any() else -1
