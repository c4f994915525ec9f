"""Classroom assignments: every source passes its own tests, releases hide the solutions and score 0, and the
autograder gives full marks to the solutions, zero to the stubs, and survives crashing and endless submissions."""
import ast
import csv
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from conftest import NOTEBOOK_LIMIT_S as LIMIT_S, check_time_limit  # the smoke-mode budget, shared with the notebooks
from iqlkit.assign.checks import check_close, check_raises, check_shape, check_true
from iqlkit.assign.grade import autograde, questions
from iqlkit.assign.release import release

pytestmark = pytest.mark.long  # every source, release and grading run: minutes of kernels
SOURCE = Path(__file__).parents[1] / "assignments" / "source"
SOURCES = sorted(SOURCE.glob("*.ipynb"))
NAMES = [p.stem for p in SOURCES]
# What each student notebook must not import: the kit's answer to its questions (hidden tests may, they are removed).
FORBIDDEN = {"a1_expectiles": {"modules": {"iqlkit.theory.expectile", "iqlkit.experiments.regression"}, "names": set()},
             "a2_tabular_iql": {"modules": set(),
                                "names": {"expectile_value_iteration", "support_optimal_q", "sampled_iql",
                                          "tau_maze_figure"}},
             # A3 subclasses IQL to run the student's losses; the kit's loss helpers must not come in
             "a3_iql_update": {"modules": {"iqlkit.theory.expectile"}, "names": {"expectile_loss"}}}


def nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def read(path: Path):
    return nbformat.read(path, as_version=4)


def solution_lines(nb, min_length: int = 25) -> list[str]:
    """The lines between BEGIN SOLUTION and END SOLUTION markers, stripped, of at least `min_length` characters."""
    found, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) >= min_length:
                found.append(line.strip())
    return found


def stub_names(nb) -> set[str]:
    """Names the solution regions assign: in a student notebook they are undefined until the student writes them."""
    names = set()
    for line in solution_lines(nb, min_length=0):
        target = re.match(r"([A-Za-z_][\w, ]*?)\s*=[^=]", line)
        names |= {n.strip() for n in target.group(1).split(",")} if target else set()
    return names


def with_cell(nb, grade_id: str, source: str):
    """A copy of `nb` with the source of the cell `grade_id` replaced."""
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    [cell] = [c for c in nb.cells if nbgrader(c).get("grade_id") == grade_id]
    cell.source = source
    return nb


def hand_in(root: Path, student: str, notebooks: dict[str, object]) -> None:
    (root / student).mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, root / student / f"{name}.ipynb")


def test_there_are_assignments():
    assert {"a1_expectiles", "a2_tabular_iql"} <= set(NAMES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_is_stored_without_outputs_and_well_formed(path):
    nb = read(path)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name} has outputs in cells {dirty}: clear them (nbconvert --clear-output --inplace)"
    asked = questions(nb)
    assert any(q.auto for q in asked), f"{path.name} has no autograded question"
    for cell in nb.cells:
        meta = nbgrader(cell)
        if meta.get("grade") and not meta.get("solution"):
            public = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert public.strip(), f"{path.name}: test cell {meta['grade_id']} has no public checks before hidden ones"
        if meta.get("solution") and cell.cell_type == "code":
            assert "### BEGIN SOLUTION" in cell.source, \
                f"{path.name}: solution cell {meta['grade_id']} has no ### BEGIN SOLUTION region to replace by the stub"


def test_grade_ids_are_unique_across_assignments():
    ids = [q.grade_id for p in SOURCES for q in questions(read(p))]
    assert len(ids) == len(set(ids)), f"repeated grade ids (they name the CSV columns): {sorted(ids)}"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release")
    written = release(SOURCE, out)
    assert sorted(p.name for p in written) == [p.name for p in SOURCES]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_release_hides_solutions_and_hidden_tests(released, name):
    source, student = read(SOURCE / f"{name}.ipynb"), read(released / f"{name}.ipynb")
    text = nbformat.writes(student)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    leaked = [line for line in solution_lines(source) if line in text]
    assert not leaked, f"solution code in the student notebook {name}: {leaked[:3]}"
    assert "raise NotImplementedError()" in text
    assert not any(c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert [q.grade_id for q in questions(student)] == [q.grade_id for q in questions(source)], \
        "the student notebook keeps nbgrader's metadata (grade ids, points)"


@pytest.mark.parametrize("name", [n for n in NAMES if n in FORBIDDEN])
def test_student_notebook_does_not_import_the_answer(released, name):
    modules, names = set(), set()
    for cell in read(released / f"{name}.ipynb").cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Import):
                    modules |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    modules.add(node.module)
                    names |= {a.name for a in node.names}
    assert not modules & FORBIDDEN[name]["modules"] and not names & FORBIDDEN[name]["names"], \
        f"{name}'s student notebook imports the kit's answer: {modules & FORBIDDEN[name]['modules']} " \
        f"{names & FORBIDDEN[name]['names']}"


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released):
    """One autograde run: the sources as one student's submission, the released stubs as another's."""
    root = tmp_path_factory.mktemp("graded")
    hand_in(root / "in", "solution", {p.stem: read(p) for p in SOURCES})
    hand_in(root / "in", "stubs", {n: read(released / f"{n}.ipynb") for n in NAMES})
    results = autograde(SOURCE, root / "in", root / "grades.csv", timeout_s=3 * LIMIT_S, workers=2, smoke=True)
    return {(r.student, r.assignment): r for r in results}, root / "grades.csv"


@pytest.mark.parametrize("name", NAMES)
def test_solution_gets_full_marks_within_the_smoke_budget(graded, name):
    result = graded[0]["solution", name]
    assert result.status == "ok", result.status
    assert result.total == result.max_total > 0
    assert all(result.points[q.grade_id] is None for q in result.questions if not q.auto), "written: graded by hand"
    check_time_limit(f"{name}'s solution", result.seconds, LIMIT_S, clock="wall")  # wall time: enforced under CI
    assert not result.flags, f"an honest solution flagged for review: {result.flags}"


@pytest.mark.parametrize("name", NAMES)
def test_stubs_score_zero_with_hidden_tests(graded, name):
    result = graded[0]["stubs", name]
    assert result.status.startswith("ok"), result.status
    assert all(result.points[q.grade_id] == 0 for q in result.questions), result.points
    assert not result.flags, f"a stub flagged for review: {result.flags}"


def test_grade_csv(graded):
    results, path = graded
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2 * len(NAMES)
    by = {(r["student"], r["assignment"]): r for r in rows}
    for name in NAMES:
        for q in results["solution", name].questions:
            column = f"{q.grade_id} ({q.points:g})"
            assert by["solution", name][column] == ("" if not q.auto else f"{q.points:g}")
            assert by["stubs", name][column] == "0"
        full = f"{results['solution', name].max_total:g}"
        assert by["solution", name]["total"] == by["solution", name]["max_total"] == full
    executed = read(path.with_suffix("") / "solution" / f"{NAMES[0]}.ipynb")
    assert any(c.get("outputs") for c in executed.cells), "the executed notebooks are kept for feedback"


@pytest.fixture(scope="module")
def student_view(tmp_path_factory, released):
    """The released notebooks run as handed out (public checks only), graded against themselves."""
    root = tmp_path_factory.mktemp("student_view")
    hand_in(root / "in", "student", {n: read(released / f"{n}.ipynb") for n in NAMES})
    results = autograde(released, root / "in", root / "grades.csv", timeout_s=3 * LIMIT_S, workers=2, smoke=True)
    return {r.assignment: r for r in results}, root / "grades"


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_runs_up_to_its_stubs_and_its_checks_fail(student_view, name):
    results, executed = student_view
    assert results[name].status.startswith("ok"), results[name].status
    assert all(results[name].points[q.grade_id] == 0 for q in results[name].questions)
    from_stubs = {f"name '{n}' is not defined" for n in stub_names(read(SOURCE / f"{name}.ipynb"))}
    for i, cell in enumerate(read(executed / "student" / f"{name}.ipynb").cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error" and not nbgrader(cell).get("grade"):
                assert out.ename == "NotImplementedError" or out.ename == "NameError" and out.evalue in from_stubs, \
                    f"{name} cell {i} raised {out.ename}: {out.evalue}, which is not the work of a stub"


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory, released):
    """A1 handed in by a good student next to a crash, two endless loops, a memory hog, an endless printer, tampering
    and a no-show."""
    root = tmp_path_factory.mktemp("adversarial")
    source, stub = read(SOURCE / "a1_expectiles.ipynb"), read(released / "a1_expectiles.ipynb")
    q2 = next(c.source for c in source.cells if nbgrader(c).get("grade_id") == "a1_q2_code")
    submissions = {
        "good": source,
        "crash": with_cell(source, "a1_q2_code", "import os\nos._exit(1)"),
        "endless": with_cell(source, "a1_q2_code", "while True:\n    pass"),
        "deaf": with_cell(source, "a1_q2_code", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                                "while True:\n    pass"),
        "hog": with_cell(source, "a1_q2_code", "hoard = bytearray(3 * 2**30)\n" + q2),  # fine without the cap
        "chatty": with_cell(source, "a1_q2_code", "while True:\n    print('x' * 100, flush=True)"),  # floods the grader
        "tamper": with_cell(stub, "a1_q1_loss", "print('all good')"),
    }
    for student, nb in submissions.items():
        hand_in(root / "in", student, {"a1_expectiles": nb})
    (root / "in" / "absent").mkdir()
    results = autograde(SOURCE / "a1_expectiles.ipynb", root / "in", root / "grades.csv", timeout_s=120,
                        cell_timeout_s=20, workers=2, smoke=True, memory_gb=2)
    return {r.student: r for r in results}, root / "grades"


def test_autograder_survives_bad_submissions(adversarial):
    results, executed = adversarial
    assert results["good"].total == results["good"].max_total and results["good"].status == "ok"
    q1 = {"a1_q1_loss": 2.0}
    for student in ("crash", "endless", "deaf", "hog", "chatty"):  # Q1 was done before the bad cell: it keeps its 2
        auto = {k: v for k, v in results[student].points.items() if v is not None}
        assert auto == {**q1, "a1_q2_expectile": 0.0, "a1_q3_lemma1": 0.0}, (student, results[student].status)
    assert results["crash"].status.startswith("kernel died")
    assert "ran past 20 s" in results["endless"].status and "ran past 20 s" in results["chatty"].status
    assert "did not stop when interrupted" in results["deaf"].status
    assert "MemoryError" in str(read(executed / "hog" / "a1_expectiles.ipynb").cells)
    assert results["absent"].status == "missing" and results["absent"].total == 0


def test_autograder_restores_tampered_tests(adversarial):
    results, executed = adversarial
    assert results["tamper"].points["a1_q1_loss"] == 0
    restored = next(c for c in read(executed / "tamper" / "a1_expectiles.ipynb").cells
                    if nbgrader(c).get("grade_id") == "a1_q1_loss")
    original = next(c for c in read(SOURCE / "a1_expectiles.ipynb").cells
                    if nbgrader(c).get("grade_id") == "a1_q1_loss")
    assert restored.source == original.source and "BEGIN HIDDEN TESTS" in restored.source
    assert restored.outputs[-1].ename == "NotImplementedError"


def test_release_refuses_an_unclosed_solution(tmp_path):
    unclosed = "def f():\n    ### BEGIN SOLUTION\n    return 1\n"
    nb = with_cell(read(SOURCE / "a1_expectiles.ipynb"), "a1_q1_code", unclosed)
    nbformat.write(nb, tmp_path / "broken.ipynb")
    with pytest.raises(RuntimeError, match="no end solution"):
        release(tmp_path / "broken.ipynb", tmp_path / "out")


def test_checks_say_what_was_expected_and_what_came_back():
    with pytest.raises(AssertionError, match=r"loss\(1\): expected 0.9, got 0.1"):
        check_close("loss(1)", 0.1, 0.9)
    with pytest.raises(AssertionError, match=r"expected shape \(4,\), got shape \(3,\)"):
        check_close("V", np.zeros(3), np.zeros(4))
    with pytest.raises(AssertionError, match=r"largest difference at index \(1, 0\): expected 2, got 5"):
        check_close("Q", [[1.0, 1.0], [5.0, 1.0]], [[1.0, 1.0], [2.0, 1.0]])
    with pytest.raises(AssertionError, match="got None"):
        check_close("f()", None, 1.0)
    with pytest.raises(AssertionError, match="expected ValueError, but it returned -0.5"):
        check_raises("f(tau=2)", lambda: -0.5)
    with pytest.raises(AssertionError, match=r"Q: expected shape \(3, 4\), got shape \(3,\)"):
        check_shape("Q", np.zeros(3), (3, 4))
    with pytest.raises(AssertionError, match="^the message$"):
        check_true(False, "the message")
    check_close("fine", np.ones(3), [1, 1, 1 + 1e-9])
    check_raises("fine", lambda: check_true(False, "raised"), AssertionError)
