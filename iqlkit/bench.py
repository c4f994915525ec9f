"""`python -m iqlkit bench`: IQL updates per second on this machine, with the hardware named, in one run."""
from __future__ import annotations

import platform
import time

import torch

from iqlkit.data import Transitions
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
    """Random transitions of AntMaze's shape (29-dim goal-conditioned observations, 8-dim actions) on `device`."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, obs_dim, generator=g)
    return Transitions.from_arrays(obs, torch.rand(n, act_dim, generator=g) * 2 - 1, torch.randn(n, generator=g),
                                   obs + 0.1 * torch.randn(n, obs_dim, generator=g),
                                   (torch.rand(n, generator=g) < 0.01).float(), device=device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def readable_updates_per_second(data: Transitions, config: IQLConfig, device: torch.device, steps: int,
                                warmup: int = 20) -> float:
    """Updates/s of IQL.update with on-device sampling and no host sync inside the timed loop."""
    agent = IQL(data.obs_dim, data.act_dim, config, str(device))
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(warmup):
        agent.update(data.sample(config.batch_size, generator))
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        agent.update(data.sample(config.batch_size, generator))
    _sync(device)
    return steps / (time.perf_counter() - start)


def stacked_updates_per_second(data: Transitions, config: IQLConfig, device: torch.device, seeds: int,
                               steps: int, warmup: int = 5) -> float:
    """Updates/s of StackedIQL.update for `seeds` agents at once (each update trains every agent)."""
    from iqlkit.stacked import StackedIQL

    stacked = StackedIQL(data.obs_dim, data.act_dim, config, seeds, device=str(device))
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(warmup):
        stacked.update(stacked.sample(data, generator))
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        stacked.update(stacked.sample(data, generator))
    _sync(device)
    return steps / (time.perf_counter() - start)


def run(device: str = "auto", steps: int = 300, hidden: tuple[int, ...] = (256, 256), batch_size: int = 256,
        seeds: int = 16, obs_dim: int = 29, act_dim: int = 8) -> list[dict]:
    """Measure each path in one run (so ratios are honest on a noisy machine); print a table with the hardware."""
    from iqlkit.train import resolve_device

    dev = resolve_device(device)
    config = IQLConfig(hidden=tuple(hidden), batch_size=batch_size)
    data = synthetic_data(100_000, obs_dim, act_dim, dev)
    rows = [{"path": "readable (IQL.update)", "seeds": 1,
             "updates/s": readable_updates_per_second(data, config, dev, steps)},
            {"path": "stacked (StackedIQL)", "seeds": 1,
             "updates/s": stacked_updates_per_second(data, config, dev, 1, steps)},
            {"path": "stacked (StackedIQL)", "seeds": seeds,
             "updates/s": stacked_updates_per_second(data, config, dev, seeds, max(steps // seeds, 10))}]
    print(f"device: {device_name(dev)}; torch {torch.__version__}; networks {hidden}, batch {batch_size}, "
          f"obs {obs_dim}, act {act_dim}")
    print(f"{'path':<28}{'seeds':>6}{'updates/s':>12}{'agent-updates/s':>18}{'1M updates':>12}")
    for r in rows:
        total = r["updates/s"] * r["seeds"]
        print(f"{r['path']:<28}{r['seeds']:>6}{r['updates/s']:>12,.0f}{total:>18,.0f}"
              f"{1e6 / r['updates/s'] / 60:>10.1f} min")
    return rows
