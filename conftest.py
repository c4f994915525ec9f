"""Test set-up: notebooks run in smoke mode, each within a time limit, and are stored without outputs."""
import os
import time
from pathlib import Path

import pytest

os.environ["IQLKIT_SMOKE"] = "1"  # inherited by the nbval kernels
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # two xdist workers on two cores: one thread each, no oversubscription
NOTEBOOK_LIMIT_S = float(os.environ.get("IQLKIT_NOTEBOOK_LIMIT_S", "120"))
_spent: dict[str, float] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Sum the cell times of each notebook and fail the cell that takes it past NOTEBOOK_LIMIT_S."""
    start = time.perf_counter()
    yield
    path = str(item.path)
    if path.endswith(".ipynb"):
        _spent[path] = _spent.get(path, 0.0) + time.perf_counter() - start
        if _spent[path] > NOTEBOOK_LIMIT_S:
            pytest.fail(f"{Path(path).name} ran {_spent[path]:.0f} s, over its {NOTEBOOK_LIMIT_S:.0f} s limit in "
                        f"smoke mode: shrink its loops with iqlkit.smoke.pick")
