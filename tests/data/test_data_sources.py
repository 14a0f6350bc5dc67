"""Sources: folder / file list / CIFAR-10 npz / demo indexes, their errors, the config section."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from data_testlib import CIFAR, need

from lwsl_ds.config import ConfigError, from_dict
from lwsl_ds.data import DataConfig, DataError
from lwsl_ds.data import demo_dataset, imagenet100
from lwsl_ds.data.sources import build_index


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return demo_dataset.generate(tmp_path_factory.mktemp("demo") / "d", train_per_class=6, val_per_class=3)


def _tree(root: Path, spec: dict) -> Path:
    for split, classes in spec.items():
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                (root / split / cls / f"{k:03d}.JPEG").write_bytes(b"\xff\xd8\xff")
    return root


def test_folder_index_maps_sorted_train_classes_and_limits_per_class(demo):
    cfg = DataConfig(source="folder", root=str(demo), max_per_class=4)
    train = build_index(cfg, "train")
    assert train.class_names == sorted(p.name for p in (demo / "train").iterdir())
    assert len(train) == 40 and np.bincount(train.labels).tolist() == [4] * 10
    assert train.names[0].endswith("00_circle/00000.JPEG")
    val = build_index(cfg, "val")
    assert len(val) == 30 and val.class_names == train.class_names


def test_demo_source_generates_once_and_is_deterministic(tmp_path):
    a = demo_dataset.generate(tmp_path / "a", train_per_class=3, val_per_class=2, seed=7)
    b = demo_dataset.generate(tmp_path / "b", train_per_class=3, val_per_class=2, seed=7)
    files = sorted(p.relative_to(a) for p in a.rglob("*.JPEG"))
    assert len(files) == 50
    digest = lambda root: [hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files]  # noqa: E731
    assert digest(a) == digest(b)
    c = demo_dataset.generate(tmp_path / "c", train_per_class=3, val_per_class=2, seed=8)
    assert digest(a) != digest(c)
    # source "demo" with a fresh root generates the default set there, and reuses it afterwards
    root = tmp_path / "auto"
    idx = build_index(DataConfig(source="demo", root=str(root)), "val")
    assert len(idx) == 10 * 100 and len(idx.class_names) == 10
    stamp = (root / "val" / "00_circle" / "00000.JPEG").stat().st_mtime_ns
    build_index(DataConfig(source="demo", root=str(root)), "train")
    assert (root / "val" / "00_circle" / "00000.JPEG").stat().st_mtime_ns == stamp


def test_demo_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo data set"):
        demo_dataset.generate(tmp_path / "x", train_per_class=1, val_per_class=1)
    assert (tmp_path / "x" / "precious.txt").exists()


def test_missing_folder_and_empty_class_fail_at_start_naming_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_index(DataConfig(source="folder", root=str(tmp_path / "nope")), "train")
    root = _tree(tmp_path / "t", {"train": {"a": 2, "b": 0}})
    with pytest.raises(DataError, match=r"train/b: class folder holds no images"):
        build_index(DataConfig(source="folder", root=str(root)), "train")
    with pytest.raises(DataError, match="split folder is missing"):
        build_index(DataConfig(source="folder", root=str(root)), "val")
    root2 = _tree(tmp_path / "u", {"train": {"a": 1}, "val": {"a": 1, "zz": 1}})
    with pytest.raises(DataError, match=r"\['zz'\] are not in"):
        build_index(DataConfig(source="folder", root=str(root2)), "val")


def test_filelist_parses_labels_and_names_bad_lines(tmp_path):
    root = _tree(tmp_path, {"train": {"a": 2, "b": 1}})
    (tmp_path / "l.txt").write_text("# comment\ntrain/a/000.JPEG 0\n\ntrain/b/000.JPEG 2\n")
    (tmp_path / "c.txt").write_text("x\ny\nz\n")
    cfg = DataConfig(source="filelist", root=str(root), train_list="l.txt", classes_file="c.txt")
    idx = build_index(cfg, "train")
    assert idx.labels.tolist() == [0, 2] and idx.class_names == ["x", "y", "z"]
    # Without a classes file the classes are 0..max label; a label no image has (1 here) is refused, not inferred.
    with pytest.raises(DataError, match=r"l.txt: without data.classes_file the classes are 0..2 .* labels \[1\]"):
        build_index(DataConfig(source="filelist", root=str(root), train_list="l.txt"), "train")
    (tmp_path / "bad.txt").write_text("train/a/000.JPEG 0\ntrain/a/001.JPEG cat\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected 'relative/path label'"):
        build_index(DataConfig(source="filelist", root=str(root), train_list="bad.txt"), "train")
    (tmp_path / "miss.txt").write_text("train/a/000.JPEG 0\ntrain/a/999.JPEG 0\n")
    with pytest.raises(DataError, match=r"1 listed files do not exist .*999.JPEG"):
        build_index(DataConfig(source="filelist", root=str(root), train_list="miss.txt"), "train")
    with pytest.raises(DataError, match="val_list is not set"):
        build_index(cfg, "val")
    (tmp_path / "c2.txt").write_text("x\n")
    with pytest.raises(DataError, match="label 2 is out of range for 1 classes"):
        build_index(DataConfig(source="filelist", root=str(root), train_list="l.txt", classes_file="c2.txt"),
                    "train")


def test_cifar10_npz_index_counts_and_subset():
    need(CIFAR)
    cfg = DataConfig(source="cifar10", root=str(CIFAR))
    val = build_index(cfg, "val")
    assert len(val) == 10_000 and np.bincount(val.labels).tolist() == [1000] * 10
    assert val.class_names[0] == "airplane" and "test/airplane/0000.jpg" in val.names[0]
    sub = build_index(DataConfig(source="cifar10", root=str(CIFAR), max_per_class=5), "train")
    assert len(sub) == 50 and np.bincount(sub.labels).tolist() == [5] * 10
    assert bytes(sub.read(0)[:3]) == b"\xff\xd8\xff"
    full = build_index(cfg, "train")
    k = int(np.flatnonzero(full.labels == 3)[2])  # the 3rd cat keeps its bytes after repacking
    assert sub.read(3 * 5 + 2).tobytes() == full.read(k).tobytes()


def test_cifar10_default_root_resolves_to_shared_data():
    need(CIFAR)
    assert len(build_index(DataConfig(source="cifar10", val_max_per_class=1), "val")) == 10


def test_imagenet100_builder_is_deterministic_disjoint_and_checked(tmp_path):
    root = _tree(tmp_path / "in", {"train": {f"n{c:08d}": 15 for c in range(12)}})
    p = imagenet100.build(root, tmp_path / "o1", num_classes=5, train_per_class=8, val_per_class=3, seed=1)
    q = imagenet100.build(root, tmp_path / "o2", num_classes=5, train_per_class=8, val_per_class=3, seed=1)
    assert all(p[k].read_text() == q[k].read_text() for k in p)
    classes = p["classes"].read_text().split()
    assert len(classes) == 5 and classes == sorted(classes)
    train = [line.split() for line in p["train"].read_text().splitlines()]
    val = [line.split() for line in p["val"].read_text().splitlines()]
    assert len(train) == 40 and len(val) == 15 and not {t[0] for t in train} & {v[0] for v in val}
    # the lists load as a filelist source with the builder's class names
    cfg = DataConfig(source="filelist", root=str(root), train_list=str(p["train"]), val_list=str(p["val"]),
                     classes_file=str(p["classes"]))
    idx = build_index(cfg, "val")
    assert idx.class_names == classes and np.bincount(idx.labels).tolist() == [3] * 5
    (tmp_path / "cls.txt").write_text("n00000003\nn00000001\n")
    r = imagenet100.build(root, tmp_path / "o3", train_per_class=2, val_per_class=1,
                          classes_file=tmp_path / "cls.txt")
    assert r["classes"].read_text().split() == ["n00000001", "n00000003"]
    with pytest.raises(DataError, match="fewer than the 20 needed"):
        imagenet100.build(root, tmp_path / "o4", num_classes=2, train_per_class=18, val_per_class=2)
    (tmp_path / "bad.txt").write_text("n99999999\n")
    with pytest.raises(DataError, match="n99999999"):
        imagenet100.build(root, tmp_path / "o5", classes_file=tmp_path / "bad.txt")


def test_data_config_section_validates_cross_fields():
    assert from_dict(DataConfig, {"source": "cifar10"}).out_resolution == 32
    assert from_dict(DataConfig, {"source": "cifar10"}).train_crop == "pad_crop"
    assert from_dict(DataConfig, {}).out_resolution == 64  # demo
    with pytest.raises(ConfigError, match="data.root: required for source 'filelist'"):
        from_dict(DataConfig, {"source": "filelist", "train_list": "t.txt"}, "data")
    with pytest.raises(ConfigError, match=r"data.mean: expected 3 values"):
        from_dict(DataConfig, {"mean": [0.5, 0.5]}, "data")
    with pytest.raises(ConfigError, match=r"data.backend: 'dal' is not allowed.*did you mean 'dali'"):
        from_dict(DataConfig, {"backend": "dal"}, "data")
