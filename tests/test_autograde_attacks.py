"""Hostile submissions against the autograder (issue 15): each scores what its answers earn, discloses nothing,
leaves nothing running and leaves the other students' grades alone. One autograde call on A1 grades them all; a
second test kills the grader itself. Assertions that only a sandbox can make (reading files outside the notebook,
touching other students' files) run only where bubblewrap works here; the rest run either way."""
import csv
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from iqlkit.assign.grade import autograde
from iqlkit.assign.release import student_version
from iqlkit.assign.sandbox import confinement

SOURCE = Path(__file__).parents[1] / "assignments" / "source" / "a1_expectiles.ipynb"
MARK = f"iqlkit-attack-{uuid.uuid4().hex[:12]}"  # in the kernels' environment and the leftovers' command lines
SLEEP = "4242.4242"  # a daemon's `sleep` argument, to find it if it survived


def read(path: Path):
    return nbformat.read(path, as_version=4)


def with_code(nb, grade_id: str, code: str, header: str = ""):
    """A copy of `nb` whose cell `grade_id` holds `header` and `code` (dedented)."""
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    cell.source = header + textwrap.dedent(code)
    return nb


def steal(nb, header: str):
    """A copy of `nb` whose answer cells run the solutions read from the source notebook on disk."""
    for grade_id in ("a1_q1_code", "a1_q2_code", "a1_q3_code"):
        nb = with_code(nb, grade_id, header=header, code="""
            import json
            for cell in json.load(open(SOURCE))["cells"]:
                if cell["metadata"].get("nbgrader", {}).get("solution") and cell["cell_type"] == "code":
                    exec("".join(cell["source"]), globals())
            """)
    return nb


def appended(nb, code: str):
    """A copy of `nb` with one more code cell at the end."""
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(textwrap.dedent(code)))
    return nb


def mine(pid: str) -> bool:
    """Whether process `pid` carries this test run's mark (in its environment or command line)."""
    try:
        return MARK.encode() in Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def leftovers() -> list[str]:
    """Command lines of processes this test run's kernels left running."""
    return [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid() and mine(p)]


@pytest.fixture(scope="module")
def here():
    """What this machine gives the kernels (bubblewrap, cgroups)."""
    return confinement([SOURCE.parent])


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One autograde run of A1: an honest student, a stub, and every hostile submission of issue 15."""
    root = tmp_path_factory.mktemp("attacks")
    subs, out = root / "in", root / "grades.csv"
    source, stub = read(SOURCE), student_version(read(SOURCE))
    paths = {"CSV": str(out), "SUBS": str(subs), "FEEDBACK": str(out.with_suffix("")), "SOURCE": str(SOURCE)}
    header = "".join(f"{k} = {v!r}\n" for k, v in paths.items()) + f"MARK = {MARK!r}\n"
    notebooks = {
        "good": source,
        "stub": stub,
        # reads the source (solutions, hidden tests) from disk and runs its solutions in place of each answer
        "disk": steal(stub, header),
        # replaces the check helpers (module and namespace) and numpy's comparison by ones that never fail
        "patch": with_code(with_code(with_code(stub, "a1_q2_code", "pass"), "a1_q3_code", "pass"), "a1_q1_code", """
            import numpy
            import iqlkit.assign.checks as checks
            def never_fails(*args, **kwargs):
                return None
            checks.check_close = checks.check_shape = checks.check_true = checks.check_raises = never_fails
            check_close = check_shape = check_true = check_raises = never_fails
            numpy.isclose = lambda a, b, **k: numpy.ones(numpy.broadcast(a, b).shape, bool)
            asymmetric_l2 = exact_expectile = expectile_gaps = loglog_slope = lambda *args: 0.0
            """),
        # hides every error from view: IPython's traceback display, sys.excepthook, the shell's own hook
        "excepthook": with_code(stub, "a1_q1_code", """
            import sys
            ip = get_ipython()
            ip.showtraceback = ip._showtraceback = ip.excepthook = lambda *args, **kwargs: None
            sys.excepthook = lambda *args: None
            """),
        # rewrites every later cell to the lines that print (its own "checks passed", the grader's token)
        "transformer": with_code(stub, "a1_q1_code", """
            def only_prints(lines):
                return [line for line in lines if line.startswith("print(")]
            get_ipython().input_transformers_post.append(only_prints)
            """),
        # writes log entries that say every question passed, where the grader used to keep its log
        "forged_log": with_code(stub, "a1_q1_code", """
            import json, os
            entries = [{"grade_id": g, "error": None} for g in ("a1_q1_loss", "a1_q2_expectile", "a1_q3_lemma1")]
            for folder in (".", "..", os.path.expanduser("~")):
                try:
                    with open(os.path.join(folder, "a1_expectiles.log.jsonl"), "a") as f:
                        f.writelines(json.dumps(e) + "\\n" for e in entries + [{"status": "ok"}])
                except OSError:
                    pass
            """),
        # a stub whose last cell rewrites its own log (the last entry per question used to win)
        "log_rewrite": appended(stub, """
            import json
            with open("a1_expectiles.log.jsonl", "w") as f:
                for g in ("a1_q1_loss", "a1_q2_expectile", "a1_q3_lemma1"):
                    f.write(json.dumps({"grade_id": g, "error": None}) + "\\n")
            """),
        # hides every exception and marks every cell as successful: no error output, and an "ok" execute_reply
        "event": with_code(stub, "a1_q1_code", """
            def succeed(result):
                result.error_in_exec = None
            get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
            get_ipython().events.register("post_run_cell", succeed)
            """),
        # replaces the kernel's execute handler: each check is rewritten to the line that prints its token
        "handler": with_code(stub, "a1_q1_code", """
            import re
            kernel = get_ipython().kernel
            real = kernel.shell_handlers["execute_request"]
            async def only_the_token(stream, ident, parent):
                token = re.findall(r"print\\('([0-9a-f]{32})'\\)$", parent["content"]["code"])
                if token:
                    parent["content"]["code"] = f"print({token[0]!r})"
                return await real(stream, ident, parent)
            kernel.shell_handlers["execute_request"] = only_the_token
            """),
        # not defeated (README: what a determined student can still do): the graded function, once called by the
        # check with the right answer, replaces the check helpers for the rest of the check
        "calltime": with_code(stub, "a1_q1_code", """
            def asymmetric_l2(u, tau):
                globals()["check_close"] = globals()["check_shape"] = globals()["check_raises"] = lambda *a, **k: None
                return 0.9
            """),
        # swallows every exception in the following cells: no error output
        "custom_exc": with_code(stub, "a1_q1_code",
                                "get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)"),
        # for six seconds: overwrites the others' submissions, feedback and grades, and kills another kernel; it is
        # graded first, so that without a sandbox its victim is one of the next notebooks, all expected to score 0
        "a_vandal": with_code(stub, "a1_q1_code", header=header, code="""
            import glob, os, signal, time
            end, killed = time.time() + 6, False
            while time.time() < end:
                for path in glob.glob(SUBS + "/*/*.ipynb") + glob.glob(FEEDBACK + "/*/*.ipynb") + [CSV]:
                    try:
                        if os.path.islink(path) or not os.path.isfile(path):  # never through the test's own links
                            continue
                        with open(path, "w") as f:
                            f.write("student,assignment,total\\nvandal,a1_expectiles,8\\ngood,a1_expectiles,0\\n")
                    except OSError:
                        pass
                for pid in filter(str.isdigit, os.listdir("/proc")):
                    try:
                        if not killed and int(pid) != os.getpid() and MARK.encode() in open(f"/proc/{pid}/environ",
                                                                                              "rb").read():
                            os.kill(int(pid), signal.SIGKILL)
                            killed = True
                    except (OSError, ValueError):
                        pass
                time.sleep(0.3)
            """),
        # a daemon (double fork, new session, holding stderr) that rewrites grades.csv later, and a `sleep`
        "daemon": with_code(stub, "a1_q1_code", header=header, code=f"""
            import os, subprocess, sys
            loop = ("import sys, time\\n"
                    "for _ in range(120):\\n"
                    "    time.sleep(0.5)\\n"
                    "    try:\\n"
                    "        open(sys.argv[1], 'w').write('student,total\\\\nhacked,999\\\\n')\\n"
                    "    except OSError:\\n"
                    "        pass\\n")
            child = os.fork()
            if child == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv(sys.executable, [sys.executable, "-c", loop, CSV, MARK])
                os._exit(0)
            os.waitpid(child, 0)
            subprocess.Popen(["sleep", "{SLEEP}"], start_new_session=True)
            """),
        # three children that each hold 1.2 GB at once (under a 2 GB limit per process); if two or more manage
        # that, the kernel ends itself
        "memory": appended(stub, """
            import os, subprocess, sys
            hold = ("import time\\nb = bytearray(1_200_000_000)\\n"
                    "for i in range(0, len(b), 4096):\\n    b[i] = 1\\ntime.sleep(4)\\n")
            children = [subprocess.Popen([sys.executable, "-c", hold]) for _ in range(3)]
            if sum(child.wait() == 0 for child in children) > 1:
                os._exit(3)
            """),
    }
    for student, nb in notebooks.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / "a1_expectiles.ipynb")
    (root / "source_copy.ipynb").write_bytes(SOURCE.read_bytes())  # a link to it stands for one to the source
    for student, target in (("link_source", root / "source_copy.ipynb"), ("link_passwd", Path("/etc/passwd"))):
        (subs / student).mkdir()
        (subs / student / "a1_expectiles.ipynb").symlink_to(target)
    (subs / "fifo").mkdir()
    os.mkfifo(subs / "fifo" / "a1_expectiles.ipynb")
    unreadable = {"binary": bytes(range(256)), "empty": b"", "not_json": b"root:x:0:0:root:/root:/bin/bash\n",
                  "no_cells": b'{"metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
                  "nbformat_99": b'{"cells": [], "metadata": {}, "nbformat": 99, "nbformat_minor": 0}'}
    for student, data in unreadable.items():
        (subs / student).mkdir()
        (subs / student / "a1_expectiles.ipynb").write_bytes(data)
    os.environ["IQLKIT_ATTACK_MARK"] = MARK  # passes into the kernels (IQLKIT_ variables do)
    try:
        results = autograde(SOURCE, subs, out, timeout_s=120, cell_timeout_s=60, workers=2, smoke=True, memory_gb=2)
    finally:
        del os.environ["IQLKIT_ATTACK_MARK"]
    csv_after = out.read_text()
    time.sleep(2)  # a surviving daemon would rewrite the CSV by now
    return {r.student: r for r in results}, out, csv_after, unreadable


def test_honest_students_are_graded_as_usual(attacked):
    results = attacked[0]
    assert results["good"].total == 8 and results["good"].status == "ok" and not results["good"].flags
    assert results["stub"].total == 0 and results["stub"].status.startswith("ok") and not results["stub"].flags


@pytest.mark.parametrize("student", ["patch", "excepthook", "transformer", "event", "handler", "forged_log",
                                     "log_rewrite", "custom_exc", "a_vandal", "daemon"])
def test_tricks_do_not_turn_failures_into_passes(attacked, student):
    result = attacked[0][student]
    auto = {q.grade_id: result.points[q.grade_id] for q in result.questions if q.auto}
    assert auto == {"a1_q1_loss": 0.0, "a1_q2_expectile": 0.0, "a1_q3_lemma1": 0.0}, (result.status, result.flags)


@pytest.mark.parametrize("student, kinds", [
    ("disk", {"files", "interpreter internals"}),
    ("patch", {"patches a module or a read-only name", "rebinds what the read-only cells define"}),
    ("excepthook", {"IPython or kernel internals"}), ("transformer", {"IPython or kernel internals"}),
    ("event", {"IPython or kernel internals"}), ("handler", {"IPython or kernel internals"}),
    ("calltime", {"interpreter internals"}),
    ("custom_exc", {"IPython or kernel internals"}), ("a_vandal", {"files", "processes or threads"}),
    ("daemon", {"processes or threads"}), ("memory", {"processes or threads"})])
def test_tampering_is_flagged_for_review(attacked, student, kinds):
    flags = "; ".join(attacked[0][student].flags)
    assert all(kind in flags for kind in kinds), flags


def test_the_kernel_undoes_hooks_and_patches_before_each_check(attacked):
    results = attacked[0]
    assert "check helpers" in results["patch"].flags[-1] and "library modules" in results["patch"].flags[-1]
    assert "input transformers" in results["transformer"].flags[-1]
    assert "event callbacks" in results["event"].flags[-1]
    assert "kernel objects" in results["handler"].flags[-1]
    assert "IPython hooks" in results["custom_exc"].flags[-1]


def test_what_only_a_sandbox_prevents(attacked, here):
    if not here.bwrap:
        pytest.skip("bubblewrap is not available here: kernels run unconfined")
    results, out = attacked[0], attacked[1]
    assert results["disk"].total == 0, "the source notebook is out of the kernel's view"
    ran = [s for s in results if (out.with_suffix("") / s / "a1_expectiles.ipynb").exists()]
    assert len(ran) >= 15 and all(read(out.with_suffix("") / s / "a1_expectiles.ipynb").cells for s in ran), \
        "the vandal overwrote feedback notebooks"
    assert not [s for s, r in results.items() if "kernel died" in r.status], "the vandal killed other kernels"


def test_no_file_contents_and_no_reading_through_links_or_fifos(attacked):
    results, out, _, unreadable = attacked
    for student, kind in (("link_source", "symbolic link"), ("link_passwd", "symbolic link"), ("fifo", "FIFO")):
        assert results[student].status == f"rejected: not a regular file ({kind})" and results[student].total == 0
    for student in unreadable:
        assert results[student].status.startswith("unreadable notebook") and results[student].total == 0
    assert "root:" not in out.read_text()
    assert not (out.with_suffix("") / "link_source").exists(), "the linked source notebook never ran"


def test_nothing_is_left_running_and_the_grades_stay_put(attacked):
    results, out, csv_after, _ = attacked
    assert not leftovers(), leftovers()
    assert out.read_text() == csv_after, "something rewrote grades.csv after the grader finished"
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert rows["daemon"]["total"] == "0" and rows["good"]["total"] == "8"
    assert results["daemon"].seconds < 60, "a daemon holding stderr made the grader wait"


def test_memory_is_capped_per_notebook(attacked, here):
    if not here.cgroups:
        pytest.skip("no writable cgroups here: memory is capped per process only")
    status = attacked[0]["memory"].status
    assert status.startswith("ok"), f"two children held 1.2 GB each under a 2 GB notebook limit: {status}"


def test_a_killed_grader_keeps_the_finished_rows(tmp_path):
    subs, out = tmp_path / "in", tmp_path / "grades.csv"
    (subs / "a_quick").mkdir(parents=True)
    nbformat.write(student_version(read(SOURCE)), subs / "a_quick" / "a1_expectiles.ipynb")
    (subs / "b_endless").mkdir()
    nbformat.write(with_code(read(SOURCE), "a1_q1_code", "while True:\n    pass"),
                   subs / "b_endless" / "a1_expectiles.ipynb")
    grader = subprocess.Popen([sys.executable, "-m", "iqlkit", "assign", "autograde", str(subs), "--source",
                               str(SOURCE), "--out", str(out), "--timeout", "300", "--workers", "1", "--smoke"],
                              env={**os.environ, "IQLKIT_ATTACK_MARK": MARK}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and "a_quick" in out.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # the endless notebook's kernel is running now
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    finally:
        grader.kill()
    rows = list(csv.DictReader(out.open()))
    assert [(r["student"], r["total"]) for r in rows] == [("a_quick", "0")]
    deadline = time.monotonic() + 10
    while leftovers() and time.monotonic() < deadline:  # the kernel sees its parent go (bwrap or its own poller)
        time.sleep(0.2)
    assert not leftovers(), leftovers()
    left = f"iqlkit-kernel-{grader.pid}-*"
    assert list(Path(tempfile.gettempdir()).glob(left)), "the killed grader left its kernel's folder"
    confinement([SOURCE.parent])  # the next grader removes it (and the cgroup)
    assert not list(Path(tempfile.gettempdir()).glob(left))
