"""How a candidate is scored, shared by the search and the ranking: the loaders and the configured evaluator."""

from __future__ import annotations

import os
from typing import Any, Tuple

__all__ = ["scoring_loaders", "build_evaluator"]


def scoring_loaders(cfg: Any) -> Tuple[Any, Any]:
    """(train, val) loaders for scoring sub-nets with the ``search`` section's batch size and seeds.

    Not sharded: every rank sees every batch, so a candidate's score does not depend on its rank.
    Recalibration / kNN-bank batches come from the train split, shuffled, with eval transforms; the
    held-out batches from the val split, shuffled with a fixed seed so that ``search.val_batches`` takes a
    class-balanced subset (a sorted split would give the first classes only). The order is the same for
    every candidate and every rank.
    """
    from ..data import build_loader

    bs = cfg.search.batch_size
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # DALI decodes on this rank's GPU
    train = build_loader(cfg.data, "train", batch_size=bs, augment="val", rank=0, world_size=1,
                         local_rank=local_rank, seed=cfg.seed + cfg.search.seed, drop_last=True, shuffle=True)
    val = build_loader(cfg.data, "val", batch_size=bs, augment="val", rank=0, world_size=1,
                       local_rank=local_rank, seed=cfg.seed, drop_last=False, shuffle=True)
    return train, val


def build_evaluator(supernet: Any, cfg: Any, *, device: Any = "cpu") -> Tuple[Any, Any]:
    """The configured estimator (``search.estimator``) over ``scoring_loaders``; returns (evaluator, val).

    ``top1`` (default): the paper's Evaluator (BN recalibration + held-out top-1). ``local_acc`` /
    ``local_loss``: :class:`LocalDecoderEvaluator` on the same held-out batches (``search.val_batches``).
    """
    from .evaluator import Evaluator

    train, val = scoring_loaders(cfg)
    s = cfg.search
    if s.estimator != "top1":
        from .local import LocalDecoderEvaluator

        return LocalDecoderEvaluator(supernet, val, kind=s.estimator, val_batches=s.val_batches,
                                     seed=cfg.seed + s.seed, device=device), val
    ev = Evaluator(supernet, train, val, recal_batches=s.recal_batches, device=device, val_batches=s.val_batches,
                   knn_k=s.knn_k, knn_temperature=s.knn_temperature, knn_bank_batches=s.knn_bank_batches,
                   objective=None if s.objective == "auto" else s.objective)
    return ev, val
