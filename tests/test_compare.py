import numpy as np
import pytest

from iqlkit import datagen
from iqlkit.compare import compare_methods, success_table
from iqlkit.data import load_minari
from iqlkit.iql import IQLConfig


@pytest.fixture(scope="module")
def umaze_data(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield load_minari(datagen.pointmaze("umaze", "stitch", n_steps=2000, seed=0), terminate_on_success=True,
                          verbose=False)


def test_compare_runs_every_method_and_seed(umaze_data):
    cfg = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32)
    runs = compare_methods(umaze_data, cfg, "umaze", methods=("iql", "bc"), seeds=(0, 1), steps=40,
                           eval_episodes=2, n_evals=2, workers=1)
    assert [(r.method, r.seed) for r in runs] == [("iql", 0), ("iql", 1), ("bc", 0), ("bc", 1)]
    assert [row["step"] for row in runs[0].rows] == [20, 40]
    table = success_table(runs)
    assert set(table) == {"iql", "bc"} and table["bc"].shape == (2,)
    assert np.all((table["iql"] >= 0) & (table["iql"] <= 1))


def test_parallel_workers_give_the_same_runs(umaze_data):
    cfg = IQLConfig.preset("pointmaze", hidden=(16, 16), batch_size=32)
    kw = dict(methods=("one-step", "bc"), seeds=(0, 1), steps=30, eval_episodes=2, n_evals=1)
    serial = compare_methods(umaze_data, cfg, "umaze", workers=1, **kw)
    parallel = compare_methods(umaze_data, cfg, "umaze", workers=2, **kw)
    assert [r.rows for r in serial] == [r.rows for r in parallel]
