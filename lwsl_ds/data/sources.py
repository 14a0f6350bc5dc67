"""Sample indexes: which encoded images a split holds, their labels and the class names.

Every backend reads samples through one :class:`SampleIndex`, so the class-to-index mapping, the
sample order and the labels are the same whatever decodes the bytes. Problems with the data layout
(missing folder, empty class, bad list line, missing file) raise :class:`DataError` here, before any
decoding starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..common.errors import DataError  # re-exported: data code raises it from here
from ..config.sections.data import DATA_DIR_ENV, DataConfig, default_root

__all__ = ["DataError", "SampleIndex", "build_index", "resolve_root", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SampleIndex:
    """Encoded samples of one split: names (paths) and labels, plus optional packed bytes."""

    names: list[str]
    labels: np.ndarray  # int64 (N,)
    class_names: list[str]
    blob: Optional[np.ndarray] = field(default=None, repr=False)  # packed bytes (cifar10 npz)
    offsets: Optional[np.ndarray] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def read(self, i: int) -> np.ndarray:
        """Encoded bytes of sample ``i`` as a uint8 array; a missing file raises DataError naming it."""
        if self.blob is not None:
            return self.blob[self.offsets[i]:self.offsets[i + 1]]
        try:
            with open(self.names[i], "rb") as f:
                return np.frombuffer(f.read(), dtype=np.uint8)
        except OSError as e:
            raise DataError(f"{self.names[i]}: cannot read image file: {e}") from None


def resolve_root(path: str, *, must_exist: bool = True) -> Path:
    """Resolve a data path: absolute as is; relative against the cwd, then the repository root."""
    p = Path(path).expanduser()
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = [Path.cwd() / p, _REPO_ROOT / p]
    for c in candidates:
        if c.exists():
            return c.resolve()
    if must_exist:
        tried = ", ".join(str(c) for c in candidates)
        hint = "" if Path(path).is_absolute() else f"; set data.root, or {DATA_DIR_ENV} for the named data sets"
        raise DataError(f"data root {path!r} does not exist (tried {tried}{hint})")
    return candidates[0]


SPLITS = ("train", "val", "fit", "holdout")


def build_index(cfg: DataConfig, split: str) -> SampleIndex:
    """Index ``split`` of the configured source; layout errors raise DataError.

    "train" and "val" are the source's splits; "holdout" is the last ``data.holdout`` images of each class
    of "train" (deterministic), "fit" the rest of "train" (what super-net training sees). ``max_per_class``
    limits "train" and "fit" (first N), ``val_max_per_class`` the scored splits "val" and "holdout".
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    source_split = "val" if split == "val" else "train"
    limit = cfg.max_per_class if split in ("train", "fit") else cfg.val_max_per_class
    if cfg.source == "cifar10":
        index = _cifar10_index(resolve_root(cfg.root or default_root("cifar10")), source_split)
    elif cfg.source == "filelist":
        index = _filelist_index(cfg, source_split)
    else:
        if cfg.source == "demo":
            from .demo_dataset import ensure

            root = ensure(resolve_root(cfg.root or default_root("demo"), must_exist=False))
        else:
            root = resolve_root(cfg.root)  # type: ignore[arg-type]
        index = _folder_index(root, source_split)
    if split in ("fit", "holdout"):
        index = _holdout(index, cfg, take=split == "holdout")
    if limit is not None:
        index = _first_per_class(index, limit)
    return index


def _holdout(index: SampleIndex, cfg: DataConfig, *, take: bool) -> SampleIndex:
    """The held-out samples (``take``) or the others: the last ``cfg.holdout_count(n)`` of each class."""
    labels = index.labels
    held = np.zeros(len(index), dtype=bool)
    for y in np.unique(labels).tolist():
        members = np.flatnonzero(labels == y)
        k = cfg.holdout_count(len(members))
        if k:
            held[members[-k:]] = True
    if take and not held.any():
        raise DataError(f"data.holdout={cfg.holdout}: no image is held out (classes need at least 2 train "
                        "images); set data.holdout: 0 to score the search on the val split")
    return _subset(index, np.flatnonzero(held if take else ~held))


def _first_per_class(index: SampleIndex, limit: int) -> SampleIndex:
    """Keep the first ``limit`` samples of every class, in index order."""
    keep = np.zeros(len(index), dtype=bool)
    seen: dict[int, int] = {}
    for i, y in enumerate(index.labels.tolist()):
        if seen.get(y, 0) < limit:
            seen[y] = seen.get(y, 0) + 1
            keep[i] = True
    return _subset(index, np.flatnonzero(keep))


def _subset(index: SampleIndex, sel: np.ndarray) -> SampleIndex:
    """The samples ``sel`` (index order kept) as a self-contained index."""
    if index.blob is not None:
        # Repack the selected byte ranges so the index stays self-contained (cheap: KB-sized JPEGs).
        parts = [index.blob[index.offsets[i]:index.offsets[i + 1]] for i in sel]
        offsets = np.zeros(len(sel) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in parts])
        blob = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        return SampleIndex([index.names[i] for i in sel], index.labels[sel], index.class_names, blob, offsets)
    return SampleIndex([index.names[i] for i in sel], index.labels[sel], index.class_names)


def _list_class_dirs(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _folder_index(root: Path, split: str) -> SampleIndex:
    """ImageNet layout root/<split>/<class>/<image>; classes are the sorted train sub-folders."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: split folder is missing (expected {root}/{split}/<class>/<image>)")
    train_dir = root / "train"
    classes = _list_class_dirs(train_dir if train_dir.is_dir() else split_dir)
    if not classes:
        raise DataError(f"{split_dir}: no class sub-folders found")
    present = _list_class_dirs(split_dir)
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise DataError(f"{split_dir}: class folders {unknown[:5]} are not in {train_dir} "
                        "(one class-to-index mapping is shared by all splits)")
    names: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        cdir = split_dir / cls
        if not cdir.is_dir():
            continue  # a val split may lack a class; train defines the mapping
        files = sorted(e.name for e in os.scandir(cdir)
                       if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise DataError(f"{cdir}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        names.extend(str(cdir / f) for f in files)
        labels.extend([label] * len(files))
    return SampleIndex(names, np.asarray(labels, dtype=np.int64), classes)


def _filelist_index(cfg: DataConfig, split: str) -> SampleIndex:
    """Lines 'relative/path label' (paths relative to root; '#' comments and blank lines skipped)."""
    root = resolve_root(cfg.root)  # type: ignore[arg-type]
    list_name = cfg.train_list if split == "train" else cfg.val_list
    if list_name is None:
        raise DataError(f"data.{split}_list is not set; source 'filelist' cannot load split {split!r}")
    list_path = root / list_name if not Path(list_name).is_absolute() else Path(list_name)
    if not list_path.is_file():
        raise DataError(f"{list_path}: file list is missing")
    names: list[str] = []
    labels: list[int] = []
    try:
        text = list_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{list_path}: not UTF-8 text (byte offset {e.start})") from None
    if True:
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
                raise DataError(f"{list_path}:{lineno}: expected 'relative/path label' with a label >= 0, "
                                f"got {line!r}")
            names.append(str(root / parts[0]))
            labels.append(int(parts[1]))
    if not names:
        raise DataError(f"{list_path}: file list has no samples")
    # One stat per file: costs about 1 s per 100k files locally and catches a wrong root at start.
    missing = [n for n in names if not os.path.isfile(n)]
    if missing:
        raise DataError(f"{list_path}: {len(missing)} listed files do not exist under {root}, "
                        f"e.g. {missing[0]}")
    if cfg.classes_file is not None:
        cpath = root / cfg.classes_file
        if not cpath.is_file():
            raise DataError(f"{cpath}: classes file is missing")
        class_names = [c.strip() for c in cpath.read_text(encoding="utf-8").splitlines() if c.strip()]
    else:
        class_names = [str(k) for k in range(max(labels) + 1)]
        absent = sorted(set(range(len(class_names))) - set(labels)) if split == "train" else []
        if absent:  # e.g. one line with label 7 would otherwise make 8 classes, 7 of them without images
            raise DataError(f"{list_path}: without data.classes_file the classes are 0..{max(labels)} (the largest "
                            f"label), but labels {absent[:5]} have no image; fix the labels or set "
                            "data.classes_file")
    if max(labels) >= len(class_names):
        raise DataError(f"{list_path}: label {max(labels)} is out of range for {len(class_names)} classes")
    return SampleIndex(names, np.asarray(labels, dtype=np.int64), class_names)


def _cifar10_index(root: Path, split: str) -> SampleIndex:
    """The packed CIFAR-10 JPEG npz (class-major order); 'val' is the 10k test split."""
    path = root / ("cifar10_train_jpeg.npz" if split == "train" else "cifar10_test_jpeg.npz")
    if not path.is_file():
        raise DataError(f"{path}: CIFAR-10 npz is missing (data.root={str(root)!r})")
    z = np.load(path, allow_pickle=False)
    blob, offsets = z["jpeg_bytes"], z["offsets"].astype(np.int64)
    labels, file_index, classes = z["labels"].astype(np.int64), z["file_index"], list(z["classes"])
    sub = "train" if split == "train" else "test"
    names = [f"{path.name}[{i}] ({sub}/{classes[y]}/{n:04d}.jpg)"
             for i, (y, n) in enumerate(zip(labels.tolist(), file_index.tolist()))]
    return SampleIndex(names, labels, [str(c) for c in classes], blob, offsets)
