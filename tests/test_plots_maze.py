import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Circle

from iqlkit.envs import antmaze, pointmaze
from iqlkit.envs.maze import GOAL_RADIUS
from iqlkit.plots.maze import cell_square, draw_maze, maze_extent

TASKS = [pointmaze.TASKS["umaze"], pointmaze.TASKS["medium"], antmaze.TASKS["umaze"], antmaze.TASKS["large"]]


def cells_drawn(ax, gid: str) -> np.ndarray:
    """Corners of the patches with that gid: [n, 4] (x, y, width, height)."""
    return np.array([[*p.get_xy(), p.get_width(), p.get_height()] for p in ax.patches if p.get_gid() == gid])


@pytest.mark.parametrize("task", TASKS, ids=lambda t: f"{t.name}-{t.cell_size:g}")
def test_the_drawn_walls_are_the_task_walls_and_the_goal_circle_is_the_success_radius(task):
    fig, ax = plt.subplots()
    draw_maze(ax, task)
    c = task.cell_size
    walls = cells_drawn(ax, "wall")
    np.testing.assert_allclose(walls[:, 2:], c)
    drawn = np.zeros(task.shape, dtype=int)
    for row, col in task.xy_cell(walls[:, :2] + c / 2):  # the centre of each wall square
        drawn[row, col] += 1
    np.testing.assert_array_equal(drawn, task.walls())
    assert len(cells_drawn(ax, "floor")) == len(task.free_cells())
    (goal,) = [p for p in ax.patches if isinstance(p, Circle)]
    assert goal.get_radius() == GOAL_RADIUS
    np.testing.assert_allclose(goal.center, task.cell_xy(task.goal))
    (start,) = [p for p in ax.patches if p.get_label() == "start S"]
    np.testing.assert_allclose(np.array(start.get_xy()) + start.get_width() / 2, task.cell_xy(task.start))
    assert sorted(t.get_text() for t in ax.texts) == ["G", "S"]
    rows, cols = task.shape
    assert ax.get_xlim() == (-cols * c / 2, cols * c / 2) and ax.get_ylim() == (-rows * c / 2, rows * c / 2)
    assert maze_extent(task) == (*ax.get_xlim(), *ax.get_ylim())
    assert ax.get_aspect() == 1.0


def test_the_drawing_sits_on_the_env_s_own_walls():
    task = pointmaze.TASKS["medium"]
    maze = pointmaze.make_env(task).unwrapped.maze
    fig, ax = plt.subplots()
    draw_maze(ax, task)
    centres = cells_drawn(ax, "wall")[:, :2] + task.cell_size / 2
    env_walls = np.array([maze.cell_rowcol_to_xy(np.array(cell)) for cell in np.argwhere(task.walls() == 1)])
    np.testing.assert_allclose(sorted(map(tuple, centres)), sorted(map(tuple, env_walls)))


def test_letters_name_the_marks_and_none_leaves_the_maze_unmarked():
    task = antmaze.TASKS["umaze"]
    fig, (marked, plain) = plt.subplots(1, 2)
    draw_maze(marked, task, ("r", "g"))
    labels = marked.get_legend_handles_labels()[1]
    assert labels == ["start r", f"goal g (success within {GOAL_RADIUS:g})"]
    draw_maze(plain, task, None)
    assert not plain.texts and not plain.get_legend_handles_labels()[0]
    assert not [p for p in plain.patches if isinstance(p, Circle)]
    assert len(cells_drawn(plain, "wall")) == task.walls().sum()


def test_cell_square_is_centred_on_its_cell_and_scaled():
    task = antmaze.TASKS["medium"]
    square = cell_square(task, (2, 5), 0.5)
    assert square.get_width() == square.get_height() == 2.0
    np.testing.assert_allclose(np.array(square.get_xy()) + 1.0, task.cell_xy((2, 5)))
