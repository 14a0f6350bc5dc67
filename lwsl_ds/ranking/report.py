"""Score a list of archs, compare with ground truth, and write the ranking report (JSON + PNG).

Scoring is a callable ``score(arch) -> float`` (the search evaluator: BN recalibration + held-out top-1),
so this module does not depend on how super-nets are trained or loaded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..common.atomic import write_json_atomic
from ..space import Arch
from .metrics import Estimate, bootstrap, correlations, kendall_tau, spearman_rho
from .truth import GroundTruth

__all__ = ["RankingReport", "score_archs", "compare", "write_report", "floor_taus"]


@dataclass
class RankingReport:
    """Per-arch scores and truths, correlation estimates, and the FLOPs / params floors on the same archs."""

    rows: list[dict]
    metrics: dict[str, Estimate]
    floors: dict[str, dict[str, Estimate]]
    meta: dict = field(default_factory=dict)
    band_tau: Optional[dict] = None  # flops_band_tau (lwsl_ds.ranking.budget): within-budget ranking

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"meta": self.meta, "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
                "floors": {name: {k: v.as_dict() for k, v in m.items()} for name, m in self.floors.items()},
                **({"flops_band_tau": self.band_tau} if self.band_tau is not None else {}),
                "rows": self.rows}

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"archs ranked: {len(self.rows)}   ground truth: {self.meta.get('truth', '?')}"]
        lines += [f"  {k:<13} {v}" for k, v in self.metrics.items()]
        for name, m in self.floors.items():
            lines.append(f"  floor: {name} as predictor  kendall_tau {m['kendall_tau']}")
        if self.band_tau is not None:
            b, f = self.band_tau["supernet"]["kendall_tau"], self.band_tau["flops_floor"]["kendall_tau"]
            lines.append(f"  band tau ({self.band_tau['bands']} FLOPs bands) {Estimate(**b)}   "
                         f"FLOPs floor {Estimate(**f)}")
        return "\n".join(lines)


def score_archs(archs: Sequence[Arch], score: Callable[[Arch], float], *, progress: bool = False,
                desc: str = "scoring archs") -> list[float]:
    """Call ``score`` on every arch, with an optional tqdm progress bar; non-finite scores are errors."""
    it: Sequence[Arch] = archs
    if progress:
        from tqdm import tqdm

        it = tqdm(archs, desc=desc, unit="arch", dynamic_ncols=True)
    out = []
    for a in it:
        s = float(score(a))
        if not math.isfinite(s):
            raise ValueError(f"arch {a.key}: score {s} is not finite")
        out.append(s)
    return out


def floor_taus(keys: Sequence[str], truth: GroundTruth, *, flops: Optional[dict[str, float]] = None,
               resamples: int = 1000, seed: int = 0) -> dict[str, dict[str, Estimate]]:
    """Kendall tau / Spearman rho of FLOPs (and params) as predictors of the truth on the same archs."""
    acc = truth.lookup(list(keys))
    out: dict[str, dict[str, Estimate]] = {}
    tables = {"flops": flops if flops is not None else truth.flops, "params": truth.params}
    for name, table in tables.items():
        if table is None or any(k not in table for k in keys):
            continue
        pred = [table[k] for k in keys]
        out[name] = {"kendall_tau": bootstrap(kendall_tau, pred, acc, resamples=resamples, seed=seed),
                     "spearman_rho": bootstrap(spearman_rho, pred, acc, resamples=resamples, seed=seed)}
    return out


def compare(archs: Sequence[Arch], scores: Sequence[float], truth: GroundTruth, *, top_k: Sequence[int] = (),
            resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
            flops: Optional[dict[str, float]] = None, meta: Optional[dict] = None,
            bands: Optional[int] = None) -> RankingReport:
    """Correlations of ``scores`` with the truth of ``archs``, the floors on the same archs, band tau when ``bands``."""
    if len(archs) != len(scores):
        raise ValueError(f"{len(archs)} archs but {len(scores)} scores")
    keys = [a.key for a in archs]
    acc = truth.lookup(keys)
    metrics = correlations(scores, acc, top_k=top_k, resamples=resamples, confidence=confidence, seed=seed)
    floors = floor_taus(keys, truth, flops=flops, resamples=resamples, seed=seed)
    fl = flops if flops is not None else (truth.flops or {})
    rows = [{"arch": k, "score": s, "truth": t, **({"flops": fl[k]} if k in fl else {})}
            for k, s, t in zip(keys, scores, acc)]
    info = {"truth": truth.source, **truth.notes, "num_archs": len(keys), "resamples": resamples,
            "confidence": confidence, "seed": seed, **(meta or {})}
    band = None
    if bands and all(k in fl for k in keys):
        from .budget import flops_band_tau

        band = flops_band_tau(keys, dict(zip(keys, scores)), dict(zip(keys, acc)), fl, bands=bands,
                              resamples=resamples, confidence=confidence, seed=seed)
    return RankingReport(rows, metrics, floors, info, band)


def write_report(report: RankingReport, out_dir: str | Path, *, title: str = "") -> dict[str, Path]:
    """Write ``ranking.json`` and ``ranking_scatter.png`` into ``out_dir`` (JSON written atomically)."""
    from .plots import scatter_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = report.as_dict()
    doc["meta"].setdefault("written", time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json_atomic(out / "ranking.json", doc, allow_nan=True)
    tau = report.metrics["kendall_tau"]
    head = f"{title}  " if title else ""
    floor = report.floors.get("flops")
    floor_txt = f", FLOPs floor {floor['kendall_tau'].value:.3f}" if floor else ""
    png = scatter_png(out / "ranking_scatter.png", [r["score"] for r in report.rows],
                      [r["truth"] for r in report.rows],
                      title=f"{head}Kendall tau {tau}{floor_txt} (n={len(report.rows)})",
                      floor=[r["flops"] for r in report.rows] if floor and all("flops" in r for r in report.rows)
                      else None)
    return {"json": out / "ranking.json", "scatter": png}
