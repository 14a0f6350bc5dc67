"""Non-greedy layer-wise super-net training (paper Alg. 2).

Choice (i, j) of a layer i < n-1 gets its gradient from L(decoder_of(i+1)(f_{i+1,k}(f_ij(x_i))), y) with
k drawn uniformly from layer i+1's choices (one draw per (i, j), identical on all ranks). f_{i+1,k} is used
read-only (see :func:`read_only_call`): only f_ij and decoder_of(i+1) receive gradient. The last layer uses
the final head directly. The stem (pseudo-layer -1) gets L(decoder_of(0)(f_{0,k}(stem(x)))), so
decoder_of(-1) is never used.
"""

from __future__ import annotations

import random

import torch

from ..space import SuperNet
from .base import Unit, choice_unit, decoder_name
from .layerwise import LayerwiseStrategy
from .readonly import read_only_call

__all__ = ["NonGreedy"]


class NonGreedy(LayerwiseStrategy):
    """Alg. 2: layer i is trained through a sampled, read-only choice of layer i+1 and decoder_of(i+1)."""

    name = "non_greedy"

    def units(self, net: SuperNet) -> list[Unit]:
        """Stem (-1); choices of layer i (i); decoder_of(i+1) (i); the head is trained by layers n-2 and n-1."""
        n = net.num_layers
        units = [Unit("stem", net.stem, (-1,))]
        for i, layer in enumerate(net.space.layers):
            units += [choice_unit(net, i, k, (i,)) for k in layer.choices]
        for i in range(-1, n - 1):  # decoder_of(i+1) is trained by layer i's loss
            owners = (i, n - 1) if i + 1 == n - 1 else (i,)
            units.append(Unit(decoder_name(net, i + 1), net.decoder_of(i + 1), owners))
        return units

    def rng_draws(self, net: SuperNet, i: int, k: int, rng: random.Random) -> tuple:
        """The choice k' of layer i+1 stacked on (i, k); nothing for the last layer."""
        if i + 1 >= net.num_layers:
            return ()
        return (rng.choice(net.space.layers[i + 1].choices),)

    def stem_loss(self, net: SuperNet, images: torch.Tensor, labels: torch.Tensor, draws: tuple):
        """L(decoder_of(0)(f_{0,k}(stem(x)))) with f_{0,k} read-only."""
        h = net.stem(images)
        (k,) = draws
        loss, acc = net.objective.loss(net.decoder_of(0)(read_only_call(net.choice(0, k), h)), labels)
        return loss, acc, h.detach()

    def choice_loss(self, net: SuperNet, i: int, k: int, x: torch.Tensor, labels: torch.Tensor, draws: tuple):
        """L(decoder_of(i+1)(f_{i+1,k'}(f_ik(x_i)))) for i < n-1, L(head(f_ik(x_i))) for the last layer."""
        y = net.choice(i, k)(x)
        if draws:
            (k_next,) = draws
            z = net.decoder_of(i + 1)(read_only_call(net.choice(i + 1, k_next), y))
        else:
            z = net.head(y)
        loss, acc = net.objective.loss(z, labels)
        return loss, acc, y.detach()
