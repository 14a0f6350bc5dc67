"""Data throughput: images/s of the DALI and torchvision backends on the same files, same augmentation.

* 224 px: the 128 real ImageNet JPEGs of ../shared/data/imagenet-samples (68x121 .. 2400x1600,
  23 grayscale), listed ``--repeat`` times in one file list so an epoch is long enough to time.
* 32 px: the first ``--cifar-per-class`` train images per class of the CIFAR-10 JPEG npz
  (pad-and-crop + flip + jitter).

Both backends go through ``build_loader`` (train augmentation, one view unless ``--views 2``), so
the numbers include everything a training loop would wait for. The first batch is excluded (start-up).

    python bench/data_throughput.py                       # both resolutions, both backends
    python bench/data_throughput.py --res 32 --threads 2 --workers 2
    python bench/data_throughput.py --dali-device gpu     # on a CUDA machine: mixed decoding
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lwsl_ds.data import DataConfig, build_loader  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def imagenet_cfg(tmp: Path, repeat: int, threads: int, workers: int) -> DataConfig:
    """File list repeating the 128 ImageNet sample JPEGs ``repeat`` times."""
    root = SHARED / "imagenet-samples"
    with open(root / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    lines = [f"images/{r['file']} {r['class_index']}\n" for r in rows] * repeat
    (tmp / "list.txt").write_text("".join(lines))
    return DataConfig(source="filelist", root=str(root), train_list=str(tmp / "list.txt"), resolution=224,
                      num_threads=threads, num_workers=workers)


def cifar_cfg(per_class: int, threads: int, workers: int) -> DataConfig:
    """CIFAR-10 train subset at its native 32 px."""
    return DataConfig(source="cifar10", root=str(SHARED / "cifar10-jpeg"), max_per_class=per_class,
                      num_threads=threads, num_workers=workers)


def measure(cfg: DataConfig, backend: str, batch_size: int, views: int, dali_device: str) -> tuple[float, int]:
    """Images/s over one epoch after the first batch; returns (rate, images timed)."""
    loader = build_loader(cfg, "train", batch_size=batch_size, augment="train", views=views,
                          backend=backend, device=dali_device if backend == "dali" else None, seed=0)
    it = iter(loader)
    next(it)  # start-up (pipeline build, worker fork) is not throughput
    n, t0, on_gpu = 0, time.perf_counter(), False
    for images, labels in it:
        n += len(labels)
        on_gpu = (images[0] if isinstance(images, list) else images).is_cuda
    if on_gpu:  # GPU outputs are asynchronous: count only finished work
        import torch

        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0), n


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--res", choices=["224", "32", "both"], default="both")
    p.add_argument("--backends", default="dali,torchvision")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--views", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DALI CPU threads")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="torchvision worker processes")
    p.add_argument("--dali-device", choices=["cpu", "gpu"], default="cpu",
                   help="DALI decoding: cpu, or gpu ('mixed'; needs CUDA)")
    p.add_argument("--repeat", type=int, default=8, help="224 px: times the 128 JPEGs are listed")
    p.add_argument("--cifar-per-class", type=int, default=1000, help="32 px: train images per class")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        if a.res in ("224", "both"):
            cases.append(("224 px, ImageNet samples", imagenet_cfg(Path(tmp), a.repeat, a.threads, a.workers)))
        if a.res in ("32", "both"):
            cases.append(("32 px, CIFAR-10 JPEG", cifar_cfg(a.cifar_per_class, a.threads, a.workers)))
        for name, cfg in cases:
            rates = {}
            for backend in a.backends.split(","):
                rate, n = measure(cfg, backend, a.batch_size, a.views, a.dali_device)
                rates[backend] = rate
                print(f"{name}: {backend}: {rate:.0f} img/s over {n} images", flush=True)
            ratio = rates["dali"] / rates["torchvision"] if {"dali", "torchvision"} <= set(rates) else float("nan")
            rows.append((name, rates.get("dali", float("nan")), rates.get("torchvision", float("nan")), ratio))
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs; DALI threads {a.threads}, "
          f"DALI device {a.dali_device}, torchvision workers {a.workers}, batch {a.batch_size}, views {a.views}\n")
    print("| case | DALI img/s | torchvision img/s | DALI / torchvision |")
    print("| --- | ---: | ---: | ---: |")
    for name, d, t, r in rows:
        print(f"| {name} | {d:.0f} | {t:.0f} | {r:.2f}x |")


if __name__ == "__main__":
    main()
