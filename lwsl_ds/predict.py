"""``lwsl predict <export dir> <images...>``: classify image files with an exported sub-net.

    lwsl predict runs/myexp/retrain/export photo1.png photo2.jpg          # one line per image
    lwsl predict runs/myexp/retrain/export imgs/*.png --top 3 --json       # JSON lines

Reads only the export folder: ``subnet.pt2`` (``torch.export.load``) and ``preprocess.json`` (resize, crop,
channels, mean, std, class names; see ``lwsl_ds/data/preprocess.py``). No training config is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["load_export", "predict", "main"]


def load_export(export_dir: str | Path):
    """(the exported program's module, preprocess doc) of an export folder; DataError names what is missing."""
    from .data.preprocess import read_preprocess
    from .data.sources import DataError

    folder = Path(export_dir)
    program = folder / "subnet.pt2"
    if not program.is_file():
        raise DataError(f"{program}: missing (pass the export folder written by retraining, <retrain dir>/export)")
    doc = read_preprocess(folder)
    return torch.export.load(str(program)).module(), doc


def predict(export_dir: str | Path, images: Sequence[str | Path], *, batch_size: int = 64) -> list[dict]:
    """One record per image: path, label, class name, probability, and the top classes' logits."""
    from .data.preprocess import load_images

    module, doc = load_export(export_dir)
    names = doc.get("class_names") or []
    out = []
    for i in range(0, len(images), batch_size):
        chunk = list(images[i:i + batch_size])
        with torch.no_grad():
            logits = module(load_images(chunk, doc)).float()
        probs = logits.softmax(1)
        for path, row, p in zip(chunk, logits, probs):
            k = int(row.argmax())
            out.append({"image": str(path), "label": k, "class": names[k] if k < len(names) else str(k),
                        "probability": float(p[k]), "probs": p.tolist()})
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line; bad input exits 2 with one line."""
    ap = argparse.ArgumentParser(prog="lwsl predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export_dir", help="export folder written by retraining (subnet.pt2 + preprocess.json)")
    ap.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...; grayscale is read as 3 equal channels)")
    ap.add_argument("--top", type=int, default=1, help="also print the k most likely classes")
    ap.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    args = ap.parse_args(argv)
    from .data.sources import DataError

    try:
        records = predict(args.export_dir, args.images)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in records:
        order = sorted(range(len(r["probs"])), key=lambda j: -r["probs"][j])[:max(1, args.top)]
        if args.json:
            print(json.dumps({k: v for k, v in r.items() if k != "probs"} | {"top": order}))
        else:
            extra = "" if args.top <= 1 else "  (" + ", ".join(f"{j}: {r['probs'][j]:.3f}" for j in order) + ")"
            print(f"{r['image']}\t{r['class']}\t{r['probability']:.3f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
