"""build_loader on real files: both backends, labels/val agreement, determinism, resume, views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_testlib import CIFAR, as_list, cat_labels, collect, imagenet_samples_filelist, need

from lwsl_ds.data import DataConfig, build_loader, demo_dataset, resolve_backend


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return demo_dataset.generate(tmp_path_factory.mktemp("demo") / "d", train_per_class=12, val_per_class=4)


@pytest.fixture(scope="module")
def samples_cfg(tmp_path_factory) -> DataConfig:
    return DataConfig(**imagenet_samples_filelist(tmp_path_factory.mktemp("in")), resolution=224,
                      num_workers=0, num_threads=2)


def test_auto_backend_is_cpu_dali_here_and_gpu_requests_fail_clearly():
    if torch.cuda.is_available():
        assert resolve_backend("auto") == ("dali", "gpu")
    else:
        assert resolve_backend("auto") == ("dali", "cpu")
        with pytest.raises(Exception, match="CUDA is not available"):
            resolve_backend("dali", "gpu")
    assert resolve_backend("torchvision") == ("torchvision", "cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("pil")


def test_dali_cpu_val_matches_torchvision_on_real_imagenet_jpegs(samples_cfg):
    """All 128 real JPEGs (23 grayscale, 68x121 .. 2400x1600): same labels, pixels within decoder tolerance."""
    out = {}
    for backend in ("torchvision", "dali"):
        loader = build_loader(samples_cfg, "val", batch_size=32, augment="val", backend=backend, device="cpu")
        assert loader.backend_name == backend and len(loader) == 4 and loader.num_classes == 1000
        xs, ys = collect(loader)
        out[backend] = torch.cat(xs), torch.cat(ys)
    (a, ya), (b, yb) = out["torchvision"], out["dali"]
    assert a.shape == b.shape == (128, 3, 224, 224) and a.dtype == b.dtype == torch.float32
    assert torch.equal(ya, yb) and ya.dtype == torch.int64
    per_image = (a - b).abs().mean(dim=(1, 2, 3))
    # Measured: mean 0.008, worst image 0.026 (normalized units; 0.01 ~ 0.6 grey levels).
    assert per_image.mean() < 0.02 and per_image.max() < 0.06, per_image.max()


def test_dali_cpu_train_two_views_on_real_jpegs(samples_cfg):
    loader = build_loader(samples_cfg, "train", batch_size=48, augment="train", views=2, backend="dali",
                          device="cpu", seed=1)
    xs, ys = collect(loader)
    assert [len(y) for y in ys] == [48, 48, 32]  # partial last batch kept
    v1, v2 = (torch.cat([x[k] for x in xs]) for k in range(2))
    assert v1.shape == v2.shape == (128, 3, 224, 224)
    assert not torch.equal(v1, v2), "the two views must be augmented independently"
    assert torch.isfinite(v1).all() and 0.5 < v1.std() < 2.0
    tv = build_loader(samples_cfg, "train", batch_size=48, augment="train", backend="torchvision", seed=1)
    assert [y.tolist() for y in ys] == [y.tolist() for _, y in tv], "both backends share the epoch plan"


def test_torchvision_batches_are_bit_identical_for_seed_epoch_position(demo):
    cfg = DataConfig(source="folder", root=str(demo), num_workers=0, resolution=32)
    kw = dict(batch_size=16, augment="train", views=2, seed=5, backend="torchvision")
    a = build_loader(cfg, "train", **kw)
    xa, ya = collect(a)
    torch.manual_seed(123)  # the caller's global RNG must not matter
    b = build_loader(DataConfig(source="folder", root=str(demo), num_workers=2, resolution=32), "train", **kw)
    xb, yb = collect(b)
    assert all(torch.equal(p, q) for x, y in zip(xa, xb) for p, q in zip(x, y))
    assert all(torch.equal(p, q) for p, q in zip(ya, yb))
    a.set_epoch(1)
    x1, y1 = collect(a)
    assert cat_labels(y1).tolist() != cat_labels(ya).tolist()
    assert sorted(cat_labels(y1).tolist()) == sorted(cat_labels(ya).tolist())
    state = torch.random.get_rng_state()
    collect(a)
    assert torch.equal(state, torch.random.get_rng_state()), "loading must leave the global RNG alone"


def test_resume_yields_exactly_the_remaining_batches(demo):
    cfg = DataConfig(source="folder", root=str(demo), num_workers=0, resolution=32)
    kw = dict(batch_size=20, augment="train", seed=2, backend="torchvision")
    full = build_loader(cfg, "train", **kw)
    full.set_epoch(3)
    xs, ys = collect(full)
    part = build_loader(cfg, "train", **kw)
    part.set_epoch(3)
    it = iter(part)
    for _ in range(2):
        next(it)
    state = part.state_dict()
    assert state == {"epoch": 3, "position": 2}
    resumed = build_loader(cfg, "train", **kw)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # a training loop calls this again after loading: must keep the position
    rx, ry = collect(resumed)
    assert len(rx) == len(xs) - 2 and resumed.state_dict() == {"epoch": 3, "position": len(full)}
    assert all(torch.equal(p, q) for p, q in zip(rx, xs[2:])) and all(torch.equal(p, q) for p, q in zip(ry, ys[2:]))
    resumed.set_epoch(4)
    assert resumed.state_dict() == {"epoch": 4, "position": 0}
    with pytest.raises(ValueError, match="out of range"):
        resumed.load_state_dict({"epoch": 0, "position": len(full) + 1})


def test_dali_resume_gives_the_same_samples(demo):
    cfg = DataConfig(source="folder", root=str(demo), resolution=32)
    kw = dict(batch_size=20, augment="train", seed=2, backend="dali", device="cpu")
    full = build_loader(cfg, "train", **kw)
    _, ys = collect(full)
    resumed = build_loader(cfg, "train", **kw)
    resumed.load_state_dict({"epoch": 0, "position": 3})
    _, ry = collect(resumed)
    assert [y.tolist() for y in ry] == [y.tolist() for y in ys[3:]]


@pytest.mark.parametrize("backend", ["torchvision", "dali"])
def test_autoaugment_and_none_run_on_both_backends(demo, backend):
    cfg = DataConfig(source="folder", root=str(demo), resolution=48, max_per_class=3, num_workers=0)
    for augment in ("autoaugment", "none"):
        loader = build_loader(cfg, "train", batch_size=16, augment=augment, backend=backend, device="cpu")
        xs, ys = collect(loader)
        assert torch.cat(xs).shape == (30, 3, 48, 48) and torch.isfinite(torch.cat(xs)).all()
        assert sorted(cat_labels(ys).tolist()) == sorted([c for c in range(10) for _ in range(3)])


def test_none_augment_is_deterministic_and_agrees_across_backends(demo):
    cfg = DataConfig(source="folder", root=str(demo), resolution=48, max_per_class=2, num_workers=0)
    xs = [torch.cat(collect(build_loader(cfg, "train", batch_size=20, augment="none", backend=b, shuffle=False,
                                         device="cpu"))[0]) for b in ("torchvision", "dali")]
    assert (xs[0] - xs[1]).abs().mean() < 0.03


def test_cifar10_pad_crop_at_32px_on_both_backends():
    need(CIFAR)
    cfg = DataConfig(source="cifar10", root=str(CIFAR), max_per_class=20, val_max_per_class=10, num_workers=0)
    for backend in ("torchvision", "dali"):
        loader = build_loader(cfg, "train", batch_size=64, augment="train", backend=backend, device="cpu")
        xs, ys = collect(loader)
        assert len(loader) == 4 and torch.cat(xs).shape == (200, 3, 32, 32)
        x = torch.cat(xs)
        # zero padding shows up as rows of exactly -mean/std somewhere in a padded crop
        zero = -torch.tensor(cfg.norm_mean) / torch.tensor(cfg.norm_std)
        pad_rows = (x[:, :, 0, :] - zero[None, :, None]).abs().amax(dim=(1, 2)) < 1e-4
        assert 0 < pad_rows.sum() < 200
    # val at native 32 px: no resize, decoders agree to JPEG IDCT rounding
    vals = [collect(build_loader(cfg, "val", batch_size=50, augment="val", backend=b, device="cpu"))
            for b in ("torchvision", "dali")]
    a, b = (torch.cat(v[0]) for v in vals)
    assert torch.equal(torch.cat(vals[0][1]), torch.cat(vals[1][1]))
    assert (a - b).abs().max() * max(cfg.norm_std) * 255 <= 2.01  # at most ~2 grey levels apart


def test_normalization_matches_config(demo):
    cfg = DataConfig(source="folder", root=str(demo), resolution=32, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0],
                     max_per_class=1)
    for backend in ("torchvision", "dali"):
        x = torch.cat(collect(build_loader(cfg, "val", batch_size=10, augment="val", backend=backend,
                                           device="cpu"))[0])
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5


@pytest.mark.gpu
def test_dali_mixed_gpu_decoding_matches_cpu(samples_cfg):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the DALI 'mixed' (GPU) decoding path cannot run here")
    gpu = build_loader(samples_cfg, "val", batch_size=32, augment="val", backend="dali", device="gpu")
    cpu = build_loader(samples_cfg, "val", batch_size=32, augment="val", backend="dali", device="cpu")
    (xg, yg), (xc, yc) = collect(gpu), collect(cpu)
    assert xg[0].is_cuda
    assert torch.equal(torch.cat(yg).cpu(), torch.cat(yc))
    assert (torch.cat(xg).cpu() - torch.cat(xc)).abs().mean() < 0.03
    tr = build_loader(samples_cfg, "train", batch_size=32, augment="train", views=2, backend="dali", device="gpu")
    assert all(as_list(x)[1].is_cuda for x, _ in tr)
