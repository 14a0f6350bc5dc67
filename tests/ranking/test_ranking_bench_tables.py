"""bench/ranking_nasbench_macro.py: regret and band-tau tables aggregate units over seeds (mean ± std)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from lwsl_ds.ranking.budget import flops_band_tau, regret_table

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("rank_bench", REPO / "bench" / "ranking_nasbench_macro.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["rank_bench"] = bench  # dataclasses resolve their module while the file executes
spec.loader.exec_module(bench)

KEYS = [f"k{i}" for i in range(12)]
FLOPS = {k: float(i) for i, k in enumerate(KEYS)}
TRUTH = {k: 90.0 + (i % 4) for i, k in enumerate(KEYS)}


def _unit(scores):
    est = {"band_tau": flops_band_tau(KEYS, scores, TRUTH, FLOPS, bands=3, resamples=20),
           "regret": regret_table(KEYS, scores, TRUTH, FLOPS, {"p50": 5.5}, evaluations=3, seeds=range(4),
                                  searched={"p50": ["k3"]})}
    return {"budget": {"estimators": {e: est for e in bench.ESTIMATORS}}}


def test_tables_average_over_seeds():
    state = {"non_greedy": _unit({k: TRUTH[k] for k in KEYS}), "non_greedy_s1": _unit({k: -FLOPS[k] for k in KEYS})}
    md = bench.table(state, "smoke", bench.BUDGETS["smoke"], "cmd", {"non_greedy": ["non_greedy", "non_greedy_s1"]})
    # seed 0 scores = truth: table regret 0 at p50; seed 1 prefers the smallest arch k0 (90.0, best 93.0): 3.0
    row = next(line for line in md.splitlines() if line.startswith("| non_greedy (n=2) | top1 | p50"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[5] == "0.00 ± 0.00"        # search: k3 (93.0) both times
    assert cells[6] == "1.50 ± 2.12"        # table: 0 and 3
    assert cells[8] == "2.00"               # FLOPs baseline k5 (91.0): the same for every unit
    band = next(line for line in md.splitlines() if line.startswith("| non_greedy | 2 | top1 |"))
    assert "±" in band


def test_unit_rows_list_every_seed(tmp_path, monkeypatch):
    spec_u = importlib.util.spec_from_file_location("rank_units", REPO / "bench" / "ranking_nasbench_macro_units.py")
    units = importlib.util.module_from_spec(spec_u)
    spec_u.loader.exec_module(units)
    import json

    root = tmp_path / "docs" / "bench" / "ranking_nasbench_macro" / "cpu"
    for name, scores in (("greedy", {k: TRUTH[k] for k in KEYS}), ("non_greedy_s1", {k: -FLOPS[k] for k in KEYS})):
        (root / name).mkdir(parents=True)
        (root / name / "unit.json").write_text(json.dumps(_unit(scores)))
    (root / "spos").mkdir()
    (root / "spos" / "unit.json").write_text(json.dumps({"ranking": {}}))  # no score tables yet: not finished
    monkeypatch.setattr(units, "REPO", tmp_path)
    lines = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: lines.extend(" ".join(map(str, a)).splitlines()))
    assert units.main(["--budget", "cpu"]) == 0
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["non_greedy_s1"] * 3 + ["greedy"] * 3  # strategy order
    top1 = [c.strip() for c in rows[0].split("|")]
    assert top1[2] == "top1" and top1[4] == "0.00" and top1[5] == "3.00" and top1[7] == "2.00"


def test_fifty_arch_metrics_average_over_seeds():
    def ranked(tau: float, rho: float, band: float, top1: float) -> dict:
        ci = {"lo": 0.0, "hi": 1.0}
        return {"ranking": {"kendall_tau": {"value": tau, **ci}, "spearman_rho": {"value": rho, **ci}},
                "band_tau": {"supernet": {"kendall_tau": {"value": band, **ci}}}, "fig1": [{"mean_top1": top1}],
                "floors": {"flops": {"kendall_tau": {"value": 0.4, **ci}}}, "shift_off_diagonal": 0.3, "train_s": 1}

    state = {"greedy": ranked(0.2, 0.3, 0.1, 0.40), "greedy_s1": ranked(0.4, 0.5, 0.3, 0.42), "spos": {}}
    md = bench.table(state, "smoke", bench.BUDGETS["smoke"], "cmd", {"greedy": ["greedy", "greedy_s1"],
                                                                     "spos": ["spos"]})
    row = next(line for line in md.splitlines() if line.startswith("| greedy | 2 |"))
    cells = [c.strip() for c in row.split("|")]
    # mean ± sample std of (0.2, 0.4) = 0.300 ± 0.141; top-1 in %: 41.00 ± 1.41
    assert cells[3:7] == ["0.300 ± 0.141", "0.400 ± 0.141", "0.200 ± 0.141", "41.00 ± 1.41 %"]
    assert not any(line.startswith("| spos | ") for line in md.splitlines())  # no unit ranked yet: no row


def test_summary_writes_fig1_against_time_and_steps(tmp_path):
    pts = [{"step": 39, "train_s": 100.0, "mean_top1": 0.2}, {"step": 78, "train_s": 250.0, "mean_top1": 0.3}]
    state = {"spos": {"fig1": pts}, "greedy": {"fig1": [{**p, "train_s": None} for p in pts]}}
    out, committed = tmp_path / "run", tmp_path / "docs"
    out.mkdir()
    bench.write_summary(state, out, committed, "smoke", bench.BUDGETS["smoke"], "cmd", {"spos": ["spos"]})
    # greedy has no step times (older run): it is left out of the time plot but not of the step plot
    for name in ("fig1_accuracy_vs_time.png", "fig1_accuracy_vs_steps.png", "results.md"):
        assert (committed / name).stat().st_size > 0
        assert (committed / name).read_bytes() == (out / name).read_bytes()
