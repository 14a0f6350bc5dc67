"""Super-net paths, materialized sub-nets (exact outputs) and standalone export."""

from __future__ import annotations

import random
import subprocess
import sys

import torch

from lwsl_ds.objectives import get_objective
from lwsl_ds.space import SuperNet, build_subnet, export_subnet, load_space, materialize, sample_arch
from lwsl_ds.space.subnet import load_subnet_weights


def _trained_like(net: torch.nn.Module) -> None:
    """Give BN layers non-trivial statistics so exact-equality checks mean something."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_supernet_structure_and_decoders():
    sp = load_space("demo")
    net = SuperNet(sp, get_objective("ce", 10))
    assert net.num_layers == sp.num_layers
    assert [set(d) for d in net.layers] == [{sp.choices[k].name for k in l.choices} for l in sp.layers]
    assert net.decoder_of(sp.num_layers - 1) is net.head and net.decoder_of(-1) is net.stem_decoder
    x = torch.randn(2, 3, 32, 32)
    assert net.decoder_of(0)(net.choice(0, 1)(net.stem(x))).shape == (2, 10)
    proj = SuperNet(sp, get_objective("infonce", 10, proj_dim=16))
    assert proj.head.fc.out_features == 16


def test_materialize_equals_supernet_path_in_eval():
    sp = load_space("demo")
    net = SuperNet(sp, get_objective("ce", 10))
    _trained_like(net)
    net.eval()
    x = torch.randn(4, 3, 32, 32)
    rng = random.Random(0)
    for _ in range(10):
        arch = sample_arch(sp, rng)
        sub = materialize(net, arch).eval()
        with torch.no_grad():
            assert torch.equal(sub(x), net(x, arch))
    # a copy, not a view: training the sub-net leaves the super-net alone
    before = net.choice(0, arch[0]).project[0].weight.clone()
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    assert torch.equal(net.choice(0, arch[0]).project[0].weight, before)


def test_export_loads_without_lwsl_ds(tmp_path):
    sp = load_space("demo")
    net = SuperNet(sp, get_objective("ce", 10))
    _trained_like(net)
    arch = sample_arch(sp, random.Random(3))
    sub = materialize(net, arch).eval()
    paths = export_subnet(tmp_path / "export", sub, sp, arch)
    x = torch.randn(2, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(sub(x), tmp_path / "y.pt")
    # A fresh interpreter in which importing lwsl_ds is impossible loads and runs the exported program.
    code = (
        "import sys; sys.modules['lwsl_ds'] = None\n"
        "import torch\n"
        f"m = torch.export.load(r'{paths['program']}').module()\n"
        f"x = torch.load(r'{tmp_path / 'x.pt'}'); y = torch.load(r'{tmp_path / 'y.pt'}')\n"
        "assert torch.allclose(m(x), y, atol=1e-6), (m(x) - y).abs().max()\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
    fresh = load_subnet_weights(paths["weights"], build_subnet(sp, arch)).eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), sub(x))
