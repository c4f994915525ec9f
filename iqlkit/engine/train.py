"""The one training loop, for one agent or many: progress bar, CSV log, evaluation, NaN guard, checkpoints by steps
and by time, exact resume. `fit_many` (S agents at once) builds the agents and calls it; `fit` is fit_many with
one agent; online fine-tuning (iqlkit.engine.online) calls it with another source of minibatches.

A source is where a learner's minibatches come from: `sample_agents(S, B)` -> one [S, B, ...] batch per update
(OfflineSource here; iqlkit.engine.online.OnlineSource, which also steps its envs between updates). It saves and
restores what it owns (generators, a replay buffer) and names the data it trains on (`fingerprint`). The loop only
asks the learner for `update_n(source, n)` between two log points; the figures of a run are drawn from its log.csv
by whoever wants them (the CLI draws curves.png with iqlkit.plots.training).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch
from tqdm.auto import tqdm

from iqlkit.engine.device import resolve_device
from iqlkit.engine.fast import FastIQL
from iqlkit.engine.iql import IQL, STATS, IQLConfig, Member
from iqlkit.engine.runfolder import CheckpointError, RunFolder
from iqlkit.envs.data import Batch, Transitions, prepare

EvalFn = Callable[["IQL | Member"], dict]


@dataclass(frozen=True)
class TrainOptions:
    """How a run is trained, logged and kept (what is learnt is the IQLConfig's), as CORL's TrainConfig."""

    steps: int | None = None  # updates in all; None: the config's max_steps
    device: str = "auto"  # where the agents train: auto, cpu, cuda, cuda:1
    eval_fn: EvalFn | None = None  # agent -> {score: value}, for each agent at every evaluation
    eval_every: int = 10_000  # updates between evaluations (there is one at the end too)
    log_every: int = 1_000  # updates between log rows: the stats come to the host once per interval
    probe: Callable[[IQL], dict] | None = None  # learner -> {name: [S] tensor}: diagnostics logged with the losses
    log_dir: str | Path | None = None  # the run folder (log.csv, checkpoints, resume); None keeps nothing on disk
    checkpoint_every_s: float = 120.0  # a checkpoint at a log point at least this often (and at every evaluation)
    dataset: str | None = None  # the data's name, kept in the checkpoint's fingerprint
    progress: bool = True  # a tqdm bar
    desc: str = "IQL"  # the bar's label
    agent_columns: bool = True  # log rows carry agent, seed, tau and beta (fit turns them off for its one agent)
    fast: bool | None = None  # train through iqlkit.engine.fast (CUDA graphs); None: on CUDA for the kit's IQL
    compile: bool = False  # fast path: torch.compile the loss functions
    tensorboard: bool = False  # with log_dir: TensorBoard events of every log row, a folder per agent (log.csv rules)

    def __post_init__(self) -> None:
        for name in ("eval_every", "log_every") + (("steps",) if self.steps is not None else ()):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.tensorboard and self.log_dir is None:
            raise ValueError("tensorboard needs a log_dir: the events go beside its log.csv")


class NonFiniteError(FloatingPointError):
    """The NaN guard: a loss or weight became non-finite; `agents` are the learner's agents it happened to."""

    def __init__(self, message: str, agents: Sequence[int]) -> None:
        super().__init__(message)
        self.agents = list(agents)

    def __reduce__(self) -> tuple:  # pickled with its agents (to a process pool's or Ray's driver)
        return type(self), (str(self), self.agents)


class Source(Protocol):
    """Where a learner's minibatches come from (OfflineSource; iqlkit.engine.online.OnlineSource)."""

    def sample_agents(self, n_agents: int, batch_size: int) -> Batch: ...

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

    def sample_agents(self, n_agents: int, batch_size: int) -> Batch:
        """One uniform minibatch per agent, [S, B, ...] (Transitions.sample_agents with this source's generators)."""
        return self.data.sample_agents(n_agents, batch_size, self.generators)

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
        raise NonFiniteError(f"the weights of {_agents(learner, bad)} became non-finite by step {learner.steps} "
                             f"(the logged losses were still finite); nothing was saved: {folder.last_good()}. "
                             "Try a smaller learning rate, a smaller beta or reward scale.", bad)
    folder.save({"step": learner.steps, "learner": learner.state_dict(), "source": source.state_dict(),
                 "rng": _rng_states(), "fingerprint": source.fingerprint()})


def _agents(learner: IQL, ks: list[int]) -> str:
    """'agent 2 (seed 7, tau 0.9)' for error messages (just 'the agent' for a single run)."""
    if learner.n_agents == 1:
        return "the agent"
    seeds = learner.seeds or [None] * learner.n_agents
    return ", ".join(f"agent {k} (seed {seeds[k]}, tau {learner.configs[k].tau:g}, beta {learner.configs[k].beta:g})"
                     for k in ks)


def _check_finite(learner: IQL, names: list[str], values: list[list[float]], folder: RunFolder | None) -> None:
    """A NonFiniteError naming each non-finite loss, its agent and the checkpoint the run keeps."""
    bad = {k: [name for name, v in zip(STATS, values[k]) if not math.isfinite(v)] for k in range(learner.n_agents)}
    bad = {k: found for k, found in bad.items() if found}
    if bad:
        kept = folder.last_good() if folder is not None else "no log_dir, so no checkpoint"
        which = "; ".join(f"{', '.join(v)} of {_agents(learner, [k])}" for k, v in bad.items())
        raise NonFiniteError(f"{which} became non-finite by step {learner.steps}; {kept}. Try a smaller "
                             "learning rate, a smaller beta or reward scale.", list(bad))


def _event_writers(folder: RunFolder, learner: IQL) -> list:
    """One TensorBoard writer per agent, folder/tensorboard/<agent> (the folder itself for a single run); events
    past the resumed step, left by an interrupted run, are hidden (purge_step)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ModuleNotFoundError("tensorboard=True needs the tensorboard package: pip install tensorboard") from None
    seeds = learner.seeds or [None] * learner.n_agents
    names = ([""] if learner.n_agents == 1 else
             [f"agent{k}-seed{seeds[k]}-tau{c.tau:g}-beta{c.beta:g}" for k, c in enumerate(learner.configs)])
    writers = [SummaryWriter(folder.path / "tensorboard" / name, purge_step=learner.steps + 1) for name in names]
    for writer, config in zip(writers, learner.configs):
        writer.add_text("config", str(config.to_dict()), learner.steps)  # what tells the runs of a sweep apart
    return writers


def train(learner: IQL, source: Source, options: TrainOptions) -> list[dict]:
    """Train `learner` on `source` up to options.steps updates; returns the log rows (one per agent and log point).

    Every log_every steps the stats come to the host once (no sync in between), are checked for NaN (a
    FloatingPointError names the loss and the agent, and the last good checkpoint) and logged; options.probe adds
    diagnostics. Every eval_every steps and at the end eval_fn(agent) -> dict adds scores for each agent
    (learner.member(k)). With log_dir: rows go to log_dir/log.csv (with options.tensorboard also to TensorBoard
    events), a checkpoint is saved at every evaluation, at the end and at a log point at least every
    checkpoint_every_s seconds, and a folder that holds a checkpoint resumes from it exactly (same config, seeds and
    data, else a CheckpointError).
    """
    o = options
    steps = o.steps if o.steps is not None else learner.config.max_steps
    folder = RunFolder(o.log_dir) if o.log_dir is not None else None
    S, rows, writers = learner.n_agents, [], []
    if folder is not None:
        folder.lock()
    try:
        if folder is not None:
            rows = _resume(folder, learner, source)
            writers = _event_writers(folder, learner) if o.tensorboard else []
        bar = tqdm(total=steps, initial=min(learner.steps, steps), disable=not o.progress, unit="step",
                   desc=o.desc if S == 1 else f"{o.desc} x{S}")
        last_save = time.monotonic()
        with bar:
            while learner.steps < steps:
                n = next_interval(learner.steps, steps, o.log_every, o.eval_every)
                means = learner.update_n(source, n) / n  # [n_stats, S]
                names = list(STATS)
                if o.probe is not None:  # diagnostics of the current agents, logged with the interval's mean losses
                    extra = o.probe(learner)
                    names, means = names + list(extra), torch.cat([means, torch.stack(list(extra.values()))])
                values = means.T.tolist()  # the one host sync per log interval
                bar.update(n)
                _check_finite(learner, names, values, folder)
                evaluate = learner.steps % o.eval_every == 0 or learner.steps == steps
                new = []
                for k in range(S):
                    row = {"step": learner.steps}
                    if o.agent_columns:
                        row.update(agent=k, seed=learner.seeds[k] if learner.seeds else "",
                                   tau=learner.configs[k].tau, beta=learner.configs[k].beta)
                    row.update(zip(names, values[k]))
                    if evaluate and o.eval_fn is not None:
                        row.update(o.eval_fn(learner.member(k)))
                    new.append(row)
                rows += new
                bar.set_postfix({k: f"{v:.3g}" for k, v in new[0].items() if k in STATS or k == "success_rate"})
                for writer, row in zip(writers, new):
                    for name, value in row.items():
                        if name not in ("step", "agent", "seed", "tau", "beta") and isinstance(value, (int, float)):
                            writer.add_scalar(name, value, learner.steps)
                    writer.flush()
                if folder is not None:
                    folder.append_log(new)  # before the checkpoint: a resume finds every row up to its step
                    if evaluate or time.monotonic() - last_save >= o.checkpoint_every_s:
                        _save(folder, learner, source)
                        last_save = time.monotonic()
    finally:
        for writer in writers:
            writer.close()
        if folder is not None:
            folder.release()
    return rows


def build(obs_dim: int, act_dim: int, configs: IQLConfig | Sequence[IQLConfig], device: torch.device,
          seeds: Sequence[int], agent_cls: type[IQL] = IQL, fast: bool | None = None, compile: bool = False) -> IQL:
    """The learner: agent_cls, or its fast variant (CUDA graphs on a GPU, torch.compile with compile=True).

    fast=None: fast on CUDA for the kit's own IQL (a custom agent_cls runs there only when asked for, fast=True).
    """
    fast = device.type == "cuda" and agent_cls is IQL if fast is None else fast
    if fast or compile:
        cls = FastIQL if agent_cls is IQL else type(f"Fast{agent_cls.__name__}", (FastIQL, agent_cls), {})
        return cls(obs_dim, act_dim, configs, device, seeds, graph=fast and device.type == "cuda", compile=compile)
    return agent_cls(obs_dim, act_dim, configs, device, seeds)


def fit_many(data: Transitions, config: IQLConfig | Sequence[IQLConfig], seeds: Sequence[int],
             taus: Sequence[float] | None = None, betas: Sequence[float] | None = None, agent_cls: type[IQL] = IQL,
             **options) -> tuple[IQL, list[dict]]:
    """Train len(seeds) agents at once on `data` (raw: `prepare` applies the config's preprocessing); agent k
    starts and samples as a run of its own with seed seeds[k] would (its weights, its minibatch generator).

    config: one config (taus/betas then set agent k's tau and beta) or one per agent, differing only in tau, beta,
    dropout and a common learning-rate factor. agent_cls: the agent class (a subclass of IQL that overrides its
    losses, e.g. a student's: see IQL). options: TrainOptions' fields (steps, eval_fn, log_dir, ...): log,
    checkpoints, resume and NaN guard as in train(). Torch's global generator (dropout) is seeded with seeds[0].
    Returns the learner (S agents) and the log rows (step, agent, seed, tau, beta, stats, scores).
    """
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
    if S < 1:
        raise ValueError("need at least one seed")
    o = TrainOptions(**options)
    dev = resolve_device(o.device)
    data = prepare(data, configs[0]).to(dev)
    torch.manual_seed(seeds[0])
    learner = build(data.obs_dim, data.act_dim, configs, dev, seeds, agent_cls, o.fast, o.compile)
    source = OfflineSource(data, [torch.Generator(device=dev).manual_seed(s) for s in seeds], o.dataset)
    fast = " (fast)" if isinstance(learner, FastIQL) else ""
    rows = train(learner, source, replace(o, desc=o.desc + fast))
    return learner, rows


def fit(data: Transitions, config: IQLConfig, seed: int = 0, agent_cls: type[IQL] = IQL, **options) -> IQL:
    """Train one IQL agent on `data`: fit_many with one seed, its log rows without the agent columns (seed: its
    weights, its minibatch sampler and torch's global generator). options: TrainOptions' fields."""
    return fit_many(data, config, [seed], agent_cls=agent_cls, **{"agent_columns": False, **options})[0]
