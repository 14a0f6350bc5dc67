"""The FLOPs baseline: the largest arch under the limits, exact by enumeration or from the evaluated candidates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lwsl_ds.flops import build_cost_table
from lwsl_ds.search import baseline as baseline_mod
from lwsl_ds.search.baseline import baseline_record, describe_baseline, largest_under
from lwsl_ds.search.constraints import Constraints
from lwsl_ds.space import load_space


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return build_cost_table(load_space("nasbench_macro"), tmp_path_factory.mktemp("cache"))


def _all(table):
    arr = np.array(list(itertools.product(*(l.choices for l in table.space.layers))), dtype=np.int64)
    return arr, table.costs(arr, "flops")


def test_exact_largest_under_a_limit_is_the_brute_force_answer(table):
    arr, fl = _all(table)
    limit = float(np.percentile(fl, 40))
    got = largest_under(table, Constraints(max_macs=limit))
    assert got["exact"] and got["flops"] == fl[fl <= limit].max()
    assert got["arch"] == min("".join(map(str, a)) for a, f in zip(arr, fl) if f == got["flops"])  # ties: smallest key
    assert largest_under(table, Constraints(max_macs=1.0)) is None


def test_large_spaces_fall_back_to_the_evaluated_candidates(table, monkeypatch):
    monkeypatch.setattr(baseline_mod, "_ENUMERATE_LIMIT", 10)
    hist = [{"arch": "00000000", "score": 0.1}, {"arch": "22222222", "score": 0.3}, {"arch": "11111111", "score": 0.2}]
    limit = table.cost("11111111").flops
    got = largest_under(table, Constraints(max_macs=limit), hist)
    assert got == {"arch": "11111111", "flops": limit, "exact": False}
    rec = baseline_record(table, Constraints(max_macs=limit), hist, score=lambda a: pytest.fail("re-scored"))
    assert rec["score"] == 0.2 and rec["evaluated_by_search"]
    line = describe_baseline(rec, {"arch": "11111111", "score": 0.2}, "flops")
    assert "largest evaluated arch under the limits: 11111111" in line and "did not change the pick" in line
    assert "M MACs, super-net score" in line  # the cost count is MACs, whatever the config value is called


def test_an_unevaluated_baseline_is_scored_once(table):
    calls = []
    rec = baseline_record(table, Constraints(max_macs=table.cost("22222222").flops), [],
                          score=lambda a: calls.append(a) or 0.5)
    assert rec["arch"] == "22222222" and rec["score"] == 0.5 and calls == ["22222222"]
    assert "changed" not in describe_baseline(rec, {"arch": "12121212", "score": 0.6}, "flops")
