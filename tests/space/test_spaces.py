"""Search-space presets: shapes of Table I, exact NAS-Bench-Macro parameter counts, counting, bad specs."""

from __future__ import annotations

import math
import random

import pytest
import torch

from lwsl_ds.config import ConfigError, from_dict
from lwsl_ds.space import all_archs, build_subnet, load_space, parse_arch
from lwsl_ds.space.spec import SearchSpace


def _nparams(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_space_matches_table_one():
    sp = load_space("paper")
    assert sp.stem_out == (24, 56)
    assert [(l.in_resolution, l.in_channels) for l in sp.layers[::3]] == [
        (56, 24), (28, 40), (14, 80), (14, 96), (7, 192)]
    assert [l.stride for l in sp.layers[::3]] == [2, 2, 1, 2, 1]
    assert sp.layers[-1].out_resolution == 7 and sp.last_channels == 192 and sp.head.features == 1984
    assert sp.num_classes == 1000 and sp.resolution == 224
    mb = [c for c in sp.choices if c.op == "mbconv"]
    assert {(c.kernel, c.expansion) for c in mb} == {(k, e) for k in (3, 5, 7) for e in (4, 6)}
    assert all(c.se_ratio == 0.25 for c in mb)
    # skip exactly where the layer keeps its shape: 4 stage-first layers change shape, stage 5's does not
    skip = sp.choice_index("skip")
    assert [skip in l.choices for l in sp.layers] == [l.keeps_shape for l in sp.layers]
    assert sum(not l.keeps_shape for l in sp.layers) == 4
    assert sp.num_archs() == 6**4 * 7**11
    assert 7**16 == pytest.approx(3.32e13, rel=2e-3)  # the paper's figure; see docs/search_spaces.md


def test_paper_supernet_output_shape():
    from lwsl_ds.objectives import get_objective
    from lwsl_ds.space import SuperNet

    sp = load_space("paper", resolution=64)
    net = SuperNet(sp, get_objective("ce", sp.num_classes)).eval()
    arch = parse_arch(sp, "-".join(["k7e6"] * sp.num_layers))
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 64), arch).shape == (1, 1000)


def test_nasbench_macro_params_equal_benchmark_for_all_6561(nasbench_table):
    sp = load_space("nasbench_macro")
    assert sp.num_archs() == 6561 == len(nasbench_table)
    # Parameters of a sub-net are the sum of its parts: count each (layer, choice) module once, then
    # check the sums for every key, and a random sample against fully built sub-nets.
    from lwsl_ds.space.builders import build_choice, build_head, build_stem

    fixed = _nparams(build_stem(sp)) + _nparams(build_head(sp, torch.nn.Linear(sp.head.features, 10)))
    per = [[_nparams(build_choice(sp, layer, k)) for k in range(3)] for layer in sp.layers]
    mismatches = [a.key for a in all_archs(sp)
                  if fixed + sum(per[i][k] for i, k in enumerate(a)) != nasbench_table[a.key]["params"]]
    assert mismatches == []
    rng = random.Random(0)
    for key in rng.sample(sorted(nasbench_table), 25) + ["00000000", "22222222"]:
        assert _nparams(build_subnet(sp, parse_arch(sp, key))) == nasbench_table[key]["params"], key


def test_demo_space_is_small():
    sp = load_space("demo")
    assert sp.num_layers <= 6 and sp.resolution <= 32 and sp.num_archs() == 144


def test_overrides_and_unknown_preset(tmp_path):
    assert load_space("paper", resolution=128, num_classes=100).num_classes == 100
    with pytest.raises(ConfigError, match="unknown search space 'papr'"):
        load_space("papr")
    bad = tmp_path / "space.yaml"
    bad.write_text("name: x\nresolution: 32\nnum_classes: 10\nchoices: [{name: a, op: conv}]\nstages: [{out: 8}]\n")
    with pytest.raises(ConfigError, match=r"choices\[0\]\.op"):
        load_space(str(bad))


def test_space_validation_errors():
    base = dict(name="x", resolution=32, num_classes=10, stages=[{"out": 8, "stride": 2}])
    with pytest.raises(ConfigError, match="duplicate choice names"):
        from_dict(SearchSpace, {**base, "choices": [{"name": "a", "op": "skip"}, {"name": "a", "op": "skip"}]})
    with pytest.raises(ConfigError, match="no choice is allowed"):
        from_dict(SearchSpace, {**base, "choices": [{"name": "s", "op": "skip"}]})
    with pytest.raises(ConfigError, match="at least one stage"):
        from_dict(SearchSpace, {**base, "stages": [], "choices": [{"name": "s", "op": "skip"}]})
    with pytest.raises(ConfigError, match="kernel"):
        from_dict(SearchSpace, {**base, "choices": [{"name": "m", "op": "mbconv", "kernel": 4}]})


def test_summary_prints_count():
    text = load_space("paper").summary()
    assert "15 searchable layers" in text and f"{6**4 * 7**11}" in text and "3.320e+13" in text
    assert math.isclose(6**4 * 7**11, 2.5626e12, rel_tol=1e-4)
