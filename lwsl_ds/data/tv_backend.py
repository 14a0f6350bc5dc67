"""torchvision backend: PIL decoding + torchvision v2 transforms, one batch per DataLoader item.

Every sample is augmented under its own seed derived from (seed, epoch, sample index, view) inside
``torch.random.fork_rng``, so a batch is a pure function of (seed, epoch, position): bit-identical for
any ``num_workers`` and after resuming, and the caller's global RNG is left untouched.
"""

from __future__ import annotations

import io
from typing import Callable, Iterator

import numpy as np
import torch

from .augment import AugmentSpec
from .plan import sample_seed
from .sources import DataError, SampleIndex

__all__ = ["build_transform", "decode_pil", "TorchvisionBackend"]


def decode_pil(data: np.ndarray, name: str):
    """Decode encoded bytes to an RGB PIL image (EXIF orientation applied, like DALI's decoder)."""
    from PIL import Image, ImageOps

    try:
        img = Image.open(io.BytesIO(data.tobytes()))
        if img.getexif().get(0x0112, 1) != 1:  # orientation tag; 1 = as stored
            img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")  # grayscale / CMYK / palette -> 3 channels; forces a full decode
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError (truncated), SyntaxError, ...
        raise DataError(f"{name}: cannot decode image: {type(e).__name__}: {e}") from None
    return img


class ResizeCenterCrop:
    """Resize the short side to ``short``, center crop ``size``, with DALI's rounding.

    torchvision's Resize truncates the long side and CenterCrop rounds half to even; DALI rounds
    both half up. Matching DALI here keeps val images of the two backends within decoder tolerance
    instead of one pixel apart on about half of the ImageNet images.
    """

    def __init__(self, short: int, size: int):
        self.short, self.size = short, size

    def __call__(self, img):
        from torchvision.transforms.v2 import functional as F

        w, h = img.size
        scale = self.short / min(w, h)
        nh, nw = (self.short, int(w * scale + 0.5)) if h <= w else (int(h * scale + 0.5), self.short)
        img = F.resize(img, [nh, nw], antialias=True)
        top, left = int((nh - self.size) / 2 + 0.5), int((nw - self.size) / 2 + 0.5)
        return F.crop(img, top, left, self.size, self.size)


def build_transform(spec: AugmentSpec) -> Callable:
    """The torchvision v2 transform of one view, PIL image in, normalized float32 CHW tensor out."""
    from torchvision.transforms import v2

    r = spec.resolution
    steps: list = []
    if spec.mode in ("train", "autoaugment"):
        if spec.crop == "random_resized":
            steps.append(v2.RandomResizedCrop(r, scale=(spec.min_scale, 1.0), antialias=True))
        else:
            if spec.needs_resize:
                steps += [v2.Resize(r, antialias=True), v2.CenterCrop(r)]
            steps.append(v2.RandomCrop(r, padding=spec.pad, fill=0))
        steps.append(v2.RandomHorizontalFlip())
        if spec.mode == "autoaugment":
            policy = (v2.AutoAugmentPolicy.CIFAR10 if spec.aa_policy == "cifar10"
                      else v2.AutoAugmentPolicy.IMAGENET)
            steps.append(v2.AutoAugment(policy))
        if spec.jitter > 0:
            s = spec.jitter
            steps.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=s / 4))
        if spec.grayscale_prob > 0:
            steps.append(v2.RandomGrayscale(spec.grayscale_prob))
    elif spec.needs_resize:
        steps.append(ResizeCenterCrop(spec.resize_short, r))
    steps += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(list(spec.mean), list(spec.std))]
    return v2.Compose(steps)


class _BatchDataset(torch.utils.data.Dataset):
    """Item = (epoch, sample indexes of one batch) -> (views, labels, skipped names)."""

    def __init__(self, index: SampleIndex, spec: AugmentSpec, views: int, seed: int, skip_corrupt: bool):
        self.index, self.spec, self.views, self.seed, self.skip = index, spec, views, seed, skip_corrupt
        self.transform = build_transform(spec)

    def __len__(self) -> int:  # unused: the sampler hands out explicit items
        return 0

    def __getitem__(self, item: tuple[int, np.ndarray]):
        epoch, idxs = item
        outs: list[list[torch.Tensor]] = [[] for _ in range(self.views)]
        kept, skipped = [], []
        for i in idxs.tolist():
            name = self.index.names[i]
            try:
                img = decode_pil(self.index.read(i), name)
            except DataError:
                if not self.skip:
                    raise
                skipped.append(name)
                continue
            for v in range(self.views):
                if self.spec.random:
                    with torch.random.fork_rng(devices=[]):  # per-sample seed; caller's RNG untouched
                        # CPU generator only: torch.manual_seed also queues a lazy CUDA seeding that
                        # records a stack trace (0.6 ms per call, more than decoding a CIFAR image).
                        torch.default_generator.manual_seed(sample_seed(self.seed, epoch, i, v))
                        outs[v].append(self.transform(img))
                else:
                    outs[v].append(self.transform(img))
            kept.append(i)
        if not kept:
            raise DataError(f"every image of a batch is corrupt, e.g. {skipped[0]}")
        images = [torch.stack(o) for o in outs]
        labels = torch.from_numpy(self.index.labels[np.asarray(kept, dtype=np.int64)])
        return images, labels, skipped


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers are processes; more threads each only oversubscribe the cores


class TorchvisionBackend:
    """Yields (list of view tensors, labels, skipped names) for a list of planned batches."""

    name = "torchvision"

    def __init__(self, index: SampleIndex, spec: AugmentSpec, *, views: int, seed: int,
                 skip_corrupt: bool, num_workers: int):
        self.dataset = _BatchDataset(index, spec, views, seed, skip_corrupt)
        self.num_workers = num_workers

    def iterate(self, epoch: int, batches: list[np.ndarray], rank: int) -> Iterator:
        """Produce the given batches of ``epoch`` in order."""
        if not batches:
            return iter(())
        items = [(epoch, b) for b in batches]
        if self.num_workers == 0:
            return (self.dataset[it] for it in items)
        workers = min(self.num_workers, len(items))
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=None, sampler=items,
                                             num_workers=workers, worker_init_fn=_worker_init,
                                             prefetch_factor=2, persistent_workers=False)
        return iter(loader)

