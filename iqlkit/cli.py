"""Command line: `python -m iqlkit train` (the kit's main job), `sweep`, `make-data`, `bench` and `assign`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

BUILTIN = "iqlkit/pointmaze-medium/stitch-v0"


def default_preset(dataset_id: str) -> str:
    """'antmaze' for AntMaze ids, 'pointmaze' for the kit's own mazes, else 'locomotion'."""
    if "antmaze" in dataset_id:
        return "antmaze"
    return "pointmaze" if "pointmaze" in dataset_id else "locomotion"


def ensure_builtin(dataset_id: str, n_steps: int) -> None:
    """Generate one of the kit's own datasets (PointMaze, recorded AntMaze) if it is not on disk yet."""
    import minari

    from iqlkit import antmaze, datagen

    if not dataset_id.startswith("iqlkit/") or dataset_id in minari.list_local_datasets():
        return
    print(f"generating {dataset_id} ({n_steps:,} steps) ...")
    if dataset_id.startswith("iqlkit/antmaze-"):
        antmaze.record(antmaze.dataset_name(dataset_id), n_steps=n_steps, dataset_id=dataset_id)
    else:
        task, mode = dataset_id.removeprefix("iqlkit/pointmaze-").removesuffix("-v0").split("/")
        datagen.pointmaze(task, mode, n_steps=n_steps, dataset_id=dataset_id)


def load_for_training(args: argparse.Namespace) -> tuple:
    """What `train` and `sweep` share: (dataset, preset name, transitions, evaluate(act, episodes) -> scores)."""
    from functools import partial

    from iqlkit.antmaze import eval_env_factory
    from iqlkit.data import flatten_observations, load_minari, open_minari
    from iqlkit.evaluate import evaluate, reference_scores

    ensure_builtin(args.dataset, args.data_steps)
    dataset = open_minari(args.dataset)
    preset = args.preset or default_preset(args.dataset)
    data = load_minari(dataset, goal_conditioned=not args.no_goal, terminate_on_success=not args.keep_tail)
    make_env = (eval_env_factory(args.dataset, dataset, minari_eval=args.minari_eval) if "antmaze" in args.dataset
                else partial(dataset.recover_environment, eval_env=True))
    references = reference_scores(dataset)
    obs_fn = partial(flatten_observations, goal_conditioned=not args.no_goal)

    def evaluate_act(act, episodes: int = args.eval_episodes) -> dict[str, float]:
        return evaluate(act, make_env, n_episodes=episodes, n_envs=args.eval_envs, seed=args.seed, obs_fn=obs_fn,
                        references=references, vector=args.vector).summary()

    return dataset, preset, data, evaluate_act


def train(args: argparse.Namespace) -> dict:
    """Load (or make) the dataset, train IQL with evaluation, save the run, print the final scores."""
    from iqlkit.iql import IQLConfig
    from iqlkit.train import fit, resolve_device

    dataset, preset, data, evaluate_act = load_for_training(args)
    overrides = {k: v for k, v in (("tau", args.tau), ("beta", args.beta)) if v is not None}
    if args.steps:
        overrides["max_steps"] = args.steps
    config = IQLConfig.preset(preset, **overrides)
    out = Path(args.out) / args.dataset.replace("/", "_") / f"{preset}-seed{args.seed}"

    def eval_fn(agent, episodes: int = args.eval_episodes) -> dict[str, float]:
        return evaluate_act(agent.act, episodes)

    print(f"training IQL ({preset}: tau={config.tau}, beta={config.beta}) for {config.max_steps:,} steps on "
          f"{resolve_device(args.device)}; run folder {out}")
    agent = fit(data, config, seed=args.seed, device=args.device, eval_fn=eval_fn,
                eval_every=args.eval_every, log_dir=out, fast=args.fast, compile=args.compile)
    final = eval_fn(agent, args.final_episodes)
    (out / "final.json").write_text(json.dumps({"dataset": args.dataset, "preset": preset, "seed": args.seed,
                                                "steps": agent.steps, **final}, indent=2))
    print(f"success rate over {args.final_episodes} episodes: {final['success_rate']:.2f}" +
          (f", normalised score {final['normalized_score']:.1f}" if "normalized_score" in final else ""))
    return final


def make_data(args: argparse.Namespace) -> None:
    """Write one of the kit's datasets: PointMaze (umaze, medium) or a recorded AntMaze (antmaze-umaze, ...)."""
    from iqlkit import antmaze, datagen

    if args.task.startswith("antmaze-"):
        ds = antmaze.record(args.task.removeprefix("antmaze-"), n_steps=args.data_steps, seed=args.seed)
    else:
        ds = datagen.pointmaze(args.task, args.mode, n_steps=args.data_steps, seed=args.seed)
    print(f"wrote {ds.total_episodes} episodes, {ds.total_steps:,} steps")


def sweep(args: argparse.Namespace) -> None:
    """The reproducibility report's ablation (Table 3) on one dataset, every value x seed, resumable; prints it."""
    import matplotlib.pyplot as plt

    from iqlkit.iql import IQLConfig
    from iqlkit.plots.sweep import ablation_panels
    from iqlkit.sweep import REPORT_GRID, ablation, ablation_table, format_table, sweep as run_sweep

    _, preset, data, evaluate_act = load_for_training(args)
    base = IQLConfig.preset(preset, **({"max_steps": args.steps} if args.steps else {}))
    unknown = set(args.axes) - set(REPORT_GRID)
    if unknown:
        raise SystemExit(f"unknown axes {sorted(unknown)}; choose from {sorted(REPORT_GRID)}")
    entries = ablation(base, {axis: REPORT_GRID[axis] for axis in args.axes})
    out = Path(args.out) / "sweeps" / args.dataset.replace("/", "_")
    rows = run_sweep(data, [c for _, _, c in entries], args.seeds, out, evaluate_act, n_evals=args.n_evals,
                     device=args.device, max_agents=args.max_agents)
    metric = "normalized_score" if "normalized_score" in rows[-1] else "success_rate"
    table = format_table(ablation_table({args.dataset: rows}, entries, metric, 1.0 if metric == "normalized_score"
                                        else 100.0))
    (out / "table.md").write_text(table + "\n")
    fig = ablation_panels(rows, entries, base, metric, 1.0 if metric == "normalized_score" else 100.0)
    fig.savefig(out / "ablation.png", dpi=100)
    plt.close(fig)
    print(table)
    print(f"wrote {out / 'results.csv'}, {out / 'table.md'} and {out / 'ablation.png'}")


def bench(args: argparse.Namespace) -> None:
    """Print updates/s of the training paths on this machine."""
    from iqlkit.bench import run

    run(args.device, args.steps, tuple(args.hidden), args.batch_size, args.seeds, compile=args.compile,
        eval_episodes=args.eval_episodes, eval_envs=args.eval_envs)


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
                        memory_gb=args.memory_gb or None)
    print(summary(results))
    print(f"wrote {args.out} and the executed notebooks in {Path(args.out).with_suffix('')}/")


def parser() -> argparse.ArgumentParser:
    """The `python -m iqlkit` argument parser."""
    p = argparse.ArgumentParser(prog="python -m iqlkit", description="Implicit Q-Learning, from the course kit.")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", default=BUILTIN, help=f"Minari dataset id (default {BUILTIN}); e.g. "
                        "D4RL/antmaze/umaze-v1 after `minari download D4RL/antmaze/umaze-v1`")
    common.add_argument("--preset", choices=["antmaze", "locomotion", "kitchen", "adroit", "pointmaze"],
                        help="hyperparameters (default: from the dataset id)")
    common.add_argument("--steps", type=int,
                        help="gradient updates (default: the preset's max_steps; authors: 1,000,000)")
    common.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    common.add_argument("--out", default="runs", help="output folder")
    common.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation during training")
    common.add_argument("--eval-envs", type=int, default=10, help="environments stepped together")
    common.add_argument("--vector", choices=["sync", "async"], default="sync", help="async: one process per env")
    common.add_argument("--no-goal", action="store_true", help="drop desired_goal from dict observations")
    common.add_argument("--keep-tail", action="store_true",
                        help="keep the raw continuing data (default: terminal at the first success, tail dropped)")
    common.add_argument("--minari-eval", action="store_true",
                        help="AntMaze: evaluate in Minari's own eval env (its umaze maze is flipped: Minari #304)")
    common.add_argument("--data-steps", type=int, default=200_000, help="size of a generated built-in dataset")
    t = sub.add_parser("train", parents=[common],
                       help="train IQL on a Minari dataset (default: the kit's stitching PointMaze)",
                       description="Train IQL on a local Minari dataset and report the success rate. With no "
                                   "arguments: the kit's own stitching PointMaze dataset, generated if missing. "
                                   "Writes log.csv, checkpoint.pt, curves.png and final.json under --out.")
    t.add_argument("--tau", type=float, help="override the preset's expectile")
    t.add_argument("--beta", type=float, help="override the preset's AWR inverse temperature")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-every", type=int, default=5_000)
    t.add_argument("--final-episodes", type=int, default=100, help="episodes of the final evaluation")
    t.add_argument("--fast", action=argparse.BooleanOptionalAction, default=None,
                   help="the fast path (same updates; CUDA graphs on a GPU); default: on with CUDA, off on a CPU")
    t.add_argument("--compile", action="store_true", help="fast path: also torch.compile the loss functions")
    t.set_defaults(run=train)
    w = sub.add_parser("sweep", parents=[common], help="the reproducibility report's ablation (Table 3) on one dataset",
                       description="One hyperparameter at a time around the preset, every value x seed, trained in "
                                   "stacks where the shapes allow; resumable: run it again after an interruption. "
                                   "Writes results.csv, table.md and ablation.png in OUT/sweeps/<dataset>/.")
    w.add_argument("--axes", nargs="+", default=["tau", "beta", "dropout", "batch_size", "depth", "lr"],
                   help="hyperparameters to vary (default: all six of the report's Table 3)")
    w.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    w.add_argument("--n-evals", type=int, default=3, help="evaluations along each run (the last one is the score)")
    w.add_argument("--max-agents", type=int, default=48, help="most agents trained in one stack")
    w.set_defaults(run=sweep, seed=0)
    m = sub.add_parser("make-data", help="generate one of the kit's PointMaze datasets")
    m.add_argument("--task", choices=["umaze", "medium", "antmaze-umaze", "antmaze-medium-play", "antmaze-large-play"],
                   default="medium", help="PointMaze task, or an AntMaze maze to record (plumbing only)")
    m.add_argument("--mode", choices=["navigate", "stitch"], default="stitch")
    m.add_argument("--data-steps", type=int, default=200_000)
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(run=make_data)
    b = sub.add_parser("bench", help="updates/s of IQL on this machine (AntMaze-sized synthetic data)")
    b.add_argument("--device", default="auto")
    b.add_argument("--steps", type=int, default=300, help="timed updates per path")
    b.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    b.add_argument("--batch-size", type=int, default=256)
    b.add_argument("--seeds", type=int, default=16, help="agents trained at once on the stacked path")
    b.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="add rows for the fast path with torch.compile (default: on CUDA only; minutes of compiling)")
    b.add_argument("--eval-episodes", type=int,
                   help="also time this many AntMaze evaluation episodes (default: 100 on CUDA, 0 on a CPU)")
    b.add_argument("--eval-envs", type=int, help="env processes for that (default: one per core)")
    b.set_defaults(run=bench)
    a = sub.add_parser("assign", help="classroom assignments: release student notebooks, autograde submissions")
    asub = a.add_subparsers(dest="action", required=True)
    r = asub.add_parser("release", help="student notebooks from the sources (solutions and hidden tests removed)")
    r.add_argument("--source", default="assignments/source", help="folder of source notebooks, or one notebook")
    r.add_argument("--out", default="assignments/release", help="folder for the student notebooks")
    r.set_defaults(run=assign_release)
    g = asub.add_parser("autograde", help="grade SUBMISSIONS/<student>/<assignment>.ipynb into a CSV")
    g.add_argument("submissions", help="folder with one subfolder per student holding <assignment>.ipynb")
    g.add_argument("--source", default="assignments/source", help="folder of source notebooks (the tests)")
    g.add_argument("--out", default="grades.csv", help="the CSV; executed notebooks go to the folder of that name")
    g.add_argument("--timeout", type=float, default=600, help="seconds per notebook (default 600)")
    g.add_argument("--cell-timeout", type=float, help="seconds per cell (default: --timeout)")
    g.add_argument("--workers", type=int, default=2, help="notebooks run at once (default 2)")
    g.add_argument("--memory-gb", type=float, default=8, help="address-space limit per notebook, 0 = none (default 8)")
    g.add_argument("--smoke", action="store_true", help="run the notebooks with IQLKIT_SMOKE=1 (short loops)")
    g.set_defaults(run=assign_autograde)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m iqlkit`."""
    args = parser().parse_args(argv)
    args.run(args)
