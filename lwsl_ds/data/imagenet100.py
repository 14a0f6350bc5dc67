"""ImageNet-100 sub-data set builder (paper's ranking experiment): file lists only, no image copies.

Picks ``num_classes`` classes (seeded, or read from a class-list file) of an ImageNet folder
(``root/train/<wnid>/*.JPEG``) and per class ``train_per_class`` train and ``val_per_class`` val
images. ImageNet's own val split has only 50 images per class, so by default the val images are
held out from the train folder, disjoint from the chosen train images (``val_from="val"`` takes them
from ``root/val/<wnid>/`` instead). The choice is a pure function of (seed, file names).
Labels are the positions of the chosen wnids in sorted order. Writes ``train.txt``, ``val.txt``
(``relative/path label`` lines, relative to root) and ``classes.txt``; use them with

    data: {source: filelist, root: <imagenet>, train_list: <out>/train.txt, val_list: <out>/val.txt,
           classes_file: <out>/classes.txt}

    python -m lwsl_ds.data.imagenet100 --root /data/imagenet --out runs/imagenet100 [--classes-file F]

Bad input (a missing folder or class list, too few classes or images, a count below 1) stops the command
with one ``error: ...`` line and exit status 2, as the launchers do.
"""

from __future__ import annotations

import argparse
import os
import sys
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from .sources import IMAGE_EXTENSIONS, DataError

__all__ = ["build"]


def _images(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))


def build(root: str | os.PathLike, out: str | os.PathLike, *, num_classes: int = 100,
          train_per_class: int = 1000, val_per_class: int = 100, seed: int = 0,
          classes_file: Optional[str | os.PathLike] = None, val_from: str = "train") -> dict[str, Path]:
    """Write the sub-data set's file lists to ``out``; returns {'train','val','classes'} paths."""
    root, out = Path(root), Path(out)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(f"{train_dir}: ImageNet train folder is missing (expected {root}/train/<wnid>/)")
    if val_from not in ("train", "val"):
        raise DataError(f"val_from must be 'train' or 'val', got {val_from!r}")
    for name, value in (("num_classes", num_classes), ("train_per_class", train_per_class),
                        ("val_per_class", val_per_class)):
        if value < 1:
            raise DataError(f"{name}: must be >= 1, got {value}")
    available = sorted(e.name for e in os.scandir(train_dir) if e.is_dir())
    if not available:
        raise DataError(f"{train_dir}: no class folders (expected {train_dir}/<wnid>/*.JPEG)")
    if classes_file is not None:
        if not Path(classes_file).is_file():
            raise DataError(f"{classes_file}: class list file not found")
        lines = Path(classes_file).read_text(encoding="utf-8").splitlines()
        wanted = [w.split()[0] for w in lines if w.strip() and not w.startswith("#")]
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise DataError(f"{classes_file}: classes {missing[:5]} are not folders of {train_dir}")
        if len(set(wanted)) != len(wanted):
            raise DataError(f"{classes_file}: lists a class twice")
        chosen = sorted(wanted)
    else:
        if num_classes > len(available):
            raise DataError(f"{train_dir}: has {len(available)} classes, fewer than num_classes={num_classes}")
        pick = np.random.default_rng([seed, 100]).choice(len(available), size=num_classes, replace=False)
        chosen = sorted(available[i] for i in pick)
    train_lines, val_lines = [], []
    for label, wnid in enumerate(chosen):
        # Per-class stream keyed by the wnid, so one class's choice does not depend on the others.
        rng = np.random.default_rng([seed, zlib.crc32(wnid.encode())])
        files = _images(train_dir / wnid)
        need = train_per_class + (val_per_class if val_from == "train" else 0)
        if len(files) < need:
            raise DataError(f"{train_dir / wnid}: {len(files)} images, fewer than the {need} needed")
        order = [files[i] for i in rng.permutation(len(files))]
        train_lines += [f"train/{wnid}/{f} {label}" for f in sorted(order[:train_per_class])]
        if val_from == "train":
            val_files = sorted(order[train_per_class:need])
            val_lines += [f"train/{wnid}/{f} {label}" for f in val_files]
        else:
            vfiles = _images(root / "val" / wnid) if (root / "val" / wnid).is_dir() else []
            if len(vfiles) < val_per_class:
                raise DataError(f"{root / 'val' / wnid}: {len(vfiles)} images, fewer than {val_per_class}")
            vorder = [vfiles[i] for i in rng.permutation(len(vfiles))]
            val_lines += [f"val/{wnid}/{f} {label}" for f in sorted(vorder[:val_per_class])]
    out.mkdir(parents=True, exist_ok=True)
    paths = {"train": out / "train.txt", "val": out / "val.txt", "classes": out / "classes.txt"}
    paths["train"].write_text("\n".join(train_lines) + "\n")
    paths["val"].write_text("\n".join(val_lines) + "\n")
    paths["classes"].write_text("\n".join(chosen) + "\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    """CLI: write the ImageNet-100 file lists; bad input is one ``error:`` line and exit status 2."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="ImageNet folder holding train/<wnid>/ (and val/<wnid>/)")
    p.add_argument("--out", required=True, help="folder for train.txt, val.txt, classes.txt")
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--train-per-class", type=int, default=1000)
    p.add_argument("--val-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes-file", default=None, help="one wnid per line instead of a seeded choice")
    p.add_argument("--val-from", choices=["train", "val"], default="train",
                   help="hold val images out of the train folder (default) or take them from val/")
    a = p.parse_args(argv)
    try:
        paths = build(a.root, a.out, num_classes=a.num_classes, train_per_class=a.train_per_class,
                      val_per_class=a.val_per_class, seed=a.seed, classes_file=a.classes_file, val_from=a.val_from)
    except (DataError, OSError) as e:  # OSError: an unreadable folder or an output folder that cannot be written
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(v) for v in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
