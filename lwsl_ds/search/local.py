"""Local-decoder estimators: score an arch from what layer-wise training leaves behind, without a forward pass per arch.

Layer-wise training gives every layer a decoder (GAP + FC; the last layer's is the final head). On held-out
batches, one pass per layer over all of its choices fills a (layer, choice) table with each choice's decoder
top-1 (``local_acc``) or cross-entropy (``local_loss``). The input of layer i is the output of a random path
through layers 0..i-1 (one path per batch, seeded), as in non-greedy training, with the BN statistics the
super-net was trained with. An arch's score is the mean over layers of its choices' entries (the negative
mean loss for ``local_loss``), so search and a whole score table cost one table (about three forward passes
of the held-out set) plus a lookup per arch.

Only ``ce`` super-nets: InfoNCE decoders project into an embedding and have no classes to be right about.
For SPOS super-nets the decoders of layers 0..n-2 are never trained; the estimator is then noise in those
terms (measured in docs/benchmarks.md, not assumed).
"""

from __future__ import annotations

import itertools
import random
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..space.arch import Arch, parse_arch
from .evaluator import split_batch

__all__ = ["LocalDecoderEvaluator", "LOCAL_ESTIMATORS"]

LOCAL_ESTIMATORS = ("local_acc", "local_loss")


class LocalDecoderEvaluator:
    """Scores archs by their choices' local decoder accuracy (or loss) on held-out data; same API as Evaluator."""

    def __init__(self, supernet: nn.Module, val_loader: Iterable, *, kind: str = "local_acc",
                 val_batches: Optional[int] = None, seed: int = 0, device: torch.device | str = "cpu") -> None:
        if kind not in LOCAL_ESTIMATORS:
            raise ValueError(f"LocalDecoderEvaluator: estimator {kind!r} is not one of {LOCAL_ESTIMATORS}")
        name = getattr(getattr(supernet, "objective", None), "name", "ce")
        if name != "ce":
            raise ValueError(f"estimator {kind}: needs a ce super-net (decoders with classes), this one is {name!r}")
        self.supernet, self.space, self.kind = supernet, supernet.space, kind
        self.objective = "ce"
        self.val_loader, self.val_batches, self.seed = val_loader, val_batches, seed
        self.device = torch.device(device)
        self.cache: dict[str, float] = {}
        self._table: Optional[list[dict[int, float]]] = None

    def table(self) -> list[dict[int, float]]:
        """Per layer, choice index -> held-out decoder top-1 (local_acc) or mean cross-entropy (local_loss)."""
        if self._table is None:
            self._table = self._build()
        return self._table

    def _build(self) -> list[dict[int, float]]:
        net = self.supernet
        was_training = net.training
        net.eval()
        n = net.num_layers
        correct = [{k: 0.0 for k in self.space.layers[i].choices} for i in range(n)]
        loss = [{k: 0.0 for k in self.space.layers[i].choices} for i in range(n)]
        total = 0
        try:
            with torch.no_grad():
                for b, batch in enumerate(itertools.islice(iter(self.val_loader), self.val_batches)):
                    images, labels = split_batch(batch)
                    if labels is None:
                        raise ValueError("val loader batches carry no labels: local decoder scores need labels")
                    x, y = images.to(self.device), labels.to(self.device)
                    rng = random.Random(self.seed * 1_000_003 + b)  # one random input path per batch
                    x = net.stem(x)
                    for i in range(n):
                        outs = {}
                        for k in self.space.layers[i].choices:
                            outs[k] = net.choice(i, k)(x)
                            logits = net.decoder_of(i)(outs[k])
                            correct[i][k] += float((logits.argmax(1) == y).sum())
                            loss[i][k] += float(F.cross_entropy(logits, y, reduction="sum"))
                        x = outs[rng.choice(list(self.space.layers[i].choices))]
                    total += int(y.numel())
        finally:
            net.train(was_training)
        if total == 0:
            raise ValueError("val loader is empty: nothing to score on")
        src = correct if self.kind == "local_acc" else loss
        return [{k: v / total for k, v in layer.items()} for layer in src]

    def score(self, arch: Arch | str) -> float:
        """Mean over layers of the arch's choices' decoder top-1 (local_acc) or minus their mean loss (local_loss)."""
        arch = parse_arch(self.space, arch)
        if arch.key not in self.cache:
            t = self.table()
            v = sum(t[i][k] for i, k in enumerate(arch)) / len(t)
            self.cache[arch.key] = v if self.kind == "local_acc" else -v
        return self.cache[arch.key]
