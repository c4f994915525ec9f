import json

import numpy as np
import pytest

from iqlkit.envs import antmaze
from iqlkit.envs.data import load_minari


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield antmaze.record("umaze", n_steps=2400, episode_steps=300, seed=0)


def test_recorded_data_has_minari_antmaze_schema(recorded):
    episodes = list(recorded.iterate_episodes())
    first = episodes[0].observations
    assert first["observation"].shape[1] == 27 and first["desired_goal"].shape[1] == 2
    assert all(not any(ep.terminations) and ep.truncations[-1] for ep in episodes)  # continuing task
    goals = {tuple(np.round(ep.observations["desired_goal"][0], 1)) for ep in episodes}
    assert len(goals) > 1  # goals differ per episode
    for ep in episodes:  # reward 1 exactly on the steps within 0.45 of the goal
        dist = np.linalg.norm(ep.observations["achieved_goal"][1:] - ep.observations["desired_goal"][1:], axis=1)
        np.testing.assert_array_equal(np.asarray(ep.rewards), (dist <= 0.45).astype(float))
    assert any(sum(ep.rewards) > 1 for ep in episodes)  # the sitting-at-goal tail is there


def test_relabelling_cuts_at_first_success_and_keeps_goal_input(recorded):
    raw = load_minari(recorded, verbose=False)
    cut = load_minari(recorded, terminate_on_success=True, verbose=False)
    episodes = list(recorded.iterate_episodes())
    firsts = [int(np.argmax(np.asarray(ep.rewards) > 0)) for ep in episodes if sum(ep.rewards) > 0]
    # position (achieved_goal, which the 27-dim observation lacks) + observation + desired goal
    assert raw.obs_dim == 2 + 27 + 2 and load_minari(recorded, goal_conditioned=False, verbose=False).obs_dim == 29
    first = next(recorded.iterate_episodes()).observations
    np.testing.assert_allclose(raw.observations[0, :2].numpy(), first["achieved_goal"][0], rtol=1e-6)
    assert raw.terminals.sum() == 0 and cut.terminals.sum() == len(firsts)
    assert len(cut) == len(raw) - sum(len(ep.rewards) - f - 1 for ep, f in
                                      zip([e for e in episodes if sum(e.rewards) > 0], firsts))
    assert cut.rewards.sum() == len(firsts)  # one rewarded step per successful episode remains


def test_recorded_data_carries_minaris_eval_env_and_the_kit_corrects_umaze(recorded):
    minaris = antmaze.eval_env_factory("D4RL/antmaze/umaze-v1", recorded, minari_eval=True)()
    kits = antmaze.eval_env_factory("D4RL/antmaze/umaze-v1", recorded)()
    assert minaris.spec.kwargs["maze_map"] == antmaze.MINARI_UMAZE_EVAL_MAP  # as the real datasets carry it
    assert kits.spec.kwargs["maze_map"] == antmaze.EVAL_MAPS["umaze"]
    assert minaris.spec.max_episode_steps == kits.spec.max_episode_steps == 700
    assert minaris.unwrapped.continuing_task and kits.unwrapped.continuing_task
    a, _ = minaris.reset(seed=3)
    b, _ = kits.reset(seed=3)
    assert a["desired_goal"][0] > 0 > b["desired_goal"][0]  # mirrored: the goal sits on the other side


def test_dataset_names():
    assert antmaze.dataset_name("D4RL/antmaze/medium-diverse-v1") == "medium-diverse"
    assert antmaze.dataset_name("D4RL/antmaze/umaze-v1") == "umaze"
    assert antmaze.dataset_name("iqlkit/antmaze-large-play/recorded-v0") == "large-play"
    with pytest.raises(ValueError, match="not an AntMaze"):
        antmaze.dataset_name("D4RL/pen/human-v2")


@pytest.mark.parametrize("path", ["--no-fast", "--fast"])  # the GPU's default path, run here on the CPU
def test_cli_trains_on_recorded_antmaze_through_the_downloaded_data_path(recorded, tmp_path, capsys, path):
    from iqlkit.cli import main

    main(["train", "--dataset", recorded.spec.dataset_id, "--steps", "20", "--eval-every", "20",
          "--eval-episodes", "2", "--final-episodes", "2", "--eval-envs", "2", "--out", str(tmp_path), path])
    out = capsys.readouterr().out
    assert "antmaze: tau=0.9, beta=10.0" in out and "cut at their first success" in out
    assert "normalised score" in out  # the recorded data carries reference scores, as Minari's do


def test_umaze_evaluation_uses_the_data_maze_not_minaris_mirror():
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    data_maze = gym.make("AntMaze_UMaze-v4").unwrapped.maze.maze_map
    walls = [[1 if c == 1 else 0 for c in row] for row in antmaze.EVAL_MAPS["umaze"]]
    assert walls == [[1 if c == 1 else 0 for c in row] for row in data_maze]
    env = antmaze.make_eval_env("umaze")
    obs, _ = env.reset(seed=0)
    assert obs["achieved_goal"][1] < 0 < obs["desired_goal"][1]  # start bottom-left, goal top-left
    with pytest.raises(ValueError, match="minari download"):
        antmaze.eval_env_factory("D4RL/antmaze/umaze-v1", None, minari_eval=True)


# What Minari's D4RL/antmaze/*-v1 datasets hold (written by minari.DataCollector with the generation script's
# StepDataCallback): per episode, dict observations and infos with one entry per observation (the reset's first).
MINARI_OBSERVATIONS = {"observation": 27, "achieved_goal": 2, "desired_goal": 2}
MINARI_INFOS = {"success": ((), np.bool_), "qpos": ((15,), np.float64), "qvel": ((14,), np.float64),
                "goal": ((2,), np.float64)}


# The ant is a chaotic simulation: on another CPU, where another BLAS kernel rounds its numpy matmuls differently, the
# same seed walks another trajectory. So what the generated data shows of the ant is asserted over several episodes,
# with margins measured here: 144 umaze-play episodes of the shipped ant, 48 seeds under each of three OpenBLAS
# kernels (OPENBLAS_CORETYPE Haswell, this CPU's; Sandybridge; Prescott), standing in for other CPUs (2026-12-04):
# goal reached in 0.67, 0.69 and 0.79 of the episodes; walked 35.3 m per episode (sd 13.6 m, a random ant: about
# 1 m); after its first success 0.52 of the steps at the goal (sd 0.21 over episodes). What does not depend on
# the simulation (the schema, the goals, the cut at the first success, the same bytes from the same seed) is exact.
FULL = 16  # full 700-step episodes in the generated data, then one of 200 steps


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield antmaze.generate("umaze", "play", n_steps=FULL * 700 + 200, seed=0, workers=2, ref_episodes=2)


def test_generated_data_has_minaris_antmaze_schema_field_by_field(generated):
    import gymnasium as gym

    minaris_env = gym.make("AntMaze_UMaze-v4")  # the spaces Minari stores are its env's
    assert generated.observation_space == minaris_env.observation_space
    assert generated.action_space == minaris_env.action_space == gym.spaces.Box(-1, 1, (8,), np.float32)
    episodes = list(generated.iterate_episodes())
    assert [len(ep.rewards) for ep in episodes] == [700] * FULL + [200]  # time-outs at 700, then the rest
    for ep in episodes:
        n = len(ep.rewards)
        shapes = {k: (n + 1, d) for k, d in MINARI_OBSERVATIONS.items()}
        assert {k: v.shape for k, v in ep.observations.items()} == shapes
        assert all(v.dtype == np.float64 for v in ep.observations.values())
        assert ep.actions.shape == (n, 8) and ep.actions.dtype == np.float32 and np.abs(ep.actions).max() <= 1
        assert not ep.terminations.any() and ep.truncations[-1] and not ep.truncations[:-1].any()
        assert {k: (v.shape[1:], v.dtype) for k, v in ep.infos.items()} == MINARI_INFOS
        assert all(len(v) == n + 1 for v in ep.infos.values())
        np.testing.assert_array_equal(ep.infos["qpos"][:, :2], ep.observations["achieved_goal"])
        np.testing.assert_array_equal(ep.infos["qvel"], ep.observations["observation"][:, 13:])
        dist = np.linalg.norm(ep.observations["achieved_goal"] - ep.observations["desired_goal"], axis=1)
        np.testing.assert_array_equal(ep.infos["success"], dist <= 0.45)  # reward 1 within 0.45 of the goal
        np.testing.assert_array_equal(ep.rewards, (dist[1:] <= 0.45).astype(float))
    data_env, eval_env = generated.recover_environment(), generated.recover_environment(eval_env=True)
    assert data_env.spec.id == "AntMaze_UMaze-v4" and data_env.spec.max_episode_steps == 700
    assert data_env.spec.kwargs["maze_map"] == antmaze.EVAL_MAPS["umaze"]  # play: D4RL's one start and goal
    assert data_env.spec.kwargs["continuing_task"] and not data_env.spec.kwargs["reset_target"]
    kits = antmaze.make_eval_env("umaze").spec
    assert (eval_env.spec.id, eval_env.spec.kwargs, eval_env.spec.max_episode_steps) == (
        kits.id, kits.kwargs, kits.max_episode_steps)
    meta = generated.storage.metadata  # ref_max_score: the mean return of the noiseless ant's reference episodes
    weights = str(antmaze.WEIGHTS)
    assert meta["ref_min_score"] == 0 and meta["num_episodes_average_score"] == 2
    assert meta["ref_max_score"] == np.mean([antmaze.eval_return(weights, "umaze", seed) for seed in (0, 1)])


def binomial_floor(p: float, n: int, measured_over: int, sds: float = 4.0) -> float:
    """The lowest success share of n episodes that a success rate p, itself measured over `measured_over` episodes,
    explains: p - sds x sqrt(p (1 - p) (1/n + 1/measured_over))."""
    return p - sds * np.sqrt(p * (1 - p) * (1 / n + 1 / measured_over))


def test_generated_ant_walks_to_its_goal_and_keeps_it(generated):
    task = antmaze.TASKS["umaze"]
    episodes = list(generated.iterate_episodes())[:FULL]
    paths, reached, at_goal = [], [], []
    for ep in episodes:
        xy, goal = ep.observations["achieved_goal"], ep.observations["desired_goal"]
        assert np.ptp(goal, axis=0).max() == 0  # one goal per episode, kept once reached
        assert tuple(task.xy_cell(xy[0])) == task.start and tuple(task.xy_cell(goal[0])) == task.goal
        paths.append(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())
        reached.append(ep.rewards.max() > 0)
        if reached[-1]:
            at_goal.append(np.mean(ep.rewards[int(np.argmax(ep.rewards)):]))
    assert np.mean(paths) > 10, paths  # the ant walks: measured 35.3 m, sd of a mean of 16 about 3.4 m
    acceptance = json.loads(antmaze.WEIGHTS.read_text())["acceptance"]  # the ant's check: 100 umaze episodes
    floor = binomial_floor(acceptance["umaze_success_noise"], FULL, acceptance["episodes"])
    assert np.mean(reached) >= floor, (np.mean(reached), floor)
    assert np.mean(at_goal) > 0.2, at_goal  # it stays around the goal (continuing task): measured 0.52, sd 0.21


def test_data_summary_counts_goals_tails_and_maze_coverage(generated):
    from iqlkit.envs.data import load_minari
    from iqlkit.plots.antmaze import dataset_maps, maze_task
    from iqlkit.plots.dataset import data_summary, episode_table

    summary = data_summary(generated, maze_task(dataset_maps(generated)[0]))
    table = episode_table(generated)
    assert summary["episodes"] == FULL + 1 and summary["steps"] == FULL * 700 + 200
    assert summary["reach_goal"] == np.mean(table["first_success"] >= 0)
    kept = len(load_minari(generated, terminate_on_success=True, verbose=False))
    assert summary["before_goal"] == kept / summary["steps"] < 1  # what the relabelling keeps: the tail goes
    assert 0.5 <= summary["floor_visited"] <= 1  # umaze-play walks from D4RL's start round the wall to its goal


def test_generation_is_seeded_per_episode_not_per_worker(generated, monkeypatch, tmp_path):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    short = antmaze.generate("umaze", "play", n_steps=100, seed=0, workers=1, ref_episodes=0)
    first = next(generated.iterate_episodes())
    np.testing.assert_array_equal(next(short.iterate_episodes()).actions, first.actions[:100])
    assert "ref_max_score" not in short.storage.metadata  # no reference episodes, no reference scores


@pytest.mark.parametrize("mode", antmaze.MODES)
def test_play_draws_marked_cells_and_diverse_draws_anywhere(mode):
    import gymnasium_robotics.envs.maze.maps as maps

    task, env = antmaze.TASKS["medium"], antmaze.make_data_env("medium", mode)
    marked = {(i, j) for i, row in enumerate(maps.MEDIUM_MAZE_DIVERSE_GR) for j, c in enumerate(row) if c == "c"}
    cells = set()
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        start, goal = tuple(task.xy_cell(obs["achieved_goal"])), tuple(task.xy_cell(obs["desired_goal"]))
        assert start != goal
        cells |= {start, goal}
    assert (cells <= marked) == (mode == "play") and len(cells) >= 4


def test_kits_dataset_ids_name_their_evaluation_task():
    assert antmaze.dataset_name("iqlkit/antmaze-umaze-play-v0") == "umaze"  # D4RL's umaze: one start, one goal
    assert antmaze.dataset_name("iqlkit/antmaze-umaze-diverse-v0") == "umaze-diverse"
    assert antmaze.dataset_name("iqlkit/antmaze-large-play-v0") == "large-play"
    with pytest.raises(ValueError, match="unknown maze/mode"):
        antmaze.generate("umaze", "stitch")


def test_cli_trains_on_generated_antmaze_through_the_downloaded_data_path(generated, tmp_path, capsys):
    from iqlkit.cli import main

    main(["train", "--dataset", "iqlkit/antmaze-umaze-play-v0", "--steps", "20", "--eval-every", "20",
          "--eval-episodes", "2", "--final-episodes", "2", "--eval-envs", "2", "--out", str(tmp_path), "--no-fast"])
    out = capsys.readouterr().out
    assert f"of {FULL * 700 + 200:,} transitions from iqlkit/antmaze-umaze-play-v0" in out  # read as a download
    reached = sum(ep.rewards.max() > 0 for ep in generated.iterate_episodes())
    assert f"{reached} episodes cut at their first success" in out and "normalised score" in out


def test_cli_make_data_random_mode_keeps_the_plumbing_recorder(monkeypatch, tmp_path, capsys):
    from iqlkit.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    main(["make-data", "--task", "antmaze-umaze", "--mode", "random", "--data-steps", "300"])
    assert "wrote iqlkit/antmaze-umaze/recorded-v0: 1 episodes, 300 steps" in capsys.readouterr().out


@pytest.mark.parametrize("maze", sorted(antmaze.TASKS))
@pytest.mark.parametrize("mode", ["play", "diverse"])
def test_cli_makes_each_of_the_six_datasets_and_trains_on_it(maze, mode, monkeypatch, tmp_path, capsys):
    from iqlkit.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    main(["make-data", "--task", f"antmaze-{maze}", "--mode", mode, "--data-steps", "150", "--workers", "1",
          "--ref-episodes", "0"])
    dataset_id = f"iqlkit/antmaze-{maze}-{mode}-v0"
    out = capsys.readouterr().out
    assert f"wrote {dataset_id}: 1 episodes, 150 steps" in out and "of the floor cells visited" in out
    data = load_minari(dataset_id, verbose=False)
    assert (len(data), data.obs_dim) == (150, 2 + 27 + 2)  # position, observation, goal: as a download loads
    main(["train", "--dataset", dataset_id, "--steps", "4", "--eval-every", "4", "--eval-episodes", "1",
          "--final-episodes", "1", "--eval-envs", "1", "--out", str(tmp_path / "run"), "--no-fast"])
    out = capsys.readouterr().out
    assert f"of 150 transitions from {dataset_id}" in out and antmaze.dataset_name(dataset_id) in out
