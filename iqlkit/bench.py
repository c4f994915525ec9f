"""`python -m iqlkit bench`: IQL updates per second on this machine, with the hardware named, in one run."""
from __future__ import annotations

import os
import platform
import time
from typing import Callable

import torch

from iqlkit.data import Transitions
from iqlkit.fast import FastIQL
from iqlkit.iql import IQL, IQLConfig


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and core/thread counts."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu} ({torch.get_num_threads()} torch threads)"


def synthetic_data(n: int, obs_dim: int, act_dim: int, device: torch.device, seed: int = 0) -> Transitions:
    """Random transitions of AntMaze's shape in the kit (31 inputs: x-y, 27-dim observation, goal; 8 actions)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, obs_dim, generator=g)
    return Transitions.from_arrays(obs, torch.rand(n, act_dim, generator=g) * 2 - 1, torch.randn(n, generator=g),
                                   obs + 0.1 * torch.randn(n, obs_dim, generator=g),
                                   (torch.rand(n, generator=g) < 0.01).float(), device=device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def updates_per_second(run: Callable[[int], object], steps: int, device: torch.device) -> float:
    """steps / seconds of run(steps), after a warm-up call (compiling, capturing); no host sync inside the timing."""
    run(max(steps // 10, 30))
    _sync(device)
    start = time.perf_counter()
    run(steps)
    _sync(device)
    return steps / (time.perf_counter() - start)


def readable_updates_per_second(data: Transitions, config: IQLConfig, device: torch.device, steps: int) -> float:
    """Updates/s of IQL.update with on-device sampling and no host sync inside the timed loop."""
    agent = IQL(data.obs_dim, data.act_dim, config, str(device))
    generator = torch.Generator(device=device).manual_seed(0)
    return updates_per_second(lambda n: agent.run(data, n, generator), steps, device)


def fast_updates_per_second(data: Transitions, config: IQLConfig, device: torch.device, seeds: int, steps: int,
                            **options) -> float:
    """Updates/s of FastIQL.run for `seeds` agents at once (each update trains every agent); options: graph,
    compile (graph=False and compile=False is the eager StackedIQL)."""
    learner = FastIQL(data.obs_dim, data.act_dim, config, seeds, device=str(device), **options)
    generator = torch.Generator(device=device).manual_seed(0)
    return updates_per_second(lambda n: learner.run(data, n, generator), steps, device)


def evaluation_seconds(episodes: int, n_envs: int, device: torch.device, maze: str = "umaze",
                       hidden: tuple[int, ...] = (256, 256)) -> float:
    """Seconds for `episodes` AntMaze evaluation episodes (D4RL's task, full length: the task is continuing) with
    n_envs envs in as many processes and one batched policy call per step; the policy is an untrained IQL actor."""
    from iqlkit.antmaze import eval_env_factory
    from iqlkit.evaluate import evaluate

    agent = IQL(31, 8, IQLConfig(hidden=hidden), str(device))
    start = time.perf_counter()
    evaluate(agent.act, eval_env_factory(f"D4RL/antmaze/{maze}-v1"), n_episodes=episodes, n_envs=n_envs,
             vector="async")
    return time.perf_counter() - start


def run(device: str = "auto", steps: int = 300, hidden: tuple[int, ...] = (256, 256), batch_size: int = 256,
        seeds: int = 16, obs_dim: int = 31, act_dim: int = 8, compile: bool | None = None,
        eval_episodes: int | None = None, eval_envs: int | None = None) -> list[dict]:
    """Measure each path in one run (so ratios are honest on a noisy machine); print a table with the hardware.

    Paths: readable IQL.update; the fast path (FastIQL: CUDA graphs on a GPU; on a CPU it is the eager stack);
    on a GPU also the eager stack, to separate what the graph brings; with compile (default: on CUDA) the fast
    path with torch.compile too. Each for 1 agent and for `seeds` agents at once. eval_episodes (default: 100 on
    CUDA, none on a CPU) also times AntMaze evaluation episodes with eval_envs processes (default: one per core).
    """
    from iqlkit.train import resolve_device

    dev = resolve_device(device)
    compile = dev.type == "cuda" if compile is None else compile
    config = IQLConfig(hidden=tuple(hidden), batch_size=batch_size)
    data = synthetic_data(1_000_000 if dev.type == "cuda" else 100_000, obs_dim, act_dim, dev)
    paths = [("fast: CUDA graph", {"graph": True})] if dev.type == "cuda" else []
    paths.append(("stacked (eager)" if dev.type == "cuda" else "fast (= stacked, eager)", {"graph": False}))
    if compile:
        paths.append((f"fast: {'CUDA graph + ' if dev.type == 'cuda' else ''}compile",
                      {"graph": dev.type == "cuda", "compile": True}))
    rows = [{"path": "readable (IQL.update)", "seeds": 1,
             "updates/s": readable_updates_per_second(data, config, dev, steps)}]
    for name, options in paths:
        for s in (1, seeds):
            n = steps if dev.type == "cuda" else max(steps // s, 10)  # a CPU's time grows with s; a GPU's barely
            rows.append({"path": name, "seeds": s,
                         "updates/s": fast_updates_per_second(data, config, dev, s, n, **options)})
    readable = rows[0]["updates/s"]
    print(f"device: {device_name(dev)}; torch {torch.__version__}; networks {hidden}, batch {batch_size}, "
          f"obs {obs_dim}, act {act_dim}; {time.strftime('%Y-%m-%d')}")
    print(f"{'path':<32}{'seeds':>6}{'updates/s':>12}{'agent-updates/s':>18}{'x readable':>12}{'1M updates':>13}")
    for r in rows:
        total = r["updates/s"] * r["seeds"]
        print(f"{r['path']:<32}{r['seeds']:>6}{r['updates/s']:>12,.0f}{total:>18,.0f}{total / readable:>11.1f}x"
              f"{1e6 / r['updates/s'] / 60:>9.1f} min")
    eval_episodes = (100 if dev.type == "cuda" else 0) if eval_episodes is None else eval_episodes
    if eval_episodes:
        n_envs = eval_envs or os.cpu_count() or 1
        seconds = evaluation_seconds(eval_episodes, n_envs, dev, hidden=hidden)
        rows.append({"path": "evaluation", "episodes": eval_episodes, "envs": n_envs, "seconds": seconds})
        print(f"evaluation: {eval_episodes} AntMaze umaze episodes (700 steps each) in {seconds:.1f} s with "
              f"{n_envs} env processes on {os.cpu_count()} cores")
    return rows
