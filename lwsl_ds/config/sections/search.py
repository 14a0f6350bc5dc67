"""`search:` section of the experiment config: evolutionary search under MACs/params limits.

The limits count multiply-accumulates (fvcore's "FLOPs" are MACs): ``max_macs`` / ``min_macs``. Their old
names ``max_flops`` / ``min_flops`` still load (:attr:`SearchConfig.ALIASES`); giving an old and a new name
with different values is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

from ..schema import ConfigError, spec


@dataclass(frozen=True)
class SearchConfig:
    """Settings of the search phase (defaults follow single-path one-shot NAS: 20 x 50 candidates)."""

    ALIASES: ClassVar[dict[str, str]] = {"max_flops": "max_macs", "min_flops": "min_macs"}  # old key -> key

    seed: int = spec(0, ge=0, help="seed of the search's random choices (initial population, mutation, crossover)")
    algorithm: Literal["evolution", "random"] = spec("evolution", help="evolution, or random search with "
                                                                        "the same number of evaluations")
    population: int = spec(50, ge=2, help="candidates evaluated per generation")
    generations: int = spec(20, ge=1, help="number of generations (evaluations = population x generations)")
    parents: int = spec(10, ge=1, help="top-k archs (over all evaluated so far) that mutation/crossover draw from")
    mutations: int = spec(25, ge=0, help="mutated children per generation")
    crossovers: int = spec(25, ge=0, help="crossover children per generation")
    mutation_prob: float = spec(0.1, ge=0.0, le=1.0, help="per-layer probability of resampling a choice")
    max_tries: int = spec(10, ge=1, help="sampling attempts per wanted candidate before giving up "
                                         "(bounded retries; the shortfall is filled with random archs)")
    cost_metric: Literal["flops", "conv_linear"] = spec("flops", help="which MACs count the MACs limits use: "
                                                                      "fvcore (incl. BN, pooling) or conv+linear")
    max_macs: Optional[float] = spec(None, gt=0, help="upper limit on MACs (e.g. 330e6); null = none "
                                                      "(old name: max_flops)")
    min_macs: Optional[float] = spec(None, ge=0, help="lower limit on MACs; null = none (old name: min_flops)")
    max_params: Optional[float] = spec(None, gt=0, help="upper limit on parameters; null = none")
    estimator: Literal["top1", "local_acc", "local_loss"] = spec(
        "top1", help="how a candidate is scored: top1 = the paper's (inherited weights, BN recalibration, "
                     "held-out top-1); local_acc / local_loss = mean over layers of each chosen choice's local "
                     "decoder top-1 / minus its cross-entropy on held-out data (ce super-nets; one table, no "
                     "forward pass per arch)")
    score_table: Optional[str] = spec(None, help="score-table JSON (bench/ranking_nasbench_macro.py, "
                                                 "lwsl_ds.ranking.table) of this super-net and estimator: "
                                                 "candidates are looked up instead of re-scored; an arch "
                                                 "missing from it is an error")
    channels_last: bool = spec(False, help="score sub-nets in channels_last (NHWC) memory format: about 2x "
                                           "faster on CPU for depthwise convs, scores equal up to float rounding")
    recal_batches: int = spec(20, ge=0, help="training batches forwarded to recalibrate BN statistics "
                                             "(cumulative average) before scoring each candidate")
    val_batches: Optional[int] = spec(None, ge=1, help="score on at most this many held-out batches; null = all")
    batch_size: int = spec(128, ge=1, help="images per batch (per rank) for recalibration and scoring")
    knn_k: int = spec(20, ge=1, help="infonce super-nets: neighbours of the kNN classifier")
    knn_temperature: float = spec(0.07, gt=0.0, help="infonce: kNN vote weight exp(cosine / T)")
    knn_bank_batches: Optional[int] = spec(None, ge=1, help="infonce: training batches in the kNN feature "
                                                            "bank; null = the recalibration batches")
    objective: Literal["auto", "ce", "infonce"] = spec("auto", help="how the super-net was trained; auto = "
                                                                    "from the checkpoint / train config")
    cache_dir: Optional[str] = spec(None, help="cost-table cache folder; default <search output>/cache")
    out_dir: Optional[str] = spec(None, help="output folder; default search/ next to the super-net folder "
                                                     "(<run_root>/<name>/search)")

    def validate(self) -> None:
        """Cross-field checks: limits ordered, parents within the population, children fit a generation."""
        if self.estimator != "top1" and self.objective == "infonce":
            raise ConfigError(f"search.estimator: {self.estimator} needs a ce super-net (decoders with classes); "
                              "use top1 for infonce")
        if self.min_macs is not None and self.max_macs is not None and self.min_macs > self.max_macs:
            raise ConfigError(f"search.min_macs ({self.min_macs:g}) is above search.max_macs "
                              f"({self.max_macs:g})")
        if self.parents > self.population:
            raise ConfigError(f"search.parents ({self.parents}) must be <= search.population ({self.population})")
        if self.mutations + self.crossovers > self.population:
            raise ConfigError(f"search.mutations + search.crossovers ({self.mutations} + {self.crossovers}) "
                              f"must be <= search.population ({self.population})")

    @property
    def max_flops(self) -> Optional[float]:
        """The old name of :attr:`max_macs` (read-only; configs may still say ``max_flops``)."""
        return self.max_macs

    @property
    def min_flops(self) -> Optional[float]:
        """The old name of :attr:`min_macs` (read-only)."""
        return self.min_macs
