import csv

import numpy as np
import pytest
import torch

from iqlkit.data import Transitions
from iqlkit.iql import IQL, IQLConfig
from iqlkit.train import fit

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


def test_resume_from_checkpoint_reaches_the_same_result(tmp_path):
    straight = fit(chain_data(), CFG, steps=60, seed=3, eval_every=20, log_every=10, progress=False)
    fit(chain_data(), CFG, steps=40, seed=3, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    resumed = fit(chain_data(), CFG, steps=60, seed=3, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    assert resumed.steps == 60
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40, 50, 60]
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_log_has_losses_and_eval_scores(tmp_path):
    evals = []
    fit(chain_data(), CFG, steps=30, eval_fn=lambda a: evals.append(a.steps) or {"score": float(a.steps)},
        eval_every=15, log_every=5, log_dir=tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert evals == [15, 30] and rows[-1]["score"] == "30.0" and float(rows[0]["q_loss"]) > 0


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    data = chain_data()
    bad = Transitions.from_arrays(data.observations.numpy(), data.actions.numpy(),
                                  np.where(np.arange(len(data)) == 5, np.nan, data.rewards.numpy()),
                                  data.next_observations.numpy(), data.terminals.numpy())
    good = fit(data, CFG, steps=20, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    with pytest.raises(FloatingPointError, match="q_loss.*became non-finite.*last good checkpoint"):
        fit(bad, CFG, steps=60, eval_every=20, log_every=10, log_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["agent"]["steps"] == 20
    assert all(torch.isfinite(v).all() for v in state["agent"]["critic"].values())
    del good


def test_iql_learns_to_move_towards_reward():
    agent = fit(chain_data(1000), IQLConfig(hidden=(32, 32), batch_size=64, tau=0.8, beta=3.0, max_steps=1500),
                seed=0, progress=False)
    left, right = agent.value(np.array([[-0.9]])), agent.value(np.array([[0.45]]))
    assert right > left  # value rises towards the rewarding region
    assert float(agent.act(np.array([0.0]))[0]) > 0.2  # and the policy steps right


def test_resuming_with_another_config_is_refused(tmp_path):
    fit(chain_data(), CFG, steps=20, eval_every=20, log_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"another config.*'tau': \(0.7, 0.9\)"):
        fit(chain_data(), IQLConfig(hidden=(16, 16), batch_size=32, max_steps=60, tau=0.9), steps=40,
            log_dir=tmp_path, progress=False)


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
    torch.manual_seed(1)
    initial = IQL(1, 1, CFG)  # fit seeds torch the same way before building the agent
    assert type(agent) is FrozenValueIQL and FrozenValueIQL.calls == {"value": 7, "q": 7, "actor": 7}
    torch.testing.assert_close(v_params(agent), v_params(initial), rtol=0, atol=0)
    assert not torch.equal(v_params(plain), v_params(initial))
