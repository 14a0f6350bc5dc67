"""Greedy layer-wise super-net training (paper Alg. 1).

Choice (i, j) gets its gradient only from L(decoder_of(i)(f_ij(x_i)), y); decoder_of(i) accumulates the
gradients of all choices of layer i. The stem is pseudo-layer -1 with one choice: L(decoder_of(-1)(stem(x))).
"""

from __future__ import annotations

import torch

from ..space import SuperNet
from .base import Unit, choice_unit, decoder_name
from .layerwise import LayerwiseStrategy

__all__ = ["Greedy"]


class Greedy(LayerwiseStrategy):
    """Alg. 1: every layer is trained by its own decoder; no gradient crosses layers."""

    name = "greedy"

    def units(self, net: SuperNet) -> list[Unit]:
        """Stem + its decoder (layer -1); each choice of layer i and decoder_of(i) (layer i)."""
        units = [Unit("stem", net.stem, (-1,)), Unit("stem_decoder", net.decoder_of(-1), (-1,))]
        for i, layer in enumerate(net.space.layers):
            units += [choice_unit(net, i, k, (i,)) for k in layer.choices]
            units.append(Unit(decoder_name(net, i), net.decoder_of(i), (i,)))
        return units

    def stem_loss(self, net: SuperNet, images: torch.Tensor, labels: torch.Tensor, draws: tuple):
        """L(decoder_of(-1)(stem(x))); returns the detached stem output as x_0."""
        h = net.stem(images)
        loss, acc = net.objective.loss(net.decoder_of(-1)(h), labels)
        return loss, acc, h.detach()

    def choice_loss(self, net: SuperNet, i: int, k: int, x: torch.Tensor, labels: torch.Tensor, draws: tuple):
        """L(decoder_of(i)(f_ik(x_i)))."""
        y = net.choice(i, k)(x)
        loss, acc = net.objective.loss(net.decoder_of(i)(y), labels)
        return loss, acc, y.detach()
