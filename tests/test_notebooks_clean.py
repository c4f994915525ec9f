"""The notebooks as git would commit them: without outputs, with sliders from iqlkit.plots.widgets, and a course that cites
no file the students do not have."""
import json
import subprocess
import warnings
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COURSE_TEXTS = [ROOT / "README.md", *NOTEBOOKS, *sorted((ROOT / "assignments" / "source").glob("*.ipynb")),
                *sorted((ROOT / "iqlkit").rglob("*.py")), *sorted((ROOT / "toy_envs").rglob("*.py"))]
NOT_SHIPPED = ("shared/", "DESIGN.md")  # the kit's working notes and source texts: students do not have them


def committed_text(path: Path, root: Path = ROOT) -> str:
    """The notebook as git would commit it: its staged version (which the nbstripout filter of the README's set-up
    strips on `git add`), so outputs a student's JupyterLab autosaves in the working copy do not count; the file
    itself where there is no git checkout or the notebook was never added."""
    staged = subprocess.run(["git", "show", f":{path.relative_to(root).as_posix()}"], cwd=root, capture_output=True,
                            text=True)
    return staged.stdout if staged.returncode == 0 else path.read_text()


def committed(path: Path, root: Path = ROOT) -> dict:
    """committed_text, parsed."""
    return json.loads(committed_text(path, root))


def test_course_has_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    cells = committed(path)["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, (f"{path.name} would be committed with outputs in cells {dirty}: let git strip them "
                       f"(`nbstripout --install`, the README's set-up step), or clear them "
                       f"(jupyter nbconvert --clear-output --inplace)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_git_filter_leaves_the_stored_notebook_alone(path):
    """The README's filter (nbstripout --keep-id) makes nothing else of a stored notebook, so a fresh clone with the
    filter shows no notebook as modified."""
    nbstripout = pytest.importorskip("nbstripout")
    text = committed_text(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        nb = nbstripout.strip_output(nbformat.reads(text, as_version=nbformat.NO_CONVERT), keep_output=False,
                                     keep_count=False, keep_id=True)
        stripped = nbformat.writes(nb)
    assert stripped.rstrip("\n") + "\n" == text, f"{path.name}: store it as the filter would: nbstripout --keep-id"


def test_committed_is_the_staged_notebook_not_the_working_copy(tmp_path):
    """A notebook a student is playing in (outputs autosaved) passes; the same notebook staged fails."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    notebook = {"cells": [{"cell_type": "code", "source": "1", "metadata": {}, "outputs": [], "execution_count": None}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook))
    subprocess.run(["git", "add", "n.ipynb"], cwd=tmp_path, check=True)
    notebook["cells"][0].update(outputs=[{"output_type": "stream", "name": "stdout", "text": "1"}], execution_count=1)
    path.write_text(json.dumps(notebook))
    assert committed(path, tmp_path)["cells"][0]["outputs"] == []  # the working copy's outputs do not count
    unfiltered = ["git", "-c", "core.attributesFile=/dev/null", "add", "n.ipynb"]  # no nbstripout filter here
    subprocess.run(unfiltered, cwd=tmp_path, check=True)
    assert committed(path, tmp_path)["cells"][0]["execution_count"] == 1  # staged outputs do


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_sliders_redraw_only_on_release(path):
    source = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert "FloatSlider(" not in source and "IntSlider(" not in source, \
        f"{path.name}: build sliders with iqlkit.plots.widgets (continuous_update=False), not ipywidgets directly"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_the_session_first(path):
    """Threads, the known-harmless warnings and the smoke banner are set in one place, before anything is imported
    that could warn (iqlkit.session)."""
    first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    lines = [line for line in "".join(first["source"]).splitlines() if line.strip() and not line.startswith("#")]
    calls = [i for i, line in enumerate(lines) if line.split("#")[0].strip() == "start()"]
    assert calls, f"{path.name}: call iqlkit.session.start() in the first code cell"
    before = [line for line in lines[:calls[0]] if line.startswith(("import ", "from "))
              and line not in ("from iqlkit.session import start", "import os")]  # os: notebook 06 sets MUJOCO_GL
    assert not before, f"{path.name}: call iqlkit.session.start() before importing {before}"


def test_the_course_cites_no_file_the_students_lack():
    found = [f"{path.relative_to(ROOT)} mentions {needle!r}" for path in COURSE_TEXTS
             for needle in NOT_SHIPPED if needle in path.read_text()]
    assert not found, ("; ".join(found) + ": students do not have these files. Cite the paper, the reproducibility "
                       "report, the blog post or the student report by title and authors, and put the facts the "
                       "course needs in the notebook or the README")
