"""Shared skeleton of the layer-wise strategies (greedy Alg. 1, non-greedy Alg. 2).

Per step: the stem's loss, then for each layer i and each choice j one forward, one loss, one backward
(the choice's activations are freed right there), while x_{i+1} = mean_j f_ij(x_i) is accumulated from the
detached outputs computed *before* any update. Subclasses say which loss a choice gets.
"""

from __future__ import annotations

import random
import torch

from ..space import SuperNet
from .base import NULL_TRACKER, StepOutput, Strategy, Tracker, UpdateBackend

__all__ = ["LayerwiseStrategy"]


class LayerwiseStrategy(Strategy):
    """Common step of greedy and non-greedy training; subclasses define ``stem_loss`` and ``choice_loss``."""

    def __init__(self, layer_input_init: str = "zero") -> None:
        if layer_input_init not in ("zero", "input"):
            raise ValueError(f"layer_input_init: {layer_input_init!r} is not one of ['zero', 'input']")
        self.layer_input_init = layer_input_init

    def backward_calls(self, net: SuperNet) -> dict[int, int]:
        """One backward for the stem, one per choice of every layer."""
        return {-1: 1, **{i: len(layer.choices) for i, layer in enumerate(net.space.layers)}}

    # ---- the two things a layer-wise strategy defines ---------------------------------------------
    def stem_loss(self, net: SuperNet, images: torch.Tensor, labels: torch.Tensor, draws: tuple):
        """(loss, acc, detached stem output) of the stem's local loss."""
        raise NotImplementedError

    def choice_loss(self, net: SuperNet, i: int, k: int, x: torch.Tensor, labels: torch.Tensor,
                    draws: tuple):
        """(loss, acc, detached f_ik(x)) of choice k of layer i."""
        raise NotImplementedError

    def rng_draws(self, net: SuperNet, i: int, k: int, rng: random.Random) -> tuple:
        """Random draws a choice's loss needs, taken here (outside the engine) in a fixed order."""
        return ()

    # ---- the step ---------------------------------------------------------------------------------
    def train_stem(self, net: SuperNet, images: torch.Tensor, labels: torch.Tensor, backend: UpdateBackend,
                   rng: random.Random, out: StepOutput, tracker: Tracker = NULL_TRACKER) -> torch.Tensor:
        """The stem's local loss and backward; records its metrics in ``out``; returns x_0 (detached)."""
        with tracker.phase("stem", -1):
            draws = self.rng_draws(net, -1, 0, rng)
            loss, acc, x = backend.run(-1, self.stem_loss, net, images, labels, draws)
            backend.backward(-1, loss)
            out["loss/stem"], out["acc/stem"] = loss.detach(), acc
        return x

    def train_layer(self, net: SuperNet, i: int, x: torch.Tensor, labels: torch.Tensor, backend: UpdateBackend,
                    rng: random.Random, out: StepOutput, tracker: Tracker = NULL_TRACKER) -> torch.Tensor | None:
        """Every choice of layer i on x_i (forward, loss, backward); returns x_{i+1}, None after the last layer."""
        layer = net.space.layers[i]
        last = i == net.num_layers - 1
        with tracker.phase("layer", i):
            total = None
            losses, accs = [], []
            for k in layer.choices:
                draws = self.rng_draws(net, i, k, rng)
                loss, acc, y = backend.run(i, self.choice_loss, net, i, k, x, labels, draws)
                backend.backward(i, loss)  # frees this choice's graph before the next choice runs
                losses.append(loss.detach())
                accs.append(acc)
                del loss
                if not last:  # only the running sum is kept, not m outputs
                    total = y if total is None else total + y
                del y
            out[f"loss/layer{i}"] = torch.stack(losses).mean()
            out[f"acc/layer{i}"] = torch.stack(accs).mean()
            if last:
                return None
            mean = total / len(layer.choices)
            del total  # before the phase ends: the tracker's live-bytes view would count it
            return x + mean if (self.layer_input_init == "input" and layer.keeps_shape) else mean

    def step(self, net: SuperNet, images: torch.Tensor, labels: torch.Tensor, backend: UpdateBackend,
             rng: random.Random, tracker: Tracker = NULL_TRACKER) -> StepOutput:
        """Stem, then every choice of every layer: forward, local loss, backward; then one update."""
        out: StepOutput = {}
        x = self.train_stem(net, images, labels, backend, rng, out, tracker)
        for i in range(net.num_layers):
            x = self.train_layer(net, i, x, labels, backend, rng, out, tracker)
        backend.step()
        return out
