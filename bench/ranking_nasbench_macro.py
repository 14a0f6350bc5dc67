"""Ranking benchmark on NAS-Bench-Macro: spos vs greedy vs non_greedy super-nets on CIFAR-10, same budget.

For each unit (strategy x super-net seed): train a ``nasbench_macro`` super-net with ``launchers/train.py``
(the real training code, DeepSpeed backend by default), checkpointing during training; then

* Fig. 1 of the paper: mean held-out top-1 of a fixed set of sub-nets (BN recalibrated) at every checkpoint,
  against training time (summed step times from the run's metrics.jsonl, evaluation excluded);
* Kendall tau / Spearman rho / top-k precision / band tau of the final super-net's scores on 50 archs against
  the NAS-Bench-Macro ground truth (3969 canonical keys), beside the FLOPs and params floors on the same archs;
* representation shift of the first searchable layer;
* score tables of all 3969 canonical archs (estimators top1, local_acc, local_loss; lwsl_ds.ranking.table),
  band tau over them, and at the 25/50/75th MACs percentiles the regret of the evolutionary search
  (launchers/search.py over the table), the table's best, random search and the FLOPs baseline.

Launch lines::

    .venv/bin/python bench/ranking_nasbench_macro.py --budget smoke      # minutes, mechanics only
    .venv/bin/python bench/ranking_nasbench_macro.py --budget cpu --seeds 0 1 2
    .venv/bin/python bench/ranking_nasbench_macro.py --budget cpu-long --strategies non_greedy spos
    .venv/bin/python bench/ranking_nasbench_macro.py --budget full       # one GPU
    nice -n 19 nohup bench/ranking_nasbench_macro_all.sh > runs/bench_all.log 2>&1 &   # everything, one core

Re-running the same command resumes: finished trainings, evaluated checkpoints, score-table chunks and searches
are reused, and units whose compact results are in ``--committed`` (default
``docs/bench/ranking_nasbench_macro/<budget>/<unit>/``, committed to git) are not run again. Results go to
``--out`` (default ``runs/bench/ranking_nasbench_macro_<budget>``): ``results.json``, ``results.md``,
``fig1_accuracy_vs_time.png`` (and ``_vs_steps.png``: time depends on machine load) and per unit
``<unit>/rank/`` (scatter, shift heatmap), ``<unit>/tables/``, ``<unit>/search/``. One thread (the bench and the launchers it starts): the machine is shared.
CIFAR-10 here is the lossy-JPEG copy: compare ranks, not absolute accuracies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STRATEGIES = ("spos", "greedy", "non_greedy")


@dataclass(frozen=True)
class Budget:
    """Everything a budget fixes; identical for the three strategies (equal budget = equal data passes)."""

    train_per_class: Optional[int]   # training images per class (None = all 5000)
    val_per_class: Optional[int]     # CIFAR-10 test images per class used for scoring (None = all 1000)
    epochs: int
    batch: int                       # micro-batch per rank (the ds_config's train_micro_batch_size_per_gpu)
    checkpoint_every: int            # steps between checkpoints (0: every epoch end only)
    num_archs: int                   # archs ranked against the ground truth
    fig1_archs: int                  # fixed sub-nets of the accuracy-vs-time curves (first of the ranked ones)
    eval_batch: int
    recal_batches: int
    shift_images: int
    bootstrap: int
    lr: float = 0.01                 # paper recipe: Adam (L2 wd 4e-5), lr 0.01, cosine to 0
    # Score table (every canonical arch, lwsl_ds.ranking.table): the paper's estimator on fewer images than
    # the 50-arch ranking, so that 3969 archs fit (measured cost in docs/benchmarks.md).
    table_recal_batches: int = 2     # recalibration batches of eval_batch images
    table_val_batches: int = 5       # held-out batches of eval_batch images (shuffled test split)
    bands: int = 10                  # FLOPs bands of the band tau
    table_archs: Optional[int] = None  # canonical archs in the table (None = all 3969; smoke: a sample)
    search_population: int = 20      # evolutionary search per limit: population x generations evaluations
    search_generations: int = 10


BUDGETS = {
    "smoke": Budget(train_per_class=20, val_per_class=20, epochs=2, batch=32, checkpoint_every=3, num_archs=10,
                    fig1_archs=4, eval_batch=50, recal_batches=2, shift_images=100, bootstrap=200,
                    table_recal_batches=1, table_val_batches=1, bands=3, table_archs=40, search_population=6,
                    search_generations=2),
    "cpu": Budget(train_per_class=500, val_per_class=100, epochs=3, batch=64, checkpoint_every=39, num_archs=50,
                  fig1_archs=8, eval_batch=100, recal_batches=4, shift_images=1000, bootstrap=1000),
    # cpu-long: sized from the cpu budget's measured step costs (2.3 s/step non_greedy on 2 cores, about
    # 2x that on the one niced core the bench may use): 1564 steps ~ 1.5-2 h of training + ~1 h of tables.
    "cpu-long": Budget(train_per_class=2500, val_per_class=100, epochs=4, batch=64, checkpoint_every=195,
                       num_archs=50, fig1_archs=8, eval_batch=100, recal_batches=4, shift_images=1000,
                       bootstrap=1000),
    "full": Budget(train_per_class=None, val_per_class=None, epochs=50, batch=256, checkpoint_every=0,
                   num_archs=100, fig1_archs=10, eval_batch=500, recal_batches=10, shift_images=1000, bootstrap=1000),
}


def unit_name(strategy: str, seed: int) -> str:
    """Run folder of one (strategy, seed): the strategy for seed 0 (as before seeds existed), else <strategy>_s<seed>."""
    return strategy if seed == 0 else f"{strategy}_s{seed}"


def experiment(budget: Budget, strategy: str, out: Path, seed: int) -> dict:
    """The experiment config (plain dict) of one strategy's run."""
    return {
        "name": unit_name(strategy, seed), "seed": seed, "run_root": str(out),
        "space": {"name": "nasbench_macro"},
        "data": {"source": "cifar10", "resolution": 32, "backend": "torchvision", "num_workers": 0,
                 "max_per_class": budget.train_per_class, "val_max_per_class": budget.val_per_class},
        "train": {"strategy": strategy, "objective": "ce", "epochs": budget.epochs, "layer_groups": "single",
                  "checkpoint_every": budget.checkpoint_every, "keep_checkpoints": 100000, "log_every": 1,
                  "progress": False, "threads": 1},
        "search": {"recal_batches": budget.recal_batches, "batch_size": budget.eval_batch, "val_batches": None},
        # rank.seed 0 for every super-net seed: the same 50 archs everywhere.
        "rank": {"num_archs": budget.num_archs, "top_k": [k for k in (5, 10) if k <= budget.num_archs // 2],
                 "bootstrap": budget.bootstrap, "shift_images": budget.shift_images, "seed": 0,
                 "bands": min(5, budget.num_archs // 2)},
    }


def ds_config(budget: Budget) -> dict:
    """DeepSpeed config: the paper's optimizer, plain ZeRO 0, no clipping."""
    return {"train_micro_batch_size_per_gpu": budget.batch, "gradient_clipping": 0.0,
            "optimizer": {"type": "Adam", "params": {"lr": budget.lr, "betas": [0.9, 0.999], "eps": 1e-8,
                                                      "weight_decay": 4e-5, "adam_w_mode": False}},
            "scheduler": {"type": "Cosine", "params": {"total_num_steps": "auto", "warmup_num_steps": 0,
                                                       "min_ratio": 0.0}},
            "zero_optimization": {"stage": 0}, "steps_per_print": 10 ** 9, "wall_clock_breakdown": False}


def train(strategy: str, budget: Budget, out: Path, seed: int, backend: str) -> Path:
    """Run launchers/train.py for one strategy (skipped when its supernet.pt exists); returns the run dir."""
    import yaml

    name = unit_name(strategy, seed)
    run = out / name
    if (run / "supernet.pt").is_file():
        print(f"[{name}] trained already: {run}", flush=True)
        return run
    cfg_dir = out / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    cfg_path, ds_path = cfg_dir / f"{name}.yaml", cfg_dir / "ds_config.json"
    cfg_path.write_text(yaml.safe_dump(experiment(budget, strategy, out, seed), sort_keys=False))
    ds_path.write_text(json.dumps(ds_config(budget), indent=1))
    cmd = [sys.executable, str(REPO / "launchers" / "train.py"), "--ds_config", str(ds_path), "--config",
           str(cfg_path), "--backend", backend, "--run_dir", str(run)]
    if (run / "checkpoints").is_dir():
        cmd.append("--resume")
    print(f"[{name}] training: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    print(f"[{name}] trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return run


def step_times(run: Path) -> dict[int, float]:
    """Cumulative training seconds at each logged step, from metrics.jsonl (log_every 1: one line per step).

    Uses the loop's own ``train_seconds`` (step time, checkpoints excluded) where logged; older runs without
    it are rebuilt from images/s.
    """
    total, last, out = 0.0, 0, {0: 0.0}
    batch = json.loads((run / "ds_config.json").read_text())["train_micro_batch_size_per_gpu"]
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "step" in rec and "train_seconds" in rec:
            out[rec["step"]] = float(rec["train_seconds"])
            continue
        if "step" not in rec or not rec.get("images_per_s"):
            continue
        steps = rec["step"] - last
        total += steps * batch / rec["images_per_s"]
        last = rec["step"]
        out[last] = total
    return out


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, supernet.pt) of every kept checkpoint, in step order."""
    found = []
    for d in sorted((run / "checkpoints").glob("step*")):
        if (d / "manifest.json").is_file() and (d / "supernet.pt").is_file():
            found.append((int(json.loads((d / "manifest.json").read_text())["step"]), d / "supernet.pt"))
    return found


def fig1_points(run: Path, cfg, archs, cache: dict) -> list[dict]:
    """Mean held-out top-1 of ``archs`` at every checkpoint (cached by checkpoint step in ``cache``)."""
    from lwsl_ds.ranking.pipeline import build_evaluator
    from lwsl_ds.search import load_supernet_from_run

    times = step_times(run)
    pts = []
    for step, weights in checkpoints(run):
        key = str(step)
        if key not in cache:
            net = load_supernet_from_run(weights, config=cfg)
            ev, _ = build_evaluator(net, cfg)
            accs = [ev.score(a) for a in archs]
            cache[key] = {"step": step, "train_s": times.get(step), "mean_top1": sum(accs) / len(accs),
                          "top1": dict(zip([a.key for a in archs], accs))}
        pts.append(cache[key])
    return pts


def evaluate(strategy: str, run: Path, budget: Budget, state: dict, seed: int) -> dict:  # strategy = unit name
    """Fig. 1 points, ranking against NAS-Bench-Macro and representation shift of one trained run."""
    from lwsl_ds.config import load_experiment
    from lwsl_ds.ranking.pipeline import build_evaluator, resolve_truth, run_ranking, run_shift, select_archs
    from lwsl_ds.search import load_supernet_from_run
    from lwsl_ds.space import load_space

    # channels_last: ~2x faster scoring on CPU (bench/profile_nasbench_macro.py), equal up to float rounding;
    # an override here, not in the training config, so that resuming a training sees the config it started with
    cfg = load_experiment(run / "config.yaml", ["search.channels_last=true"])
    space = load_space("nasbench_macro")
    truth = resolve_truth(cfg.rank, space)
    archs = select_archs(cfg.rank, space, truth)  # same seed, same pool: the same archs for every strategy
    res = state.setdefault(strategy, {})
    t0 = time.perf_counter()
    res["fig1"] = fig1_points(run, cfg, archs[: budget.fig1_archs], res.setdefault("fig1_cache", {}))
    print(f"[{strategy}] Fig. 1: {len(res['fig1'])} checkpoints in {time.perf_counter() - t0:.0f} s", flush=True)
    if "ranking" not in res:
        net = load_supernet_from_run(run, config=cfg)
        ev, val = build_evaluator(net, cfg)
        t0 = time.perf_counter()
        rep = run_ranking(space, cfg.rank, ev.score, run / "rank", truth=truth, archs=archs, progress=True,
                          meta={"strategy": strategy}, title=strategy)
        shift = run_shift(net, cfg.rank, val, run / "rank", title=strategy)
        res["ranking"] = {k: v.as_dict() for k, v in rep.metrics.items()}
        res["band_tau"] = rep.band_tau
        res["floors"] = {n: {k: v.as_dict() for k, v in m.items()} for n, m in rep.floors.items()}
        res["shift_off_diagonal"] = shift.off_diagonal_mean
        res["shift_matrix"] = shift.matrix
        res["scores"] = {r["arch"]: r["score"] for r in rep.rows}
        res["eval_s"] = time.perf_counter() - t0
        times = step_times(run)
        res["train_s"] = times[max(times)]
        res["steps"] = max(times)
        print(f"[{strategy}]\n{rep.summary()}\n  shift off-diagonal mean {shift.off_diagonal_mean:.4f}", flush=True)
    return res


ESTIMATORS = ("top1", "local_acc", "local_loss")
COMMITTED = REPO / "docs" / "bench" / "ranking_nasbench_macro"   # compact results, committed, read back


def score_tables(name: str, run: Path, budget: Budget, cfg, keys: list[str], all_keys: list[str],
                 estimators: tuple[str, ...] = ESTIMATORS) -> dict[str, dict[str, float]]:
    """``keys`` scored by top1 over the prefix tree (resumable, chunked JSON); ``all_keys`` by the local estimators."""
    import itertools

    import torch

    from lwsl_ds.ranking.table import PrefixScorer, load_table, save_table, score_table
    from lwsl_ds.search import load_supernet_from_run
    from lwsl_ds.search.evaluator import split_batch
    from lwsl_ds.search.local import LocalDecoderEvaluator
    from lwsl_ds.search.scoring import scoring_loaders

    tdir = run / "tables"
    out: dict[str, dict[str, float]] = {}
    net = load_supernet_from_run(run, config=cfg).eval()
    train, val = scoring_loaders(cfg)
    base_meta = {"supernet": str(run / "supernet.pt"), "keys": "nasbench_macro_canonical",
                 "batch": budget.eval_batch, "seed": cfg.seed}
    meta = {**base_meta, "estimator": "top1", "recal_batches": budget.table_recal_batches,
            "val_batches": budget.table_val_batches, "channels_last": True}
    path = tdir / "top1.json"
    done = "top1" not in estimators or (path.is_file() and len(load_table(path)["scores"]) == len(keys))
    if not done:
        recal = [split_batch(b)[0] for b in itertools.islice(iter(train), budget.table_recal_batches)]
        held = [split_batch(b) for b in itertools.islice(iter(val), budget.table_val_batches)]
        t0 = time.perf_counter()
        score_table(PrefixScorer(net, recal, held, channels_last=True), keys, path, meta=meta, progress=True)
        print(f"[{name}] top1 score table: {len(keys)} archs in {time.perf_counter() - t0:.0f} s", flush=True)
    if "top1" in estimators:
        out["top1"] = load_table(path)["scores"]
    for est in [e for e in estimators if e != "top1"]:
        path = tdir / f"{est}.json"
        if not path.is_file():
            ev = LocalDecoderEvaluator(net, val, kind=est, seed=cfg.seed)
            t0 = time.perf_counter()
            table = ev.table()
            scores = {k: ev.score(k) for k in all_keys}  # a lookup each: the whole space costs nothing
            save_table(path, {"meta": {**base_meta, "estimator": est, "val_batches": None}, "scores": scores,
                              "layer_choice": [{str(k): v for k, v in row.items()} for row in table],
                              "seconds": round(time.perf_counter() - t0, 1)})
        out[est] = load_table(path)["scores"]
    del net
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return out


def run_searches(name: str, run: Path, budget: Budget, limits: dict[str, float], seed: int,
                 complete: tuple[str, ...]) -> dict:
    """launchers/search.py at every limit, for each estimator in ``complete`` (tables covering the whole space)."""
    found: dict[str, dict[str, dict]] = {}
    pop, gens = budget.search_population, budget.search_generations
    for est in complete:
        for lname, limit in limits.items():
            out = run / "search" / f"{est}_{lname}"
            if not (out / "best_arch.yaml").is_file():
                cmd = [sys.executable, str(REPO / "launchers" / "search.py"), "--config", str(run / "config.yaml"),
                       "--checkpoint", str(run), "--out", str(out), "--no-progress",
                       "--set", f"search.max_macs={limit!r}", "--set", f"search.estimator={est}",
                       "--set", f"search.score_table={run / 'tables' / (est + '.json')}",
                       "--set", f"search.population={pop}", "--set", f"search.generations={gens}",
                       "--set", f"search.parents={max(2, pop // 4)}", "--set", f"search.mutations={pop // 2}",
                       "--set", f"search.crossovers={pop // 2}", "--set", f"search.seed={seed}"]
                subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
            import yaml

            doc = yaml.safe_load((out / "best_arch.yaml").read_text())
            base = json.loads((out / "baseline.json").read_text())
            found.setdefault(est, {})[lname] = {"arch": str(doc["arch"]), "evaluations": doc.get("evaluations"),
                                                "baseline": base}
    print(f"[{name}] searches done: {', '.join(complete)} x {len(limits)} limits", flush=True)
    return found


def budget_metrics(tables: dict, keys: list[str], truth: dict, flops: dict, limits: dict, budget: Budget,
                   found: dict, resamples: int) -> dict:
    """Per estimator: band tau over all canonical archs, regret table (table pick, search, FLOPs, random)."""
    from lwsl_ds.ranking.budget import flops_band_tau, regret_table
    from lwsl_ds.ranking.truth import canonical_key

    out = {}
    for est, scores in tables.items():
        searched = {ln: [canonical_key(f["arch"])] for ln, f in found.get(est, {}).items()}
        out[est] = {"band_tau": flops_band_tau(keys, scores, truth, flops, bands=budget.bands, resamples=resamples),
                    "regret": regret_table(keys, scores, truth, flops, limits,
                                           evaluations=budget.search_population * budget.search_generations,
                                           seeds=range(20), searched=searched)}
    return out


def unit_metrics(name: str, run: Path, budget: Budget, seed: int, resamples: int,
                 on_partial: Optional[Callable[[dict], None]] = None) -> dict:
    """Score tables, searches and budget metrics of one trained super-net (the parts of a committed unit)."""
    from lwsl_ds.config import load_experiment
    from lwsl_ds.flops import build_cost_table
    from lwsl_ds.ranking.budget import percentile_limits
    from lwsl_ds.ranking.pipeline import resolve_truth
    from lwsl_ds.space import load_space

    cfg = load_experiment(run / "config.yaml")
    space = load_space("nasbench_macro")
    truth = resolve_truth(cfg.rank, space)
    keys = truth.keys()
    if budget.table_archs:
        from lwsl_ds.ranking.sampling import sample_archs

        keys = sorted(a.key for a in sample_archs(space, budget.table_archs, seed=0, pool=keys))
    cost = build_cost_table(space, run / "cache")
    flops = dict(zip(truth.keys(), map(float, cost.costs(truth.keys(), "flops"))))
    limits = percentile_limits(keys, flops)
    res: dict = {"limits": limits, "flops": "fvcore MACs (the search's cost_metric flops)", "estimators": {}}
    # The local estimators first (minutes), reported as a partial unit; then the top1 table (about an hour).
    for stage in (ESTIMATORS[1:], ESTIMATORS[:1]):
        tables = score_tables(name, run, budget, cfg, keys, truth.keys(), stage)
        # a search may propose any arch: only estimators whose table covers every canonical arch can be searched
        complete = tuple(e for e in stage if len(tables[e]) == len(truth.keys()))
        found = run_searches(name, run, budget, limits, seed, complete)
        t0 = time.perf_counter()
        res["estimators"].update(budget_metrics(tables, keys, truth.accuracy, flops, limits, budget, found, resamples))
        res["table_seconds"] = {e: load_json(run / "tables" / f"{e}.json").get("seconds") for e in res["estimators"]}
        print(f"[{name}] budget metrics ({', '.join(stage)}) in {time.perf_counter() - t0:.0f} s", flush=True)
        if on_partial is not None and stage != ESTIMATORS[:1]:
            on_partial(dict(res))
    return res


def load_json(path: Path) -> dict:
    """A JSON file as a dict ({} when absent)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def export_unit(committed: Path, name: str, run: Path, res: dict) -> None:
    """Copy one finished unit's compact results (metrics JSON, score tables, small plots) to the committed folder."""
    import shutil

    d = committed / name
    d.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in res.items() if k not in ("fig1_cache", "shift_matrix", "scores")}
    (d / "unit.json").write_text(json.dumps(keep, indent=1))
    for est in ESTIMATORS:  # top1 scores rounded: 3969 archs in ~80 KB; local tables: the (layer, choice) table
        doc = load_json(run / "tables" / f"{est}.json")
        if doc:
            if "layer_choice" in doc:
                doc.pop("scores")  # an arch's score is the mean of its choices' entries: derivable
            else:
                doc["scores"] = {k: round(v, 5) for k, v in doc["scores"].items()}
            (d / f"table_{est}.json").write_text(json.dumps(doc, separators=(",", ":")))
    for png in ("ranking_scatter.png", "shift_heatmap.png"):
        if (run / "rank" / png).is_file():
            shutil.copy(run / "rank" / png, d / png)


def _ms(vals: list, tau: bool = True) -> str:
    """'mean ± std' over seeds of a list ('-' when empty): 3 decimals for correlations, 2 for regrets (points)."""
    import numpy as np

    v = [x for x in vals if x is not None and x == x]
    if not v:
        return "-"
    d = 3 if tau else 2
    sd = f" ± {np.std(v, ddof=1):.{d}f}" if len(v) > 1 else ""
    return f"{np.mean(v):.{d}f}{sd}"


def table(state: dict, budget_name: str, budget: Budget, command: str, units: dict[str, list[str]]) -> str:
    """Markdown results: the 50-arch ranking per unit, then band tau and regret per strategy (mean ± std over seeds)."""
    import numpy as np

    lines = [f"Budget `{budget_name}`: {json.dumps(asdict(budget))}", "", f"Command: `{command}`", "",
             "| unit | Kendall tau [95% CI] | Spearman rho | band tau (50 archs) | FLOPs-floor tau (same archs) | "
             "shift off-diag. mean | train s | final mean top-1 of fixed sub-nets |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s, names in units.items():
        for n in names:
            r = state.get(n, {})
            if "ranking" not in r:
                continue
            k, sp = r["ranking"]["kendall_tau"], r["ranking"]["spearman_rho"]
            fl = r["floors"]["flops"]["kendall_tau"]
            bt = r.get("band_tau", {}).get("supernet", {}).get("kendall_tau")
            bt_txt = f"{bt['value']:.3f} [{bt['lo']:.3f}, {bt['hi']:.3f}]" if bt else "-"
            last = r["fig1"][-1]["mean_top1"] if r.get("fig1") else float("nan")
            lines.append(f"| {n} | {k['value']:.3f} [{k['lo']:.3f}, {k['hi']:.3f}] | {sp['value']:.3f} | {bt_txt} | "
                         f"{fl['value']:.3f} [{fl['lo']:.3f}, {fl['hi']:.3f}] | {r['shift_off_diagonal']:.3f} | "
                         f"{r['train_s']:.0f} | {100 * last:.1f} % |")
    lines += ["", "The same 50 archs per strategy, mean ± std over seeds:", "",
              "| strategy | seeds | Kendall tau | Spearman rho | band tau (50 archs) | final mean top-1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for s, names in units.items():
        done = [state[n] for n in names if "ranking" in state.get(n, {})]
        if not done:
            continue
        bt = [r["band_tau"]["supernet"]["kendall_tau"]["value"] for r in done if r.get("band_tau")]
        top = [100 * r["fig1"][-1]["mean_top1"] for r in done if r.get("fig1")]
        lines.append(f"| {s} | {len(done)} | {_ms([r['ranking']['kendall_tau']['value'] for r in done])} | "
                     f"{_ms([r['ranking']['spearman_rho']['value'] for r in done])} | {_ms(bt)} | "
                     f"{_ms(top, tau=False)} % |")
    lines += ["", f"Band tau over all 3969 canonical archs ({budget.bands} equal-count FLOPs bands; mean ± std over "
              "seeds; [95% CI] of a single seed's stratified bootstrap when one seed):", "",
              "| strategy | seeds | estimator | band tau | band rho | FLOPs-floor band tau |", "| --- | --- | --- | --- | --- | --- |"]
    for s, names in units.items():
        done = [state[n].get("budget") or state[n]["budget_partial"] for n in names
                if "budget" in state.get(n, {}) or "budget_partial" in state.get(n, {})]
        for est in ESTIMATORS:
            rows = [d["estimators"][est]["band_tau"] for d in done if est in d["estimators"]]
            if not rows:
                continue
            bt = [r["supernet"]["kendall_tau"]["value"] for r in rows]
            txt = _ms(bt, tau=True)
            if len(rows) == 1:
                e = rows[0]["supernet"]["kendall_tau"]
                txt += f" [{e['lo']:.3f}, {e['hi']:.3f}]"
            lines.append(f"| {s} | {len(rows)} | {est} | {txt} | "
                         f"{_ms([r['supernet']['spearman_rho']['value'] for r in rows], tau=True)} | "
                         f"{_ms([r['flops_floor']['kendall_tau']['value'] for r in rows], tau=True)} |")
    ev = budget.search_population * budget.search_generations
    lines += ["", f"Regret (percentage points of NAS-Bench-Macro mean accuracy below the best arch under the limit; "
              f"mean ± std over seeds). search = launchers/search.py, evolution, {budget.search_population} x "
              f"{budget.search_generations} = {ev} evaluations; random = {ev} random evaluations (mean over 20 "
              "draws, then over seeds); table = best score of all archs under the limit; FLOPs = largest arch "
              "under the limit (no super-net).", "",
              "| strategy | estimator | limit (MMACs) | archs under | search | table | random | FLOPs baseline |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s, names in units.items():
        done = [state[n].get("budget") or state[n]["budget_partial"] for n in names
                if "budget" in state.get(n, {}) or "budget_partial" in state.get(n, {})]
        for est in ESTIMATORS:
            regs = [d["estimators"][est]["regret"] for d in done if est in d["estimators"]]
            if not regs:
                continue
            for lname in regs[0]:
                rr = [r[lname] for r in regs]
                # NAS-Bench-Macro accuracies are in %: regrets are percentage points as they stand
                lines.append(f"| {s} (n={len(rr)}) | {est} | {lname} {rr[0]['limit'] / 1e6:.1f} | "
                             f"{rr[0]['archs_under']} | {_ms([r.get('search', {}).get('regret') for r in rr], False)} | "
                             f"{_ms([r['table']['regret'] for r in rr], False)} | "
                             f"{_ms([r['random_search']['mean'] for r in rr], False)} | "
                             f"{rr[0]['flops_baseline']['regret']:.2f} |")
    return "\n".join(lines)


def write_summary(state: dict, out: Path, committed: Path, budget_name: str, budget: Budget, command: str,
                  units: dict[str, list[str]]) -> str:
    """Fig. 1 (seed-0 units) and results.md, in the run folder and the committed one; returns the Markdown."""
    import shutil

    from lwsl_ds.ranking.plots import curves_png

    fig1 = {k: state[k]["fig1"] for k in STRATEGIES if state.get(k, {}).get("fig1")}
    curves = {k: [(pt["train_s"], 100 * pt["mean_top1"]) for pt in pts if pt["train_s"] is not None]
              for k, pts in fig1.items()}
    # the same points against steps: the time axis depends on how loaded the machine was during each run
    # (units trained in different sessions), the step axis does not
    by_step = {k: [(pt["step"], 100 * pt["mean_top1"]) for pt in pts] for k, pts in fig1.items()}
    title = (f"NAS-Bench-Macro super-nets, budget {budget_name}: mean top-1 of {budget.fig1_archs} fixed "
             "sub-nets (BN recalibrated)")
    if curves:
        committed.mkdir(parents=True, exist_ok=True)
        curves_png(out / "fig1_accuracy_vs_time.png", curves, title=title)
        curves_png(out / "fig1_accuracy_vs_steps.png", by_step, xlabel=f"training steps (batch {budget.batch})",
                   title=title)
        for name in ("fig1_accuracy_vs_time.png", "fig1_accuracy_vs_steps.png"):
            shutil.copy(out / name, committed / name)
    md = table(state, budget_name, budget, command, units)
    (out / "results.md").write_text(md + "\n")
    if committed.is_dir():
        (committed / "results.md").write_text(md + "\n")
    return md


def main(argv: list[str] | None = None) -> int:
    """Train the strategies x seeds (or reuse), evaluate, score tables, search, write results and plots."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), required=True)
    p.add_argument("--out", default=None, help="output folder (default runs/bench/ranking_nasbench_macro_<budget>)")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=["non_greedy", "spos", "greedy"])
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="super-net seeds (default: --seed only)")
    p.add_argument("--committed", default=None, help="folder of finished units' compact results, read back and "
                                                     "written (default docs/bench/ranking_nasbench_macro/<budget>)")
    p.add_argument("--no-tables", action="store_true", help="only the 50-arch ranking (no score tables, searches)")
    p.add_argument("--backend", choices=["deepspeed", "reference"], default="deepspeed",
                   help="training update backend of launchers/train.py")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the budget's epochs (same for all)")
    p.add_argument("--train-per-class", type=int, default=None, help="override the budget's training images "
                                                                     "per class (same for all)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="override the steps between checkpoints "
                                                                      "(Fig. 1 points; 0 = epoch ends only)")
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    if args.epochs:
        budget = replace(budget, epochs=args.epochs)
    if args.train_per_class:
        budget = replace(budget, train_per_class=args.train_per_class)
    if args.checkpoint_every is not None:
        budget = replace(budget, checkpoint_every=args.checkpoint_every)
    out = Path(args.out or REPO / "runs" / "bench" / f"ranking_nasbench_macro_{args.budget}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    committed = Path(args.committed) if args.committed else COMMITTED / args.budget
    state_path = out / "results.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    state["budget"] = {"name": args.budget, **asdict(budget)}
    command = " ".join([".venv/bin/python", "bench/ranking_nasbench_macro.py", *(argv or sys.argv[1:])])
    os.environ.setdefault("PYTHONPATH", str(REPO))
    # the named data sets (cifar10-jpeg/, nas-bench-macro/) of the shared data folder beside the checkout
    os.environ.setdefault("LWSL_DATA_DIR", str(REPO.parent / "shared" / "data"))
    os.environ["OMP_NUM_THREADS"] = "1"  # one core for the bench and its launchers; the other is for others
    import torch

    torch.set_num_threads(1)
    seeds = args.seeds if args.seeds else [args.seed]
    units = {s: [unit_name(s, sd) for sd in seeds] for s in args.strategies}
    for sd in seeds:  # seeds outer: every strategy's first seed before anyone's second
        for s in args.strategies:
            name = unit_name(s, sd)
            saved = committed / name / "unit.json"
            if saved.is_file() and (args.no_tables or "budget" in load_json(saved)):
                state[name] = {**load_json(saved), **{k: v for k, v in state.get(name, {}).items()
                                                      if k == "fig1_cache"}}
                print(f"[{name}] finished before: {saved}", flush=True)
                continue
            run = train(s, budget, out, sd, args.backend)
            evaluate(name, run, budget, state, sd)
            state_path.write_text(json.dumps(state, indent=1))  # resumable after every stage
            if not args.no_tables:
                def partial(res: dict, name: str = name, run: Path = run) -> None:
                    # local estimators done, top1 table still to come: save and export as a partial unit
                    # ("budget_partial"; a rerun does not count it as finished)
                    state[name]["budget_partial"] = res
                    state_path.write_text(json.dumps(state, indent=1))
                    export_unit(committed, name, run, state[name])
                    write_summary(state, out, committed, args.budget, budget, command, units)

                state[name]["budget"] = unit_metrics(name, run, budget, sd, resamples=budget.bootstrap,
                                                     on_partial=partial)
                state[name].pop("budget_partial", None)
                state_path.write_text(json.dumps(state, indent=1))
            export_unit(committed, name, run, state[name])
            write_summary(state, out, committed, args.budget, budget, command, units)
    md = write_summary(state, out, committed, args.budget, budget, command, units)
    print(md)
    print(f"results: {out}/results.json, {out}/results.md, {out}/fig1_accuracy_vs_time.png; compact: {committed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
