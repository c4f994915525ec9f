"""The first call of every notebook (and of the command line): torch's thread count and the known-harmless warnings.

Threads. One IQL update of the kit's networks is a few hundred small matrix products, too small to split well, and
on a busy machine a second thread waits for a core that another process holds. One agent, batch 256, PointMaze's 6
inputs, updates/s with 1 / 2 threads, on this project's 2-core CPU (torch 2.13):

| networks | loaded (2026-11-28, load average 5-7: a training job and tests) | idle (2026-11-21, the README's bench) |
| --- | --- | --- |
| 2 x 64 (pointmaze preset) | 56-69 / 3 | not measured (the shared machine was never idle) |
| 2 x 256 (antmaze preset) | 24 / 2-3 | 105 / 145 (with AntMaze's 31 inputs) |

So the rule is one thread: at most a third slower on an idle machine, and 10-20x faster on a busy one (and the
notebooks that train several runs at once do it in processes, one per core). `start(threads)` or the environment
variable IQLKIT_THREADS sets another count, e.g. 2 on an idle 2-core machine for 2 x 256 networks.
"""
from __future__ import annotations

import importlib.util
import os
import warnings

import torch

from iqlkit.smoke import is_smoke

SMOKE_BANNER = ("SMOKE TEST (IQLKIT_SMOKE=1): long loops are cut to a few steps, so what training produces below "
                "(numbers, figures) means nothing; the text quotes a full run")

# (message regex, category): the warnings the kit knows to be harmless for its use; start() silences these only.
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Minari asks every dataset writer for metadata that the kit's small generated datasets do not need
    (r"`(code_permalink|author|author_email)` is set to None", UserWarning),
    # gymnasium: the D4RL-era AntMaze datasets (and the kit's recorded ones) use AntMaze v4 on purpose
    (r".*The environment AntMaze_\w+-v4 is out of date", DeprecationWarning),
)


def _drop_adroit_notice() -> None:
    """gymnasium-robotics prints a notice about its Adroit hands (never used here) to stderr on import: drop it."""
    try:
        from farama_notifications import notifications
    except ImportError:
        return
    notices = notifications.get("gymnasium_robotics", {})
    for version in [v for v, text in notices.items() if text.startswith("AdroitHand")]:
        del notices[version]


def quiet_warnings() -> None:
    """Silence HARMLESS_WARNINGS and gymnasium-robotics' Adroit notice (effective if called before it is imported)."""
    if importlib.util.find_spec("gymnasium") is not None:
        import gymnasium  # noqa: F401  (its import puts a filter of its own first; ours must come after it)
    for message, category in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    _drop_adroit_notice()


def start(threads: int | None = None) -> int:
    """Set torch's CPU threads (default: IQLKIT_THREADS, else 1), silence the known-harmless warnings and, under
    IQLKIT_SMOKE=1, say that the numbers that follow mean nothing; returns the thread count."""
    n = threads if threads is not None else int(os.environ.get("IQLKIT_THREADS", "1"))
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    quiet_warnings()
    if is_smoke():
        print(SMOKE_BANNER)
    return n
