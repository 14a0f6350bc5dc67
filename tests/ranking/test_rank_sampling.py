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
