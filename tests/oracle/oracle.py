"""An independent oracle of one training step of spos, greedy and non_greedy, written from the paper.

Written from Alg. 1 / Alg. 2 of the paper and docs/algorithms.md, in plain PyTorch, with its own read-only
call, its own draws, its own SGD, Adam and cosine schedule. It uses the super-net (``lwsl_ds.space``: stem,
choices, decoders, head, objective) and nothing of ``lwsl_ds.strategies`` or ``lwsl_ds.engines``, so a bug
in a strategy or a backend cannot hide on both sides of a comparison (tests/oracle/test_oracle_imports.py
checks that). It is written for clarity, not memory: all local losses of a step are summed and
back-propagated once ("accumulate everything, update once", which the paper states equals updating each
module right after its own gradient, because every loss reads modules before any update).
"""

from __future__ import annotations

import copy
import math
import random
from typing import Callable

import torch
from torch import nn

__all__ = ["draws", "read_only", "spos_losses", "greedy_losses", "non_greedy_losses", "LOSSES", "SGD", "Adam",
           "cosine_lr", "train"]


def draws(seed: int, step: int) -> random.Random:
    """The rule every strategy shares for a step's random draws (docs/algorithms.md, "Sampling")."""
    return random.Random(seed * 1_000_003 + step)


def read_only(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` on a throw-away copy with frozen weights: gradient reaches ``x`` only, and the copy's
    BatchNorm (batch statistics in train mode) moves the copy's running stats, never the module's."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin(x)


def _next_input(x: torch.Tensor, ys: list[torch.Tensor], from_input: bool) -> torch.Tensor:
    """x_{i+1} = (1/m) sum_j y_ij from detached outputs (Alg. 1/2 line 11), started from 0 (Alg. 1 line 6) or,
    with ``from_input``, from x_i (Alg. 2 line 6) where the shape allows it."""
    mean = torch.stack([y.detach() for y in ys]).mean(0)
    return x + mean if from_input and mean.shape == x.shape else mean


def spos_losses(net, images: torch.Tensor, labels: torch.Tensor, rng: random.Random,
                from_input: bool = False) -> list[torch.Tensor]:
    """SPOS: one path drawn uniformly (one draw per layer, in layer order), end-to-end loss through the head."""
    arch = [rng.choice(layer.choices) for layer in net.space.layers]
    x = net.stem(images)
    for i, k in enumerate(arch):
        x = net.choice(i, k)(x)
    return [net.objective.loss(net.head(x), labels)[0]]


def greedy_losses(net, images: torch.Tensor, labels: torch.Tensor, rng: random.Random,
                  from_input: bool = False) -> list[torch.Tensor]:
    """Alg. 1: the stem's loss via its decoder, then L_i(g_i(f_ij(x_i))) for every layer i and choice j."""
    loss = net.objective.loss
    h = net.stem(images)
    losses = [loss(net.decoder_of(-1)(h), labels)[0]]
    x = h.detach()
    for i, layer in enumerate(net.space.layers):
        ys = [net.choice(i, j)(x) for j in layer.choices]
        losses += [loss(net.decoder_of(i)(y), labels)[0] for y in ys]
        x = _next_input(x, ys, from_input)
    return losses


def non_greedy_losses(net, images: torch.Tensor, labels: torch.Tensor, rng: random.Random,
                      from_input: bool = False) -> list[torch.Tensor]:
    """Alg. 2: L_{i+1}(g_{i+1}(f~_{i+1}(f_ij(x_i)))) with f~ drawn per (i, j) and read-only; the last layer
    uses the head. The stem is layer -1: L(g_0(f~_0(stem(x)))). Draws: the stem's first, then (i, j) in order."""
    loss, layers, n = net.objective.loss, net.space.layers, net.num_layers
    h = net.stem(images)
    k = rng.choice(layers[0].choices)
    losses = [loss(net.decoder_of(0)(read_only(net.choice(0, k), h)), labels)[0]]
    x = h.detach()
    for i, layer in enumerate(layers):
        ys = []
        for j in layer.choices:
            y = net.choice(i, j)(x)
            if i < n - 1:
                k = rng.choice(layers[i + 1].choices)
                losses.append(loss(net.decoder_of(i + 1)(read_only(net.choice(i + 1, k), y)), labels)[0])
            else:
                losses.append(loss(net.head(y), labels)[0])
            ys.append(y)
        x = _next_input(x, ys, from_input)
    return losses


LOSSES: dict[str, Callable] = {"spos": spos_losses, "greedy": greedy_losses, "non_greedy": non_greedy_losses}


def cosine_lr(lr: float, step: int, total: int) -> float:
    """Cosine annealing from ``lr`` to 0 over ``total`` steps, no warmup (the paper's schedule); step 0 = lr."""
    return lr * (1 + math.cos(math.pi * min(step, total) / total)) / 2


class SGD:
    """SGD with momentum and L2 weight decay added to the gradient; a parameter without gradient is skipped."""

    def __init__(self, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        self.lr, self.momentum, self.wd = lr, momentum, weight_decay
        self.state: dict[nn.Parameter, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, params: list[nn.Parameter], lr: float) -> None:
        """One update of every parameter that has a gradient."""
        for p in params:
            if p.grad is None:
                continue
            d = p.grad + self.wd * p
            if self.momentum:
                buf = self.state.get(p)
                d = d.clone() if buf is None else self.momentum * buf + d
                self.state[p] = d
            p -= lr * d


class Adam:
    """Adam with L2 weight decay added to the gradient (DeepSpeed's Adam with ``adam_w_mode: false``) and
    bias correction; each parameter counts its own steps, so one without gradient keeps its moments and count."""

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.state: dict[nn.Parameter, dict] = {}

    @torch.no_grad()
    def step(self, params: list[nn.Parameter], lr: float) -> None:
        """One update of every parameter that has a gradient."""
        for p in params:
            if p.grad is None:
                continue
            g = p.grad + self.wd * p
            s = self.state.setdefault(p, {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            s["step"] += 1
            s["m"] = self.b1 * s["m"] + (1 - self.b1) * g
            s["v"] = self.b2 * s["v"] + (1 - self.b2) * g * g
            m_hat = s["m"] / (1 - self.b1 ** s["step"])
            v_hat = s["v"] / (1 - self.b2 ** s["step"])
            p -= lr * m_hat / (v_hat.sqrt() + self.eps)


def optimizer_from(cfg: dict):
    """The oracle's optimizer for a ds_config ``optimizer`` section (SGD, or Adam with adam_w_mode false)."""
    t, p = cfg["type"].lower(), dict(cfg.get("params", {}))
    if t == "sgd":
        return SGD(p["lr"], p.get("momentum", 0.0), p.get("weight_decay", 0.0))
    if t == "adam" and p.get("adam_w_mode") is False:
        return Adam(p["lr"], tuple(p.get("betas", (0.9, 0.999))), p.get("eps", 1e-8), p.get("weight_decay", 0.0))
    raise ValueError(f"oracle: optimizer {cfg} not modelled (SGD, or Adam with adam_w_mode false)")


def train(net, strategy: str, optimizer, batches, *, seed: int = 0, total_steps: int | None = None,
          from_input: bool = False) -> list[float]:
    """Train ``net`` in place for ``len(batches)`` steps; lr cosine over ``total_steps`` (None: constant);
    ``from_input``: layer inputs start from the previous input (``train.layer_input_init: input``).

    Per step: zero gradients, sum every local loss, one backward, one update of each parameter that got a
    gradient. Returns the summed loss of each step.
    """
    params = list(net.parameters())
    out = []
    for t, (images, labels) in enumerate(batches):
        for p in params:
            p.grad = None
        total = sum(LOSSES[strategy](net, images, labels, draws(seed, t), from_input))
        total.backward()
        lr = optimizer.lr if total_steps is None else cosine_lr(optimizer.lr, t, total_steps)
        optimizer.step(params, lr)
        out.append(float(total.detach()))
    for p in params:
        p.grad = None
    return out
