"""A `python -m iqlkit compare` killed mid-run resumes, with no evaluation row lost or written twice (issue 22)."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATASET = "iqlkit/pointmaze-umaze/stitch-v0"


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "iqlkit", "compare", "--dataset", DATASET, "--data-steps", "3000", "--steps", "1500",
            "--n-evals", "3", "--seeds", "0", "1", "--methods", "iql", "one-step", "bc", "--hidden", "16", "16",
            "--eval-episodes", "2", "--eval-envs", "2", "--workers", "1", "--device", "cpu", "--out", str(out)]


def results(out: Path) -> list[dict]:
    [path] = out.glob("compare/*/results.csv")
    return list(csv.DictReader(path.open()))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The kit's umaze data made once (the first compare run would make it), in a folder of this test's own."""
    minari = tmp_path_factory.mktemp("minari")
    env = {**os.environ, "MINARI_DATASETS_PATH": str(minari), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "iqlkit", "make-data", "--task", "umaze", "--mode", "stitch",
                    "--data-steps", "3000"], env=env, check=True, capture_output=True)
    return env


def test_a_compare_killed_after_its_first_checkpoint_resumes_to_the_same_rows(env, tmp_path):
    subprocess.run(command(tmp_path / "straight"), env=env, check=True, capture_output=True)
    straight = results(tmp_path / "straight")
    assert len(straight) == 3 * 2 * 3  # methods x seeds x evaluations

    killed = subprocess.Popen(command(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "killed").glob("compare/*/*/checkpoint.pt")) and time.monotonic() < deadline:
        assert killed.poll() is None, "the run ended before its first checkpoint: make it longer"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the run and its workers, mid-training, without a chance to clean up
    killed.wait()
    assert not list((tmp_path / "killed").glob("compare/*/results.csv")), "killed before its results were written"
    [log] = (tmp_path / "killed").glob("compare/*/*/log.csv")
    logged = [r["step"] for r in csv.DictReader(log.open())]
    assert logged and logged[-1] != "1500", "killed mid-run"

    subprocess.run(command(tmp_path / "killed"), env=env, check=True, capture_output=True)
    resumed = results(tmp_path / "killed")
    assert resumed == straight  # every row, once, with the same scores
    keys = [(r["method"], r["seed"], r["step"]) for r in resumed]
    assert len(keys) == len(set(keys))
