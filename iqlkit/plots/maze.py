"""A PointMaze or AntMaze maze from above (notebooks 04, 06 and 08): wall and floor cells, the evaluation start and the
goal's success radius, on the x-y plane of iqlkit.envs.maze.MazeTask."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Circle, Rectangle

from iqlkit.envs.maze import GOAL_RADIUS, MazeTask

WALL_COLOR, FLOOR_COLOR, GRID_COLOR = "0.25", "0.96", "0.8"
CMAP = "viridis"


def maze_extent(task: MazeTask) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of the maze in x-y: the map is centred on the origin."""
    (rows, cols), c = task.shape, task.cell_size
    return -cols * c / 2, cols * c / 2, -rows * c / 2, rows * c / 2


def cell_square(task: MazeTask, cell: Sequence[int], scale: float = 1.0, **kwargs) -> Rectangle:
    """A square patch centred on a (row, col) cell, `scale` cells wide (kwargs: matplotlib's patch options)."""
    x, y = task.cell_xy(cell)
    side = scale * task.cell_size
    return Rectangle((x - side / 2, y - side / 2), side, side, **kwargs)


def draw_maze(ax: Axes, task: MazeTask, letters: tuple[str, str] | None = ("S", "G")) -> None:
    """Walls dark and floor cells outlined; the start (red square) and the goal (magenta circle of the success radius)
    marked with `letters` (None: unmarked); the axes span the maze at equal aspect."""
    ax.set_facecolor(FLOOR_COLOR)
    walls = task.walls()
    for cell in np.ndindex(task.shape):
        wall = bool(walls[cell])
        ax.add_patch(cell_square(task, cell, fill=wall, fc=WALL_COLOR, ec=GRID_COLOR, lw=0.5,
                                 gid="wall" if wall else "floor"))
    if letters is not None:
        (start, goal), ends = letters, task.cell_xy([task.start, task.goal])
        ax.add_patch(cell_square(task, task.start, 0.8, fill=False, ec="tab:red", lw=2, zorder=5,
                                 label=f"start {start}"))
        ax.add_patch(Circle(ends[1], GOAL_RADIUS, fill=False, ec="magenta", lw=2, zorder=6,
                            label=f"goal {goal} (success within {GOAL_RADIUS:g})"))
        for (x, y), letter in zip(ends, letters):
            ax.text(x, y, letter, ha="center", va="center", fontweight="bold", fontsize=9, zorder=5,
                    bbox=dict(boxstyle="square,pad=0.15", fc="white", ec="none", alpha=0.8))
    left, right, bottom, top = maze_extent(task)
    ax.set(xlim=(left, right), ylim=(bottom, top), aspect="equal", xlabel="x", ylabel="y")
