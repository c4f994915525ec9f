import copy

import numpy as np
import pytest
import torch

from iqlkit.iql import IQL, Batch, IQLConfig


def tiny_batch(seed=0, n=6, obs_dim=3, act_dim=2):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 1.8 - 0.9,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.3).float())


def test_update_reproduces_the_three_losses_by_hand():
    torch.manual_seed(0)
    cfg = IQLConfig(tau=0.8, beta=2.0, discount=0.9, hidden=(8, 8), polyak=0.5)
    agent = IQL(3, 2, cfg)
    b = tiny_batch()
    before = copy.deepcopy(agent)
    # V loss (Eq. 5) from the networks before the step
    q_t = before.critic_target(b.observations, b.actions).min(0).values.detach()
    u = q_t - before.value_net(b.observations)
    v_loss = torch.mean(torch.where(u > 0, 0.8, 0.2) * u**2)
    losses = agent.update(b)
    torch.testing.assert_close(losses["v_loss"], v_loss.detach())
    # actor (Eq. 7) and Q (Eq. 6) use the NEW V (authors' order): rebuild it by stepping a copy's V alone
    v_new = copy.deepcopy(before)
    v_new.v_opt.zero_grad(); v_new.value_loss(b, q_t).backward(); v_new.v_opt.step()
    with torch.no_grad():
        adv = q_t - v_new.value_net(b.observations)
        w = torch.clamp(torch.exp(2.0 * adv), max=100.0)
        mean, log_std = before.actor(b.observations)
        logp = (-0.5 * ((b.actions - mean) / log_std.exp()) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        actor_loss = -(w * logp).mean()
        target = b.rewards + 0.9 * (1 - b.terminals) * v_new.value_net(b.next_observations)
        q1, q2 = before.critic(b.observations, b.actions)
        q_loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
    torch.testing.assert_close(losses["actor_loss"], actor_loss)
    torch.testing.assert_close(losses["q_loss"], q_loss)
    # Polyak: target <- target + 0.5 (online - target), with the online critic after its step
    for p_t, p_old, p in zip(agent.critic_target.parameters(), before.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(p_t, p_old + 0.5 * (p - p_old))


def test_twin_q_heads_are_independent_networks():
    agent = IQL(3, 2, IQLConfig(hidden=(8,)))
    b = tiny_batch()
    q = agent.critic(b.observations, b.actions)
    assert q.shape == (2, 6) and not torch.allclose(q[0], q[1])


def test_policy_is_gaussian_with_tanh_mean_and_clipped_state_independent_log_std():
    agent = IQL(3, 2, IQLConfig(hidden=(8,)))
    with torch.no_grad():
        agent.actor.log_std.fill_(-9.0)
        agent.actor.net[-1].bias.fill_(50.0)
    mean, log_std = agent.actor(torch.randn(4, 3))
    assert torch.all(mean <= 1.0) and torch.all(mean > 0.99)  # tanh on the mean
    assert torch.all(log_std == -5.0)  # clipped to [-5, 2], the same for every state
    a = agent.act(np.zeros(3))
    assert a.shape == (2,) and np.all(np.abs(a) <= 1.0)
    assert agent.act(np.zeros((5, 3)), deterministic=False).shape == (5, 2)
    with pytest.raises(ValueError, match="3 features"):
        agent.act(np.zeros(4))


def test_cosine_actor_lr_and_presets():
    cfg = IQLConfig.preset("antmaze", max_steps=10, hidden=(8,))
    assert (cfg.tau, cfg.beta, cfg.reward) == (0.9, 10.0, "minus_one")
    assert IQLConfig.preset("kitchen").dropout == 0.1 and IQLConfig.preset("locomotion").reward == "return_range"
    agent = IQL(3, 2, cfg)
    lrs = []
    for _ in range(10):
        agent.update(tiny_batch())
        lrs.append(agent.actor_opt.param_groups[0]["lr"])
    assert lrs[4] == pytest.approx(3e-4 * 0.5 * (1 + np.cos(np.pi * 5 / 10))) and lrs[-1] == pytest.approx(0.0)
    assert agent.q_opt.param_groups[0]["lr"] == 3e-4
    with pytest.raises(ValueError, match="unknown preset"):
        IQLConfig.preset("chess")
    with pytest.raises(ValueError, match="tau"):
        IQLConfig(tau=1.0)


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


def test_corl_order_uses_the_old_v():
    torch.manual_seed(0)
    a = IQL(3, 2, IQLConfig(hidden=(8,), update_order="corl"))
    b = copy.deepcopy(a)
    b.config = IQLConfig(hidden=(8,), update_order="authors")
    batch = tiny_batch()
    la, lb = a.update(batch), b.update(batch)
    assert torch.equal(la["v_loss"], lb["v_loss"]) and not torch.equal(la["q_loss"], lb["q_loss"])
