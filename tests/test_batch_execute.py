"""Instructors batch-execute the notebooks (jupyter nbconvert --execute, i.e. nbclient) to make handouts: a notebook
with sliders must run to the end headless, without the client waiting on a kernel that is already idle."""
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "02_two_step_mdp.ipynb"  # two sliders, set from code too
CELL_TIMEOUT_S = 300
STALL_S = 60  # a client that waits this long after the kernel went idle is stuck (it used to wait for ever)


class TimedClient(NotebookClient):
    """nbclient, noting how long it waited for each cell."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.waited: dict[int, float] = {}

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        start = time.perf_counter()
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            self.waited[cell_index] = time.perf_counter() - start


def _busy_seconds(cell: nbformat.NotebookNode) -> float:
    """How long the kernel was busy with a cell, from the timestamps nbclient records."""
    stamps = cell.metadata.get("execution", {})
    parse = lambda key: datetime.fromisoformat(stamps[key].replace("Z", "+00:00"))  # noqa: E731
    return (parse("iopub.status.idle") - parse("iopub.status.busy")).total_seconds()


def _run(nb: nbformat.NotebookNode, folder: Path, timeout: int = CELL_TIMEOUT_S) -> dict[int, float]:
    """Execute nb through nbclient; the seconds it waited after the kernel went idle, for cells where that was long."""
    client = TimedClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()  # raises CellExecutionError or CellTimeoutError
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    return {i: round(client.waited[i] - _busy_seconds(nb.cells[i]), 1) for i in code
            if client.waited[i] - _busy_seconds(nb.cells[i]) > STALL_S}


def test_a_slider_moved_many_times_never_leaves_nbclient_waiting(tmp_path):
    """The old sliders (an Output widget) left nbclient waiting on an idle kernel in 5 of 8 runs of this notebook."""
    setup = ("import matplotlib.pyplot as plt\nfrom IPython.display import display\n"
             "from iqlkit.plots.widgets import interactive_figure, tau_slider\n\n"
             "def figure(tau):\n    fig, axes = plt.subplots(1, 3, figsize=(12, 4))\n    axes[0].plot([0, 1], [0, tau])\n"
             "    return fig\n\nw = interactive_figure(figure, tau=tau_slider(0.5))\ndisplay(w)")
    moves = [new_code_cell(f"w.children[0].value = {0.1 + 0.05 * k:.2f}") for k in range(10)]
    stalls = _run(new_notebook(cells=[new_code_cell(setup), *moves]), tmp_path, timeout=STALL_S + 60)
    assert not stalls, f"nbclient waited on an idle kernel after cells {stalls} (seconds)"


def test_a_widget_notebook_runs_headless_through_nbclient(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    stalls = _run(nb, tmp_path)
    assert not stalls, f"nbclient waited on an idle kernel after cells {stalls} (seconds)"
    saved = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"].values()
    images = [w for w in saved if w["model_name"] == "ImageModel"]
    assert images and all(any(b["path"] == ["value"] and b["data"] for b in w.get("buffers", [])) for w in images), \
        "the sliders' figures (PNGs) are saved with the widgets, for the handout"
