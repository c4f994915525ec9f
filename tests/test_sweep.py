from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.engine.train import fit
from iqlkit.experiments import sweep as sweep_module
from iqlkit.experiments.extraction import clip_fraction, effective_sample_size
from iqlkit.experiments.sweep import (ablation, ablation_table, config_id, final_scores, format_table, read_results,
                                      stack_key, sweep, with_value)
from iqlkit.experiments.taustudy import Probe
from tests.test_train import chain_data

BASE = IQLConfig(hidden=(16, 16), batch_size=32, max_steps=40)
OBS = np.linspace(-1, 1, 4)[:, None]


def actions_at(act, fail_if=None) -> dict[str, float]:
    """A deterministic 'score': the policy's actions at four fixed states."""
    if fail_if is not None and fail_if():
        raise KeyboardInterrupt("simulated interruption")
    return {f"a{i}": float(a) for i, a in enumerate(act(OBS)[:, 0])}


def test_ablation_changes_one_hyperparameter_at_a_time():
    entries = ablation(BASE, {"tau": (0.5, 0.9), "depth": (3,), "lr": (1e-4,)})
    assert [(a, v) for a, v, _ in entries] == [("tau", 0.5), ("tau", 0.9), ("depth", 3), ("lr", 1e-4)]
    assert entries[1][2] == replace(BASE, tau=0.9)
    assert entries[2][2].hidden == (16, 16, 16)
    assert (entries[3][2].actor_lr, entries[3][2].critic_lr, entries[3][2].value_lr) == (1e-4,) * 3
    with pytest.raises(ValueError, match="unknown axis"):
        with_value(BASE, "width", 3)
    with pytest.raises(ValueError, match="tau"):
        with_value(BASE, "tau", 1.0)


def test_stack_key_separates_only_what_cannot_share_a_stack():
    same = [replace(BASE, tau=0.99), replace(BASE, beta=0.0), replace(BASE, dropout=0.3),
            with_value(BASE, "lr", 1e-4)]
    assert {stack_key(c) for c in same} == {stack_key(BASE)}
    for other in (replace(BASE, batch_size=64), with_value(BASE, "depth", 3), replace(BASE, critic_lr=1e-4),
                  replace(BASE, clipped_double_q=False)):
        assert stack_key(other) != stack_key(BASE)


def test_sweep_runs_match_separately_trained_runs(tmp_path):
    data = chain_data(300)
    configs = [BASE, replace(BASE, tau=0.9, beta=1.0), with_value(BASE, "lr", 1e-3), replace(BASE, batch_size=16)]
    rows = sweep(data, configs, seeds=(4, 5), out=tmp_path, eval_fn=actions_at,
                 n_evals=2, progress=False)
    for config in configs:
        for seed in (4, 5):
            alone = fit(data, config, steps=40, seed=seed, progress=False)
            last = [r for r in rows if r["config"] == config_id(config) and r["seed"] == seed and r["step"] == 40]
            assert len(last) == 1
            np.testing.assert_allclose([last[0][f"a{i}"] for i in range(4)], alone.act(OBS)[:, 0], atol=2e-3)


def test_an_interrupted_sweep_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    data = chain_data(300)
    configs = [BASE, replace(BASE, tau=0.9), replace(BASE, batch_size=16)]  # two stacks: batch 32, batch 16
    groups = []
    real = sweep_module._train_group

    def spy(data, jobs, *args):
        groups.append([(c.tau, c.batch_size, s) for c, s in jobs])
        return real(data, jobs, *args)

    monkeypatch.setattr(sweep_module, "_train_group", spy)
    interrupt = partial(actions_at, fail_if=lambda: len(groups) == 2)  # dies inside the second stack
    with pytest.raises(KeyboardInterrupt):
        sweep(data, configs, seeds=(0, 1), out=tmp_path, eval_fn=interrupt, n_evals=1, progress=False)
    first = read_results(tmp_path)
    assert {(r["config"], r["seed"]) for r in first} == {(config_id(c), s) for c in configs[:2] for s in (0, 1)}
    groups.clear()
    rows = sweep(data, configs, seeds=(0, 1), out=tmp_path, eval_fn=actions_at, n_evals=1, progress=False)
    assert groups == [[(0.7, 16, 0), (0.7, 16, 1)]]  # only the unfinished stack trains again
    assert rows[: len(first)] == first and len(rows) == 6
    groups.clear()
    sweep(data, configs, seeds=(0, 1), out=tmp_path, eval_fn=actions_at, n_evals=1, progress=False)
    assert groups == []


def test_a_sweep_interrupted_inside_a_group_resumes_that_group_from_its_checkpoint(tmp_path, monkeypatch):
    data = chain_data(300)
    configs = [BASE, replace(BASE, tau=0.9)]  # one stack of 2 configs x 2 seeds
    straight = sweep(data, configs, seeds=(0, 1), out=tmp_path / "straight", eval_fn=actions_at, n_evals=2,
                     progress=False)
    evals = []
    interrupt = partial(actions_at, fail_if=lambda: evals.append(1) or len(evals) > 4)  # dies at the 2nd evaluation
    with pytest.raises(KeyboardInterrupt):
        sweep(data, configs, seeds=(0, 1), out=tmp_path / "cut", eval_fn=interrupt, n_evals=2, progress=False)
    updates = []
    real = IQL.update
    monkeypatch.setattr(IQL, "update", lambda self, batch: updates.append(1) or real(self, batch))
    rows = sweep(data, configs, seeds=(0, 1), out=tmp_path / "cut", eval_fn=actions_at, n_evals=2, progress=False)
    assert len(updates) == 20  # steps 20 -> 40 only: the group's checkpoint at its first evaluation was used
    key = sorted(straight, key=lambda r: (r["config"], r["seed"], r["step"]))
    assert sorted(rows, key=lambda r: (r["config"], r["seed"], r["step"])) == key


def test_ablation_table_is_mean_and_std_over_seeds():
    cfgs = [BASE, replace(BASE, tau=0.9)]
    rows = [{"config": config_id(c), "seed": s, "steps": 40, "step": step, "success_rate": score}
            for c, scores in zip(cfgs, ((0.2, 0.4), (1.0, 0.8))) for s, score in enumerate(scores)
            for step in (20, 40)]
    rows.append({**rows[0], "step": 20, "success_rate": 0.9})  # not a final row: ignored
    np.testing.assert_allclose(final_scores(rows, BASE), [0.2, 0.4])
    table = ablation_table({"maze": rows}, [("tau", 0.7, BASE), ("tau", 0.9, cfgs[1])])
    assert table[0]["maze"] == pytest.approx((30.0, 10.0, 2))
    text = format_table(table)
    assert "Expectile (tau)" in text and "**90.0 ± 10.0**" in text and "| 30.0 ± 10.0 |" in text


def test_probe_matches_the_readable_agents():
    data = chain_data(400)
    configs = [replace(BASE, tau=tau, beta=beta, adv_clip=1.5) for tau, beta in ((0.6, 3.0), (0.95, 50.0))]
    learner = IQL(1, 1, configs, seeds=[0, 1])
    for _ in range(30):
        learner.update(data.sample_agents(2, 32, torch.Generator().manual_seed(0)))
    probe = Probe(data, n=256)
    got = probe(learner)
    obs, act = probe.observations, probe.actions
    for k, config in enumerate(configs):
        u = learner.advantage(obs.expand(2, -1, -1), act.expand(2, -1, -1))[k]
        w = torch.exp(config.beta * u).clamp(max=1.5)
        tau = config.tau
        sw = torch.where(u < 0, 1 - tau, tau)
        expected = {"pos_frac": float((u > 0).float().mean()), "adv_mean": float(u.mean()),
                    "adv_std": float(u.std()), "ess": effective_sample_size(w), "clip_frac": clip_fraction(w, 1.5),
                    "v_probe": float(learner.value(probe.observations)[k].mean()),
                    "v_se": float(np.sqrt(float((sw * u).square().mean()) / 32) / float(sw.mean()))}
        for key, value in expected.items():
            assert float(got[key][k]) == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert float(got["clip_frac"][1]) > 0  # beta 50 reaches the clip


def test_probe_quality_diagnostics_follow_the_weights():
    data = chain_data(400)
    learner = IQL(1, 1, [replace(BASE, beta=0.0), replace(BASE, beta=20.0)], seeds=[0, 1])
    for _ in range(30):
        learner.update(data.sample_agents(2, 32, torch.Generator().manual_seed(0)))
    probe = Probe(data, n=256, quality=lambda obs, act: act[:, 0])  # quality = the action itself
    got = probe(learner)
    a = probe.actions[:, 0]
    assert float(got["awr_quality"][0]) == pytest.approx(float(a.mean()), abs=1e-5)  # beta 0: BC's mean quality
    u = learner.advantage(probe.observations.expand(2, -1, -1), probe.actions.expand(2, -1, -1))[1]
    w = torch.exp(20.0 * u).clamp(max=100.0)
    assert float(got["awr_quality"][1]) == pytest.approx(float((w * a).sum() / w.sum()), rel=1e-4)
    expected = float(torch.corrcoef(torch.stack([u, a]))[0, 1])
    assert float(got["adv_quality_corr"][1]) == pytest.approx(expected, abs=1e-4)
