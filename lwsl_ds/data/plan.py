"""Epoch plan: which samples each rank gets in which batch, from (seed, epoch) alone.

Both backends iterate this plan, so order, sharding and labels never depend on the backend. The
epoch permutation is drawn from ``(seed, epoch)`` and is therefore identical on all ranks; it is cut
into *global* batches of ``batch_size * world_size`` samples and every global batch is split into
``world_size`` contiguous parts, part ``rank`` going to this rank. Every rank gets the same number of
batches (no rank waits on a collective that another never calls) and every sample is used exactly
once per epoch. The last, partial global batch is handled explicitly:

* ``drop_last=True``: dropped on every rank (each epoch drops different samples, the permutation's tail);
* ``drop_last=False``: split as evenly as possible (sizes differ by at most one across ranks). Only
  if it holds fewer samples than ranks is it padded with the epoch's first samples, so no rank gets an
  empty batch; :func:`num_padded` says how many (0 in every other case).
"""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_order", "rank_batches", "num_batches", "num_padded", "sample_seed"]


def sample_seed(seed: int, epoch: int, index: int, view: int = 0) -> int:
    """Seed of one sample's augmentation: a pure function of (seed, epoch, sample index, view)."""
    return int(np.random.SeedSequence([seed, epoch, index, view, 0x5A17]).generate_state(1)[0])


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Global sample order of one epoch (identical on all ranks)."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch, 0x0DE5]).permutation(n).astype(np.int64)


def num_batches(n: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Batches per epoch on every rank."""
    per_step = batch_size * world_size
    return n // per_step if drop_last else -(-n // per_step)


def num_padded(n: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Samples repeated per epoch to give every rank at least one sample in the last batch."""
    rest = n % (batch_size * world_size)
    return 0 if drop_last or rest == 0 or rest >= world_size else world_size - rest


def rank_batches(n: int, *, batch_size: int, world_size: int, rank: int, seed: int, epoch: int,
                 shuffle: bool, drop_last: bool) -> list[np.ndarray]:
    """Sample indexes of each batch of ``rank`` in ``epoch`` (see the module docstring)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is out of range for world_size {world_size}")
    order = epoch_order(n, seed, epoch, shuffle)
    per_step = batch_size * world_size
    out = []
    for b in range(num_batches(n, batch_size, world_size, drop_last)):
        chunk = order[b * per_step:(b + 1) * per_step]
        if len(chunk) < world_size:  # fewer samples than ranks: pad from the epoch start
            chunk = np.concatenate([chunk, np.resize(order, world_size - len(chunk))])
        if len(chunk) == per_step:
            out.append(chunk[rank * batch_size:(rank + 1) * batch_size])
        else:
            out.append(np.array_split(chunk, world_size)[rank])
    return out
