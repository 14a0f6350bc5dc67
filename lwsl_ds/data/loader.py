"""One loader interface for every phase: ``build_loader`` and the :class:`Loader` it returns."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, Iterator, Optional

import numpy as np

from ..config.sections.data import DataConfig
from .augment import make_spec
from .plan import num_batches, num_padded, rank_batches
from .sources import DataError, SampleIndex, build_index

__all__ = ["build_loader", "Loader", "resolve_backend", "describe_pipeline"]

log = logging.getLogger("lwsl_ds.data")
BACKENDS = ("auto", "dali", "torchvision")


def dali_available() -> bool:
    """Whether NVIDIA DALI can be imported here (checked without importing it)."""
    return importlib.util.find_spec("nvidia") is not None and importlib.util.find_spec("nvidia.dali") is not None


def cuda_available() -> bool:
    """Whether a CUDA device is usable (DALI 'mixed' decoding needs one)."""
    import torch

    return torch.cuda.is_available()


def resolve_backend(backend: str, device: Optional[str] = None) -> tuple[str, str]:
    """Map ('auto' | 'dali' | 'torchvision', device) to a concrete (backend, device) pair."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if device not in (None, "cpu", "gpu"):
        raise ValueError(f"device must be None, 'cpu' or 'gpu', got {device!r}")
    if backend == "auto":
        if not dali_available():
            log.info("data backend auto: DALI is not importable, using torchvision")
            return "torchvision", "cpu"
        backend = "dali"
    if backend == "torchvision":
        if device == "gpu":
            raise ValueError("device 'gpu' needs the DALI backend (torchvision decodes on the CPU)")
        return "torchvision", "cpu"
    if not dali_available():
        raise DataError("backend 'dali' was requested but nvidia.dali is not importable "
                        "(pip install nvidia-dali-cuda130==2.4.0, or use backend: torchvision)")
    if device is None:
        device = "gpu" if cuda_available() else "cpu"
    elif device == "gpu" and not cuda_available():
        raise DataError("device 'gpu' (DALI mixed decoding) was requested but CUDA is not available")
    return "dali", device


class Loader:
    """Batches of one split on one rank: ``for images, labels in loader``; resumable by position."""

    def __init__(self, index: SampleIndex, backend: Any, *, batch_size: int, views: int, rank: int,
                 world_size: int, seed: int, drop_last: bool, shuffle: bool, device: str):
        self.index, self.backend, self.batch_size, self.views = index, backend, batch_size, views
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.drop_last, self.shuffle, self.device = drop_last, shuffle, device
        self.epoch, self.position = 0, 0
        self.skipped = 0  # corrupt images skipped so far (skip_corrupt), over all epochs
        self.skipped_files: list[str] = []
        if len(self) == 0:
            raise DataError(f"{len(index)} samples give no batch of {batch_size} x {world_size} ranks "
                            "with drop_last=True")

    @property
    def backend_name(self) -> str:
        """'dali' or 'torchvision' (after resolving 'auto')."""
        return self.backend.name

    @property
    def num_classes(self) -> int:
        """Classes of the source (the label range), not only those present in this split."""
        return len(self.index.class_names)

    @property
    def num_samples(self) -> int:
        """Samples of the split over all ranks."""
        return len(self.index)

    @property
    def class_names(self) -> list[str]:
        """Class name of each label."""
        return list(self.index.class_names)

    @property
    def num_padded(self) -> int:
        """Samples repeated per epoch so that no rank gets an empty last batch (see plan.py)."""
        return num_padded(len(self.index), self.batch_size, self.world_size, self.drop_last)

    def __len__(self) -> int:
        return num_batches(len(self.index), self.batch_size, self.world_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shuffle from (seed, epoch)); a new epoch starts at position 0."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def state_dict(self) -> dict:
        """{'epoch': e, 'position': batches consumed in the epoch}."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration yields batch ``position`` of epoch ``epoch`` onwards."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(f"loader state {state!r} is out of range (epoch >= 0, 0 <= position <= {len(self)})")
        self.epoch, self.position = epoch, position
        if position and self.backend_name == "dali":
            log.info("DALI resume at batch %d: same samples, but random augmentations differ from an "
                     "uninterrupted run (torchvision is bit-identical)", position)

    def __iter__(self) -> Iterator:
        """Yield (images, labels) from the current position; a finished epoch restarts from its start."""
        batches = rank_batches(len(self.index), batch_size=self.batch_size, world_size=self.world_size,
                               rank=self.rank, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                               drop_last=self.drop_last)
        start = self.position if self.position < len(batches) else 0
        self.position = start
        for images, labels, skipped in self.backend.iterate(self.epoch, batches[start:], self.rank):
            if skipped:
                self.skipped += len(skipped)
                self.skipped_files.extend(skipped)
                log.warning("skipped %d corrupt image(s) (total %d): %s", len(skipped), self.skipped,
                            ", ".join(skipped[:3]))
            self.position += 1
            yield (images[0] if self.views == 1 else images), labels


def build_loader(cfg: DataConfig, split: str, *, batch_size: int, augment: str, views: int = 1,
                 rank: int = 0, world_size: int = 1, local_rank: int = 0, seed: int = 0,
                 drop_last: bool = False, shuffle: Optional[bool] = None, backend: Optional[str] = None,
                 device: Optional[str] = None) -> Loader:
    """Build the loader of ``split`` for this rank.

    Example::

        loader = build_loader(DataConfig(source="demo"), "train", batch_size=64, augment="train")
        for images, labels in loader:   # images: (64, 3, 64, 64) float32, labels: (64,) int64
            ...

    ``device`` (extension): None picks GPU decoding for DALI when CUDA is present; 'cpu' forces the
    CPU-only DALI pipeline.
    """
    if batch_size < 1 or views < 1 or world_size < 1:
        raise ValueError(f"batch_size, views and world_size must be >= 1, got {batch_size}, {views}, {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is out of range for world_size {world_size}")
    spec = make_spec(cfg, augment)
    name, dev = resolve_backend(backend or cfg.backend, device)
    index = build_index(cfg, split)
    data_seed = int(np.random.SeedSequence([seed, cfg.seed]).generate_state(1)[0])
    if name == "dali":
        from .dali_backend import DaliBackend

        impl: Any = DaliBackend(index, spec, views=views, seed=data_seed, skip_corrupt=cfg.skip_corrupt,
                                num_threads=cfg.num_threads, batch_size=batch_size, device=dev,
                                device_id=local_rank)
    else:
        from .tv_backend import TorchvisionBackend

        impl = TorchvisionBackend(index, spec, views=views, seed=data_seed, skip_corrupt=cfg.skip_corrupt,
                                  num_workers=cfg.num_workers)
    return Loader(index, impl, batch_size=batch_size, views=views, rank=rank, world_size=world_size,
                  seed=data_seed, drop_last=drop_last,
                  shuffle=split in ("train", "fit") if shuffle is None else shuffle,
                  device=dev)


def describe_pipeline(cfg: DataConfig, loader: Loader, split: str) -> str:
    """One start-up line: source, backend, images and classes of ``split``, the resolved recipe."""
    where = f" at {cfg.root}" if cfg.root else ""
    return (f"data: {cfg.source}{where}, backend {loader.backend_name}, {split} split {loader.num_samples} images in "
            f"{loader.num_classes} classes; {cfg.describe()}")
