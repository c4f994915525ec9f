from functools import partial
from pathlib import Path

import numpy as np
import pytest

from iqlkit.engine.iql import IQLConfig
from iqlkit.envs import datagen
from iqlkit.envs.data import load_minari
from iqlkit.envs.evaluate import EvalResult
from iqlkit.envs.pointmaze import TASKS, make_env
from iqlkit.experiments import compare
from iqlkit.experiments.compare import compare_methods, env_factory, success_table


@pytest.fixture(scope="module")
def umaze_data(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield load_minari(datagen.pointmaze("umaze", "stitch", n_steps=2000, seed=0), terminate_on_success=True,
                          verbose=False)


def test_compare_runs_every_method_and_seed(umaze_data):
    cfg = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32)
    runs = compare_methods(umaze_data, cfg, "umaze", methods=("iql", "bc", "top10-bc"), seeds=(0, 1), steps=40,
                           eval_episodes=2, n_evals=2, workers=1)
    assert [(r.method, r.seed) for r in runs] == [("iql", 0), ("iql", 1), ("bc", 0), ("bc", 1), ("top10-bc", 0),
                                                  ("top10-bc", 1)]
    assert [row["step"] for row in runs[0].rows] == [20, 40]
    table = success_table(runs)
    assert set(table) == {"iql", "bc", "top10-bc"} and table["bc"].shape == (2,)
    assert np.all((table["iql"] >= 0) & (table["iql"] <= 1))


def test_stacked_methods_score_as_each_method_trained_alone(umaze_data, monkeypatch):
    """IQL, one-step and BC train as one stack; each Run must be the agent of its own method and seed. The fake
    evaluation scores an agent by its mean action at one state, which tells the methods' actors apart."""
    obs = umaze_data.observations[:1].numpy()
    monkeypatch.setattr(compare, "evaluate", lambda act, make, **kw: EvalResult(
        np.zeros(1), np.array([float(act(obs)[0, 0])]), None))
    cfg = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32, actor_lr=1e-2)
    kw = dict(seeds=(0, 1), steps=60, eval_episodes=1, n_evals=1, workers=1)
    together = compare_methods(umaze_data, cfg, "umaze", methods=("iql", "one-step", "bc"), **kw)
    alone = [run for m in ("iql", "one-step", "bc") for run in compare_methods(umaze_data, cfg, "umaze", methods=(m,),
                                                                            **kw)]
    assert [(r.method, r.seed) for r in together] == [(r.method, r.seed) for r in alone]
    got, expected = (np.array([r.success_rate for r in runs]) for runs in (together, alone))
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert np.abs(expected[:2] - expected[4:]).min() > 1e-2  # IQL's actors differ from BC's: a swap would show


def test_parallel_workers_give_the_same_runs(umaze_data):
    cfg = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32)
    kw = dict(methods=("bc", "top10-bc"), seeds=(0, 1), steps=30, eval_episodes=2, n_evals=1)
    serial = compare_methods(umaze_data, cfg, "umaze", workers=1, **kw)
    parallel = compare_methods(umaze_data, cfg, "umaze", workers=2, **kw)
    assert [r.rows for r in serial] == [r.rows for r in parallel]


def test_the_evaluation_env_is_a_pointmaze_task_or_any_factory():
    factory = partial(make_env, TASKS["umaze"], True)
    assert env_factory(factory) is factory
    assert env_factory("umaze").args == factory.args
    with pytest.raises(ValueError, match="unknown PointMaze task 'antmaze'.*env factory"):
        env_factory("antmaze")


def test_results_written_as_csv_read_back_as_the_same_runs(tmp_path):
    import gzip

    runs = [compare.Run("iql", 0, 0.5, [{"step": 10, "success_rate": 0.25}, {"step": 20, "success_rate": 0.5}]),
            compare.Run("bc", 2, 0.0, [{"step": 10, "success_rate": 0.125}, {"step": 20, "success_rate": 0.0}])]
    path = compare.write_results(runs, tmp_path / "results.csv")
    assert compare.read_results(path) == runs
    (tmp_path / "results.csv.gz").write_bytes(gzip.compress(path.read_bytes()))
    assert compare.read_results(tmp_path / "results.csv.gz") == runs


RECORDED = sorted((Path(compare.__file__).parents[1] / "recorded").glob("*_compare.csv"))


@pytest.mark.parametrize("path", RECORDED, ids=[p.name for p in RECORDED])
def test_recorded_comparisons_hold_every_method_and_seed_at_every_evaluation(path):
    """A recorded comparison the notebooks show: each method with the same seeds (3 or more), every run evaluated at
    the same steps, scores in range; a locomotion one carries the normalised score."""
    runs = compare.read_results(path)
    methods = {r.method for r in runs}
    seeds = {m: sorted(r.seed for r in runs if r.method == m) for m in methods}
    assert len(methods) >= 3 and len({tuple(s) for s in seeds.values()}) == 1 and len(next(iter(seeds.values()))) >= 3
    steps = {tuple(row["step"] for row in r.rows) for r in runs}
    assert len(steps) == 1 and len(next(iter(steps))) >= 2
    for run in runs:
        for row in run.rows:
            assert 0.0 <= row["success_rate"] <= 1.0
            if "hopper" in path.name:
                assert np.isfinite(row["normalized_score"])
