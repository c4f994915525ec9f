import json

import numpy as np
import pytest

from iqlkit.envs import antmaze, controller, sac
from iqlkit.envs.antmaze import TASKS


def antmaze_ant():
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    return gym.make("AntMaze_UMaze-v4", continuing_task=True, reset_target=False)


def test_training_ant_is_antmazes_ant_joint_for_joint():
    maze_env = antmaze_ant()
    maze_env.reset(seed=0)
    maze, ant = maze_env.unwrapped.ant_env, controller.make_ant().unwrapped
    ant.reset(seed=0)
    assert maze.frame_skip == ant.frame_skip and maze.dt == ant.dt == 0.05
    assert maze.model.opt.timestep == ant.model.opt.timestep and maze.model.nq == ant.model.nq == 15
    names = [ant.model.joint(i).name for i in range(ant.model.njnt)]
    assert names == [maze.model.joint(i).name for i in range(maze.model.njnt)]
    for name in names:  # type, limits, addresses, damping, armature of every joint
        a, m = ant.model.joint(name), maze.model.joint(name)
        for field in ("type", "range", "qposadr", "dofadr", "damping", "armature", "limited"):
            np.testing.assert_array_equal(getattr(a, field), getattr(m, field), err_msg=f"{name}.{field}")
    for i in range(ant.model.nu):  # the eight motors
        assert ant.model.actuator(i).name == maze.model.actuator(i).name
        np.testing.assert_array_equal(ant.model.actuator(i).gear, maze.model.actuator(i).gear)
        np.testing.assert_array_equal(ant.model.actuator(i).ctrlrange, maze.model.actuator(i).ctrlrange)
    for i in range(1, ant.model.nbody):  # torso and legs, in the same order, with the same masses and inertias
        assert ant.model.body(i).name == maze.model.body(i).name
        np.testing.assert_allclose(ant.model.body(i).mass, maze.model.body(i).mass)
        np.testing.assert_allclose(ant.model.body(i).inertia, maze.model.body(i).inertia)
    # the same state gives the same 27-dim observation, and the same actions the same next observations (the
    # maze's ant moved to the centre of its cell, 2 m from the walls, which the random actions never reach)
    maze.set_state(np.r_[TASKS["umaze"].cell_xy(TASKS["umaze"].start), maze.data.qpos[2:]], maze.data.qvel)
    maze_obs = {"observation": maze._get_obs()[2:]}
    ant.set_state(np.r_[0.0, 0.0, maze.data.qpos[2:]], maze.data.qvel.copy())
    ant.data.qacc_warmstart[:] = maze.data.qacc_warmstart  # the contact solver's starting point, part of the state
    np.testing.assert_allclose(ant._get_obs(), maze_obs["observation"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 8)
        maze_obs = maze_env.step(action)[0]
        np.testing.assert_allclose(ant.step(action)[0], maze_obs["observation"], atol=1e-9)


def tilted(obs: np.ndarray, degrees: float, z: float | None = None) -> np.ndarray:
    """A copy of an Ant observation with the torso rotated `degrees` about the x axis (and at height z)."""
    out = obs.copy()
    half = np.radians(degrees) / 2
    out[1:5] = [np.cos(half), np.sin(half), 0, 0]  # quaternion (w, x, y, z)
    if z is not None:
        out[0] = z
    return out


def test_a_fall_is_a_torso_tipped_past_horizontal_and_a_bounce_is_not_one():
    obs, _ = controller.make_ant().reset(seed=0)
    torsos = np.stack([tilted(obs, 0), tilted(obs, 80), tilted(obs, 100), tilted(obs, 180), tilted(obs, 0, z=1.3),
                       tilted(obs, 120, z=1.3), tilted(obs, 10, z=0.15)])
    np.testing.assert_allclose(controller.upright(torsos), np.cos(np.radians([0, 80, 100, 180, 0, 120, 10])),
                               atol=1e-12)
    # upright, tipped 80 (not past horizontal), 100 and 180 degrees (on its back), bounced 1.3 m up upright and
    # tipped, low but upright
    np.testing.assert_array_equal(controller.fallen(torsos), [False, False, True, True, False, True, False])
    np.testing.assert_array_equal(controller.bounced(torsos), [False, False, False, False, True, False, False])


def test_waypoints_follow_d4rls_rule():
    task, rng = TASKS["umaze"], np.random.default_rng(0)
    goal = task.cell_xy(task.goal) + [0.3, -0.2]
    dist = task.distances()
    start = task.cell_xy(task.start)  # bottom-left; the path runs right, up the right side, then left
    offsets = np.array([controller.waypoint(task, dist, start, goal, rng) - task.cell_xy((3, 2)) for _ in range(200)])
    assert offsets.min() >= 0 and offsets.max() < 1 and offsets.std(0).min() > 0.2  # U[0, 1 m)^2, fresh each call
    for cell in ((1, 2), task.goal):  # from the goal's neighbour and from inside its cell: the goal itself
        np.testing.assert_array_equal(controller.waypoint(task, dist, task.cell_xy(cell), goal, rng), goal)
    d = controller.direction(task, dist, start, goal, rng)
    assert np.isclose(np.linalg.norm(d), 1) and d[0] > 0.9  # a unit vector towards the next cell, to the right


def test_direction_env_reward_command_and_falls():
    env = controller.direction_env(noise=0.0, episode_steps=300, jitter=0.0)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (29,) and np.isclose(np.linalg.norm(obs[27:]), 1)
    first, commands = obs[27:].copy(), []
    action = np.full(8, 0.5)
    for t in range(controller.RESAMPLE_EVERY):
        obs, reward, terminated, _, info = env.step(action)
        u = 1 - 2 * (obs[2] ** 2 + obs[3] ** 2)
        assert np.isclose(reward, 10 * min(info["speed"], 1.5) + 3 * u - 0.5 * np.sum(action ** 2))
        assert not terminated
        commands.append(obs[27:].copy())
    np.testing.assert_array_equal(commands[-2], first)  # held for 100 steps without jitter, then redrawn
    assert not np.allclose(commands[-1], first)
    ant = env.unwrapped
    ant.set_state(np.r_[ant.data.qpos[:3], 0, 1, 0, 0, ant.data.qpos[7:]], ant.data.qvel)  # on its back
    assert env.step(action)[2]  # a fall ends the episode


def test_training_commands_turn_a_little_at_each_step():
    env = controller.direction_env(noise=0.0, episode_steps=300)
    obs, _ = env.reset(seed=2)
    angles = [np.arctan2(obs[28], obs[27])]
    for _ in range(controller.RESAMPLE_EVERY - 1):
        obs = env.step(np.zeros(8))[0]
        angles.append(np.arctan2(obs[28], obs[27]))
    turns = np.angle(np.exp(1j * np.diff(angles)))
    assert 0.5 * controller.COMMAND_JITTER < turns.std() < 1.5 * controller.COMMAND_JITTER  # 99 draws of N(0, 0.1^2)
    assert abs(turns.mean()) < 4 * controller.COMMAND_JITTER / np.sqrt(len(turns))


def test_shipped_controller_is_small_documented_and_walks():
    assert controller.WEIGHTS.stat().st_size < 1_000_000
    meta = json.loads(controller.WEIGHTS.with_suffix(".json").read_text())
    assert {"command", "seed", "steps", "wall_s", "hardware", "versions", "acceptance"} <= set(meta)
    assert "controller train" in meta["command"] and meta["versions"]["stable-baselines3"]
    # along the command with the data's noise (a new command at step 100), over 8 episodes of 200 steps: the ant is
    # chaotic, so one episode's outcome differs from CPU to CPU. Measured (72 episodes under three OpenBLAS kernels,
    # 2026-12-04, the shipped ant): 1.34 m/s, sd 0.23 over episodes: the mean of 8 lies 4 sd of a mean above 1.0
    speeds = [controller.direction_episode(str(controller.WEIGHTS), seed, 200, controller.NOISE)[0]
              for seed in range(8)]
    assert np.mean(speeds) >= 1.0, speeds


def test_check_reports_every_figure_against_its_target():
    figures = antmaze.check_controller(episodes=2, steps=150, workers=1, seed=3)
    assert set(controller.TARGETS) <= set(figures) and figures["episodes"] == 2
    assert figures["speed"] > 0 and all(figures[k] in (0, 0.5, 1) for k in figures if k.endswith(("rate", "noise",
                                                                                                 "success")))
    text = controller.report(figures)
    assert text.count("target") == len(controller.TARGETS) and "umaze_success_noise" in text
    assert "bounce_rate" in text and "large_success_noise" in text  # reported beside the targets


def test_sac_training_checkpoints_resumes_and_exports_the_actor_mean(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import SAC

    out = tmp_path / "run"
    kwargs = dict(n_envs=2, hidden=(16, 16), learning_starts=100, checkpoint_every=100, log_every=100)
    path = controller.train(out, steps=200, **kwargs)
    assert json.loads((out / "state.json").read_text())["steps"] == 200
    path = controller.train(out, steps=300, **kwargs)  # resumes from the checkpoint
    assert "resuming" in capsys.readouterr().out
    assert json.loads((out / "state.json").read_text())["steps"] == 300
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,wall_s,steps_per_s") and [r.split(",")[0] for r in log[1:]] == ["100", "200", "300"]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["steps"] == 300 and meta["updates"] == 150 and "--hidden 16 16" in meta["command"]
    model = SAC.load(out / "model.zip", device="cpu")
    obs = np.random.default_rng(0).normal(size=(5, 29)).astype(np.float32)
    np.testing.assert_allclose(controller.Controller(path)(obs[:, :27], obs[:, 27:]),
                               model.predict(obs, deterministic=True)[0], atol=1e-5)
    import torch  # the exported log-std head samples as SB3's actor does: tanh(mu + sigma eps)

    mu, log_std, _ = model.actor.get_action_dist_params(torch.as_tensor(obs))
    eps = np.random.default_rng(1).normal(size=mu.shape)
    expected = np.tanh(mu.detach().numpy() + np.exp(log_std.detach().numpy()) * eps)
    np.testing.assert_allclose(sac.TextPolicy(path).sample(obs, np.random.default_rng(1)), expected, atol=1e-5)


def test_weights_written_as_text_read_back_bit_for_bit():
    a = (np.random.default_rng(0).normal(size=(29, 7)) * 10.0 ** np.arange(-20, 15, 5)).astype(np.float32)  # 1e-20..1e10
    back = sac.decode(sac.encode(a), list(a.shape))
    assert back.dtype == np.float32 and np.array_equal(back, a)


@pytest.mark.parametrize("content, message", [(None, "no policy weights at"),
                                              ("{not json", "is not a policy file"),
                                              ('{"layers": [{"shape": [3, 2], "w": "1 2 3", "b": "0"}]}',
                                               "is not a policy file")])
def test_check_on_missing_or_corrupt_weights_names_the_file(tmp_path, content, message):
    from iqlkit.cli import main

    path = tmp_path / "weights.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises((FileNotFoundError, ValueError), match=message) as info:
        main(["controller", "check", "--weights", str(path), "--episodes", "1", "--workers", "1"])
    assert str(path) in str(info.value)
