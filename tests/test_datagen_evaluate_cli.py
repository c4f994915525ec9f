import json

import numpy as np
import pytest
import torch

from iqlkit.envs import datagen, pointmaze
from iqlkit.envs.data import load_minari
from iqlkit.envs.evaluate import evaluate, normalized_score


@pytest.fixture
def minari_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    return tmp_path


def test_bfs_distances_follow_the_maze():
    d = pointmaze.bfs_distances(pointmaze.U_MAZE, (1, 1))
    assert d[(1, 1)] == 0 and d[(1, 3)] == 2 and d[(3, 1)] == 6 and len(d) == 7


def test_stitch_data_never_joins_start_and_goal(minari_dir):
    task = pointmaze.TASKS["umaze"]
    ds = datagen.pointmaze(task, "stitch", n_steps=3000, seed=0)
    assert ds.total_steps == 3000
    eval_env = ds.recover_environment(eval_env=True)
    assert eval_env.unwrapped.continuing_task is False
    dist_to_goal = pointmaze.bfs_distances(task.maze_map, task.goal)
    maze = pointmaze.make_env(task).unwrapped.maze
    for ep in ds.iterate_episodes():
        cells = {tuple(int(v) for v in maze.cell_xy_to_rowcol(p)) for p in ep.observations["achieved_goal"]}
        assert not (task.start in cells and task.goal in cells)  # no episode visits both ends
        assert max(dist_to_goal[c] for c in cells) - min(dist_to_goal[c] for c in cells) <= 3
        assert not any(ep.terminations) and ep.truncations[-1]  # continuing task, episodes end by time-out
        goal_xy = ep.observations["desired_goal"][0]
        near = np.linalg.norm(ep.observations["achieved_goal"][1:] - goal_xy, axis=1) <= 0.45
        np.testing.assert_array_equal(ep.rewards, near.astype(float))  # reward 1 within 0.45 of the goal


def test_navigate_data_covers_the_maze_and_loads(minari_dir):
    ds = datagen.pointmaze("umaze", "navigate", n_steps=2000, episode_steps=500, seed=1)
    assert ds.total_episodes == 4
    data = load_minari(ds, terminate_on_success=True, verbose=False)
    assert data.obs_dim == 6 and data.act_dim == 2
    assert np.all(np.abs(data.actions.numpy()) <= 1)


def test_evaluate_counts_success_and_returns(minari_dir):
    task = pointmaze.TASKS["umaze"]
    make = lambda: pointmaze.make_env(task, eval_env=True, max_episode_steps=40)
    still = evaluate(lambda obs: np.zeros((len(obs), 2)), make, n_episodes=5, n_envs=2)
    assert still.returns.shape == (5,) and still.success_rate == 0.0
    # a policy that knows the way: PD towards the next cell of the shortest path
    maze = pointmaze.make_env(task).unwrapped.maze
    dist = pointmaze.bfs_distances(task.maze_map, task.goal)

    def expert(obs):
        acts = []
        for pos, vel in zip(obs[:, :2], obs[:, 2:4]):
            i, j = (int(v) for v in maze.cell_xy_to_rowcol(pos))
            nxt = min(((i + a, j + b) for a, b in ((1, 0), (-1, 0), (0, 1), (0, -1)) if (i + a, j + b) in dist),
                      key=dist.get)
            acts.append(np.clip(10 * (maze.cell_rowcol_to_xy(np.array(nxt)) - pos) - vel, -1, 1))
        return np.array(acts)

    good = evaluate(expert, lambda: pointmaze.make_env(task, eval_env=True), n_episodes=4, n_envs=4,
                    references=(0.0, 1.0))
    assert good.success_rate == 1.0 and np.all(good.normalized == 100.0)
    assert normalized_score(np.array([0.5]), 0.0, 2.0)[0] == 25.0


def test_cli_train_runs_on_a_generated_dataset(minari_dir, tmp_path, capsys):
    from iqlkit.cli import main

    main(["train", "--dataset", "iqlkit/pointmaze-umaze/stitch-v0", "--data-steps", "1500", "--steps", "60",
          "--eval-every", "30", "--eval-episodes", "2", "--final-episodes", "2", "--eval-envs", "2",
          "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "generating iqlkit/pointmaze-umaze/stitch-v0" in out and "success rate over 2 episodes" in out
    run = tmp_path / "runs" / "iqlkit_pointmaze-umaze_stitch-v0" / "pointmaze-steps60-seed0"
    final = json.loads((run / "final.json").read_text())
    assert final["steps"] == 60 and 0.0 <= final["success_rate"] <= 1.0 and final["config"]["max_steps"] == 60
    assert final["config"]["tau"] == 0.7 and final["preset"] == "pointmaze"
    assert (run / "log.csv").read_text().count("\n") == 3 and (run / "checkpoint.pt").exists()


def test_cli_runs_that_differ_get_their_own_folders():
    from iqlkit.cli import run_name

    assert run_name("antmaze", {"tau": 0.7}, 0) != run_name("antmaze", {"tau": 0.8}, 0)
    assert run_name("antmaze", {"tau": 0.8, "max_steps": 20000}, 3) == "antmaze-steps20000-tau0.8-seed3"
    assert run_name("pointmaze", {}, 1) == "pointmaze-seed1"


@pytest.mark.parametrize("args, message", [
    (["train", "--steps", "0"], "--steps: must be >= 1"), (["train", "--steps", "-5"], "--steps: must be >= 1"),
    (["train", "--eval-every", "0"], "--eval-every: must be >= 1"),
    (["train", "--final-episodes", "0"], "--final-episodes: must be >= 1"),
    (["train", "--eval-envs", "0"], "--eval-envs: must be >= 1"), (["make-data", "--data-steps", "0"], "must be >= 1"),
    (["bench", "--steps", "0"], "must be >= 1"), (["bench", "--seeds", "0"], "must be >= 1"),
    (["bench", "--batch-size", "0"], "must be >= 1")])
def test_cli_refuses_bad_numbers_before_doing_anything(args, message, capsys):
    from iqlkit.cli import main

    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_cli_refuses_a_bad_device_an_unknown_kit_dataset_and_bad_hyperparameters_up_front(minari_dir):
    from iqlkit.cli import main

    with pytest.raises(ValueError, match="unknown device 'banana'"):
        main(["train", "--device", "banana"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            main(["train", "--device", "cuda"])
    with pytest.raises(ValueError, match=r"tau must lie strictly between 0 and 1"):
        main(["train", "--tau", "1.5"])
    with pytest.raises(SystemExit, match="unknown kit dataset 'iqlkit/pointmaze-bogus/stitch-v0'"):
        main(["train", "--dataset", "iqlkit/pointmaze-bogus/stitch-v0"])
    assert not any(minari_dir.rglob("*.hdf5"))  # nothing was generated or loaded


def test_cli_sweep_prints_the_ablation_table_and_resumes(minari_dir, tmp_path, capsys):
    from iqlkit.cli import main

    args = ["sweep", "--dataset", "iqlkit/pointmaze-umaze/stitch-v0", "--data-steps", "1500", "--steps", "20",
            "--axes", "tau", "depth", "--seeds", "0", "1", "--n-evals", "1", "--eval-episodes", "2", "--eval-envs", "2",
            "--out", str(tmp_path / "runs")]
    main(args)
    out = capsys.readouterr().out
    assert "| Expectile (tau) | 0.5 |" in out and "| Network depth (d) | 2 |" in out
    folder = tmp_path / "runs" / "sweeps" / "iqlkit_pointmaze-umaze_stitch-v0"
    assert (folder / "ablation.png").exists() and (folder / "table.md").read_text().strip() in out
    main(args)
    assert "16 runs already in" in capsys.readouterr().out  # 6 taus + 2 new depths, 2 seeds: nothing retrained
    with pytest.raises(SystemExit, match="unknown axes"):
        main(args[:9] + ["width"])


def test_cli_compare_writes_the_table_and_resumes_without_retraining(minari_dir, tmp_path, capsys):
    from iqlkit.cli import main

    args = ["compare", "--dataset", "iqlkit/pointmaze-umaze/stitch-v0", "--data-steps", "1500", "--steps", "20",
            "--methods", "iql", "bc", "--seeds", "0", "1", "--hidden", "16", "16", "--n-evals", "1",
            "--eval-episodes", "2", "--eval-envs", "2", "--workers", "1", "--out", str(tmp_path / "runs")]
    main(args)
    out = capsys.readouterr().out
    assert "networks (16, 16)" in out and "| iql | " in out and "| bc | " in out
    folder = tmp_path / "runs" / "compare" / "iqlkit_pointmaze-umaze_stitch-v0"
    table = (folder / "table.md").read_text()
    assert table.strip() in out and len(table.strip().splitlines()) == 4  # header, rule, one row per method
    csv_rows = (folder / "results.csv").read_text().strip().splitlines()
    assert csv_rows[0] == "method,seed,step,success_rate" and len(csv_rows) == 1 + 4  # 2 methods x 2 seeds x 1 eval
    checkpoint = folder / "iql+bc" / "checkpoint.pt"
    stamp = checkpoint.stat().st_mtime_ns
    main(args)  # the finished stack is read back, not trained again
    assert checkpoint.stat().st_mtime_ns == stamp and capsys.readouterr().out.count(table.strip()) == 1


def test_cli_help_and_missing_dataset(minari_dir, capsys):
    from iqlkit.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--dataset" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="minari download D4RL/antmaze/umaze-v1"):
        main(["train", "--dataset", "D4RL/antmaze/umaze-v1"])


def test_inspector_counts_what_is_in_the_data(minari_dir):
    import matplotlib.pyplot as plt

    from iqlkit.plots.dataset import episode_table, inspect_dataset

    ds = datagen.pointmaze("umaze", "navigate", n_steps=1500, episode_steps=300, seed=2)
    table = episode_table(ds)
    assert table["length"].sum() == 1500 and table["truncated"].all() and not table["terminated"].any()
    fig = inspect_dataset(ds)
    bars = fig.axes[3].patches
    assert len(fig.axes) >= 5 and bars[2].get_height() == (table["first_success"] >= 0).sum()
    assert bars[1].get_height() == len(table["length"])
    plt.close(fig)


def test_bench_prints_hardware_and_updates_per_second(capsys):
    from iqlkit.cli import main

    main(["bench", "--device", "cpu", "--steps", "5", "--hidden", "16", "16", "--batch-size", "32", "--seeds", "3",
          "--eval-episodes", "2", "--eval-envs", "2"])
    out = capsys.readouterr().out
    assert "device: " in out and "readable (IQL.update_n, eager)" in out and "updates/s" in out
    assert out.count("fast (= eager on a CPU)") == 2 and "x readable" in out and "ops/update (CPU proxy)" in out
    assert "evaluation: 2 AntMaze umaze episodes" in out and "2 env processes" in out


def test_goal_direction_follows_the_shortest_path():
    task = pointmaze.TASKS["medium"]
    obs = np.array([[-2.5, -2.5, 0, 0], [2.3, 2.5, 0, 0], [-2.5, 2.5, 0.5, 0]])  # start cell, goal cell, top-left
    np.testing.assert_array_equal(task.xy_cell(obs[:, :2]), [[6, 1], [1, 6], [1, 1]])
    np.testing.assert_allclose(pointmaze.goal_direction(task, obs), [[0, 1], [1, 0], [-0.5, -1]])  # up; to goal; down
    quality = pointmaze.action_quality(task, obs, np.array([[0, 1], [-1, 0], [0, 0]]))
    np.testing.assert_allclose(quality, [1, -1, 0])
