"""``lwsl data-stats --config <experiment.yaml>``: per-channel mean and std of the training images.

    lwsl data-stats --config configs/mydata.yaml                 # prints data.mean / data.std lines
    lwsl data-stats --config configs/mydata.yaml --max-images 5000 data.root=/data/other

The images go through the val preprocessing (decode, RGB, resize, center crop, scale to [0, 1]) without
normalisation; pixels of an evenly spaced subset of the train split (all of it when smaller than
``--max-images``) are averaged. Grayscale images are read as 3 equal channels, so their three means are
equal. Paste the printed values into the config's ``data:`` section (``mean: [...]``, ``std: [...]``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

__all__ = ["channel_stats", "main"]


def channel_stats(cfg, max_images: int = 2000) -> tuple[list[float], list[float], int]:
    """(mean, std, images used) per RGB channel of the config's train split after the val resize/crop."""
    from .preprocess import _transform, preprocess_doc
    from .sources import build_index
    from .tv_backend import decode_pil

    index = build_index(cfg, "train")
    doc = preprocess_doc(cfg, class_names=index.class_names)
    doc.update(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    pick = np.unique(np.linspace(0, len(index) - 1, min(max_images, len(index))).round().astype(int))
    total = torch.zeros(3, dtype=torch.float64)
    sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for i in pick.tolist():
        img = decode_pil(index.read(i), index.names[i])
        x = _transform(doc, img.size)(img).double()
        total += x.sum((1, 2))
        sq += (x * x).sum((1, 2))
        count += x.shape[1] * x.shape[2]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
    return [round(v, 4) for v in mean.tolist()], [round(max(v, 1e-4), 4) for v in std.tolist()], len(pick)


def main(argv: list[str] | None = None) -> int:
    """Command line; bad input exits 2 with one line."""
    from ..config import ConfigError, load_experiment
    from ..config.cli_args import add_override_args, overrides_of
    from .sources import DataError

    ap = argparse.ArgumentParser(prog="lwsl data-stats", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="experiment YAML (its data: section)")
    ap.add_argument("--max-images", type=int, default=2000, help="evenly spaced train images to average")
    add_override_args(ap)
    args = ap.parse_args(argv)
    try:
        cfg = load_experiment(args.config, overrides_of(args))
        mean, std, n = channel_stats(cfg.data, args.max_images)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"# {n} train images of {cfg.data.source} data at {cfg.data.out_resolution} px (val resize/crop, RGB)")
    print(f"data.mean={mean}\ndata.std={std}")
    return 0
