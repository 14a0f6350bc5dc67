"""Score table: the prefix-tree scores equal the Evaluator's, the file resumes chunk by chunk; local estimators."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from lwsl_ds.objectives import get_objective
from lwsl_ds.ranking.table import PrefixScorer, load_table, score_table
from lwsl_ds.ranking.truth import canonical_key
from lwsl_ds.search.evaluator import Evaluator
from lwsl_ds.search.local import LocalDecoderEvaluator
from lwsl_ds.space import SuperNet, load_space


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = SuperNet(load_space("nasbench_macro"), get_objective("ce", 10))
    with torch.no_grad():  # trained-looking running stats, so recalibration changes them
        for m in n.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return n.eval()


def _batches(n, bs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 3, 32, 32, generator=g), torch.randint(0, 10, (bs,), generator=g)) for _ in range(n)]


def _keys(n=10, seed=0):
    rng = random.Random(seed)
    return sorted({canonical_key("".join(rng.choice("012") for _ in range(8))) for _ in range(n)})


def test_prefix_tree_scores_equal_the_evaluator(net, tmp_path):
    train, val = _batches(2, seed=1), _batches(3, seed=2)
    keys = _keys()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ev = Evaluator(net, train, val, recal_batches=2, objective="ce")
    scorer = PrefixScorer(net, [x for x, _ in train], val)
    doc = score_table(scorer, keys, tmp_path / "t.json", meta={"net": "x"}, chunk_depth=1)
    assert sorted(doc["scores"]) == keys  # exactly the wanted keys, no more
    for k in keys:
        assert doc["scores"][k] == pytest.approx(ev.score(k), abs=1e-9), k
    after = net.state_dict()  # the super-net itself is untouched: copies are recalibrated
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_score_table_resumes_and_refuses_other_meta(net, tmp_path):
    train, val = _batches(1), _batches(1, seed=3)
    keys = _keys(6, seed=4)
    scorer = PrefixScorer(net, [x for x, _ in train], val)
    path = tmp_path / "t.json"
    first = score_table(scorer, keys, path, meta={"m": 1}, chunk_depth=1)
    done = list(first["done_chunks"])

    class Boom(PrefixScorer):
        def score_prefix(self, *a, **k):
            raise AssertionError("a finished chunk was scored again")

    again = score_table(Boom(net, [x for x, _ in train], val), keys, path, meta={"m": 1}, chunk_depth=1)
    assert again["scores"] == first["scores"] and again["done_chunks"] == done
    assert load_table(path)["scores"] == first["scores"]
    with pytest.raises(ValueError, match="saved for"):
        score_table(scorer, keys, path, meta={"m": 2}, chunk_depth=1)


def test_local_estimator_table_and_score(net):
    val = _batches(2, seed=5)
    ev = LocalDecoderEvaluator(net, val, kind="local_acc")
    t = ev.table()
    assert len(t) == 8 and all(set(row) == {0, 1, 2} for row in t)
    assert all(0.0 <= v <= 1.0 for row in t for v in row.values())
    assert ev.score("01201201") == pytest.approx(sum(t[i][int(c)] for i, c in enumerate("01201201")) / 8)
    # the last layer's entry is the final head's top-1 on that choice's output
    loss = LocalDecoderEvaluator(net, val, kind="local_loss")
    assert loss.score("22222222") == pytest.approx(-sum(row[2] for row in loss.table()) / 8)
    assert all(v > 0 for row in loss.table() for v in row.values())
    with pytest.raises(ValueError, match="not one of"):
        LocalDecoderEvaluator(net, val, kind="bogus")


def test_channels_last_prefix_scores_match(net, tmp_path):
    """channels_last is a speed option of the table: the same top-1 up to one image (an argmax tie)."""
    train, val = _batches(1, seed=6), _batches(2, seed=7)
    keys = _keys(4, seed=8)
    a = score_table(PrefixScorer(net, [x for x, _ in train], val), keys, tmp_path / "a.json", chunk_depth=0)
    b = score_table(PrefixScorer(net, [x for x, _ in train], val, channels_last=True), keys, tmp_path / "b.json",
                    chunk_depth=0)
    assert a["done_chunks"] == [""] and set(b["scores"]) == set(keys)
    for k in keys:
        assert b["scores"][k] == pytest.approx(a["scores"][k], abs=1 / 16 + 1e-9)
