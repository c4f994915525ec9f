"""The course's notebooks as pages of the site.

A page `docs/notebooks/<name>.nblink` is a small JSON file: `path`, the notebook (relative to the repository), and
`strips`, for each slider of the notebook (the variable that holds its `interactive_figure`) the values at which the
page shows its figure, per control: `{"path": "notebooks/01_expectile_regression.ipynb", "strips": {"w": {"tau":
[0.1, 0.5, 0.9]}}}`. MyST-NB reads it through `read` (registered in conf.py as the reader of `.nblink`), executes
the notebook (cached) and renders it. The notebook itself stays as stored, without outputs: `read` adds, in memory,
after each slider's cell, a note on how to drag the slider in JupyterLab and one hidden cell per control that draws
the strip (iqlkit.plots.strips.slider_strip), and hides the slider's own output, which a static page cannot move.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = ".nblink"
SLIDER = re.compile(r"^(\w+)\s*=\s*interactive_figure\(", re.MULTILINE)
SITE_CELL = "site-"  # the id prefix of the cells that `read` adds
_pages: dict[Path, nbformat.NotebookNode] = {}  # the notebooks as read, which MyST-NB then executes in place


def parse_link(text: str) -> dict:
    """The .nblink's fields, checked: `path` (a string) and `strips` ({variable: {control: [values]}})."""
    link = json.loads(text)
    if not isinstance(link.get("path"), str):
        raise ValueError(f"a {SUFFIX} file needs a 'path' to a notebook, got {link!r}")
    link.setdefault("strips", {})
    return link


def notebook_path(link: dict) -> Path:
    """The notebook a link names: a path relative to the repository's root, or absolute."""
    path = Path(link["path"])
    return path if path.is_absolute() else ROOT / path


def shown_path(path: Path) -> str:
    """The notebook's path as a student types it, from the root of their clone."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def sliders(nb: nbformat.NotebookNode) -> dict[str, int]:
    """{variable: index of the cell that assigns it} for each `variable = interactive_figure(...)` of a notebook;
    a slider not assigned to a variable (its page could not draw its strip) is an error."""
    code = [(i, cell.source) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    found = {name: i for i, source in code for name in SLIDER.findall(source)}
    calls = sum(source.count("interactive_figure(") for _, source in code)
    if calls != len(found):
        raise ValueError(f"{calls - len(found)} interactive_figure(...) not assigned to a variable: write "
                         "`w = interactive_figure(...)` so that the site can draw the figure at several values")
    return found


def _values_text(name: str, values: list[float]) -> str:
    """'tau = 0.1, 0.5 and 0.9'."""
    shown = [f"{v:g}" for v in values]
    return f"{name} = " + (", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0])


def strip_cells(variable: str, controls: dict[str, list[float]], notebook: str) -> list[nbformat.NotebookNode]:
    """The note and the hidden strip cells that follow a slider's cell on its page."""
    names = " and ".join(f"`{name}`" for name in controls)
    note = nbformat.v4.new_markdown_cell(
        f"```{{admonition}} The slider{'s' if len(controls) > 1 else ''} of this cell: {', '.join(controls)}\n"
        f":class: tip\n"
        f"In JupyterLab this cell shows a slider for {names} above a figure that redraws when you release it. A web "
        f"page cannot run Python, so below is the same figure, drawn while this site was built by the same function "
        f"the slider calls, at {'; then at '.join(_values_text(n, v) for n, v in controls.items())}. To drag the "
        f"slider yourself, open the notebook in JupyterLab, `jupyter lab {notebook}`, and run it from the top "
        f"(*Run > Run All Cells*).\n```", id=f"site-{variable}-note")
    cells = [note]
    for name, values in controls.items():
        code = (f"from iqlkit.plots.strips import slider_strip\n\n"
                f"slider_strip({variable}, {name!r}, {[float(v) for v in values]!r});")
        cells.append(nbformat.v4.new_code_cell(code, id=f"site-{variable}-{name}",
                                               metadata={"tags": ["remove-input"]}))
    return cells


def read(text: str) -> nbformat.NotebookNode:
    """The notebook a .nblink names, as its page runs it: the stored cells, each slider followed by its strips."""
    link = parse_link(text)
    path = notebook_path(link)
    nb = nbformat.read(path, as_version=4)
    try:
        found = sliders(nb)
    except ValueError as error:
        raise ValueError(f"{path.name}: {error}") from None
    unknown, missing = sorted(set(link["strips"]) - set(found)), sorted(set(found) - set(link["strips"]))
    if unknown or missing:
        raise ValueError(f"{path.name}: its page's {SUFFIX} must list the values to draw for each slider "
                         f"(variables assigned from interactive_figure: {sorted(found)}): "
                         + (f"no slider {unknown} in the notebook" if unknown else f"no strips for {missing}"))
    for variable in sorted(link["strips"], key=found.get, reverse=True):  # from the end: indices stay valid
        index = found[variable]
        nb.cells[index].metadata.setdefault("tags", []).append("remove-output")
        nb.cells[index + 1:index + 1] = strip_cells(variable, link["strips"][variable], shown_path(path))
    _pages[path] = nb
    return nb


def failed_cell(nb: nbformat.NotebookNode) -> str | None:
    """Which cell of an executed (in place) notebook failed, by its number and id in the stored notebook, and
    how: the cell with an error output, else the last one that started (a cell that ran past its timeout)."""
    started = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.get("execution_count")]
    errors = [i for i in started if any(out.output_type == "error" for out in nb.cells[i].outputs)]
    if not started:
        return None
    index = errors[0] if errors else started[-1]
    cell, stored = nb.cells[index], [c for c in nb.cells[:index + 1] if not c.get("id", "").startswith(SITE_CELL)]
    how = next((f"{out.ename}: {out.evalue}" for out in cell.outputs if out.output_type == "error"),
               "ran past nb_execution_timeout")
    if cell.get("id", "").startswith(SITE_CELL):
        return f"the site's strip cell after cell {len(stored)} (id {stored[-1].get('id')}): {how}"
    return f"cell {len(stored)} (id {cell.get('id')}): {how}"


def _note_notebook(app: Sphinx, docname: str, source: list[str]) -> None:
    """Rebuild a notebook's page when the notebook changes (Sphinx sees only the .nblink's own date)."""
    if str(app.env.doc2path(docname)).endswith(SUFFIX):
        app.env.note_dependency(str(notebook_path(parse_link(source[0]))))


def _name_failed_cell(app: Sphinx, exception: Exception | None) -> None:
    """A build stopped by a failing notebook (nb_execution_raise_on_error) says which notebook and which cell."""
    source = Path(str(exception)) if type(exception).__name__ == "ExecutionError" else None
    if source is None or source.suffix != SUFFIX or not source.is_file():
        return
    path = notebook_path(parse_link(source.read_text()))
    where = failed_cell(_pages[path]) if path in _pages else None
    LOGGER.error(f"{shown_path(path)} failed while the site executed it"
                 + (f", in {where}" if where else "") + f" (its page: {source})")


def setup(app: Sphinx) -> dict:
    """Register the hooks (conf.py registers `read` with MyST-NB's nb_custom_formats)."""
    app.connect("source-read", _note_notebook)
    app.connect("build-finished", _name_failed_cell)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
