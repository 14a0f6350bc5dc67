"""Activation accounting: hand-derived saved-tensor formulas, dedup, meta == CPU, RSS on CPU, no leak."""

from __future__ import annotations

import os

import pytest
import torch

from lwsl_ds.memory import StepTracker, saved_bytes
from lwsl_ds.space.ops import ConvBNAct, MBConv, Skip

F32 = 4


def conv_bn_act_saved(b: int, cout: int, h: int, act: bool = True) -> int:
    """Conv input is the (excluded) batch; BN saves its input + mean/invstd; ReLU saves its output."""
    return F32 * (b * cout * h * h * (2 if act else 1) + 2 * cout)


def mbconv_saved(b: int, cin: int, cout: int, h: int, stride: int, e: float, se: float | None) -> int:
    """Expand (BN in, ReLU out), depthwise (BN in, ReLU out at h/stride), SE (pooled, reduced, gate),
    SE output (project conv input), project BN input and stats. Conv inputs equal the previous ReLU outputs
    (same storage, counted once); the block input is the batch (excluded)."""
    hid = round(cin * e)
    ho = -(-h // stride)
    n = 2 * b * hid * h * h + 2 * hid  # expand: BN input, ReLU output; BN mean/invstd
    n += 2 * b * hid * ho * ho + 2 * hid  # depthwise: BN input, ReLU output; stats
    if se:
        red = max(1, int(cin * se))
        n += b * hid + b * red + b * hid  # pooled mean (reduce-conv input), ReLU output, sigmoid gate
        n += b * hid * ho * ho  # x * gate: the project conv's input
    n += b * cout * ho * ho + 2 * cout  # project BN input and stats
    return F32 * n


@pytest.mark.parametrize("cin,cout,k,s,h", [(3, 16, 3, 2, 32), (16, 32, 1, 1, 20), (24, 24, 5, 1, 14)])
def test_conv_bn_act_matches_formula(cin: int, cout: int, k: int, s: int, h: int) -> None:
    m = ConvBNAct(cin, cout, k, s).to("meta")
    x = torch.empty(8, cin, h, h, device="meta")
    assert saved_bytes(m, x) == conv_bn_act_saved(8, cout, -(-h // s))


@pytest.mark.parametrize("cin,cout,s,e,se", [(16, 16, 1, 4, 0.25), (24, 40, 2, 6, 0.25), (32, 32, 1, 3, None)])
def test_mbconv_matches_formula(cin: int, cout: int, s: int, e: float, se: float | None) -> None:
    m = MBConv(cin, cout, 5, s, e, se).to("meta")
    x = torch.empty(4, cin, 28, 28, device="meta")
    assert saved_bytes(m, x) == mbconv_saved(4, cin, cout, 28, s, e, se)


def test_skip_and_dedup() -> None:
    x = torch.empty(4, 8, 10, 10, device="meta")
    assert saved_bytes(Skip(), x) == 0
    w = torch.empty(8, device="meta", requires_grad=True)

    def f(x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(x * w[:, None, None])  # mul saves x (excluded: born before) and w (excluded)
        return a * a  # relu saves a; mul saves a twice: one storage, counted once

    assert saved_bytes(f, x) == 4 * 8 * 100 * F32


def test_meta_equals_cpu_peak_and_phases() -> None:
    results = []
    for dev in ("meta", "cpu"):
        torch.manual_seed(0)
        m = MBConv(8, 8, 3, 1, 4, 0.25).to(dev)
        x = torch.randn(4, 8, 12, 12, device=dev)
        tr = StepTracker(m)
        with tr:
            with tr.phase("layer", 0):
                m(x).sum().backward()
            with tr.phase("layer", 1):
                (m(x) ** 2).mean().backward()
        p = tr.profile()
        results.append((p.peak_bytes, p.saved_total_bytes, [(q.peak_bytes, q.saved_bytes) for q in p.phases]))
    assert results[0] == results[1]
    assert results[0][0] > results[0][2][0][1]  # the peak also holds incoming gradients, not just saved


def test_grads_are_model_states_not_activations() -> None:
    m = torch.nn.Linear(256, 256)  # 256 KiB of weight gradient
    x = torch.randn(2, 256)
    tr = StepTracker(m)
    with tr:
        m(x).sum().backward()
    p = tr.profile()
    assert m.weight.grad is not None
    assert p.peak_bytes < 256 * 256 * F32 // 4  # output + small temporaries only


_RSS_SCRIPT = r"""
import gc, json, os, torch
from lwsl_ds.memory import StepTracker
from lwsl_ds.space.ops import ConvBNAct
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
torch.set_num_threads(1)
torch.manual_seed(0)
m = ConvBNAct(16, 48, 3, 1)
x = torch.randn(16, 16, 64, 64)
with StepTracker():  # warm-up: kernels, thread pools and the tracker's lazy imports allocate once
    m(x).sum().backward()
m.zero_grad(set_to_none=True)
gc.collect()
before = rss()
tr = StepTracker()
with tr:
    y = m(x)  # the graph (and y, which ReLU saved) stays alive
after = rss()
del y
gc.collect()
print(json.dumps({"accounted": tr.profile().saved_total_bytes, "grown": after - before, "left": rss() - before}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to read the resident set size")
def test_cpu_saved_bytes_match_resident_memory() -> None:
    """In a fresh process where every large allocation is its own mmap (fixed glibc threshold, so freed
    memory goes back to the OS and RSS moves with the tensors), RSS grows by the accounted saved bytes."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["accounted"] == conv_bn_act_saved(16, 48, 64)
    assert abs(r["grown"] - r["accounted"]) < 0.02 * r["accounted"] + (1 << 20), r
    assert r["left"] < 0.05 * r["accounted"], r  # all released with the graph


def test_forward_without_backward_does_not_leak() -> None:
    m = ConvBNAct(8, 8, 3, 1).to("meta")
    x = torch.empty(4, 8, 16, 16, device="meta")
    tr = StepTracker()
    with tr:
        for _ in range(3):
            m(x)  # output and graph dropped at once
    alive = [r for r in tr._records.values() if r.died is None]
    assert not alive
