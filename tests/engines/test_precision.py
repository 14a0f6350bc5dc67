"""Mixed precision per layer group: a bf16 group next to an fp32 group trains every strategy correctly.

fp16 is not offered by DeepSpeed's CPU accelerator ("Type fp16 is not supported on your device"), so only
bf16 runs here; on a GPU the same code path casts to fp16 (see docs/training.md).
"""

from __future__ import annotations

import pytest
import torch

from tests.engines.harness import max_param_diff, train
from tests.engines.test_equivalence import sgd_config

BF16_GROUP1 = {1: {"bf16": {"enabled": True}}}


def _group_params(backend, g: int) -> list[torch.nn.Parameter]:
    return [p for u in backend.plan.units[g] for p in u.module.parameters()]


@pytest.mark.parametrize("strategy", ["spos", "greedy", "non_greedy"])
@pytest.mark.parametrize("stage", [0, 1, 2])
def test_bf16_group_tracks_fp32_reference(strategy, stage):
    ref, _, ref_out = train("reference", strategy, sgd_config(0), steps=3, layer_groups="auto")
    over = {1: {**BF16_GROUP1[1], "zero_optimization": {"stage": stage}}}
    net, backend, out = train("deepspeed", strategy, sgd_config(0), steps=3, layer_groups="auto",
                              group_overrides=over)
    assert backend.global_steps == 3
    assert {p.dtype for p in _group_params(backend, 1)} == {torch.bfloat16}
    assert {p.dtype for p in _group_params(backend, 0)} == {torch.float32}
    # bf16 keeps ~3 significant digits: parameters stay within a few bf16 ulps of the fp32 run, losses close.
    assert max_param_diff(ref, net) < 0.03
    for k, v in out[-1].items():
        if k.startswith("loss/"):
            assert torch.isfinite(v) and abs(float(v) - float(ref_out[-1][k])) < 0.02, k


def test_greedy_fp32_group_is_untouched_by_a_bf16_neighbour():
    """Greedy losses are local: the fp32 group's parameters equal the all-fp32 reference exactly."""
    ref, _, _ = train("reference", "greedy", sgd_config(0), steps=3, layer_groups="auto")
    net, backend, _ = train("deepspeed", "greedy", sgd_config(0), steps=3, layer_groups="auto",
                            group_overrides=BF16_GROUP1)
    names = {id(p) for p in _group_params(backend, 0)}
    pairs = [(p, q) for p, q in zip(ref.parameters(), net.parameters()) if id(q) in names]
    assert pairs
    assert max(float((p.detach() - q.detach()).abs().max()) for p, q in pairs) < 1e-6
