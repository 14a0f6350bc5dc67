"""Score an arch with inherited super-net weights: materialize, recalibrate BN, measure held-out top-1.

Why recalibrate: a super-net's BN running statistics average over every path that was trained, so they
do not match any single sub-net; SPOS re-estimates them per candidate on training batches. Here every
BN of the materialized sub-net is reset and re-estimated with ``momentum=None`` (an exact cumulative
average over the ``recal_batches`` batches), the rest of the network in eval mode (no dropout).

Scoring by objective:
  * ``ce``: top-1 of the sub-net's classifier on the held-out loader.
  * ``infonce``: the head projects into an embedding with no classes, so the score is a weighted kNN
    top-1 on the final pooled features (``head.features``: head conv + global pool, before the
    projection): bank = the training batches (the recalibration batches unless ``knn_bank_batches``),
    cosine similarity, the ``knn_k`` nearest neighbours vote with weight exp(cos / T) (InstDisc).

All scores are fractions in [0, 1], cached per arch key.
"""

from __future__ import annotations

import copy
import itertools
import logging
from typing import Any, Iterable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..common.memory_format import batch_to, memory_format
from ..objectives import Objective
from ..space.arch import Arch, parse_arch
from ..space.subnet import SubNet, materialize

__all__ = ["Evaluator", "recalibrate_bn", "knn_top1", "split_batch"]

log = logging.getLogger(__name__)


def split_batch(batch: Any, *, first_view: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images, labels) from a loader batch: a (images, labels) pair, or a dict with image/label keys.

    Labels are flattened to int64 (DALI yields (B, 1) int32). With two stacked views (2B images for B
    labels, the InfoNCE layout) only the first view is kept.
    """
    if isinstance(batch, dict):
        images = next((batch[k] for k in ("images", "image", "data", "x") if k in batch), None)
        labels = next((batch[k] for k in ("labels", "label", "y") if k in batch), None)
        if images is None:
            raise ValueError(f"batch dict has no image key (images/image/data/x): keys {sorted(batch)}")
    elif isinstance(batch, (list, tuple)) and len(batch) >= 2:
        images, labels = batch[0], batch[1]
    elif isinstance(batch, torch.Tensor):
        images, labels = batch, None
    else:
        raise ValueError(f"cannot read a batch of type {type(batch).__name__}: expected (images, labels)")
    if isinstance(images, (list, tuple)):  # a list of views
        images = images[0]
    if labels is not None:
        labels = torch.as_tensor(labels).reshape(-1).long()
        if first_view and images.shape[0] == 2 * labels.shape[0]:
            images = images[: labels.shape[0]]
    return images, labels


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str = "cpu") -> int:
    """Reset every BN's running statistics and re-estimate them as the exact average over ``batches``.

    Returns the number of batches forwarded. The model is left in eval mode with the BN momenta it had.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    n = 0
    try:
        with torch.no_grad():
            for images in batches:
                model(images.to(device, non_blocking=True))
                n += 1
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()
    return n


def knn_top1(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor,
             *, k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Weighted kNN top-1 (cosine similarity, vote weight exp(cos / T)) of ``query`` against ``bank``."""
    if bank.shape[0] == 0 or query.shape[0] == 0:
        raise ValueError("knn_top1: empty feature bank or query set")
    k = min(k, bank.shape[0])
    classes = int(max(bank_labels.max(), query_labels.max())) + 1
    bank = F.normalize(bank.float(), dim=1)
    correct = 0
    for start in range(0, query.shape[0], chunk):
        q = F.normalize(query[start:start + chunk].float(), dim=1)
        sim, idx = (q @ bank.t()).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == query_labels[start:start + chunk]).sum())
    return correct / query.shape[0]


class _Batches:
    """The first ``limit`` batches of a loader, identical on every read.

    They are read once and kept in memory when they fit in ``max_bytes``. Otherwise they are streamed
    again on every read; a loader with ``state_dict``/``load_state_dict`` (``lwsl_ds.data.Loader`` resumes
    mid-epoch) is first rewound to where it stood when the evaluator was built, so every candidate still
    sees the same batches (a plain shuffling DataLoader would not: give the evaluator a fixed order).
    """

    def __init__(self, loader: Iterable, limit: Optional[int], max_bytes: int, name: str) -> None:
        self.loader, self.limit, self.max_bytes, self.name = loader, limit, max_bytes, name
        resumable = callable(getattr(loader, "state_dict", None)) and callable(getattr(loader, "load_state_dict", None))
        self.start = copy.deepcopy(loader.state_dict()) if resumable else None
        self.kept: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
        self.warned = False

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        if self.kept is not None:
            return iter(self.kept)
        if self.limit == 0:
            return iter(())
        if self.start is not None:
            self.loader.load_state_dict(copy.deepcopy(self.start))
        source = itertools.islice(iter(self.loader), self.limit)
        kept: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        size = 0
        for batch in source:
            images, labels = split_batch(batch)
            kept.append((images.cpu(), None if labels is None else labels.cpu()))
            size += images.numel() * images.element_size()
            if size > self.max_bytes:  # too big to keep: stream the rest now, read again next time
                if not self.warned:
                    log.warning("%s batches exceed %d bytes: they are read again for every candidate",
                                self.name, self.max_bytes)
                    self.warned = True
                return itertools.chain(kept, map(split_batch, source))
        if self.limit is not None and len(kept) < self.limit:
            log.warning("%s loader gave %d batches, fewer than the %d asked for", self.name, len(kept), self.limit)
        self.kept = kept
        return iter(kept)


class Evaluator:
    """Scores archs of one super-net; reusable by ranking evaluation.

    ``train_loader`` / ``val_loader`` are any re-iterable sources of (images, labels) batches. The first
    ``recal_batches`` (and kNN bank) training batches and the first ``val_batches`` held-out batches are
    read once and kept in memory (each up to ``max_cached_bytes``), so every candidate is recalibrated and
    scored on the very same images, whatever the loader does between reads; a score therefore does not
    depend on which other archs were scored before (what makes an N-rank search equal a 1-rank one).
    Above the cap the batches are re-read per candidate (see :class:`_Batches`).

    Example::

        ev = Evaluator(supernet, train_loader, val_loader, recal_batches=20, device="cuda")
        acc = ev.score(parse_arch(space, "01210210"))    # top-1 in [0, 1]
    """

    def __init__(self, supernet: nn.Module, train_loader: Iterable, val_loader: Iterable, *,
                 recal_batches: int = 20, objective: str | Objective | None = None,
                 device: torch.device | str = "cpu", val_batches: Optional[int] = None, knn_k: int = 20,
                 knn_temperature: float = 0.07, knn_bank_batches: Optional[int] = None,
                 max_cached_bytes: int = 2 << 30, channels_last: bool = False) -> None:
        name = objective.name if isinstance(objective, Objective) else objective
        if name is None:
            name = getattr(getattr(supernet, "objective", None), "name", "ce")
        if name not in ("ce", "infonce"):
            raise ValueError(f"Evaluator: objective {name!r} is not supported; choose 'ce' or 'infonce'")
        if recal_batches < 0:
            raise ValueError(f"Evaluator: recal_batches must be >= 0, got {recal_batches}")
        bank = knn_bank_batches if knn_bank_batches is not None else recal_batches
        if name == "infonce" and bank < 1:
            raise ValueError("Evaluator: the infonce kNN score needs a feature bank: set recal_batches or "
                             "knn_bank_batches >= 1")
        self.supernet = supernet
        self.space = supernet.space
        self.train_loader, self.val_loader = train_loader, val_loader
        self.objective = name
        self.recal_batches = recal_batches
        self.bank_batches = bank if name == "infonce" else 0
        self.device = torch.device(device)
        self.val_batches = val_batches
        self.knn_k, self.knn_temperature = knn_k, knn_temperature
        self.max_cached_bytes = max_cached_bytes
        # channels_last (opt-in): NHWC sub-nets and images; depthwise convs run ~2x faster on CPU, scores equal
        # up to float rounding (an argmax tie may flip). Default off: scores stay bit-identical to before.
        self.fmt = memory_format(channels_last)
        self.cache: dict[str, float] = {}
        self._train = _Batches(train_loader, max(recal_batches, self.bank_batches), max_cached_bytes, "train")
        self._val_source = _Batches(val_loader, val_batches, max_cached_bytes, "val")

    # ---- data ------------------------------------------------------------------------------------
    def _train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The first max(recal, bank) training batches (from memory after the first read when they fit)."""
        return iter(self._train)

    # ---- scoring ---------------------------------------------------------------------------------
    def subnet(self, arch: Arch | str) -> SubNet:
        """The materialized sub-net of ``arch`` on the evaluator's device, BN recalibrated, in eval mode."""
        arch = parse_arch(self.space, arch)
        net = materialize(self.supernet, arch).to(self.device, memory_format=self.fmt)
        if self.recal_batches > 0:
            recalibrate_bn(net, (x.contiguous(memory_format=self.fmt)
                                 for x, _ in itertools.islice(self._train_batches(), self.recal_batches)), self.device)
        net.eval()
        return net

    def score(self, arch: Arch | str) -> float:
        """Held-out top-1 in [0, 1] of ``arch`` (cached per arch key)."""
        arch = parse_arch(self.space, arch)
        if arch.key in self.cache:
            return self.cache[arch.key]
        net = self.subnet(arch)
        with torch.no_grad():
            value = self._knn(net) if self.objective == "infonce" else self._top1(net)
        self.cache[arch.key] = value
        del net
        return value

    def _val(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self._val_source:
            if labels is None:
                raise ValueError("val loader batches carry no labels: top-1 needs (images, labels)")
            yield (batch_to(images, self.device, self.fmt),
                   labels.to(self.device, non_blocking=True))

    def _top1(self, net: nn.Module) -> float:
        correct = total = 0
        for images, labels in self._val():
            correct += int((net(images).argmax(1) == labels).sum())
            total += labels.numel()
        if total == 0:
            raise ValueError("val loader is empty: nothing to score on")
        return correct / total

    def _knn(self, net: SubNet) -> float:
        feats, labs = [], []
        for images, labels in itertools.islice(self._train_batches(), self.bank_batches):
            if labels is None:
                raise ValueError("train loader batches carry no labels: the kNN bank needs (images, labels)")
            feats.append(net.features(batch_to(images, self.device, self.fmt)))
            labs.append(labels.to(self.device))
        qf, ql = [], []
        for images, labels in self._val():
            qf.append(net.features(images))
            ql.append(labels)
        if not qf:
            raise ValueError("val loader is empty: nothing to score on")
        return knn_top1(torch.cat(feats), torch.cat(labs), torch.cat(qf), torch.cat(ql),
                        k=self.knn_k, temperature=self.knn_temperature)
