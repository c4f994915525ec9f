import numpy as np
import pytest
import torch

from iqlkit.iql import IQL, Batch, IQLConfig
from iqlkit.stacked import StackedIQL
from tests.test_train import chain_data

CFG = IQLConfig(hidden=(32, 32), batch_size=64, max_steps=300)


def run_both(configs, steps=300, seed=0):
    """Separately built agents and their stack, fed the same minibatches for `steps` updates."""
    data = chain_data(500)
    agents = []
    for k, cfg in enumerate(configs):
        torch.manual_seed(seed + k)
        agents.append(IQL(1, 1, cfg))
    stacked = StackedIQL.from_agents(agents)
    gens = [torch.Generator().manual_seed(100 + k) for k in range(len(agents))]
    history = []
    for _ in range(steps):
        batches = [data.sample(cfg.batch_size, g) for cfg, g in zip(configs, gens)]
        separate = [a.update(b) for a, b in zip(agents, batches)]
        together = stacked.update(Batch(*(torch.stack(parts) for parts in zip(*batches))))
        history.append((separate, together))
    return agents, stacked, history


def test_stacked_agents_follow_the_readable_update():
    configs = [CFG.__class__(**{**CFG.to_dict(), "tau": t, "beta": b}) for t, b in ((0.7, 3.0), (0.9, 10.0), (0.5, 0.0))]
    agents, stacked, history = run_both(configs)
    for separate, together in history[:: 50] + history[-1:]:
        for key in ("v_loss", "actor_loss", "q_loss", "q_mean", "v_mean"):
            expected = torch.stack([s[key] for s in separate])
            torch.testing.assert_close(together[key], expected, rtol=2e-3, atol=2e-4)
    obs = np.linspace(-1, 1, 11)[:, None]
    np.testing.assert_allclose(stacked.act(obs)[:, :, 0], np.stack([a.act(obs)[:, 0] for a in agents]), atol=2e-3)
    assert [stacked.config_of(k).tau for k in range(3)] == pytest.approx([0.7, 0.9, 0.5])


def test_stacked_target_network_and_cosine_schedule_match():
    agents, stacked, _ = run_both([CFG, CFG], steps=150)
    for k, agent in enumerate(agents):
        ours = torch.cat([p[2 * k: 2 * k + 2].flatten() for p in stacked.critic_target.parameters()])
        theirs = torch.cat([p.flatten() for p in agent.critic_target.parameters()])
        torch.testing.assert_close(ours, theirs, rtol=2e-3, atol=2e-4)
    # the rate of the next step: the readable scheduler has stepped already
    stacked._set_actor_lr()
    assert float(stacked.actor_opt.param_groups[0]["lr"]) == pytest.approx(agents[0].actor_opt.param_groups[0]["lr"], rel=1e-6)


def test_stacked_rejects_what_it_does_not_implement():
    with pytest.raises(ValueError, match="need 2 taus"):
        StackedIQL(1, 1, CFG, 2, taus=[0.7])
    with pytest.raises(ValueError, match="tau"):
        StackedIQL(1, 1, CFG, 2, taus=[0.7, 1.0])
    with pytest.raises(ValueError, match="state-independent"):
        StackedIQL(1, 1, CFG.__class__(state_dependent_std=True), 2)


def test_fit_many_reproduces_separate_fit_runs_with_the_same_seeds():
    from iqlkit.stacked import fit_many
    from iqlkit.train import fit

    data = chain_data(400)
    stacked, rows = fit_many(data, CFG, seeds=[3, 7], taus=[0.7, 0.9], steps=200, log_every=100, progress=False,
                             eval_fn=lambda act: {"a0": float(act(np.zeros((1, 1)))[0, 0])}, eval_every=200)
    obs = np.linspace(-1, 1, 5)[:, None]
    for k, (seed, tau) in enumerate(((3, 0.7), (7, 0.9))):
        alone = fit(data, IQLConfig(**{**CFG.to_dict(), "tau": tau}), steps=200, seed=seed, progress=False)
        np.testing.assert_allclose(stacked.act(obs)[k], alone.act(obs), atol=2e-3)
        np.testing.assert_allclose(rows[-2 + k]["a0"], alone.act(np.zeros(1))[0], atol=2e-3)
    assert [(r["step"], r["agent"]) for r in rows] == [(100, 0), (100, 1), (200, 0), (200, 1)]


def test_per_agent_learning_rates_and_dropout_free_agents_match_separate_agents():
    lrs = (3e-4, 1e-4, 6e-4)
    configs = [CFG.__class__(**{**CFG.to_dict(), "actor_lr": lr, "critic_lr": lr, "value_lr": lr}) for lr in lrs]
    agents, stacked, history = run_both(configs, steps=150)
    assert stacked.lr_scales == pytest.approx([1.0, 1 / 3, 2.0])
    for key in ("v_loss", "q_loss", "actor_loss"):
        expected = torch.stack([s[key] for s in history[-1][0]])
        torch.testing.assert_close(history[-1][1][key], expected, rtol=2e-3, atol=2e-4)
    assert stacked.config_of(2).critic_lr == pytest.approx(6e-4)


def test_ensemble_dropout_has_one_rate_per_member():
    from iqlkit.nets import EnsembleDropout

    drop = EnsembleDropout([0.0, 0.3, 0.6])
    x = torch.ones(3, 20_000, 4)
    out = drop(x)
    zeros = (out == 0).float().mean((1, 2))
    torch.testing.assert_close(zeros, torch.tensor([0.0, 0.3, 0.6]), atol=0.01, rtol=0)
    torch.testing.assert_close(out.mean((1, 2)), torch.ones(3), atol=0.03, rtol=0)  # inverted dropout keeps the mean
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        EnsembleDropout([0.1, 1.0])


def test_from_agents_refuses_configs_it_cannot_stack():
    with pytest.raises(ValueError, match="separate groups"):
        StackedIQL.from_agents([IQL(1, 1, CFG), IQL(1, 1, CFG.__class__(**{**CFG.to_dict(), "batch_size": 32}))])
    stacked = StackedIQL.from_agents([IQL(1, 1, CFG), IQL(1, 1, CFG.__class__(**{**CFG.to_dict(), "dropout": 0.3}))])
    assert stacked.dropouts == [0.0, 0.3] and stacked.config_of(1).dropout == 0.3
