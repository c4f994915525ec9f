"""Offline-to-online fine-tuning (Section 5.3 of the IQL paper): offline IQL, then the same updates on a replay buffer
that starts with the offline data and grows with the policy's own transitions, through the kit's one loop.

What the authors' fine-tuning code does (ikostrikov/implicit_q_learning: train_finetune.py, dataset_utils.py,
learner.py, policy.py, configs/antmaze_finetune_config.py; read for the facts, none of its code is used here):
- Buffer: `ReplayBuffer(capacity)` with `capacity = --replay_buffer_size` (2,000,000 by default in the last version
  and in the README's command; earlier `max_steps`, 1M), filled first with the whole D4RL dataset
  (`initialize_with_dataset`; actions clipped to +-(1 - 1e-5), masks = 1 - terminals); `insert` writes at a cursor
  that wraps round (`(i + 1) % capacity`), so past capacity the oldest rows, the offline data first, are overwritten.
  With 2M rows and about 1M offline transitions plus 1M online steps it never wraps.
- Schedule: one loop `for i in range(1 - num_pretraining_steps, max_steps + 1)`: 1M updates on the buffer (offline
  data only) for i <= 0, then for each i >= 1 one env step and one update on a uniform minibatch of 256 from the
  whole buffer (offline and online rows alike): one update per env step, 1M online steps.
- Collection: `agent.sample_actions(observation)` with temperature 1: a sample of N(tanh mean, exp(log_std)),
  clipped to [-1, 1] (dropout off); one env, no vectorisation. Evaluation: the mean action (temperature 0), 100
  episodes every 100,000 steps, in the same env object as collection (so after an evaluation the collection
  episode goes on from an observation whose env was reset meanwhile).
- Rewards: `r - 1` applied to every sampled batch (offline and online rows alike), as offline.
- Terminals: online `mask = 0` only when the env says done and `'TimeLimit.truncated'` is not in info: a time-out
  is never terminal (D4RL's AntMaze evaluation env ends an episode at the goal and at its time limit).
- Config: antmaze_finetune_config.py is antmaze_config.py (tau 0.9, beta 10, 2 x 256, lr 3e-4, Polyak 0.005) plus
  `opt_decay_schedule = None`: the actor's Adam runs at a constant 3e-4. The learner is built once from that
  config, so the 1M pretraining updates of a fine-tuning run have no cosine decay either.

The kit's choices (tests/test_online.py checks them):
- `ReplayBuffer`: one preallocated tensor [S, capacity, obs + act + 1 + obs + 1] per run (S agents, each its own
  buffer, all of the same size), the offline rows first; sampled as Transitions.sample_agents is (agent k's indices
  from generators[k]), so the offline phase draws exactly what iqlkit.engine.train.OfflineSource would. It refuses rows
  past capacity (default: offline rows + online steps) instead of wrapping. A checkpoint holds its online rows only
  (the offline ones are the data's, checked by the fingerprint).
- The cosine switch: a fine-tuning learner is built with IQLConfig.cosine_actor_lr=False (`online_config`), from
  scratch for the whole run as the authors do; started from a `train` checkpoint (cosine on), the actor's Adam rate,
  which the checkpoint holds decayed, is set back to actor_lr when it is loaded. The rate lives in the actor
  optimiser's state, so every checkpoint of the fine-tuning run keeps it, and the config it records says cosine off.
- Collection: S x n_envs envs (n_envs per agent) step together with one sampled-action call, then n_envs updates:
  the update-to-step ratio stays 1, while data lags the policy by at most n_envs - 1 updates (the authors: 0).
- New transitions get the config's reward shift (`r - 1` for the maze presets) and actions clipped to
  +-(1 - 1e-5) (before the env sees them, so a replay is exact); terminal = the env's `terminated`, or with
  terminate_on_success the first step with reward > 0 (the offline relabelling: Minari's maze envs are continuing,
  so the episode ends there too); a time-out (`truncated`) ends an episode but is never terminal.
- Exact resume: env (k, j)'s episode e starts from reset(seed=episode_seed(seed_k, j, e)); on resume each env is
  reset with its episode's seed and the actions of its unfinished episode are replayed from the buffer (MuJoCo is
  deterministic on one machine); the action-noise and minibatch generators come from the checkpoint.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import torch

from iqlkit.engine.baselines import AWACLike
from iqlkit.engine.device import resolve_device
from iqlkit.engine.iql import IQL, IQLConfig
from iqlkit.engine.train import TrainOptions, train
from iqlkit.envs.data import ACTION_LIMIT, Batch, Transitions, flatten_observations, prepare, sample_indices

VARIANTS = {
    "iql": "IQL offline, then the same IQL updates on the growing buffer",
    "frozen-policy": "the policy stops learning at the switch (its Adam rate set to 0); V and Q keep learning",
    "no-offline-data": "the buffer is emptied at the switch: online updates see only the policy's own transitions",
    "bc-awr": "AWAC-like: behaviour cloning offline, then AWR online against a Q of the current policy",
}
REWARD_SHIFT = {"none": 0.0, "minus_one": -1.0}  # r <- r + shift for new transitions, as prepare() does offline
NOISE_STREAM = 0x0E11  # the action-noise generator's seed: SeedSequence([*seeds, NOISE_STREAM])


def online_config(config: IQLConfig) -> IQLConfig:
    """The fine-tuning config: the same IQL, the actor's Adam at a constant rate (authors: opt_decay_schedule=None)."""
    return replace(config, cosine_actor_lr=False)


def episode_seed(seed: int, env: int, episode: int) -> int:
    """The reset seed of episode `episode` of collection env `env` of the agent with seed `seed` (no state needed)."""
    return int(np.random.SeedSequence([seed, env, episode]).generate_state(1)[0])


def _rows_view(rows: torch.Tensor, ends: torch.Tensor, obs_dim: int, act_dim: int) -> Transitions:
    """Transitions over packed rows [n, s | a | r | s' | terminal] without a copy (its packed rows are `rows`)."""
    o, a = obs_dim, act_dim
    view = Transitions(rows[:, :o], rows[:, o:o + a], rows[:, o + a], rows[:, o + a + 1:-1], rows[:, -1], ends)
    view.__dict__["packed"] = rows  # the cached_property's slot: minibatches gather from the buffer itself
    return view


class ReplayBuffer:
    """S agents' buffers in one preallocated tensor [S, capacity, width] of packed rows (Transitions.packed's layout)
    and one size: the offline rows first, then the transitions the agents collect (the same count for each)."""

    def __init__(self, data: Transitions, n_agents: int, capacity: int) -> None:
        if capacity < len(data):
            raise ValueError(f"capacity {capacity:,} is smaller than the offline data ({len(data):,} rows)")
        width = data.packed.shape[1]
        self.obs_dim, self.act_dim, self.n_agents, self.capacity = data.obs_dim, data.act_dim, n_agents, capacity
        self.rows = torch.empty(n_agents, capacity, width, device=data.device)
        self.ends = torch.zeros(n_agents, capacity, device=data.device)
        self.rows[:, :len(data)] = data.packed
        self.ends[:, :len(data)] = data.episode_ends
        self.size = self.n_offline = len(data)
        self._flat = _rows_view(self.rows.view(-1, width), self.ends.view(-1), self.obs_dim, self.act_dim)
        self._offsets = torch.arange(n_agents, device=data.device).view(-1, 1) * capacity
        self._drawn = torch.zeros(n_agents, device=data.device)  # share of online rows drawn, summed over batches
        self._batches = 0

    @property
    def device(self) -> torch.device:
        return self.rows.device

    def __len__(self) -> int:
        return self.size

    def view(self, k: int = 0) -> Transitions:
        """Agent k's filled rows as Transitions (no copy); online rows of n_envs envs interleave (row
        n_offline + r n_envs + j: env j's step of round r), episode_ends marks every episode's last step."""
        return _rows_view(self.rows[k, :self.size], self.ends[k, :self.size], self.obs_dim, self.act_dim)

    def sample_agents(self, n_agents: int, batch_size: int,
                      generators: Sequence[torch.Generator] | torch.Generator | None = None) -> Batch:
        """One uniform minibatch per agent from its own filled rows, [S, B, ...], indices as
        Transitions.sample_agents draws them; counts the share of online rows drawn (online_share)."""
        if n_agents != self.n_agents:
            raise ValueError(f"this buffer serves {self.n_agents} agents; asked for {n_agents}")
        idx = sample_indices(self.size, (n_agents, batch_size), generators, self.device)
        self._drawn += (idx >= self.n_offline).float().mean(1)
        self._batches += 1
        return self._flat.batch(idx + self._offsets)

    def online_share(self) -> torch.Tensor:
        """The mean share of online rows in the batches drawn since the last call, per agent ([S]; NaN if none)."""
        share = self._drawn / self._batches if self._batches else torch.full_like(self._drawn, math.nan)
        self._drawn, self._batches = torch.zeros_like(self._drawn), 0
        return share

    def add(self, rows: torch.Tensor, ends: torch.Tensor) -> None:
        """Append rows [S, m, width] (episode ends [S, m]) to every agent's buffer; refuses to go past capacity."""
        m = rows.shape[1]
        if self.size + m > self.capacity:
            raise ValueError(f"the replay buffer is full ({self.size:,} of {self.capacity:,} rows; {m} more asked): "
                             "the kit never overwrites rows (the authors' buffer wraps round onto the offline data); "
                             "give it a larger capacity")
        self.rows[:, self.size:self.size + m] = rows.to(self.device)
        self.ends[:, self.size:self.size + m] = ends.to(self.device)
        self.size += m

    def discard(self) -> None:
        """Forget every row (the no-offline-data baseline at the switch): new rows are written from row 0."""
        self.size = self.n_offline = 0

    def state_dict(self) -> dict:
        """The rows past the offline data (copies on the CPU, only the filled ones) and the counters."""
        online = slice(self.n_offline, self.size)
        return {"size": self.size, "n_offline": self.n_offline, "rows": self.rows[:, online].cpu().clone(),
                "ends": self.ends[:, online].cpu().clone(), "drawn": self._drawn.cpu().clone(),
                "batches": self._batches}

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict() into a buffer built on the same offline data."""
        size, n_offline = int(state["size"]), int(state["n_offline"])
        if size > self.capacity or tuple(state["rows"].shape[::2]) != (self.n_agents, self.rows.shape[2]):
            raise ValueError(f"a buffer state of {size:,} rows x {state['rows'].shape[2]} for "
                             f"{state['rows'].shape[0]} agents does not fit this buffer ({self.capacity:,} x "
                             f"{self.rows.shape[2]}, {self.n_agents} agents)")
        self.size, self.n_offline = n_offline, n_offline
        self.add(state["rows"], state["ends"])
        self._drawn, self._batches = state["drawn"].to(self.device), int(state["batches"])


def _stack(observations: list) -> dict | np.ndarray:
    """Single-env observations (dicts or arrays) as one batch: a dict of stacked arrays, or one stacked array."""
    if isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


class OnlineSource:
    """The Source (iqlkit.engine.train) of fine-tuning: minibatches of the offline rows up to step `offline_steps`,
    then rounds: S x n_envs envs (n_envs per agent) take one step each with actions sampled from the learner's
    policies, the transitions join the agents' buffers, and the next n_envs minibatches (one per env step of each
    agent) are drawn from the grown buffers.

    learner: the agents that act and learn (its step count says which phase a minibatch is for). data: the
    prepared offline data (rewards shifted, actions clipped). make_env() -> a gymnasium env (the task's
    evaluation env: fixed start and goal). seeds: one per agent (minibatch generators, reset seeds). variant: one
    of VARIANTS. obs_fn flattens (batched) env observations as the data was. terminate_on_success: a step with
    reward > 0 is terminal and ends its episode (the offline relabelling); without it only `terminated` is.
    """

    def __init__(self, learner: IQL, data: Transitions, make_env: Callable[[], object], seeds: Sequence[int],
                 offline_steps: int, online_steps: int, variant: str = "iql", n_envs: int = 1,
                 reward: str = "minus_one", obs_fn: Callable = flatten_observations, terminate_on_success: bool = True,
                 capacity: int | None = None, name: str | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}")
        if reward not in REWARD_SHIFT:
            raise ValueError(f"online rewards need a fixed shift ({list(REWARD_SHIFT)}); {reward!r} rescales by the "
                             "offline returns (the authors fine-tune AntMaze only: r - 1)")
        if min(n_envs, online_steps) < 1 or offline_steps < 0:
            raise ValueError(f"need n_envs >= 1, online_steps >= 1, offline_steps >= 0; got {n_envs}, {online_steps}, "
                             f"{offline_steps}")
        S, dev = len(seeds), data.device
        self.learner, self.make_env, self.seeds = learner, make_env, [int(s) for s in seeds]
        self.variant, self.n_envs = variant, n_envs
        self.offline_steps, self.shift, self.obs_fn = offline_steps, REWARD_SHIFT[reward], obs_fn
        self.terminate_on_success = terminate_on_success
        self.buffer = ReplayBuffer(data, S, capacity or len(data) + online_steps + n_envs)
        self.generators = [torch.Generator(device=dev).manual_seed(s) for s in self.seeds]
        self.noise = torch.Generator(device=dev).manual_seed(
            int(np.random.SeedSequence([*self.seeds, NOISE_STREAM]).generate_state(1)[0]))
        self._fingerprint = {"dataset": name, **data.fingerprint(), "offline_steps": offline_steps, "variant": variant,
                             "n_envs": n_envs, "terminate_on_success": terminate_on_success, "reward": reward}
        self.online, self.pending, self.rounds = False, 0, 0  # phase; updates owed to the last round; rounds done
        self.episode = np.zeros((S, n_envs), dtype=np.int64)  # each env's current episode number
        self.first_row = np.zeros((S, n_envs), dtype=np.int64)  # buffer row of its current episode's first step
        self.hit = np.zeros((S, n_envs), dtype=bool)  # has its current episode had a reward > 0
        self.finished = np.zeros(S, dtype=np.int64)  # collection episodes finished since the last probe
        self.reached = np.zeros(S, dtype=np.int64)  # ... of which had a reward > 0 (reached the goal)
        self._envs: list[list] | None = None
        self._obs: np.ndarray | None = None

    # ---- the Source protocol -----------------------------------------------------------------------------------
    def sample_agents(self, n_agents: int, batch_size: int) -> Batch:
        """The minibatches of the learner's next update, [S, B, ...]: from the offline rows up to offline_steps;
        after that a collection round comes before every n_envs updates."""
        if self.learner.steps >= self.offline_steps:
            if not self.online:
                self._switch(self.learner)
            if self.pending == 0:
                self._collect(self.learner)
                self.pending = self.n_envs
            self.pending -= 1
        return self.buffer.sample_agents(n_agents, batch_size, self.generators)

    def state_dict(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators], "noise": self.noise.get_state(),
                "buffer": self.buffer.state_dict(), "online": self.online, "pending": self.pending,
                "rounds": self.rounds, **{k: torch.from_numpy(getattr(self, k).copy()) for k in
                                          ("episode", "first_row", "hit", "finished", "reached")}}

    def load_state_dict(self, state: dict) -> None:
        for g, s in zip(self.generators, state["generators"], strict=True):
            g.set_state(s)
        self.noise.set_state(state["noise"])
        self.buffer.load_state_dict(state["buffer"])
        self.online, self.pending, self.rounds = bool(state["online"]), int(state["pending"]), int(state["rounds"])
        for k in ("episode", "first_row", "hit", "finished", "reached"):
            setattr(self, k, state[k].numpy().copy())
        self.close()  # the envs are rebuilt, and their episodes replayed, at the next collection

    def fingerprint(self) -> dict:
        return dict(self._fingerprint)

    def probe(self, learner: IQL) -> dict[str, torch.Tensor]:
        """Per agent since the last call: the share of online rows in the batches, and the share of the collection
        episodes finished that reached the goal (NaN when none finished)."""
        success = np.where(self.finished > 0, self.reached / np.maximum(self.finished, 1), np.nan)
        out = {"online_share": self.buffer.online_share().to(learner.device),
               "collect_success": torch.tensor(success, dtype=torch.float32, device=learner.device)}
        self.finished[:], self.reached[:] = 0, 0
        return out

    def close(self) -> None:
        """Close the collection envs (rebuilt on the next collection)."""
        for env in [e for row in self._envs or [] for e in row]:
            env.close()
        self._envs, self._obs = None, None

    # ---- the online phase -----------------------------------------------------------------------------------
    def _switch(self, learner: IQL) -> None:
        """The online phase starts: the variant's change, then every env at its first episode."""
        if self.variant == "frozen-policy":
            learner.actor_opt.param_groups[0]["lr"].fill_(0.0)  # Adam's step is lr x (...): the policy stays put
        if self.variant == "no-offline-data":
            self.buffer.discard()
        self.online = True
        self.first_row[:] = self.buffer.size + np.arange(self.n_envs)

    def _flat(self, observations: list) -> np.ndarray:
        """obs_fn over single-env observations: [m, obs_dim] float32."""
        return np.asarray(self.obs_fn(_stack(observations)), dtype=np.float32)

    def _ensure_envs(self) -> None:
        """Build the envs; each resets with its episode's seed and replays the actions of the episode so far."""
        if self._envs is not None:
            return
        S, n, o, a = len(self.seeds), self.n_envs, self.buffer.obs_dim, self.buffer.act_dim
        self._envs = [[self.make_env() for _ in range(n)] for _ in range(S)]
        rows = self.buffer.rows
        obs = np.zeros((S, n, o), dtype=np.float32)
        for k in range(S):
            for j in range(n):
                env = self._envs[k][j]
                ob, _ = env.reset(seed=episode_seed(self.seeds[k], j, int(self.episode[k, j])))
                steps = range(int(self.first_row[k, j]), self.buffer.size, n)
                for r in steps:
                    ob, *_ = env.step(rows[k, r, o:o + a].cpu().numpy())
                obs[k, j] = self._flat([ob])[0]
                recorded = rows[k, steps[-1], o + a + 1:-1].cpu().numpy() if len(steps) else obs[k, j]
                if not np.array_equal(obs[k, j], recorded):
                    warnings.warn(f"agent {k}, env {j}: replaying its unfinished episode ({len(steps)} steps) did not "
                                  "reach the recorded state (another machine or MuJoCo build?); the run goes on from "
                                  "the replayed state, no longer bit for bit", stacklevel=2)
        self._obs = obs

    def _collect(self, learner: IQL) -> None:
        """One round: every env steps once with a sampled action; the transitions join the buffers."""
        self._ensure_envs()
        S, n = len(self.seeds), self.n_envs
        act = learner.act(self._obs, deterministic=False, generator=self.noise).reshape(S, n, -1)
        act = np.clip(act, -ACTION_LIMIT, ACTION_LIMIT).astype(np.float32)
        raw, terminal, done, after = np.zeros((S, n)), np.zeros((S, n)), np.zeros((S, n), dtype=bool), []
        for k in range(S):
            for j in range(n):
                ob, r, terminated, truncated, _ = self._envs[k][j].step(act[k, j])
                raw[k, j] = r
                terminal[k, j] = terminated or (self.terminate_on_success and r > 0)
                done[k, j] = terminal[k, j] or truncated
                after.append(ob)
        next_obs = self._flat(after).reshape(S, n, -1)
        rows = np.concatenate([self._obs, act, (raw + self.shift)[..., None], next_obs, terminal[..., None]], -1)
        base = self.buffer.size
        self.buffer.add(torch.as_tensor(rows, dtype=torch.float32), torch.as_tensor(done, dtype=torch.float32))
        self.rounds += 1
        self.hit |= raw > 0
        for k, j in zip(*np.nonzero(done)):
            self.finished[k] += 1
            self.reached[k] += self.hit[k, j]
            self.hit[k, j] = False
            self.episode[k, j] += 1
            self.first_row[k, j] = base + n + j
            ob, _ = self._envs[k][j].reset(seed=episode_seed(self.seeds[k], j, int(self.episode[k, j])))
            next_obs[k, j] = self._flat([ob])[0]
        self._obs = next_obs


def reset_actor_rate(learner: IQL) -> None:
    """The switch from a cosine-trained checkpoint: the actor's Adam rate back to the config's actor_lr."""
    learner.actor_opt.param_groups[0]["lr"].fill_(learner.config.actor_lr)


def finetune(data: Transitions, config: IQLConfig, make_env: Callable[[], object], offline_steps: int,
             online_steps: int, seeds: Sequence[int] = (0,), variant: str = "iql", n_envs: int = 1,
             obs_fn: Callable = flatten_observations, terminate_on_success: bool = True,
             init_state: dict | None = None, **options) -> tuple[IQL, list[dict], OnlineSource]:
    """Offline IQL for offline_steps updates (or `init_state`, an IQL state_dict from a `train` checkpoint at that
    step), then online_steps updates with one env step each, for every seed at once, through
    iqlkit.engine.train.train.

    data: raw (prepare applies the config's preprocessing); the learner uses online_config(config). options:
    TrainOptions' fields but steps and probe (defaults here: device cpu, eval_every 5,000, agent columns with
    more than one seed). Log, checkpoints, resume and NaN guard as in train(); the rows add online_share and
    collect_success (OnlineSource.probe). Returns the learner, the log rows and the source (its buffer holds every
    agent's data; its envs are closed).
    """
    o = TrainOptions(**{"device": "cpu", "eval_every": 5_000, "agent_columns": len(seeds) > 1,
                        "desc": f"finetune {variant}", **options})
    config, dev = online_config(config), resolve_device(o.device)
    data = prepare(data, config).to(dev)
    if init_state is not None:
        if variant == "bc-awr":
            raise ValueError("bc-awr starts from its own behaviour cloning: fine-tune it from scratch (no init_state)")
        if int(init_state["steps"]) != offline_steps:
            raise ValueError(f"the initial state is at step {init_state['steps']}, not offline_steps={offline_steps}")
    torch.manual_seed(seeds[0])
    learner = (AWACLike if variant == "bc-awr" else IQL)(data.obs_dim, data.act_dim, [config] * len(seeds), dev, seeds)
    if init_state is not None:
        learner.load_state_dict(init_state)  # state dicts are snapshots: training leaves `init_state` as it is
        reset_actor_rate(learner)
    if isinstance(learner, AWACLike):
        learner.bc_until = offline_steps
    source = OnlineSource(learner, data, make_env, seeds, offline_steps, online_steps, variant, n_envs, config.reward,
                          obs_fn, terminate_on_success, name=o.dataset)
    try:
        rows = train(learner, source, replace(o, steps=offline_steps + online_steps, probe=source.probe))
    finally:
        source.close()
    return learner, rows, source
