"""Autograding: run submitted notebooks with the source's tests, each in its own confined kernel.

Layout: `SUBMISSIONS/<student>/<assignment>.ipynb`, where <assignment> is a source's file name (a1_expectiles ...).
The sources are read into memory before any kernel starts. A submission is read only if it is a regular file (no
symbolic link followed, no FIFO opened). The grader puts back every test cell and read-only cell of the source
(matched by grade_id: hidden tests restored, edits to the tests undone, as nbgrader's OverwriteCells does), starts a
kernel in its sandbox (`iqlkit.assign.sandbox`), and sends it the notebook's cells itself (`iqlkit.assign.execute`):
a test cell earns its points only on a reply that proves its code ran to its end, never on anything the kernel
writes to a file. A cell past its time limit is interrupted; a dead kernel or the notebook's time limit stops the
notebook, and the test cells not reached score 0. Written answers are graded by hand: their CSV columns stay empty
(0 where the student left the stub). The CSV is rewritten (atomically) after every finished notebook.

On Ray (a Backend of iqlkit.experiments.backends) each notebook is one task: the node that runs it confines the kernel
as this machine would, and sends back the result and the executed notebook, which are written here. A node where
bubblewrap does not work refuses to grade, unless IQLKIT_SANDBOX=off here allows unsandboxed grading explicitly.
"""
from __future__ import annotations

import asyncio
import csv
import json
import os
import socket
import stat
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nbformat
from nbgrader import utils as nbgrader_utils

from iqlkit.assign import tamper
from iqlkit.assign.execute import run_notebook
from iqlkit.assign.release import sources
from iqlkit.assign.sandbox import Confinement, Kernel, confinement
from iqlkit.experiments.backends import Backend, Task

STUB_TEXT = "YOUR ANSWER HERE"  # nbgrader's ClearSolutions.text_stub
MAX_BYTES = 64 * 2**20  # a larger submission is not read
KINDS = {stat.S_IFLNK: "symbolic link", stat.S_IFIFO: "FIFO", stat.S_IFDIR: "folder", stat.S_IFSOCK: "socket",
         stat.S_IFCHR: "device", stat.S_IFBLK: "device"}


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
    flags: list[str] = field(default_factory=list)

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


class Rejected(Exception):
    """A submission that is not read: its status says why."""


def read_submission(folder_fd: int, student: str, name: str) -> bytes:
    """The bytes of `student/name` under the open submissions folder; Rejected if it is missing, not a regular
    file (links are not followed, FIFOs not waited on) or too large."""
    try:
        student_fd = os.open(student, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
    except OSError:
        raise Rejected("rejected: the student folder is not a folder (symbolic link?)") from None
    try:
        try:
            kind = stat.S_IFMT(os.stat(name, dir_fd=student_fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            raise Rejected("missing") from None
        if kind != stat.S_IFREG:
            raise Rejected(f"rejected: not a regular file ({KINDS.get(kind, 'special file')})")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=student_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Rejected("rejected: not a regular file (replaced while read)")
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read(MAX_BYTES + 1)
        finally:
            os.close(fd)
    finally:
        os.close(student_fd)
    if len(data) > MAX_BYTES:
        raise Rejected(f"unreadable notebook (larger than {MAX_BYTES >> 20} MB)")
    return data


@dataclass
class Source:
    """An assignment source, read once before grading starts."""

    name: str
    nb: nbformat.NotebookNode
    questions: list[Question]
    imports: list[list]
    protected: set[str]


async def grade_one(student: str, source: Source, data: bytes | Rejected, feedback: Path, job: int,
                    conf: Confinement, env: dict[str, str], timeout_s: float, cell_timeout_s: float,
                    memory_gb: float | None) -> Result:
    """Grade one submission (its bytes, or why it was not read); write the executed notebook to `feedback`."""
    asked = source.questions
    result = Result(student, source.name, asked, {q.grade_id: 0.0 if q.auto else None for q in asked})
    if isinstance(data, Rejected):
        result.status = str(data)
        if result.status == "missing" or result.status.startswith("rejected"):
            result.points = dict.fromkeys(result.points, 0.0)
        return result
    try:
        nb, deleted = restore(nbformat.reads(data.decode("utf-8"), as_version=4),
                              nbformat.from_dict(json.loads(json.dumps(source.nb))))
    except Exception as e:  # noqa: BLE001 - an unreadable file scores zero; the message is not shown (it may quote it)
        result.status = f"unreadable notebook ({type(e).__name__})"
        return result
    for cell in nb.cells:  # a written answer left as the stub scores 0
        grade_id = _meta(cell).get("grade_id")
        if grade_id in result.points and result.points[grade_id] is None and cell.source.strip() in ("", STUB_TEXT):
            result.points[grade_id] = 0.0
    result.flags = tamper.scan(nb, source.protected)
    checks = {i: _meta(c)["grade_id"] for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and nbgrader_utils.is_grade(c) and not nbgrader_utils.is_solution(c)}
    memory = int(memory_gb * 2**30) if memory_gb else None
    began = asyncio.get_running_loop().time()
    try:
        run = await run_notebook(nb, set(checks), Kernel(conf, job, source.imports, env, memory), cell_timeout_s,
                                 timeout_s)
    except Exception as e:  # noqa: BLE001 - one notebook never stops the others
        result.status = f"grader error: {type(e).__name__}"
        warnings.warn(f"grading {student}/{source.name} failed: {e!r}", RuntimeWarning, stacklevel=2)
        return result
    result.seconds = asyncio.get_running_loop().time() - began
    for q in asked:
        verdicts = [run.verdicts.get(i) for i, g in checks.items() if g == q.grade_id]
        if q.auto:
            result.points[q.grade_id] = q.points if verdicts and all(v and v.passed for v in verdicts) else 0.0
    result.status = (run.status if run.status != "ok" or not run.slow else
                     f"cell{'s' * (len(run.slow) > 1)} {', '.join(map(str, run.slow))} ran past {cell_timeout_s:g} s")
    missing = [g for g in deleted if g in result.points]
    if missing:
        result.status += f"; test cells missing from the submission: {', '.join(missing)}"
    failed = [f"{checks[i]} ({v.why})" for i, v in sorted(run.verdicts.items()) if not v.passed]
    if failed:
        result.status += "; failed " + ", ".join(failed)
    if run.restored:
        result.flags.append(f"the kernel undid changes to: {', '.join(sorted(run.restored))}")
    feedback.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, feedback)
    return result


def _load_sources(source_dir: Path) -> list[Source]:
    """Every source notebook, read into memory, with what grading needs of it; grade ids unique across them."""
    loaded, owner = [], {}
    for path in sources(Path(source_dir)):
        nb = nbformat.read(path, as_version=4)
        asked = questions(nb)
        for q in asked:
            if q.grade_id in owner:
                raise ValueError(f"grade id {q.grade_id!r} is used by {owner[q.grade_id]} and {path.stem}: grade ids "
                                 "name the CSV columns, so they must be unique across assignments (prefix them, "
                                 "e.g. a1_...)")
            owner[q.grade_id] = path.stem
        loaded.append(Source(path.stem, nb, asked, tamper.imports(nb), tamper.protected_names(nb)))
    return loaded


def autograde(source_dir: Path, submissions_dir: Path, out_csv: Path, timeout_s: float = 600,
              cell_timeout_s: float | None = None, workers: int = 2, smoke: bool = False,
              memory_gb: float | None = 8.0, backend: Backend | None = None) -> list[Result]:
    """Grade `submissions_dir/<student>/<assignment>.ipynb` against the sources; write the CSV and the notebooks.

    Each notebook runs in its own confined kernel, at most `timeout_s` in all and `cell_timeout_s` (default:
    timeout_s) per cell, with at most `memory_gb` (None: no limit) for the whole notebook where cgroups allow, else
    per process. `smoke` sets IQLKIT_SMOKE=1 for the kernels. The executed notebooks (with outputs, for feedback) go
    to the folder named like the CSV without its suffix: grades.csv -> grades/<student>/<name>.ipynb.
    backend: Backend('ray', ...) grades the notebooks as Ray tasks (module docstring); default: here, `workers` at a
    time.
    """
    loaded = _load_sources(Path(source_dir))
    submissions_dir, out_csv = Path(submissions_dir), Path(out_csv)
    if not submissions_dir.is_dir():
        raise ValueError(f"{submissions_dir} is not a folder: lay submissions out as "
                         "SUBMISSIONS/<student>/<assignment>.ipynb")
    with os.scandir(submissions_dir) as entries:
        students = sorted(e.name for e in entries if not e.name.startswith(".")
                          and (e.is_symlink() or e.is_dir(follow_symlinks=False)))
    if not students:
        raise ValueError(f"no student folders in {submissions_dir}: lay submissions out as "
                         f"{submissions_dir}/<student>/<assignment>.ipynb")
    feedback = out_csv.with_suffix("")
    protected = [Path(source_dir).resolve(), submissions_dir.resolve(), out_csv.parent.resolve()]
    ray = backend is not None and backend.kind == "ray"
    conf = None if ray else confinement(protected)  # on Ray each node finds out what it gives (grade_on_node)
    env = dict(os.environ, **({"IQLKIT_SMOKE": "1"} if smoke else {}))
    folder_fd = os.open(submissions_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        jobs = []
        for student in students:
            for source in loaded:
                try:
                    data: bytes | Rejected = read_submission(folder_fd, student, f"{source.name}.ipynb")
                except Rejected as e:
                    data = e
                jobs.append((student, source, data, feedback / student / f"{source.name}.ipynb"))
    finally:
        os.close(folder_fd)
    settings = {"timeout_s": timeout_s, "cell_timeout_s": cell_timeout_s or timeout_s, "memory_gb": memory_gb}
    if ray:
        return _grade_on_ray(jobs, out_csv, backend, protected, {k: v for k, v in env.items()
                                                                 if k.startswith("IQLKIT_")}, settings)
    return asyncio.run(_grade_all(jobs, out_csv, workers, conf=conf, env=env, **settings))


class Unsandboxed(RuntimeError):
    """A node where bubblewrap does not work, asked to grade without IQLKIT_SANDBOX=off."""


@lru_cache(maxsize=None)
def _node_confinement(protected: tuple[Path, ...]) -> Confinement:
    """What this node gives each kernel (probed once per worker process)."""
    return confinement(list(protected))


def grade_on_node(student: str, source: Source, data: bytes | Rejected, job: int, protected: tuple[Path, ...],
                  env: dict[str, str], settings: dict) -> tuple[Result, str | None]:
    """A Ray task: grade one submission in this node's sandbox (env: the grader's IQLKIT_ variables, which the
    kernels get); the Result and the executed notebook's text. Unsandboxed raised where bubblewrap does not work,
    unless the grader set IQLKIT_SANDBOX=off (as confinement reads it)."""
    conf = _node_confinement(protected)
    if not conf.bwrap and env.get("IQLKIT_SANDBOX", "").lower() not in ("0", "off", "no"):
        raise Unsandboxed(f"node {socket.gethostname()} refuses to grade: bubblewrap is missing or does not work "
                          f"there ({conf.describe()}). Install bubblewrap on every node, or allow unsandboxed "
                          "grading explicitly with IQLKIT_SANDBOX=off")
    with tempfile.TemporaryDirectory() as folder:
        feedback = Path(folder) / "feedback.ipynb"
        result = asyncio.run(grade_one(student, source, data, feedback, job, conf, {**os.environ, **env}, **settings))
        return result, feedback.read_text() if feedback.exists() else None


def _grade_on_ray(jobs: list[tuple], out_csv: Path, backend: Backend, protected: list[Path], env: dict[str, str],
                  settings: dict) -> list[Result]:
    """Grade the jobs as Ray tasks (grade_on_node); write each executed notebook and rewrite the CSV as they come.
    A RuntimeError after the others, naming the nodes' reasons, when some notebooks could not be graded."""
    done: dict[int, Result] = {}

    def finish(task: Task, got: tuple[Result, str | None]) -> None:
        k, (result, text) = task.args[3], got
        done[k] = result
        if text is not None:
            jobs[k][3].parent.mkdir(parents=True, exist_ok=True)
            jobs[k][3].write_text(text)
        write_csv([done[i] for i in sorted(done)], out_csv)

    tasks = [Task((student, source, data, k, tuple(protected), env, settings), 1, f"{student}/{source.name}")
             for k, (student, source, data, _) in enumerate(jobs)]
    failures = backend.run(grade_on_node, tasks, finish, desc=f"grading {len(tasks)} notebooks")
    if failures:
        reasons = sorted({f.reason for f in failures})
        raise RuntimeError(f"{len(failures)} of {len(tasks)} notebooks were not graded ({out_csv} holds the others): "
                           + "; ".join(reasons))
    return [done[k] for k in sorted(done)]


async def _grade_all(jobs: list[tuple], out_csv: Path, workers: int, **settings) -> list[Result]:
    """Grade the jobs, `workers` at a time; rewrite the CSV after each finished notebook."""
    gate, done = asyncio.Semaphore(max(1, workers)), {}

    async def one(job: int, student: str, source: Source, data: bytes | Rejected, feedback: Path) -> None:
        async with gate:
            done[job] = await grade_one(student, source, data, feedback, job, **settings)
        write_csv([done[k] for k in sorted(done)], out_csv)

    await asyncio.gather(*(one(k, *job) for k, job in enumerate(jobs)))
    return [done[k] for k in sorted(done)]


def write_csv(results: list[Result], out_csv: Path) -> None:
    """One row per student and assignment: points per question, autograded total and maximum, status, flags.

    The file is written beside its place and renamed over it, so a reader (or a killed grader) never sees half."""
    columns = list({q.grade_id: q for r in results for q in r.questions}.values())
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    partial = out_csv.with_name(f".{out_csv.name}.{os.getpid()}.part")
    with partial.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", *(q.column for q in columns), "total", "max_total", "seconds", "status",
                    "flags"])
        for r in results:
            cells = ["" if r.points.get(q.grade_id) is None else f"{r.points[q.grade_id]:g}" for q in columns]
            w.writerow([r.student, r.assignment, *cells, f"{r.total:g}", f"{r.max_total:g}", f"{r.seconds:.0f}",
                        r.status, "; ".join(r.flags)])
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, out_csv)


def summary(results: list[Result]) -> str:
    """A table of autograded points per student and assignment, for the terminal."""
    names = list(dict.fromkeys(r.assignment for r in results))
    by = {(r.student, r.assignment): r for r in results}
    lines = [" ".join([f"{'student':16s}", *(f"{n[:18]:>18s}" for n in names)])]
    for student in dict.fromkeys(r.student for r in results):
        rows = [by[student, n] for n in names]
        cells = [f"{r.total:g}/{r.max_total:g}" + ("" if r.status.startswith("ok") else " !") + (" ?" * bool(r.flags))
                 for r in rows]
        lines.append(" ".join([f"{student[:16]:16s}", *(f"{c:>18s}" for c in cells)]))
    return "\n".join(lines) + ("\n(! = missing, rejected, crashed or out of time: see the status column; "
                               "? = flagged for review: see the flags column)")
