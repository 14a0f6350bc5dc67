"""Arch sampling for ranking: seeded, distinct, from a pool, stratified by FLOPs, given lists."""

from __future__ import annotations

import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.ranking import canonical_key, parse_arch_list, sample_archs
from lwsl_ds.space import load_space


@pytest.fixture(scope="module")
def nbm():
    return load_space("nasbench_macro")


def test_sampling_is_seeded_and_distinct(nbm):
    a = sample_archs(nbm, 30, seed=1)
    assert a == sample_archs(nbm, 30, seed=1)
    assert a != sample_archs(nbm, 30, seed=2)
    assert len(set(a)) == 30


def test_sampling_from_a_pool_stays_in_it(nbm):
    pool = [k for k in ("".join(c) for c in __import__("itertools").product("012", repeat=8))
            if canonical_key(k) == k]
    got = sample_archs(nbm, 50, seed=0, pool=pool)
    assert all(canonical_key(a.key) == a.key for a in got)
    with pytest.raises(ConfigError, match="pool has only 3"):
        sample_archs(nbm, 5, pool=pool[:3])


def test_flops_stratified_sample_covers_every_bin(nbm):
    def flops(a):  # a monotone stand-in: the sum of choice indices
        return sum(a.choices)

    got = sample_archs(nbm, 20, seed=0, stratify="flops", flops=flops, strata=10)
    cost = sorted(flops(a) for a in got)
    assert len(got) == 20 and len(set(got)) == 20
    assert cost[0] <= 4 and cost[-1] >= 12  # both tails are present (uniform: mean 8, few extremes)
    with pytest.raises(ConfigError, match="needs a FLOPs table"):
        sample_archs(nbm, 20, stratify="flops")


def test_huge_space_samples_without_enumeration():
    paper = load_space("paper")
    got = sample_archs(paper, 8, seed=0, stratify="flops", flops=lambda a: sum(a.choices), strata=4)
    assert len(set(got)) == 8


def test_given_list_is_validated(nbm):
    assert [a.key for a in parse_arch_list(nbm, ["00000000", "id-mb3k3-id-id-id-id-id-id"])] == [
        "00000000", "01000000"]
    with pytest.raises(ConfigError, match=r"rank.archs\[1\].*listed twice"):
        parse_arch_list(nbm, ["00000000", "00000000"])
    with pytest.raises(ConfigError, match=r"rank.archs\[0\]"):
        parse_arch_list(nbm, ["0000000x", "00000000"])


def test_rank_config_section_validates():
    from lwsl_ds.config import parse_experiment

    cfg = parse_experiment({"rank": {"num_archs": 20, "top_k": [5]}})
    assert cfg.rank.num_archs == 20 and cfg.rank.nasbench_keys == "canonical"
    with pytest.raises(ConfigError, match="rank.top_k: 30 is larger"):
        parse_experiment({"rank": {"num_archs": 20, "top_k": [30]}})
    with pytest.raises(ConfigError, match="rank.nasbench_keys"):
        parse_experiment({"rank": {"nasbench_keys": "some"}})
    with pytest.raises(ConfigError, match="rank.strata"):
        parse_experiment({"rank": {"num_archs": 4, "top_k": [2], "stratify": "flops", "strata": 5}})


def test_csv_truth_for_another_space_uses_the_cost_table_floor(tmp_path, monkeypatch):
    from lwsl_ds.config import parse_experiment
    from lwsl_ds.ranking.pipeline import resolve_truth, run_ranking
    from lwsl_ds.space import all_archs

    monkeypatch.setenv("LWSL_DS_CACHE_DIR", str(tmp_path / "cache"))
    demo = load_space("demo")
    archs = list(all_archs(demo))[:30]
    (tmp_path / "t.csv").write_text("arch,accuracy\n" + "".join(f"{a.key},{i}\n" for i, a in enumerate(archs)))
    cfg = parse_experiment({"rank": {"truth": str(tmp_path / "t.csv"), "num_archs": 12, "top_k": [3], "bootstrap": 50,
                                     "stratify": "flops", "strata": 3}}).rank
    truth = resolve_truth(cfg, demo)
    rep = run_ranking(demo, cfg, lambda a: truth.accuracy[a.key], None, truth=truth)
    assert rep.metrics["kendall_tau"].value == pytest.approx(1.0) and len(rep.rows) == 12
    assert "flops" in rep.floors and all(r["flops"] > 0 for r in rep.rows)  # fvcore cost table of the demo space
    with pytest.raises(ConfigError, match="rank.truth: required for space 'demo'"):
        resolve_truth(parse_experiment({}).rank, demo)
