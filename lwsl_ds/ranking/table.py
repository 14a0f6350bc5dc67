"""Score table: every arch of a space scored once per super-net, resumable, saved as compact JSON.

With a table, regret at any limit, the random-search baseline and band tau need no re-scoring
(``lwsl_ds.ranking.budget``). Two estimators fill it:

* ``top1`` (the paper's, :class:`lwsl_ds.search.Evaluator`): inherited weights, every BN recalibrated on
  the recalibration batches, held-out top-1. Scored here over a **prefix tree** instead of one sub-net at a
  time: after recalibration, layer i's output (in recalibration mode, with batch statistics, and in eval
  mode, with the recalibrated statistics) depends only on the choices of layers 0..i, so it is computed once
  per prefix and shared by every arch below it. The result equals ``Evaluator.score`` (tested); the cost
  is about a tenth of scoring 3969 NAS-Bench-Macro archs one by one (the first, widest layers run 3, 9,
  27 ... times instead of once per arch). Subtrees holding no wanted key (e.g. non-canonical
  NAS-Bench-Macro prefixes) are skipped.
* ``local_acc`` / ``local_loss`` (:mod:`lwsl_ds.search.local`): a (layer, choice) table of decoder
  accuracies / losses, combined along the arch; nearly free once the table is built.

The tree is walked in chunks (one per prefix of ``chunk_depth`` layers); after every chunk the scores so
far are written atomically to the JSON file, and a rerun skips finished chunks.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import nn

from ..common.atomic import write_json_atomic
from ..common.memory_format import memory_format

__all__ = ["PrefixScorer", "score_table", "load_table", "save_table"]


def _bn_recal_forward(module: nn.Module, recal: list[torch.Tensor], val: list[torch.Tensor],
                      fmt: torch.memory_format = torch.contiguous_format
                      ) -> tuple[nn.Module, list[torch.Tensor], list[torch.Tensor]]:
    """Copy ``module``, recalibrate its BNs on ``recal`` exactly as ``recalibrate_bn`` does, return the outputs.

    Returns (the recalibrated copy, its outputs on ``recal`` with batch statistics, its eval outputs on ``val``).
    """
    m = copy.deepcopy(module).to(memory_format=fmt)
    m.eval()
    if recal:  # no recalibration batches: keep the trained statistics, as the Evaluator does
        for b in m.modules():
            if isinstance(b, nn.modules.batchnorm._BatchNorm):
                b.reset_running_stats()
                b.momentum = None  # cumulative average: every batch weighs the same (as recalibrate_bn)
                b.train()
    with torch.no_grad():
        r_out = [m(x) for x in recal]
        m.eval()
        v_out = [m(x) for x in val]
    return m, r_out, v_out


class PrefixScorer:
    """Held-out top-1 of many archs of one super-net, BN recalibrated, computed over the tree of arch prefixes.

    ``recal`` are the recalibration images (list of batches), ``val`` the held-out (images, labels) batches:
    the same ones the Evaluator keeps in memory, so the scores equal its scores.
    """

    def __init__(self, supernet: nn.Module, recal: Sequence[torch.Tensor],
                 val: Sequence[tuple[torch.Tensor, torch.Tensor]], *, channels_last: bool = False) -> None:
        if not val:
            raise ValueError("PrefixScorer: no held-out batches to score on")
        self.net, self.space = supernet, supernet.space
        # channels_last: depthwise convs run ~2x faster on CPU (measured, docs/benchmarks.md); scores may then
        # differ from the Evaluator's in the last float bits (an argmax tie can flip), not in distribution.
        self.fmt = fmt = memory_format(channels_last)
        self.recal = [x.contiguous(memory_format=fmt) for x in recal]
        self.val = [x.contiguous(memory_format=fmt) for x, _ in val]
        self.labels = [y.reshape(-1).long() for _, y in val]
        self.total = sum(int(y.numel()) for y in self.labels)

    def _top1(self, head: nn.Module, r: list[torch.Tensor], v: list[torch.Tensor]) -> float:
        _, _, out = _bn_recal_forward(head, r, v, self.fmt)
        return sum(int((o.argmax(1) == y).sum()) for o, y in zip(out, self.labels)) / self.total

    def score_prefix(self, prefix: Sequence[int], wanted: Callable[[tuple[int, ...]], bool],
                     on_arch: Callable[[str, float], None]) -> None:
        """Score every arch starting with ``prefix`` for which ``wanted(prefix_so_far)`` holds at every depth."""
        _, r, v = _bn_recal_forward(self.net.stem, self.recal, self.val, self.fmt)
        for i, k in enumerate(prefix):
            _, r, v = _bn_recal_forward(self.net.choice(i, k), r, v, self.fmt)
        self._walk(tuple(prefix), r, v, wanted, on_arch)

    def _walk(self, prefix: tuple[int, ...], r: list[torch.Tensor], v: list[torch.Tensor],
              wanted: Callable[[tuple[int, ...]], bool], on_arch: Callable[[str, float], None]) -> None:
        i = len(prefix)
        if i == self.net.num_layers:
            on_arch("".join(map(str, prefix)), self._top1(self.net.head, r, v))
            return
        for k in self.space.layers[i].choices:
            p = (*prefix, k)
            if not wanted(p):
                continue
            _, r2, v2 = _bn_recal_forward(self.net.choice(i, k), r, v, self.fmt)
            self._walk(p, r2, v2, wanted, on_arch)


def save_table(path: str | Path, doc: dict) -> None:
    """Write a score-table JSON atomically, compact (no spaces: 3969 archs in ~100 KB)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(p, doc, indent=None, separators=(",", ":"))


def load_table(path: str | Path) -> dict:
    """A score-table JSON: ``{"meta": {...}, "scores": {key: score}, "done_chunks": [...]}``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"score table {p} not found")
    doc = json.loads(p.read_text())
    if not isinstance(doc.get("scores"), dict):
        raise ValueError(f"{p}: not a score table (no 'scores' mapping)")
    return doc


def _prefix_filter(keys: Iterable[str]) -> Callable[[tuple[int, ...]], bool]:
    prefixes = set()
    for key in keys:
        for d in range(1, len(key) + 1):
            prefixes.add(key[:d])
    return lambda p: "".join(map(str, p)) in prefixes


def score_table(scorer: PrefixScorer, keys: Sequence[str], path: str | Path, *, meta: Optional[dict] = None,
                chunk_depth: int = 2, progress: bool = False) -> dict:
    """Score ``keys`` with the prefix tree, chunk by chunk, saving ``path`` after every chunk; resumes a partial file.

    A file whose ``meta`` differs from ``meta`` (other super-net or scoring data) is an error, not silently mixed.
    """
    meta = dict(meta or {})
    p = Path(path)
    doc = {"meta": meta, "scores": {}, "done_chunks": [], "seconds": 0.0}
    if p.is_file():
        old = load_table(p)
        if old.get("meta") != meta:
            raise ValueError(f"{p}: saved for {old.get('meta')}, asked for {meta}; remove it or use another path")
        doc = old
    wanted = _prefix_filter(keys)
    space = scorer.space
    depth = max(0, min(chunk_depth, scorer.net.num_layers))
    chunks = [c for c in itertools.product(*(space.layers[i].choices for i in range(depth)))
              if all(wanted(c[:d + 1]) for d in range(depth))]
    for n, chunk in enumerate(chunks):
        name = "".join(map(str, chunk))
        if name in doc["done_chunks"]:
            continue
        t0 = time.perf_counter()
        scorer.score_prefix(chunk, wanted, lambda key, s: doc["scores"].__setitem__(key, s))
        doc["done_chunks"].append(name)
        doc["seconds"] = round(doc["seconds"] + time.perf_counter() - t0, 1)
        save_table(p, doc)
        if progress:
            print(f"[score table] chunk {n + 1}/{len(chunks)} ({name or 'all'}): {len(doc['scores'])} archs, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    missing = [k for k in keys if k not in doc["scores"]]
    if missing:
        raise RuntimeError(f"score table {p}: {len(missing)} wanted archs were not scored, e.g. {missing[0]}")
    return doc
