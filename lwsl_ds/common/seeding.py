"""Seeds and RNG state: the one seed rule of every phase, one call to seed everything, capture/restore for exact resume.

The rule: a phase's seed is :func:`run_seed` of the experiment's ``seed`` and the phase's own ``seed``
(``train.seed``, ``retrain.seed``); every rank seeds with it, so initial weights are identical on every
rank. A stream that must differ per rank (retraining's dropout) is seeded with :func:`rank_seed`.
"""


from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["run_seed", "rank_seed", "seed_everything", "capture_rng_state", "restore_rng_state"]


def run_seed(experiment_seed: int, phase_seed: int) -> int:
    """The seed of one phase (super-net training, retraining) from the experiment's and the phase's seeds."""
    return experiment_seed * 1000 + phase_seed


def rank_seed(seed: int, rank: int) -> int:
    """A per-rank seed derived from a phase seed: differs per rank, the same on every rerun."""
    return seed + 7919 * (rank + 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors/lists (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
        "python_gauss": random.getstate()[2],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    if isinstance(py, tuple):  # retraining checkpoints of earlier versions: random.getstate() as is, no NumPy
        random.setstate(py)
    else:
        random.setstate((py[-1], tuple(py[:-1]), state["python_gauss"]))
    n = state.get("numpy")
    if n is not None:
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if isinstance(state["cuda"], torch.Tensor):  # earlier retraining checkpoints: the current device only
            torch.cuda.set_rng_state(state["cuda"])
        else:
            torch.cuda.set_rng_state_all(state["cuda"])
