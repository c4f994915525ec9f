"""The fast path computes the readable path's algorithm: same losses, weights and Adam state from the same seed."""
import csv
import shutil

import numpy as np
import pytest
import torch

from iqlkit.fast import FastIQL
from iqlkit.iql import IQL, IQLConfig
from iqlkit.stacked import StackedIQL
from iqlkit.train import fit
from tests.test_train import chain_data

CFG = IQLConfig(hidden=(32, 32), batch_size=64, max_steps=300, tau=0.8, beta=5.0)


def weights(agent: IQL) -> dict[str, torch.Tensor]:
    """Every weight of the four networks and the Adam moments, flattened per network."""
    out = {net: torch.cat([p.detach().flatten() for p in getattr(agent, net).parameters()])
           for net in ("critic", "critic_target", "value_net", "actor")}
    for name in ("q_opt", "v_opt", "actor_opt"):
        opt = getattr(agent, name)
        out[name] = torch.cat([opt.state[p][k].flatten() for group in opt.param_groups for p in group["params"]
                               for k in ("exp_avg", "exp_avg_sq")])
    return out


def logged(path) -> list[dict]:
    return list(csv.DictReader((path / "log.csv").open()))


def assert_same_run(fast_dir, readable_dir, fast_agent, readable_agent, rtol=1e-4, atol=1e-5):
    """Losses at every log point and every weight at the end agree within float32 round-off grown over training."""
    for f_row, r_row in zip(logged(fast_dir), logged(readable_dir), strict=True):
        assert f_row["step"] == r_row["step"]
        for key in ("v_loss", "actor_loss", "q_loss", "q_mean", "v_mean"):
            assert float(f_row[key]) == pytest.approx(float(r_row[key]), rel=rtol, abs=atol), (f_row["step"], key)
    ours, theirs = weights(fast_agent), weights(readable_agent)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=rtol, atol=atol, msg=name)
    assert fast_agent.steps == readable_agent.steps
    assert fast_agent.actor_opt.param_groups[0]["lr"] == pytest.approx(readable_agent.actor_opt.param_groups[0]["lr"])


def test_fast_fit_matches_the_readable_fit_from_the_same_seed(tmp_path):
    runs = {}
    for fast in (False, True):
        out = tmp_path / f"fast{fast}"
        runs[fast] = (out, fit(chain_data(500), CFG, steps=300, seed=4, log_every=50, eval_every=150, log_dir=out,
                               progress=False, fast=fast))
    assert_same_run(runs[True][0], runs[False][0], runs[True][1], runs[False][1])
    assert len(logged(runs[True][0])) == 6


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("clang++") is None,
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_compiled_fast_fit_matches_the_readable_fit(tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    runs = {}
    for fast in (False, True):
        out = tmp_path / f"fast{fast}"
        runs[fast] = (out, fit(chain_data(500), CFG, steps=200, seed=5, log_every=50, eval_every=200, log_dir=out,
                               progress=False, fast=fast, compile=fast))
    assert counters["stats"]["unique_graphs"] == 5  # the five loss and target functions, each compiled once
    assert_same_run(runs[True][0], runs[False][0], runs[True][1], runs[False][1])


def test_a_run_saved_on_one_path_resumes_on_the_other(tmp_path):
    data = chain_data(500)
    straight = fit(data, CFG, steps=200, seed=2, log_every=50, eval_every=100, log_dir=tmp_path / "straight",
                   progress=False, fast=False)
    for first, second in ((True, False), (False, True)):
        out = tmp_path / f"{first}-{second}"
        fit(data, CFG, steps=100, seed=2, log_every=50, eval_every=100, log_dir=out, progress=False, fast=first)
        resumed = fit(data, CFG, steps=200, seed=2, log_every=50, eval_every=100, log_dir=out, progress=False,
                      fast=second)
        assert_same_run(out, tmp_path / "straight", resumed, straight)


def test_stack_and_unstack_are_exact_inverses():
    data = chain_data(300)
    agents = []
    for k, (tau, lr) in enumerate(((0.7, 3e-4), (0.9, 1e-4))):
        torch.manual_seed(k)
        agents.append(IQL(1, 1, IQLConfig(**{**CFG.to_dict(), "tau": tau, "actor_lr": lr, "critic_lr": lr,
                                             "value_lr": lr})))
        for _ in range(7):  # Adam moments and a step count to carry over
            agents[-1].update(data.sample(32, torch.Generator().manual_seed(k)))
    stacked = StackedIQL.from_agents(agents)
    assert stacked.steps == 7 and float(stacked.step_t) == 7
    for k, agent in enumerate(agents):
        back = stacked.agent(k)
        assert back.config == agent.config and back.steps == 7
        for name, value in weights(agent).items():
            torch.testing.assert_close(weights(back)[name], value, rtol=0, atol=0, msg=name)
        assert back.actor_opt.param_groups[0]["lr"] == agent.actor_opt.param_groups[0]["lr"]
        assert back.actor_sched.state_dict()["last_epoch"] == agent.actor_sched.state_dict()["last_epoch"]
        assert back.q_opt.state[next(back.critic.parameters())]["step"] == 7


def test_several_updates_per_call_equal_one_at_a_time():
    data = chain_data(300)
    torch.manual_seed(0)
    a, b = (FastIQL.from_agents([IQL(1, 1, CFG)]) for _ in range(2))
    b.critic.load_state_dict(a.critic.state_dict())
    for net in ("critic_target", "value_net", "actor"):
        getattr(b, net).load_state_dict(getattr(a, net).state_dict())
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    sums = a.run(data, 25, ga)
    one_by_one = sum(torch.stack(list(b.update(b.sample(data, gb)).values())) for _ in range(25))
    torch.testing.assert_close(sums, one_by_one, rtol=1e-6, atol=1e-6)
    assert a.steps == b.steps == 25


def test_fast_path_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        FastIQL(1, 1, CFG, 1, graph=True)
    with pytest.raises(ValueError, match="graph_steps"):
        FastIQL(1, 1, CFG, 1, graph_steps=0)
    with pytest.raises(ValueError, match="custom agent_cls with fast=False"):
        fit(chain_data(), CFG, steps=5, fast=True, agent_cls=type("Mine", (IQL,), {}), progress=False)
    agents = [IQL(1, 1, CFG), IQL(1, 1, CFG)]
    agents[1].steps = 3
    with pytest.raises(ValueError, match="different steps"):
        StackedIQL.from_agents(agents)


def test_run_accounts_for_warm_up_replays_and_remainders(monkeypatch):
    """FastIQL.run's bookkeeping around a graph, on a CPU: a stand-in graph whose replay performs the recorded
    updates (device state changes, the Python step count does not, as with a CUDA graph)."""
    from iqlkit import fast

    class StandIn:
        def __init__(self, learner, data, generators):
            self.learner, self.data, self.generators = learner, data, generators

        def replay(self):
            steps = self.learner.steps
            self.learner._graph_sums = StackedIQL.run(self.learner, self.data, self.learner.graph_steps,
                                                      self.generators)
            self.learner.steps = steps

    def capture(self, data, generators):
        warm = StackedIQL.run(self, data, fast.WARMUP, generators)
        self._graph, self._graph_generators = StandIn(self, data, generators), generators
        return warm

    monkeypatch.setattr(FastIQL, "_capture", capture)
    data = chain_data(300)
    results = []
    for graph in (False, True):
        torch.manual_seed(0)
        learner = FastIQL.from_agents([IQL(1, 1, CFG), IQL(1, 1, CFG)], graph_steps=10)
        learner.graph = graph  # the stand-in needs no CUDA device
        gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
        sums = torch.stack([learner.run(data, n, gens) for n in (5, 37, 1, 20)])  # eager, capture + 3 replays, ...
        assert learner.steps == 63 and float(learner.step_t) == 63
        results.append((sums, weights(learner.agent(1))))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-6, atol=1e-6)
    for name in results[0][1]:
        torch.testing.assert_close(results[1][1][name], results[0][1][name], rtol=1e-6, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="other generators"):
        learner.run(data, 10, [torch.Generator(), torch.Generator()])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (run this file on the GPU machine)")
def test_cuda_graph_replays_compute_the_eager_updates():
    data = chain_data(2000).to("cuda")
    results = []
    for graph in (False, True):
        torch.manual_seed(0)
        agent = IQL(1, 1, CFG, "cuda")
        learner = FastIQL.from_agents([agent, agent], graph=graph, graph_steps=10)
        gens = [torch.Generator(device="cuda").manual_seed(s) for s in (1, 2)]
        sums = torch.stack([learner.run(data, n, gens) for n in (5, 37, 1, 20)])  # warm-up, replays, remainders
        assert learner.steps == 63 and float(learner.step_t) == 63
        results.append((sums, weights(learner.agent(1)), [g.get_state() for g in gens]))
    (eager_sums, eager_w, eager_g), (graph_sums, graph_w, graph_g) = results
    torch.testing.assert_close(graph_sums, eager_sums, rtol=1e-4, atol=1e-5)
    for name in eager_w:
        torch.testing.assert_close(graph_w[name], eager_w[name], rtol=1e-4, atol=1e-5, msg=name)
    assert all(torch.equal(x, y) for x, y in zip(graph_g, eager_g))
    np.testing.assert_equal(eager_sums.shape, (4, 5, 2))
