"""Student notebooks from assignment sources, with nbgrader's own preprocessors (as `nbgrader generate_assignment`).

A source holds the solutions between `### BEGIN SOLUTION` / `### END SOLUTION` and hidden tests between
`### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`. The release replaces each solution by nbgrader's stub
(`raise NotImplementedError()`, or "YOUR ANSWER HERE" in written answers), drops the hidden tests and all outputs,
and keeps the nbgrader metadata, so the student notebook also works in an nbgrader course.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions,
                                    ComputeChecksums, LockCells)

LEAKS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME")


def sources(source: Path) -> list[Path]:
    """The assignment notebooks: `source` itself if it is a notebook, else the *.ipynb in it, sorted."""
    source = Path(source)
    found = [source] if source.suffix == ".ipynb" else sorted(source.glob("*.ipynb"))
    if not found:
        raise ValueError(f"no assignment notebooks (*.ipynb) in {source}: pass the folder of the sources, "
                         "e.g. assignments/source")
    return found


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook of one source, in the order of nbgrader's generate_assignment preprocessors."""
    resources: dict = {}
    for step in (CheckCellMetadata(), LockCells(), ClearSolutions(), ClearOutput(), ClearHiddenTests(),
                 ClearMarkScheme(), ComputeChecksums(), CheckCellMetadata()):
        nb, resources = step.preprocess(nb, resources)
    text = nbformat.writes(nb)
    leaked = [marker for marker in LEAKS if marker in text]
    if leaked:
        raise ValueError(f"the student notebook still contains {leaked}: every marker must open and close its "
                         "region inside one cell, at the start of a line")
    return nb


def release(source: Path, out: Path) -> list[Path]:
    """Write the student notebook of every source notebook in `source` (or of the one notebook) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources(source):
        nb = student_version(nbformat.read(path, as_version=4))
        nbformat.write(nb, out / path.name)
        written.append(out / path.name)
    return written
