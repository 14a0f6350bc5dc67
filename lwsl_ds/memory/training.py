"""The micro-batch plan of a training run (``train.micro_batches``), chosen from the accounting when ``auto``.

``auto`` runs :func:`~lwsl_ds.memory.planner.auto_balance` for the run's own space, resolution, strategy and
per-rank batch on the ``meta`` device (a few accounted steps: seconds for the demo space, a few minutes for
the paper space at 224 px), so every rank derives the same plan without communicating.
"""

from __future__ import annotations

import logging
from typing import Mapping, Union

from ..config.schema import ConfigError
from ..space import SuperNet

__all__ = ["resolve_micro_batches"]

log = logging.getLogger(__name__)

MIB = 2 ** 20


def resolve_micro_batches(spec: Union[str, Mapping[int, int], None], net: SuperNet, strategy: str, batch_size: int,
                          *, budget_mib: float | None = None) -> dict[int, int]:
    """Layer (-1 = stem) -> micro-batches for training; {} when micro-batching is off."""
    if spec in (None, "off") or (isinstance(spec, Mapping) and not spec):
        if budget_mib is not None:
            raise ConfigError("train.memory_budget_mib: only used with train.micro_batches: auto")
        return {}
    if strategy == "spos":
        raise ConfigError("train.micro_batches: SPOS trains end-to-end; per-layer micro-batches apply to greedy and "
                         "non_greedy")
    if net.objective.views != 1:
        raise ConfigError("train.micro_batches: the infonce objective over micro-batches sees fewer negatives (a "
                         "different loss); micro-batching supports 'ce' only")
    n = net.num_layers
    if isinstance(spec, Mapping):
        if budget_mib is not None:
            raise ConfigError("train.memory_budget_mib: only used with train.micro_batches: auto")
        plan = {int(k): v for k, v in spec.items()}
        bad = {k: v for k, v in plan.items() if not -1 <= k < n or not isinstance(v, int) or not 1 <= v <= batch_size}
        if bad:
            raise ConfigError(f"train.micro_batches: {bad} invalid; layers are -1 (stem)..{n - 1}, counts 1.."
                             f"{batch_size} (the per-rank batch)")
        return plan
    if spec != "auto":
        raise ConfigError(f"train.micro_batches: {spec!r} is not 'off', 'auto' or a mapping layer -> count")
    from .planner import auto_balance

    budget = None if budget_mib is None else int(budget_mib * MIB)
    bal = auto_balance(net.space, strategy, batch_size, budget=budget)
    plan = {i: m for i, m in sorted(bal.plan.items())}
    log.info("micro-batches per layer (auto, budget %.1f MiB of activations, accounted peak %.1f MiB, max/mean "
             "layer %.2f): %s", bal.budget / MIB, bal.account.activation_peak / MIB, bal.balance_ratio(),
             " ".join(f"{'stem' if i < 0 else f'L{i}'}:{m}" for i, m in plan.items()))
    return plan
