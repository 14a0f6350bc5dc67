"""How a candidate is scored, shared by the search and the ranking: the loaders and the configured evaluator."""

from __future__ import annotations

import os
from typing import Any, Tuple

__all__ = ["scoring_loaders", "build_evaluator", "scoring_split", "scoring_split_text", "TableScores"]


class TableScores:
    """Scores read from a score table (every arch scored once by ``estimator``); same API as the Evaluator.

    The table's top1 scores equal the Evaluator's at the table's settings (tests/ranking/test_rank_table.py),
    so a search over it follows the same trajectory as one that re-scores, at the cost of a lookup.
    """

    def __init__(self, path: str, estimator: str) -> None:
        import json
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            from ..config.schema import ConfigError

            raise ConfigError(f"search.score_table: {path} not found")
        doc = json.loads(p.read_text())
        made_by = doc.get("meta", {}).get("estimator", estimator)
        if made_by != estimator:
            from ..config.schema import ConfigError

            raise ConfigError(f"search.score_table: {path} holds {made_by} scores, search.estimator is {estimator}")
        self.scores, self.path, self.objective = doc["scores"], str(p), "ce"
        self.cache = self.scores
        # A table of NAS-Bench-Macro's canonical archs scores every other key as its canonical form (the same
        # network: an identity inside a stage is a no-op), as the benchmark's ground truth does.
        self.canonical = doc.get("meta", {}).get("keys") == "nasbench_macro_canonical"

    def score(self, arch: Any) -> float:
        """The table's score of ``arch`` (an Arch or key); KeyError naming the table when it is missing."""
        key = str(getattr(arch, "key", arch))
        if self.canonical:
            from ..space.canonical import canonical_key

            key = canonical_key(key)
        if key not in self.scores:
            raise KeyError(f"arch {key} is not in score table {self.path}")
        return float(self.scores[key])


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
    """The configured estimator (``search.estimator``) over ``scoring_loaders``; returns (evaluator, val).

    ``top1`` (default): the paper's Evaluator (BN recalibration + held-out top-1). ``local_acc`` /
    ``local_loss``: :class:`LocalDecoderEvaluator` on the same held-out batches (``search.val_batches``).
    """
    from .evaluator import Evaluator

    s = cfg.search
    if s.score_table:
        return TableScores(s.score_table, s.estimator), None
    train, val = scoring_loaders(cfg)
    if s.estimator != "top1":
        from .local import LocalDecoderEvaluator

        return LocalDecoderEvaluator(supernet, val, kind=s.estimator, val_batches=s.val_batches,
                                     seed=cfg.seed + s.seed, device=device), val
    ev = Evaluator(supernet, train, val, recal_batches=s.recal_batches, device=device, val_batches=s.val_batches,
                   knn_k=s.knn_k, knn_temperature=s.knn_temperature, knn_bank_batches=s.knn_bank_batches,
                   objective=None if s.objective == "auto" else s.objective, channels_last=s.channels_last)
    return ev, val
