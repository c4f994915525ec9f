"""A run folder: one training run's lock, its CSV log and its checkpoints, written so that a crash loses nothing.

Guarantees (tests/test_runfolder.py kills writes at every step):
- log.csv is appended row by row (flushed and synced); a row torn by a kill is dropped when the log is read, and
  a resume keeps exactly the rows up to the checkpoint's step (later ones are redone), so log and checkpoint agree;
- a checkpoint is written to a temporary file, synced, then renamed over checkpoint.pt; the one it replaces stays
  as checkpoint.prev.pt, so one good checkpoint survives a broken write or a broken disk block;
- a checkpoint holds tensors, numbers and strings only and is read with torch.load(weights_only=True): a file
  someone hands you cannot run code; an unreadable one gets an error that says what to do;
- one run at a time: a second process that opens the same folder stops with the holder's pid.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch

CHECKPOINT, PREVIOUS, LOG, LOCK = "checkpoint.pt", "checkpoint.prev.pt", "log.csv", ".lock"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, or from another run."""


def _number(text: str) -> float | int | str:
    """A CSV field as it was logged: int, float (NaN for an empty field) or the string itself."""
    if text == "":
        return float("nan")
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _sync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


class RunFolder:
    """The files of one run in `path` (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = None

    # ---- one run at a time -----------------------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the folder's lock until release() or the process ends; a RuntimeError if another run holds it."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; runs must not share a folder
            return
        handle = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RuntimeError(f"another run (pid {holder}) is using {self.path}; wait for it to finish, or give this "
                               "run another folder (--out, or other hyperparameters)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        """Let other runs use the folder."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---- log.csv -------------------------------------------------------------------------------------------
    def read_log(self) -> list[dict]:
        """The logged rows; a last line torn by a kill (or any row that does not parse) is left out."""
        path = self.path / LOG
        if not path.exists():
            return []
        text = path.read_text()
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a torn last line
        rows = []
        reader = csv.DictReader(io.StringIO(text))
        for raw in reader:
            if None in raw or any(v is None for v in raw.values()):
                continue  # a row with too many or too few fields
            row = {k: _number(v) for k, v in raw.items()}
            if isinstance(row.get("step"), int):
                rows.append(row)
        return rows

    def keep_log(self, upto: int) -> list[dict]:
        """Rewrite the log with its rows up to step `upto` (a resume redoes the later ones); returns them."""
        rows = [r for r in self.read_log() if r["step"] <= upto]
        self._rewrite(rows)
        return rows

    def append_log(self, rows: list[dict]) -> None:
        """Append rows (flushed and synced); when they bring new columns the file is rewritten once, atomically."""
        if not rows:
            return
        path = self.path / LOG
        columns = self._columns()
        new = list(dict.fromkeys(k for r in rows for k in r if k not in columns))
        if not path.exists() or new:
            return self._rewrite(self.read_log() + rows)
        with path.open("a", newline="") as f:
            csv.DictWriter(f, columns).writerows(rows)
            _sync(f)

    def _columns(self) -> list[str]:
        path = self.path / LOG
        if not path.exists():
            return []
        with path.open(newline="") as f:
            return next(csv.reader(f), [])

    def _rewrite(self, rows: list[dict]) -> None:
        write_csv(self.path / LOG, rows, self._columns())

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def save(self, state: dict) -> None:
        """Write checkpoint.pt atomically, keeping the one it replaces as checkpoint.prev.pt."""
        tmp = self.path / (CHECKPOINT + ".tmp")
        with tmp.open("wb") as f:
            torch.save(state, f)
            _sync(f)
        current = self.path / CHECKPOINT
        if current.exists():
            current.replace(self.path / PREVIOUS)
        tmp.replace(current)

    def load(self) -> dict | None:
        """The last checkpoint (tensors on the CPU), None when the folder has none, or a CheckpointError that says
        what is wrong with the file and what to do."""
        path = self.path / CHECKPOINT
        if not path.exists():
            if (self.path / PREVIOUS).exists():
                raise CheckpointError(f"{path} is missing but {self.path / PREVIOUS} is there (a save was cut short): "
                                      f"rename it to {CHECKPOINT} to resume from it, or delete {self.path} to start "
                                      "afresh")
            return None
        try:
            return read_checkpoint(path)
        except CheckpointError as e:
            previous = self.path / PREVIOUS
            try:
                step = read_checkpoint(previous).get("step", "?") if previous.exists() else None
            except CheckpointError:
                step = None
            fix = (f"the previous checkpoint {previous} (step {step}) is intact: move it over {path} to resume from "
                   "it, or " if step is not None else "")
            raise CheckpointError(f"{e}. To go on: {fix}delete {self.path} (or train into another folder, --out) "
                                  "to start afresh") from None

    def last_good(self) -> str:
        """How an error names the checkpoint a stopped run keeps: its path and step, or that none was written."""
        path = self.path / CHECKPOINT
        if not path.exists():
            return f"no checkpoint was written yet in {self.path}"
        try:
            return f"the last good checkpoint is {path} (step {read_checkpoint(path)['step']})"
        except (CheckpointError, KeyError):
            return f"{path} exists but cannot be read"


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write rows as a CSV atomically: a temporary file, synced, then renamed over `path`, so an interruption never
    leaves half a file. The columns are the rows' keys in order of appearance (`columns` when there are no rows)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(dict.fromkeys(k for r in rows for k in r)) or columns or [])
        writer.writeheader()
        writer.writerows(rows)
        _sync(f)
    tmp.replace(path)
    return path


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a results file, plain (.csv) or compressed (.csv.gz), as strings (csv.DictReader)."""
    import gzip

    path = Path(path)
    with (gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open(newline="")) as f:
        return list(csv.DictReader(f))


def read_log(path: str | Path) -> list[dict]:
    """The rows of a run folder's log.csv (numbers as numbers), e.g. for iqlkit.plots.training.training_curves."""
    return RunFolder(path).read_log()


def read_checkpoint(path: str | Path) -> dict:
    """torch.load(path, weights_only=True) onto the CPU, or a CheckpointError naming the file and the fault."""
    import pickle

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): a save was interrupted or the disk was full")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # a class or function to import: what code-running pickles need
            raise CheckpointError(f"{path} ({size:,} bytes) cannot be read: it holds objects other than tensors, "
                                  "numbers and strings, which are refused so that a checkpoint cannot run code") from None
        raise CheckpointError(f"{path} ({size:,} bytes) is not a PyTorch checkpoint of tensors and numbers "
                              "(truncated or corrupt, or written by another pickler)") from None
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes the reader raise, the message is the same
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} ({size:,} bytes) is truncated or corrupt ({type(e).__name__}: "
                              f"{first[:120]})") from None
    if not isinstance(state, dict) or "learner" not in state:
        raise CheckpointError(f"{path} is a PyTorch file but not an iqlkit checkpoint (no 'learner' entry)")
    return state
