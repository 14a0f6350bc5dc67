"""Cost tables: exact agreement with fvcore on whole sub-nets, NAS-Bench-Macro's numbers, speed, cache."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
import torch

from lwsl_ds.flops import build_cost_table, count_module
from lwsl_ds.flops.table import arch_array_from_keys
from lwsl_ds.objectives import get_objective
from lwsl_ds.space import SuperNet, all_archs, load_space, materialize, sample_arch


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One cost-table cache for the whole test session (tests/flops and tests/search share it)."""
    path = tmp_path_factory.getbasetemp() / "flops_cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.parametrize("name", ["demo", "nasbench_macro", "paper"])
def test_table_sum_equals_fvcore_on_materialized_subnets(name, cache_dir):
    """100 random archs per space: fvcore on the whole materialized sub-net == table lookup + sum."""
    space = load_space(name)
    table = build_cost_table(space, cache_dir)
    torch.manual_seed(0)
    supernet = SuperNet(space, get_objective("ce", space.num_classes))
    rng = random.Random(7)
    archs = [sample_arch(space, rng) for _ in range(100)]
    flops = table.costs(archs, "flops")
    conv_linear = table.costs(archs, "conv_linear")
    params = table.costs(archs, "params")
    shape = (1, space.in_channels, space.resolution, space.resolution)
    for j, arch in enumerate(archs):
        got = count_module(materialize(supernet, arch), shape)
        assert (got.flops, got.conv_linear, got.params) == (flops[j], conv_linear[j], params[j]), arch.key
        assert table.cost(arch).flops == flops[j]


def test_nasbench_macro_all_archs_match_benchmark(nasbench_table, cache_dir):
    """All 6561 keys: conv+linear MACs == benchmark `flops` and params == benchmark `params`, exactly."""
    space = load_space("nasbench_macro")
    table = build_cost_table(space, cache_dir)
    keys = sorted(nasbench_table)
    assert len(keys) == 6561
    arr = arch_array_from_keys(keys)
    cl = table.costs(arr, "conv_linear")
    pa = table.costs(arr, "params")
    want_fl = np.array([nasbench_table[k]["flops"] for k in keys])
    want_pa = np.array([nasbench_table[k]["params"] for k in keys])
    bad = [k for k, a, b in zip(keys, cl, want_fl) if a != b]
    assert not bad, f"{len(bad)} flops mismatches, e.g. {bad[:3]}"
    bad = [k for k, a, b in zip(keys, pa, want_pa) if a != b]
    assert not bad, f"{len(bad)} params mismatches, e.g. {bad[:3]}"
    # the fvcore view adds batch norm and pooling on top, never less
    assert (table.costs(arr, "flops") > cl).all()


def test_torchvision_mobilenet_v2_about_300m_macs():
    """Golden number: MobileNetV2 (1.0, 224 px) is quoted as 300M MACs and 3.4-3.5M params."""
    torchvision = pytest.importorskip("torchvision")
    c = count_module(torchvision.models.mobilenet_v2(), (1, 3, 224, 224))
    assert 295e6 <= c.conv_linear <= 305e6, c
    assert c.params == 3_504_872
    assert c.flops == c.conv_linear + c.by_operator["batch_norm"] + c.by_operator["adaptive_avg_pool2d"]


def test_lookup_throughput_at_least_100k_archs_per_second(cache_dir):
    space = load_space("paper")
    table = build_cost_table(space, cache_dir)
    rng = np.random.default_rng(0)
    allowed = [np.array(layer.choices) for layer in space.layers]
    arr = np.stack([a[rng.integers(0, len(a), 200_000)] for a in allowed], axis=1)
    table.costs(arr[:10])
    t0 = time.perf_counter()
    fl = table.costs(arr, "flops")
    dt = time.perf_counter() - t0
    assert len(arr) / dt >= 100_000, f"{len(arr) / dt:.0f} archs/s"
    # and the vectorised path agrees with the per-arch path
    from lwsl_ds.space import Arch
    for j, row in enumerate(arr[:50]):
        assert table.cost(Arch(tuple(int(c) for c in row))).flops == fl[j]


@pytest.mark.parametrize("name", ["demo", "nasbench_macro"])
def test_bounds_are_exact_over_the_whole_space(name, cache_dir):
    space = load_space(name)
    table = build_cost_table(space, cache_dir)
    arr = np.array([a.choices for a in all_archs(space)])
    for metric in ("flops", "conv_linear", "params"):
        v = table.costs(arr, metric)
        assert table.bounds(metric) == (v.min(), v.max())


def test_cache_is_read_back_and_keyed_by_space(tmp_path):
    space = load_space("demo")
    t1 = build_cost_table(space, tmp_path)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    # prove that the second call reads the file: tamper with one entry
    doc = json.loads(files[0].read_text())
    doc["fixed"]["head"]["params"] += 1
    files[0].write_text(json.dumps(doc))
    assert build_cost_table(space, tmp_path).fixed_cost("params") == t1.fixed_cost("params") + 1
    assert build_cost_table(space, tmp_path, rebuild=True).fixed_cost("params") == t1.fixed_cost("params")
    # another resolution is another file with other costs
    t64 = build_cost_table(space.with_overrides(resolution=64), tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert t64.bounds("flops")[0] > t1.bounds("flops")[0]
    # an unreadable cache file is counted again, not trusted
    files[0].write_text("{not json")
    assert build_cost_table(space, tmp_path).fixed_cost("params") == t1.fixed_cost("params")


def test_rejects_a_choice_the_layer_does_not_allow(cache_dir):
    space = load_space("demo")
    table = build_cost_table(space, cache_dir)
    assert 0 not in space.layers[0].choices  # skip is forbidden where the shape changes
    bad = np.array([[0] + [1] * (space.num_layers - 1)])
    with pytest.raises(ValueError, match="does not allow"):
        table.costs(bad)


def test_flops_report_writes_tables_and_histogram(tmp_path, cache_dir):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "profiling" / "flops_report.py"
    spec = importlib.util.spec_from_file_location("flops_report", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--space", "nasbench_macro", "--out", str(tmp_path), "--cache-dir", str(cache_dir)]) == 0
    md = (tmp_path / "flops_nasbench_macro_r32.md").read_text()
    assert "exact range 7,897,600 .. 107,770,368" in md and "all 6,561 archs" in md
    assert (tmp_path / "flops_nasbench_macro_r32.png").read_bytes()[:4] == b"\x89PNG"
