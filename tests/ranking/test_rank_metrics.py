"""Rank metrics: perfect / reversed predictors, top-k precision, bootstrap intervals, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lwsl_ds.ranking import bootstrap, canonical_key, correlations, kendall_tau, spearman_rho, top_k_precision


def test_perfect_predictor_gives_one_and_reversed_minus_one():
    truth = np.linspace(80, 93, 40)
    pred = truth * 0.01 + 3  # any increasing map of the truth
    assert kendall_tau(pred, truth) == pytest.approx(1.0)
    assert spearman_rho(pred, truth) == pytest.approx(1.0)
    assert kendall_tau(-pred, truth) == pytest.approx(-1.0)
    assert spearman_rho(-pred, truth) == pytest.approx(-1.0)
    assert top_k_precision(pred, truth, 5) == 1.0
    assert top_k_precision(-pred, truth, 5) == 0.0


def test_kendall_counts_pairs():
    # one swapped pair out of C(4,2)=6: tau = (5 - 1) / 6
    assert kendall_tau([1, 2, 4, 3], [1, 2, 3, 4]) == pytest.approx(4 / 6)


def test_top_k_precision_counts_overlap():
    truth = [10, 9, 8, 7, 6, 5]
    pred = [10, 1, 8, 7, 2, 3]  # predicted top-3: idx 0, 2, 3; true top-3: 0, 1, 2
    assert top_k_precision(pred, truth, 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k=7"):
        top_k_precision(pred, truth, 7)


def test_constant_predictor_is_nan_not_a_crash():
    assert math.isnan(kendall_tau([1.0] * 5, [1, 2, 3, 4, 5]))
    assert math.isnan(spearman_rho([1.0] * 5, [1, 2, 3, 4, 5]))


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=60)
    pred = truth + rng.normal(scale=1.0, size=60)
    est = bootstrap(kendall_tau, pred, truth, resamples=400, seed=3)
    assert est.lo <= est.value <= est.hi
    assert 0 < est.hi - est.lo < 0.6
    again = bootstrap(kendall_tau, pred, truth, resamples=400, seed=3)
    assert (again.lo, again.hi) == (est.lo, est.hi)
    wider = bootstrap(kendall_tau, pred, truth, resamples=400, seed=3, confidence=0.99)
    assert wider.lo <= est.lo and wider.hi >= est.hi


def test_correlations_report_every_requested_k():
    truth = np.arange(20.0)
    out = correlations(truth, truth, top_k=[3, 5], resamples=50)
    assert set(out) == {"kendall_tau", "spearman_rho", "top3", "top5"}
    assert out["top5"].value == 1.0
    with pytest.raises(ValueError, match="larger than the number of archs"):
        correlations(truth, truth, top_k=[21], resamples=0)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="same 1-d length"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        kendall_tau([1], [1])


def test_pipeline_perfect_and_reversed_predictors_on_nasbench(tmp_path, shared_data):
    import json

    from lwsl_ds.config import parse_experiment
    from lwsl_ds.ranking.pipeline import resolve_truth, run_ranking
    from lwsl_ds.space import load_space

    cfg = parse_experiment({"rank": {"num_archs": 40, "top_k": [5], "bootstrap": 100, "nasbench_path": str(
        shared_data / "nas-bench-macro" / "nas-bench-macro_cifar10.json")}}).rank
    space = load_space("nasbench_macro")
    truth = resolve_truth(cfg, space)
    good = run_ranking(space, cfg, lambda a: truth.accuracy[a.key], tmp_path / "good")
    bad = run_ranking(space, cfg, lambda a: -truth.accuracy[a.key], None)
    assert good.metrics["kendall_tau"].value == pytest.approx(1.0)
    assert bad.metrics["kendall_tau"].value == pytest.approx(-1.0)
    assert good.metrics["top5"].value == 1.0
    floor = good.floors["flops"]["kendall_tau"]
    assert 0.2 < floor.value < 0.9 and floor.lo <= floor.value <= floor.hi  # same 40 archs, FLOPs as predictor
    doc = json.loads((tmp_path / "good" / "ranking.json").read_text())
    assert len(doc["rows"]) == 40 and doc["meta"]["keys"].startswith("3969 canonical")
    assert all(r["arch"] == canonical_key(r["arch"]) for r in doc["rows"])
    assert (tmp_path / "good" / "ranking_scatter.png").stat().st_size > 1000


def test_importing_ranking_stays_light():
    import subprocess
    import sys

    code = ("import sys, lwsl_ds.ranking, lwsl_ds.config.sections.rank; "
            "print(sorted(m for m in ('scipy', 'matplotlib', 'deepspeed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
