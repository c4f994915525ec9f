"""Where tasks run: in a local process pool (the default) or as Ray tasks, on a local Ray or on a cluster.

A task is one unit of work: a group of agents trained as one fit_many stack, or one notebook to grade. Both backends
call job(*args) for every task, hand each result to the caller as it comes (the caller writes its results file
atomically), and go on when a task fails: the failures come back with their reasons. One tqdm bar counts the runs
finished, running and failed. On Ray each task declares its resources (CPUs, a fraction of a GPU, so that several
stacks share one) and is retried when its worker dies: the job resumes from its own run folder's checkpoint. An
exception the job raises (the NaN guard's FloatingPointError) is not retried. Ray is imported only when asked for.
"""
from __future__ import annotations

import os
import socket
import warnings
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from iqlkit.engine.runfolder import write_csv

BACKENDS = ("local", "ray")
RAY_EXTRA = "pip install -e '.[ray]' (the kit's optional extra 'ray')"
CONNECT_TIMEOUT_S = 10.0  # to reach a cluster's address before Ray is asked to join it (Ray alone waits minutes)


@dataclass(frozen=True)
class Task:
    """One unit of work: job(*args), holding `runs` runs (what the bar counts), named by `label` in messages."""

    args: tuple
    runs: int = 1
    label: str = ""


@dataclass(frozen=True)
class Failure:
    """A task that did not finish, and its exception (Ray's wrapper taken off)."""

    task: Task
    error: BaseException

    @property
    def reason(self) -> str:
        """'Type: first line of the message'."""
        lines = str(self.error).strip().splitlines()
        return f"{type(self.error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class RayMissing(ModuleNotFoundError):
    """Ray is not installed here: the message names the extra."""


def import_ray():
    """The ray module, or RayMissing (a ModuleNotFoundError) that names the extra to install."""
    try:
        import ray
    except ModuleNotFoundError:
        raise RayMissing(f"the Ray backend needs Ray: {RAY_EXTRA}") from None
    return ray


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A ConnectionError naming `address` (host:port or ray://host:port) unless something listens there."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r}: give auto, host:port (the head node's GCS, port 6379 by default) "
                         "or ray://host:port (Ray Client, port 10001)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConnectionError(f"cannot reach Ray at {address} ({e}): start its head there (`ray start --head`) and "
                              "open the port to this machine, or leave out --address for a local Ray") from None


def _started(tally, index: int, job: Callable, *args):
    """A Ray task: tell the tally it runs, then run the job."""
    tally.add.remote(index)
    return job(*args)


def _tally(ray):
    """An actor that holds the indices of the tasks that have started (for the bar's running count)."""

    @ray.remote(num_cpus=0)
    class Tally:
        def __init__(self) -> None:
            self.started: set[int] = set()

        def add(self, index: int) -> None:
            self.started.add(index)

        def get(self) -> set[int]:
            return self.started

    return Tally.remote()


@dataclass(frozen=True)
class Backend:
    """Where tasks run: 'local', a pool of `workers` processes (default one per core; 1 runs them in this process),
    or 'ray', a local Ray sized to this machine (`workers` CPUs when given) or the cluster at `address` ('auto',
    host:port, ray://host:port). On Ray every task asks for `cpus` CPUs and `gpus` GPUs (a fraction lets stacks share
    one) and is retried `retries` times when its worker dies."""

    kind: str = "local"
    workers: int | None = None
    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    retries: int = 3

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ValueError(f"unknown backend {self.kind!r}: choose one of {', '.join(BACKENDS)}")
        if self.address is not None and self.kind != "ray":
            raise ValueError("an address is for the Ray backend: add --backend ray")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1; got {self.workers}")
        if self.cpus <= 0 or self.gpus < 0 or self.retries < 0:
            raise ValueError(f"a task needs cpus > 0, gpus >= 0 and retries >= 0; got {self.cpus}, {self.gpus}, "
                             f"{self.retries}")

    def in_process(self, n_tasks: int) -> bool:
        """Whether n_tasks run here, one after another (the local backend with one worker or one task)."""
        return self.kind == "local" and min(self.workers or os.cpu_count() or 1, n_tasks) <= 1

    def threads(self, n_tasks: int) -> int | None:
        """Torch threads for a task: None (this process's) when tasks run here, else the CPUs a task holds."""
        return None if self.in_process(n_tasks) else max(1, int(self.cpus))

    @contextmanager
    def session(self) -> Iterator[None]:
        """Connect now (Ray: a bad address fails before any data loads); shut down on exit what this started."""
        started = self._connect()
        try:
            yield
        finally:
            if started:
                import_ray().shutdown()

    def _connect(self) -> bool:
        """Start or join Ray (True when this call started it); nothing for the local backend or a running Ray."""
        if self.kind != "ray":
            return False
        ray = import_ray()
        if ray.is_initialized():
            return False
        if self.address is None:
            ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            return True
        if self.address != "auto":
            check_reachable(self.address)
        try:
            ray.init(address=self.address, log_to_driver=False)
        except (ConnectionError, RuntimeError, SystemExit) as e:  # Ray exits when its GCS never answers
            raise ConnectionError(f"could not join the Ray cluster at {self.address}: {e}") from None
        return True

    def run(self, job: Callable, tasks: Sequence[Task], on_done: Callable[[Task, object], None], desc: str = "",
            progress: bool = True) -> list[Failure]:
        """job(*task.args) for every task; on_done(task, result) here as each one finishes; the failures."""
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(t.runs for t in tasks), desc=desc, unit="run", disable=not progress)
        counts, failures = Counter(), []

        def finish(task: Task, result=None, error: BaseException | None = None) -> None:
            if error is None:
                on_done(task, result)
                counts["finished"] += task.runs
            else:
                failures.append(Failure(task, getattr(error, "cause", None) or error))  # Ray's cause: the job's own
                counts["failed"] += task.runs
                bar.write(f"failed: {task.label or 'a task'}: {failures[-1].reason}")
            bar.update(task.runs)

        shown: list[tuple] = []

        def show(running: int) -> None:
            now = (counts["finished"], running, counts["failed"])
            if shown != [now]:  # redrawn on a change only: a log of the bar stays short
                shown[:] = [now]
                bar.set_postfix(finished=now[0], running=now[1], failed=now[2])

        with bar:
            show(0)
            if self.kind == "ray":
                self._run_ray(job, tasks, finish, show)
            elif self.in_process(len(tasks)):
                for task in tasks:
                    show(task.runs)
                    try:
                        result = job(*task.args)
                    except Exception as e:  # noqa: BLE001 - one failing task never stops the others
                        finish(task, error=e)
                    else:
                        finish(task, result)
            else:
                size = min(self.workers or os.cpu_count() or 1, len(tasks))
                with ProcessPoolExecutor(size) as pool:
                    pending = {pool.submit(job, *t.args): t for t in tasks}
                    while pending:
                        done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                        for future in done:
                            error = future.exception()
                            finish(pending.pop(future), None if error else future.result(), error)
                        # the pool marks one task more than it has workers as running (its queue): count `size`
                        show(sum(t.runs for t in [t for f, t in pending.items() if f.running()][:size]))
        return failures

    def _run_ray(self, job: Callable, tasks: Sequence[Task], finish: Callable, show: Callable) -> None:
        """The tasks as Ray tasks: shared arguments stored once, results taken as they come."""
        ray = import_ray()
        started = self._connect()
        try:
            shared = Counter(id(a) for t in tasks for a in (job, *t.args))
            stored: dict[int, object] = {}

            def arg(a):
                if shared[id(a)] < 2 or isinstance(a, (int, float, str, bool, type(None))):
                    return a
                if id(a) not in stored:
                    stored[id(a)] = ray.put(a)
                return stored[id(a)]

            have = ray.cluster_resources()
            if self.cpus > have.get("CPU", 0) or self.gpus > have.get("GPU", 0):
                raise ValueError(f"a task asks for {self.cpus:g} CPUs and {self.gpus:g} GPUs; the Ray cluster has "
                                 f"{have.get('CPU', 0):g} and {have.get('GPU', 0):g} in all, so none would start "
                                 "(--cpus-per-task, --gpus-per-task)")
            tally = _tally(ray)
            remote = ray.remote(_started).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries)
            pending = {remote.remote(tally, i, arg(job), *map(arg, t.args)): (i, t) for i, t in enumerate(tasks)}
            try:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                    for ref in done:
                        _, task = pending.pop(ref)
                        try:
                            result = ray.get(ref)
                        except ray.exceptions.RayError as e:  # the job's exception, or a worker dead past its retries
                            finish(task, error=e)
                        else:
                            finish(task, result)
                    running = ray.get(tally.get.remote())
                    show(sum(t.runs for i, t in pending.values() if i in running))
            finally:
                for ref in pending:
                    ray.cancel(ref, force=True)
        finally:
            if started:
                ray.shutdown()


FAILED = "failed.csv"  # beside a grid's results.csv: the runs that failed, and why


def record_failures(out: Path, failed: list[dict], total: int, what: str) -> None:
    """Write out/failed.csv (the runs that failed, with their reasons) and warn, or remove an old one when none did."""
    if failed:
        write_csv(out / FAILED, failed)
        warnings.warn(f"{len(failed)} of {total} runs failed (listed with the reasons in {out / FAILED}); run the "
                      f"{what} again to retry them", RuntimeWarning, stacklevel=3)
    else:
        (out / FAILED).unlink(missing_ok=True)
