"""Choose per-layer micro-batch counts from the accounting so the step's peak is set by a budget.

Calibration: account the real step twice, with every layer at 1 and at 2 micro-batches. Per layer (the
stem counts as a layer) the peak is modelled as ``floor + work * ceil(B/M) / B``: two points give ``work``
(bytes that scale with the micro-batch: the choices' activations) and ``floor`` (bytes that do not: input
batch, layer input, accumulator, full-batch output buffer). The plan is the smallest M per layer under the
budget; the planned step is then accounted for real and any layer still over budget gets one more
micro-batch (at most ``max_rounds`` times). Default budget: ``floor_factor`` x the largest floor, i.e. the
unavoidable part plus as much again for work; a larger factor means fewer, larger micro-batches (faster).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..space import SearchSpace
from .balance import plan_micro_batches
from .levers import NO_LEVERS, Levers
from .step import StepAccount, account_step, build_net

__all__ = ["BalancePlan", "calibrate", "auto_balance"]


@dataclass
class BalancePlan:
    """A micro-batch plan, the budget it was made for, and the accounted step that verifies it."""

    budget: int
    plan: dict[int, int]
    work: dict[int, int]
    floor: dict[int, int]
    account: StepAccount
    rounds: int

    def balance_ratio(self) -> float:
        """max / mean of the per-layer peaks (stem included) of the planned step."""
        peaks = list(_layer_peaks(self.account).values())
        return max(peaks) / (sum(peaks) / len(peaks))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"budget_bytes": self.budget, "micro_batches": {str(k): v for k, v in self.plan.items()},
                "work_bytes": {str(k): v for k, v in self.work.items()},
                "floor_bytes": {str(k): v for k, v in self.floor.items()}, "rounds": self.rounds,
                "balance_ratio": self.balance_ratio(), "activation_peak_bytes": self.account.activation_peak}


def _layer_peaks(acc: StepAccount) -> dict[int, int]:
    """Per-layer peak (+ batch) keyed by layer index (-1 = stem); only 'stem'/'layer' phases."""
    return {p.layer: p.peak_bytes + acc.batch_bytes for p in acc.profile.phases if p.name in ("stem", "layer")}


def _with_plan(levers: Levers, plan: dict[int, int]) -> Levers:
    """``levers`` with this explicit micro-batch plan (the other levers as given)."""
    return dataclasses.replace(levers, micro_batches=plan or "off", memory_budget_mib=None)


def calibrate(space: SearchSpace | str, strategy: str, batch_size: int, *, net=None, levers: Levers = NO_LEVERS,
              **kw: Any) -> tuple[dict[int, int], dict[int, int], StepAccount]:
    """(work, floor, unbalanced account) per layer from two accounted steps (M = 1 and M = 2)."""
    if batch_size < 2:
        raise ValueError("balanced mode needs batch_size >= 2 (nothing to split)")
    one = account_step(space, strategy, batch_size, net=net, levers=_with_plan(levers, {}), **kw)
    layers = list(_layer_peaks(one))
    two = account_step(space, strategy, batch_size, net=net, levers=_with_plan(levers, {i: 2 for i in layers}), **kw)
    p1, p2 = _layer_peaks(one), _layer_peaks(two)
    half = -(-batch_size // 2) / batch_size  # share of the largest of two micro-batches
    work = {i: max(0, round((p1[i] - p2[i]) / (1 - half))) for i in layers}
    floor = {i: max(0, p1[i] - work[i]) for i in layers}
    return work, floor, one


def auto_balance(space: SearchSpace | str, strategy: str, batch_size: int, *, budget: int | None = None,
                 floor_factor: float = 2.0, max_rounds: int = 3, resolution: int | None = None,
                 objective: str = "ce", levers: Levers = NO_LEVERS, **kw: Any) -> BalancePlan:
    """Plan micro-batches for ``strategy`` (greedy / non_greedy) under the other ``levers`` and verify them with a
    real accounted step."""
    if strategy == "spos":
        raise ValueError("balanced mode: SPOS trains end-to-end; choose greedy or non_greedy")
    net = build_net(space, objective, kw.pop("device", "meta"), resolution)
    common = dict(net=net, **kw)
    work, floor, _ = calibrate(net.space, strategy, batch_size, levers=levers, **common)
    if budget is None:
        budget = int(floor_factor * max(floor.values()))
    plan = plan_micro_batches(work, floor, budget, batch_size)
    rounds = 0
    while True:
        rounds += 1
        acc = account_step(net.space, strategy, batch_size, levers=_with_plan(levers, plan), **common)
        over = [i for i, p in _layer_peaks(acc).items() if p > budget and plan[i] < batch_size]
        if not over or rounds >= max_rounds:
            return BalancePlan(budget, plan, work, floor, acc, rounds)
        plan = {i: m + 1 if i in over else m for i, m in plan.items()}
