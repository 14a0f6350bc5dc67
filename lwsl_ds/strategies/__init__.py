"""Super-net training strategies (spos, greedy, non_greedy) written against an update backend.

Example::

    strategy = get_strategy("non_greedy")
    backend = ReferenceBackend(net, strategy, ...)     # or lwsl_ds.engines.DeepSpeedBackend
    out = strategy.step(net, images, labels, backend, step_rng(seed, step))
"""

from __future__ import annotations

from .base import NULL_TRACKER, NullTracker, StepOutput, Strategy, Tracker, Unit, UpdateBackend, step_rng
from .greedy import Greedy
from .layerwise import LayerwiseStrategy
from .non_greedy import NonGreedy
from .spos import SPOS

__all__ = ["Strategy", "Unit", "UpdateBackend", "Tracker", "NullTracker", "NULL_TRACKER", "StepOutput",
           "step_rng", "SPOS", "Greedy", "NonGreedy", "get_strategy", "STRATEGIES"]

# The registry (name -> class): a new strategy is one entry here; the config's train.strategy names it.
STRATEGIES: dict[str, type[Strategy]] = {"spos": SPOS, "greedy": Greedy, "non_greedy": NonGreedy}


def get_strategy(name: str, *, layer_input_init: str = "zero") -> Strategy:
    """Strategy by name; ValueError naming the known ones otherwise."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {list(STRATEGIES)}")
    cls = STRATEGIES[name]
    # Layer-wise strategies choose how a layer's input starts; SPOS trains one path end to end.
    return cls(layer_input_init) if issubclass(cls, LayerwiseStrategy) else cls()
