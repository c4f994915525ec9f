"""Locomotion data the kit makes itself: gymnasium's Hopper, HalfCheetah and Walker2d (v5), the nine rows of the IQL
paper's Table 1 that are not AntMaze, in Minari's mujoco/<env>/<mode>-v0 schema.

D4RL's recipe, with agents the kit trains (stable-baselines3 SAC, iqlkit.envs.sac):
- expert: the trained policy; medium: a snapshot of the same run at about a third of the expert's return;
- data of a policy: its own stochastic actions, tanh(mu(s) + sigma(s) eps), as SAC's actor samples them;
- medium-replay: the replay buffer of a SAC run from scratch up to the medium snapshot's step (its every transition);
- medium-expert: medium and expert data, half and half.
The medium and expert actors ship as text (iqlkit/recorded/locomotion/<env>-<level>.json) with how they were made and
their measured returns. Scores: D4RL's normalised score 100 (R - R_random) / (R_expert - R_random), with the kit's
own random and expert returns in each dataset (ref_min_score, ref_max_score); D4RL_REFS holds D4RL's, printed
beside them, since the two scales differ.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from iqlkit.envs.data import write_minari
from iqlkit.envs.sac import TextPolicy, hardware, train_sac, versions
from iqlkit.parallel import process_map

ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
MODES = ("medium", "medium-replay", "medium-expert", "expert")
LEVELS = ("medium", "expert")  # the policies that ship
# D4RL's reference returns (random, expert) of its v2 locomotion datasets, which the paper's Table 1 normalises by
D4RL_REFS = {"hopper": (-20.272305, 3234.3), "halfcheetah": (-280.178953, 12135.0), "walker2d": (1.629008, 4592.3)}
RECORDED = Path(__file__).parents[1] / "recorded" / "locomotion"
MEDIUM_FRACTION = 1 / 3  # D4RL's medium: a policy at about a third of the expert's return


def check_task(env: str, mode: str | None = None) -> None:
    """A ValueError that lists the valid names, for an unknown env or mode."""
    if env not in ENVS:
        raise ValueError(f"unknown locomotion env {env!r}: choose one of {', '.join(ENVS)}")
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown locomotion mode {mode!r}: choose one of {', '.join(MODES)}")


def make_env(env: str, **kwargs):
    """gymnasium's <Env>-v5 (1,000-step episodes)."""
    import gymnasium as gym

    check_task(env)
    return gym.make(ENVS[env], **kwargs)


def dataset_id(env: str, mode: str) -> str:
    """The kit's id of a locomotion dataset: iqlkit/<env>-<mode>-v0 (Minari's is mujoco/<env>/<mode>-v0)."""
    check_task(env, mode)
    return f"iqlkit/{env}-{mode}-v0"


def policy_file(env: str, level: str) -> Path:
    """Where the shipped medium or expert actor of `env` lives."""
    check_task(env)
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: the kit ships {', '.join(LEVELS)}")
    return RECORDED / f"{env}-{level}.json"


def provenance(env: str, steps: int, seed: int, n_envs: int, hidden: tuple[int, ...], updates_per_step: float,
               wall_s: float) -> dict:
    """How an agent was made: the command, seed, steps, wall time, hardware and library versions."""
    return {"env": ENVS[env], "command": f"OMP_NUM_THREADS=1 python -m iqlkit expert train --env {env} --steps {steps} "
                                         f"--seed {seed} --n-envs {n_envs} --hidden {' '.join(map(str, hidden))} "
                                         f"--updates-per-step {updates_per_step:g}",
            "seed": seed, "steps": steps, "updates": round(steps * updates_per_step), "wall_s": wall_s,
            "settings": {"seed": seed, "n_envs": n_envs, "hidden": list(hidden), "updates_per_step": updates_per_step},
            "hardware": hardware(), "versions": versions()}


def train_expert(env: str, out: str | Path, steps: int = 1_000_000, seed: int = 0, n_envs: int = 4,
                 hidden: tuple[int, ...] = (256, 256), updates_per_step: float = 0.5,
                 checkpoint_every: int = 25_000) -> Path:
    """SAC on <Env>-v5 (iqlkit.envs.sac.train_sac: resumable, a snapshot of the actor at every checkpoint, the
    replay buffer kept); returns OUT/policy.json."""
    made = partial(provenance, env, steps, seed, n_envs, hidden, updates_per_step)
    return train_sac(partial(make_env, env), out, steps, made, seed, n_envs, hidden, updates_per_step,
                     checkpoint_every=checkpoint_every, desc=f"{env} SAC")


def episode(env: str, policy: str | None, seed: int, steps: int = 1000, stochastic: bool = True) -> dict:
    """One episode of up to `steps` steps: the policy's sampled (or mean) actions, or uniform random ones (policy
    None), reset with `seed`. Observations [n+1, d] (float64), actions [n, a] (float32), rewards, terminations and
    truncations [n] (a cut at `steps` counts as a time-out)."""
    gym_env = make_env(env)
    rng = np.random.default_rng(seed)
    actor = TextPolicy(policy) if policy is not None else None
    obs, _ = gym_env.reset(seed=seed)
    observations, actions, rewards, terms, truncs = [obs], [], [], [], []
    for t in range(steps):
        if actor is None:
            act = rng.uniform(-1, 1, gym_env.action_space.shape)
        else:
            act = actor.sample(obs, rng) if stochastic else actor.mean(obs)
        obs, reward, terminated, truncated, _ = gym_env.step(np.asarray(act, dtype=np.float32))
        observations.append(obs)
        actions.append(act)
        rewards.append(float(reward))
        terms.append(bool(terminated))
        truncs.append(bool(truncated) or (t == steps - 1 and not terminated))
        if terminated or truncated:
            break
    gym_env.close()
    return {"observations": np.array(observations, dtype=np.float64), "actions": np.array(actions, np.float32),
            "rewards": np.array(rewards), "terminations": np.array(terms), "truncations": np.array(truncs)}


def episode_return(env: str, policy: str | None, seed: int, stochastic: bool = False) -> float:
    """The return of one full episode (the mean action by default; None: uniform random actions)."""
    return float(episode(env, policy, seed, stochastic=stochastic)["rewards"].sum())


def returns(env: str, policy: str | None, episodes: int, seed: int = 0, workers: int | None = None,
            stochastic: bool = False) -> np.ndarray:
    """Returns of `episodes` full episodes (reset seeds seed, seed + 1, ...), in worker processes."""
    jobs = [(env, policy, seed + i, stochastic) for i in range(episodes)]
    return np.array(process_map(episode_return, jobs, workers))


def snapshot_returns(run: str | Path, env: str, episodes: int = 10, workers: int | None = None) -> list[dict]:
    """Each snapshot of a train_expert run (run/snapshots/<steps>.json), its mean-action return over `episodes`."""
    found = sorted(Path(run).glob("snapshots/*.json"), key=lambda p: int(p.stem))
    if not found:
        raise FileNotFoundError(f"no snapshots in {Path(run) / 'snapshots'}: train with python -m iqlkit expert train "
                                f"--env {env} --out {run}")
    return [{"steps": int(p.stem), "path": str(p), "return": float(returns(env, str(p), episodes, 0, workers).mean())}
            for p in found]


def pick_levels(measured: list[dict]) -> dict[str, dict]:
    """The expert (the snapshot with the highest return) and the medium (before it, the snapshot whose return is
    closest to a third of the expert's): D4RL's definitions."""
    expert = max(measured, key=lambda m: m["return"])
    earlier = [m for m in measured if m["steps"] < expert["steps"]] or [expert]
    medium = min(earlier, key=lambda m: abs(m["return"] - MEDIUM_FRACTION * expert["return"]))
    return {"medium": medium, "expert": expert}


def ship(run: str | Path, env: str, episodes: int = 20, workers: int | None = None) -> dict[str, Path]:
    """Measure every snapshot of a run, pick the medium and the expert, and write them to RECORDED with their
    returns (mean and std of the mean action over `episodes` episodes, and of the sampled actions) and the random
    return. Returns the two paths."""
    measured = snapshot_returns(run, env, max(3, episodes // 4), workers)
    random = returns(env, None, episodes, 0, workers)
    written = {}
    for level, chosen in pick_levels(measured).items():
        meta = json.loads(Path(chosen["path"]).read_text())
        mean_ret = returns(env, chosen["path"], episodes, 0, workers)
        sampled = returns(env, chosen["path"], episodes, 0, workers, stochastic=True)
        meta.update(level=level, snapshot_steps=chosen["steps"], measured={
            "episodes": episodes, "return_mean_action": [float(mean_ret.mean()), float(mean_ret.std())],
            "return_sampled": [float(sampled.mean()), float(sampled.std())],
            "random_return": [float(random.mean()), float(random.std())],
            "snapshots": [[m["steps"], round(m["return"], 1)] for m in measured]})
        path = policy_file(env, level)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=1) + "\n")
        written[level] = path
    return written


def _buffers(episodes: list[dict]) -> list:
    """Minari EpisodeBuffers of episode() dicts."""
    from minari.data_collector import EpisodeBuffer

    return [EpisodeBuffer(id=i, observations=ep["observations"], actions=ep["actions"], rewards=list(ep["rewards"]),
                          terminations=list(ep["terminations"]), truncations=list(ep["truncations"]))
            for i, ep in enumerate(episodes)]


def policy_data(env: str, policy: str, n_steps: int, seed: int, workers: int | None = None,
                desc: str | None = None) -> list[dict]:
    """Episodes of a policy's sampled actions, n_steps transitions in all (the last one cut, as a time-out), episode
    i reset and sampled from the seed SeedSequence([seed, i]), in waves of worker processes: the data does not
    depend on the number of workers."""
    found, total = [], 0
    while total < n_steps:  # a wave of as many full-length episodes as the steps left would fill
        first = len(found)
        wave = -(-(n_steps - total) // 1000)
        jobs = [(env, policy, int(np.random.SeedSequence([seed, first + i]).generate_state(1)[0]),
                 min(1000, n_steps - total - 1000 * i)) for i in range(wave)]
        for ep in process_map(episode, jobs, workers, desc):
            take = min(len(ep["rewards"]), n_steps - total)
            if take < len(ep["rewards"]):  # an earlier episode of the wave ended early: this one is cut
                ep = {k: v[:take + (k == "observations")] for k, v in ep.items()}
                ep["truncations"][-1], ep["terminations"][-1] = True, False
            if take:
                found.append(ep)
                total += take
    return found


def replay_data(env: str, steps: int, settings: dict, run: str | Path) -> list[dict]:
    """The replay buffer of a SAC run with the medium's training settings (seed, n_envs, hidden, updates_per_step)
    up to `steps` env steps, as episodes: D4RL's medium-replay. The run is trained from scratch (resuming in `run` if
    interrupted); a run that went further, such as the expert's own, is read only up to `steps`."""
    from stable_baselines3.common.buffers import ReplayBuffer

    from iqlkit.envs.sac import load_replay

    train_expert(env, run, steps=steps, seed=settings.get("seed", 0), n_envs=settings.get("n_envs", 4),
                 hidden=tuple(settings.get("hidden", (256, 256))),
                 updates_per_step=settings.get("updates_per_step", 0.5), checkpoint_every=max(1000, steps // 10))
    buffer: ReplayBuffer = load_replay(Path(run) / "replay.pkl")
    n = min(buffer.buffer_size if buffer.full else buffer.pos, -(-steps // buffer.n_envs))  # rows: n_envs steps each
    found = []
    for k in range(buffer.n_envs):  # each env's transitions in order, split at its episode ends
        start = 0
        done, timeout = buffer.dones[:n, k].astype(bool), buffer.timeouts[:n, k].astype(bool)
        for end in [*np.flatnonzero(done), n - 1]:
            if end < start:
                continue
            idx = np.arange(start, end + 1)
            obs = np.concatenate([buffer.observations[idx, k], buffer.next_observations[idx[-1:], k]]).astype(float)
            terminal = done[idx] & ~timeout[idx]
            found.append({"observations": obs, "actions": buffer.actions[idx, k].astype(np.float32),
                          "rewards": buffer.rewards[idx, k].astype(float), "terminations": terminal,
                          "truncations": ~terminal & (np.arange(len(idx)) == len(idx) - 1)})
            start = end + 1
    return found


def generate(env: str, mode: str, n_steps: int = 1_000_000, seed: int = 0, workers: int | None = None,
             policies: dict[str, str] | None = None, replay_run: str | Path | None = None, ref_episodes: int = 10):
    """Write the Minari dataset iqlkit/<env>-<mode>-v0 by D4RL's recipe (module docstring) and return it.

    policies: {'medium': path, 'expert': path} (default: the shipped ones). medium-replay trains SAC from scratch up
    to the medium snapshot's step, or n_steps if fewer (in the folder `replay_run`, resumable). ref_min_score: the mean return of uniform random actions, ref_max_score: the expert's
    mean-action return, over `ref_episodes` episodes each (the kit's own references).
    """
    check_task(env, mode)
    policies = {level: str(policy_file(env, level)) for level in LEVELS} | (policies or {})
    for level in LEVELS:
        TextPolicy(policies[level])  # a missing or corrupt file is named before any work starts
    if mode == "medium-replay":  # the run that made the medium, again, up to the medium's step
        medium = json.loads(Path(policies["medium"]).read_text())
        steps = int(medium.get("snapshot_steps", n_steps))
        episodes = replay_data(env, min(steps, n_steps), medium.get("settings", {"seed": seed}),
                               replay_run or f"runs/{env}-medium-replay")
    elif mode == "medium-expert":
        half = n_steps // 2
        episodes = (policy_data(env, policies["medium"], n_steps - half, seed, workers, f"{env} medium") +
                    policy_data(env, policies["expert"], half, seed + 1, workers, f"{env} expert"))
    else:
        episodes = policy_data(env, policies[mode], n_steps, seed, workers, f"{env} {mode}")
    refs = (float(returns(env, None, ref_episodes, 0, workers).mean()),
            float(returns(env, policies["expert"], ref_episodes, 0, workers).mean()))
    return write_minari(dataset_id(env, mode), _buffers(episodes), env=make_env(env).spec,
                        eval_env=make_env(env).spec, algorithm_name=f"SAC ({mode}, iqlkit.envs.locomotion)",
                        ref_min_score=refs[0], ref_max_score=refs[1], num_episodes_average_score=ref_episodes,
                        description=f"iqlkit: {ENVS[env]} {mode} by D4RL's recipe with the kit's own SAC agents")
