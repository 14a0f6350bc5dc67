"""Metrics of search under a cost limit: ranking inside FLOPs bands, and regret against the best arch.

A search compares archs of *similar* cost, where "bigger is better" says little; global Kendall tau mostly
rewards knowing that bigger nets are better. So:

* **band tau** (``flops_band_tau``): sort the archs by FLOPs, cut them into ``bands`` equal-count bands
  (``numpy.array_split``: the first bands take one arch more when the count does not divide), compute
  Kendall tau and Spearman rho inside each band and average over the bands where they are defined (a band
  of one arch, or a constant score, has no correlation and is left out of the average). The interval is a
  stratified bootstrap: archs are resampled with replacement inside each band. The FLOPs floor is the same
  statistic with FLOPs as the predictor (near 0 by construction: inside a band FLOPs barely vary).
* **regret** at a limit: ground-truth accuracy of the best arch with FLOPs <= limit minus that of the pick.
  Ties at the top of the pick's criterion are not broken in anyone's favour: the pick's accuracy is the
  mean over the tied archs (what a uniformly random tie-break gives on average).
* **FLOPs baseline**: the pick is the largest arch under the limit (what a user does without a super-net).
* **random search**: ``evaluations`` archs drawn without replacement from those under the limit, the best
  score picked; mean and standard deviation of the regret over ``seeds`` draws.

All inputs are plain dicts keyed by arch key, so a score table (every arch scored once) gives every limit
and every baseline without re-scoring. Cost: band tau with 1000 resamples on 50 archs takes about 1 s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from .metrics import Estimate

__all__ = ["band_split", "band_correlations", "flops_band_tau", "Pick", "pick_best", "best_under",
           "regret_of", "flops_baseline", "table_pick", "random_search_regret", "percentile_limits", "regret_table"]


def band_split(keys: Sequence[str], flops: Mapping[str, float], bands: int) -> list[list[str]]:
    """``keys`` sorted by (FLOPs, key) and cut into ``bands`` equal-count bands (fewer when archs run out)."""
    if bands < 1:
        raise ValueError(f"bands must be >= 1, got {bands}")
    missing = [k for k in keys if k not in flops]
    if missing:
        raise KeyError(f"{len(missing)} arch(s) have no FLOPs, e.g. {missing[0]!r}")
    order = sorted(keys, key=lambda k: (flops[k], k))
    return [list(part) for part in np.array_split(np.array(order, dtype=object), min(bands, len(order)))
            if len(part)]


def _band_stats(pred: np.ndarray, truth: np.ndarray, groups: list[np.ndarray]) -> tuple[float, float]:
    """(mean Kendall tau, mean Spearman rho) over the groups where each is defined (NaN when none is)."""
    from scipy.stats import kendalltau, spearmanr

    taus, rhos = [], []
    for g in groups:
        p, t = pred[g], truth[g]
        if g.size < 2 or np.all(p == p[0]) or np.all(t == t[0]):
            continue  # no correlation of one arch or of a constant: leave the band out
        taus.append(float(kendalltau(p, t).statistic))
        rhos.append(float(spearmanr(p, t).statistic))
    return (float(np.mean(taus)) if taus else float("nan"), float(np.mean(rhos)) if rhos else float("nan"))


def band_correlations(keys: Sequence[str], pred: Mapping[str, float], truth: Mapping[str, float],
                      flops: Mapping[str, float], *, bands: int = 5, resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> dict:
    """Kendall tau / Spearman rho inside FLOPs bands, averaged over bands, with a stratified bootstrap interval.

    Returns ``{"kendall_tau": Estimate, "spearman_rho": Estimate, "bands": [{"n", "flops_lo", "flops_hi",
    "kendall_tau", "spearman_rho"}, ...]}``.
    """
    from scipy.stats import kendalltau, spearmanr

    parts = band_split(keys, flops, bands)
    order = [k for part in parts for k in part]
    p = np.array([pred[k] for k in order], dtype=float)
    t = np.array([truth[k] for k in order], dtype=float)
    groups, start = [], 0
    for part in parts:
        groups.append(np.arange(start, start + len(part)))
        start += len(part)
    tau, rho = _band_stats(p, t, groups)
    per_band = []
    for part, g in zip(parts, groups):
        defined = g.size >= 2 and not np.all(p[g] == p[g][0]) and not np.all(t[g] == t[g][0])
        per_band.append({"n": int(g.size), "flops_lo": float(flops[part[0]]), "flops_hi": float(flops[part[-1]]),
                         "kendall_tau": float(kendalltau(p[g], t[g]).statistic) if defined else float("nan"),
                         "spearman_rho": float(spearmanr(p[g], t[g]).statistic) if defined else float("nan")})
    lo_t = hi_t = lo_r = hi_r = float("nan")
    if resamples > 0:
        if not 0 < confidence < 1:
            raise ValueError(f"confidence {confidence} must be in (0, 1)")
        rng = np.random.default_rng(seed)
        vals = np.array([_band_stats(p, t, [rng.choice(g, size=g.size, replace=True) for g in groups])
                         for _ in range(resamples)], dtype=float)
        alpha = (1 - confidence) / 2
        for col, name in ((0, "t"), (1, "r")):
            v = vals[:, col][np.isfinite(vals[:, col])]
            if v.size >= resamples / 2:
                lo, hi = np.quantile(v, [alpha, 1 - alpha])
                if name == "t":
                    lo_t, hi_t = float(lo), float(hi)
                else:
                    lo_r, hi_r = float(lo), float(hi)
    return {"kendall_tau": Estimate(tau, lo_t, hi_t), "spearman_rho": Estimate(rho, lo_r, hi_r), "bands": per_band}


def _plain(res: dict) -> dict:
    return {"kendall_tau": res["kendall_tau"].as_dict(), "spearman_rho": res["spearman_rho"].as_dict(),
            "bands": res["bands"]}


def flops_band_tau(keys: Sequence[str], scores: Mapping[str, float], truth: Mapping[str, float],
                   flops: Mapping[str, float], *, bands: int = 5, resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> dict:
    """The ``flops_band_tau`` entry of ranking.json: the scores' band correlations and the FLOPs floor's (plain dicts)."""
    kw = dict(bands=bands, resamples=resamples, confidence=confidence, seed=seed)
    return {"bands": min(bands, len(keys)), "supernet": _plain(band_correlations(keys, scores, truth, flops, **kw)),
            "flops_floor": _plain(band_correlations(keys, flops, truth, flops, **kw))}


@dataclass(frozen=True)
class Pick:
    """What one way of choosing an arch under a limit gets: the arch(s) tied at the top and their accuracy."""

    archs: tuple[str, ...]    # archs tied at the top of the criterion (usually one)
    accuracy: float           # mean ground truth over them
    regret: float             # best accuracy under the limit minus ``accuracy``

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return {**asdict(self), "archs": list(self.archs)}


def _under(keys: Sequence[str], flops: Mapping[str, float], limit: float) -> list[str]:
    under = [k for k in keys if flops[k] <= limit]
    if not under:
        raise ValueError(f"no arch has FLOPs <= {limit:g} (smallest {min(flops[k] for k in keys):g})")
    return under


def pick_best(keys: Sequence[str], criterion: Mapping[str, float]) -> tuple[str, ...]:
    """The keys tied at the maximum of ``criterion`` (exact ties), in key order."""
    if not keys:
        raise ValueError("pick_best: no archs to pick from")
    top = max(criterion[k] for k in keys)
    return tuple(sorted(k for k in keys if criterion[k] == top))


def best_under(keys: Sequence[str], truth: Mapping[str, float], flops: Mapping[str, float], limit: float) -> float:
    """The best ground-truth accuracy among archs with FLOPs <= ``limit``."""
    return max(truth[k] for k in _under(keys, flops, limit))


def regret_of(picked: Sequence[str], keys: Sequence[str], truth: Mapping[str, float], flops: Mapping[str, float],
              limit: float) -> Pick:
    """Regret of picking (uniformly among) ``picked``, against the best arch of ``keys`` under ``limit``."""
    over = [k for k in picked if flops[k] > limit]
    if over:
        raise ValueError(f"picked arch {over[0]} has FLOPs {flops[over[0]]:g} above the limit {limit:g}")
    acc = float(np.mean([truth[k] for k in picked]))
    return Pick(tuple(picked), acc, best_under(keys, truth, flops, limit) - acc)


def flops_baseline(keys: Sequence[str], truth: Mapping[str, float], flops: Mapping[str, float], limit: float) -> Pick:
    """The largest arch(s) under the limit and their regret."""
    under = _under(keys, flops, limit)
    return regret_of(pick_best(under, flops), keys, truth, flops, limit)


def table_pick(keys: Sequence[str], scores: Mapping[str, float], truth: Mapping[str, float],
               flops: Mapping[str, float], limit: float) -> Pick:
    """The best-scoring arch(s) under the limit (exhaustive search of a score table) and their regret."""
    under = _under(keys, flops, limit)
    return regret_of(pick_best(under, scores), keys, truth, flops, limit)


def random_search_regret(keys: Sequence[str], scores: Mapping[str, float], truth: Mapping[str, float],
                         flops: Mapping[str, float], limit: float, *, evaluations: int,
                         seeds: Sequence[int] = range(20)) -> dict:
    """Regret of random search with ``evaluations`` draws (without replacement) under the limit, over seeds."""
    if evaluations < 1:
        raise ValueError(f"random search needs >= 1 evaluation, got {evaluations}")
    under = sorted(_under(keys, flops, limit))
    regrets = []
    for s in seeds:
        rng = np.random.default_rng(s)
        drawn = [under[i] for i in rng.choice(len(under), size=min(evaluations, len(under)), replace=False)]
        regrets.append(regret_of(pick_best(drawn, scores), keys, truth, flops, limit).regret)
    r = np.array(regrets, dtype=float)
    return {"evaluations": int(evaluations), "seeds": len(r), "mean": float(r.mean()),
            "std": float(r.std(ddof=1)) if r.size > 1 else 0.0, "min": float(r.min()), "max": float(r.max())}


def percentile_limits(keys: Sequence[str], flops: Mapping[str, float],
                      percentiles: Sequence[float] = (25, 50, 75)) -> dict[str, float]:
    """FLOPs limits at the given percentiles of the archs' FLOPs (``{"p25": ..., ...}``)."""
    v = np.array([flops[k] for k in keys], dtype=float)
    return {f"p{p:g}": float(np.percentile(v, p)) for p in percentiles}


def regret_table(keys: Sequence[str], scores: Mapping[str, float], truth: Mapping[str, float],
                 flops: Mapping[str, float], limits: Mapping[str, float], *, evaluations: int,
                 seeds: Sequence[int] = range(20), searched: Optional[Mapping[str, Sequence[str]]] = None) -> dict:
    """Per limit: best accuracy, the table's pick, the FLOPs baseline, random search and (given) searched picks."""
    out = {}
    for name, limit in limits.items():
        row = {"limit": float(limit), "archs_under": len(_under(keys, flops, limit)),
               "best_accuracy": best_under(keys, truth, flops, limit),
               "table": table_pick(keys, scores, truth, flops, limit).as_dict(),
               "flops_baseline": flops_baseline(keys, truth, flops, limit).as_dict(),
               "random_search": random_search_regret(keys, scores, truth, flops, limit, evaluations=evaluations,
                                                     seeds=seeds)}
        if searched and name in searched:
            row["search"] = regret_of(list(searched[name]), keys, truth, flops, limit).as_dict()
        out[name] = row
    return out

