"""End-of-training check of a super-net: a few sampled sub-nets scored on held-out data, as the search does.

Super-net training logs only local train-batch losses; this says at once whether the shared weights give
sub-nets that generalise. Cost: ``archs`` x (BN recalibration + at most ``max_batches`` scored batches).
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

__all__ = ["heldout_check", "HELDOUT_FILE"]

HELDOUT_FILE = "heldout.json"


def heldout_check(supernet: Any, cfg: Any, out_dir: str | Path, *, archs: int = 3, max_batches: int = 10,
                  device: Any = "cpu") -> dict:
    """Score ``archs`` sub-nets (seeded sample) on the scoring split; writes ``<out_dir>/heldout.json``."""
    from ..common.atomic import write_atomic
    from ..space import describe, sample_arch
    from .scoring import build_evaluator, scoring_split_text

    limit = min(cfg.search.val_batches or max_batches, max_batches)
    cfg = replace(cfg, search=replace(cfg.search, val_batches=limit))
    evaluator, scored = build_evaluator(supernet, cfg, device=device)
    rng = random.Random(cfg.seed)
    space = supernet.space
    picked = []
    for _ in range(archs):
        arch = sample_arch(space, rng)
        picked.append({"arch": arch.key, "named": describe(space, arch), "score": float(evaluator.score(arch))})
    images = min(scored.num_samples, limit * cfg.search.batch_size)
    doc = {"split": scoring_split_text(cfg), "images": images, "recal_batches": cfg.search.recal_batches,
           "archs": picked}
    write_atomic(Path(out_dir) / HELDOUT_FILE, json.dumps(doc, indent=1))
    return doc
