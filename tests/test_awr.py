import math

import numpy as np
import pytest
import torch

from iqlkit.engine.iql import IQL, IQLConfig, awr_weight
from iqlkit.envs import datagen
from iqlkit.envs.data import load_minari
from iqlkit.experiments.extraction import clip_fraction, effective_sample_size, extraction_study, policy_std
from tests.test_train import chain_data


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    agent = IQL(1, 1, IQLConfig(hidden=(16,), batch_size=32, beta=3.0))
    data = chain_data()
    for _ in range(50):
        agent.update(data.sample(32))
    return agent, data.sample(64, torch.Generator().manual_seed(1))


def test_advantages_are_target_q_minus_v_on_the_batch(trained):
    agent, batch = trained
    b = agent.agent_batch(batch)
    expected = agent.target_q(b.observations, b.actions) - agent.value_net(b.observations)
    torch.testing.assert_close(agent.advantage(batch.observations, batch.actions), expected[0].detach())
    assert not agent.advantage(batch.observations, batch.actions).requires_grad


def test_awr_weights_match_the_actor_loss(trained):
    agent, batch = trained
    w = awr_weight(agent.advantage(batch.observations, batch.actions), beta=3.0)
    b = agent.agent_batch(batch)
    log_prob = agent.actor.log_prob(b.observations, b.actions)[0]
    q_t = agent.target_q(b.observations, b.actions)
    loss = agent.actor_loss(b, q_t, agent.value_net(b.observations))
    torch.testing.assert_close(loss[0], -(w * log_prob).mean())
    assert torch.all(awr_weight(agent.advantage(batch.observations, batch.actions), beta=0.0) == 1.0)


def test_awr_weight_exponentiates_and_clips():
    w = awr_weight(np.array([0.0, math.log(2.0), -math.log(4.0), 10.0]), beta=1.0)
    torch.testing.assert_close(w, torch.tensor([1.0, 2.0, 0.25, 100.0]))
    assert awr_weight(torch.tensor([1.0]), beta=2.0, clip=5.0).item() == 5.0


def test_clip_fraction_counts_weights_at_the_clip():
    assert clip_fraction(torch.tensor([1.0, 100.0, 100.0, 5.0])) == 0.5
    assert clip_fraction(torch.tensor([1.0, 5.0]), clip=5.0) == 0.5
    assert clip_fraction(torch.ones(3)) == 0.0


def test_effective_sample_size_is_normalised():
    assert effective_sample_size(torch.ones(10)) == pytest.approx(1.0)
    assert effective_sample_size(torch.tensor([0.0, 0.0, 0.0, 7.0])) == pytest.approx(0.25)
    assert effective_sample_size(torch.tensor([1.0, 3.0])) == pytest.approx(16 / 20)


def test_policy_std_is_constant_unless_state_dependent():
    torch.manual_seed(0)
    obs = torch.linspace(-1, 1, 5)[:, None]
    flat = policy_std(IQL(1, 2, IQLConfig(hidden=(8,))), obs)
    assert flat.shape == (5, 2) and np.allclose(flat, 1.0)  # log_std starts at 0
    varying = policy_std(IQL(1, 2, IQLConfig(hidden=(8,), state_dependent_std=True)), obs)
    assert varying.shape == (5, 2) and np.ptp(varying[:, 0]) > 0


@pytest.fixture(scope="module")
def umaze_data(tmp_path_factory):
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path_factory.mktemp("minari"))
    return load_minari(datagen.pointmaze("umaze", "stitch", n_steps=2000, seed=0), terminate_on_success=True,
                       verbose=False)


def test_extraction_study_fits_once_per_job_and_extracts_per_beta(umaze_data):
    cfg = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32, max_steps=30)
    sds = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32, max_steps=30, state_dependent_std=True)
    jobs = [(cfg, 0, (0.0, 10.0)), (sds, 1, ())]
    runs = extraction_study(umaze_data, jobs, "umaze", eval_episodes=2, workers=1)
    assert [(r.seed, r.config, sorted(r.posthoc)) for r in runs] == [(0, cfg, [0.0, 10.0]), (1, sds, [])]
    assert all(0 <= s <= 1 for r in runs for s in [r.concurrent, *r.posthoc.values()])
    assert runs[0].agent.steps == 30 and runs[0].agent.config == cfg  # post-hoc extraction worked on copies
    assert runs[1].agent.actor.state_dependent_std
    parallel = extraction_study(umaze_data, jobs, "umaze", eval_episodes=2, workers=2)
    assert [(r.concurrent, r.posthoc) for r in parallel] == [(r.concurrent, r.posthoc) for r in runs]
    for a, b in zip(parallel[0].agent.critic.parameters(), runs[0].agent.critic.parameters()):
        torch.testing.assert_close(a, b)
