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


def test_ranking_report_compares_runs(tmp_path, supernet):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from lwsl_ds.config.sections.rank import RankConfig
    from lwsl_ds.ranking import GroundTruth, compare, write_report
    from lwsl_ds.ranking.pipeline import run_shift
    from lwsl_ds.space import Arch

    archs = [Arch((i % 3, 1, 0, 1, 1, 0, 2, i // 3)) for i in range(9)]
    truth = GroundTruth({a.key: float(i) for i, a in enumerate(archs)}, "toy")
    for name, sign in (("good", 1), ("bad", -1)):
        write_report(compare(archs, [sign * i for i in range(9)], truth, resamples=20), tmp_path / name / "rank")
    run_shift(supernet, RankConfig(shift_images=4), _batches(), tmp_path / "good" / "rank")
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(repo / "profiling" / "ranking_report.py"), str(tmp_path / "good" / "rank"),
                          str(tmp_path / "bad" / "rank"), "--out", str(tmp_path / "cmp")],
                         capture_output=True, text=True, check=True, cwd=repo)
    md = (tmp_path / "cmp" / "ranking_comparison.md").read_text()
    assert "| good | 9 | 1.000" in md and "| bad | 9 | -1.000" in md and out.stdout.startswith("| run")
    assert (tmp_path / "cmp" / "shift_comparison.png").stat().st_size > 1000
    assert json.loads((tmp_path / "good" / "rank" / "shift.json").read_text())["num_images"] == 4
