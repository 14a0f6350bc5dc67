"""Shared helpers of the data tests (imported by name; tests/data has no __init__.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-samples"
CIFAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg"


def need(path: Path) -> Path:
    """Skip (with the reason) when a shared data folder is absent on this machine."""
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is not present")
    return path


def imagenet_samples_filelist(tmp: Path) -> dict:
    """File list + 1000-class names file over the 128 real ImageNet sample JPEGs; returns cfg kwargs."""
    root = need(SAMPLES)
    with open(root / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    with open(root / "imagenet1k_classes_from_filenames.csv") as f:
        wnids = [r["wnid"] for r in csv.DictReader(f)]
    (tmp / "list.txt").write_text("".join(f"images/{r['file']} {r['class_index']}\n" for r in rows))
    (tmp / "classes.txt").write_text("\n".join(wnids) + "\n")
    return dict(source="filelist", root=str(root), train_list=str(tmp / "list.txt"),
                val_list=str(tmp / "list.txt"), classes_file=str(tmp / "classes.txt"))


def unique_label_filelist(demo_root: Path, tmp: Path, n: int) -> dict:
    """File list over the first n demo val images where every sample has its own label (= its id)."""
    files = sorted((demo_root / "val").rglob("*.JPEG"))[:n]
    (tmp / "ids.txt").write_text("".join(f"{p.relative_to(demo_root)} {k}\n" for k, p in enumerate(files)))
    return dict(source="filelist", root=str(demo_root), train_list=str(tmp / "ids.txt"),
                val_list=str(tmp / "ids.txt"), resolution=32)


def collect(loader) -> tuple[list, list]:
    """All (images, labels) batches of one pass, as lists."""
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(y)
    return xs, ys


def as_list(x) -> list:
    """A views list from a loader's images value."""
    return x if isinstance(x, list) else [x]


def cat_labels(ys) -> np.ndarray:
    """Concatenated labels of several batches."""
    return np.concatenate([y.numpy() for y in ys]) if ys else np.zeros(0, np.int64)
