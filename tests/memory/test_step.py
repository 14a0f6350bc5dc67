"""Accounting the real strategy steps on the meta device (demo space, small batches: fast)."""

from __future__ import annotations

import pytest
import torch

from lwsl_ds.memory import Levers, account_step, build_net

B = 8


@pytest.fixture(scope="module")
def accounts() -> dict:
    return {s: account_step("demo", s, B, resolution=32) for s in ("spos", "greedy", "non_greedy")}


def test_layerwise_needs_less_than_single_path(accounts: dict) -> None:
    spos, greedy, ng = accounts["spos"], accounts["greedy"], accounts["non_greedy"]
    assert greedy.activation_peak < ng.activation_peak < spos.activation_peak
    assert spos.profile.peak_phase.startswith("backward")  # single path peaks when backward starts
    assert spos.profile.breakdown["saved"] > 0.9 * spos.profile.peak_bytes


def test_phases_cover_stem_and_every_layer(accounts: dict) -> None:
    n = build_net("demo").num_layers
    for s in ("greedy", "non_greedy"):
        labels = [p.label for p in accounts[s].profile.phases]
        assert labels == ["stem"] + [f"L{i}" for i in range(n)]
        assert max(p.peak_bytes for p in accounts[s].profile.phases) == accounts[s].profile.peak_bytes
    assert [p.label for p in accounts["spos"].profile.phases][-2:] == ["head", "backward"]


def test_model_states_are_counted_per_group() -> None:
    one = account_step("demo", "greedy", B, resolution=32)
    two = account_step("demo", "greedy", B, resolution=32, groups=[[0, 1], [2, 3]])
    assert len(two.engines) == 2 and two.model_states == one.model_states
    off = account_step("demo", "greedy", B, resolution=32, groups=[[0, 1], [2, 3]], levers=Levers(offload_inactive=True))
    assert off.device_states == max(e.total for e in off.engines) < off.model_states
    assert off.activation_peak == two.activation_peak


def test_worst_case_path_bounds_sampled_paths() -> None:
    worst = account_step("demo", "spos", B, resolution=32)
    for seed in range(3):
        assert account_step("demo", "spos", B, resolution=32, rng="sample", seed=seed).activation_peak <= \
            worst.activation_peak


def test_cpu_step_matches_meta() -> None:
    torch.manual_seed(0)
    cpu = account_step("demo", "non_greedy", 4, resolution=16, device="cpu")
    meta = account_step("demo", "non_greedy", 4, resolution=16)
    assert cpu.profile.to_dict() == meta.profile.to_dict()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        account_step("demo", "greedy", 0)
    with pytest.raises(ValueError, match="SPOS"):
        account_step("demo", "spos", 4, levers=Levers(micro_batches={0: 2}))
    with pytest.raises(ValueError, match="unknown strategy"):
        account_step("demo", "fast", 4)


def test_offload_accounting_matches_the_implementation() -> None:
    """Per-group offload; non-greedy adds layer i+1's choices (read-only, next group); SPOS is refused."""
    groups = [[0], [1], [2, 3]]
    on = account_step("demo", "non_greedy", B, resolution=32, groups=groups)
    off = account_step("demo", "non_greedy", B, resolution=32, groups=groups, levers=Levers(offload_inactive=[0, 1]))
    net = build_net("demo", resolution=32)
    choices1 = 4 * sum(p.numel() for k in net.space.layers[1].choices for p in net.choice(1, k).parameters())
    e0, e1, e2 = off.engines  # ZeRO 0: no buckets stay behind
    assert off.offloaded == [0, 1] and off.to_dict()["offloaded_groups"] == [0, 1]
    # group 0 active (+ layer 1's choices fetched read-only from offloaded group 1), or group 1 active;
    # group 2 is not offloaded: always resident
    assert off.device_states == max(e0.total + choices1 + e2.total, e1.total + e2.total) < on.device_states
    assert on.device_states == on.model_states == e0.total + e1.total + e2.total
    greedy = account_step("demo", "greedy", B, resolution=32, groups=groups, levers=Levers(offload_inactive=[0, 1]))
    g0, g1, g2 = greedy.engines
    assert greedy.device_states == max(g0.total, g1.total) + g2.total  # greedy reads nothing of the next group
    with pytest.raises(ValueError, match="SPOS"):
        account_step("demo", "spos", B, resolution=32, groups=groups, levers=Levers(offload_inactive=True))
