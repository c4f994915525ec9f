"""Offline-to-online fine-tuning: the replay buffer, rewards and terminals of new transitions, exact resume mid-episode,
the baselines, the command line, and fine-tuning that fixes a policy its offline data could not."""
import csv
import json
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch

from iqlkit import cli
from iqlkit.engine.baselines import AWACLike
from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.engine.online import VARIANTS, OnlineSource, ReplayBuffer, finetune, online_config
from iqlkit.engine.train import fit_many
from iqlkit.envs.data import Transitions, flatten_observations, prepare
from iqlkit.envs.evaluate import evaluate
from iqlkit.envs.maze import MazeTask
from iqlkit.envs.pointmaze import TASKS, make_env
from iqlkit.experiments.finetuning import by_seed, goal_rates, joined, largest_drop, series, values_at

CFG = online_config(IQLConfig(hidden=(16, 16), batch_size=32, reward="minus_one"))
UMAZE = partial(make_env, TASKS["umaze"], True)


def random_data(n=300, obs_dim=6, act_dim=2, seed=0) -> Transitions:
    """Offline transitions of the right shapes (their content does not matter here), episodes of 30 steps."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim))
    return Transitions.from_arrays(obs, rng.uniform(-1, 1, (n, act_dim)), (rng.random(n) < 0.05).astype(float),
                                   obs + 0.01 * rng.normal(size=obs.shape), np.zeros(n), np.arange(n) % 30 == 29)


def weights(learner) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for part in ("actor", "critic", "critic_target", "value_net")
                      for p in getattr(learner, part).parameters()])


def actor(learner) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in learner.actor.parameters()])


# ---- the buffer ------------------------------------------------------------------------------------------------
def test_the_buffer_starts_with_the_offline_data_grows_and_refuses_past_capacity():
    data = prepare(random_data(50), CFG)
    buffer = ReplayBuffer(data, n_agents=2, capacity=54)
    for k in (0, 1):
        view = buffer.view(k)
        torch.testing.assert_close(view.packed, data.packed, rtol=0, atol=0)
        torch.testing.assert_close(view.observations, data.observations, rtol=0, atol=0)
    new = torch.arange(2 * 3 * 16, dtype=torch.float32).view(2, 3, 16)  # 3 rows per agent, width 6 + 2 + 1 + 6 + 1
    buffer.add(new, torch.tensor([[0.0, 0, 1], [0, 1, 0]]))
    assert len(buffer) == 53 and buffer.n_offline == 50
    torch.testing.assert_close(buffer.view(1).packed[50:], new[1], rtol=0, atol=0)
    torch.testing.assert_close(buffer.view(1).episode_ends[50:], torch.tensor([0.0, 1, 0]))
    batch = buffer.sample_agents(2, 4000, [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)])
    assert batch.observations.shape == (2, 4000, 6)
    assert set(batch.rewards[1].tolist()) - set(data.rewards.tolist()) == {new[1, r, 8].item() for r in range(3)}
    assert 0.03 < buffer.online_share()[0] < 0.09  # 3 of 53 rows are online
    with pytest.raises(ValueError, match="buffer is full .*53 of 54 rows; 3 more"):
        buffer.add(new, torch.zeros(2, 3))


def test_the_buffer_state_holds_only_its_online_rows_and_round_trips():
    data = prepare(random_data(50), CFG)
    buffer = ReplayBuffer(data, n_agents=2, capacity=60)
    buffer.add(torch.randn(2, 4, 16), torch.zeros(2, 4))
    state = buffer.state_dict()
    assert state["rows"].shape == (2, 4, 16) and state["rows"].untyped_storage().nbytes() == 2 * 4 * 16 * 4
    again = ReplayBuffer(data, n_agents=2, capacity=60)
    again.load_state_dict(state)
    torch.testing.assert_close(again.rows[:, :54], buffer.rows[:, :54], rtol=0, atol=0)
    buffer.discard()  # the no-offline-data baseline: rows from 0, all of them online, all saved
    buffer.add(torch.randn(2, 5, 16), torch.zeros(2, 5))
    fresh = ReplayBuffer(data, n_agents=2, capacity=60)
    fresh.load_state_dict(buffer.state_dict())
    assert (fresh.size, fresh.n_offline) == (5, 0)
    torch.testing.assert_close(fresh.view(0).packed, buffer.view(0).packed, rtol=0, atol=0)


def test_the_offline_phase_draws_exactly_what_fit_many_does():
    data = random_data(200)
    config = online_config(IQLConfig(hidden=(16, 16), batch_size=32, reward="minus_one"))
    reference, _ = fit_many(data, config, seeds=[3, 4], steps=25, log_every=5, eval_every=25, progress=False)
    torch.manual_seed(3)
    learner = IQL(6, 2, [config] * 2, seeds=[3, 4])
    source = OnlineSource(learner, prepare(data, config), UMAZE, [3, 4], offline_steps=25, online_steps=10)
    learner.update_n(source, 25)
    torch.testing.assert_close(weights(learner), weights(reference), rtol=0, atol=0)


def tensors(state) -> list[torch.Tensor]:
    """Every tensor of a nested state dict, in a fixed order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state, key=str) for t in tensors(state[k])]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in tensors(v)]
    return []


def test_fine_tuning_from_an_initial_state_leaves_it_untouched_and_repeats_exactly():
    data = random_data()
    offline, _ = fit_many(data, CFG, seeds=[0, 1], steps=20, log_every=10, eval_every=20, progress=False)
    init = offline.state_dict()
    saved = [t.clone() for t in tensors(init)]
    runs = [finetune(data, CFG, UMAZE, 20, 10, seeds=(0, 1), variant=variant, n_envs=2, init_state=init,
                     log_every=10, eval_every=10, progress=False)[0] for variant in ("iql", "frozen-policy", "iql")]
    for before, after in zip(saved, tensors(init), strict=True):  # Adam's moments and rates included
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    torch.testing.assert_close(weights(runs[2]), weights(runs[0]), rtol=0, atol=0)


# ---- rewards and terminals of new transitions -------------------------------------------------------------------
class Scripted(gym.Env):
    """Reward 1 at step `goal` of each episode (terminated there when `terminates`), time-out at step `limit`; the
    observation is (step, 0), whatever the action."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def __init__(self, goal=3, limit=5, terminates=True):
        self.goal, self.limit, self.terminates, self.t = goal, limit, terminates, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float(self.t == self.goal)
        return (np.array([self.t, 0], dtype=np.float32), reward, bool(reward and self.terminates),
                self.t == self.limit, {})


def collected(env_kwargs, steps, terminate_on_success=True):
    """The online rows (reward, terminal, episode end, observation's step) after `steps` env steps."""
    data = prepare(random_data(40, obs_dim=2, act_dim=1), CFG)
    learner = IQL(2, 1, CFG, seeds=[0])
    source = OnlineSource(learner, data, partial(Scripted, **env_kwargs), [0], offline_steps=0, online_steps=steps,
                          terminate_on_success=terminate_on_success)
    learner.update_n(source, steps)
    rows = source.buffer.view(0)
    return (rows.rewards[40:].tolist(), rows.terminals[40:].tolist(), rows.episode_ends[40:].tolist(),
            rows.observations[40:, 0].tolist())


def test_new_rewards_are_shifted_and_only_true_goal_reaches_are_terminal():
    rewards, terminals, ends, t = collected({"goal": 3, "limit": 5}, 5)
    assert rewards == [-1, -1, 0, -1, -1]  # r - 1, as offline (preset reward 'minus_one')
    assert terminals == [0, 0, 1, 0, 0] and ends == [0, 0, 1, 0, 0]
    assert t == [0, 1, 2, 0, 1]  # the episode ended at its goal and the env was reset


def test_time_outs_end_episodes_but_are_never_terminal():
    rewards, terminals, ends, t = collected({"goal": 99, "limit": 4}, 6)
    assert rewards == [-1] * 6 and terminals == [0] * 6
    assert ends == [0, 0, 0, 1, 0, 0] and t == [0, 1, 2, 3, 0, 1]


def test_a_continuing_env_ends_at_its_first_success_like_the_relabelled_data():
    _, terminals, ends, t = collected({"goal": 2, "limit": 4, "terminates": False}, 4)
    assert terminals == [0, 1, 0, 1] and ends == [0, 1, 0, 1] and t == [0, 1, 0, 1]
    _, terminals, ends, t = collected({"goal": 2, "limit": 4, "terminates": False}, 4, terminate_on_success=False)
    assert terminals == [0, 0, 0, 0] and ends == [0, 0, 0, 1] and t == [0, 1, 2, 3]  # the raw continuing task


# ---- exact resume -------------------------------------------------------------------------------------------------
def test_an_interrupted_online_run_resumes_to_the_same_result(tmp_path):
    """Interrupted after 7 rounds of 3 envs plus one of the round's 3 updates, every episode unfinished (300 steps)."""
    run = partial(finetune, random_data(), CFG, UMAZE, 20, seeds=(0, 1), n_envs=3, log_every=10, eval_every=10,
                  eval_fn=lambda a: {"score": float(a.act(np.zeros(6))[0])}, progress=False)
    straight, _, s1 = run(40, log_dir=tmp_path / "straight")
    run(20, log_dir=tmp_path / "resumed")
    torch.manual_seed(123)  # whatever the global generator did in between, the checkpoint restores it
    resumed, _, s2 = run(40, log_dir=tmp_path / "resumed")
    torch.testing.assert_close(weights(resumed), weights(straight), rtol=0, atol=0)
    assert (tmp_path / "resumed" / "log.csv").read_text() == (tmp_path / "straight" / "log.csv").read_text()
    torch.testing.assert_close(s2.buffer.view(1).packed, s1.buffer.view(1).packed, rtol=0, atol=0)
    assert s1.episode.max() == 0  # the interruption was mid-episode for every env


# ---- the baselines ------------------------------------------------------------------------------------------------
def switch_and_collect(variant, offline=15, online=6):
    """A learner and source of `variant` at the switch (actor weights then) and after `online` online updates."""
    data = prepare(random_data(), CFG)
    torch.manual_seed(0)
    learner = (AWACLike if variant == "bc-awr" else IQL)(6, 2, CFG, seeds=[0])
    learner.bc_until = offline
    source = OnlineSource(learner, data, UMAZE, [0], offline, online, variant=variant, n_envs=2)
    learner.update_n(source, offline)
    source.probe(learner)  # the probe's counts restart here
    at_switch = {"all": weights(learner), "actor": actor(learner)}
    learner.update_n(source, online)
    source.close()
    return learner, source, at_switch


def test_the_baselines_change_only_what_they_name():
    runs = {v: switch_and_collect(v) for v in ("iql", "frozen-policy", "no-offline-data")}
    iql, frozen, discard = (runs[v] for v in ("iql", "frozen-policy", "no-offline-data"))
    for _, _, at_switch in (frozen, discard):  # one offline phase for all three
        torch.testing.assert_close(at_switch["all"], iql[2]["all"], rtol=0, atol=0)
    first = iql[1].buffer.view(0).packed[300:302]  # the first round: the same policy, noise and env seeds
    torch.testing.assert_close(frozen[1].buffer.view(0).packed[300:302], first, rtol=0, atol=0)
    torch.testing.assert_close(discard[1].buffer.view(0).packed[:2], first, rtol=0, atol=0)
    assert (len(discard[1].buffer), discard[1].buffer.n_offline) == (6, 0)  # no offline row left
    assert len(iql[1].buffer) == len(frozen[1].buffer) == 306
    assert float(discard[1].probe(discard[0])["online_share"]) == 1.0


def test_the_frozen_policy_does_not_move_while_v_and_q_learn():
    learner, _, at_switch = switch_and_collect("frozen-policy", online=10)
    torch.testing.assert_close(actor(learner), at_switch["actor"], rtol=0, atol=0)
    assert not torch.equal(weights(learner), at_switch["all"])
    assert float(learner.actor_opt.param_groups[0]["lr"]) == 0.0  # kept in the optimiser's state: checkpointed


def test_bc_awr_clones_offline_then_weighs_by_a_q_of_the_current_policy():
    torch.manual_seed(0)
    agent = AWACLike(6, 2, CFG, seeds=[0])
    batch = prepare(random_data(), CFG).sample(64, torch.Generator().manual_seed(0))
    batch = agent.agent_batch(batch)
    q = agent.target_q(batch.observations, batch.actions)
    agent.bc_until = 10  # behaviour cloning: every weight 1
    bc = -agent.actor.log_prob(batch.observations, batch.actions).mean(-1)
    torch.testing.assert_close(agent.actor_loss(batch, q, q - 5.0), bc)
    agent.bc_until = 0
    torch.manual_seed(7)
    v, next_v = agent.state_values(batch.observations, batch.next_observations)
    torch.manual_seed(7)
    both = torch.cat([batch.observations, batch.next_observations], -2)
    expected = agent.target_q(both, agent.policy_sample(both))
    torch.testing.assert_close(torch.cat([v, next_v], -1), expected)  # Q_target at a ~ pi(s), a' ~ pi(s')
    weight = torch.exp(agent.beta * (q - v)).clamp(max=100.0)
    torch.testing.assert_close(agent.actor_loss(batch, q, v),
                               -(weight * agent.actor.log_prob(batch.observations, batch.actions)).mean(-1))


def test_the_command_line_takes_every_variant_and_no_other():
    for variant in VARIANTS:
        assert cli.parser().parse_args(["finetune", "--variant", variant]).variant == variant
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["finetune", "--variant", "cql"])


# ---- the command line ---------------------------------------------------------------------------------------------
def test_the_command_line_fine_tunes_from_scratch_and_from_a_train_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    dataset = "iqlkit/pointmaze-umaze/stitch-v0"
    common = ["--dataset", dataset, "--data-steps", "1500", "--eval-episodes", "2", "--eval-envs", "2",
              "--final-episodes", "2", "--out", str(tmp_path / "runs"), "--device", "cpu"]
    cli.main(["finetune", *common, "--offline-steps", "20", "--online-steps", "20", "--eval-every", "20",
              "--n-envs", "2"])
    run = tmp_path / "runs" / dataset.replace("/", "_") / "finetune-iql-off20-pointmaze-seed0"
    assert {p.name for p in run.iterdir()} >= {"log.csv", "checkpoint.pt", "curves.png", "final.json"}
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [r["step"] for r in rows] == ["20", "40"]
    assert float(rows[0]["online_share"]) == 0.0 and float(rows[1]["online_share"]) > 0.0
    final = json.loads((run / "final.json").read_text())
    assert final["config"]["cosine_actor_lr"] is False and final["env_steps"] == 20 and final["steps"] == 40
    cli.main(["train", *common, "--steps", "20", "--eval-every", "20"])
    cli.main(["finetune", *common, "--from", str(run.parent / "pointmaze-steps20-seed0"), "--online-steps", "10",
              "--variant", "frozen-policy"])
    final = json.loads((run.parent / "finetune-frozen-policy-from-pointmaze-steps20-seed0" / "final.json").read_text())
    assert (final["offline_steps"], final["steps"], final["variant"]) == (20, 30, "frozen-policy")
    with pytest.raises(SystemExit, match="other data"):
        cli.main(["finetune", *common, "--from", str(run.parent / "pointmaze-steps20-seed0"), "--no-goal"])


# ---- behaviour ----------------------------------------------------------------------------------------------------
CORRIDOR = MazeTask("corridor", ((1, 1, 1, 1), (1, 0, 0, 1), (1, 1, 1, 1)), start=(1, 1), goal=(1, 2))


def reward_free_data(make, n=2000, seed=0) -> Transitions:
    """Uniformly random actions for 30 steps from the start, only episodes that never reach the goal: no reward."""
    env, rng, parts, total = make(), np.random.default_rng(seed), [], 0
    while total < n:
        ob, _ = env.reset(seed=int(rng.integers(2**31)))
        obs, acts, hit = [ob], [], False
        for _ in range(30):
            acts.append(rng.uniform(-1, 1, 2).astype(np.float32))
            ob, reward, *_ = env.step(acts[-1])
            obs.append(ob)
            hit |= reward > 0
        if hit:
            continue
        flat = flatten_observations({k: np.stack([o[k] for o in obs]) for k in obs[0]})
        parts.append((flat[:-1], np.array(acts), np.zeros(30), flat[1:], np.zeros(30), np.eye(30)[-1]))
        total += 30
    return Transitions.from_arrays(*(np.concatenate(p) for p in zip(*parts)))


def test_fine_tuning_finds_the_goal_that_reward_free_offline_data_cannot_show():
    """A corridor of two cells; the offline data never reaches the goal, so offline IQL cannot know where it is: its
    policy stays put. Online, the sampled actions reach it now and then, and the policy learns to go there."""
    make = partial(make_env, CORRIDOR, True, max_episode_steps=100)
    config = IQLConfig.preset("pointmaze", hidden=(32, 32), discount=0.95, polyak=0.05, actor_lr=1e-3,
                              critic_lr=1e-3, value_lr=1e-3)

    def success(agent):
        if agent.steps not in (300, 1500):
            return {}
        return {"success_rate": evaluate(agent.act, make, n_episodes=20, n_envs=10, seed=123).success_rate}

    _, rows, _ = finetune(reward_free_data(make), config, make, 300, 1200, n_envs=4, eval_fn=success,
                          eval_every=300, log_every=300, progress=False)
    offline, online = (next(r["success_rate"] for r in rows if r["step"] == s) for s in (300, 1500))
    assert offline <= 0.1 and online >= offline + 0.3, (offline, online)


# ---- reading the runs ---------------------------------------------------------------------------------------------
LOG = [{"step": 100, "seed": 0, "q_loss": 1.0}, {"step": 100, "seed": 1, "q_loss": 2.0},
       {"step": 200, "seed": 0, "success_rate": 0.2}, {"step": 200, "seed": 1, "success_rate": 0.4},
       {"step": 300, "seed": 0, "success_rate": float("nan")}, {"step": 300, "seed": 1, "success_rate": 0.6},
       {"step": 400, "seed": 0, "success_rate": 0.8}, {"step": 400, "seed": 1, "success_rate": 1.0}]


def test_by_seed_series_and_values_at_read_the_evaluations_of_each_seed():
    runs = by_seed(LOG, [1, 0])
    assert [r["q_loss"] for r in runs[0] if "q_loss" in r] == [2.0]  # seed 1 first, as asked
    assert by_seed([{"step": 5, "q_loss": 1.0}], [3, 4]) == [[{"step": 5, "q_loss": 1.0}]] * 2  # one agent: no seed
    steps, values = series(by_seed(LOG, [0, 1]), "success_rate")
    np.testing.assert_array_equal(steps, [200, 400])  # seed 0's NaN row is skipped; cut to the shortest seed
    np.testing.assert_allclose(values, [[0.2, 0.8], [0.4, 0.6]])
    np.testing.assert_allclose(values_at(by_seed(LOG, [0, 1]), "success_rate", 400), [0.8, 1.0])
    with pytest.raises(KeyError, match="no 'success_rate' at step 100"):
        values_at(by_seed(LOG, [0, 1]), "success_rate", 100)


def test_joined_puts_the_shared_offline_phase_in_front_of_a_run_that_started_at_the_switch():
    offline = [{"step": s, "q_loss": 1.0} for s in (100, 200, 300, 400)]
    tuned = [{"step": 300, "q_loss": 2.0}, {"step": 400, "q_loss": 2.0}]
    assert [(r["step"], r["q_loss"]) for r in joined(tuned, offline, 200)] == [(100, 1), (200, 1), (300, 2), (400, 2)]
    assert joined(offline, [{"step": 1}], 200) == offline  # a run with its own offline phase stays as it is


def test_largest_drop_is_the_deepest_fall_from_an_earlier_point():
    values = np.array([[0.2, 0.9, 0.5, 0.7, 0.1], [0.0, 0.3, 0.3, 1.0, 1.0], [0.6, 0.4, 0.8, 0.7, 0.9]])
    np.testing.assert_allclose(largest_drop(values), [0.8, 0.0, 0.2])  # 0.9 -> 0.1; never falls; 0.6 -> 0.4
    np.testing.assert_allclose(largest_drop([1.0, 0.0]), [1.0])  # one seed as a flat array


def test_goal_rates_count_terminals_per_thousand_in_full_windows():
    terminals = np.zeros(2500)
    terminals[[10, 20, 1500]] = 1
    np.testing.assert_allclose(goal_rates(terminals, 1000), [2.0, 1.0])  # the last 500 rows: no full window
    with pytest.raises(ValueError, match="no full window"):
        goal_rates(terminals[:10], 20)


def test_maze_run_trains_offline_or_fine_tunes_from_the_switch_and_varies_the_evaluation_episodes(tmp_path,
                                                                                                   monkeypatch):
    from iqlkit.envs import datagen, pointmaze
    from iqlkit.experiments.finetuning import maze_run

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset = datagen.pointmaze("umaze", "stitch", n_steps=600, seed=0).id
    asked = []
    monkeypatch.setattr(pointmaze, "success_rate", lambda act, task, n, seed: asked.append((task, n, seed)) or
                        {"success_rate": 0.5})
    run = partial(maze_run, dataset, CFG, "umaze", seeds=(0, 1), offline_steps=20, online_steps=20, eval_every=20,
                  eval_episodes=3, log_every=10)
    offline = run("offline")
    assert offline["switch"]["steps"] == 20 and offline["end"]["steps"] == 40 and offline["online"] is None
    assert sorted(asked) == [("umaze", 3, s) for s in (20, 40, 100_020, 100_040)]  # per seed, changing with the step
    switch = IQL.from_state_dict(offline["switch"])
    assert switch.steps == 20 and switch.seeds == [0, 1]
    tuned = run("iql", n_envs=2, init_state=offline["switch"])
    assert tuned["switch"] is offline["switch"] and tuned["end"]["steps"] == 40
    assert [r["step"] for r in tuned["rows"]] == [30, 30, 40, 40]  # from the switch on
    assert [len(o["xy"]) for o in tuned["online"]] == [20, 20] and tuned["online"][0]["xy"].shape[1] == 2
    np.testing.assert_array_equal(tuned["online"][0]["terminal"], np.zeros(20))  # 20 random steps never reach G
    obs = np.zeros((1, 6), dtype=np.float32)
    assert not np.allclose(IQL.from_state_dict(tuned["end"]).act(obs), switch.act(obs))
