"""Command line: `python -m iqlkit train` (the kit's main job), `finetune`, `sweep`, `compare`, `table`, `make-data`,
`controller`, `bench` and `assign`."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

BUILTIN = "iqlkit/pointmaze-medium/stitch-v0"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (checked before any data is loaded)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def default_preset(dataset_id: str) -> str:
    """'antmaze' for AntMaze ids, 'pointmaze' for the kit's own mazes, else 'locomotion'."""
    if "antmaze" in dataset_id:
        return "antmaze"
    return "pointmaze" if "pointmaze" in dataset_id else "locomotion"


def ensure_builtin(dataset_id: str, n_steps: int) -> None:
    """Generate one of the kit's own datasets (PointMaze, recorded AntMaze) if it is not on disk yet."""
    import minari

    from iqlkit.envs import antmaze, datagen

    if not dataset_id.startswith("iqlkit/") or dataset_id in minari.list_local_datasets():
        return
    print(f"generating {dataset_id} ({n_steps:,} steps) ...")
    if dataset_id.startswith("iqlkit/antmaze-") and dataset_id.endswith(("-play-v0", "-diverse-v0")):
        maze, mode = dataset_id.removeprefix("iqlkit/antmaze-").removesuffix("-v0").split("-")
        antmaze.generate(maze, mode, n_steps=n_steps, dataset_id=dataset_id)
    elif dataset_id.startswith("iqlkit/antmaze-"):
        antmaze.record(antmaze.dataset_name(dataset_id), n_steps=n_steps, dataset_id=dataset_id)
    else:
        from iqlkit.envs.pointmaze import TASKS

        task, _, mode = dataset_id.removeprefix("iqlkit/pointmaze-").removesuffix("-v0").partition("/")
        if not dataset_id.startswith("iqlkit/pointmaze-") or task not in TASKS or mode not in ("navigate", "stitch"):
            raise SystemExit(f"unknown kit dataset {dataset_id!r}: the kit makes iqlkit/pointmaze-<{'|'.join(TASKS)}>/"
                             "<navigate|stitch>-v0 and iqlkit/antmaze-<maze>-<mode>-v0 (python -m iqlkit make-data "
                             "--help)")
        datagen.pointmaze(task, mode, n_steps=n_steps, dataset_id=dataset_id)


def eval_env_maker(args: argparse.Namespace, dataset):
    """The dataset's evaluation env as a no-argument maker: the kit's AntMaze one (iqlkit.envs.antmaze), else the
    dataset's own (`recover_environment(eval_env=True)`)."""
    from functools import partial

    from iqlkit.envs.antmaze import eval_env_factory

    return (eval_env_factory(args.dataset, dataset, minari_eval=args.minari_eval) if "antmaze" in args.dataset
            else partial(dataset.recover_environment, eval_env=True))


def cuts_at_success(args: argparse.Namespace, dataset) -> bool:
    """Whether episodes end at their first success: for goal-reaching (dict-observation) data unless --keep-tail;
    locomotion rewards are positive at every step, so their episodes are never cut."""
    return not args.keep_tail and hasattr(dataset.observation_space, "spaces")


def load_for_training(args: argparse.Namespace) -> tuple:
    """What `train`, `finetune`, `sweep` and `compare` share: (dataset, transitions, evaluate(act, episodes) ->
    scores)."""
    from functools import partial

    from iqlkit.envs.data import flatten_observations, load_minari, open_minari
    from iqlkit.envs.evaluate import reference_scores

    ensure_builtin(args.dataset, args.data_steps)
    dataset = open_minari(args.dataset)
    data = load_minari(dataset, goal_conditioned=not args.no_goal, terminate_on_success=cuts_at_success(args, dataset))
    obs_fn = partial(flatten_observations, goal_conditioned=not args.no_goal)
    return dataset, data, Evaluation(eval_env_maker(args, dataset), args.eval_episodes, args.eval_envs, args.seed,
                                     obs_fn, reference_scores(dataset), args.vector)


@dataclass(frozen=True)
class Evaluation:
    """evaluate(act, episodes) -> the scores of `episodes` (default: `episodes`) on the dataset's evaluation env; a
    picklable object, since a sweep's worker processes get it."""

    make_env: Callable[[], object]
    episodes: int
    n_envs: int
    seed: int
    obs_fn: Callable
    references: tuple[float, float] | None
    vector: str

    def __call__(self, act: Callable, episodes: int | None = None) -> dict[str, float]:
        from iqlkit.envs.evaluate import evaluate

        return evaluate(act, self.make_env, n_episodes=episodes or self.episodes, n_envs=self.n_envs, seed=self.seed,
                        obs_fn=self.obs_fn, references=self.references, vector=self.vector).summary()


def run_name(preset: str, overrides: dict, seed: int) -> str:
    """The run folder's name: the preset, every overridden hyperparameter, the seed (antmaze-tau0.8-seed0), so runs
    that differ never share a folder."""
    short = {"max_steps": "steps"}
    return "-".join([preset, *(f"{short.get(k, k)}{v:g}" for k, v in sorted(overrides.items())), f"seed{seed}"])


def draw_curves(out: Path) -> None:
    """curves.png in a run folder: its log.csv's losses and scores against steps (iqlkit.plots.training)."""
    import matplotlib.pyplot as plt

    from iqlkit.engine.runfolder import read_log
    from iqlkit.plots.training import training_curves

    fig = training_curves(read_log(out))
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


def finish(args: argparse.Namespace, out: Path, agent, evaluate_act, record: dict) -> dict:
    """The end of `train` and `finetune`: curves.png, the final evaluation (final.json with `record`), printed."""
    draw_curves(out)
    final = evaluate_act(agent.act, args.final_episodes)
    (out / "final.json").write_text(json.dumps({**record, **final}, indent=2))
    print(f"success rate over {args.final_episodes} episodes: {final['success_rate']:.2f}, return "
          f"{final['return']:.1f}" + (f", normalised score {final['normalized_score']:.1f}" if "normalized_score" in final
                                      else f" (no normalised score: {args.dataset} carries no reference returns, "
                                           "ref_min_score and ref_max_score, in its metadata)"))
    return final


def train(args: argparse.Namespace) -> dict:
    """Load (or make) the dataset, train IQL with evaluation, save the run, print the final scores."""
    import torch

    from iqlkit.engine.device import resolve_device
    from iqlkit.engine.iql import IQLConfig
    from iqlkit.engine.train import fit_many

    device = resolve_device(args.device)  # a bad device fails now, not after minutes of loading
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    overrides = {k: v for k, v in (("tau", args.tau), ("beta", args.beta), ("max_steps", args.steps)) if v is not None}
    config = IQLConfig.preset(args.preset, **overrides)  # bad values fail now too
    dataset, data, evaluate_act = load_for_training(args)
    out = Path(args.out) / args.dataset.replace("/", "_") / run_name(args.preset, overrides, args.seed)
    print(f"training IQL ({args.preset}: tau={config.tau}, beta={config.beta}) for {config.max_steps:,} steps on "
          f"{device}; run folder {out}")
    agent, _ = fit_many(data, config, [args.seed], device=str(device), eval_fn=lambda a: evaluate_act(a.act),
                        eval_every=args.eval_every, log_dir=out, fast=args.fast, compile=args.compile,
                        dataset=args.dataset, agent_columns=False)  # one agent: the log without agent columns
    return finish(args, out, agent, evaluate_act, {"dataset": args.dataset, "preset": args.preset, "seed": args.seed,
                                                   "steps": agent.steps, "config": config.to_dict()})


def finetune(args: argparse.Namespace) -> dict:
    """Offline IQL from scratch (or a `train` run's checkpoint: --from), then online fine-tuning
    (iqlkit.engine.online); save the run, print the final scores."""
    from functools import partial

    from iqlkit.engine.device import resolve_device
    from iqlkit.engine.iql import IQLConfig
    from iqlkit.engine.online import finetune as run_finetune, online_config
    from iqlkit.engine.runfolder import read_checkpoint
    from iqlkit.envs.data import flatten_observations, prepare

    if args.steps is not None:
        raise SystemExit("finetune counts --offline-steps and --online-steps (--steps is train's)")
    device = resolve_device(args.device)
    overrides = {k: v for k, v in (("tau", args.tau), ("beta", args.beta)) if v is not None}
    state = None
    if args.from_run:
        if overrides or args.offline_steps:
            raise SystemExit("with --from the offline run sets tau, beta and the offline steps: drop --tau, --beta "
                             "and --offline-steps")
        state = read_checkpoint(Path(args.from_run) / "checkpoint.pt")
        if state["fingerprint"].get("dataset") != args.dataset:
            raise SystemExit(f"{args.from_run} trained on {state['fingerprint'].get('dataset')!r}: pass --dataset "
                             f"{state['fingerprint'].get('dataset')}")
        if len(state["learner"]["seeds"] or []) != 1:
            raise SystemExit(f"{args.from_run} holds {len(state['learner']['configs'])} agents; --from takes a run of "
                             "one (python -m iqlkit train)")
        config, seed = IQLConfig(**state["learner"]["configs"][0]), state["learner"]["seeds"][0]
    else:
        config, seed = IQLConfig.preset(args.preset, **overrides), args.seed
    dataset, data, evaluate_act = load_for_training(args)
    if state is not None and state["fingerprint"] != {"dataset": args.dataset, **prepare(data, config).fingerprint()}:
        raise SystemExit(f"{args.from_run} trained on other data than {args.dataset} loads here (saved "
                         f"{state['fingerprint']}): check --no-goal and --keep-tail")
    offline_steps = int(state["learner"]["steps"]) if state else args.offline_steps or config.max_steps
    online_steps = args.online_steps or config.max_steps
    name = (f"from-{Path(args.from_run).name}" if state else
            f"off{offline_steps}-" + run_name(args.preset, overrides, seed))
    out = Path(args.out) / args.dataset.replace("/", "_") / f"finetune-{args.variant}-{name}"
    print(f"fine-tuning ({args.variant}, {args.preset}: tau={config.tau}, beta={config.beta}): {offline_steps:,} "
          f"offline "
          f"updates{' (from ' + args.from_run + ')' if state else ''}, then {online_steps:,} online steps with "
          f"{args.n_envs} env(s) on {device}; run folder {out}")
    learner, rows, source = run_finetune(
        data, config, eval_env_maker(args, dataset), offline_steps, online_steps, seeds=[seed], variant=args.variant,
        n_envs=args.n_envs, obs_fn=partial(flatten_observations, goal_conditioned=not args.no_goal),
        terminate_on_success=cuts_at_success(args, dataset), device=str(device), init_state=state and state["learner"],
        eval_fn=lambda a: evaluate_act(a.act), eval_every=args.eval_every, log_dir=out, dataset=args.dataset)
    return finish(args, out, learner, evaluate_act, {
        "dataset": args.dataset, "preset": args.preset, "variant": args.variant, "from": args.from_run, "seed": seed,
        "offline_steps": offline_steps, "online_steps": online_steps, "n_envs": args.n_envs, "steps": learner.steps,
        "env_steps": source.rounds * args.n_envs, "config": online_config(config).to_dict()})


def make_data(args: argparse.Namespace) -> None:
    """Write one of the kit's datasets: PointMaze (umaze, medium), AntMaze (antmaze-umaze, -medium, -large) or
    locomotion (hopper, halfcheetah, walker2d)."""
    import time

    from iqlkit.envs import antmaze, datagen, locomotion
    from iqlkit.plots.dataset import data_summary

    start = time.time()
    maze, mode = args.task.removeprefix("antmaze-"), args.mode
    ant = args.task.startswith("antmaze-")
    walked = ant and mode != "random"  # the trained ant's AntMaze data (play or diverse)
    if args.task in locomotion.ENVS:
        ds = locomotion.generate(args.task, mode or "medium", n_steps=args.data_steps or 1_000_000, seed=args.seed,
                                 workers=args.workers, ref_episodes=args.ref_episodes or 10,
                                 replay_run=args.replay_run or f"runs/{args.task}-medium-replay")
        low, high = locomotion.D4RL_REFS[args.task]
        meta = ds.storage.metadata
        print(f"reference returns: the kit's random {meta['ref_min_score']:.1f} and expert "
              f"{meta['ref_max_score']:.1f} (normalised scores here use these); D4RL's random {low:.1f} and expert "
              f"{high:.1f}")
    elif walked:
        ds = antmaze.generate(maze, mode or "play", n_steps=args.data_steps or 1_000_000, seed=args.seed,
                              workers=args.workers,
                              ref_episodes=100 if args.ref_episodes is None else args.ref_episodes)
    elif ant:
        ds = antmaze.record(antmaze.eval_name(maze, "play"), n_steps=args.data_steps or 200_000, seed=args.seed)
    else:
        ds = datagen.pointmaze(args.task, mode or "stitch", n_steps=args.data_steps or 200_000, seed=args.seed)
    print(f"wrote {ds.id}: {ds.total_episodes} episodes, {ds.total_steps:,} steps in {time.time() - start:.0f} s")
    if walked:
        got = data_summary(ds, antmaze.TASKS[maze])
        print(f"{got['reach_goal']:.0%} of episodes reach their goal, {got['before_goal']:.0%} of the steps come up to "
              f"the first success (the rest sit at the goal), {got['floor_visited']:.0%} of the floor cells visited")


def expert_train(args: argparse.Namespace) -> None:
    """Train a locomotion agent with SAC (resumable; a snapshot of the actor at every checkpoint)."""
    from iqlkit.envs.locomotion import train_expert

    out = args.out or f"runs/expert-{args.env}"
    path = train_expert(args.env, out, steps=args.steps, seed=args.seed, n_envs=args.n_envs,
                        hidden=tuple(args.hidden), updates_per_step=args.updates_per_step)
    print(f"wrote {path}; pick and ship its medium and expert snapshots with: python -m iqlkit expert ship --env "
          f"{args.env} --run {out}")


def expert_ship(args: argparse.Namespace) -> None:
    """Measure a run's snapshots; write its medium and expert actors, with their returns, into the kit."""
    from iqlkit.envs.locomotion import ship

    for level, path in ship(args.run_folder or f"runs/expert-{args.env}", args.env, args.episodes, args.workers).items():
        measured = json.loads(path.read_text())["measured"]
        print(f"{level}: {path} (step {json.loads(path.read_text())['snapshot_steps']:,}), return "
              f"{measured['return_mean_action'][0]:.1f} +- {measured['return_mean_action'][1]:.1f} with the mean "
              f"action, {measured['return_sampled'][0]:.1f} sampled; random {measured['random_return'][0]:.1f}")


def controller_train(args: argparse.Namespace) -> None:
    """Train the AntMaze ant controller with SAC (resumable); write its weights and how they were made."""
    from iqlkit.envs.controller import train

    path = train(args.out, steps=args.steps, seed=args.seed, n_envs=args.n_envs, hidden=tuple(args.hidden),
                 updates_per_step=args.updates_per_step, gamma=args.gamma)
    print(f"wrote {path} (the weights and how they were made); check it with: python -m iqlkit controller check "
          f"--weights {path} --save")


def controller_check(args: argparse.Namespace) -> None:
    """Print the controller's acceptance figures (and with --save store them in the weights' JSON file)."""
    from iqlkit.envs.antmaze import check_controller
    from iqlkit.envs.controller import report

    figures = check_controller(args.weights, episodes=args.episodes, workers=args.workers, seed=args.seed)
    print(report(figures))
    if args.save:
        path = Path(args.weights)
        path.write_text(json.dumps({**json.loads(path.read_text()), "acceptance": figures}, indent=1) + "\n")
        print(f"wrote the figures into {path}")


def sweep(args: argparse.Namespace) -> None:
    """The reproducibility report's ablation (Table 3) on one dataset, every value x seed, resumable; prints it."""
    import matplotlib.pyplot as plt

    from iqlkit.engine.iql import IQLConfig
    from iqlkit.experiments.sweep import REPORT_GRID, ablation, ablation_table, format_table, sweep as run_sweep
    from iqlkit.plots.sweep import ablation_panels

    base = IQLConfig.preset(args.preset, **({"max_steps": args.steps} if args.steps else {}))
    unknown = set(args.axes) - set(REPORT_GRID)
    if unknown:
        raise SystemExit(f"unknown axes {sorted(unknown)}; choose from {sorted(REPORT_GRID)}")
    entries = ablation(base, {axis: REPORT_GRID[axis] for axis in args.axes})  # every config checked before Ray
    name = Path("sweeps") / args.dataset.replace("/", "_")
    out, backend = Path(args.out) / name, backend_of(args)
    with backend.session():  # Ray started or joined now: a bad --address fails before the data loads
        _, data, evaluate_act = load_for_training(args)
        rows = run_sweep(data, [c for _, _, c in entries], args.seeds, out, evaluate_act, n_evals=args.n_evals,
                         device=args.device, max_agents=args.max_agents, backend=backend,
                         storage=args.storage and Path(args.storage) / name, tensorboard=tensorboard_of(args))
    if not rows:
        raise SystemExit(f"error: every run failed: see {out / 'failed.csv'}")
    metric = "normalized_score" if "normalized_score" in rows[-1] else "success_rate"
    table = format_table(ablation_table({args.dataset: rows}, entries, metric, 1.0 if metric == "normalized_score"
                                        else 100.0))
    (out / "table.md").write_text(table + "\n")
    fig = ablation_panels(rows, entries, base, metric, 1.0 if metric == "normalized_score" else 100.0)
    fig.savefig(out / "ablation.png", dpi=100)
    plt.close(fig)
    print(table)
    print(f"wrote {out / 'results.csv'}, {out / 'table.md'} and {out / 'ablation.png'}")
    if (out / "failed.csv").exists():
        raise SystemExit(f"error: some runs failed: see {out / 'failed.csv'}; run the sweep again to retry them")


def compare(args: argparse.Namespace) -> None:
    """IQL against its baselines on one dataset, every method x seed (iqlkit.experiments.compare), resumable; prints
    the table."""
    from functools import partial

    from iqlkit.engine.iql import IQLConfig
    from iqlkit.envs.data import flatten_observations
    from iqlkit.experiments.compare import compare_methods, success_table, write_results

    overrides = {k: v for k, v in (("max_steps", args.steps), ("hidden", args.hidden and tuple(args.hidden)))
                 if v is not None}
    config = IQLConfig.preset(args.preset, **overrides)  # checked before Ray starts
    name = Path("compare") / args.dataset.replace("/", "_")
    out, backend = Path(args.out) / name, backend_of(args)
    folders = Path(args.storage) / name if args.storage else out
    with backend.session():  # Ray started or joined now: a bad --address fails before the data loads
        dataset, data, evaluation = load_for_training(args)
        print(f"{', '.join(args.methods)} x seeds {args.seeds} on {args.dataset} ({args.preset}, "
              f"{config.max_steps:,} updates, networks {config.hidden}, {args.eval_episodes} episodes per "
              f"evaluation, {backend.kind} backend); run folders in {folders}")
        runs = compare_methods(data, config, eval_env_maker(args, dataset), tuple(args.methods), tuple(args.seeds),
                               eval_episodes=args.eval_episodes, n_evals=args.n_evals, device=args.device,
                               n_envs=args.eval_envs, log_dir=str(folders), backend=backend,
                               obs_fn=partial(flatten_observations, goal_conditioned=not args.no_goal),
                               tensorboard=tensorboard_of(args), references=evaluation.references)
    out.mkdir(parents=True, exist_ok=True)  # (the run folders may be elsewhere: --storage)
    write_results(runs, out / "results.csv")
    for run in runs:
        if run.error:
            print(f"failed: {run.method} seed {run.seed}: {run.error}")
    metric = "normalized_score" if evaluation.references is not None else "success_rate"
    lines = [f"| method | {metric.replace('_', ' ')} (mean +- std) | per seed |", "| --- | --- | --- |"]
    lines += [f"| {m} | {v.mean():.2f} +- {v.std():.2f} | {', '.join(f'{x:.2f}' for x in v)} |"
              for m, v in success_table(runs, metric).items()]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'results.csv'} and {out / 'table.md'}")
    if any(run.error for run in runs):
        raise SystemExit("error: some runs failed (above); run the comparison again to retry them")


def table(args: argparse.Namespace) -> None:
    """The IQL paper's Table 1 layout over several datasets, every method x seed (iqlkit.experiments.table),
    resumable; prints it."""
    from iqlkit.engine.iql import IQLConfig
    from iqlkit.experiments.table import Benchmark, paper_table

    if args.dataset != BUILTIN:
        raise SystemExit("table takes --datasets (one or more), not --dataset")
    overrides = {k: v for k, v in (("max_steps", args.steps), ("hidden", args.hidden and tuple(args.hidden)))
                 if v is not None}
    each = [argparse.Namespace(**{**vars(args), "dataset": d, "preset": args.preset or default_preset(d)})
            for d in dict.fromkeys(args.datasets)]
    configs = [IQLConfig.preset(a.preset, **overrides) for a in each]  # checked before Ray starts
    out, backend = Path(args.out) / "table", backend_of(args)
    with backend.session():  # Ray started or joined now: a bad --address fails before the data loads
        benchmarks = []
        for a, config in zip(each, configs):
            _, data, evaluation = load_for_training(a)
            benchmarks.append(Benchmark(a.dataset, data, config, evaluation.make_env, evaluation.obs_fn,
                                        evaluation.references))
        paper_table(benchmarks, args.methods, args.seeds, out, storage=args.storage and Path(args.storage) / "table",
                    eval_episodes=args.eval_episodes, n_evals=args.n_evals, device=args.device,
                    n_envs=args.eval_envs, backend=backend, tensorboard=tensorboard_of(args))
    print((out / "table.md").read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'table.md'} and {out / 'table.csv'}")
    if (out / "failed.csv").exists():
        raise SystemExit(f"error: some runs failed: see {out / 'failed.csv'}; run the table again to retry them")


def backend_of(args: argparse.Namespace):
    """The --backend options as an iqlkit.experiments.backends.Backend (a bad combination stops here)."""
    from iqlkit.experiments.backends import Backend

    try:
        return Backend(args.backend, args.workers, args.address, args.cpus_per_task, args.gpus_per_task)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def tensorboard_of(args: argparse.Namespace) -> bool:
    """--tensorboard as given; by default on where the tensorboard package is installed."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None if args.tensorboard is None else args.tensorboard


def bench(args: argparse.Namespace) -> None:
    """Print updates/s of the training paths on this machine."""
    from iqlkit.experiments.bench import run

    run(args.device, args.steps, tuple(args.hidden), args.batch_size, args.seeds, compile=args.compile,
        eval_episodes=args.eval_episodes, eval_envs=args.eval_envs, tf32=args.tf32)


def assign_release(args: argparse.Namespace) -> None:
    """Write the student notebooks of the assignment sources."""
    from iqlkit.assign.release import release

    for path in release(Path(args.source), Path(args.out)):
        print(f"wrote {path}")


def assign_autograde(args: argparse.Namespace) -> None:
    """Grade a folder of submissions; write the CSV and the executed notebooks; print a summary."""
    from iqlkit.assign.grade import autograde, summary

    results = autograde(Path(args.source), Path(args.submissions), Path(args.out), timeout_s=args.timeout,
                        cell_timeout_s=args.cell_timeout, workers=args.workers, smoke=args.smoke,
                        memory_gb=args.memory_gb or None, backend=backend_of(args))
    print(summary(results))
    print(f"wrote {args.out} and the executed notebooks in {Path(args.out).with_suffix('')}/")


def parser() -> argparse.ArgumentParser:
    """The `python -m iqlkit` argument parser."""
    top = argparse.ArgumentParser(prog="python -m iqlkit", description="Implicit Q-Learning, from the course kit.")
    commands = top.add_subparsers(dest="command", required=True)

    data_args = argparse.ArgumentParser(add_help=False)  # what every command that trains on a dataset takes
    data_args.add_argument("--dataset", default=BUILTIN, help=f"Minari dataset id (default {BUILTIN}); e.g. "
                           "D4RL/antmaze/umaze-v1 after `minari download D4RL/antmaze/umaze-v1`")
    data_args.add_argument("--preset", choices=["antmaze", "locomotion", "kitchen", "adroit", "pointmaze"],
                           help="hyperparameters (default: from the dataset id)")
    data_args.add_argument("--steps", type=positive_int,
                           help="gradient updates (default: the preset's max_steps; authors: 1,000,000)")
    data_args.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    data_args.add_argument("--out", default="runs", help="output folder")
    data_args.add_argument("--eval-episodes", type=positive_int, default=20,
                           help="episodes per evaluation during training")
    data_args.add_argument("--eval-envs", type=positive_int, default=10, help="environments stepped together")
    data_args.add_argument("--vector", choices=["sync", "async"], default="sync", help="async: one process per env")
    data_args.add_argument("--no-goal", action="store_true", help="drop desired_goal from dict observations")
    data_args.add_argument("--keep-tail", action="store_true",
                           help="keep the raw continuing data (default: terminal at the first success, tail dropped)")
    data_args.add_argument("--minari-eval", action="store_true",
                           help="AntMaze: evaluate in Minari's own eval env (its umaze maze is flipped: Minari #304)")
    data_args.add_argument("--data-steps", type=positive_int, default=200_000,
                           help="size of a generated built-in dataset")
    backend_args = argparse.ArgumentParser(add_help=False)  # where the tasks of sweep, compare, table, autograde run
    backend_args.add_argument("--backend", choices=["local", "ray"], default="local",
                              help="local: a process pool on this machine (default); ray: Ray tasks, on a local Ray "
                                   "sized to this machine or the cluster at --address (pip install -e '.[ray]')")
    backend_args.add_argument("--address", help="Ray: join this cluster (auto, host:6379 or ray://host:10001) "
                                                "instead of starting a local Ray")
    backend_args.add_argument("--cpus-per-task", type=float, default=1.0,
                              help="Ray: CPUs each task (a stack of runs, a notebook) asks for (default 1)")
    backend_args.add_argument("--gpus-per-task", type=float, default=0.0,
                              help="Ray: GPUs each task asks for; 0.25 lets four stacks share a GPU (default 0)")
    grid_args = argparse.ArgumentParser(add_help=False)  # where the run folders of sweep, compare, table go
    grid_args.add_argument("--storage", help="where the run folders (checkpoints, log.csv, TensorBoard events) go: a "
                                             "folder every node sees (default: under --out)")
    grid_args.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                           help="TensorBoard events of every run beside its log.csv (default: on where tensorboard "
                                "is installed)")
    run_args = argparse.ArgumentParser(add_help=False)  # what a single run (train, finetune) takes besides
    run_args.add_argument("--tau", type=float, help="override the preset's expectile")
    run_args.add_argument("--beta", type=float, help="override the preset's AWR inverse temperature")
    run_args.add_argument("--seed", type=int, default=0)
    run_args.add_argument("--eval-every", type=positive_int, default=5_000)
    run_args.add_argument("--final-episodes", type=positive_int, default=100,
                          help="episodes of the final evaluation")

    train_p = commands.add_parser(
        "train", parents=[data_args, run_args],
        help="train IQL on a Minari dataset (default: the kit's stitching PointMaze)",
        description="Train IQL on a local Minari dataset and report the success rate. With no arguments: the kit's "
                    "own stitching PointMaze dataset, generated if missing. Writes log.csv, checkpoint.pt, "
                    "curves.png and final.json under --out.")
    train_p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=None,
                         help="the fast path (same updates; CUDA graphs on a GPU); default: on with CUDA, off on a CPU")
    train_p.add_argument("--compile", action="store_true", help="fast path: also torch.compile the loss functions")
    train_p.add_argument("--tf32", action="store_true",
                         help="CUDA: let float32 matmuls use TF32 (faster, ~1e-3 relative)")
    train_p.set_defaults(run=train)

    finetune_p = commands.add_parser(
        "finetune", parents=[data_args, run_args],
        help="offline IQL, then online fine-tuning (the paper's Section 5.3)",
        description="Offline IQL (from scratch, or from a `train` run folder with --from), then online fine-tuning: "
                    "the replay buffer starts with the offline data, every env step of the policy (sampled actions) "
                    "adds a transition and one update. Writes log.csv (with online_share), checkpoint.pt, curves.png "
                    "and final.json under --out; run it again after an interruption and it resumes.")
    finetune_p.add_argument("--offline-steps", type=positive_int,
                            help="offline updates (default: the preset's max_steps)")
    finetune_p.add_argument("--online-steps", type=positive_int,
                            help="env steps after the switch, one update each (default: the preset's max_steps; "
                                 "authors: 1M)")
    finetune_p.add_argument("--from", dest="from_run", metavar="RUN",
                            help="a train run folder (runs/<dataset>/<run>): start from its checkpoint (config, seed, "
                                 "steps)")
    finetune_p.add_argument("--variant", choices=["iql", "frozen-policy", "no-offline-data", "bc-awr"], default="iql",
                            help="iql; frozen-policy (only V and Q learn online); no-offline-data (buffer emptied at "
                                 "the switch); bc-awr (AWAC-like: BC offline, then AWR against a Q of the current "
                                 "policy)")
    finetune_p.add_argument("--n-envs", type=positive_int, default=1,
                            help="envs stepped together, then as many updates")
    finetune_p.set_defaults(run=finetune)

    sweep_p = commands.add_parser(
        "sweep", parents=[data_args, backend_args, grid_args],
        help="the reproducibility report's ablation (Table 3) on one dataset",
        description="One hyperparameter at a time around the preset, every value x seed, trained in stacks where "
                    "the shapes allow, each stack one task of the backend (a local process pool, or Ray); resumable: "
                    "run it again after an interruption. Writes results.csv, table.md and ablation.png in "
                    "OUT/sweeps/<dataset>/ (failed.csv lists failed runs).")
    sweep_p.add_argument("--axes", nargs="+", default=["tau", "beta", "dropout", "batch_size", "depth", "lr"],
                         help="hyperparameters to vary (default: all six of the report's Table 3)")
    sweep_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sweep_p.add_argument("--n-evals", type=positive_int, default=3,
                         help="evaluations along each run (the last one is the score)")
    sweep_p.add_argument("--max-agents", type=positive_int, default=48, help="most agents trained in one stack")
    sweep_p.add_argument("--workers", type=positive_int,
                         help="stacks trained at once: local processes, or a local Ray's CPUs (default: one per core)")
    sweep_p.set_defaults(run=sweep, seed=0)

    methods_args = argparse.ArgumentParser(add_help=False)  # what compare and table take besides
    methods_args.add_argument("--methods", nargs="+", choices=["iql", "one-step", "bc", "top10-bc"],
                              default=["iql", "one-step", "bc"])
    methods_args.add_argument("--hidden", type=positive_int, nargs="+",
                              help="override the preset's hidden layer sizes")
    methods_args.add_argument("--n-evals", type=positive_int, default=2,
                              help="evaluations along each run (the last one is the score)")
    methods_args.add_argument("--workers", type=positive_int,
                              help="stacks trained at once: local processes, or a local Ray's CPUs (default: one per "
                                   "core)")
    compare_p = commands.add_parser(
        "compare", parents=[data_args, backend_args, grid_args, methods_args],
        help="IQL against one-step and BC (and top-10%% BC) on one dataset",
        description="Every method x seed on one dataset through the same engine: IQL, one-step and BC differ only "
                    "in tau and beta and train as one stack. Resumable: run it again after an interruption. Writes "
                    "results.csv and table.md in OUT/compare/<dataset>/.")
    compare_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    compare_p.set_defaults(run=compare, seed=0)

    table_p = commands.add_parser(
        "table", parents=[data_args, backend_args, grid_args, methods_args],
        help="the IQL paper's Table 1 over several datasets: methods x seeds, the paper's numbers beside",
        description="Every method x seed on every dataset (as compare does for one), each stack of methods one task "
                    "of the backend: rows are datasets, columns methods, cells mean +- std over seeds with the "
                    "paper's number beside where the dataset is one of its Table 1. Resumable. Writes results.csv, "
                    "table.md and table.csv in OUT/table/.")
    table_p.add_argument("--datasets", nargs="+", required=True, help="Minari dataset ids, one row each")
    table_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    table_p.set_defaults(run=table, seed=0)  # (not dataset=None: set_defaults would change the shared --dataset)

    data_p = commands.add_parser("make-data", help="generate one of the kit's PointMaze or AntMaze datasets")
    data_p.add_argument("--task", choices=["umaze", "medium", "antmaze-umaze", "antmaze-medium", "antmaze-large",
                                           "hopper", "halfcheetah", "walker2d"],
                        default="medium", help="PointMaze task, an AntMaze maze, or a locomotion env")
    data_p.add_argument("--mode", choices=["navigate", "stitch", "play", "diverse", "random", "medium",
                                           "medium-replay", "medium-expert", "expert"],
                        help="PointMaze: navigate, stitch (default); AntMaze: play (default: marked start and goal "
                             "cells), diverse (anywhere), both with the trained ant; random: noisy random actions, "
                             "for plumbing tests only; locomotion: medium (default), medium-replay, medium-expert, "
                             "expert (D4RL's meanings, with the kit's own SAC agents)")
    data_p.add_argument("--data-steps", type=positive_int,
                        help="steps (default: 1,000,000 for AntMaze play/diverse and locomotion, else 200,000)")
    data_p.add_argument("--workers", type=int, help="AntMaze play/diverse: worker processes (default: one per core)")
    data_p.add_argument("--ref-episodes", type=int,
                        help="episodes behind the reference scores: AntMaze play/diverse, of the noiseless ant "
                             "(default 100; 0: none); locomotion, of random actions and of the expert (default 10)")
    data_p.add_argument("--replay-run", help="locomotion medium-replay: the folder of the SAC run whose replay buffer "
                                             "is the data (resumable; default runs/<env>-medium-replay)")
    data_p.add_argument("--seed", type=int, default=0)
    data_p.set_defaults(run=make_data)

    expert_p = commands.add_parser("expert", help="the locomotion agents behind the kit's hopper, halfcheetah and "
                                                  "walker2d data: train, ship")
    expert_sub = expert_p.add_subparsers(dest="action", required=True)
    expert_train_p = expert_sub.add_parser(
        "train", help="SAC on <Env>-v5 (resumable; needs stable-baselines3: pip install 'iqlkit[controller]')")
    expert_train_p.add_argument("--env", choices=["hopper", "halfcheetah", "walker2d"], required=True)
    expert_train_p.add_argument("--out", help="checkpoints, log.csv and snapshots (default: runs/expert-<env>)")
    expert_train_p.add_argument("--steps", type=positive_int, default=1_000_000, help="env steps")
    expert_train_p.add_argument("--n-envs", type=positive_int, default=4, help="envs stepped together")
    expert_train_p.add_argument("--updates-per-step", type=float, default=0.5, help="gradient steps per env step")
    expert_train_p.add_argument("--hidden", type=positive_int, nargs="+", default=[256, 256])
    expert_train_p.add_argument("--seed", type=int, default=0)
    expert_train_p.set_defaults(run=expert_train)
    expert_ship_p = expert_sub.add_parser(
        "ship", help="measure a run's snapshots, pick the expert (best) and the medium (a third of its return) and "
                     "write them into iqlkit/recorded/locomotion/")
    expert_ship_p.add_argument("--env", choices=["hopper", "halfcheetah", "walker2d"], required=True)
    expert_ship_p.add_argument("--run", dest="run_folder", help="the train run folder (default: runs/expert-<env>)")
    expert_ship_p.add_argument("--episodes", type=positive_int, default=20, help="episodes per measured return")
    expert_ship_p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    expert_ship_p.set_defaults(run=expert_ship)

    controller_p = commands.add_parser("controller",
                                       help="the ant controller that walks the kit's AntMaze data: train, check")
    controller_sub = controller_p.add_subparsers(dest="action", required=True)
    controller_train_p = controller_sub.add_parser(
        "train", help="SAC on Ant-v5 with commanded directions (resumable; needs stable-baselines3: pip install "
                      "'iqlkit[controller]')")
    controller_train_p.add_argument("--out", default="runs/controller",
                                    help="checkpoints, log.csv, weight snapshots and the exported weights")
    controller_train_p.add_argument("--steps", type=int, default=3_000_000, help="env steps")
    controller_train_p.add_argument("--n-envs", type=int, default=4, help="envs stepped together")
    controller_train_p.add_argument("--updates-per-step", type=float, default=0.5, help="gradient steps per env step")
    controller_train_p.add_argument("--gamma", type=float, default=0.99, help="SAC's discount")
    controller_train_p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    controller_train_p.add_argument("--seed", type=int, default=0)
    controller_train_p.set_defaults(run=controller_train)
    controller_check_p = controller_sub.add_parser(
        "check", help="speed, falls and maze success of the controller (default: the shipped one)")
    controller_check_p.add_argument("--weights", default=str(Path(__file__).parent / "recorded" /
                                                             "ant_controller.json"))
    controller_check_p.add_argument("--episodes", type=int, default=100, help="episodes per figure")
    controller_check_p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    controller_check_p.add_argument("--seed", type=int, default=0)
    controller_check_p.add_argument("--save", action="store_true", help="store the figures in the weights' JSON file")
    controller_check_p.set_defaults(run=controller_check)

    bench_p = commands.add_parser("bench", help="updates/s of IQL on this machine (AntMaze-sized synthetic data)")
    bench_p.add_argument("--device", default="auto")
    bench_p.add_argument("--steps", type=positive_int, default=300, help="timed updates per path")
    bench_p.add_argument("--hidden", type=positive_int, nargs="+", default=[256, 256])
    bench_p.add_argument("--batch-size", type=positive_int, default=256)
    bench_p.add_argument("--seeds", type=positive_int, default=16, help="agents trained at once (one IQL of S agents)")
    bench_p.add_argument("--tf32", action="store_true", help="CUDA: let float32 matmuls use TF32")
    bench_p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                         help="add rows for the fast path with torch.compile (default: on CUDA only; minutes of "
                              "compiling)")
    bench_p.add_argument("--eval-episodes", type=int,
                         help="also time this many AntMaze evaluation episodes (default: 100 on CUDA, 0 on a CPU)")
    bench_p.add_argument("--eval-envs", type=int, help="env processes for that (default: one per core)")
    bench_p.set_defaults(run=bench)

    assign_p = commands.add_parser("assign",
                                   help="classroom assignments: release student notebooks, autograde submissions")
    assign_sub = assign_p.add_subparsers(dest="action", required=True)
    release_p = assign_sub.add_parser("release",
                                      help="student notebooks from the sources (solutions and hidden tests removed)")
    release_p.add_argument("--source", default="assignments/source", help="folder of source notebooks, or one notebook")
    release_p.add_argument("--out", default="assignments/release", help="folder for the student notebooks")
    release_p.set_defaults(run=assign_release)
    autograde_p = assign_sub.add_parser(
        "autograde", parents=[backend_args], help="grade SUBMISSIONS/<student>/<assignment>.ipynb into a CSV",
        description="Each notebook in its own sandboxed kernel. With --backend ray the notebooks are Ray tasks, "
                    "graded with the same sandbox on the node that runs them; a node where bubblewrap does not work "
                    "refuses to grade unless IQLKIT_SANDBOX=off allows unsandboxed grading explicitly.")
    autograde_p.add_argument("submissions", help="folder with one subfolder per student holding <assignment>.ipynb")
    autograde_p.add_argument("--source", default="assignments/source", help="folder of source notebooks (the tests)")
    autograde_p.add_argument("--out", default="grades.csv",
                             help="the CSV; executed notebooks go to the folder of that name")
    autograde_p.add_argument("--timeout", type=float, default=600, help="seconds per notebook (default 600)")
    autograde_p.add_argument("--cell-timeout", type=float, help="seconds per cell (default: --timeout)")
    autograde_p.add_argument("--workers", type=positive_int, default=2,
                             help="notebooks run at once (default 2; a local Ray gets as many CPUs)")
    autograde_p.add_argument("--memory-gb", type=float, default=8,
                             help="memory per notebook, 0 = none (default 8): the whole notebook where cgroups can be "
                                  "written, else each process's address space")
    autograde_p.add_argument("--smoke", action="store_true",
                             help="run the notebooks with IQLKIT_SMOKE=1 (short loops)")
    autograde_p.set_defaults(run=assign_autograde)
    return top


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m iqlkit`."""
    from iqlkit.experiments.backends import RayMissing
    from iqlkit.session import start

    args = parser().parse_args(argv)
    if getattr(args, "dataset", None) is not None and args.preset is None and "datasets" not in args:
        args.preset = default_preset(args.dataset)  # the one place the preset is chosen (table: per dataset)
    start()  # one torch thread (IQLKIT_THREADS for more), the known-harmless warnings silenced
    try:
        args.run(args)
    except (ConnectionError, RayMissing) as e:  # an unreachable --address, or Ray not installed: what to do
        raise SystemExit(f"error: {e}") from None
