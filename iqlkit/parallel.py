"""Experiments side by side: a job over argument tuples in worker processes (one per core by default)."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

from tqdm.auto import tqdm


def process_map(job: Callable, arg_tuples: list[tuple], workers: int | None = None, desc: str | None = None) -> list:
    """[job(*args) for args in arg_tuples], in order, in `workers` processes (default one per CPU core; 1 = in this
    process); with a progress bar over the jobs when `desc` is given. `job` must be a module-level function."""
    workers = min(workers or os.cpu_count() or 1, len(arg_tuples))
    with tqdm(total=len(arg_tuples), desc=desc, unit="job", mininterval=2, disable=desc is None) as bar:
        if workers <= 1:
            return [(job(*args), bar.update())[0] for args in arg_tuples]
        with ProcessPoolExecutor(workers) as pool:
            return [(r, bar.update())[0] for r in pool.map(job, *zip(*arg_tuples))]
