"""The baselines, run through the same IQL engine so that only the named difference changes."""
from __future__ import annotations

from dataclasses import replace

from iqlkit.data import Transitions, top_fraction
from iqlkit.iql import IQLConfig

METHODS = {
    "iql": "IQL as configured",
    "one-step": "tau = 0.5: V and Q evaluate the behaviour policy (SARSA), then AWR: one policy-improvement step",
    "bc": "beta = 0: every AWR weight is exp(0) = 1, so the actor loss is behaviour cloning",
    "top10-bc": "behaviour cloning on the 10% of episodes with the highest returns",
}


def method_setup(method: str, data: Transitions, config: IQLConfig) -> tuple[Transitions, IQLConfig]:
    """(data, config) for one of METHODS, derived from the IQL data and config."""
    if method == "iql":
        return data, config
    if method == "one-step":
        return data, replace(config, tau=0.5)
    if method == "bc":
        return data, replace(config, beta=0.0)
    if method == "top10-bc":
        return top_fraction(data, 0.1), replace(config, beta=0.0)
    raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
