import copy
import math

import numpy as np
import pytest
import torch

from iqlkit.engine.iql import IQL, IQLConfig, cosine_factor
from iqlkit.envs.data import Batch


def tiny_batch(seed=0, n=6, obs_dim=3, act_dim=2):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 1.8 - 0.9,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.3).float())


def test_update_reproduces_the_three_losses_by_hand():
    torch.manual_seed(0)
    cfg = IQLConfig(tau=0.8, beta=2.0, discount=0.9, hidden=(8, 8), polyak=0.5)
    agent = IQL(3, 2, cfg)
    b = agent.agent_batch(tiny_batch())  # [1, B, ...]: one agent
    before = copy.deepcopy(agent)
    # V loss (Eq. 5) from the networks before the step
    q_t = before.critic_target(b.observations, b.actions).min(1).values.detach()
    u = q_t - before.value_net(b.observations)
    v_loss = torch.mean(torch.where(u > 0, 0.8, 0.2) * u**2)
    losses = agent.update(b)
    torch.testing.assert_close(losses["v_loss"][0], v_loss.detach())
    # actor (Eq. 7) and Q (Eq. 6) use the NEW V (authors' order): rebuild it by stepping a copy's V alone
    v_new = copy.deepcopy(before)
    v_new.v_opt.zero_grad()
    v_new.value_loss(b, q_t).sum().backward()
    v_new.v_opt.step()
    with torch.no_grad():
        adv = q_t - v_new.value_net(b.observations)
        w = torch.clamp(torch.exp(2.0 * adv), max=100.0)
        mean, log_std = before.actor(b.observations)
        logp = (-0.5 * ((b.actions - mean) / log_std.exp()) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        actor_loss = -(w * logp).mean()
        target = b.rewards + 0.9 * (1 - b.terminals) * v_new.value_net(b.next_observations)
        q1, q2 = before.critic(b.observations, b.actions)[0]
        q_loss = ((q1 - target[0]) ** 2).mean() + ((q2 - target[0]) ** 2).mean()
    torch.testing.assert_close(losses["actor_loss"][0], actor_loss)
    torch.testing.assert_close(losses["q_loss"][0], q_loss)
    # Polyak: target <- target + 0.5 (online - target), with the online critic after its step
    for p_t, p_old, p in zip(agent.critic_target.parameters(), before.critic_target.parameters(),
                             agent.critic.parameters()):
        torch.testing.assert_close(p_t, p_old + 0.5 * (p - p_old))


def test_twin_q_heads_are_independent_networks():
    agent = IQL(3, 2, IQLConfig(hidden=(8,)))
    b = agent.agent_batch(tiny_batch())
    q = agent.critic(b.observations, b.actions)
    assert q.shape == (1, 2, 6) and not torch.allclose(q[0, 0], q[0, 1])


def test_policy_is_gaussian_with_tanh_mean_and_clipped_state_independent_log_std():
    agent = IQL(3, 2, IQLConfig(hidden=(8,)))
    with torch.no_grad():
        agent.actor.log_std.fill_(-9.0)
        agent.actor.net[-1].bias.fill_(50.0)
    mean, log_std = agent.actor(torch.randn(1, 4, 3))
    assert torch.all(mean <= 1.0) and torch.all(mean > 0.99)  # tanh on the mean
    assert torch.all(log_std == -5.0)  # clipped to [-5, 2], the same for every state
    a = agent.act(np.zeros(3))
    assert a.shape == (2,) and np.all(np.abs(a) <= 1.0)
    assert agent.act(np.zeros((5, 3)), deterministic=False).shape == (5, 2)
    with pytest.raises(ValueError, match="3 features"):
        agent.act(np.zeros(4))


def test_state_dependent_std_is_a_second_output_of_the_policy():
    agent = IQL(3, 2, IQLConfig(hidden=(8,), state_dependent_std=True))
    with torch.no_grad():
        agent.actor.net[-1].bias[..., 2:] = torch.tensor([1.0, -7.0])
    _, log_std = agent.actor(torch.randn(1, 4, 3))
    assert log_std.shape == (1, 4, 2) and torch.all(log_std[..., 1] == -5.0)  # clipped
    agent.update(tiny_batch())  # trains like the state-independent policy


def test_authors_initialisation_is_orthogonal_with_zero_biases():
    agent = IQL(5, 2, IQLConfig(hidden=(16, 16)), seeds=[0])
    first = agent.value_net.net[0]
    w = first.weight[0]  # [in, out] = [5, 16]: orthonormal rows scaled by sqrt(2)
    torch.testing.assert_close(w @ w.T, 2 * torch.eye(5), atol=1e-5, rtol=0)
    assert all(float(layer.bias.detach().abs().max()) == 0 for layer in agent.critic.net.linears())
    sd = IQL(5, 2, IQLConfig(hidden=(16, 16), state_dependent_std=True), seeds=[0]).actor.net[-1].weight[0]
    assert float(sd[:, 2:].detach().norm()) < 1e-2 < float(sd[:, :2].detach().norm())  # the log-std layer's gain 1e-3
    torch_init = IQL(5, 2, IQLConfig(hidden=(16, 16), init="torch"), seeds=[0]).value_net.net[0]
    weight, bias = torch_init.weight.detach(), torch_init.bias.detach()
    assert float(weight.abs().max()) <= 1 / math.sqrt(5) and float(bias.abs().max()) > 0


def test_seeds_fix_each_agents_weights_whatever_the_stack():
    alone = IQL(3, 2, IQLConfig(hidden=(8,)), seeds=[7])
    stack = IQL(3, 2, [IQLConfig(hidden=(8,))] * 3, seeds=[1, 7, 2])
    for mine, theirs in zip(alone.actor.parameters(), stack.actor.parameters()):
        torch.testing.assert_close(mine[0], theirs[1], rtol=0, atol=0)
    for mine, theirs in zip(alone.critic.parameters(), stack.critic.parameters()):
        torch.testing.assert_close(mine, theirs[2:4], rtol=0, atol=0)  # agent 1's two heads


def test_cosine_actor_lr_and_presets():
    cfg = IQLConfig.preset("antmaze", max_steps=10, hidden=(8,))
    assert (cfg.tau, cfg.beta, cfg.reward) == (0.9, 10.0, "minus_one")
    assert IQLConfig.preset("kitchen").dropout == 0.1 and IQLConfig.preset("locomotion").reward == "return_range"
    agent = IQL(3, 2, cfg)
    lrs = []
    for _ in range(12):
        agent.update(tiny_batch())
        lrs.append(float(agent.actor_opt.param_groups[0]["lr"]))  # the rate the step just used
    assert lrs[0] == pytest.approx(3e-4)  # update t uses lr_0 0.5 (1 + cos(pi t / T))
    assert lrs[5] == pytest.approx(3e-4 * 0.5 * (1 + np.cos(np.pi * 5 / 10)))
    assert lrs[10] == lrs[11] == pytest.approx(0.0, abs=1e-12)  # held at 0 past T
    assert float(cosine_factor(20, 10)) == pytest.approx(0.0, abs=1e-12)
    assert float(agent.q_opt.param_groups[0]["lr"]) == pytest.approx(3e-4)
    with pytest.raises(ValueError, match="unknown preset"):
        IQLConfig.preset("chess")


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    a = IQL(3, 2, IQLConfig(hidden=(8,)))
    for s in range(3):
        a.update(tiny_batch(s))
    b = IQL(3, 2, IQLConfig(hidden=(8,)))
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    la, lb = a.update(tiny_batch(9)), b.update(tiny_batch(9))
    assert all(torch.equal(la[k], lb[k]) for k in la) and b.steps == a.steps == 4
    with pytest.raises(ValueError, match="dims"):
        IQL(4, 2, IQLConfig(hidden=(8,))).load_state_dict(a.state_dict())


def test_a_state_dict_is_a_snapshot_that_training_does_not_move():
    torch.manual_seed(0)
    a = IQL(3, 2, IQLConfig(hidden=(8,)))
    a.update(tiny_batch(0))
    saved = a.state_dict()
    kept = copy.deepcopy(saved)
    a.update(tiny_batch(1))  # the source trains on
    b = IQL(3, 2, IQLConfig(hidden=(8,)))
    b.load_state_dict(saved)
    b.update(tiny_batch(2))  # and so does the agent loaded from it
    flat = lambda d: [t for t in torch.utils._pytree.tree_leaves(d) if isinstance(t, torch.Tensor)]  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(flat(saved), flat(kept), strict=True))  # Adam moments included


def test_corl_order_uses_the_old_v():
    torch.manual_seed(0)
    a = IQL(3, 2, IQLConfig(hidden=(8,), update_order="corl"))
    b = copy.deepcopy(a)
    b.config = IQLConfig(hidden=(8,), update_order="authors")
    batch = tiny_batch()
    la, lb = a.update(batch), b.update(batch)
    assert torch.equal(la["v_loss"], lb["v_loss"]) and not torch.equal(la["q_loss"], lb["q_loss"])


@pytest.mark.parametrize("field, value, message", [
    ("tau", 1.0, "tau"), ("beta", -1.0, r"beta must lie in \[0, inf\)"), ("beta", math.inf, "beta"),
    ("discount", 1.5, r"discount must lie in \[0, 1\]"), ("polyak", 2.0, "polyak"), ("polyak", 0.0, "polyak"),
    ("dropout", 1.0, r"dropout must lie in \[0, 1\)"), ("adv_clip", -1.0, "adv_clip"), ("actor_lr", 0.0, "actor_lr"),
    ("batch_size", 0, "batch_size must be >= 1"), ("max_steps", 0, "max_steps"), ("hidden", (0,), "hidden"),
    ("hidden", (), "hidden"), ("tau", "high", "tau must be float"), ("batch_size", 2.5, "batch_size must be int"),
    ("update_order", "random", "update_order"), ("init", "xavier", "init"), ("reward", "x1000", "reward"),
    ("discount", float("nan"), "discount")])
def test_config_refuses_bad_values_and_says_the_allowed_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        IQLConfig(**{field: value})


def test_config_reads_numbers_given_as_text():
    cfg = IQLConfig(tau="0.7", batch_size="64", hidden=["32", 32])
    assert cfg.tau == 0.7 and isinstance(cfg.tau, float) and cfg.batch_size == 64 and cfg.hidden == (32, 32)
