"""The training loop: exact resume, logs, evaluation, the NaN guard, the data fingerprint, fit and fit_many."""
import csv

import numpy as np
import pytest
import torch

from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.engine.runfolder import CheckpointError, read_checkpoint
from iqlkit.engine.train import fit, fit_many
from iqlkit.envs.data import Transitions

CFG = IQLConfig(hidden=(16, 16), batch_size=32, max_steps=60)


def chain_data(n=200, seed=0):
    """A 1-D chain: reward 1 for moving right past x > 0.5; the action is the step."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, size=(n, 1))
    act = rng.uniform(-1, 1, size=(n, 1))
    nxt = np.clip(obs + 0.2 * act, -1, 1)
    rew = (nxt[:, 0] > 0.5).astype(float)
    return Transitions.from_arrays(obs, act, rew, nxt, np.zeros(n), (np.arange(n) % 20 == 19).astype(float))


def params(agent):
    return torch.cat([p.detach().flatten() for p in agent.actor.parameters()] +
                     [p.detach().flatten() for p in agent.critic.parameters()])


def log_rows(folder):
    return list(csv.DictReader((folder / "log.csv").open()))


def test_resume_from_checkpoint_reaches_the_same_result(tmp_path):
    straight = fit(chain_data(), CFG, steps=60, seed=3, eval_every=20, log_every=10, progress=False)
    fit(chain_data(), CFG, steps=40, seed=3, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    resumed = fit(chain_data(), CFG, steps=60, seed=3, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    assert resumed.steps == 60
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)
    assert [int(r["step"]) for r in log_rows(tmp_path)] == [10, 20, 30, 40, 50, 60]


def test_resume_with_dropout_is_exact_too(tmp_path):
    cfg = IQLConfig(hidden=(16, 16), batch_size=32, max_steps=60, dropout=0.3)
    straight = fit(chain_data(), cfg, steps=40, seed=3, eval_every=20, log_every=10, progress=False)
    fit(chain_data(), cfg, steps=20, seed=3, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    torch.manual_seed(123)  # whatever the global generator did in between, the checkpoint restores it
    resumed = fit(chain_data(), cfg, steps=40, seed=3, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)


def test_log_has_losses_and_eval_scores(tmp_path):
    evals = []
    fit(chain_data(), CFG, steps=30, eval_fn=lambda a: evals.append(a.steps) or {"score": float(a.steps)},
        eval_every=15, log_every=5, log_dir=tmp_path, progress=False)
    rows = log_rows(tmp_path)
    assert evals == [15, 30] and rows[-1]["score"] == "30.0" and float(rows[0]["q_loss"]) > 0


def nan_from(step, agent=0, loss="q_loss"):
    """IQL.update whose `loss` of `agent` turns NaN from update `step` on (as a diverging run's would)."""
    original = IQL.update

    def update(self, batch):
        stats = original(self, batch)
        if self.steps >= step:
            stats[loss][agent] = float("nan")
        return stats
    return update


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    fit(chain_data(), CFG, steps=20, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    monkeypatch.setattr(IQL, "update", nan_from(25))
    with pytest.raises(FloatingPointError, match=r"q_loss of the agent became non-finite by step 30; the last good "
                                                 r"checkpoint is .*checkpoint.pt \(step 20\)"):
        fit(chain_data(), CFG, steps=60, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["learner"]["steps"] == 20


def test_a_nan_before_any_checkpoint_says_that_none_exists(tmp_path):
    data = chain_data()
    huge = Transitions.from_arrays(data.observations.numpy(), data.actions.numpy(), data.rewards.numpy() * 1e38,
                                   data.next_observations.numpy(), data.terminals.numpy())
    with pytest.raises(FloatingPointError, match="no checkpoint was written yet"):
        fit(huge, CFG, steps=60, eval_every=60, log_every=10, log_dir=tmp_path, progress=False,
            checkpoint_every_s=1e9)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_non_finite_weights_are_never_saved(tmp_path, monkeypatch):
    """Weights that turn NaN while the logged losses are still finite: the checkpoint of the step before stays."""
    fit(chain_data(), CFG, steps=20, eval_every=10, log_every=10, log_dir=tmp_path, progress=False)
    good = read_checkpoint(tmp_path / "checkpoint.pt")
    original = IQL.update

    def poisoned(self, batch):
        stats = original(self, batch)
        if self.steps == 30:  # the last update before a log point: its losses were still finite
            with torch.no_grad():
                next(self.actor.parameters()).view(-1)[0] = float("nan")
        return stats

    monkeypatch.setattr(IQL, "update", poisoned)
    with pytest.raises(FloatingPointError, match=r"weights of the agent became non-finite by step 30 .*nothing was "
                                                 r"saved: the last good checkpoint is .*\(step 20\)"):
        fit(chain_data(), CFG, steps=40, eval_every=10, log_every=10, log_dir=tmp_path, progress=False)
    kept = read_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["step"] == 20
    torch.testing.assert_close(kept["learner"]["actor"]["log_std"], good["learner"]["actor"]["log_std"])


def test_nan_in_one_of_many_agents_names_that_agent(tmp_path, monkeypatch):
    monkeypatch.setattr(IQL, "update", nan_from(15, agent=1))
    with pytest.raises(FloatingPointError, match=r"q_loss of agent 1 \(seed 8, tau 0.9, beta 3\) became "
                                                 r"non-finite by step 20; the last good checkpoint .*\(step 10\)"):
        fit_many(chain_data(), CFG, seeds=[7, 8], taus=[0.7, 0.9], steps=40, eval_every=10, log_every=10,
                 log_dir=tmp_path, progress=False)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 10


def test_iql_learns_to_move_towards_reward():
    agent = fit(chain_data(1000), IQLConfig(hidden=(32, 32), batch_size=64, tau=0.8, beta=3.0, max_steps=1500),
                seed=0, progress=False)
    left, right = agent.value(np.array([[-0.9]])), agent.value(np.array([[0.45]]))
    assert right > left  # value rises towards the rewarding region
    assert float(agent.act(np.array([0.0]))[0]) > 0.2  # and the policy steps right


def test_resuming_with_another_config_or_other_data_is_refused(tmp_path):
    fit(chain_data(), CFG, steps=20, eval_every=20, log_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"another config.*'tau': \(0.7, 0.9\)"):
        fit(chain_data(), IQLConfig(hidden=(16, 16), batch_size=32, max_steps=60, tau=0.9), steps=40,
            log_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="other data"):  # same size and dims, other values
        fit(chain_data(seed=1), CFG, steps=40, log_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="seeds"):
        fit(chain_data(), CFG, steps=40, seed=5, log_dir=tmp_path, progress=False)


def test_bad_loop_arguments_are_refused_up_front(tmp_path):
    for kwargs, message in (({"steps": -5}, "steps must be >= 1"), ({"steps": 0}, "steps must be >= 1"),
                            ({"log_every": 0}, "log_every"), ({"eval_every": 0}, "eval_every")):
        with pytest.raises(ValueError, match=message):
            fit(chain_data(), CFG, progress=False, **{"steps": 10, **kwargs})
    with pytest.raises(ValueError, match="no CUDA GPU|unknown device"):
        fit(chain_data(), CFG, steps=5, device="cuda:7" if not torch.cuda.is_available() else "banana",
            progress=False)
    with pytest.raises(ValueError, match="unknown device 'banana'"):
        fit(chain_data(), CFG, steps=5, device="banana", progress=False)


def test_checkpoints_come_by_time_too(tmp_path):
    fit(chain_data(), CFG, steps=30, eval_every=1000, log_every=5, log_dir=tmp_path, progress=False,
        checkpoint_every_s=0.0)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 30
    assert read_checkpoint(tmp_path / "checkpoint.prev.pt")["step"] == 25  # one at every log point


def test_fit_builds_the_given_agent_class_and_its_losses_are_what_runs():
    class FrozenValueIQL(IQL):
        """Counts the loss calls; its V loss has zero gradient, so V must stay at its initialisation."""

        calls = {"value": 0, "q": 0, "actor": 0}

        def value_loss(self, batch, q_target):
            self.calls["value"] += 1
            return 0.0 * super().value_loss(batch, q_target)

        def q_loss(self, batch, next_v):
            self.calls["q"] += 1
            return super().q_loss(batch, next_v)

        def actor_loss(self, batch, q_target, v):
            self.calls["actor"] += 1
            return super().actor_loss(batch, q_target, v)

    def v_params(agent):
        return torch.cat([p.detach().flatten() for p in agent.value_net.parameters()])

    agent = fit(chain_data(), CFG, steps=7, seed=1, progress=False, agent_cls=FrozenValueIQL)
    plain = fit(chain_data(), CFG, steps=7, seed=1, progress=False)
    initial = IQL(1, 1, CFG, seeds=[1])  # fit draws the weights from the seed
    assert type(agent) is FrozenValueIQL and FrozenValueIQL.calls == {"value": 7, "q": 7, "actor": 7}
    torch.testing.assert_close(v_params(agent), v_params(initial), rtol=0, atol=0)
    assert not torch.equal(v_params(plain), v_params(initial))


def test_fit_many_reproduces_separate_fit_runs_and_evaluates_each_agent_with_its_seed():
    data = chain_data(400)
    cfg = IQLConfig(hidden=(32, 32), batch_size=64, max_steps=300)
    seen = []

    def eval_fn(agent):
        seen.append(agent.seed)
        return {"a0": float(agent.act(np.zeros((1, 1)))[0, 0])}

    learner, rows = fit_many(data, cfg, seeds=[3, 7], taus=[0.7, 0.9], steps=200, log_every=100, progress=False,
                             eval_fn=eval_fn, eval_every=200)
    obs = np.linspace(-1, 1, 5)[:, None]
    for k, (seed, tau) in enumerate(((3, 0.7), (7, 0.9))):
        alone = fit(data, IQLConfig(**{**cfg.to_dict(), "tau": tau}), steps=200, seed=seed, progress=False)
        np.testing.assert_allclose(learner.act(obs)[k], alone.act(obs), atol=2e-3)
        row = next(r for r in rows if r["seed"] == seed and r["step"] == 200)
        np.testing.assert_allclose(row["a0"], alone.act(np.zeros(1))[0], atol=2e-3)
    assert [(r["step"], r["agent"], r["seed"]) for r in rows] == [(100, 0, 3), (100, 1, 7), (200, 0, 3), (200, 1, 7)]
    assert seen == [3, 7]


def test_fit_many_resumes_exactly_after_an_interruption(tmp_path):
    data = chain_data(400)
    straight, _ = fit_many(data, CFG, seeds=[1, 2], steps=40, eval_every=20, log_every=10, progress=False)
    fit_many(data, CFG, seeds=[1, 2], steps=20, eval_every=20, log_every=10, progress=False, log_dir=tmp_path)
    resumed, rows = fit_many(data, CFG, seeds=[1, 2], steps=40, eval_every=20, log_every=10, progress=False,
                             log_dir=tmp_path)
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)
    assert [(r["step"], r["agent"]) for r in rows] == [(s, k) for s in (10, 20, 30, 40) for k in (0, 1)]
