"""The one training loop, for one agent or many: progress bar, CSV log, evaluation, NaN guard, checkpoints by steps
and by time, exact resume. `fit` (one run) and `fit_many` (S seeds at once) are thin calls to it, and so is online
fine-tuning (iqlkit.online), through a different source of minibatches.

A source does the updates between two log points: `advance(learner, n)` -> the per-agent stats summed over them
([n_stats, S]); it also saves and restores what it owns (samplers, a replay buffer) and names the data it trains on.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Protocol, Sequence

import torch
from tqdm.auto import tqdm

from iqlkit.data import Transitions, prepare
from iqlkit.device import resolve_device
from iqlkit.fast import FastIQL
from iqlkit.iql import IQL, STATS, IQLConfig, Member
from iqlkit.runfolder import CheckpointError, RunFolder

EvalFn = Callable[["IQL | Member"], dict]


class Source(Protocol):
    """Where a learner's minibatches come from (OfflineSource; iqlkit.online.OnlineSource)."""

    def advance(self, learner: IQL, n: int) -> torch.Tensor: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def fingerprint(self) -> dict: ...


class OfflineSource:
    """Uniform minibatches of a fixed dataset; agent k draws its indices from generators[k] (one generator: all)."""

    def __init__(self, data: Transitions, generators: Sequence[torch.Generator] | torch.Generator,
                 name: str | None = None) -> None:
        self.data, self.generators, self.name = data, generators, name

    def _list(self) -> list[torch.Generator]:
        return list(self.generators) if isinstance(self.generators, (list, tuple)) else [self.generators]

    def advance(self, learner: IQL, n: int) -> torch.Tensor:
        """n updates of the learner on fresh minibatches: [n_stats, S] sums."""
        return learner.run(self.data, n, self.generators)

    def state_dict(self) -> dict:
        return {"generators": [g.get_state() for g in self._list()]}

    def load_state_dict(self, state: dict) -> None:
        for g, s in zip(self._list(), state["generators"], strict=True):
            g.set_state(s)

    def fingerprint(self) -> dict:
        return {"dataset": self.name, **self.data.fingerprint()}


def next_interval(done: int, steps: int, log_every: int, eval_every: int) -> int:
    """Updates from step `done` to the next log point: the next multiple of log_every or eval_every, or the end."""
    return min(log_every - done % log_every, eval_every - done % eval_every, steps - done)


def _positive(**values: int | float) -> None:
    for name, value in values.items():
        if not value >= 1:
            raise ValueError(f"{name} must be >= 1; got {value}")


def _rng_states() -> dict:
    """The global generators a run draws from (dropout masks): torch's CPU one and, where present, CUDA's."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_states(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _resume(folder: RunFolder, learner: IQL, source: Source) -> list[dict]:
    """Restore learner, source and generators from the folder's checkpoint (if any); the log rows kept."""
    state = folder.load()
    if state is None:
        return folder.keep_log(0)
    saved, asked = state["learner"]["configs"], [c.to_dict() for c in learner.configs]
    if saved != asked:
        diff = (next({k: (s.get(k), v) for k, v in a.items() if s.get(k) != v} for s, a in zip(saved, asked) if s != a)
                if len(saved) == len(asked) else {"agents": (len(saved), len(asked))})
        raise CheckpointError(f"{folder.path} holds a run with another config (saved, asked): {diff}. Use another "
                              "folder (--out) or delete that one to start afresh.")
    if state["learner"]["seeds"] != learner.seeds:
        raise CheckpointError(f"{folder.path} holds a run with seeds {state['learner']['seeds']}, not "
                              f"{learner.seeds}: use another folder (--out)")
    if state["fingerprint"] != source.fingerprint():
        raise CheckpointError(f"{folder.path} holds a run on other data (saved {state['fingerprint']}, now "
                              f"{source.fingerprint()}). Use another folder (--out) or delete that one to start "
                              "afresh.")
    learner.load_state_dict(state["learner"])
    source.load_state_dict(state["source"])
    _set_rng_states(state["rng"])
    return folder.keep_log(learner.steps)


def _save(folder: RunFolder, learner: IQL, source: Source) -> None:
    """A checkpoint of the learner, the source and the generators, only when every weight is finite."""
    bad = learner.nonfinite_agents()
    if bad:
        raise FloatingPointError(f"the weights of {_agents(learner, bad)} became non-finite by step {learner.steps} "
                                 f"(the logged losses were still finite); nothing was saved: {folder.last_good()}. "
                                 "Try a smaller learning rate, a smaller beta or reward scale.")
    folder.save({"step": learner.steps, "learner": learner.state_dict(), "source": source.state_dict(),
                 "rng": _rng_states(), "fingerprint": source.fingerprint()})


def _agents(learner: IQL, ks: list[int]) -> str:
    """'agent 2 (seed 7, tau 0.9)' for error messages (just 'the agent' for a single run)."""
    if learner.n_agents == 1:
        return "the agent"
    seeds = learner.seeds or [None] * learner.n_agents
    return ", ".join(f"agent {k} (seed {seeds[k]}, tau {learner.configs[k].tau:g}, beta {learner.configs[k].beta:g})"
                     for k in ks)


def train(learner: IQL, source: Source, steps: int, eval_fn: EvalFn | None = None, eval_every: int = 10_000,
          log_every: int = 1_000, log_dir=None, checkpoint_every_s: float = 120.0, progress: bool = True,
          probe: Callable[[IQL], dict] | None = None, desc: str = "IQL", agent_columns: bool | None = None) -> list[dict]:
    """Train `learner` on `source` up to `steps` updates; returns the log rows (one per agent and log point).

    Every log_every steps the stats come to the host once (no sync in between), are checked for NaN (a
    FloatingPointError names the loss and the agent, and the last good checkpoint) and logged; probe(learner) -> {name:
    [S] tensor} adds diagnostics. Every eval_every steps and at the end eval_fn(agent) -> dict adds scores for each
    agent (learner.member(k)). With log_dir: rows go to log_dir/log.csv, a checkpoint is saved at every evaluation,
    at the end and at a log point at least every checkpoint_every_s seconds, and a folder that holds a checkpoint
    resumes from it exactly (same config, seeds and data, else a CheckpointError). Rows carry agent, seed, tau and
    beta columns when agent_columns (default: with more than one agent).
    """
    _positive(steps=steps, eval_every=eval_every, log_every=log_every)
    folder = RunFolder(log_dir) if log_dir is not None else None
    rows: list[dict] = []
    if folder is not None:
        folder.lock()
    try:
        if folder is not None:
            rows = _resume(folder, learner, source)
        rows += _loop(learner, source, steps, eval_fn, eval_every, log_every, folder, checkpoint_every_s, progress,
                      probe, desc, learner.n_agents > 1 if agent_columns is None else agent_columns)
        if folder is not None and rows:
            _plot(folder, rows)
    finally:
        if folder is not None:
            folder.release()
    return rows


def _loop(learner: IQL, source: Source, steps: int, eval_fn: EvalFn | None, eval_every: int, log_every: int,
          folder: RunFolder | None, checkpoint_every_s: float, progress: bool, probe, desc: str,
          agent_columns: bool) -> list[dict]:
    """The loop itself: advance, log, check, evaluate, checkpoint (see train)."""
    S, rows = learner.n_agents, []
    bar = tqdm(total=steps, initial=min(learner.steps, steps), disable=not progress, unit="step",
               desc=desc if S == 1 else f"{desc} x{S}")
    last_save = time.monotonic()
    try:
        while learner.steps < steps:
            n = next_interval(learner.steps, steps, log_every, eval_every)
            means = source.advance(learner, n) / n  # [n_stats, S]
            names = list(STATS)
            if probe is not None:  # diagnostics of the current agents, logged with the interval's mean losses
                extra = probe(learner)
                names, means = names + list(extra), torch.cat([means, torch.stack(list(extra.values()))])
            values = means.T.tolist()  # the one host sync per log interval
            bar.update(n)
            bad = {k: [name for name, v in zip(STATS, values[k]) if not math.isfinite(v)] for k in range(S)}
            bad = {k: names_ for k, names_ in bad.items() if names_}
            if bad:
                kept = folder.last_good() if folder is not None else "no log_dir, so no checkpoint"
                which = "; ".join(f"{', '.join(v)} of {_agents(learner, [k])}" for k, v in bad.items())
                raise FloatingPointError(f"{which} became non-finite by step {learner.steps}; {kept}. Try a smaller "
                                         "learning rate, a smaller beta or reward scale.")
            evaluate = learner.steps % eval_every == 0 or learner.steps == steps
            new = []
            for k in range(S):
                row = {"step": learner.steps}
                if agent_columns:
                    row.update(agent=k, seed=learner.seeds[k] if learner.seeds else "", tau=learner.configs[k].tau,
                               beta=learner.configs[k].beta)
                row.update(zip(names, values[k]))
                if evaluate and eval_fn is not None:
                    row.update(eval_fn(learner.member(k)))
                new.append(row)
            rows += new
            bar.set_postfix({k: f"{v:.3g}" for k, v in new[0].items() if k in STATS or k == "success_rate"})
            if folder is not None:
                folder.append_log(new)  # before the checkpoint: a resume finds every row up to its step
                if evaluate or time.monotonic() - last_save >= checkpoint_every_s:
                    _save(folder, learner, source)
                    last_save = time.monotonic()
    finally:
        bar.close()
    return rows


def _plot(folder: RunFolder, rows: list[dict]) -> None:
    """curves.png: the logged losses and scores against steps (one line per agent)."""
    import matplotlib.pyplot as plt

    from iqlkit.plots.training import training_curves

    fig = training_curves(folder.read_log())
    fig.savefig(folder.path / "curves.png", dpi=100)
    plt.close(fig)


def build(obs_dim: int, act_dim: int, configs: IQLConfig | Sequence[IQLConfig], device: torch.device,
          seeds: Sequence[int], agent_cls: type[IQL] = IQL, fast: bool | None = None, compile: bool = False) -> IQL:
    """The learner: agent_cls, or its fast variant (CUDA graphs on a GPU, torch.compile with compile=True).

    fast=None: fast on CUDA for the kit's own IQL (a custom agent_cls runs there only when asked for, fast=True).
    """
    fast = device.type == "cuda" and agent_cls is IQL if fast is None else fast
    cls = agent_cls
    if fast or compile:
        cls = FastIQL if agent_cls is IQL else type(f"Fast{agent_cls.__name__}", (FastIQL, agent_cls), {})
        return cls(obs_dim, act_dim, configs, device, seeds, graph=fast and device.type == "cuda", compile=compile)
    return cls(obs_dim, act_dim, configs, device, seeds)


def fit(data: Transitions, config: IQLConfig, steps: int | None = None, seed: int = 0, device: str = "auto",
        eval_fn: EvalFn | None = None, eval_every: int = 10_000, log_every: int = 1_000, log_dir=None,
        progress: bool = True, agent_cls: type[IQL] = IQL, fast: bool | None = None, compile: bool = False,
        checkpoint_every_s: float = 120.0, dataset: str | None = None) -> IQL:
    """Train one IQL agent on `data` (raw: `prepare` applies the config's preprocessing) for `steps` updates.

    seed: the weights (IQL(seeds=[seed])), the minibatch sampler and torch's global generator (dropout).
    agent_cls: the agent class to build (a subclass of IQL that overrides its losses, e.g. a student's).
    fast: train through iqlkit.fast.FastIQL (CUDA graphs; the same update), None = on CUDA for the kit's IQL.
    eval_fn(agent) -> dict of scores; dataset names the data in the checkpoint's fingerprint. See train() for the
    log, the checkpoints, the resume and the NaN guard.
    """
    steps = config.max_steps if steps is None else steps
    _positive(steps=steps)
    dev = resolve_device(device)
    data = prepare(data, config).to(dev)
    torch.manual_seed(seed)
    learner = build(data.obs_dim, data.act_dim, config, dev, [seed], agent_cls, fast, compile)
    source = OfflineSource(data, torch.Generator(device=dev).manual_seed(seed), dataset)
    train(learner, source, steps, eval_fn, eval_every, log_every, log_dir, checkpoint_every_s, progress,
          desc="IQL (fast)" if isinstance(learner, FastIQL) else "IQL")
    return learner


def fit_many(data: Transitions, config: IQLConfig | Sequence[IQLConfig], seeds: Sequence[int],
             taus: Sequence[float] | None = None, betas: Sequence[float] | None = None, steps: int | None = None,
             device: str = "auto", eval_fn: EvalFn | None = None, eval_every: int = 10_000, log_every: int = 1_000,
             progress: bool = True, probe=None, fast: bool | None = None, compile: bool = False, log_dir=None,
             checkpoint_every_s: float = 120.0, dataset: str | None = None) -> tuple[IQL, list[dict]]:
    """Train len(seeds) agents at once; agent k starts and samples as fit(data, config_k, seed=seeds[k]) would.

    config: one config (taus/betas then set agent k's tau and beta) or one per agent, differing only in tau, beta,
    dropout and a common learning-rate factor. eval_fn(agent_k) -> dict is called for each agent (a Member: act,
    value, q, seed, config) every eval_every steps; probe(learner) -> dict of [S] tensors (e.g.
    iqlkit.taustudy.Probe) adds diagnostics at every log point. Log, checkpoints, resume and NaN guard as in train().
    Returns the learner (S agents) and the log rows (step, agent, seed, tau, beta, stats, scores).
    """
    from dataclasses import replace

    S = len(seeds)
    if isinstance(config, IQLConfig):
        taus = [config.tau] * S if taus is None else list(taus)
        betas = [config.beta] * S if betas is None else list(betas)
        if len(taus) != S or len(betas) != S:
            raise ValueError(f"need one tau and one beta per seed ({S}); got {len(taus)} and {len(betas)}")
        configs = [replace(config, tau=tau, beta=beta) for tau, beta in zip(taus, betas)]
    elif len(config) != S or taus is not None or betas is not None:
        raise ValueError(f"give one config per seed ({S}; got {len(config)}) and no separate taus/betas")
    else:
        configs = list(config)
    steps = configs[0].max_steps if steps is None else steps
    _positive(steps=steps, agents=S)
    dev = resolve_device(device)
    data = prepare(data, configs[0]).to(dev)
    torch.manual_seed(seeds[0])
    learner = build(data.obs_dim, data.act_dim, configs, dev, seeds, IQL, fast, compile)
    source = OfflineSource(data, [torch.Generator(device=dev).manual_seed(s) for s in seeds], dataset)
    rows = train(learner, source, steps, eval_fn, eval_every, log_every, log_dir, checkpoint_every_s, progress,
                 probe, agent_columns=True)
    return learner, rows
