"""Experiments side by side: a job over argument tuples in worker processes (one per core by default)."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable


def process_map(job: Callable, arg_tuples: list[tuple], workers: int | None = None) -> list:
    """[job(*args) for args in arg_tuples], in `workers` processes (default one per CPU core; 1 = in this process)."""
    workers = min(workers or os.cpu_count() or 1, len(arg_tuples))
    if workers == 1:
        return [job(*args) for args in arg_tuples]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(job, *zip(*arg_tuples)))
