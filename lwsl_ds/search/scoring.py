"""How a candidate is scored, shared by the search and the ranking: the loaders and the configured evaluator."""

from __future__ import annotations

import os
from typing import Any, Tuple

__all__ = ["scoring_loaders", "build_evaluator", "scoring_split", "scoring_split_text"]


def scoring_loaders(cfg: Any) -> Tuple[Any, Any]:
    """(train, val) loaders for scoring sub-nets with the ``search`` section's batch size and seeds.

    Not sharded: every rank sees every batch, so a candidate's score does not depend on its rank.
    Recalibration / kNN-bank batches come from the "fit" split (train minus the held-out part), shuffled,
    with eval transforms; the scored batches from the held-out split (``scoring_split``), shuffled with a fixed seed so that ``search.val_batches`` takes a
    class-balanced subset (a sorted split would give the first classes only). The order is the same for
    every candidate and every rank.
    """
    from ..data import build_loader

    bs = cfg.search.batch_size
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # DALI decodes on this rank's GPU
    train = build_loader(cfg.data, "fit", batch_size=bs, augment="val", rank=0, world_size=1,
                         local_rank=local_rank, seed=cfg.seed + cfg.search.seed, drop_last=True, shuffle=True)
    val = build_loader(cfg.data, scoring_split(cfg), batch_size=bs, augment="val", rank=0, world_size=1,
                       local_rank=local_rank, seed=cfg.seed, drop_last=False, shuffle=True)
    return train, val


def scoring_split(cfg: Any) -> str:
    """The split candidates are scored on: "holdout" (part of train, never trained on), or "val" when
    ``data.holdout`` is 0. Retraining reports on "val", so the search never selects on the reported split."""
    return "holdout" if cfg.data.holdout > 0 else "val"


def scoring_split_text(cfg: Any, images: int | None = None) -> str:
    """The scoring split in words, for best_arch.yaml and the report."""
    n = f", {images} images" if images is not None else ""
    if cfg.data.holdout > 0:
        return f"{cfg.data.holdout_text}{n}"
    return f"val split{n} (data.holdout: 0; retraining reports on the same split)"


def build_evaluator(supernet: Any, cfg: Any, *, device: Any = "cpu") -> Tuple[Any, Any]:
    """The search evaluator with the ``search`` section's settings over ``scoring_loaders``; returns (evaluator, val)."""
    from .evaluator import Evaluator

    train, val = scoring_loaders(cfg)
    s = cfg.search
    ev = Evaluator(supernet, train, val, recal_batches=s.recal_batches, device=device, val_batches=s.val_batches,
                   knn_k=s.knn_k, knn_temperature=s.knn_temperature, knn_bank_batches=s.knn_bank_batches,
                   objective=None if s.objective == "auto" else s.objective)
    return ev, val
