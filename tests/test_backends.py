"""Where a sweep's groups run (iqlkit.experiments.backends), what needs no Ray: the default commands never import it,
its absence names the extra, bad input is refused before any task starts, the command line's evaluation reaches
worker processes, a run whose NaN guard fires is marked failed while the others go on, a second sweep on the same
folder refuses, every run has its TensorBoard curves, and a grading node without bubblewrap refuses unless allowed
explicitly (issue 24)."""
import csv
import pickle
import subprocess
import sys
import threading
from dataclasses import replace

import nbformat
import numpy as np
import pytest

from iqlkit.cli import load_for_training, main, parser
from iqlkit.engine import train as train_module
from iqlkit.engine.iql import IQLConfig
from iqlkit.envs.data import Transitions
from iqlkit.experiments.backends import Backend, RayMissing
from iqlkit.experiments.sweep import config_id, sweep
from tests.test_sweep import BASE, actions_at
from tests.test_train import chain_data


def test_the_default_commands_never_import_ray():
    code = ("import sys; import iqlkit, iqlkit.cli, iqlkit.experiments.sweep, iqlkit.experiments.table, "
            "iqlkit.assign.grade; iqlkit.cli.parser().parse_args(['sweep']); print(sorted(m for m in sys.modules "
            "if m == 'ray' or m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_without_ray_the_ray_backend_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    with pytest.raises(RayMissing, match=r"pip install -e '\.\[ray\]'"):
        with Backend("ray").session():
            pass
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    with pytest.raises(SystemExit, match=r"error: the Ray backend needs Ray: pip install -e '\.\[ray\]'"):
        main(["sweep", "--backend", "ray", "--out", str(tmp_path)])
    assert not (tmp_path / "minari").exists(), "the data was made before the backend was checked"


def test_bad_input_is_refused_before_any_task_starts(tmp_path):
    with pytest.raises(ValueError, match="an address is for the Ray backend"):
        Backend("local", address="auto")
    with pytest.raises(ValueError, match="unknown backend 'slurm'"):
        Backend("slurm")
    unreachable = Backend("ray", address="127.0.0.1:9")  # never contacted: the options fail first
    with pytest.raises(ValueError, match="log_every must be >= 1; got -1"):
        sweep(chain_data(100), [BASE], (0,), tmp_path, actions_at, log_every=-1, backend=unreachable, progress=False)
    with pytest.raises(ValueError, match=r"distinct seeds; got .* and \[0, 0\]"):
        sweep(chain_data(100), [BASE], (0, 0), tmp_path, actions_at, backend=unreachable, progress=False)
    assert not (tmp_path / "groups").exists() and not (tmp_path / "results.csv").exists()


def test_the_command_lines_evaluation_reaches_worker_processes(tmp_path, monkeypatch):
    """`sweep --workers 2` ships the evaluation to its process pool, so it must pickle (a closure did not)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    args = parser().parse_args(["sweep", "--dataset", "iqlkit/pointmaze-umaze/stitch-v0", "--data-steps", "2000",
                                "--eval-episodes", "2", "--eval-envs", "2"])
    _, _, evaluate_act = load_for_training(args)

    def act(obs):
        return np.zeros((len(obs), 2), np.float32)

    assert pickle.loads(pickle.dumps(evaluate_act))(act) == evaluate_act(act)


def huge_reward_data(n: int = 300) -> Transitions:
    """tests.test_train's chain with rewards of 1e37: Q overflows unless the config rescales the rewards
    (reward='return_range')."""
    rng = np.random.default_rng(0)
    obs, act = rng.uniform(-1, 1, size=(n, 1)), rng.uniform(-1, 1, size=(n, 1))
    nxt = np.clip(obs + 0.2 * act, -1, 1)
    return Transitions.from_arrays(obs, act, (nxt[:, 0] > 0.5) * 1e37, nxt, np.zeros(n),
                                   (np.arange(n) % 20 == 19).astype(float))


def test_a_run_whose_nan_guard_fires_is_marked_failed_and_the_others_go_on(tmp_path):
    good, bad = replace(BASE, reward="return_range"), BASE  # two stacks: the reward choice differs
    with pytest.warns(RuntimeWarning, match=r"2 of 4 runs failed"):
        rows = sweep(huge_reward_data(), [bad, good], (0, 1), tmp_path, actions_at, n_evals=1,
                     backend=Backend(workers=2), progress=False)
    assert {(r["config"], r["seed"]) for r in rows} == {(config_id(good), 0), (config_id(good), 1)}
    failed = list(csv.DictReader((tmp_path / "failed.csv").open()))
    assert [(r["config"], r["seed"]) for r in failed] == [(config_id(bad), "0"), (config_id(bad), "1")]
    assert all(r["reason"].startswith("NonFiniteError: q_loss") and "non-finite" in r["reason"] for r in failed)


def test_when_the_nan_guard_names_an_agent_the_rest_of_its_stack_goes_on(tmp_path, monkeypatch):
    real = train_module._check_finite

    def guard(learner, names, values, folder):  # agent tau=0.9's v_loss turns NaN; the real guard sees it
        taus = [c.tau for c in learner.configs]
        if 0.9 in taus:
            values[taus.index(0.9)][0] = float("nan")
        real(learner, names, values, folder)

    monkeypatch.setattr(train_module, "_check_finite", guard)
    configs = [BASE, replace(BASE, tau=0.9), replace(BASE, beta=1.0)]  # one stack of three
    with pytest.warns(RuntimeWarning, match=r"1 of 3 runs failed"):
        rows = sweep(chain_data(200), configs, (0,), tmp_path / "sweep", actions_at, n_evals=2, progress=False)
    [failed] = csv.DictReader((tmp_path / "sweep" / "failed.csv").open())
    assert (failed["config"], failed["seed"]) == (config_id(configs[1]), "0")
    assert failed["reason"].startswith("NonFiniteError: v_loss of agent 1 (seed 0, tau 0.9")
    healthy = sweep(chain_data(200), [configs[0], configs[2]], (0,), tmp_path / "healthy", actions_at, n_evals=2,
                    progress=False)
    assert rows == healthy  # the other two trained on, as a stack of their own


def test_a_second_sweep_on_the_same_folder_refuses(tmp_path):
    release, started = threading.Event(), threading.Event()

    def held(act):  # the first sweep's evaluation waits until the second one has been refused
        started.set()
        release.wait(60)
        return actions_at(act)

    first = threading.Thread(target=sweep, args=(chain_data(100), [BASE], (0,), tmp_path, held),
                             kwargs={"n_evals": 1, "progress": False})
    first.start()
    try:
        assert started.wait(60)
        with pytest.raises(RuntimeError, match=r"another run \(pid \d+\) is using"):
            sweep(chain_data(100), [IQLConfig(hidden=(8,), max_steps=10)], (1,), tmp_path, actions_at, progress=False)
    finally:
        release.set()
        first.join(60)
    assert not first.is_alive()
    assert len(list(csv.DictReader((tmp_path / "results.csv").open()))) == 1  # the first one finished as usual


def test_every_run_of_a_sweep_has_its_tensorboard_curves(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep(chain_data(100), [BASE, replace(BASE, tau=0.9)], (0,), tmp_path, actions_at, n_evals=2, log_every=10,
          tensorboard=True, progress=False)
    [group] = tmp_path.glob("groups/*")
    runs = sorted((group / "tensorboard").iterdir())
    assert [p.name for p in runs] == ["agent0-seed0-tau0.7-beta3", "agent1-seed0-tau0.9-beta3"]
    logged = list(csv.DictReader((group / "log.csv").open()))
    for k, run in enumerate(runs):
        events = EventAccumulator(str(run)).Reload()
        assert {"v_loss", "q_loss", "actor_loss", "q_mean", "v_mean", "a0"} <= set(events.Tags()["scalars"])
        mine = [r for r in logged if r["agent"] == str(k)]
        curve = events.Scalars("q_mean")
        assert [e.step for e in curve] == [int(r["step"]) for r in mine] == [10, 20, 30, 40]
        assert [e.value for e in curve] == pytest.approx([float(r["q_mean"]) for r in mine])  # log.csv's numbers


def test_a_node_without_bubblewrap_grades_only_when_allowed_explicitly(monkeypatch, tmp_path):
    import shutil

    from iqlkit.assign.grade import Unsandboxed, _load_sources, grade_on_node
    from iqlkit.assign.release import student_version
    from tests.test_autograde_attacks import SOURCE, read

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else which(name, *a, **k))
    source, stub = _load_sources(SOURCE)[0], nbformat.writes(student_version(read(SOURCE))).encode()
    job = ("stub", source, stub, 0, (tmp_path,))  # what a Ray task of autograde --backend ray gets
    settings = {"timeout_s": 120, "cell_timeout_s": 60, "memory_gb": 2}
    with pytest.warns(RuntimeWarning, match="without a sandbox"), pytest.raises(
            Unsandboxed, match=r"refuses to grade: bubblewrap is missing .* IQLKIT_SANDBOX=off"):
        grade_on_node(*job, {"IQLKIT_SMOKE": "1"}, settings)
    result, feedback = grade_on_node(*job, {"IQLKIT_SMOKE": "1", "IQLKIT_SANDBOX": "off"}, settings)
    assert (result.student, result.total, result.max_total) == ("stub", 0, 8) and result.status.startswith("ok")
    assert nbformat.reads(feedback, as_version=4).cells
