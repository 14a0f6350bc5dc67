"""`rank:` section of the experiment config: which archs to rank, against what, and the shift measurement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ..schema import ConfigError, spec


@dataclass(frozen=True)
class RankConfig:
    """Settings of the rank phase (ranking correlation and representation shift).

    Archs are scored exactly as the search scores them: the ``search`` section's recal_batches,
    val_batches and batch_size apply (one source of truth for the evaluator).
    """

    seed: int = spec(0, ge=0, help="seed of the arch sample and of the bootstrap")
    num_archs: int = spec(50, ge=2, help="archs to sample and score (ignored when archs/archs_file is given)")
    archs: list[str] = spec(list(), help="explicit archs to rank (key or named form); overrides sampling")
    archs_file: Optional[str] = spec(None, help="text file with one arch per line (# comments); overrides "
                                                "sampling")
    stratify: Literal["none", "flops"] = spec("none", help="flops: equal-count FLOPs bins, the same number "
                                                           "of archs drawn from each")
    strata: int = spec(10, ge=1, help="number of FLOPs bins when stratify is flops")
    truth: Optional[str] = spec(None, help="ground truth: 'nasbench_macro' (default for that space) or a "
                                           "CSV/JSON file of arch -> accuracy")
    nasbench_path: Optional[str] = spec(None, help="NAS-Bench-Macro JSON (relative to the cwd or the repository "
                                                   "root); default $LWSL_DATA_DIR/nas-bench-macro/"
                                                   "nas-bench-macro_cifar10.json (LWSL_DATA_DIR defaults to data)")
    nasbench_keys: Literal["canonical", "all"] = spec(
        "canonical", help="canonical: sample from the 3969 distinct trained networks; all: from the 6561 "
                          "keys (2592 of them copy a canonical record)")
    nasbench_metric: Literal["mean_acc", "run1", "run2", "run3"] = spec(
        "mean_acc", help="ground-truth accuracy: mean of the 3 runs or one run")
    bands: int = spec(5, ge=1, help="FLOPs bands of the within-budget ranking (flops_band_tau in ranking.json): "
                                    "equal-count bands of the ranked archs, tau averaged over bands")
    top_k: list[int] = spec([5, 10], help="report top-k precision for each k")
    bootstrap: int = spec(1000, ge=0, help="bootstrap resamples for the intervals (0 = none)")
    confidence: float = spec(0.95, gt=0.0, lt=1.0, help="interval level")
    shift: bool = spec(True, help="also measure representation shift")
    shift_layer: int = spec(0, ge=0, help="layer whose choices are compared (0 = first searchable layer)")
    shift_images: int = spec(1000, ge=1, help="validation images averaged over (the paper uses 1000)")
    shift_bn: Literal["eval", "batch"] = spec("eval", help="BN statistics for the shift: running (eval) or "
                                                           "per-batch")

    def validate(self) -> None:
        """Cross-field checks: k values fit the number of archs; strata fit the sample."""
        n = len(self.archs) if self.archs else self.num_archs
        for k in self.top_k:
            if k < 1:
                raise ConfigError(f"rank.top_k: {k} must be >= 1")
            if not self.archs_file and k > n:
                raise ConfigError(f"rank.top_k: {k} is larger than the number of archs ranked ({n})")
        if self.archs and self.archs_file:
            raise ConfigError("rank.archs and rank.archs_file: give one of them, not both")
        if self.stratify == "flops" and self.strata > n:
            raise ConfigError(f"rank.strata: {self.strata} FLOPs bins for {n} archs; use at most {n}")
