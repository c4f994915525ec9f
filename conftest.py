"""Test set-up: notebooks run in smoke mode, each within a CPU-time limit, stored without outputs, and leave the
user's datasets alone."""
import os
import tempfile
import time
import warnings
from pathlib import Path

import pytest

os.environ["IQLKIT_SMOKE"] = "1"  # inherited by the nbval kernels
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # two xdist workers on two cores: one thread each, no oversubscription
NOTEBOOK_LIMIT_S = float(os.environ.get("IQLKIT_NOTEBOOK_LIMIT_S", "120"))
_spent: dict[str, float] = {}
_datasets: dict[str, Path] = {}
_wrote: set[str] = set()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, its finished children and its live descendants (Linux /proc), else
    None. CPU time, unlike wall time, does not grow when other jobs share the machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except OSError:
        return None
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime
    return own + sum(cpu_seconds(child) or 0.0 for child in children)


def check_time_limit(what: str, seconds: float, limit: float = NOTEBOOK_LIMIT_S, clock: str = "CPU") -> None:
    """Fail `what` for running past `limit` in smoke mode. A CPU time always counts; a wall time (which a busy
    machine stretches) fails only under CI (the CI variable set) and is a warning elsewhere."""
    if seconds <= limit:
        return
    message = (f"{what} ran {seconds:.0f} {clock}-seconds, over its {limit:.0f} s limit in smoke mode: shrink its "
               f"loops with iqlkit.smoke.pick")
    if clock == "CPU" or os.environ.get("CI"):
        pytest.fail(message)
    warnings.warn(message + " (a wall-clock time: enforced only when CI is set)")


def _kernel_pid(item: pytest.Item) -> int | None:
    """The process id of the nbval kernel running a notebook cell, if it can be found."""
    try:
        return item.parent.kernel.km.provisioner.process.pid
    except AttributeError:
        return None


def pytest_collection_modifyitems(items):
    """The tests marked `long` first: on two xdist workers the longest test then runs beside the rest of the suite
    instead of alone at its end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable: the rest keep their order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Before a notebook's kernel starts: point MINARI_DATASETS_PATH at an empty folder of its own, so that a
    notebook that writes datasets without a temporary MINARI_DATASETS_PATH of its own is caught (see below)."""
    path = str(item.path)
    if path.endswith(".ipynb") and path not in _datasets:
        _datasets[path] = Path(tempfile.mkdtemp(prefix="iqlkit-user-datasets-"))
        os.environ["MINARI_DATASETS_PATH"] = str(_datasets[path])
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Count each notebook's kernel CPU time (wall time where /proc is missing) and fail the cell that takes it past
    NOTEBOOK_LIMIT_S; fail the cell after which the notebook has written into the user's dataset folder."""
    start = time.perf_counter()
    yield
    path = str(item.path)
    if not path.endswith(".ipynb"):
        return
    pid = _kernel_pid(item)
    cpu = cpu_seconds(pid) if pid is not None else None
    if cpu is not None:
        item.user_properties.append(("kernel_cpu_s", cpu))
        check_time_limit(Path(path).name, cpu)
    else:
        _spent[path] = _spent.get(path, 0.0) + time.perf_counter() - start
        check_time_limit(Path(path).name, _spent[path], clock="wall")
    written = sorted(p.relative_to(_datasets[path]) for p in _datasets[path].rglob("*"))
    if written and path not in _wrote:
        _wrote.add(path)
        pytest.fail(f"{Path(path).name} wrote {[str(p) for p in written[:3]]} into the user's MINARI_DATASETS_PATH "
                    f"(~/.minari by default): set MINARI_DATASETS_PATH to a temporary folder before making datasets")


# what the kit depends on, as pip resolved it: printed at the top of every run, so that a failure after an upgrade
# (a new ipykernel, another BLAS kernel under the simulated ant) names its cause in the log
STACK = ("torch", "numpy", "gymnasium", "gymnasium-robotics", "mujoco", "minari", "stable-baselines3", "matplotlib",
         "ipykernel", "ipython", "jupyter_client", "pyzmq", "tornado", "traitlets", "nbclient", "nbformat", "nbgrader",
         "nbval", "ipywidgets", "ray")


def resolved_stack() -> list[str]:
    """'name version' of each package in STACK that is installed, then the CPU and the BLAS kernels numpy uses."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in STACK:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl reports
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    return [", ".join(found), f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                              f"BLAS: {'; '.join(blas) or 'unknown'}"]


def pytest_report_header(config):
    """The resolved versions of the stack, the CPU and its BLAS kernels, at the top of the run (issue 21)."""
    return ["resolved: " + line for line in resolved_stack()]


_reported: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Keep each notebook's kernel CPU seconds so far (the reports carry them from the xdist workers)."""
    for name, value in report.user_properties:
        if name == "kernel_cpu_s" and report.when == "call":
            notebook = report.nodeid.split("::")[0]
            _reported[notebook] = max(_reported.get(notebook, 0.0), value)


def pytest_terminal_summary(terminalreporter):
    """Report every notebook's kernel CPU time against its limit."""
    if _reported:
        terminalreporter.section("notebooks in smoke mode: kernel CPU seconds")
        for notebook, cpu in sorted(_reported.items()):
            terminalreporter.write_line(f"{notebook}: {cpu:.0f} CPU-s (limit {NOTEBOOK_LIMIT_S:.0f})")
