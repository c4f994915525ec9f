import numpy as np
import pytest
import torch

from iqlkit.envs import data as D


def toy_transitions():
    # three episodes: returns 1, 5, 3 (the second ends by time-out, not termination)
    rewards = np.array([0, 1, 2, 3, 0, 0, 3], dtype=float)
    terminals = np.array([0, 1, 0, 0, 0, 0, 1], dtype=float)
    ends = np.array([0, 1, 0, 1, 0, 0, 1], dtype=float)
    obs = np.arange(14, dtype=float).reshape(7, 2)
    return D.Transitions.from_arrays(obs, np.full((7, 1), 1.0), rewards, obs + 1, terminals, ends)


def test_episode_returns_and_top_fraction():
    data = toy_transitions()
    torch.testing.assert_close(data.episode_returns(), torch.tensor([1.0, 5.0, 3.0]))
    best = D.top_fraction(data, 0.34)
    assert len(best) == 2 and best.rewards.sum() == 5.0


def test_reward_preprocessing_matches_the_authors():
    data = toy_transitions()
    torch.testing.assert_close(D.shift_rewards(data).rewards, data.rewards - 1)
    torch.testing.assert_close(D.scale_by_return_range(data).rewards, data.rewards / 4.0 * 1000)
    assert D.preprocess_rewards(data, "none") is data
    with pytest.raises(ValueError, match="unknown reward"):
        D.preprocess_rewards(data, "double")


def test_clip_and_normalise():
    data = toy_transitions()
    assert D.clip_actions(data).actions.max() == pytest.approx(1 - 1e-5)
    normed, norm = D.normalize_observations(data)
    assert normed.observations.mean(0).abs().max() < 1e-5
    np.testing.assert_allclose(norm(data.next_observations.numpy()), normed.next_observations.numpy(), rtol=1e-5)


def test_sample_draws_rows_that_belong_together():
    data = toy_transitions()
    b = data.sample(64, torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.next_observations, b.observations + 1)
    assert b.observations.shape == (64, 2) and b.rewards.shape == (64,)


def test_mismatched_shapes_say_what_is_wrong():
    with pytest.raises(ValueError, match="rewards has 3 rows but observations has 4"):
        D.Transitions.from_arrays(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(3), np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="next_observations"):
        D.Transitions.from_arrays(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(4), np.zeros((4, 3)), np.zeros(4))


def write_minari(tmp_path, monkeypatch, dict_obs: bool):
    """A two-episode Minari dataset written locally, in the real schema (continuing goal task when dict_obs)."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    box = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    goal = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    obs_space = gym.spaces.Dict(observation=box, achieved_goal=goal, desired_goal=goal) if dict_obs else box
    episodes = []
    for e in range(2):
        T = 5
        o = np.arange((T + 1) * 3, dtype=float).reshape(T + 1, 3) + 100 * e
        obs = {"observation": o, "achieved_goal": o[:, :2], "desired_goal": np.full((T + 1, 2), float(e))} if dict_obs else o
        rewards = [0.0, 0.0, 1.0, 1.0, 1.0] if e == 0 else [0.0] * T
        episodes.append(EpisodeBuffer(id=e, observations=obs, actions=np.full((T, 2), 0.5), rewards=rewards,
                                      terminations=[False] * T, truncations=[False] * (T - 1) + [True]))
    minari.create_dataset_from_buffers("test/toy/goal-v0", episodes, action_space=gym.spaces.Box(-1, 1, (2,)),
                                       observation_space=obs_space)
    return "test/toy/goal-v0"


def test_load_minari_dict_observations_goal_conditioned_and_cut_at_success(tmp_path, monkeypatch, capsys):
    dataset_id = write_minari(tmp_path, monkeypatch, dict_obs=True)
    raw = D.load_minari(dataset_id)
    assert len(raw) == 10 and raw.obs_dim == 5 and raw.terminals.sum() == 0 and raw.episode_ends.sum() == 2
    torch.testing.assert_close(raw.observations[1, 3:], torch.zeros(2))  # desired goal appended
    cut = D.load_minari(dataset_id, terminate_on_success=True)
    assert len(cut) == 3 + 5 and cut.terminals.tolist()[:3] == [0, 0, 1] and cut.episode_ends.sum() == 2
    assert "8 of 10 transitions" in capsys.readouterr().out
    assert D.load_minari(dataset_id, goal_conditioned=False).obs_dim == 3


def test_load_minari_box_observations(tmp_path, monkeypatch):
    data = D.load_minari(write_minari(tmp_path, monkeypatch, dict_obs=False), verbose=False)
    torch.testing.assert_close(data.next_observations[:4], data.observations[1:5])


def test_missing_dataset_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="minari download D4RL/antmaze/umaze-v1"):
        D.load_minari("D4RL/antmaze/umaze-v1")


def test_bad_data_is_refused_with_the_field_the_step_and_the_episode():
    obs, act, ends = np.zeros((7, 2)), np.zeros((7, 1)), np.array([0, 1, 0, 1, 0, 0, 1], dtype=float)
    rewards = np.zeros(7)
    rewards[5] = np.nan  # step 5: the third episode (episodes end at steps 1 and 3)
    with pytest.raises(ValueError, match=r"rewards has 1 NaN or infinite values \(first at step 5, in episode 2\)"):
        D.Transitions.from_arrays(obs, act, rewards, obs, np.zeros(7), ends)
    obs_inf = obs.copy()
    obs_inf[0, 1] = np.inf
    with pytest.raises(ValueError, match="observations has 1 NaN or infinite values .first at step 0, in episode 0"):
        D.Transitions.from_arrays(obs_inf, act, np.zeros(7), obs, np.zeros(7), ends)
    with pytest.raises(ValueError, match="has no steps"):
        D.Transitions.from_arrays(np.zeros((0, 2)), np.zeros((0, 1)), np.zeros(0), np.zeros((0, 2)), np.zeros(0))
    wide = D.Transitions.from_arrays(obs, np.full((7, 1), 2.0), np.zeros(7), obs, np.zeros(7), ends)  # Pendulum's +-2
    with pytest.raises(ValueError, match=r"actions reach 2, outside \[-1, 1\].*rescale"):
        D.clip_actions(wide)


def test_a_discrete_action_dataset_is_refused_by_name(tmp_path, monkeypatch):
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    episode = EpisodeBuffer(id=0, observations=np.zeros((4, 3)), actions=np.array([0, 1, 2]), rewards=[0.0] * 3,
                            terminations=[False, False, True], truncations=[False] * 3)
    minari.create_dataset_from_buffers("test/discrete/toy-v0", [episode], action_space=gym.spaces.Discrete(3),
                                       observation_space=gym.spaces.Box(-1, 1, (3,), np.float64))
    with pytest.raises(ValueError, match=r"needs continuous actions .*test/discrete/toy-v0 has Discrete\(3\)"):
        D.load_minari("test/discrete/toy-v0")


def test_a_dataset_write_cut_short_leaves_the_old_dataset_and_no_half_one(tmp_path, monkeypatch):
    import minari

    from iqlkit.envs import datagen

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    old = datagen.pointmaze("umaze", "stitch", n_steps=300, seed=0)
    real = minari.create_dataset_from_buffers

    def cut_short(dataset_id, buffers, **kwargs):  # writes the new dataset's files, then the process is interrupted
        real(dataset_id, buffers[:1], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(minari, "create_dataset_from_buffers", cut_short)
    with pytest.raises(KeyboardInterrupt):
        datagen.pointmaze("umaze", "stitch", n_steps=600, seed=1)
    assert set(minari.list_local_datasets()) == {old.id}
    assert minari.load_dataset(old.id).total_steps == 300  # the old one, whole
    assert not list(tmp_path.glob(".iqlkit-writing-*")), "the interrupted write's folder is cleaned up"
    monkeypatch.setattr(minari, "create_dataset_from_buffers", real)
    assert datagen.pointmaze("umaze", "stitch", n_steps=600, seed=1).total_steps == 600  # a full write replaces it
