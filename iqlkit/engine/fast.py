"""The fast path: iqlkit.engine.iql's update, unchanged, with the launch overhead taken out.

One IQL update is about 0.55 GFLOP, far too little to keep a GPU busy: its time goes on launching some 100-150
small kernels and on the Python that issues them. So:
- the data sits on the device, a minibatch is one gather, indices are drawn there: no host sync inside the loop;
- S agents (S = 1 for a single run) share every kernel (iqlkit.engine.iql.IQL), both Q heads in one batched matmul;
- Adam is fused and capturable, the actor's cosine rate is looked up on the device;
- on CUDA, `graph_steps` whole updates, sampling included, are recorded once as a CUDA graph and replayed: one
  launch per `graph_steps` updates and no Python in between;
- optionally, torch.compile fuses each loss's elementwise work into a few kernels (compile=True).
FastIQL is IQL with another run(): the same update method, losses and state, so a run saved on one path resumes on
the other. tests/test_fast.py checks that both compute the same numbers.
"""
from __future__ import annotations

import os
import shutil
import sysconfig
from typing import Sequence

import torch

from iqlkit.engine.iql import IQL, STATS, IQLConfig

WARMUP = 3  # eager updates before capture (PyTorch's recipe: allocate Adam's state and compile outside the graph)
COMPILED = ("target_q", "value_loss", "state_values", "actor_loss", "q_loss")  # the pure tensor functions of an update


def compile_unavailable(device: str | torch.device) -> str | None:
    """Why torch.compile cannot build kernels here (None if it can): inductor needs a C compiler and Python.h, and
    on CUDA Triton too."""
    device = torch.device(device)
    compilers = ("g++", "clang++", "c++") if device.type == "cpu" else ("gcc", "cc", "clang")
    if os.environ.get("CXX" if device.type == "cpu" else "CC") is None and not any(map(shutil.which, compilers)):
        return f"torch.compile on {device.type} needs a C{'++' if device.type == 'cpu' else ''} compiler " \
               f"({', '.join(compilers)}): none is on PATH"
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"torch.compile needs Python's headers (Python.h), missing in {include} (install python3-dev)"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch.compile on CUDA needs triton (pip install triton)"
    return None


class FastIQL(IQL):
    """IQL whose updates run as replays of a captured CUDA graph (graph=True, CUDA only) and whose loss functions
    may be compiled (compile=True); with neither it is IQL."""

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig | Sequence[IQLConfig] = IQLConfig(),
                 device: str | torch.device = "cpu", seeds: Sequence[int] | None = None, graph: bool | None = None,
                 compile: bool = False, graph_steps: int = 10) -> None:
        cuda = torch.device(device).type == "cuda"
        graph = cuda if graph is None else graph
        if graph and not cuda:
            raise ValueError(f"CUDA graphs need a CUDA device; this agent is on {device} (use graph=False)")
        if graph_steps < 1:
            raise ValueError(f"graph_steps must be >= 1; got {graph_steps}")
        # with graphs, Adam's step count and rate live on the device (capturable), so replays advance them
        super().__init__(obs_dim, act_dim, config, device, seeds, capturable=graph)
        self.graph, self.graph_steps = graph, graph_steps
        if compile:
            reason = compile_unavailable(self.device)
            if reason:
                raise RuntimeError(f"{reason}; train without compile (--no-compile)")
            for name in COMPILED:
                setattr(self, name, torch.compile(getattr(self, name), dynamic=False))
        self._warm = 0  # eager updates done since the last (re)build of the graph's inputs
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_sums: torch.Tensor | None = None
        self._graph_inputs = None  # the source the graph reads

    def reset_actor(self, generators=None) -> None:
        """A fresh actor (see IQL.reset_actor); a recorded graph, which holds the old one, is dropped."""
        super().reset_actor(generators)
        self._graph, self._warm = None, 0

    def update_n(self, source, n: int) -> torch.Tensor:
        """n updates; the per-agent stats summed over them, [n_stats, S], without a host sync.

        With graph=True: the first WARMUP updates run eagerly (over one or several calls); then a graph of
        g = min(graph_steps, n) updates is recorded (in the warm-up's call if graph_steps updates are left, else in
        the next), and from then on each replay performs g updates, a remainder below g running eagerly. The
        source must stay the same object, an iqlkit.engine.train.OfflineSource (its data and generators are what
        the graph reads and advances).
        """
        if not self.graph:
            return super().update_n(source, n)
        total = torch.zeros(len(STATS), self.n_agents, device=self.device)
        done = 0
        if self._graph is not None and self._graph_inputs is not source:
            raise ValueError("the CUDA graph was recorded on another source; pass the same OfflineSource on every "
                             "call (or build a new FastIQL)")
        if self._graph is None and self._warm < WARMUP:
            done = min(n, WARMUP - self._warm)
            total += self._eager(source, done)
            self._warm += done
        if self._graph is None and self._warm >= WARMUP and (n - done >= self.graph_steps or done == 0 < n):
            self._capture(source, min(self.graph_steps, n))
        while self._graph is not None and n - done >= self._graph_steps:
            self._graph.replay()  # _graph_steps updates, sampling included
            total += self._graph_sums
            self.steps += self._graph_steps
            done += self._graph_steps
        return total + super().update_n(source, n - done)

    def _eager(self, source, n: int) -> torch.Tensor:
        """n eager updates on a side stream (CUDA graphs want their warm-up off the default stream)."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            sums = super().update_n(source, n)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        return sums

    def _capture(self, source, steps: int) -> None:
        """Record `steps` updates (sampling included) as a CUDA graph; recording runs none of them."""
        graph = torch.cuda.CUDAGraph()
        generators = source.generators
        gens = generators if isinstance(generators, (list, tuple)) else [generators] if generators is not None else []
        if gens and not hasattr(graph, "register_generator_state"):
            raise RuntimeError(f"torch {torch.__version__} cannot replay a CUDA graph with a seeded generator (it has "
                               "no CUDAGraph.register_generator_state): upgrade torch, or train with fast=False "
                               "(--no-fast)")
        for g in gens:  # a generator other than the default one must be registered to be advanced by replays
            graph.register_generator_state(g)
        steps_before = self.steps
        with torch.cuda.graph(graph):
            self._graph_sums = super().update_n(source, steps)
        self.steps = steps_before  # recording ran no update: the Python count stays (device counters too)
        self._graph, self._graph_steps, self._graph_inputs = graph, steps, source
