"""Band tau, regret, FLOPs baseline and random search against hand-computed small cases."""

from __future__ import annotations

import math

import pytest

from lwsl_ds.ranking.budget import (band_correlations, band_split, flops_band_tau, flops_baseline,
                                    percentile_limits, random_search_regret, regret_of, regret_table, table_pick)

# 7 archs; FLOPs 1..7. Bands of 3: {a,b,c} {d,e} {f,g} (array_split: 3, 2, 2).
KEYS = ["a", "b", "c", "d", "e", "f", "g"]
FLOPS = {k: float(i + 1) for i, k in enumerate(KEYS)}
TRUTH = {"a": 0.50, "b": 0.60, "c": 0.55, "d": 0.70, "e": 0.65, "f": 0.90, "g": 0.80}


def test_bands_are_equal_count_in_flops_order():
    assert band_split(KEYS, FLOPS, 3) == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert band_split(KEYS, FLOPS, 100) == [[k] for k in KEYS]  # never more bands than archs
    with pytest.raises(ValueError, match="bands must be >= 1"):
        band_split(KEYS, FLOPS, 0)


def test_band_tau_hand_computed():
    # band 1: scores 1,3,2 vs truth .5,.6,.55 -> identical order: tau 1; band 2: scores 5,4 vs truth .70,.65 -> 1;
    # band 3: scores 6,7 vs truth .9,.8 -> -1. Mean tau = (1 + 1 - 1) / 3.
    scores = {"a": 1, "b": 3, "c": 2, "d": 5, "e": 4, "f": 6, "g": 7}
    res = band_correlations(KEYS, scores, TRUTH, FLOPS, bands=3, resamples=0)
    assert res["kendall_tau"].value == pytest.approx(1 / 3)
    assert res["spearman_rho"].value == pytest.approx(1 / 3)
    assert [b["n"] for b in res["bands"]] == [3, 2, 2]
    assert [b["kendall_tau"] for b in res["bands"]] == pytest.approx([1, 1, -1])
    assert math.isnan(res["kendall_tau"].lo)


def test_flops_floor_is_computed_the_same_way():
    # FLOPs as predictor: band 1 FLOPs 1,2,3 vs truth .5,.6,.55 -> concordant pairs (a,b),(a,c), discordant (b,c):
    # tau = (2-1)/3; band 2: 4,5 vs .70,.65 -> -1; band 3: 6,7 vs .9,.8 -> -1.
    out = flops_band_tau(KEYS, FLOPS, TRUTH, FLOPS, bands=3, resamples=50)
    assert out["flops_floor"]["kendall_tau"]["value"] == pytest.approx((1 / 3 - 1 - 1) / 3)
    assert out["supernet"]["kendall_tau"]["value"] == out["flops_floor"]["kendall_tau"]["value"]
    assert out["bands"] == 3


def test_ties_and_a_band_of_one_arch():
    scores = {"a": 1, "b": 1, "c": 2, "d": 3, "e": 3, "f": 3, "g": 9}
    # 2 bands (4 + 3). Band {a,b,c,d}: a=b tied in score; pairs C: ac ad bd cd, D: bc -> tau-b = 3 / sqrt(5 * 6).
    # Band {e,f,g}: e=f tied; eg concordant, fg discordant -> tau-b 0.
    res = band_correlations(KEYS, scores, TRUTH, FLOPS, bands=2, resamples=0)
    assert [b["kendall_tau"] for b in res["bands"]] == pytest.approx([3 / math.sqrt(30), 0.0])
    assert res["kendall_tau"].value == pytest.approx(3 / math.sqrt(30) / 2)
    # 4 bands (2, 2, 2, 1): {a,b} constant score and the one-arch band {g} are undefined and left out;
    # {c,d} concordant (+1), {e,f} constant: the mean is over the one defined band.
    res = band_correlations(KEYS, scores, TRUTH, FLOPS, bands=4, resamples=0)
    assert [b["n"] for b in res["bands"]] == [2, 2, 2, 1]
    taus = [b["kendall_tau"] for b in res["bands"]]
    assert math.isnan(taus[0]) and taus[1] == pytest.approx(1) and math.isnan(taus[2]) and math.isnan(taus[3])
    assert res["kendall_tau"].value == pytest.approx(1)
    one_each = band_correlations(KEYS, scores, TRUTH, FLOPS, bands=7, resamples=10)
    assert math.isnan(one_each["kendall_tau"].value) and math.isnan(one_each["kendall_tau"].lo)


def test_bootstrap_interval_brackets_a_perfect_predictor():
    keys = [f"k{i:02d}" for i in range(40)]
    flops = {k: float(i // 2) for i, k in enumerate(keys)}
    truth = {k: float(i) for i, k in enumerate(keys)}
    res = band_correlations(keys, truth, truth, flops, bands=4, resamples=200)
    assert res["kendall_tau"].value == pytest.approx(1.0)
    assert res["kendall_tau"].lo == pytest.approx(1.0) and res["kendall_tau"].hi == pytest.approx(1.0)


def test_regret_flops_baseline_and_table_pick():
    # limit 5 -> archs a..e; best truth 0.70 (d). Largest arch: e (0.65): regret 0.05.
    assert flops_baseline(KEYS, TRUTH, FLOPS, 5).regret == pytest.approx(0.05)
    assert flops_baseline(KEYS, TRUTH, FLOPS, 5).archs == ("e",)
    scores = {"a": 0.1, "b": 0.3, "c": 0.3, "d": 0.2, "e": 0.0, "f": 1.0, "g": 1.0}
    pick = table_pick(KEYS, scores, TRUTH, FLOPS, 5)  # b and c tie at 0.3: mean truth 0.575
    assert pick.archs == ("b", "c")
    assert pick.accuracy == pytest.approx(0.575) and pick.regret == pytest.approx(0.125)
    assert table_pick(KEYS, scores, TRUTH, FLOPS, 100).regret == pytest.approx(0.05)  # f, g tie: mean .85
    with pytest.raises(ValueError, match="above the limit"):
        regret_of(["g"], KEYS, TRUTH, FLOPS, 5)
    with pytest.raises(ValueError, match="no arch has FLOPs"):
        flops_baseline(KEYS, TRUTH, FLOPS, 0.5)


def test_random_search_all_evaluations_equals_exhaustive_and_one_is_spread():
    scores = {k: TRUTH[k] for k in KEYS}  # a perfect scorer
    full = random_search_regret(KEYS, scores, TRUTH, FLOPS, 5, evaluations=10, seeds=range(5))
    assert full["mean"] == 0 and full["std"] == 0
    one = random_search_regret(KEYS, scores, TRUTH, FLOPS, 5, evaluations=1, seeds=range(200))
    # one draw: regret is best (0.70) minus a uniform arch of a..e: mean 0.70 - 0.60 = 0.10
    assert one["mean"] == pytest.approx(0.10, abs=0.02) and one["std"] > 0
    assert one["min"] == 0 and one["max"] == pytest.approx(0.20)


def test_limits_and_regret_table():
    lim = percentile_limits(KEYS, FLOPS, (25, 50, 75))
    assert lim == {"p25": 2.5, "p50": 4.0, "p75": 5.5}
    scores = {k: -FLOPS[k] for k in KEYS}  # prefers the smallest arch
    tab = regret_table(KEYS, scores, TRUTH, FLOPS, lim, evaluations=2, seeds=range(3), searched={"p50": ["d"]})
    assert tab["p50"]["best_accuracy"] == 0.70 and tab["p50"]["archs_under"] == 4
    assert tab["p50"]["table"]["archs"] == ["a"] and tab["p50"]["table"]["regret"] == pytest.approx(0.2)
    assert tab["p50"]["search"]["regret"] == 0
    assert tab["p25"]["flops_baseline"]["archs"] == ["b"] and tab["p25"]["flops_baseline"]["regret"] == 0
