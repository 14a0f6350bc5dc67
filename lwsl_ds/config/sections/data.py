"""`data:` section of the experiment config: where the images come from and how they are augmented."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Optional

from ..schema import ConfigError, spec

Source = Literal["folder", "filelist", "cifar10", "demo"]
Backend = Literal["auto", "dali", "torchvision"]
Crop = Literal["auto", "random_resized", "pad_crop"]

# Per-source defaults; a value given in the config always wins.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
SMALL_RESOLUTION = 48  # at or below: the CIFAR-style recipe (pad-crop, no jitter, no val resize) by default
DATA_DIR_ENV = "LWSL_DATA_DIR"  # folder of the named data sets (cifar10-jpeg/, nas-bench-macro/); default ./data


def data_dir() -> str:
    """Folder the named data sets are read from: ``$LWSL_DATA_DIR``, else ``data`` (cwd, then repository root)."""
    return os.environ.get(DATA_DIR_ENV) or "data"


def default_root(source: str) -> str:
    """The data root a source reads when ``data.root`` is not set."""
    return {"cifar10": f"{data_dir()}/cifar10-jpeg", "demo": ".cache/demo-data"}[source]


@dataclass(frozen=True)
class DataConfig:
    """Settings of the data phase (shared by super-net training, search, retraining)."""

    source: Source = spec("demo", help="folder: root/{train,val}/<class>/*; filelist: train_list/val_list "
                                       "of 'relative/path label' lines under root; cifar10: the packed "
                                       "JPEG npz; demo: synthetic data generated into root if missing")
    root: Optional[str] = spec(None, help="data folder; default: $LWSL_DATA_DIR/cifar10-jpeg (cifar10; "
                                          "LWSL_DATA_DIR defaults to data), "
                                          ".cache/demo-data (demo); relative paths are tried against the cwd, "
                                          "then against the repository root")
    train_list: Optional[str] = spec(None, help="filelist source: train list file (relative to root)")
    val_list: Optional[str] = spec(None, help="filelist source: val list file (relative to root)")
    classes_file: Optional[str] = spec(None, help="filelist source: class names, one per line, line i = "
                                                  "label i (relative to root); default: labels as names")
    resolution: Optional[int] = spec(None, ge=8, le=1024, help="output side in pixels; default 224, 32 "
                                                              "for cifar10, 64 for demo")
    backend: Backend = spec("auto", help="auto: DALI when importable (GPU decoding with CUDA, CPU "
                                         "otherwise), else torchvision")
    num_workers: int = spec(2, ge=0, help="torchvision: DataLoader worker processes (0 = main process)")
    num_threads: int = spec(2, ge=1, help="DALI: CPU threads of the pipeline")
    skip_corrupt: bool = spec(False, help="skip (and count) unreadable images instead of failing")
    max_per_class: Optional[int] = spec(None, ge=1, help="take only the first N train images per class")
    val_max_per_class: Optional[int] = spec(None, ge=1, help="take only the first N val (and held-out) "
                                                                   "images per class")
    mean: Optional[list[float]] = spec(None, help="normalization mean (RGB, 0-1); default per source")
    std: Optional[list[float]] = spec(None, help="normalization std (RGB, 0-1); default per source")
    crop: Crop = spec("auto", help="train crop: random_resized (ImageNet) or pad_crop (CIFAR: pad 4, "
                                   "random crop, flip); auto: pad_crop for cifar10 and for small images "
                                   f"(resolution <= {SMALL_RESOLUTION}), random_resized otherwise")
    min_scale: float = spec(0.08, gt=0.0, le=1.0, help="random_resized: smallest crop area fraction")
    val_crop_ratio: Optional[float] = spec(None, gt=0.0, le=1.0, help="val: resize the short side to "
                                           "resolution / ratio, then center crop; default 0.875, "
                                           "1.0 with pad_crop")
    jitter: Optional[float] = spec(None, ge=0.0, le=1.0, help="colour jitter strength s: brightness, contrast, "
                                   "saturation factors in [1-s, 1+s], hue in +-s/4; default 0.4 with "
                                   "random_resized (ImageNet recipe), 0 with pad_crop (CIFAR recipe)")
    grayscale_prob: float = spec(0.0, ge=0.0, le=1.0, help="probability of a random grayscale view "
                                                           "(SimCLR uses 0.2)")
    holdout: float = spec(0.1, ge=0.0, help="held-out part of the train split that super-net training never "
                                             "sees and the search scores on: a fraction (< 1) or a count (>= 1) "
                                             "of each class's images, the last ones in index order "
                                             "(deterministic); 0: the search scores on the val split")
    seed: int = spec(0, ge=0, help="mixed into build_loader's seed (data order and augmentation)")
    pad: int = spec(4, ge=0, help="pad_crop: zero padding on each side before the random crop")

    def validate(self) -> None:
        """Cross-field checks: filelist needs its lists and root; mean/std need 3 channels."""
        if self.source == "filelist":
            if self.root is None:
                raise ConfigError("data.root: required for source 'filelist'")
            if self.train_list is None and self.val_list is None:
                raise ConfigError("data.train_list / data.val_list: source 'filelist' needs at least one")
        if self.source == "folder" and self.root is None:
            raise ConfigError("data.root: required for source 'folder'")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ConfigError(f"data.{name}: expected 3 values (R, G, B), got {value!r}")
        if self.holdout >= 1 and not float(self.holdout).is_integer():
            raise ConfigError(f"data.holdout: {self.holdout!r} is neither a fraction (< 1) nor a whole count of "
                              "images per class")
        if self.std is not None and any(v <= 0 for v in self.std):
            raise ConfigError(f"data.std: every value must be > 0, got {self.std!r}")

    def holdout_count(self, class_size: int) -> int:
        """Images of a class of ``class_size`` that are held out (at least one stays for training)."""
        if self.holdout <= 0 or class_size < 2:
            return 0
        k = int(self.holdout) if self.holdout >= 1 else -(-class_size * self.holdout // 1)
        return int(min(max(k, 1), class_size - 1))

    @property
    def holdout_text(self) -> str:
        """How the held-out split is made, for logs and reports."""
        if self.holdout <= 0:
            return "no held-out split (data.holdout: 0)"
        size = f"{self.holdout:.0%}" if self.holdout < 1 else f"{int(self.holdout)} images"
        return f"held-out split: the last {size} of each train class, never trained on by the super-net"

    # Resolved views of the optional fields: the single place where per-source defaults live.
    @property
    def small(self) -> bool:
        """Small images (<= SMALL_RESOLUTION px, or CIFAR-10): the CIFAR-style recipe is the default."""
        return self.source == "cifar10" or self.out_resolution <= SMALL_RESOLUTION

    @property
    def train_crop(self) -> str:
        """The train crop after resolving 'auto' (by source and resolution)."""
        if self.crop != "auto":
            return self.crop
        return "pad_crop" if self.small else "random_resized"

    @property
    def train_jitter(self) -> float:
        """Colour jitter strength after resolving the default (none in the CIFAR recipe)."""
        if self.jitter is not None:
            return self.jitter
        return 0.0 if self.train_crop == "pad_crop" else 0.4

    def describe(self) -> str:
        """The resolved augmentation recipe in one line (printed at start-up)."""
        crop = (f"pad {self.pad} + random crop + flip" if self.train_crop == "pad_crop"
                else f"random-resized crop (area >= {self.min_scale:g}) + flip")
        return (f"{self.out_resolution} px, train: {crop}, colour jitter {self.train_jitter:g}, random grayscale "
                f"{self.grayscale_prob:g}; val: resize short side to {round(self.out_resolution / self.crop_ratio)}, "
                f"center crop {self.out_resolution}; RGB (grayscale -> 3 channels), mean "
                f"{[round(v, 4) for v in self.norm_mean]}, std {[round(v, 4) for v in self.norm_std]}; "
                f"{self.holdout_text}")

    @property
    def out_resolution(self) -> int:
        """The output side after resolving the per-source default."""
        if self.resolution is not None:
            return self.resolution
        return {"cifar10": 32, "demo": 64}.get(self.source, 224)

    @property
    def norm_mean(self) -> tuple[float, float, float]:
        """Normalization mean after resolving the per-source default."""
        if self.mean is not None:
            return tuple(self.mean)  # type: ignore[return-value]
        return CIFAR10_MEAN if self.source == "cifar10" else IMAGENET_MEAN

    @property
    def norm_std(self) -> tuple[float, float, float]:
        """Normalization std after resolving the per-source default."""
        if self.std is not None:
            return tuple(self.std)  # type: ignore[return-value]
        return CIFAR10_STD if self.source == "cifar10" else IMAGENET_STD

    @property
    def crop_ratio(self) -> float:
        """Val crop ratio after resolving the default."""
        if self.val_crop_ratio is not None:
            return self.val_crop_ratio
        return 1.0 if self.train_crop == "pad_crop" else 0.875
