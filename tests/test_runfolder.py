"""Crash safety of a run folder: kills during log and checkpoint writes (simulated, not timed), corrupt and hostile
checkpoints, and one run per folder."""
import csv

import pytest
import torch

from iqlkit.engine import runfolder
from iqlkit.engine.iql import IQLConfig
from iqlkit.engine.runfolder import CheckpointError, RunFolder, read_checkpoint
from iqlkit.engine.train import fit
from tests.test_train import chain_data, params

CFG = IQLConfig(hidden=(16, 16), batch_size=32, max_steps=60)
RUN = dict(steps=60, seed=3, eval_every=20, log_every=10, progress=False)


class Killed(BaseException):
    """What SIGKILL does to the process at that line (BaseException: no `except Exception` catches it)."""


def steps_logged(folder) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader((folder / "log.csv").open())]


@pytest.fixture(scope="module")
def straight():
    return fit(chain_data(), CFG, **RUN)


def test_a_log_line_torn_by_a_kill_is_dropped_and_the_run_resumes(tmp_path, straight):
    fit(chain_data(), CFG, **{**RUN, "steps": 40}, log_dir=tmp_path)
    log = tmp_path / "log.csv"
    log.write_text(log.read_text() + "50,0.0012,-0.4")  # the kill hit in the middle of writing step 50's row
    assert [r["step"] for r in RunFolder(tmp_path).read_log()] == [10, 20, 30, 40]
    resumed = fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)
    assert steps_logged(tmp_path) == [10, 20, 30, 40, 50, 60]


def test_a_kill_between_log_and_checkpoint_loses_no_row_and_duplicates_none(tmp_path, monkeypatch, straight):
    save = RunFolder.save

    def killed_at_40(self, state):
        if state["step"] == 40:
            raise Killed
        save(self, state)

    monkeypatch.setattr(RunFolder, "save", killed_at_40)
    with pytest.raises(Killed):
        fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    assert steps_logged(tmp_path) == [10, 20, 30, 40]  # the row of step 40 was written, its checkpoint was not
    monkeypatch.setattr(RunFolder, "save", save)
    resumed = fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    assert steps_logged(tmp_path) == [10, 20, 30, 40, 50, 60]
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)


def test_a_kill_in_the_middle_of_a_checkpoint_write_leaves_the_last_one_intact(tmp_path, monkeypatch, straight):
    real_save = torch.save

    def half_written(state, f):
        if state["step"] == 40:
            f.write(b"PK\x03\x04 half a zip")
            raise Killed
        real_save(state, f)

    monkeypatch.setattr(runfolder.torch, "save", half_written)
    with pytest.raises(Killed):
        fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    monkeypatch.setattr(runfolder.torch, "save", real_save)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 20
    resumed = fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)


@pytest.mark.parametrize("damage, says", [
    (lambda b: b[: len(b) // 2], "truncated or corrupt"),
    (lambda b: b"", "is empty"),
    (lambda b: b"garbage \x00\xff" * 50, "not a PyTorch checkpoint|truncated or corrupt"),
    (lambda b: b"step,v_loss\n10,0.5\n", "not a PyTorch checkpoint|truncated or corrupt")])
def test_a_corrupt_checkpoint_gets_an_error_that_says_what_to_do(tmp_path, damage, says):
    fit(chain_data(), CFG, **{**RUN, "steps": 40}, log_dir=tmp_path)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=f"({says}).*previous checkpoint .*checkpoint.prev.pt \\(step 20\\) is "
                                              "intact.*delete"):
        fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    (tmp_path / "checkpoint.prev.pt").replace(path)  # what the message says to do
    assert fit(chain_data(), CFG, **RUN, log_dir=tmp_path).steps == 60


class Payload:
    """A pickled object that runs code when unpickled: what a hostile checkpoint carries."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoints_are_read_without_running_code(tmp_path):
    fit(chain_data(), CFG, **{**RUN, "steps": 20}, log_dir=tmp_path)
    state = read_checkpoint(tmp_path / "checkpoint.pt")
    state["extra"] = Payload(tmp_path / "pwned")
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors, numbers and strings"):
        fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_rng_states_are_read_onto_the_cpu_whatever_the_device(tmp_path, monkeypatch):
    """On CUDA the old loader mapped the saved generator states to the GPU, where Generator.set_state refuses them."""
    fit(chain_data(), CFG, **{**RUN, "steps": 20}, log_dir=tmp_path)
    calls = []
    load = torch.load
    monkeypatch.setattr(runfolder.torch, "load", lambda *a, **k: calls.append(k) or load(*a, **k))
    state = read_checkpoint(tmp_path / "checkpoint.pt")
    assert calls == [{"map_location": "cpu", "weights_only": True}]
    for tensor in state["source"]["generators"] + [state["rng"]["cpu"]]:
        assert tensor.device.type == "cpu" and tensor.dtype == torch.uint8  # what Generator.set_state accepts


def test_one_run_at_a_time_per_folder(tmp_path):
    first = RunFolder(tmp_path)
    first.lock()
    with pytest.raises(RuntimeError, match=r"another run \(pid \d+\) is using"):
        fit(chain_data(), CFG, **RUN, log_dir=tmp_path)
    first.release()
    assert fit(chain_data(), CFG, **{**RUN, "steps": 10}, log_dir=tmp_path).steps == 10


def test_the_log_is_appended_not_rewritten(tmp_path):
    folder = RunFolder(tmp_path)
    folder.append_log([{"step": 10, "loss": 1.0}])
    folder.append_log([{"step": 20, "loss": 0.5}])
    log = tmp_path / "log.csv"
    log.write_text(log.read_text().replace("1.0", "9.0"))  # a mark only a rewrite would undo
    folder.append_log([{"step": 30, "loss": 0.25}])
    assert [r["loss"] for r in folder.read_log()] == [9.0, 0.5, 0.25]
    folder.append_log([{"step": 40, "loss": 0.1, "score": 1.0}])  # a new column: one rewrite, with the old rows
    assert [(r["step"], r["score"] == r["score"]) for r in folder.read_log()] == [(10, False), (20, False),
                                                                                  (30, False), (40, True)]
