"""What the grading kernel restores before a check (issue 21): nothing after cells that change nothing, and the
object and attribute after a cell that does. On ipykernel 7.4 / IPython 9 every honest student used to be flagged
for 'kernel objects': IPython leaves `sys.stdout.write` bound to the stream's own method after each cell. If a newly
resolved Jupyter stack changes something else by itself, the first test names it."""
import asyncio
import importlib.metadata as metadata

import nbformat
import pytest

from iqlkit.assign.execute import run_notebook
from iqlkit.assign.sandbox import Confinement, Kernel, _read_only_folders

CHECK = ""  # an empty check cell: the kernel restores before it and reports what it found changed
HONEST = [  # what honest answers do: print, import, compute, plot, show a progress bar, fail and go on
    "",
    "x = 1\nprint('x is', x)",
    "import numpy as np\nnp.ones(3) * 2",
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()",
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass",
    "import sys\nprint('to stderr', file=sys.stderr)",
    "1 / 0",
    "def f(a):\n    return a + 1\nf(2)",
]


def stack() -> str:
    """The resolved versions of the Jupyter packages the grading kernel runs on."""
    return ", ".join(f"{p} {metadata.version(p)}" for p in ("ipykernel", "ipython", "jupyter_client", "pyzmq",
                                                            "tornado", "traitlets"))


def graded(cells: list[str], tmp_path) -> set[str]:
    """Run `cells` in the grader's kernel (unsandboxed), an empty check before the first and after each: what the
    kernel reported it restored before those checks."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CHECK)])
    for code in cells:
        nb.cells += [nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell(CHECK)]
    checks = set(range(0, len(nb.cells), 2))
    binds, roots = _read_only_folders([tmp_path])
    kernel = Kernel(Confinement(False, None, None, binds, roots), 0,
                    [[None, "numpy", None], ["plt", "matplotlib.pyplot", None]], {"MPLBACKEND": "Agg"}, None)
    run = asyncio.run(run_notebook(nb, checks, kernel, 60, 120))
    assert run.status == "ok" and all(v.passed for v in run.verdicts.values()), (run.status, run.verdicts)
    return run.restored


def test_the_kernel_changes_nothing_by_itself_on_the_resolved_jupyter_stack(tmp_path):
    changed = graded(HONEST, tmp_path) - {"namespace imports (plt)"}  # no cell imported plt: the kernel binds it
    assert not changed, (f"on {stack()}, the kernel changes these by itself, so every honest student would be "
                         f"flagged: {sorted(changed)}. Classify them in iqlkit/assign/kernel.py, or bound the stack "
                         f"in requirements.txt")


@pytest.mark.parametrize("cell, found", [
    ("get_ipython().display_pub.publish = print", "IPython hooks (ZMQDisplayPublisher.publish)"),
    ("import sys\nsys.stderr.flush = lambda: None", "kernel objects (OutStream.flush)"),
    ("get_ipython().kernel.shell_handlers['execute_request'] = print", "kernel objects (handlers.execute_request)"),
    ("import numpy\nnumpy.isclose = lambda *a, **k: True", "library modules (numpy.isclose)"),
])
def test_a_change_is_named_by_its_object_and_attribute(tmp_path, cell, found):
    assert found in graded([cell], tmp_path)


def test_the_streams_own_method_rebound_to_itself_is_no_change(tmp_path):
    assert graded(["import sys\nsys.stderr.flush = sys.stderr.flush"], tmp_path) == {"namespace imports (plt)"}
