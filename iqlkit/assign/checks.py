"""Self-checks for assignment notebooks: each failure says what was expected and what came back."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _show(x: Any) -> str:
    """A short printable form of a value: arrays with their shape, a few entries, 6 significant digits."""
    if isinstance(x, np.ndarray) and x.ndim > 0:
        return f"array of shape {x.shape} {np.array2string(x, precision=6, threshold=8, edgeitems=3)}"
    return repr(x.item() if isinstance(x, (np.ndarray, np.generic)) else x)


def _as_array(name: str, x: Any) -> np.ndarray:
    if x is None:
        raise AssertionError(f"{name}: got None: does your function end with `return ...`?")
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: expected numbers, got {type(x).__name__} {x!r}") from None


def check_shape(name: str, got: Any, shape: tuple[int, ...]) -> None:
    """Raise AssertionError unless `got` (array, tensor or number) has exactly the given shape."""
    actual = _as_array(name, got).shape
    if actual != tuple(shape):
        raise AssertionError(f"{name}: expected shape {tuple(shape)}, got shape {actual}")


def check_close(name: str, got: Any, expected: Any, atol: float = 1e-8, rtol: float = 1e-6) -> None:
    """Raise AssertionError unless |got - expected| <= atol + rtol * |expected| everywhere (same shape too)."""
    g, e = _as_array(name, got), np.asarray(expected, dtype=float)
    if g.shape != e.shape:
        raise AssertionError(f"{name}: expected shape {e.shape}, got shape {g.shape}\n"
                             f"  expected {_show(e)}\n  got      {_show(g)}")
    bad = ~np.isclose(g, e, atol=atol, rtol=rtol)
    if not np.any(bad):
        return
    tolerance = f"(tolerance atol={atol:g}, rtol={rtol:g})"
    if g.ndim == 0:
        raise AssertionError(f"{name}: expected {e.item():.10g}, got {g.item():.10g} {tolerance}")
    i = np.unravel_index(np.argmax(np.where(bad, np.abs(g - e), -1.0)), g.shape)
    raise AssertionError(f"{name}: expected {_show(e)}, got {_show(g)}\n  largest difference at index "
                         f"{tuple(int(k) for k in i)}: expected {e[i]:.10g}, got {g[i]:.10g} {tolerance}")


def check_true(condition: Any, message: str) -> None:
    """Raise AssertionError(message) unless `condition` holds: say in `message` what was expected and what came."""
    if not bool(condition):
        raise AssertionError(message)


def check_raises(name: str, call: Callable[[], Any], error: type[BaseException] = ValueError) -> None:
    """Raise AssertionError unless `call()` raises `error` (e.g. ValueError for tau outside (0, 1))."""
    try:
        result = call()
    except error:
        return
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001 - the message names what came instead
        raise AssertionError(f"{name}: expected {error.__name__}, got {type(e).__name__}: {e}") from None
    raise AssertionError(f"{name}: expected {error.__name__}, but it returned {_show(result)}")
