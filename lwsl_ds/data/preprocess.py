"""The eval preprocessing of a trained model as data: written beside ``subnet.pt2``, read by ``lwsl predict``.

``preprocess.json`` says exactly what the val pipeline did to an image before the network saw it, so an
exported sub-net can be used without the training config (or without lwsl_ds):

1. decode the file, apply its EXIF orientation, convert to RGB: a grayscale image becomes 3 equal channels
   (the networks always take ``in_channels`` = 3);
2. resize the short side to ``resize_short`` (bilinear with antialiasing, sizes rounded half up), then
   center-crop ``crop`` x ``crop`` (offsets rounded half up); ``resize_short`` null: the source's images
   already have the crop size (e.g. CIFAR-10), so no resize (other sizes are resized to ``crop``);
3. scale to [0, 1] (divide by 255), subtract ``mean`` and divide by ``std`` per channel (R, G, B);
4. stack as float32 NCHW.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config.sections.data import DataConfig
from .augment import make_spec
from .sources import DataError

__all__ = ["PREPROCESS_FILE", "preprocess_doc", "write_preprocess", "read_preprocess", "load_images"]

PREPROCESS_FILE = "preprocess.json"
FORMAT = "lwsl_ds.preprocess/1"


def preprocess_doc(cfg: DataConfig, *, class_names: Sequence[str], in_channels: int = 3) -> dict[str, Any]:
    """The val preprocessing of ``cfg`` (per-source defaults resolved) as a JSON-able mapping."""
    spec = make_spec(cfg, "val")
    return {"format": FORMAT, "decode": "EXIF orientation applied, then RGB (grayscale -> 3 equal channels)",
            "channels": "RGB", "in_channels": in_channels,
            "resize_short": spec.resize_short if spec.needs_resize else None,
            "interpolation": "bilinear, antialias, sizes and crop offsets rounded half up",
            "crop": spec.resolution, "scale": "1/255", "mean": list(spec.mean), "std": list(spec.std),
            "layout": "NCHW float32", "num_classes": len(class_names), "class_names": list(class_names),
            "source": cfg.source}


def write_preprocess(folder: str | Path, doc: dict[str, Any]) -> Path:
    """Write ``preprocess.json`` into ``folder`` atomically; returns its path."""
    from ..common.atomic import write_atomic

    path = Path(folder) / PREPROCESS_FILE
    write_atomic(path, json.dumps(doc, indent=1))
    return path


def read_preprocess(folder: str | Path) -> dict[str, Any]:
    """Read and check ``<folder>/preprocess.json``; a missing or foreign file raises DataError naming it."""
    path = Path(folder) / PREPROCESS_FILE
    if not path.is_file():
        raise DataError(f"{path}: missing (exports written by retraining carry it; older ones do not)")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise DataError(f"{path}: format {doc.get('format')!r} is not {FORMAT!r}")
    return doc


def _transform(doc: dict[str, Any], size: tuple[int, int]):
    """The val transform of ``doc`` for an image of ``size`` (w, h)."""
    from torchvision.transforms import v2

    from .tv_backend import ResizeCenterCrop

    crop, short = int(doc["crop"]), doc["resize_short"]
    steps: list = []
    if short is not None:
        steps.append(ResizeCenterCrop(int(short), crop))
    elif size != (crop, crop):  # a source of fixed-size images: other sizes get the plain resize + crop
        steps.append(ResizeCenterCrop(crop, crop))
    steps += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(doc["mean"], doc["std"])]
    return v2.Compose(steps)


def load_images(paths: Sequence[str | Path], doc: dict[str, Any]) -> torch.Tensor:
    """Image files -> the (N, 3, crop, crop) float32 batch the network expects; DataError names a bad file."""
    from .tv_backend import decode_pil

    out = []
    for p in paths:
        try:
            data = np.frombuffer(Path(p).read_bytes(), dtype=np.uint8)
        except OSError as e:
            raise DataError(f"{p}: cannot read image file: {e.strerror or e}") from None
        img = decode_pil(data, str(p))
        out.append(_transform(doc, img.size)(img))
    return torch.stack(out)
