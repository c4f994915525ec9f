"""Autograding: run submitted notebooks with the source's tests, each in its own process under time limits.

Layout: `SUBMISSIONS/<student>/<assignment>.ipynb`, where <assignment> is a source's file name (a1_expectiles ...).
For each student and assignment the grader takes the submission, puts back every test cell and read-only cell of
the source (matched by grade_id: hidden tests restored, edits to the tests undone, as nbgrader's OverwriteCells
does), executes it with nbclient in a separate worker process and scores each test cell: its points if it ran
without an error, else 0. A cell past its time limit is interrupted; a dead kernel (os._exit, a crash) or the
notebook's time limit stops the notebook, and the test cells not reached score 0. Written answers are graded by
hand: their CSV columns stay empty (0 where the student left the stub).
"""
from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils as nbgrader_utils

from iqlkit.assign.release import sources

STUB_TEXT = "YOUR ANSWER HERE"  # nbgrader's ClearSolutions.text_stub


@dataclass(frozen=True)
class Question:
    """A graded cell of an assignment: autograded (a test cell) or written (graded by hand)."""

    grade_id: str
    points: float
    auto: bool

    @property
    def column(self) -> str:
        return f"{self.grade_id} ({self.points:g})"


@dataclass
class Result:
    """The grade of one student on one assignment: points per grade_id (None = to grade by hand)."""

    student: str
    assignment: str
    questions: list[Question]
    points: dict[str, float | None] = field(default_factory=dict)
    status: str = "ok"
    seconds: float = 0.0

    @property
    def total(self) -> float:
        """Autograded points earned."""
        return sum(self.points[q.grade_id] for q in self.questions if q.auto)

    @property
    def max_total(self) -> float:
        """Autograded points available."""
        return sum(q.points for q in self.questions if q.auto)


def _meta(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def questions(nb: nbformat.NotebookNode) -> list[Question]:
    """The grade cells of a notebook in order; code cells that are not solutions are autograded tests."""
    found = [Question(_meta(c)["grade_id"], float(_meta(c)["points"]),
                      auto=c.cell_type == "code" and not _meta(c).get("solution"))
             for c in nb.cells if nbgrader_utils.is_grade(c)]
    ids = [q.grade_id for q in found]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"grade ids must be unique within a notebook; repeated: {repeated}")
    return found


def restore(submission: nbformat.NotebookNode,
            source: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """The submission with every test and read-only cell replaced by the source's (hidden tests included).

    Returns the notebook (outputs cleared) and the grade_ids of source cells the submission no longer has.
    """
    master = {_meta(c)["grade_id"]: c for c in source.cells
              if nbgrader_utils.is_locked(c) and "grade_id" in _meta(c)}
    seen = set()
    for i, cell in enumerate(submission.cells):
        grade_id = _meta(cell).get("grade_id")
        if grade_id in master:
            submission.cells[i] = nbformat.from_dict(json.loads(json.dumps(master[grade_id])))
            seen.add(grade_id)
        if submission.cells[i].cell_type == "code":
            submission.cells[i].outputs, submission.cells[i].execution_count = [], None
    submission.metadata["kernelspec"] = source.metadata.get("kernelspec", submission.metadata.get("kernelspec", {}))
    return submission, [g for g in master if g not in seen]


def _error(cell: nbformat.NotebookNode) -> str | None:
    """'Name: first line of the message' of the first error a cell raised, None if it raised none."""
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return f"{out.ename}: {str(out.evalue).splitlines()[0] if out.evalue else ''}"[:200]
    return None


async def _execute(path: Path, log: Path, cell_timeout: float, limit: float) -> None:
    """Worker: run the notebook at `path` in place, appending one JSON line per test cell (and the end) to `log`."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(path, as_version=4)
    start = time.monotonic()

    def budget(cell: nbformat.NotebookNode) -> int:
        return max(1, int(min(cell_timeout, limit - (time.monotonic() - start))))

    timed_out = {"ename": "TimeoutError", "evalue": f"the cell ran past its limit of {cell_timeout:g} s"}
    replies: dict[int, dict] = {}

    def keep_reply(cell: nbformat.NotebookNode, cell_index: int, execute_reply: dict) -> None:
        replies[cell_index] = execute_reply["content"]

    client = NotebookClient(nb, timeout_func=budget, allow_errors=True, interrupt_on_timeout=True,
                            error_on_timeout={**timed_out, "traceback": []}, on_cell_executed=keep_reply,
                            resources={"metadata": {"path": str(path.parent)}})
    status = "ok"
    with log.open("a") as f:
        def note(**entry) -> None:
            f.write(json.dumps(entry) + "\n")
            f.flush()

        async with client.async_setup_kernel():
            note(kernel_pid=client.km.provisioner.process.pid)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                if time.monotonic() - start > limit:
                    status = f"stopped before cell {index}: notebook ran past its limit of {limit:g} s"
                    break
                try:
                    await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                    if replies.get(index, {}).get("ename") == timed_out["ename"]:  # nbclient's reply, no output
                        cell.outputs.append(nbformat.v4.new_output("error", traceback=[], **timed_out))
                        note(timeout=index)
                except DeadKernelError:
                    status = f"kernel died in cell {index}"
                    died = "the kernel died (os._exit, a crash or no memory)"
                    cell.outputs.append(nbformat.v4.new_output("error", ename="DeadKernelError", evalue=died,
                                                               traceback=[]))
                    break
                finally:
                    if nbgrader_utils.is_grade(cell) and not nbgrader_utils.is_solution(cell):
                        note(grade_id=_meta(cell)["grade_id"], error=_error(cell))
        nbformat.write(nb, path)
        note(status=status)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def grade_one(student: str, source: Path, submission: Path, feedback: Path, timeout_s: float, cell_timeout_s: float,
              env: dict[str, str], memory_gb: float | None) -> Result:
    """Grade one submission in a worker process; write the executed notebook to `feedback`."""
    source_nb = nbformat.read(source, as_version=4)
    asked = questions(source_nb)
    result = Result(student, source.stem, asked)
    for q in asked:
        result.points[q.grade_id] = 0.0 if q.auto else None
    if not submission.exists():
        result.status = "missing"
        for q in asked:
            result.points[q.grade_id] = 0.0
        return result
    try:
        nb, deleted = restore(nbformat.read(submission, as_version=4), source_nb)
    except Exception as e:  # noqa: BLE001 - an unreadable file scores zero and is reported
        result.status = f"unreadable notebook: {type(e).__name__}: {e}"[:300]
        return result
    for cell in nb.cells:  # a written answer left as the stub scores 0
        grade_id = _meta(cell).get("grade_id")
        if grade_id in result.points and result.points[grade_id] is None and cell.source.strip() in ("", STUB_TEXT):
            result.points[grade_id] = 0.0
    feedback.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, feedback)
    log = feedback.with_suffix(".log.jsonl")
    log.unlink(missing_ok=True)
    command = [sys.executable, "-m", "iqlkit.assign.grade", str(feedback), str(log), str(cell_timeout_s),
               str(timeout_s), str(memory_gb or 0)]
    began = time.monotonic()
    worker = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = worker.communicate(timeout=timeout_s + 30)
    except subprocess.TimeoutExpired:
        stderr = ""
    result.seconds = time.monotonic() - began
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    if not any("status" in e for e in entries):  # the worker did not shut its kernel down: end both
        for entry in entries:
            if "kernel_pid" in entry:
                _kill_group(entry["kernel_pid"])
        _kill_group(worker.pid)
        worker.wait()
    passed = {e["grade_id"]: e["error"] is None for e in entries if "grade_id" in e}
    failed = [f"{e['grade_id']} ({e['error'].split(':')[0]})" for e in entries if e.get("error")]
    for q in asked:
        if q.auto:
            result.points[q.grade_id] = q.points if passed.get(q.grade_id) else 0.0
    ends = [e["status"] for e in entries if "status" in e]
    slow = [str(e["timeout"]) for e in entries if "timeout" in e]
    if ends:
        result.status = (ends[-1] if ends[-1] != "ok" or not slow else
                         f"cell{'s' * (len(slow) > 1)} {', '.join(slow)} ran past {cell_timeout_s:g} s")
    elif worker.returncode is None or worker.returncode < 0:
        result.status = f"killed: the notebook ran past its limit of {timeout_s:g} s"
    else:
        result.status = f"grader error: {stderr.strip().splitlines()[-1] if stderr.strip() else worker.returncode}"
    missing = [g for g in deleted if g in result.points]
    if missing:
        result.status += f"; test cells missing from the submission: {', '.join(missing)}"
    if failed:
        result.status += "; failed " + ", ".join(failed)
    return result


def autograde(source_dir: Path, submissions_dir: Path, out_csv: Path, timeout_s: float = 600,
              cell_timeout_s: float | None = None, workers: int = 2, smoke: bool = False,
              memory_gb: float | None = 8.0) -> list[Result]:
    """Grade `submissions_dir/<student>/<assignment>.ipynb` against the sources; write the CSV and the notebooks.

    Each notebook runs in its own process, at most `timeout_s` in all and `cell_timeout_s` (default: timeout_s)
    per cell, with at most `memory_gb` of address space (None: no limit). `smoke` sets IQLKIT_SMOKE=1 for the
    kernels; otherwise they get this process's environment unchanged. The executed notebooks (with outputs, for
    feedback) go to the folder named like the CSV without its suffix: grades.csv -> grades/<student>/<name>.ipynb.
    """
    source_paths = sources(Path(source_dir))
    submissions_dir, out_csv = Path(submissions_dir), Path(out_csv)
    if not submissions_dir.is_dir():
        raise ValueError(f"{submissions_dir} is not a folder: lay submissions out as "
                         "SUBMISSIONS/<student>/<assignment>.ipynb")
    students = sorted(p.name for p in submissions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise ValueError(f"no student folders in {submissions_dir}: lay submissions out as "
                         f"{submissions_dir}/<student>/<assignment>.ipynb")
    asked = {p.stem: questions(nbformat.read(p, as_version=4)) for p in source_paths}
    owner: dict[str, str] = {}
    for name, qs in asked.items():
        for q in qs:
            if q.grade_id in owner:
                raise ValueError(f"grade id {q.grade_id!r} is used by {owner[q.grade_id]} and {name}: grade ids "
                                 "name the CSV columns, so they must be unique across assignments (prefix them, "
                                 "e.g. a1_...)")
            owner[q.grade_id] = name
    env = dict(os.environ, **({"IQLKIT_SMOKE": "1"} if smoke else {}))
    feedback = out_csv.with_suffix("")
    jobs = [(s, p, submissions_dir / s / p.name, feedback / s / p.name) for s in students for p in source_paths]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda job: grade_one(*job, timeout_s=timeout_s,
                                                      cell_timeout_s=cell_timeout_s or timeout_s, env=env,
                                                      memory_gb=memory_gb), jobs))
    write_csv(results, out_csv)
    return results


def write_csv(results: list[Result], out_csv: Path) -> None:
    """One row per student and assignment: points per question, autograded total and maximum, status."""
    columns = list({q.grade_id: q for r in results for q in r.questions}.values())
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", *(q.column for q in columns), "total", "max_total", "seconds", "status"])
        for r in results:
            cells = ["" if r.points.get(q.grade_id) is None else f"{r.points[q.grade_id]:g}" for q in columns]
            w.writerow([r.student, r.assignment, *cells, f"{r.total:g}", f"{r.max_total:g}", f"{r.seconds:.0f}",
                        r.status])


def summary(results: list[Result]) -> str:
    """A table of autograded points per student and assignment, for the terminal."""
    names = list(dict.fromkeys(r.assignment for r in results))
    by = {(r.student, r.assignment): r for r in results}
    lines = [" ".join([f"{'student':16s}", *(f"{n[:18]:>18s}" for n in names)])]
    for student in dict.fromkeys(r.student for r in results):
        rows = [by[student, n] for n in names]
        cells = [f"{r.total:g}/{r.max_total:g}" + ("" if r.status.startswith("ok") else " !") for r in rows]
        lines.append(" ".join([f"{student[:16]:16s}", *(f"{c:>18s}" for c in cells)]))
    return "\n".join(lines) + "\n(! = missing, crashed or out of time: see the status column)"


def _worker(argv: list[str]) -> None:
    path, log = Path(argv[0]), Path(argv[1])
    cell_timeout, limit, memory_gb = (float(a) for a in argv[2:5])
    if memory_gb > 0:
        import resource

        cap = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # inherited by the kernel
    asyncio.run(_execute(path, log, cell_timeout, limit))


if __name__ == "__main__":
    _worker(sys.argv[1:])
