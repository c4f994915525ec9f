"""The course's one switch: IQLKIT_SMOKE=1 shrinks long loops so every notebook runs in seconds under test."""
from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")


def is_smoke() -> bool:
    """True when the environment variable IQLKIT_SMOKE is set to 1 (as the test suite does)."""
    return os.environ.get("IQLKIT_SMOKE", "0") == "1"


def pick(full: T, smoke: T) -> T:
    """`full` for a real run, `smoke` under IQLKIT_SMOKE=1 (e.g. steps = pick(20_000, 500))."""
    return smoke if is_smoke() else full
