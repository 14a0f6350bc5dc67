"""Evaluator: exact BN recalibration, top-1 equal to the super-net path, caching, kNN for InfoNCE, loading."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lwsl_ds.config import ConfigError, parse_experiment
from lwsl_ds.objectives import get_objective
from lwsl_ds.search.evaluator import Evaluator, knn_top1, recalibrate_bn, split_batch
from lwsl_ds.search.loading import build_supernet, load_supernet_from_run
from lwsl_ds.space import SuperNet, load_space, parse_arch


class CountingLoader:
    """An in-memory loader of (images, labels) batches that counts how often it is iterated."""

    def __init__(self, batches):
        self.batches, self.iterations = batches, 0

    def __iter__(self):
        self.iterations += 1
        return iter(self.batches)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _data(n_batches: int, bs: int = 16, seed: int = 0, res: int = 32):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 3, res, res, generator=g) * 2 + 0.5, torch.randint(0, 10, (bs,), generator=g))
            for _ in range(n_batches)]


@pytest.fixture(scope="module")
def demo_supernet():
    torch.manual_seed(0)
    space = load_space("demo")
    net = SuperNet(space, get_objective("ce", 10))
    with torch.no_grad():  # non-trivial running stats, so that recalibration visibly changes them
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return net.eval()


def test_recalibration_is_the_exact_average_over_the_batches():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4)
    model = nn.Sequential(conv, bn)
    batches = [torch.randn(8, 3, 10, 10) for _ in range(3)]
    assert recalibrate_bn(model, batches) == 3
    with torch.no_grad():
        outs = [conv(x) for x in batches]
    mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1 and not model.training


def _oracle_top1(supernet, arch, train, val, recal: int) -> float:
    """Independent path: recalibrate the super-net's own path modules, score with SuperNet.forward."""
    net = copy.deepcopy(supernet)
    path = nn.ModuleList(net.path_modules(arch))
    net.eval()
    if recal:
        for m in path.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
                m.train()
        with torch.no_grad():
            for x, _ in train[:recal]:
                net(x, arch)
        net.eval()
    with torch.no_grad():
        correct = sum(int((net(x, arch).argmax(1) == y).sum()) for x, y in val)
    return correct / sum(len(y) for _, y in val)


def test_score_equals_recalibrated_supernet_path_and_caches(demo_supernet):
    train, val = CountingLoader(_data(5, seed=1)), CountingLoader(_data(4, seed=2))
    before = {k: v.clone() for k, v in demo_supernet.state_dict().items()}
    ev = Evaluator(demo_supernet, train, val, recal_batches=3)
    space = demo_supernet.space
    archs = [parse_arch(space, k) for k in ("1010", "3333", "2120")]
    scores = [ev.score(a) for a in archs]
    for a, s in zip(archs, scores):
        assert s == pytest.approx(_oracle_top1(demo_supernet, a, train.batches, val.batches, 3), abs=1e-9)
        assert 0.0 <= s <= 1.0
    # recalibration matters (the planted super-net statistics give another answer for some arch)
    # the super-net itself is untouched (weights and BN statistics)
    for k, v in demo_supernet.state_dict().items():
        assert torch.equal(v, before[k]), k
    # both loaders are read once (batches kept in memory); a cached arch is not recomputed
    assert train.iterations == 1 and val.iterations == 1
    assert ev.score("3333") == scores[1] and len(ev.cache) == 3
    # recalibration matters (the planted super-net statistics give another answer for some arch)
    plain = [_oracle_top1(demo_supernet, a, train.batches, val.batches, 0) for a in archs]
    assert plain != scores
    assert Evaluator(demo_supernet, train, val, recal_batches=0).score(archs[0]) == plain[0]
    # above the memory cap the batches are streamed again for every candidate
    streamed = Evaluator(demo_supernet, CountingLoader(train.batches), CountingLoader(val.batches),
                         recal_batches=3, max_cached_bytes=0)
    assert [streamed.score(a) for a in archs] == scores
    assert streamed.train_loader.iterations == 3 and streamed.val_loader.iterations == 3
    # val_batches limits the held-out pass
    ev2 = Evaluator(demo_supernet, train, val, recal_batches=3, val_batches=1)
    assert ev2.score(archs[0]) == pytest.approx(_oracle_top1(demo_supernet, archs[0], train.batches,
                                                             val.batches[:1], 3))


def test_recalibration_is_the_same_for_every_candidate_even_with_a_shuffling_loader(demo_supernet):
    class Shuffling:
        def __init__(self):
            self.epoch = 0

        def __iter__(self):
            self.epoch += 1
            return iter(_data(3, seed=100 + self.epoch))
    val = _data(2, seed=9)
    ev = Evaluator(demo_supernet, Shuffling(), val, recal_batches=3)
    first = ev.score("1010")
    ev.cache.clear()
    assert ev.score("1010") == first


class ResumableLoader:
    """Like lwsl_ds.data.Loader: iteration continues from the position where the last one stopped."""

    def __init__(self, batches):
        self.batches, self.position = batches, 0

    def __iter__(self):
        while self.position < len(self.batches):
            self.position += 1
            yield self.batches[self.position - 1]
        self.position = 0

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


@pytest.mark.parametrize("cap", [0, 2 << 30])
def test_a_score_does_not_depend_on_what_was_scored_before(demo_supernet, cap):
    """What makes an N-rank search equal a 1-rank one: rank r scores a different subset, in another order."""
    def make():
        return Evaluator(demo_supernet, ResumableLoader(_data(4, seed=5)), ResumableLoader(_data(4, seed=6)),
                         recal_batches=2, val_batches=1, max_cached_bytes=cap)
    one = make()
    seq = [one.score(k) for k in ("1010", "3333", "2120", "1313")]
    other = make()
    assert [other.score(k) for k in ("1313", "2120")] == [seq[3], seq[2]]


def test_knn_top1():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 16, generator=g) * 5
    labels = torch.arange(5).repeat_interleave(40)
    feats = centers[labels] + torch.randn(200, 16, generator=g) * 0.1
    assert knn_top1(feats, labels, feats + 0.01, labels, k=10) == 1.0
    shuffled = labels[torch.randperm(200, generator=g)]
    assert knn_top1(feats, shuffled, feats, labels, k=10) < 0.5


def test_infonce_supernet_is_scored_by_knn_on_final_features():
    torch.manual_seed(0)
    space = load_space("demo")
    net = SuperNet(space, get_objective("infonce", 10, proj_dim=8)).eval()
    data = _data(2, bs=24, seed=3)
    ev = Evaluator(net, data, data, recal_batches=2, knn_k=1)
    assert ev.objective == "infonce"
    # the bank holds exactly the query images: each one's nearest neighbour is itself
    assert ev.score("1313") == 1.0
    other = _data(2, bs=24, seed=4)
    assert Evaluator(net, data, other, recal_batches=2, knn_k=5).score("1313") < 0.5  # random labels
    with pytest.raises(ValueError, match="feature bank"):
        Evaluator(net, data, data, recal_batches=0)


def test_split_batch_layouts():
    x = torch.zeros(8, 3, 4, 4)
    images, labels = split_batch((x, torch.arange(4, dtype=torch.int32).reshape(4, 1)))  # 2 views, DALI labels
    assert images.shape[0] == 4 and labels.dtype == torch.int64 and labels.shape == (4,)
    images, labels = split_batch({"data": x, "label": torch.arange(8)})
    assert images.shape[0] == 8
    with pytest.raises(ValueError, match="expected \\(images, labels\\)"):
        split_batch("nope")


def test_load_supernet_from_run_plain_state_dict(tmp_path):
    cfg = parse_experiment({"space": {"name": "demo"}, "train": {"objective": "ce"}})
    torch.manual_seed(1)
    net = build_supernet(cfg)
    torch.save(net.state_dict(), tmp_path / "supernet.pt")
    (tmp_path / "config.yaml").write_text("space: {name: demo}\n")
    loaded = load_supernet_from_run(tmp_path)
    for (k, v), w in zip(net.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(v, w), k
    assert load_supernet_from_run(tmp_path / "supernet.pt", config=cfg).space.name == "demo"
    wrong = parse_experiment({"space": {"name": "nasbench_macro"}})
    with pytest.raises(ConfigError, match="trained on space"):
        load_supernet_from_run(tmp_path, config=wrong)
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="does not match the super-net"):
        load_supernet_from_run(tmp_path, config=wrong)
    with pytest.raises(ConfigError, match="no experiment config"):
        load_supernet_from_run(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no supernet.pt"):
        load_supernet_from_run(tmp_path / "empty", config=cfg)
    with pytest.raises(ConfigError, match="no such run directory"):
        load_supernet_from_run(tmp_path / "missing", config=cfg)


def test_load_supernet_from_training_checkpoint(tmp_path):
    """The training phase's run-dir format: checkpoints/latest -> <tag>/supernet.pt + manifest with config."""
    from lwsl_ds.common.checkpoint import save_checkpoint
    from lwsl_ds.config.schema import to_dict

    class NoEngineState:  # the engines' own files are irrelevant to loading the super-net
        def save(self, directory, tag):
            pass

    cfg = parse_experiment({"space": {"name": "demo"}, "train": {"objective": "infonce", "proj_dim": 16}})
    torch.manual_seed(2)
    old = build_supernet(cfg)
    save_checkpoint(tmp_path, NoEngineState(), old, {"step": 3, "config": to_dict(cfg)}, {})
    torch.manual_seed(3)
    new = build_supernet(cfg)
    save_checkpoint(tmp_path, NoEngineState(), new, {"step": 7, "config": to_dict(cfg)}, {})
    loaded = load_supernet_from_run(tmp_path)  # the objective comes from the manifest's config
    assert loaded.objective.name == "infonce" and loaded.objective.proj_dim == 16
    for (k, v), w in zip(new.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(v, w), k
    with pytest.raises(ConfigError, match="trained on space"):
        load_supernet_from_run(tmp_path, config=parse_experiment({"space": {"name": "nasbench_macro"}}))
    # final weights at the run root win when newer than the latest checkpoint, and lose when older
    import os

    torch.save(old.state_dict(), tmp_path / "supernet.pt")
    ck = tmp_path / "checkpoints" / "step00000007" / "supernet.pt"
    os.utime(tmp_path / "supernet.pt", (ck.stat().st_mtime + 10,) * 2)
    first = next(iter(old.state_dict()))
    assert torch.equal(load_supernet_from_run(tmp_path, config=cfg).state_dict()[first], old.state_dict()[first])
    os.utime(tmp_path / "supernet.pt", (ck.stat().st_mtime - 10,) * 2)
    assert torch.equal(load_supernet_from_run(tmp_path, config=cfg).state_dict()[first], new.state_dict()[first])


def test_channels_last_scores_equal_the_default(demo_supernet):
    """search.channels_last is a speed option only: the same top-1 on the same batches (one image of slack)."""
    space = demo_supernet.space
    train, val = _data(2, seed=7), _data(3, seed=8)
    a = Evaluator(demo_supernet, train, val, recal_batches=2, objective="ce")
    b = Evaluator(demo_supernet, train, val, recal_batches=2, objective="ce", channels_last=True)
    for key in ([layer.choices[0] for layer in space.layers], [layer.choices[-1] for layer in space.layers]):
        arch = parse_arch(space, "".join(map(str, key)))
        assert b.score(arch) == pytest.approx(a.score(arch), abs=1 / 48 + 1e-9)
        net = b.subnet(arch)
        conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
