"""Corrupt images: an error naming the file, or skipped and counted with skip_corrupt."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from data_testlib import cat_labels, collect

from lwsl_ds.data import DataConfig, DataError, build_loader, demo_dataset


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """A demo set (10 classes x 6 train) with a garbage file, a fake-header file and a truncated JPEG."""
    root = tmp_path_factory.mktemp("broken") / "d"
    demo_dataset.generate(root, train_per_class=6, val_per_class=1)
    (root / "train" / "03_ring" / "zz_garbage.JPEG").write_bytes(b"this is not an image" * 50)
    # a JPEG header followed by junk passes the cheap header check: DALI itself must fail on it
    (root / "train" / "08_dots" / "zz_fakeheader.JPEG").write_bytes(b"\xff\xd8\xff\xe0" + b"junk" * 300)
    good = (root / "train" / "05_hstripes" / "00000.JPEG").read_bytes()
    (root / "train" / "05_hstripes" / "zz_truncated.JPEG").write_bytes(good[: len(good) // 3])
    return root


@pytest.mark.parametrize("backend", ["torchvision", "dali"])
def test_corrupt_image_error_names_the_file(broken, backend):
    cfg = DataConfig(source="folder", root=str(broken), num_workers=0, resolution=32)
    loader = build_loader(cfg, "train", batch_size=31, augment="train", backend=backend, device="cpu", seed=0)
    with pytest.raises(DataError, match=r"zz_(garbage|fakeheader|truncated)\.JPEG"):
        collect(loader)


@pytest.mark.parametrize("backend", ["torchvision", "dali"])
def test_skip_corrupt_drops_and_counts(broken, backend, caplog):
    cfg = DataConfig(source="folder", root=str(broken), num_workers=0, resolution=32, skip_corrupt=True)
    loader = build_loader(cfg, "train", batch_size=31, augment="train", backend=backend, device="cpu", seed=0)
    assert loader.num_samples == 63 and len(loader) == 3
    with caplog.at_level(logging.WARNING, logger="lwsl_ds.data"):
        xs, ys = collect(loader)
    names = sorted(Path(n).name for n in loader.skipped_files)
    if backend == "torchvision":  # PIL refuses truncated JPEGs
        assert names == ["zz_fakeheader.JPEG", "zz_garbage.JPEG", "zz_truncated.JPEG"]
    else:  # DALI decodes what it can of a truncated JPEG (libjpeg-turbo pads the missing rows)
        assert names[:2] == ["zz_fakeheader.JPEG", "zz_garbage.JPEG"], names
    assert loader.skipped == len(names)
    assert "skipped" in caplog.text and "zz_garbage.JPEG" in caplog.text
    labels = cat_labels(ys)
    assert len(labels) == 63 - loader.skipped and torch.cat(xs).shape[0] == len(labels)
    assert labels.tolist().count(3) == labels.tolist().count(8) == 6  # good images of those classes stay


def test_empty_class_after_a_file_is_removed_fails_at_start(broken, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(broken, root)
    for p in (root / "train" / "07_checker").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"07_checker: class folder holds no images"):
        build_loader(DataConfig(source="folder", root=str(root)), "train", batch_size=4, augment="train")
