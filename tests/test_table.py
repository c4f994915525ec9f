"""The paper's table over several datasets (iqlkit.experiments.table, `python -m iqlkit table`): Table 1's rows and
numbers, the layout on tiny runs, a table started again that trains nothing new, the command line (issue 24)."""
import csv
import importlib.util
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from iqlkit.engine.iql import IQLConfig
from iqlkit.envs import datagen
from iqlkit.envs.antmaze import PAPER_SCORES
from iqlkit.envs.data import load_minari
from iqlkit.envs.paper import TABLE1
from iqlkit.experiments import table as table_module
from iqlkit.experiments.backends import Backend
from iqlkit.experiments.table import Benchmark, paper_row, paper_table, read_rows

CONFIG = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32, max_steps=20)


def test_dataset_ids_find_their_rows_of_the_paper():
    assert {d: paper_row(d) for d in ("D4RL/antmaze/umaze-v1", "D4RL/antmaze/medium-diverse-v1",
                                      "iqlkit/antmaze-umaze-play-v0", "iqlkit/antmaze-large-play-v0",
                                      "mujoco/hopper/medium-replay-v0", "iqlkit/walker2d-medium-expert-v0",
                                      "iqlkit/halfcheetah-medium-v0", "iqlkit/pointmaze-umaze/stitch-v0")} == {
        "D4RL/antmaze/umaze-v1": "antmaze-umaze", "D4RL/antmaze/medium-diverse-v1": "antmaze-medium-diverse",
        "iqlkit/antmaze-umaze-play-v0": "antmaze-umaze", "iqlkit/antmaze-large-play-v0": "antmaze-large-play",
        "mujoco/hopper/medium-replay-v0": "hopper-medium-replay",
        "iqlkit/walker2d-medium-expert-v0": "walker2d-medium-expert",
        "iqlkit/halfcheetah-medium-v0": "halfcheetah-medium", "iqlkit/pointmaze-umaze/stitch-v0": None}
    assert set(TABLE1) == {paper_row(f"D4RL/antmaze/{m}-v1") for m in PAPER_SCORES} | {
        f"{env}-{mode}" for env in ("halfcheetah", "hopper", "walker2d") for mode in ("medium", "medium-replay",
                                                                                        "medium-expert")}


@pytest.fixture(scope="module")
def umaze(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield load_minari(datagen.pointmaze("umaze", "stitch", n_steps=2000, seed=0), terminate_on_success=True,
                          verbose=False)


def test_the_table_has_a_row_per_dataset_and_a_column_per_method(umaze, tmp_path, monkeypatch):
    # the umaze data twice: as itself (no row in the paper) and labelled as AntMaze umaze with reference returns,
    # which gives it the paper's numbers and a normalised score
    benchmarks = [Benchmark("iqlkit/pointmaze-umaze/stitch-v0", umaze, CONFIG, "umaze"),
                  Benchmark("D4RL/antmaze/umaze-v1", umaze, replace(CONFIG, max_steps=30), "umaze",
                            references=(0.0, 200.0))]
    kw = dict(methods=("iql", "bc"), seeds=(0, 1), eval_episodes=2, n_evals=1, n_envs=2, backend=Backend(workers=1),
              progress=False)
    rows = paper_table(benchmarks, out=tmp_path, **kw)
    assert rows == read_rows(tmp_path)
    assert [(r["dataset"], r["method"], r["seed"], r["step"]) for r in rows] == [
        (b.name, m, s, b.config.max_steps) for b in benchmarks for m in ("iql", "bc") for s in (0, 1)]
    lines = (tmp_path / "table.md").read_text().splitlines()
    assert lines[:2] == ["| dataset | iql | bc |", "|---|---|---|"]
    for line, b in zip(lines[2:4], benchmarks):
        metric, scale = ("normalized_score", 1.0) if b.references else ("success_rate", 100.0)
        cells = []
        for m in ("iql", "bc"):
            scores = np.array([r[metric] for r in rows if r["dataset"] == b.name and r["method"] == m]) * scale
            paper = f" [paper {TABLE1['antmaze-umaze'][m]:.1f}]" if b.references else ""
            cells.append(f"{scores.mean():.1f} ± {scores.std():.1f} (n=2){paper}")
        label = b.name + (" (antmaze-umaze)" if b.references else "")
        assert line == f"| {label} | " + " | ".join(cells) + " |"
    assert "[paper 87.5]" in lines[3] and "[paper 54.6]" in lines[3]
    table_csv = list(csv.DictReader((tmp_path / "table.csv").open()))
    assert [(r["dataset"], r["metric"], r["iql_paper"], r["bc_n"]) for r in table_csv] == [
        ("iqlkit/pointmaze-umaze/stitch-v0", "success_rate", "", "2"),
        ("D4RL/antmaze/umaze-v1", "normalized_score", "87.5", "2")]

    trained = []
    monkeypatch.setattr(table_module, "run_methods", lambda *args: trained.append(args[0]))
    before = (tmp_path / "results.csv").read_text(), (tmp_path / "table.md").read_text()
    assert paper_table(benchmarks, out=tmp_path, **kw) == rows
    assert trained == [] and ((tmp_path / "results.csv").read_text(), (tmp_path / "table.md").read_text()) == before


def test_the_table_command_writes_the_table_and_tensorboard_events(tmp_path):
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    env = {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    subprocess.run([sys.executable, "-m", "iqlkit", "table", "--datasets", "iqlkit/pointmaze-umaze/stitch-v0",
                    "--methods", "iql", "bc", "--seeds", "0", "--steps", "20", "--hidden", "16", "16",
                    "--data-steps", "2000", "--eval-episodes", "2", "--eval-envs", "2", "--n-evals", "1",
                    "--workers", "1", "--out", str(tmp_path / "runs"),
                    "--tensorboard" if tensorboard else "--no-tensorboard"], env=env, check=True, capture_output=True)
    table = (tmp_path / "runs" / "table" / "table.md").read_text()
    assert table.startswith("| dataset | iql | bc |\n|---|---|---|\n| iqlkit/pointmaze-umaze/stitch-v0 | ")
    assert len(list(csv.DictReader((tmp_path / "runs" / "table" / "results.csv").open()))) == 2
    if tensorboard:  # one event file per run, beside the stack's log.csv
        runs = sorted(p.name for p in (tmp_path / "runs" / "table" / "iqlkit_pointmaze-umaze_stitch-v0" / "iql+bc" /
                                       "tensorboard").iterdir() if list(p.glob("events.out.tfevents.*")))
        assert runs == ["agent0-seed0-tau0.7-beta10", "agent1-seed0-tau0.7-beta0"]
