"""MACs / params limits of a search, checked against a cost table before anything is evaluated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config.schema import ConfigError
from ..flops.table import CostTable
from ..space.arch import Arch

__all__ = ["Constraints", "InfeasibleConstraint"]

# Spaces up to this size are enumerated to decide joint feasibility exactly (numpy, well under a second).
_ENUMERATE_LIMIT = 2_000_000


class InfeasibleConstraint(ConfigError):
    """No architecture of the space satisfies the limits; the message gives the feasible ranges."""


@dataclass(frozen=True)
class Constraints:
    """Limits on MACs (``metric``: fvcore 'flops' or 'conv_linear') and parameters; None = no limit."""

    max_macs: Optional[float] = None
    min_macs: Optional[float] = None
    max_params: Optional[float] = None
    metric: str = "flops"

    def describe(self) -> str:
        """Human-readable form, e.g. '100.0M <= flops <= 330.0M, params <= 5.0M'."""
        parts = []
        if self.min_macs is not None or self.max_macs is not None:
            lo = f"{self.min_macs / 1e6:.1f}M <= " if self.min_macs is not None else ""
            hi = f" <= {self.max_macs / 1e6:.1f}M" if self.max_macs is not None else ""
            parts.append(f"{lo}{self.metric}{hi}")
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params / 1e6:.3f}M")
        return ", ".join(parts) or "unconstrained"

    def mask(self, table: CostTable, archs) -> np.ndarray:
        """Boolean array: which archs (an (N, n) int array or a list of archs) satisfy every limit."""
        fl = table.costs(archs, self.metric)
        ok = np.ones(len(fl), dtype=bool)
        if self.max_macs is not None:
            ok &= fl <= self.max_macs
        if self.min_macs is not None:
            ok &= fl >= self.min_macs
        if self.max_params is not None:
            ok &= table.costs(archs, "params") <= self.max_params
        return ok

    def ok(self, table: CostTable, arch: Arch) -> bool:
        """True when one arch satisfies every limit."""
        c = table.cost(arch)
        fl = c.get(self.metric)
        return ((self.max_macs is None or fl <= self.max_macs)
                and (self.min_macs is None or fl >= self.min_macs)
                and (self.max_params is None or c.params <= self.max_params))

    def feasible_range(self, table: CostTable) -> str:
        """The exact ranges of the space, for error messages."""
        flo, fhi = table.bounds(self.metric)
        plo, phi = table.bounds("params")
        return (f"space {table.space.name!r} at {table.space.resolution} px: {self.metric} "
                f"{flo:,} .. {fhi:,} ({flo / 1e6:.2f}M .. {fhi / 1e6:.2f}M), params {plo:,} .. {phi:,}")

    def check(self, table: CostTable) -> None:
        """Raise :class:`InfeasibleConstraint` (with the feasible range) when no arch can satisfy the limits.

        Each limit alone is checked exactly against the per-layer min/max. Spaces of up to 2M archs are
        enumerated, so combinations (max MACs with max params, or a MACs window) are exact there too;
        in larger spaces a combination is checked by the search's bounded sampler before evaluation.
        """
        if self.metric not in ("flops", "conv_linear"):
            raise ConfigError(f"search.cost_metric: {self.metric!r} is not allowed; choose 'flops' or 'conv_linear'")
        flo, fhi = table.bounds(self.metric)
        plo, _ = table.bounds("params")
        why = []
        if self.max_macs is not None and self.max_macs < flo:
            why.append(f"max_macs {self.max_macs:,.0f} is below the smallest architecture's {flo:,}")
        if self.min_macs is not None and self.min_macs > fhi:
            why.append(f"min_macs {self.min_macs:,.0f} is above the largest architecture's {fhi:,}")
        if self.min_macs is not None and self.max_macs is not None and self.min_macs > self.max_macs:
            why.append(f"min_macs {self.min_macs:,.0f} > max_macs {self.max_macs:,.0f}")
        if self.max_params is not None and self.max_params < plo:
            why.append(f"max_params {self.max_params:,.0f} is below the smallest architecture's {plo:,}")
        if not why and table.space.num_archs() <= _ENUMERATE_LIMIT and self.describe() != "unconstrained":
            import itertools

            arr = np.array(list(itertools.product(*(layer.choices for layer in table.space.layers))),
                           dtype=np.int64)
            if not self.mask(table, arr).any():
                why.append("no single architecture meets all limits together")
        if why:
            raise InfeasibleConstraint(f"infeasible search constraint ({self.describe()}): {'; '.join(why)}. "
                                       f"Feasible: {self.feasible_range(table)}")
