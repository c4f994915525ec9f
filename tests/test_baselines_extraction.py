import numpy as np
import pytest
import torch

from iqlkit.engine.baselines import METHODS, method_setup
from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.experiments.extraction import extract_policy
from tests.test_train import chain_data


def test_baselines_change_only_what_they_name():
    data, cfg = chain_data(), IQLConfig(tau=0.9, beta=10.0)
    assert method_setup("iql", data, cfg) == (data, cfg)
    assert method_setup("one-step", data, cfg)[1] == IQLConfig(tau=0.5, beta=10.0)
    assert method_setup("bc", data, cfg)[1] == IQLConfig(tau=0.9, beta=0.0)
    top_data, top_cfg = method_setup("top10-bc", data, cfg)
    assert top_cfg.beta == 0.0 and len(top_data) == 20  # the best of 10 episodes of 20 steps
    assert set(METHODS) == {"iql", "one-step", "bc", "top10-bc"}
    with pytest.raises(ValueError, match="unknown method"):
        method_setup("cql", data, cfg)


def test_bc_weights_are_all_one():
    agent = IQL(1, 1, IQLConfig(beta=0.0, hidden=(8,)))
    batch = agent.agent_batch(chain_data().sample(16))
    q_t = agent.target_q(batch.observations, batch.actions)
    loss = agent.actor_loss(batch, q_t, q_t - 5.0)
    torch.testing.assert_close(loss, -agent.actor.log_prob(batch.observations, batch.actions).mean(-1))


def test_post_hoc_extraction_trains_the_actor_only():
    agent = IQL(1, 1, IQLConfig(hidden=(8,), batch_size=32))
    critic = [p.clone() for p in agent.critic.parameters()] + [p.clone() for p in agent.value_net.parameters()]
    actor = [p.clone() for p in agent.actor.parameters()]
    extract_policy(agent, chain_data(), steps=5, progress=False)
    after = list(agent.critic.parameters()) + list(agent.value_net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(critic, after))
    assert not all(torch.equal(a, b) for a, b in zip(actor, agent.actor.parameters()))


def test_value_grid_is_nan_in_walls_and_follows_the_value_function():
    from iqlkit.envs.pointmaze import TASKS, value_grid

    task = TASKS["umaze"]
    xs, ys, V = value_grid(lambda obs: obs[:, 0] + 10 * obs[:, 1], task, resolution=4)
    assert V.shape == (len(ys), len(xs)) == (20, 20)
    walls = np.kron(np.array(task.maze_map), np.ones((4, 4))) == 1
    assert np.all(np.isnan(V[walls])) and not np.any(np.isnan(V[~walls]))
    np.testing.assert_allclose(V[~walls], (xs[None, :] + 10 * ys[:, None])[~walls])


def test_reset_actor_gives_a_fresh_policy_and_extraction_can_change_beta():
    torch.manual_seed(0)
    agent = IQL(1, 1, IQLConfig(hidden=(8,), batch_size=32, beta=3.0))
    for _ in range(3):
        agent.update(chain_data().sample(32))
    old = [p.clone() for p in agent.actor.parameters()]
    agent.reset_actor()
    assert agent.actor_opt.param_groups[0]["params"][0] is next(agent.actor.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(old, agent.actor.parameters()))
    extract_policy(agent, chain_data(), steps=2, beta=0.0, progress=False)
    assert agent.config.beta == 0.0 and agent.config.tau == IQLConfig().tau
