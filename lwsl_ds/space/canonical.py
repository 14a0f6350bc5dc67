"""Canonical arch keys: inside a stage an identity (skip) in a non-first layer is a no-op, so many keys are one network.

Per stage the canonical form keeps the first layer, then the later non-identity ops in order, then the
identities. NAS-Bench-Macro trained only the 3969 canonical keys of its 6561; the ground truth
(``lwsl_ds.ranking.truth``) and the score tables the search reads (``lwsl_ds.search.scoring``) both map
keys through here, so neither depends on the other.
"""

from __future__ import annotations

from .arch import Arch
from .spec import SearchSpace

__all__ = ["NASBENCH_MACRO_STAGES", "canonical_key", "canonical_arch"]

NASBENCH_MACRO_STAGES = (2, 3, 3)


def canonical_key(key: str, stages: tuple[int, ...] = NASBENCH_MACRO_STAGES, identity: str = "0") -> str:
    """NAS-Bench-Macro canonical form: per stage keep the first layer, then non-identities, identities last."""
    if len(key) != sum(stages):
        raise ValueError(f"key {key!r}: expected {sum(stages)} characters for stages {stages}")
    out, start = [], 0
    for n in stages:
        part = key[start:start + n]
        rest = part[1:]
        out.append(part[0] + "".join(c for c in rest if c != identity) + identity * rest.count(identity))
        start += n
    return "".join(out)


def _stage_sizes(space: SearchSpace) -> tuple[int, ...]:
    sizes: list[int] = []
    for layer in space.layers:
        if layer.stage == len(sizes):
            sizes.append(0)
        sizes[-1] += 1
    return tuple(sizes)


def canonical_arch(space: SearchSpace, arch: Arch) -> Arch:
    """The canonical form of ``arch`` in a space whose non-first stage layers keep their shape."""
    skips = [k for k, c in enumerate(space.choices) if c.op == "skip"]
    if len(skips) != 1:
        raise ValueError(f"space {space.name!r}: canonical forms need exactly one skip choice, found {len(skips)}")
    for layer in space.layers:
        first = layer.index == 0 or space.layers[layer.index - 1].stage != layer.stage
        if not first and not layer.keeps_shape:
            raise ValueError(f"space {space.name!r}: layer {layer.index} changes shape, so a skip there is not a no-op")
    key = canonical_key(arch.key, _stage_sizes(space), str(skips[0]))
    return Arch(tuple(int(c) for c in key))
