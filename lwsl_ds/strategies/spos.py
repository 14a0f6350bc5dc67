"""Single-path one-shot (SPOS) baseline: one uniformly sampled path per batch, end-to-end CE via the head.

Choices off the sampled path keep their parameters *and* optimizer state: the strategy asks the backend to
``freeze`` them (ZeRO 1/2 would otherwise hand them zero gradients and Adam would still move them).

With several layer groups the path is cut at group boundaries: group g's output is detached and fed to
group g+1 as a leaf that requires grad; backward runs from the last group down, each group back-propagating
the surrogate sum(out_g * grad_of_its_output), whose gradient equals the end-to-end one exactly.
"""

from __future__ import annotations

import random

import torch

from ..space import SuperNet, sample_arch
from ..space.arch import Arch
from .base import NULL_TRACKER, StepOutput, Strategy, Tracker, Unit, UpdateBackend, choice_unit

__all__ = ["SPOS"]


class SPOS(Strategy):
    """Uniform single-path sampling (Guo et al.), trained end-to-end through the final head."""

    name = "spos"
    freezes_unsampled = True

    def units(self, net: SuperNet) -> list[Unit]:
        """Stem, every choice and the head, all trained by the one end-to-end loss (layer n-1 owns the head)."""
        n = net.num_layers
        units = [Unit("stem", net.stem, (-1,))]
        for i, layer in enumerate(net.space.layers):
            units += [choice_unit(net, i, k, (i,)) for k in layer.choices]
        units.append(Unit("head", net.head, (n - 1,)))
        return units

    def backward_calls(self, net: SuperNet) -> dict[int, int]:
        """Not per layer: SPOS makes one backward per layer group (see ``group_backward_calls``)."""
        raise NotImplementedError("spos backward calls are per layer group")

    def group_backward_calls(self, net: SuperNet, groups: list[list[int]]) -> list[int]:
        """One backward (the end-to-end loss or its surrogate) per layer group."""
        return [1] * len(groups)

    @staticmethod
    def _segment(net: SuperNet, arch: Arch, layers: list[int], first: bool, last: bool, x: torch.Tensor,
                 labels: torch.Tensor, tracker: Tracker):
        if first:
            with tracker.phase("stem", -1):
                x = net.stem(x)
        for i in layers:
            with tracker.phase("layer", i):
                x = net.choice(i, arch[i])(x)
        if not last:
            return x
        with tracker.phase("head", net.num_layers):
            return net.objective.loss(net.head(x), labels)

    def step(self, net: SuperNet, images: torch.Tensor, labels: torch.Tensor, backend: UpdateBackend,
             rng: random.Random, tracker: Tracker = NULL_TRACKER) -> StepOutput:
        """Sample a path, freeze every choice off it, forward group by group, backward last to first."""
        arch = sample_arch(net.space, rng)
        on_path = {choice_unit(net, i, k, ()).name for i, k in enumerate(arch)}
        backend.freeze([u.name for u in self.units(net) if u.name.startswith("layers.") and u.name not in on_path])
        groups = backend.groups
        x = images
        inputs: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        for g, layers in enumerate(groups):
            first, last = g == 0, g == len(groups) - 1
            x_in = x if first else x.detach().requires_grad_(True)
            res = backend.run(layers[0], self._segment, net, arch, layers, first, last, x_in, labels, tracker)
            inputs.append(x_in)
            if last:
                loss, acc = res
            else:
                outputs.append(res)
                x = res
        n = net.num_layers
        with tracker.phase("backward", n):
            backend.backward(groups[-1][0], loss)
            for g in range(len(groups) - 2, -1, -1):
                grad = inputs[g + 1].grad
                if grad is None:  # nothing downstream depended on this group's output
                    grad = torch.zeros_like(outputs[g])
                backend.backward(groups[g][0], (outputs[g] * grad).sum())
                outputs[g] = None  # free this group's graph now
        backend.step()
        return {"loss/head": loss.detach(), "acc/head": acc, "arch": torch.tensor(arch.choices)}
