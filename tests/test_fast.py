"""The fast path runs the readable path's update: same losses, weights and Adam state from the same seed; the
bookkeeping around CUDA graphs (warm-up, capture, replays, remainders) is checked on a CPU with a stand-in graph."""
import csv

import numpy as np
import pytest
import torch

from iqlkit.engine import fast
from iqlkit.engine.fast import FastIQL, compile_unavailable
from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.engine.train import OfflineSource, fit
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
    assert float(fast_agent.actor_opt.param_groups[0]["lr"]) == pytest.approx(
        float(readable_agent.actor_opt.param_groups[0]["lr"]))


def test_fast_fit_matches_the_readable_fit_from_the_same_seed(tmp_path):
    runs = {}
    for is_fast in (False, True):
        out = tmp_path / f"fast{is_fast}"
        runs[is_fast] = (out, fit(chain_data(500), CFG, steps=300, seed=4, log_every=50, eval_every=150, log_dir=out,
                                  progress=False, fast=is_fast))
    assert isinstance(runs[True][1], FastIQL) and not isinstance(runs[False][1], FastIQL)
    assert_same_run(runs[True][0], runs[False][0], runs[True][1], runs[False][1])
    assert len(logged(runs[True][0])) == 6


@pytest.mark.skipif(compile_unavailable("cpu") is not None, reason=str(compile_unavailable("cpu")))
def test_compiled_fast_fit_matches_the_readable_fit(tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    runs = {}
    for is_fast in (False, True):
        out = tmp_path / f"fast{is_fast}"
        runs[is_fast] = (out, fit(chain_data(500), CFG, steps=200, seed=5, log_every=50, eval_every=200, log_dir=out,
                                  progress=False, fast=is_fast, compile=is_fast))
    assert counters["stats"]["unique_graphs"] == 5  # the five loss and target functions, each compiled once
    assert_same_run(runs[True][0], runs[False][0], runs[True][1], runs[False][1])


def test_compile_says_what_it_lacks(monkeypatch):
    monkeypatch.setattr(fast.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert "needs a C++ compiler" in compile_unavailable("cpu")
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler.*--no-compile"):
        FastIQL(1, 1, CFG, compile=True)


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


def test_several_updates_per_call_equal_one_at_a_time():
    data = chain_data(300)
    a, b = (FastIQL(1, 1, CFG, seeds=[0]) for _ in range(2))
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    sums = a.update_n(OfflineSource(data, ga), 25)
    one_by_one = sum(torch.stack([s for s in b.update(data.sample_agents(1, CFG.batch_size, gb)).values()])
                     for _ in range(25))
    torch.testing.assert_close(sums, one_by_one, rtol=1e-6, atol=1e-6)
    assert a.steps == b.steps == 25


def test_fast_path_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        FastIQL(1, 1, CFG, graph=True)
    with pytest.raises(ValueError, match="graph_steps"):
        FastIQL(1, 1, CFG, graph_steps=0)


def test_a_custom_agent_class_runs_on_the_fast_path_when_asked():
    class Halved(IQL):
        def q_loss(self, batch, next_v):
            return 0.5 * super().q_loss(batch, next_v)

    agent = fit(chain_data(), CFG, steps=5, fast=True, agent_cls=Halved, progress=False)
    assert isinstance(agent, FastIQL) and isinstance(agent, Halved)


class StandIn:
    """A CPU stand-in for a CUDA graph: replay() performs the recorded updates (device state changes, the Python step
    count does not, as with a real graph)."""

    def __init__(self, learner, source, steps):
        self.learner, self.source, self.steps = learner, source, steps
        self.replays = 0

    def replay(self):
        steps = self.learner.steps
        self.learner._graph_sums = IQL.update_n(self.learner, self.source, self.steps)
        self.learner.steps = steps
        self.replays += 1


@pytest.fixture
def stand_in_graphs(monkeypatch):
    """FastIQL's capture and eager warm-up made CPU-safe: the capture records a StandIn instead of a CUDA graph."""
    captured = []

    def capture(self, source, steps):
        self._graph = StandIn(self, source, steps)
        self._graph_steps, self._graph_inputs = steps, source
        captured.append(self._graph)

    monkeypatch.setattr(FastIQL, "_capture", capture)
    monkeypatch.setattr(FastIQL, "_eager", lambda self, source, n: IQL.update_n(self, source, n))
    return captured


def test_update_n_accounts_for_warm_up_replays_and_remainders(stand_in_graphs):
    data = chain_data(300)
    configs = [CFG, IQLConfig(**{**CFG.to_dict(), "tau": 0.6, "dropout": 0.0, "actor_lr": 1e-4, "critic_lr": 1e-4,
                                 "value_lr": 1e-4})]
    results = []
    for graph in (False, True):
        learner = FastIQL(1, 1, configs, seeds=[0, 1], graph_steps=10)
        learner.graph = graph  # the stand-in needs no CUDA device
        source = OfflineSource(data, [torch.Generator().manual_seed(s) for s in (1, 2)])
        sums = torch.stack([learner.update_n(source, n) for n in (5, 37, 1, 20)])  # warm-up, capture, replays, ...
        assert learner.steps == 63 and int(learner.actor_t) == 63
        results.append((sums, weights(learner)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-6, atol=1e-6)
    for name in results[0][1]:
        torch.testing.assert_close(results[1][1][name], results[0][1][name], rtol=1e-6, atol=1e-6, msg=name)
    (graph,) = stand_in_graphs
    assert graph.steps == 10 and graph.replays == 3 + 2  # 37 - 0 left after warm-up: 3 replays; 20: 2 replays
    with pytest.raises(ValueError, match="recorded on another source"):
        learner.update_n(OfflineSource(data, source.generators), 10)


def test_a_small_log_interval_still_gets_a_graph(stand_in_graphs):
    data = chain_data(300)
    learner = FastIQL(1, 1, CFG, seeds=[0], graph_steps=10)
    learner.graph = True
    source = OfflineSource(data, torch.Generator().manual_seed(0))
    for _ in range(6):
        learner.update_n(source, 4)  # 3 warm-up updates, then a graph of 4 updates replayed once per call
    (graph,) = stand_in_graphs
    assert graph.steps == 4 and graph.replays == 5 and learner.steps == 24


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (run this file on the GPU machine)")
def test_cuda_graph_replays_compute_the_eager_updates():
    data = chain_data(2000).to("cuda")
    configs = [CFG, IQLConfig(**{**CFG.to_dict(), "tau": 0.6, "dropout": 0.2, "actor_lr": 1e-4, "critic_lr": 1e-4,
                                 "value_lr": 1e-4})]  # per-agent rates and dropout under the graph
    results = []
    for graph in (False, True):
        torch.manual_seed(0)  # dropout masks come from the default CUDA generator, which graphs advance too
        learner = FastIQL(1, 1, configs, "cuda", seeds=[0, 1], graph=graph, graph_steps=10)
        gens = [torch.Generator(device="cuda").manual_seed(s) for s in (1, 2)]
        source = OfflineSource(data, gens)
        sums = torch.stack([learner.update_n(source, n) for n in (5, 37, 1, 20)])  # warm-up, replays, remainders
        assert learner.steps == 63 and int(learner.actor_t) == 63
        results.append((sums, weights(learner), [g.get_state() for g in gens]))
    (eager_sums, eager_w, eager_g), (graph_sums, graph_w, graph_g) = results
    assert all(torch.equal(x, y) for x, y in zip(graph_g, eager_g))
    np.testing.assert_equal(eager_sums.shape, (4, 5, 2))
    # without dropout (agent 0) the numbers agree; with it the graph draws other masks of the same law
    torch.testing.assert_close(graph_sums[..., 0], eager_sums[..., 0], rtol=1e-4, atol=1e-5)
    assert torch.isfinite(graph_sums).all()
