"""Check 1: images/s of DALI ``mixed`` (GPU decoding), the DALI CPU pipeline and torchvision, same JPEGs.

All three go through ``build_loader`` with the train augmentation at the same resolution, so a number
includes everything a training loop waits for; the first batch (pipeline build, worker start, nvJPEG
init) is not timed. The JPEGs: ``images`` (a folder with ``manifest.csv`` as the ImageNet sample folder
has, or any folder of ``*.jpg``/``*.jpeg``), else JPEGs generated here of ImageNet-like sizes.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from .record import Result, check_main, cuda_reason

__all__ = ["file_list", "generate_jpegs", "measure", "run"]

SUFFIXES = {".jpg", ".jpeg"}


def generate_jpegs(folder: Path, count: int, seed: int = 0) -> Path:
    """Write ``count`` JPEGs of 180..500 px sides (smooth colour fields + noise, quality 90) into ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(180, 501, size=2))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([128 + 100 * np.sin(xx / rng.uniform(8, 60) + c) * np.cos(yy / rng.uniform(8, 60))
                         for c in range(3)], axis=-1)
        arr = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def file_list(images: Path, out: Path, repeat: int) -> tuple[Path, Path, int]:
    """A filelist over ``images`` listed ``repeat`` times; returns (root, list file, distinct images)."""
    manifest = images / "manifest.csv"
    if manifest.is_file():  # the ImageNet sample folder: images/<file>, class index per row
        with open(manifest) as f:
            rows = [(f"images/{r['file']}", int(r["class_index"])) for r in csv.DictReader(f)]
    else:
        files = sorted(p for p in images.rglob("*") if p.suffix.lower() in SUFFIXES)
        rows = [(str(p.relative_to(images)), k % 10) for k, p in enumerate(files)]
    if not rows:
        raise ValueError(f"--images {images}: no manifest.csv and no .jpg/.jpeg files")
    lst = out / "data_list.txt"
    lst.write_text("".join(f"{f} {c}\n" for f, c in rows) * repeat)
    return images, lst, len(rows)


def measure(cfg: Any, backend: str, device: str | None, batch: int, max_seconds: float) -> dict[str, Any]:
    """Images/s after the first batch, until the list ends or ``max_seconds`` pass."""
    import torch

    from ..data import build_loader

    loader = build_loader(cfg, "train", batch_size=batch, augment="train", backend=backend, device=device, seed=0)
    it = iter(loader)
    first, _ = next(it)
    on_gpu = first.is_cuda
    n, t0 = 0, time.perf_counter()
    for images, labels in it:
        n += len(labels)
        if time.perf_counter() - t0 > max_seconds:
            break
    if on_gpu:  # GPU outputs are asynchronous: count finished work only
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if n == 0:
        raise ValueError(f"only one batch of {batch}: list more images (repeat) to time anything")
    return {"images_per_s": round(n / dt, 1), "images": n, "timed_seconds": round(dt, 2),
            "output_device": str(first.device), "shape": list(first.shape)}


def run(p: dict[str, Any], result: Result) -> None:
    """Measure the three pipelines; DALI ``mixed`` is skipped with the reason when there is no CUDA."""
    from ..data import DataConfig

    out = Path(p["out"]).resolve()  # the file list is read relative to the image root unless absolute
    out.mkdir(parents=True, exist_ok=True)
    if p.get("images"):
        images, generated = Path(p["images"]), False
    else:
        images, generated = generate_jpegs(out / "generated-jpegs", int(p["generate"])), True
    root, lst, distinct = file_list(images, out, int(p["repeat"]))
    result.set(images=str(images), generated=generated, distinct_images=distinct, repeat=int(p["repeat"]),
               resolution=int(p["resolution"]), batch=int(p["batch"]), dali_threads=int(p["threads"]),
               torchvision_workers=int(p["workers"]))
    cfg = DataConfig(source="filelist", root=str(root), train_list=str(lst), resolution=int(p["resolution"]),
                     num_threads=int(p["threads"]), num_workers=int(p["workers"]))
    why = cuda_reason()
    for name, backend, device in (("dali_mixed", "dali", "gpu"), ("dali_cpu", "dali", "cpu"),
                                  ("torchvision", "torchvision", None)):
        if device == "gpu" and why:
            result.skip(f"{why}: DALI 'mixed' decoding needs a GPU", pipeline=name)
            continue
        with result.item(pipeline=name) as rec:
            rec.update(measure(cfg, backend, device, int(p["batch"]), float(p["max_seconds"])))


if __name__ == "__main__":
    raise SystemExit(check_main(run))
