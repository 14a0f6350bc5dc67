"""Representation shift (paper Fig. 4): cosine similarity of the outputs of all choices of one layer.

Every choice of layer i gets the same input x_i; for each image the flattened outputs of choices a and b
give one cosine similarity; the matrix entry is its mean over N images. The off-diagonal mean summarises
how interchangeable the choices are (1 = identical features). For layer 0 x_i is the stem output; for a
deeper layer the path below it is ``prefix`` (default: a seeded uniform arch), stated in the result.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..space import Arch, sample_arch

__all__ = ["ShiftResult", "cosine_matrix_sum", "module_similarity", "representation_shift"]


@dataclass(frozen=True)
class ShiftResult:
    """Mean per-image cosine similarity between choices; ``names[j]`` labels row/column j."""

    layer: int
    names: list[str]
    matrix: list[list[float]]
    num_images: int
    prefix: Optional[str]
    bn: str

    @property
    def off_diagonal_mean(self) -> float:
        """Mean over the entries a != b (the paper's number in parentheses)."""
        m = len(self.matrix)
        if m < 2:
            return float("nan")
        total = sum(self.matrix[a][b] for a in range(m) for b in range(m) if a != b)
        return total / (m * (m - 1))

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"layer": self.layer, "names": self.names, "matrix": self.matrix, "num_images": self.num_images,
                "prefix": self.prefix, "bn": self.bn, "off_diagonal_mean": self.off_diagonal_mean}


def cosine_matrix_sum(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """(m, m) sum over the batch of per-image cosine similarities between the m flattened outputs."""
    flat = torch.stack([F.normalize(o.flatten(1).double(), dim=1) for o in outputs])  # (m, B, D)
    return torch.einsum("abd,cbd->ac", flat, flat)


def _images(batch: object) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"expected batches of images or (images, labels), got {type(batch).__name__}")


@torch.no_grad()
def module_similarity(modules: Sequence[nn.Module], batches: Iterable[object], num_images: int,
                      inputs_of=None) -> tuple[torch.Tensor, int]:
    """Mean per-image cosine-similarity matrix of ``modules`` applied to the same inputs; (matrix, images used).

    ``inputs_of(images)`` maps a batch of images to the modules' input (default: the images themselves).
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    total: Optional[torch.Tensor] = None
    seen = 0
    for batch in batches:
        x = _images(batch)[: num_images - seen]
        if inputs_of is not None:
            x = inputs_of(x)
        s = cosine_matrix_sum([mod(x) for mod in modules])
        total = s if total is None else total + s
        seen += x.shape[0]
        if seen >= num_images:
            break
    if total is None or seen == 0:
        raise ValueError("representation shift: the loader yielded no images")
    return total / seen, seen


def representation_shift(supernet: nn.Module, batches: Iterable[object], *, layer: int = 0, num_images: int = 1000,
                         prefix: Optional[Arch] = None, seed: int = 0, bn: str = "eval",
                         device: torch.device | str = "cpu") -> ShiftResult:
    """Cosine-similarity matrix of all choices of ``layer`` on the same inputs, averaged over ``num_images``.

    ``bn='eval'`` uses the BN running statistics (as the search evaluator does after recalibration);
    ``bn='batch'`` normalises with the statistics of each batch, on copies, so the super-net is unchanged.
    """
    space = supernet.space
    if not 0 <= layer < space.num_layers:
        raise ValueError(f"representation shift: layer {layer} is out of range 0..{space.num_layers - 1}")
    if bn not in ("eval", "batch"):
        raise ValueError(f"representation shift: bn {bn!r} must be 'eval' or 'batch'")
    if layer > 0 and prefix is None:
        prefix = sample_arch(space, random.Random(seed))
    choices = list(space.layers[layer].choices)
    names = [space.choices[k].name for k in choices]
    below = [supernet.stem] + ([supernet.choice(i, prefix[i]) for i in range(layer)] if prefix is not None else [])
    mods = [supernet.choice(layer, k) for k in choices]
    if bn == "batch":
        import copy

        below, mods = copy.deepcopy(below), copy.deepcopy(mods)
    was_training = supernet.training
    for m in [*below, *mods]:
        m.train(bn == "batch")
    dev = torch.device(device)

    def inputs_of(x: torch.Tensor) -> torch.Tensor:
        x = x.to(dev, non_blocking=True).float()
        for m in below:
            x = m(x)
        return x

    try:
        matrix, seen = module_similarity(mods, batches, num_images, inputs_of)
    finally:
        supernet.train(was_training)
    return ShiftResult(layer, names, matrix.tolist(), seen, prefix.key if prefix is not None and layer > 0 else None,
                       bn)
