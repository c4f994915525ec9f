import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from iqlkit.envs import antmaze
from iqlkit.plots import antmaze as P

UMAZE = antmaze.MINARI_UMAZE_EVAL_MAP  # the eval maze Minari's umaze datasets carry (mirrored)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield antmaze.record("umaze", n_steps=900, episode_steps=300, seed=0)


def fit_many_rows(rates: np.ndarray, steps: list[int], log_every: int = 50) -> list[dict]:
    """Rows shaped like fit_many's: loss rows every log_every steps, success_rate only at the evaluation steps."""
    rows = []
    for step in range(log_every, steps[-1] + 1, log_every):
        for agent, seed in enumerate(range(10, 10 + len(rates))):
            row = {"step": step, "agent": agent, "seed": seed, "q_mean": -1.0}
            if step in steps:
                row["success_rate"] = float(rates[agent, steps.index(step)])
            rows.append(row)
    return rows


def test_cell_centres_match_the_env_and_marks_are_found():
    env = antmaze.make_eval_env("large-play")
    maze = env.unwrapped.maze
    for cell in [(1, 1), (7, 9), (4, 6)]:
        np.testing.assert_allclose(P.cell_xy(antmaze.EVAL_MAPS["large"], cell), maze.cell_rowcol_to_xy(np.array(cell)))
    env.close()
    np.testing.assert_allclose(P.cell_xy(UMAZE, P.find_cell(UMAZE, "r")), [4.0, 4.0])
    np.testing.assert_allclose(P.cell_xy(UMAZE, P.find_cell(UMAZE, "g")), [4.0, -4.0])
    task = P.maze_task(UMAZE)
    assert (task.start, task.goal, task.cell_size) == ((1, 3), (3, 3), antmaze.CELL)
    assert task.walls().sum() == 16 + 2 and task.walls()[1, 3] == 0  # 'r' is floor
    assert P.eval_task("medium-diverse") is antmaze.TASKS["medium"]


def test_maps_without_one_start_and_one_goal_are_unmarked():
    plain = [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, "c", "g", "g", 1], [1, 1, 1, 1, 1]]
    assert P.marked(UMAZE) and not P.marked(plain) and not P.marked(antmaze.EVAL_MAPS["umaze"][:3])
    walls = [[1] * 5, [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1] * 5]  # 'c' and 'g' are floor
    np.testing.assert_array_equal(P.maze_task(plain).walls(), walls)
    fig, ax = plt.subplots()
    P.draw_map(ax, plain)
    assert not ax.texts and not ax.get_legend_handles_labels()[0]
    assert len([p for p in ax.patches if p.get_gid() == "wall"]) == 18


def test_layouts_draw_every_cell_and_the_shortest_route():
    fig = P.layouts_figure()
    axes = fig.axes
    assert len(axes) == 3
    for ax, name, moves in zip(axes, ("umaze", "medium", "large"), (6, 10, 14)):
        layout = antmaze.EVAL_MAPS[name]
        dark = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_fill() and p.get_facecolor()[0] < 0.5]
        assert len(dark) == sum(row.count(1) for row in layout)
        assert f"{moves} cell moves" in ax.get_title()
        (start,) = [p for p in ax.patches if p.get_label() == "start r"]
        np.testing.assert_allclose(np.array(start.get_xy()) + start.get_width() / 2,
                                   P.cell_xy(layout, P.find_cell(layout, "r")))
        (goal,) = [p for p in ax.patches if p.get_label().startswith("goal g")]
        np.testing.assert_allclose(goal.center, P.cell_xy(layout, P.find_cell(layout, "g")))
    assert axes[0].get_legend() is not None


def test_maze_figure_draws_paths_goals_and_cut_points():
    paths = [np.array([[4.0, 4.0], [3.0, 4.0], [2.0, 4.0]]), np.array([[-4.0, -4.0], [-3.0, -4.0]])]
    goals = np.array([[0.0, 4.0], [-2.0, -4.0]])
    fig = P.maze_figure(UMAZE, paths, goals, firsts=[-1, 0], labels=["a", "b"], title="two paths")
    ax = fig.axes[0]
    assert ax.get_title() == "two paths"
    path_lines = [ln for ln in ax.lines if ln.get_label() in ("a", "b")]
    np.testing.assert_allclose(path_lines[0].get_xydata(), paths[0])
    goal_marks = [ln for ln in ax.lines if ln.get_marker() == "X"]
    np.testing.assert_allclose([m.get_xydata()[0] for m in goal_marks], goals)
    cuts = [ln for ln in ax.lines if ln.get_marker() == "s"]
    assert len(cuts) == 1
    np.testing.assert_allclose(cuts[0].get_xydata()[0], paths[1][1])  # step 0 ends at path point 1
    assert "first success: cut here" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_dataset_maps_and_the_umaze_difference(recorded):
    data_map, eval_map = P.dataset_maps(recorded)
    assert eval_map == UMAZE
    differ = P.maze_task(data_map).walls() != P.maze_task(eval_map).walls()
    assert sorted(map(tuple, np.argwhere(differ))) == [(2, 1), (2, 3)]  # Minari's umaze eval maze is rotated
    xy = np.array([[4.0, 0.0], [4.2, 0.3], [-4.0, 4.0]])
    fig = P.data_vs_eval_figure(data_map, eval_map, xy)
    assert "2 cells differ" in fig._suptitle.get_text()
    for ax in fig.axes[:2]:
        assert len([p for p in ax.patches if p.get_hatch() == "//"]) == 2
    assert "3 visited" in fig.axes[0].get_title()
    assert not P.marked(data_map) and not fig.axes[0].texts  # the data's maze has no fixed start and goal
    assert sorted(t.get_text() for t in fig.axes[1].texts) == ["g", "r"]
    same = P.data_vs_eval_figure(eval_map, eval_map, xy)
    assert "the same walls" in same._suptitle.get_text()
    assert not [p for p in same.axes[0].patches if p.get_hatch()]


def test_dataset_paths_follow_the_episodes(recorded):
    paths, goals, firsts = P.dataset_paths(recorded, n=2, seed=0)
    assert len(paths) == len(goals) == len(firsts) == 2
    episodes = {i: ep for i, ep in enumerate(recorded.iterate_episodes())}
    chosen = np.sort(np.random.default_rng(0).choice(recorded.total_episodes, 2, replace=False))
    for path, goal, first, i in zip(paths, goals, firsts, chosen):
        ep = episodes[int(i)]
        np.testing.assert_allclose(path, ep.observations["achieved_goal"])
        np.testing.assert_allclose(goal, ep.observations["desired_goal"][0])
        rewards = np.asarray(ep.rewards)
        assert first == (np.flatnonzero(rewards > 0)[0] if rewards.any() else -1)
    assert len(P.dataset_paths(recorded, n=100)[0]) == recorded.total_episodes


def test_rollout_paths_start_at_r_and_last_the_horizon():
    from functools import partial

    calls = []

    def still(obs):
        calls.append(obs.shape)
        return np.zeros((len(obs), 8), dtype=np.float32)

    paths = P.rollout_paths(still, partial(antmaze.make_eval_env, "umaze", max_episode_steps=5), n_episodes=2)
    assert [p.shape for p in paths] == [(6, 2), (6, 2)]
    assert calls[0] == (1, 31)  # one flat observation (position + observation + desired_goal) per call
    for path in paths:
        assert np.linalg.norm(path[0] - [-4.0, -4.0]) < 1.5  # reset near the kit's 'r', bottom-left (with noise)


def test_frames_figure_shows_each_frame():
    frames = {"a": np.zeros((8, 8, 3), np.uint8), "b": np.full((8, 8, 3), 200, np.uint8)}
    fig = P.frames_figure(frames)
    images = [im for ax in fig.axes for im in ax.get_images() if isinstance(im, AxesImage)]
    assert len(images) == 2 and images[1].get_array().max() == 200
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]


def test_render_views_gives_two_frames():
    try:
        views = P.render_views("umaze", size=64)
    except Exception as err:  # no offscreen OpenGL on this machine (MUJOCO_GL=egl needs EGL)
        pytest.skip(f"no offscreen rendering: {type(err).__name__}: {err}")
    assert len(views) == 2
    for frame in views.values():
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 5


def test_success_curves_mean_band_and_paper_line():
    rates = np.array([[0.0, 0.5, 1.0], [0.2, 0.3, 0.6]])
    steps = [100, 200, 300]
    rows = fit_many_rows(rates, steps)
    got_steps, got, seeds = P.success_by_agent(rows)
    np.testing.assert_array_equal(got_steps, steps)
    np.testing.assert_allclose(got, rates)
    assert seeds == [10, 11]
    np.testing.assert_allclose(P.final_success(rows), [1.0, 0.6])
    fig = P.success_curves(rows, paper=87.5, title="t")
    ax = fig.axes[0]
    mean = [ln for ln in ax.lines if ln.get_label().startswith("mean of 2")][0]
    np.testing.assert_allclose(mean.get_ydata(), 100 * rates.mean(0))
    assert len([ln for ln in ax.lines if ln.get_label().startswith("seed ")]) == 2
    paper = [ln for ln in ax.lines if "Table 1" in ln.get_label()][0]
    assert paper.get_ydata()[0] == 87.5
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(100 * (rates.mean(0) + rates.std(0)).max())
    assert ax.get_title() == "t" and "%" in ax.get_ylabel()


def test_paper_comparison_bars_and_markdown():
    ours = {"umaze": [0.7, 0.9], "large-play": [0.1, 0.3, 0.2]}
    fig = P.paper_comparison(ours, label="mine")
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    heights = sorted(round(b.get_height(), 6) for b in bars)
    assert heights == sorted([round(v, 6) for v in antmaze.PAPER_SCORES.values()] + [80.0, 20.0])
    assert sum(t.get_text() == "not run" for t in ax.texts) == 4
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["IQL paper, Table 1 (D4RL v0)", "mine"]
    table = P.results_markdown(ours, "GPU, 1M updates")
    lines = table.splitlines()
    assert len(lines) == 2 + len(antmaze.PAPER_SCORES) and "GPU, 1M updates" in lines[0]
    assert "| umaze | 87.5 | 80.0 +- 10.0 (2 seeds, 70 to 90) |" in lines
    assert "| medium-play | 71.2 | not run |" in lines
