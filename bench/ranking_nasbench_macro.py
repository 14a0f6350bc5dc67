"""Ranking benchmark on NAS-Bench-Macro: spos vs greedy vs non_greedy super-nets on CIFAR-10, same budget.

For each strategy: train a ``nasbench_macro`` super-net with ``launchers/train.py`` (the real training code,
DeepSpeed backend by default), checkpointing during training; then

* Fig. 1 of the paper: mean held-out top-1 of a fixed set of sub-nets (BN recalibrated) at every checkpoint,
  against training time (summed step times from the run's metrics.jsonl, evaluation excluded);
* Kendall tau / Spearman rho / top-k precision of the final super-net's scores against the NAS-Bench-Macro
  ground truth (3969 canonical keys), beside the FLOPs and params floors on the same archs;
* representation shift of the first searchable layer.

Launch lines::

    .venv/bin/python bench/ranking_nasbench_macro.py --budget smoke      # minutes, mechanics only
    .venv/bin/python bench/ranking_nasbench_macro.py --budget cpu        # about 1-1.5 h on 2 CPU cores (66 min measured)
    .venv/bin/python bench/ranking_nasbench_macro.py --budget full       # one GPU

Re-running the same command resumes: finished trainings and evaluated checkpoints are reused. Results go
to ``--out`` (default ``runs/bench/ranking_nasbench_macro_<budget>``): ``results.json``, ``results.md``,
``fig1_accuracy_vs_time.png`` and per strategy ``<strategy>/rank/`` (scatter, shift heatmap).
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
from typing import Optional

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


BUDGETS = {
    "smoke": Budget(train_per_class=20, val_per_class=20, epochs=2, batch=32, checkpoint_every=3, num_archs=10,
                    fig1_archs=4, eval_batch=50, recal_batches=2, shift_images=100, bootstrap=200),
    "cpu": Budget(train_per_class=500, val_per_class=100, epochs=3, batch=64, checkpoint_every=39, num_archs=50,
                  fig1_archs=8, eval_batch=100, recal_batches=4, shift_images=1000, bootstrap=1000),
    "full": Budget(train_per_class=None, val_per_class=None, epochs=50, batch=256, checkpoint_every=0,
                   num_archs=100, fig1_archs=10, eval_batch=500, recal_batches=10, shift_images=1000, bootstrap=1000),
}


def experiment(budget: Budget, strategy: str, out: Path, seed: int) -> dict:
    """The experiment config (plain dict) of one strategy's run."""
    return {
        "name": strategy, "seed": seed, "run_root": str(out),
        "space": {"name": "nasbench_macro"},
        "data": {"source": "cifar10", "resolution": 32, "backend": "torchvision", "num_workers": 0,
                 "max_per_class": budget.train_per_class, "val_max_per_class": budget.val_per_class},
        "train": {"strategy": strategy, "objective": "ce", "epochs": budget.epochs, "layer_groups": "single",
                  "checkpoint_every": budget.checkpoint_every, "keep_checkpoints": 100000, "log_every": 1,
                  "progress": False},
        "search": {"recal_batches": budget.recal_batches, "batch_size": budget.eval_batch, "val_batches": None},
        "rank": {"num_archs": budget.num_archs, "top_k": [k for k in (5, 10) if k <= budget.num_archs // 2],
                 "bootstrap": budget.bootstrap, "shift_images": budget.shift_images, "seed": seed},
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

    run = out / strategy
    if (run / "supernet.pt").is_file():
        print(f"[{strategy}] trained already: {run}", flush=True)
        return run
    cfg_dir = out / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    cfg_path, ds_path = cfg_dir / f"{strategy}.yaml", cfg_dir / "ds_config.json"
    cfg_path.write_text(yaml.safe_dump(experiment(budget, strategy, out, seed), sort_keys=False))
    ds_path.write_text(json.dumps(ds_config(budget), indent=1))
    cmd = [sys.executable, str(REPO / "launchers" / "train.py"), "--ds_config", str(ds_path), "--config",
           str(cfg_path), "--backend", backend, "--run_dir", str(run)]
    if (run / "checkpoints").is_dir():
        cmd.append("--resume")
    print(f"[{strategy}] training: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    print(f"[{strategy}] trained in {time.perf_counter() - t0:.0f} s", flush=True)
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


def evaluate(strategy: str, run: Path, budget: Budget, state: dict, seed: int) -> dict:
    """Fig. 1 points, ranking against NAS-Bench-Macro and representation shift of one trained run."""
    from lwsl_ds.config import load_experiment
    from lwsl_ds.ranking.pipeline import build_evaluator, resolve_truth, run_ranking, run_shift, select_archs
    from lwsl_ds.search import load_supernet_from_run
    from lwsl_ds.space import load_space

    cfg = load_experiment(run / "config.yaml")
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


def table(state: dict, budget_name: str, budget: Budget, command: str) -> str:
    """Markdown results table."""
    lines = [f"Budget `{budget_name}`: {json.dumps(asdict(budget))}", "", f"Command: `{command}`", "",
             "| strategy | Kendall tau [95% CI] | Spearman rho | top-5 prec. | FLOPs-floor tau (same archs) | "
             "shift off-diag. mean | train s | final mean top-1 of fixed sub-nets |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in STRATEGIES:
        r = state.get(s, {})
        if "ranking" not in r:
            continue
        k, sp = r["ranking"]["kendall_tau"], r["ranking"]["spearman_rho"]
        t5 = r["ranking"].get("top5", {}).get("value", float("nan"))
        fl = r["floors"]["flops"]["kendall_tau"]
        last = r["fig1"][-1]["mean_top1"] if r.get("fig1") else float("nan")
        lines.append(f"| {s} | {k['value']:.3f} [{k['lo']:.3f}, {k['hi']:.3f}] | {sp['value']:.3f} | {t5:.2f} | "
                     f"{fl['value']:.3f} [{fl['lo']:.3f}, {fl['hi']:.3f}] | {r['shift_off_diagonal']:.3f} | "
                     f"{r['train_s']:.0f} | {100 * last:.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Train the three strategies (or reuse), evaluate, write results and plots."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), required=True)
    p.add_argument("--out", default=None, help="output folder (default runs/bench/ranking_nasbench_macro_<budget>)")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
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
    state_path = out / "results.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    state["budget"] = {"name": args.budget, **asdict(budget)}
    command = " ".join([".venv/bin/python", "bench/ranking_nasbench_macro.py", *(argv or sys.argv[1:])])
    os.environ.setdefault("PYTHONPATH", str(REPO))
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from lwsl_ds.ranking.plots import curves_png

    for s in args.strategies:
        run = train(s, budget, out, args.seed, args.backend)
        evaluate(s, run, budget, state, args.seed)
        state_path.write_text(json.dumps(state, indent=1))  # resumable after every strategy
        curves = {k: [(pt["train_s"], 100 * pt["mean_top1"]) for pt in state[k]["fig1"] if pt["train_s"] is not None]
                  for k in STRATEGIES if k in state and state[k].get("fig1")}
        curves_png(out / "fig1_accuracy_vs_time.png", curves,
                   title=f"NAS-Bench-Macro super-nets, budget {args.budget}: mean top-1 of "
                         f"{budget.fig1_archs} fixed sub-nets (BN recalibrated)")
    md = table(state, args.budget, budget, command)
    (out / "results.md").write_text(md + "\n")
    print(md)
    print(f"results: {out}/results.json, {out}/results.md, {out}/fig1_accuracy_vs_time.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
