"""S agents in one IQL follow exactly what S separately built agents do: same update, per-agent hyperparameters."""
import numpy as np
import pytest
import torch

from iqlkit.engine.iql import IQL, IQLConfig, stack_key
from iqlkit.engine.nets import EnsembleDropout
from tests.test_train import chain_data

CFG = IQLConfig(hidden=(32, 32), batch_size=64, max_steps=300)


def with_(cfg: IQLConfig, **changes) -> IQLConfig:
    return IQLConfig(**{**cfg.to_dict(), **changes})


def run_both(configs, steps=300, seeds=None):
    """Separately built agents and one IQL of len(configs) agents, fed the same minibatches for `steps` updates."""
    data = chain_data(500)
    seeds = seeds or list(range(len(configs)))
    agents = [IQL(1, 1, cfg, seeds=[s]) for cfg, s in zip(configs, seeds)]
    together = IQL(1, 1, configs, seeds=seeds)
    gens = [torch.Generator().manual_seed(100 + k) for k in range(len(agents))]
    gens2 = [torch.Generator().manual_seed(100 + k) for k in range(len(agents))]
    history = []
    for _ in range(steps):
        separate = [a.update(data.sample(cfg.batch_size, g)) for a, cfg, g in zip(agents, configs, gens)]
        stacked = together.update(data.sample_agents(len(agents), configs[0].batch_size, gens2))
        history.append((separate, stacked))
    return agents, together, history


def test_agents_of_one_iql_follow_separately_trained_agents():
    configs = [with_(CFG, tau=t, beta=b) for t, b in ((0.7, 3.0), (0.9, 10.0), (0.5, 0.0))]
    agents, together, history = run_both(configs)
    for separate, stacked in history[:: 50] + history[-1:]:
        for key in ("v_loss", "actor_loss", "q_loss", "q_mean", "v_mean"):
            expected = torch.cat([s[key] for s in separate])
            torch.testing.assert_close(stacked[key], expected, rtol=2e-3, atol=2e-4)
    obs = np.linspace(-1, 1, 11)[:, None]
    np.testing.assert_allclose(together.act(obs)[:, :, 0], np.stack([a.act(obs)[:, 0] for a in agents]), atol=2e-3)
    assert [c.tau for c in together.configs] == pytest.approx([0.7, 0.9, 0.5])
    assert together.member(1).config.beta == 10.0 and together.member(2).seed == 2


def test_target_network_and_cosine_schedule_match():
    agents, together, _ = run_both([CFG, CFG], steps=150)
    for k, agent in enumerate(agents):
        ours = torch.cat([p[2 * k: 2 * k + 2].flatten() for p in together.critic_target.parameters()])
        theirs = torch.cat([p.flatten() for p in agent.critic_target.parameters()])
        torch.testing.assert_close(ours, theirs, rtol=2e-3, atol=2e-4)
    assert float(together.actor_opt.param_groups[0]["lr"]) == float(agents[0].actor_opt.param_groups[0]["lr"])


def test_per_agent_learning_rates_match_separate_agents():
    lrs = (3e-4, 1e-4, 6e-4)
    configs = [with_(CFG, actor_lr=lr, critic_lr=lr, value_lr=lr) for lr in lrs]
    agents, together, history = run_both(configs, steps=150)
    assert together.lr_scales == pytest.approx([1.0, 1 / 3, 2.0])
    for key in ("v_loss", "q_loss", "actor_loss"):
        expected = torch.cat([s[key] for s in history[-1][0]])
        torch.testing.assert_close(history[-1][1][key], expected, rtol=2e-3, atol=2e-4)
    assert together.member(2).config.critic_lr == pytest.approx(6e-4)


def test_state_dependent_std_and_the_corl_order_work_for_many_agents_too():
    for cfg in (with_(CFG, state_dependent_std=True), with_(CFG, update_order="corl")):
        _, _, history = run_both([cfg, cfg], steps=20)
        for key in ("v_loss", "q_loss", "actor_loss"):
            torch.testing.assert_close(history[-1][1][key], torch.cat([s[key] for s in history[-1][0]]),
                                       rtol=2e-3, atol=2e-4)


def test_ensemble_dropout_has_one_rate_per_member():
    drop = EnsembleDropout([0.0, 0.3, 0.6])
    x = torch.ones(3, 20_000, 4)
    out = drop(x)
    zeros = (out == 0).float().mean((1, 2))
    torch.testing.assert_close(zeros, torch.tensor([0.0, 0.3, 0.6]), atol=0.01, rtol=0)
    torch.testing.assert_close(out.mean((1, 2)), torch.ones(3), atol=0.03, rtol=0)  # inverted dropout keeps the mean
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        EnsembleDropout([0.1, 1.0])


def test_configs_that_cannot_share_the_tensors_are_refused():
    with pytest.raises(ValueError, match="train the others separately"):
        IQL(1, 1, [CFG, with_(CFG, batch_size=32)])
    assert stack_key(CFG) == stack_key(with_(CFG, tau=0.9, beta=1.0, dropout=0.3))
    together = IQL(1, 1, [CFG, with_(CFG, dropout=0.3)])
    assert [c.dropout for c in together.configs] == [0.0, 0.3]
    with pytest.raises(ValueError, match="one seed per agent"):
        IQL(1, 1, [CFG, CFG], seeds=[1])
    with pytest.raises(ValueError, match="leading agent dimension"):
        together.update(chain_data().sample(8))
