"""The training loop: progress bar, CSV log, checkpoints with exact resume, NaN guard, evaluation, curves."""
from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from iqlkit.data import Transitions, clip_actions, preprocess_rewards
from iqlkit.fast import FastIQL
from iqlkit.iql import IQL, STATS, IQLConfig

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        "cpu" if device == "auto" else device)


def prepare(data: Transitions, config: IQLConfig) -> Transitions:
    """The authors' preprocessing the config implies: actions clipped to +-(1 - 1e-5), then its reward choice."""
    return preprocess_rewards(clip_actions(data), config.reward)


def next_interval(done: int, steps: int, log_every: int, eval_every: int) -> int:
    """Updates from step `done` to the next log point: the next multiple of log_every or eval_every, or the end."""
    return min(log_every - done % log_every, eval_every - done % eval_every, steps - done)


def _save(path: Path, agent: IQL, generator: torch.Generator) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"agent": agent.state_dict(), "sampler": generator.get_state(), "torch": torch.get_rng_state()}, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a broken checkpoint


def _read_log(path: Path, upto: int) -> list[dict]:
    """Rows of an earlier run's log up to step `upto` (later rows belong to steps the resume will redo)."""
    if not path.exists():
        return []
    with path.open() as f:
        return [row for row in csv.DictReader(f) if int(row["step"]) <= upto]


def fit(data: Transitions, config: IQLConfig, steps: int | None = None, seed: int = 0, device: str = "auto",
        eval_fn: Callable[[IQL], dict[str, float]] | None = None, eval_every: int = 10_000, log_every: int = 1_000,
        log_dir: str | Path | None = None, progress: bool = True, agent_cls: type[IQL] = IQL,
        fast: bool | None = None, compile: bool = False) -> IQL:
    """Train IQL on `data` (raw: `prepare` applies the config's preprocessing) for `steps` updates.

    agent_cls: the agent class to build (a subclass of IQL that overrides its losses, e.g. a student's).
    fast: train through iqlkit.fast.FastIQL (CUDA graphs on a GPU; compile=True adds torch.compile), which computes
    the same updates from the same seed (with actor dropout, other masks of the same law); None = on CUDA only.
    The agent evaluated, checkpointed and returned is an IQL either way, so a run saved on one path resumes on the
    other.
    Every log_every steps the losses (and mean Q_target, V) come to the host once (no sync in between), are checked
    for NaN and written to log_dir/log.csv; every eval_every steps (and at the end) eval_fn(agent) adds its scores
    and a checkpoint is saved.
    A log_dir with a checkpoint resumes from it exactly. A non-finite loss stops training with an error that
    names the loss; the last checkpoint (all finite) stays on disk.
    """
    steps = config.max_steps if steps is None else steps
    dev = resolve_device(device)
    data = prepare(data, config).to(dev)
    torch.manual_seed(seed)
    agent = agent_cls(data.obs_dim, data.act_dim, config, str(dev))
    generator = torch.Generator(device=dev).manual_seed(seed)
    log_dir = Path(log_dir) if log_dir is not None else None
    rows: list[dict] = []
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        if (log_dir / CHECKPOINT).exists():
            state = torch.load(log_dir / CHECKPOINT, map_location=dev, weights_only=False)
            saved = state["agent"]["config"]
            diff = {k: (saved.get(k), v) for k, v in config.to_dict().items() if saved.get(k) != v}
            if diff:
                raise ValueError(f"{log_dir} holds a run with another config (saved, asked): {diff}. "
                                 f"Use another log_dir (--out) or delete that folder to start afresh.")
            agent.load_state_dict(state["agent"])
            generator.set_state(state["sampler"])
            torch.set_rng_state(state["torch"])
            rows = _read_log(log_dir / LOG, agent.steps)
    fast = dev.type == "cuda" and agent_cls is IQL if fast is None else fast
    if fast and agent_cls is not IQL:
        raise ValueError("the fast path runs the kit's own update; train a custom agent_cls with fast=False")
    learner = FastIQL.from_agents([agent], compile=compile) if fast else None
    bar = tqdm(total=steps, initial=agent.steps, disable=not progress, desc="IQL (fast)" if fast else "IQL",
               unit="step")
    done = agent.steps
    while done < steps:
        n = next_interval(done, steps, log_every, eval_every)
        sums = learner.run(data, n, generator)[:, 0] if fast else agent.run(data, n, generator)
        done += n
        bar.update(n)
        means = (sums / n).tolist()  # the one host sync per log interval
        row = {"step": done, **dict(zip(STATS, means))}
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            bar.close()
            kept = f"; the last good checkpoint is {log_dir / CHECKPOINT}" if log_dir else ""
            raise FloatingPointError(f"{', '.join(bad)} became non-finite by step {done}{kept}. "
                                     f"Try a smaller learning rate, a smaller beta or reward scale.")
        if done % eval_every == 0 or done == steps:
            if fast:
                agent = learner.agent(0)
            row.update(eval_fn(agent) if eval_fn is not None else {})
            if log_dir is not None:
                _save(log_dir / CHECKPOINT, agent, generator)
        rows.append(row)
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "step"})
        if log_dir is not None:
            write_log(log_dir / LOG, rows)
    bar.close()
    if log_dir is not None and rows:
        import matplotlib.pyplot as plt

        from iqlkit.plots.training import training_curves

        fig = training_curves(rows)
        fig.savefig(log_dir / "curves.png", dpi=100)
        plt.close(fig)
    return agent


def write_log(path: Path, rows: list[dict]) -> None:
    """Rewrite the CSV log (columns: the union of the rows' keys, step first)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def extract_policy(agent: IQL, data: Transitions, steps: int, seed: int = 0, beta: float | None = None,
                   progress: bool = True) -> IQL:
    """Post-hoc extraction: `steps` AWR updates of the actor alone against the agent's frozen Q and V (Eq. 7).

    beta, if given, replaces the config's inverse temperature for these updates (and stays in agent.config).
    """
    if beta is not None:
        agent.config = replace(agent.config, beta=beta)
    data = prepare(data, agent.config).to(agent.device)
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    for _ in tqdm(range(steps), disable=not progress, desc="AWR", unit="step"):
        agent.update_actor(data.sample(agent.config.batch_size, generator))
    return agent
