"""The weight-sharing super-net: stem, all choices of all layers, one decoder per layer, final head.

The arch is always an argument (``forward(x, arch)``): no module keeps a "current choice", so a sampled
path is visible in every call and ranks cannot disagree silently.

Decoders, with searchable layers indexed 0..n-1 and the stem as pseudo-layer -1 (see docs/algorithms.md):
``decoder_of(-1)`` is the stem's decoder (used by greedy only), ``decoder_of(i)`` for 0 <= i < n-1 is
decoder g_i, and ``decoder_of(n-1)`` is the final head.
"""

from __future__ import annotations

import torch
from torch import nn

from ..objectives import Objective
from .arch import Arch
from .builders import build_choice, build_head, build_stem
from .spec import SearchSpace

__all__ = ["SuperNet"]


class SuperNet(nn.Module):
    """All choices of all layers with shared weights, plus stem, decoders and head."""

    def __init__(self, space: SearchSpace, objective: Objective) -> None:
        super().__init__()
        self.space = space
        self.objective = objective
        self.stem = build_stem(space)
        # layers[i][name] is choice `name` of layer i; keys are choice names so state_dict keys read well.
        self.layers = nn.ModuleList(
            nn.ModuleDict({space.choices[k].name: build_choice(space, layer, k) for k in layer.choices})
            for layer in space.layers)
        self.stem_decoder = objective.make_decoder(space.stem_out[0])
        self.decoders = nn.ModuleList(objective.make_decoder(layer.out_channels) for layer in space.layers[:-1])
        self.head = build_head(space, objective.make_fc(space.head.features))

    @property
    def num_layers(self) -> int:
        """Number of searchable layers n."""
        return len(self.layers)

    def choice(self, i: int, k: int) -> nn.Module:
        """Module of choice index ``k`` (an index into ``space.choices``) of layer ``i``."""
        return self.layers[i][self.space.choices[k].name]

    def decoder_of(self, i: int) -> nn.Module:
        """Local head used for the output of layer ``i`` (-1 = stem; n-1 = the final head)."""
        if i == -1:
            return self.stem_decoder
        if i == self.num_layers - 1:
            return self.head
        return self.decoders[i]

    def forward_layers(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Stem and the searchable layers of one path; returns the input of the head."""
        x = self.stem(x)
        for i, k in enumerate(arch):
            x = self.choice(i, k)(x)
        return x

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Output of the head along the path ``arch``."""
        return self.head(self.forward_layers(x, arch))

    def features(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Pooled head features (before the FC) along ``arch``."""
        return self.head.features(self.forward_layers(x, arch))

    def path_modules(self, arch: Arch) -> list[nn.Module]:
        """The modules one path uses (stem, chosen choices, head), in order."""
        return [self.stem, *(self.choice(i, k) for i, k in enumerate(arch)), self.head]
