"""What an augmentation means, independent of the backend that implements it.

Both backends build their transforms from one :class:`AugmentSpec`, so "train", "val",
"autoaugment" and "none" mean the same thing everywhere:

* ``train``: random resized crop (area in [min_scale, 1], aspect in [3/4, 4/3]) or, for CIFAR,
  zero-pad ``pad`` px and random crop; horizontal flip (p=0.5); colour jitter of strength s
  (brightness, contrast, saturation factors in [1-s, 1+s], hue shift in +-s/4 of the circle);
  optional random grayscale; normalization.
* ``autoaugment``: the train crop and flip, then AutoAugment (ImageNet policy; the reduced CIFAR-10
  policy with pad_crop), no colour jitter (as in the AutoAugment recipe); normalization.
* ``val``: resize the short side to ``resolution / crop_ratio``, center crop ``resolution``; normalization.
* ``none``: resize the short side to ``resolution``, center crop; normalization (no randomness).

The random draws themselves differ between backends (DALI has its own generators); only the
distributions agree. Deterministic transforms (val, none) agree up to decoder/resampler rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config.sections.data import DataConfig

__all__ = ["AugmentSpec", "AUGMENTS", "make_spec"]

AUGMENTS = ("train", "val", "autoaugment", "none")
NATIVE_RESOLUTION = {"cifar10": 32}  # sources whose images all have one known size


@dataclass(frozen=True)
class AugmentSpec:
    """Backend-independent description of one view's transform."""

    mode: str  # one of AUGMENTS
    crop: str  # random_resized | pad_crop
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    min_scale: float
    crop_ratio: float
    jitter: float
    grayscale_prob: float
    pad: int
    native: Optional[int]  # known input size (skip the resize when equal to resolution)

    @property
    def random(self) -> bool:
        """Whether the transform draws random numbers."""
        return self.mode in ("train", "autoaugment")

    @property
    def aa_policy(self) -> str:
        """AutoAugment policy: imagenet, or cifar10 for CIFAR-style pad-and-crop training."""
        return "cifar10" if self.crop == "pad_crop" else "imagenet"

    @property
    def resize_short(self) -> int:
        """Short side before the center crop of val / none."""
        ratio = self.crop_ratio if self.mode == "val" else 1.0
        return int(round(self.resolution / ratio))

    @property
    def needs_resize(self) -> bool:
        """False when the source's images already have the output size (CIFAR at 32 px)."""
        return self.native != self.resolution


def make_spec(cfg: DataConfig, augment: str) -> AugmentSpec:
    """Resolve the config's per-source defaults into an AugmentSpec for ``augment``."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {list(AUGMENTS)}, got {augment!r}")
    return AugmentSpec(mode=augment, crop=cfg.train_crop, resolution=cfg.out_resolution,
                       mean=cfg.norm_mean, std=cfg.norm_std, min_scale=cfg.min_scale,
                       crop_ratio=cfg.crop_ratio, jitter=cfg.train_jitter if augment == "train" else 0.0,
                       grayscale_prob=cfg.grayscale_prob if augment == "train" else 0.0, pad=cfg.pad,
                       native=NATIVE_RESOLUTION.get(cfg.source))
