"""Smoke of the regret pipeline on a tiny budget: score table -> launchers/search.py over it -> regret vs baselines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from lwsl_ds.config import parse_experiment, to_dict
from lwsl_ds.flops import build_cost_table
from lwsl_ds.ranking.budget import percentile_limits, regret_table
from lwsl_ds.ranking.table import save_table
from lwsl_ds.ranking.truth import canonical_key, load_nasbench_macro
from lwsl_ds.search.loading import build_supernet
from lwsl_ds.search.local import LocalDecoderEvaluator

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "launchers"))
import search as search_launcher  # noqa: E402


def test_regret_pipeline_smoke(tmp_path, shared_data):
    nb = shared_data / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
    if not nb.is_file():
        pytest.skip(f"NAS-Bench-Macro table not found at {nb}")
    torch.set_num_threads(1)
    truth = load_nasbench_macro(nb)
    keys = truth.keys()
    cfg = parse_experiment({"space": {"name": "nasbench_macro"},
                            "search": {"population": 6, "generations": 2, "parents": 2, "mutations": 3,
                                       "crossovers": 3}})
    torch.manual_seed(0)
    net = build_supernet(cfg).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2)
    run = tmp_path / "run"
    run.mkdir()
    torch.save(net.state_dict(), run / "supernet.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    g = torch.Generator().manual_seed(1)
    val = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]
    ev = LocalDecoderEvaluator(net, val, kind="local_acc")  # the whole 3969-arch table from one (layer, choice) pass
    scores = {k: ev.score(k) for k in keys}
    save_table(run / "local_acc.json", {"meta": {"keys": "nasbench_macro_canonical", "estimator": "local_acc"},
                                        "scores": scores})
    cost = build_cost_table(net.space, run / "cache")
    flops = dict(zip(keys, map(float, cost.costs(keys, "flops"))))
    limits = percentile_limits(keys, flops)
    out = run / "search_p50"
    rc = search_launcher.main(["--config", str(run / "config.yaml"), "--checkpoint", str(run), "--out", str(out),
                               "--no-progress", "--set", f"search.max_flops={limits['p50']!r}",
                               "--set", "search.estimator=local_acc", "--set", f"search.score_table={run / 'local_acc.json'}"])
    assert rc == 0
    found = canonical_key(str(yaml.safe_load((out / "best_arch.yaml").read_text())["arch"]))
    base = json.loads((out / "baseline.json").read_text())
    tab = regret_table(keys, scores, truth.accuracy, flops, limits, evaluations=12, seeds=range(5),
                       searched={"p50": [found]})
    row = tab["p50"]
    assert flops[found] <= limits["p50"] and 0 <= row["search"]["regret"] <= 50  # accuracy in %
    # exhaustive search of the same scores finds a score at least as high as the evolutionary search
    assert max(scores[k] for k in row["table"]["archs"]) >= scores[found] - 1e-12
    # the launcher's FLOPs baseline is the table's: the largest arch under the limit (up to canonical form)
    assert flops[canonical_key(base["arch"])] == pytest.approx(max(flops[k] for k in keys if flops[k] <= limits["p50"]))
    for r in tab.values():
        assert r["archs_under"] > 0 and r["random_search"]["seeds"] == 5
        assert 0 <= r["flops_baseline"]["regret"] <= 50 and 0 <= r["table"]["regret"] <= 50
