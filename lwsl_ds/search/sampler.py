"""Constrained candidate generation: random archs, mutation, crossover, all with bounded retries.

Every generator returns only archs that satisfy the constraints and were not seen before, or fewer
than asked when its attempts run out: there is no unbounded rejection loop anywhere.
"""

from __future__ import annotations

import random
from typing import Sequence

from ..flops.table import CostTable
from ..space.arch import Arch
from .constraints import Constraints

__all__ = ["CandidateSampler"]


class CandidateSampler:
    """Draws feasible, unseen archs with a caller-owned ``random.Random`` (all randomness goes through it)."""

    def __init__(self, table: CostTable, constraints: Constraints, rng: random.Random, max_tries: int = 10) -> None:
        self.space = table.space
        self.table = table
        self.constraints = constraints
        self.rng = rng
        self.max_tries = max_tries
        self._choices = [list(layer.choices) for layer in self.space.layers]
        # Python-int per-layer lists: a per-arch sum is faster than a numpy call for one arch.
        self._fl = [[int(v) for v in row] for row in table.array(constraints.metric)]
        self._pa = [[int(v) for v in row] for row in table.array("params")]
        self._fl0 = table.fixed_cost(constraints.metric)
        self._pa0 = table.fixed_cost("params")
        fmin, fmax = table.layer_bounds(constraints.metric)
        pmin, _ = table.layer_bounds("params")
        self._fmin, self._fmax, self._pmin = [int(v) for v in fmin], [int(v) for v in fmax], [int(v) for v in pmin]

    # ---- feasibility ------------------------------------------------------------------------------
    def feasible(self, choices: Sequence[int]) -> bool:
        """True when an arch (choice indices) satisfies every limit."""
        c = self.constraints
        fl = self._fl0 + sum(self._fl[i][k] for i, k in enumerate(choices))
        if c.max_macs is not None and fl > c.max_macs:
            return False
        if c.min_macs is not None and fl < c.min_macs:
            return False
        if c.max_params is not None:
            pa = self._pa0 + sum(self._pa[i][k] for i, k in enumerate(choices))
            if pa > c.max_params:
                return False
        return True

    # ---- generators -------------------------------------------------------------------------------
    def _uniform(self) -> list[int]:
        return [self.rng.choice(ch) for ch in self._choices]

    def _guided(self) -> list[int] | None:
        """One arch built layer by layer in random order, each choice drawn among those that can still
        meet the limits given the per-layer min/max of the layers not yet chosen (one pass, no retry)."""
        c, n = self.constraints, self.space.num_layers
        order = list(range(n))
        self.rng.shuffle(order)
        out = [0] * n
        fl, pa = self._fl0, self._pa0
        rest_fmin, rest_fmax, rest_pmin = sum(self._fmin), sum(self._fmax), sum(self._pmin)
        for i in order:
            rest_fmin -= self._fmin[i]
            rest_fmax -= self._fmax[i]
            rest_pmin -= self._pmin[i]
            ok = [k for k in self._choices[i]
                  if (c.max_macs is None or fl + self._fl[i][k] + rest_fmin <= c.max_macs)
                  and (c.min_macs is None or fl + self._fl[i][k] + rest_fmax >= c.min_macs)
                  and (c.max_params is None or pa + self._pa[i][k] + rest_pmin <= c.max_params)]
            if not ok:
                return None
            k = self.rng.choice(ok)
            out[i] = k
            fl += self._fl[i][k]
            pa += self._pa[i][k]
        return out if self.feasible(out) else None

    def random_archs(self, count: int, seen: set[str]) -> list[Arch]:
        """Up to ``count`` new feasible archs: uniform draws (rejection), then guided draws once uniform
        ones keep failing (tight limits), ``count * max_tries`` attempts of each at most."""
        out: list[Arch] = []
        budget = count * self.max_tries
        for draw in (self._uniform, self._guided):
            tries = 0
            while len(out) < count and tries < budget:
                tries += 1
                ch = draw()
                if ch is None or not self.feasible(ch):
                    continue
                self._add(ch, out, seen)
        return out

    def mutations(self, parents: Sequence[Arch], count: int, prob: float, seen: set[str]) -> list[Arch]:
        """Up to ``count`` children: a random parent with each layer resampled with probability ``prob``."""
        out: list[Arch] = []
        if not parents:
            return out
        for _ in range(count * self.max_tries):
            if len(out) >= count:
                break
            p = self.rng.choice(parents)
            ch = [self.rng.choice(self._choices[i]) if self.rng.random() < prob else k for i, k in enumerate(p)]
            if self.feasible(ch):
                self._add(ch, out, seen)
        return out

    def crossovers(self, parents: Sequence[Arch], count: int, seen: set[str]) -> list[Arch]:
        """Up to ``count`` children: two random parents, each layer taken from one of them at random."""
        out: list[Arch] = []
        if len(parents) < 2:
            return out
        for _ in range(count * self.max_tries):
            if len(out) >= count:
                break
            a, b = self.rng.choice(parents), self.rng.choice(parents)
            ch = [x if self.rng.random() < 0.5 else y for x, y in zip(a, b)]
            if self.feasible(ch):
                self._add(ch, out, seen)
        return out

    @staticmethod
    def _add(choices: list[int], out: list[Arch], seen: set[str]) -> None:
        arch = Arch(tuple(choices))
        if arch.key not in seen:
            seen.add(arch.key)
            out.append(arch)
