"""`retrain:` section of the experiment config: train one arch from scratch (the recipe, not the systems).

The batch size, ZeRO stage, precision and gradient clipping live in the ds_config (``--ds_config``);
everything that changes the result of training (optimizer, learning rate and its schedule, regularization,
EMA, length) lives here, so a run is described by exactly one value of each.

Learning-rate rule (linear scaling): ``lr = lr_per_reference * global_batch / lr_reference_batch`` with
``global_batch = train_micro_batch_size_per_gpu x gradient_accumulation_steps x world_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ..schema import ConfigError, spec


@dataclass(frozen=True)
class RetrainConfig:
    """Settings of the retrain phase."""

    seed: int = spec(0, ge=0, help="seed of this phase's random choices (initialisation, dropout)")
    arch: Optional[str] = spec(None, help="arch YAML written by search (best_arch.yaml); --arch wins")
    epochs: float = spec(500.0, gt=0, help="length of training in epochs (paper: 500 on ImageNet)")
    max_steps: Optional[int] = spec(None, ge=1, help="stop after this many optimizer steps (the LR schedule "
                                                     "still spans `epochs`); for smoke tests")
    optimizer: Literal["rmsprop", "sgd", "adamw"] = spec("rmsprop", help="paper: RMSProp")
    lr_per_reference: float = spec(0.045, gt=0, help="learning rate at a global batch of lr_reference_batch "
                                                     "(paper: 0.045)")
    lr_reference_batch: int = spec(256, ge=1, help="global batch at which lr_per_reference applies; the lr "
                                                   "scales linearly with the real global batch")
    momentum: float = spec(0.9, ge=0, lt=1, help="momentum of rmsprop/sgd (paper: 0.9)")
    rmsprop_decay: float = spec(0.9, gt=0, lt=1, help="RMSProp squared-gradient decay, torch's alpha (paper: 0.9)")
    rmsprop_eps: float = spec(1e-3, gt=0, help="RMSProp epsilon (EfficientNet's 1e-3; torch's 1e-8 is unstable "
                                               "with decay 0.9)")
    weight_decay: float = spec(4e-5, ge=0, help="L2 on conv/linear weights; BN and biases get none (paper: 4e-5)")
    warmup_epochs: float = spec(4.0, ge=0, help="linear warmup from ~0 to the lr (paper: 4)")
    min_lr_ratio: float = spec(0.0, ge=0, le=1, help="cosine annealing ends at lr x min_lr_ratio")
    label_smoothing: float = spec(0.1, ge=0, lt=1, help="cross-entropy label smoothing")
    dropout: float = spec(0.2, ge=0, lt=1, help="dropout before the classifier FC (paper: 0.2)")
    augment: Literal["autoaugment", "train"] = spec("autoaugment", help="train augmentation (paper: AutoAugment)")
    ema_decay: Optional[float] = spec(0.9999, gt=0, lt=1, help="EMA of weights and BN statistics, updated every "
                                                              "step; null disables")
    eval_with_ema: bool = spec(True, help="evaluate (and export) the EMA weights instead of the raw ones")
    eval_every_epochs: float = spec(1.0, gt=0, help="validation interval in epochs")
    eval_batches: Optional[int] = spec(None, ge=1, help="evaluate on at most this many batches per rank")
    checkpoint_every_steps: int = spec(1000, ge=1, help="write a checkpoint every N optimizer steps (and at the end)")
    keep_checkpoints: int = spec(2, ge=1, help="complete checkpoints kept in <run dir>/checkpoints")
    extend: Literal["refuse", "replan"] = spec(
        "refuse", help="--resume with more epochs than the checkpoint's run planned: refuse, or replan the "
                       "cosine over the new length from the current step (logged)")
    log_every_steps: int = spec(50, ge=1, help="training log interval in steps")
    dist_timeout_s: float = spec(600.0, gt=0, help="a collective that waits longer fails the job "
                                                   "(dead-rank bound); above the slowest checkpoint write")
    channels_last: bool = spec(False, help="feed image batches (training and evaluation) in channels_last (NHWC) "
                                           "memory format; weights stay contiguous. Faster convolutions on CPU "
                                           "(see train.channels_last); float rounding differs from the default")
    export: bool = spec(True, help="export the final sub-net (weights, arch.yaml, torch.export program)")

    def validate(self) -> None:
        """Cross-field checks: warmup inside the run; EMA evaluation needs an EMA."""
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(f"retrain.warmup_epochs={self.warmup_epochs} must be < retrain.epochs={self.epochs}")
        if self.eval_with_ema and self.ema_decay is None:
            raise ConfigError("retrain.eval_with_ema: true needs retrain.ema_decay (it is null)")
