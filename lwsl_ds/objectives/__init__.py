"""Local objectives: ``ce`` (cross-entropy) and ``infonce`` (SimCLR NT-Xent over two views).

An objective builds the FC of every decoder and of the final head, and turns outputs into (loss, acc).
Strategies stay objective-agnostic: for ``infonce`` the batch holds both views stacked ([v1; v2], 2B rows).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Objective", "CrossEntropy", "InfoNCE", "Decoder", "get_objective", "objective_of", "OBJECTIVES"]


class Decoder(nn.Module):
    """A layer's local head (paper: global average pool + FC)."""

    def __init__(self, fc: nn.Module) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


@dataclass(frozen=True)
class Objective:
    """Base: how many views a batch carries, how to build an output layer, how to score outputs."""

    name: str = "base"
    views: int = 1

    def make_fc(self, in_features: int) -> nn.Module:
        """The output layer of a decoder or of the head."""
        raise NotImplementedError

    def make_decoder(self, in_channels: int) -> Decoder:
        """A local decoder: GAP + this objective's FC."""
        return Decoder(self.make_fc(in_channels))

    def loss(self, out: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, accuracy) of a batch of outputs; accuracy is detached."""
        raise NotImplementedError


@dataclass(frozen=True)
class CrossEntropy(Objective):
    """Classical cross-entropy over the classes; accuracy is top-1."""

    name: str = "ce"
    num_classes: int = 10
    label_smoothing: float = 0.0

    def make_fc(self, in_features: int) -> nn.Module:
        return nn.Linear(in_features, self.num_classes)

    def loss(self, out: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = F.cross_entropy(out.float(), labels, label_smoothing=self.label_smoothing)
        acc = (out.detach().argmax(1) == labels).float().mean()
        return loss, acc


@dataclass(frozen=True)
class InfoNCE(Objective):
    """SimCLR NT-Xent: rows i and i+B are the two views of one image; all other rows are negatives.

    Accuracy is the fraction of rows whose most similar other row is their positive.
    """

    name: str = "infonce"
    views: int = 2
    proj_dim: int = 128
    temperature: float = 0.1
    mlp: bool = False

    def make_fc(self, in_features: int) -> nn.Module:
        if self.mlp:
            return nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU(), nn.Linear(in_features, self.proj_dim))
        return nn.Linear(in_features, self.proj_dim)

    def loss(self, out: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = out.shape[0]
        if n % 2:
            raise ValueError(f"infonce needs the two views stacked (even batch), got {n} rows")
        z = F.normalize(out.float(), dim=1)
        sim = z @ z.t() / self.temperature
        sim = sim.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("-inf"))
        half = n // 2
        target = torch.cat([torch.arange(half, n), torch.arange(0, half)]).to(z.device)
        loss = F.cross_entropy(sim, target)
        acc = (sim.detach().argmax(1) == target).float().mean()
        return loss, acc


# The registry (name -> class): a new objective is one entry here; train.objective names it.
OBJECTIVES: dict[str, type[Objective]] = {"ce": CrossEntropy, "infonce": InfoNCE}


def get_objective(name: str, num_classes: int, *, proj_dim: int = 128, temperature: float = 0.1,
                  mlp: bool = False, label_smoothing: float = 0.0) -> Objective:
    """Objective by name, given the settings it uses of these; ValueError naming the known ones otherwise."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {list(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    settings = {"num_classes": num_classes, "proj_dim": proj_dim, "temperature": temperature, "mlp": mlp,
                "label_smoothing": label_smoothing}
    own = {f.name for f in fields(cls)} - {"name", "views"}  # ce: classes, smoothing; infonce: projection
    return cls(**{k: v for k, v in settings.items() if k in own})


def objective_of(train: Any, num_classes: int) -> Objective:
    """The objective an experiment's ``train`` section describes (objective, proj_dim, temperature, mlp_decoder,
    label_smoothing): training, search and the memory report build the same decoders from it."""
    return get_objective(train.objective, num_classes, proj_dim=train.proj_dim, temperature=train.temperature,
                         mlp=train.mlp_decoder, label_smoothing=train.label_smoothing)
