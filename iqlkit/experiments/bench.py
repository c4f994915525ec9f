"""`python -m iqlkit bench`: IQL updates per second and kernels per update on this machine, in one run.

Every path runs the same update (iqlkit.engine.iql.IQL.update); they differ in how it is launched: eagerly from Python,
as S agents at once, replayed as a CUDA graph, with torch.compile. Each row is printed as soon as it is measured,
and a row that fails prints its error and the bench goes on.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Callable

import torch

from iqlkit.engine.device import resolve_device
from iqlkit.engine.fast import FastIQL
from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.engine.train import OfflineSource
from iqlkit.envs.data import Transitions

# ATen ops that move no data (views and metadata): not kernels, left out of the CPU's kernel proxy
VIEW_OPS = {"aten::view", "aten::reshape", "aten::_reshape_alias", "aten::expand", "aten::as_strided", "aten::t",
            "aten::transpose", "aten::permute", "aten::squeeze", "aten::unsqueeze", "aten::select", "aten::slice",
            "aten::detach", "aten::alias", "aten::_unsafe_view", "aten::empty", "aten::empty_strided",
            "aten::lift_fresh", "aten::resolve_conj", "aten::resolve_neg", "aten::split", "aten::unbind",
            "aten::narrow", "aten::expand_as", "aten::view_as", "aten::result_type", "aten::_local_scalar_dense",
            "aten::item", "aten::is_nonzero", "aten::set_", "aten::resize_", "aten::empty_like", "aten::numpy_T"}


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
    return f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"


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


def kernels_per_update(run: Callable[[int], object], device: torch.device, n: int = 20) -> float:
    """Kernels one update launches: CUDA kernels counted by the profiler on a GPU; on a CPU, as a proxy, the ATen ops
    that Python or autograd call (outermost: the CPU's own sub-ops left out) and that compute (views and metadata
    ops left out): on a GPU most of them are one kernel each. run(n) is called once before, to warm up."""
    from torch.profiler import ProfilerActivity, profile

    run(n)
    _sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run(n)
        _sync(device)
    events = prof.events()
    if device.type == "cuda":
        return sum(e.device_type == torch.autograd.DeviceType.CUDA for e in events) / n
    def outermost_aten(e) -> bool:
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        return parent is None

    ops = [e for e in events if e.name.startswith("aten::") and e.name not in VIEW_OPS and outermost_aten(e)]
    return len(ops) / n


def updates_fn(data: Transitions, config: IQLConfig, device: torch.device, seeds: int,
               **fast_options) -> Callable[[int], object]:
    """n -> update_n(n) of a fresh learner of `seeds` agents on `data`: IQL (no options) or FastIQL(graph=...,
    compile=...)."""
    cls, kwargs = (FastIQL, fast_options) if fast_options else (IQL, {})
    learner = cls(data.obs_dim, data.act_dim, [config] * seeds, str(device), **kwargs)
    source = OfflineSource(data, torch.Generator(device=device).manual_seed(0))
    return lambda n: learner.update_n(source, n)


def readable_updates_per_second(data: Transitions, config: IQLConfig, device: torch.device, steps: int) -> float:
    """Updates/s of one agent's IQL.update, launched from Python (no host sync inside the timed loop)."""
    return updates_per_second(updates_fn(data, config, device, 1), steps, device)


def fast_updates_per_second(data: Transitions, config: IQLConfig, device: torch.device, seeds: int, steps: int,
                            **options) -> float:
    """Updates/s of FastIQL.update_n for `seeds` agents at once (each update trains every agent); options: graph,
    compile (graph=False and compile=False is the eager many-agent IQL)."""
    return updates_per_second(updates_fn(data, config, device, seeds, **options), steps, device)


def evaluation_seconds(episodes: int, n_envs: int, device: torch.device, maze: str = "umaze",
                       hidden: tuple[int, ...] = (256, 256)) -> float:
    """Seconds for `episodes` AntMaze evaluation episodes (D4RL's task, full length: the task is continuing) with
    n_envs envs in as many processes and one batched policy call per step; the policy is an untrained IQL actor."""
    from iqlkit.envs.antmaze import eval_env_factory
    from iqlkit.envs.evaluate import evaluate

    agent = IQL(31, 8, IQLConfig(hidden=hidden), str(device))
    start = time.perf_counter()
    evaluate(agent.act, eval_env_factory(f"D4RL/antmaze/{maze}-v1"), n_episodes=episodes, n_envs=n_envs,
             vector="async")
    return time.perf_counter() - start


def paths(device: torch.device, compile: bool) -> list[tuple[str, dict]]:
    """The bench's rows: (name, FastIQL options; {} = the plain IQL launched from Python)."""
    cuda = device.type == "cuda"
    rows = [("readable (IQL.update_n, eager)", {})]
    if cuda:
        rows.append(("fast: CUDA graph", {"graph": True}))
    rows.append(("many agents, eager" if cuda else "fast (= eager on a CPU)", {"graph": False}))
    if compile:
        rows.append((f"fast: {'CUDA graph + ' if cuda else ''}compile", {"graph": cuda, "compile": True}))
    return rows


def run(device: str = "auto", steps: int = 300, hidden: tuple[int, ...] = (256, 256), batch_size: int = 256,
        seeds: int = 16, obs_dim: int = 31, act_dim: int = 8, compile: bool | None = None,
        eval_episodes: int | None = None, eval_envs: int | None = None, tf32: bool = False) -> list[dict]:
    """Measure each path in one run (ratios are honest on a noisy machine) and print a table with the hardware.

    Rows: for 1 agent and for `seeds` agents, the paths of paths(); kernels per update for each. compile (default: on
    CUDA) adds the torch.compile rows; tf32 lets CUDA matmuls use TF32. eval_episodes (default: 100 on CUDA, none on
    a CPU) also times AntMaze evaluation episodes with eval_envs processes (default: one per core).
    """
    for name, value in (("steps", steps), ("seeds", seeds), ("batch_size", batch_size), ("obs_dim", obs_dim),
                        ("act_dim", act_dim)):
        if value < 1:
            raise ValueError(f"bench: {name} must be >= 1; got {value}")
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    compile = cuda if compile is None else compile
    torch.backends.cuda.matmul.allow_tf32 = tf32
    config = IQLConfig(hidden=tuple(hidden), batch_size=batch_size)
    data = synthetic_data(1_000_000 if cuda else 100_000, obs_dim, act_dim, dev)
    print(f"device: {device_name(dev)}; torch {torch.__version__}; networks {tuple(hidden)}, batch {batch_size}, "
          f"obs {obs_dim}, act {act_dim}; matmuls {'TF32' if tf32 and cuda else 'FP32'}; {time.strftime('%Y-%m-%d')}")
    kernel_unit = "kernels/update" if cuda else "ops/update (CPU proxy)"
    print(f"{'path':<30}{'seeds':>6}{'updates/s':>12}{'agent-updates/s':>17}{'x readable':>12}{'1M updates':>12}"
          f"{kernel_unit:>24}", flush=True)
    rows, readable = [], None
    for s in (1, seeds) if seeds > 1 else (1,):
        for name, options in paths(dev, compile):
            if not options and s > 1:
                continue  # the readable row is the single agent's
            n = steps if cuda else max(steps // s, 10)  # a CPU's time grows with s; a GPU's barely
            try:
                ups = updates_per_second(updates_fn(data, config, dev, s, **options), n, dev)
                kernels = kernels_per_update(updates_fn(data, config, dev, s, **options), dev)
            except Exception as e:  # noqa: BLE001 - one failing path (a compiler missing, say) must not lose the rest
                print(f"{name:<30}{s:>6}  FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]}", flush=True)
                rows.append({"path": name, "seeds": s, "error": f"{type(e).__name__}: {e}"})
                continue
            readable = readable or ups
            total = ups * s
            print(f"{name:<30}{s:>6}{ups:>12,.0f}{total:>17,.0f}{total / readable:>11.1f}x"
                  f"{1e6 / ups / 60:>8.1f} min{kernels:>24.0f}", flush=True)
            rows.append({"path": name, "seeds": s, "updates/s": ups, "kernels/update": kernels})
    eval_episodes = (100 if cuda else 0) if eval_episodes is None else eval_episodes
    if eval_episodes:
        n_envs = eval_envs or os.cpu_count() or 1
        seconds = evaluation_seconds(eval_episodes, n_envs, dev, hidden=hidden)
        rows.append({"path": "evaluation", "episodes": eval_episodes, "envs": n_envs, "seconds": seconds})
        print(f"evaluation: {eval_episodes} AntMaze umaze episodes (700 steps each) in {seconds:.1f} s with "
              f"{n_envs} env processes on {os.cpu_count()} cores")
    return rows
