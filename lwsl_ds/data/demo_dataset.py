"""Synthetic demo data set: procedurally drawn shapes and textures in 10 classes, as JPEG files.

SYNTHETIC: no real photographs; it exists so the demo and tests run with no external data. Images
are written in ImageNet layout (``root/{train,val}/<class>/<n>.JPEG``) and are a pure function of
(seed, class, split, index): regenerating gives byte-identical files (same Pillow/libjpeg).
Each class is one pattern with random colours, position, size, rotation and noise, so a small network
can learn it but not trivially. Generating the default set (10 x (300 + 100) images, 64 px) takes a
few seconds.

    python -m lwsl_ds.data.demo_dataset --out .cache/demo-data
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "generate", "ensure"]

CLASSES = ("circle", "square", "triangle", "ring", "cross", "hstripes", "vstripes", "checker",
           "dots", "gradient")
_VERSION = 1
_MARKER = "DEMO_DATASET.json"


def _draw(cls: str, rng: np.random.Generator, size: int):
    """One image of class ``cls`` as a PIL image."""
    from PIL import Image, ImageDraw

    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int(v) for v in (np.array(bg) + rng.integers(80, 176, 3)) % 256)
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    s = size
    r = rng.uniform(0.18, 0.38) * s  # half-extent of the shape
    cx, cy = rng.uniform(r, s - r, 2)
    if cls == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif cls == "square":
        d.regular_polygon((cx, cy, r), 4, rotation=float(rng.uniform(0, 90)), fill=fg)
    elif cls == "triangle":
        d.regular_polygon((cx, cy, r), 3, rotation=float(rng.uniform(0, 120)), fill=fg)
    elif cls == "ring":
        w = max(2, int(r * rng.uniform(0.2, 0.4)))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fg, width=w)
    elif cls == "cross":
        w = r * rng.uniform(0.25, 0.45)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fg)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fg)
    elif cls in ("hstripes", "vstripes"):
        period = int(rng.integers(max(4, s // 12), max(6, s // 5)))
        for k in range(int(rng.integers(0, period)) - period, s, period):
            box = [0, k, s, k + period // 2] if cls == "hstripes" else [k, 0, k + period // 2, s]
            d.rectangle(box, fill=fg)
    elif cls == "checker":
        cell = int(rng.integers(max(4, s // 10), max(6, s // 4)))
        off = int(rng.integers(0, cell))
        for y in range(-off, s, cell):
            for x in range(-off, s, cell):
                if ((x + off) // cell + (y + off) // cell) % 2 == 0:
                    d.rectangle([x, y, x + cell - 1, y + cell - 1], fill=fg)
    elif cls == "dots":
        for _ in range(int(rng.integers(6, 14))):
            pr = rng.uniform(0.04, 0.09) * s
            px, py = rng.uniform(0, s, 2)
            d.ellipse([px - pr, py - pr, px + pr, py + pr], fill=fg)
    elif cls == "gradient":
        t = np.linspace(0.0, 1.0, s)[None, :, None]
        angle = rng.uniform(0, 2 * np.pi)
        xx, yy = np.meshgrid(t[0, :, 0], t[0, :, 0])
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
        ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
        arr = (1 - ramp[..., None]) * np.array(bg) + ramp[..., None] * np.array(fg)
        img = Image.fromarray(arr.astype(np.uint8))
    else:  # pragma: no cover - CLASSES is fixed
        raise ValueError(cls)
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 12, (s, s, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def generate(root: str | os.PathLike, *, train_per_class: int = 300, val_per_class: int = 100,
             size: int = 64, seed: int = 0, quality: int = 90) -> Path:
    """Write the demo data set to ``root`` (replacing an earlier demo set there) and return the path; deterministic."""
    root = Path(root)
    params = {"version": _VERSION, "train_per_class": train_per_class, "val_per_class": val_per_class,
              "size": size, "seed": seed, "quality": quality, "classes": list(CLASSES)}
    if root.exists() and not (root / _MARKER).is_file() and any(root.iterdir()):
        raise FileExistsError(f"{root}: exists, is not empty and is not a demo data set; refusing to "
                              "replace it")
    root.parent.mkdir(parents=True, exist_ok=True)
    # Write into a sibling temp folder and rename: concurrent ranks never see a half-written set.
    tmp = Path(tempfile.mkdtemp(prefix=".demo-tmp-", dir=root.parent))
    try:
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for c, cls in enumerate(CLASSES):
                cdir = tmp / split / f"{c:02d}_{cls}"
                cdir.mkdir(parents=True)
                for n in range(count):
                    rng = np.random.default_rng([seed, c, 0 if split == "train" else 1, n])
                    _draw(cls, rng, size).save(cdir / f"{n:05d}.JPEG", quality=quality)
        (tmp / _MARKER).write_text(json.dumps(params, indent=1) + "\n")
        if _matches(root, params):  # another rank finished the same set first: keep theirs
            shutil.rmtree(tmp)
            return root
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _matches(root: Path, want: dict) -> bool:
    """Whether ``root`` holds a complete demo set generated with the parameters ``want``."""
    marker = root / _MARKER
    if not marker.is_file():
        return False
    params = json.loads(marker.read_text())
    return params.get("version") == _VERSION and all(params.get(k) == v for k, v in want.items())


def ensure(root: str | os.PathLike, **kwargs) -> Path:
    """Return ``root`` holding a complete demo set with these parameters, generating it if needed."""
    root = Path(root)
    defaults = {"train_per_class": 300, "val_per_class": 100, "size": 64, "seed": 0, "quality": 90}
    if _matches(root, {**defaults, **kwargs}):
        return root
    if not (root / _MARKER).is_file() and root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: exists, is not empty and is not a demo data set; "
                              "choose another data.root")
    return generate(root, **kwargs)


def main(argv: list[str] | None = None) -> None:
    """CLI: generate the demo data set."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (an earlier demo set there is replaced)")
    p.add_argument("--train-per-class", type=int, default=300)
    p.add_argument("--val-per-class", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = generate(a.out, train_per_class=a.train_per_class, val_per_class=a.val_per_class,
                   size=a.size, seed=a.seed)
    print(f"wrote synthetic demo data set to {out}: {len(CLASSES)} classes, "
          f"{a.train_per_class} train + {a.val_per_class} val images per class, {a.size} px")


if __name__ == "__main__":
    main()
