"""The memory levers around an update backend: the one place that resolves them and fixes the wrapping order.

Training (``lwsl_ds.engines.build_backend``) and the accounting (:func:`~lwsl_ds.memory.step.account_step`)
both call :func:`resolve_levers` then :func:`wrap_levers`, so the accounted step runs the same wrappers, in
the same order, as the trained one:

    MicroBatchBackend( CheckpointBackend( backend ) )

micro-batches outermost (each micro-batch runs checkpointed), activation checkpointing around the engines
(or the accounting backend). Host offload is not a wrapper: it lives inside the DeepSpeed backend, which
owns the optimizer state (lwsl_ds/engines/offload.py); the accounting counts it by formula.

``train.micro_batches: auto`` runs :func:`~lwsl_ds.memory.planner.auto_balance` for the run's own space,
resolution, strategy and per-rank batch on the ``meta`` device (a few accounted steps: seconds for the demo
space, a few minutes for the paper space at 224 px), so every rank derives the same plan without
communicating.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..config.schema import ConfigError
from ..config.sections.train import Levers
from ..space import SuperNet
from .balance import MicroBatchBackend
from .checkpointing import CheckpointBackend

__all__ = ["Levers", "NO_LEVERS", "resolve_levers", "wrap_levers"]

log = logging.getLogger(__name__)

MIB = 2 ** 20
NO_LEVERS = Levers()


def resolve_levers(levers: Levers, net: SuperNet, strategy: str, batch_size: int) -> Levers:
    """``levers`` with an explicit micro-batch plan (``auto`` planned from the accounting), checked for this run."""
    spec = levers.micro_batches
    if spec == "off" or not spec:
        return levers if spec == "off" else dataclasses.replace(levers, micro_batches="off")
    if strategy == "spos":
        raise ConfigError("train.micro_batches: SPOS trains end-to-end; per-layer micro-batches apply to greedy and "
                          "non_greedy")
    if net.objective.views != 1:
        raise ConfigError("train.micro_batches: the infonce objective over micro-batches sees fewer negatives (a "
                          "different loss); micro-batching supports 'ce' only")
    if spec == "auto":
        return dataclasses.replace(levers, micro_batches=_auto_plan(levers, net, strategy, batch_size),
                                   memory_budget_mib=None)
    n = net.num_layers
    plan = levers.plan
    bad = {k: v for k, v in plan.items() if not -1 <= k < n or not isinstance(v, int) or not 1 <= v <= batch_size}
    if bad:
        raise ConfigError(f"train.micro_batches: {bad} invalid; layers are -1 (stem)..{n - 1}, counts 1.."
                          f"{batch_size} (the per-rank batch)")
    return dataclasses.replace(levers, micro_batches=plan)


def _auto_plan(levers: Levers, net: SuperNet, strategy: str, batch_size: int) -> dict[int, int]:
    """The micro-batch plan the accounting chooses under ``memory_budget_mib`` (logged)."""
    from .planner import auto_balance

    budget = None if levers.memory_budget_mib is None else int(levers.memory_budget_mib * MIB)
    bal = auto_balance(net.space, strategy, batch_size, budget=budget)
    plan = {i: m for i, m in sorted(bal.plan.items())}
    log.info("micro-batches per layer (auto, budget %.1f MiB of activations, accounted peak %.1f MiB, max/mean "
             "layer %.2f): %s", bal.budget / MIB, bal.account.activation_peak / MIB, bal.balance_ratio(),
             " ".join(f"{'stem' if i < 0 else f'L{i}'}:{m}" for i, m in plan.items()))
    return plan


def wrap_levers(backend: Any, net: SuperNet, levers: Levers, batch_size: int) -> Any:
    """``backend`` inside the wrappers of resolved ``levers``, in the one order (see the module doc)."""
    groups = backend.groups
    checkpointed = levers.checkpoint_groups(groups)
    if checkpointed:
        plan = getattr(backend, "plan", None)
        if plan is not None:
            plan.checkpointed = checkpointed  # GroupPlan.describe() names them
        backend = CheckpointBackend(backend, net, levers.checkpoint_layers(groups), groups)
    if levers.plan:
        backend = MicroBatchBackend(backend, levers.plan, batch_size, net.objective.views)
    return backend
