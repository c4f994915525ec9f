"""The fast path: the same update as iqlkit.stacked (and so as iqlkit.iql), with the launch overhead taken out.

One IQL update is about 0.55 GFLOP, far too little to keep a GPU busy: its time goes on launching some 150 small
kernels and on the Python that issues them. So:
- the data sits on the device and indices are drawn there (Transitions.sample), no host sync inside the loop;
- S agents (S = 1 for a single run) share every kernel (StackedIQL), with both Q heads in one batched matmul;
- Adam is fused, and its actor rate is a device tensor updated by the cosine schedule on the device;
- on CUDA, `graph_steps` whole updates, sampling included, are recorded once as a CUDA graph and replayed: one
  launch per `graph_steps` updates and no Python in between;
- optionally, `torch.compile` fuses each loss's elementwise work into a few kernels (compile=True).
tests/test_fast.py checks that this path computes the readable path's numbers (losses, weights, resumption). The
minibatches are the same; actor dropout, where used, draws its masks in another order (the same law).
"""
from __future__ import annotations

from typing import Sequence

import torch

from iqlkit.data import Transitions
from iqlkit.iql import STATS
from iqlkit.stacked import StackedIQL

WARMUP = 3  # eager updates before capture (PyTorch's recipe: allocate Adam's state and compile outside the graph)
COMPILED = ("target_q", "value_loss", "values", "actor_loss", "q_loss")  # the pure tensor functions of an update


class FastIQL(StackedIQL):
    """StackedIQL whose updates run as replays of a captured CUDA graph (graph=True, CUDA only) and whose loss
    functions may be compiled (compile=True); with neither it is StackedIQL."""

    def __init__(self, *args, graph: bool | None = None, compile: bool = False, graph_steps: int = 10,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.graph = self.device.type == "cuda" if graph is None else graph
        if self.graph and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; this agent is on {self.device} (use graph=False)")
        if graph_steps < 1:
            raise ValueError(f"graph_steps must be >= 1; got {graph_steps}")
        self.graph_steps = graph_steps
        if self.graph:
            self._make_optimizers(capturable=True)
        if compile:
            for name in COMPILED:
                setattr(self, name, torch.compile(getattr(self, name), dynamic=False))
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_sums: torch.Tensor | None = None
        self._graph_generators: object = None

    def run(self, data: Transitions, n: int,
            generators: Sequence[torch.Generator] | torch.Generator | None = None) -> torch.Tensor:
        """n updates; the per-agent stats summed over them, [n_stats, S], without a host sync.

        With graph=True: the first call runs WARMUP updates eagerly and records graph_steps updates as a CUDA graph
        (the data and the generators must stay the same objects afterwards); each replay then performs
        graph_steps updates, and a remainder below graph_steps runs eagerly.
        """
        if not self.graph:
            return super().run(data, n, generators)
        total = torch.zeros(len(STATS), self.n_agents, device=self.device)
        done = 0
        if self._graph is None and n >= WARMUP + self.graph_steps:
            total += self._capture(data, generators)
            done = WARMUP
        elif self._graph is not None and generators is not self._graph_generators:
            raise ValueError("the CUDA graph was recorded with other generators; pass the same ones on every call")
        while self._graph is not None and n - done >= self.graph_steps:
            self._graph.replay()  # graph_steps updates, sampling included
            total += self._graph_sums
            self.steps += self.graph_steps
            done += self.graph_steps
        return total + super().run(data, n - done, generators)

    def _capture(self, data: Transitions, generators) -> torch.Tensor:
        """Warm up on a side stream (WARMUP real updates), then record graph_steps updates; returns the warm-up sums."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            warm = super().run(data, WARMUP, generators)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        gens = generators if isinstance(generators, (list, tuple)) else [generators] if generators is not None else []
        if gens and not hasattr(graph, "register_generator_state"):
            raise RuntimeError(f"torch {torch.__version__} cannot replay a CUDA graph with a seeded generator (it has "
                               "no CUDAGraph.register_generator_state): upgrade torch, or train with fast=False "
                               "(--no-fast)")
        for g in gens:  # a generator other than the default one must be registered to be advanced by replays
            graph.register_generator_state(g)
        steps = self.steps
        with torch.cuda.graph(graph):
            self._graph_sums = super().run(data, self.graph_steps, generators)
        self.steps = steps  # recording ran no update: the Python count stays (step_t, on the device, was untouched)
        self._graph, self._graph_generators = graph, generators
        return warm
