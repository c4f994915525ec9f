import numpy as np
import pytest

from iqlkit import antmaze
from iqlkit.data import load_minari


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
