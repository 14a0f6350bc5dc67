"""Which archs to rank: a seeded uniform sample, a sample stratified by FLOPs, or a given list."""

from __future__ import annotations

import random
from typing import Callable, Iterable, Optional, Sequence

from ..config.schema import ConfigError
from ..space import Arch, SearchSpace, parse_arch, sample_arch

__all__ = ["sample_archs", "parse_arch_list"]

# When the space is too large to enumerate, a stratified sample is drawn from this many uniform candidates
# per requested arch (enough that each FLOPs quantile bin holds several candidates).
_CANDIDATES_PER_ARCH = 20


def _distinct_uniform(space: SearchSpace, n: int, rng: random.Random) -> list[Arch]:
    """``n`` distinct uniform archs, with a bounded number of draws (no unbounded rejection loop)."""
    if n > space.num_archs():
        raise ConfigError(f"cannot draw {n} distinct archs from space {space.name!r} ({space.num_archs()} archs)")
    seen: dict[Arch, None] = {}
    for _ in range(50 * n + 1000):
        seen.setdefault(sample_arch(space, rng))
        if len(seen) == n:
            return list(seen)
    raise RuntimeError(f"drew {len(seen)} distinct archs out of {n} requested from {space.name!r}; "
                       "pass an explicit pool")


def sample_archs(space: SearchSpace, k: int, *, seed: int = 0, pool: Optional[Iterable[str | Arch]] = None,
                 stratify: str = "none", flops: Optional[Callable[[Arch], float]] = None,
                 strata: int = 10) -> list[Arch]:
    """``k`` distinct archs, seeded; from ``pool`` (e.g. the ground-truth keys) or from the whole space.

    ``stratify='flops'`` sorts the candidates by ``flops(arch)``, cuts them into ``strata`` equal-count
    bins and draws ``k // strata`` archs per bin (the remainder from the first bins), so cheap and
    expensive archs are both present even for small k. Returned in the order drawn.
    """
    if k < 2:
        raise ConfigError(f"rank.num_archs: need at least 2 archs to rank, got {k}")
    if stratify not in ("none", "flops"):
        raise ConfigError(f"rank.stratify: {stratify!r} is not allowed; choose 'none' or 'flops'")
    rng = random.Random(seed)
    if pool is not None:
        candidates = sorted({parse_arch(space, a) for a in pool})
        if len(candidates) < k:
            raise ConfigError(f"rank.num_archs: {k} archs requested but the pool has only {len(candidates)}")
    elif space.num_archs() <= 100_000:
        from ..space import all_archs

        candidates = list(all_archs(space))
    else:
        candidates = _distinct_uniform(space, min(space.num_archs(), k * _CANDIDATES_PER_ARCH), rng)
    if stratify == "none":
        return rng.sample(candidates, k)
    if flops is None:
        raise ConfigError("rank.stratify 'flops' needs a FLOPs table for the space")
    if not 1 <= strata <= k:
        raise ConfigError(f"rank.strata: {strata} must be in 1..num_archs ({k})")
    ordered = sorted(candidates, key=lambda a: (flops(a), a))
    bins = [ordered[len(ordered) * s // strata: len(ordered) * (s + 1) // strata] for s in range(strata)]
    out: list[Arch] = []
    for s, b in enumerate(bins):
        take = k // strata + (1 if s < k % strata else 0)
        if take > len(b):
            raise ConfigError(f"rank.strata: FLOPs bin {s} holds {len(b)} archs, fewer than {take}; use fewer strata")
        out.extend(rng.sample(b, take))
    return out


def parse_arch_list(space: SearchSpace, items: Sequence[str], where: str = "rank.archs") -> list[Arch]:
    """Parse a given list of archs (key or named form); duplicates and invalid archs are errors."""
    out: list[Arch] = []
    seen: set[Arch] = set()
    for i, text in enumerate(items):
        try:
            a = parse_arch(space, text)
        except ConfigError as e:
            raise ConfigError(f"{where}[{i}]: {e}") from None
        if a in seen:
            raise ConfigError(f"{where}[{i}]: arch {a.key!r} is listed twice")
        seen.add(a)
        out.append(a)
    if len(out) < 2:
        raise ConfigError(f"{where}: need at least 2 archs to rank, got {len(out)}")
    return out
