"""Super-net training strategies (spos, greedy, non_greedy) written against an update backend.

Example::

    strategy = get_strategy("non_greedy")
    backend = ReferenceBackend(net, strategy, ...)     # or lwsl_ds.engines.DeepSpeedBackend
    out = strategy.step(net, images, labels, backend, step_rng(seed, step))
"""

from __future__ import annotations

from .base import NULL_TRACKER, NullTracker, StepOutput, Strategy, Tracker, Unit, UpdateBackend, step_rng
from .greedy import Greedy
from .non_greedy import NonGreedy
from .spos import SPOS

__all__ = ["Strategy", "Unit", "UpdateBackend", "Tracker", "NullTracker", "NULL_TRACKER", "StepOutput",
           "step_rng", "SPOS", "Greedy", "NonGreedy", "get_strategy", "STRATEGIES"]

STRATEGIES = ("spos", "greedy", "non_greedy")


def get_strategy(name: str, *, layer_input_init: str = "zero") -> Strategy:
    """Strategy by name; ValueError naming the choices otherwise."""
    if name == "spos":
        return SPOS()
    if name == "greedy":
        return Greedy(layer_input_init)
    if name == "non_greedy":
        return NonGreedy(layer_input_init)
    raise ValueError(f"unknown strategy {name!r}; choose one of {list(STRATEGIES)}")
