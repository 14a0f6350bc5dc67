"""Helpers of the end-to-end tests (imported by name; tests/e2e has no __init__.py): an ImageNet-style folder,
the phases' launchers as subprocesses with their wall time, small ds_configs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def imagenet_folder(root: Path, samples: Optional[Path], *, classes: int, per_class: int) -> str:
    """Write ``root/train/<wnid>/*.JPEG``: ``classes`` folders of ``per_class`` images; returns what was used.

    With the real ImageNet samples (one image per ImageNet class) the first ``classes * per_class`` images in
    class order are copied, ``per_class`` to a folder named after the first one's wnid: real JPEGs (odd
    sizes, grayscale files), with labels that mean nothing. Without them, generated JPEGs of varied sizes.
    """
    if samples is not None and (samples / "manifest.csv").is_file():
        with (samples / "manifest.csv").open() as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["class_index"]))[:classes * per_class]
        for k in range(classes):
            group = rows[k * per_class:(k + 1) * per_class]
            folder = root / "train" / group[0]["wnid"]
            folder.mkdir(parents=True, exist_ok=True)
            for r in group:
                shutil.copyfile(samples / "images" / r["file"], folder / r["file"])
        return f"{classes * per_class} real ImageNet sample JPEGs"
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(classes):
        folder = root / "train" / f"n{k:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            h, w = int(rng.integers(40, 120)), int(rng.integers(40, 120))
            img = (rng.random((h, w, 3)) * 80 + rng.integers(0, 170, 3)).astype("uint8")
            Image.fromarray(img).save(folder / f"n{k:08d}_{j}.JPEG", quality=90)
    return f"{classes * per_class} generated JPEGs"


def ds_config(path: Path, base: str, batch: int) -> Path:
    """A copy of ``ds_configs/<base>.json`` with the per-rank batch ``batch``."""
    cfg = json.loads((REPO / "ds_configs" / f"{base}.json").read_text())
    cfg["train_micro_batch_size_per_gpu"] = batch
    path.write_text(json.dumps(cfg))
    return path


def _env() -> dict:
    """The environment of a launcher subprocess: this checkout first, no rank variables of in-process tests."""
    e = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LWSL_FAULT"):
        e.pop(k, None)
    return e


def run(times: dict, phase: str, *cmd: str, expect: int = 0, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one phase's command from the repository root; asserts its exit status; records its wall time."""
    t0 = time.perf_counter()
    r = subprocess.run([str(c) for c in cmd], cwd=REPO, env=_env(), capture_output=True, text=True,
                       timeout=timeout)
    times[phase] = round(time.perf_counter() - t0, 1)
    assert r.returncode == expect, f"{phase}: exit status {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-4000:]}"
    return r
