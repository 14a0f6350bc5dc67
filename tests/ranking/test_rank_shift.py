"""Representation shift: cosine-similarity matrix of the choices of one layer."""

from __future__ import annotations

import copy

import pytest
import torch

from lwsl_ds.objectives import get_objective
from lwsl_ds.ranking import module_similarity, representation_shift
from lwsl_ds.ranking.plots import heatmap_png
from lwsl_ds.space import SuperNet, load_space


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    sp = load_space("nasbench_macro")
    return SuperNet(sp, get_objective("ce", sp.num_classes)).eval()


def _batches(n=3, b=4, res=32):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(b, 3, res, res, generator=g), torch.zeros(b, dtype=torch.long)) for _ in range(n)]


def test_identical_choices_have_similarity_one():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    other = torch.nn.Conv2d(3, 5, 3, padding=1)
    m, seen = module_similarity([conv, copy.deepcopy(conv), other], _batches(), 10)
    assert seen == 10
    assert torch.allclose(m[0, 1], torch.tensor(1.0, dtype=m.dtype))
    assert m[0, 2] < 0.999
    neg = module_similarity([conv, torch.nn.Sequential(conv, torch.nn.Identity())], _batches(), 4)[0]
    assert torch.allclose(neg, torch.ones_like(neg))


def test_first_layer_matrix_is_symmetric_with_unit_diagonal(supernet, tmp_path):
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    res = representation_shift(supernet, _batches(), num_images=9)
    m = torch.tensor(res.matrix)
    assert res.names == ["id", "mb3k3", "mb6k5"] and res.num_images == 9 and res.prefix is None
    assert torch.allclose(m, m.T, atol=1e-9)
    assert torch.allclose(m.diagonal(), torch.ones(3, dtype=m.dtype), atol=1e-9)
    assert ((m >= -1 - 1e-9) & (m <= 1 + 1e-9)).all()
    assert -1 <= res.off_diagonal_mean <= 1
    bn = representation_shift(supernet, _batches(), num_images=9, bn="batch")
    assert bn.matrix != res.matrix
    for k, v in supernet.state_dict().items():  # batch-statistics mode works on copies
        assert torch.equal(v, before[k]), k
    png = heatmap_png(tmp_path / "shift.png", res.matrix, res.names, title="t")
    assert png.stat().st_size > 1000


def test_deeper_layer_uses_a_seeded_prefix(supernet):
    a = representation_shift(supernet, _batches(), layer=4, num_images=4, seed=3)
    b = representation_shift(supernet, _batches(), layer=4, num_images=4, seed=3)
    assert a.prefix is not None and len(a.prefix) == 8 and a.matrix == b.matrix
    with pytest.raises(ValueError, match="layer 8 is out of range"):
        representation_shift(supernet, _batches(), layer=8)
