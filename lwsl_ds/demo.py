"""`make demo`: the end-to-end path on the project's synthetic data, every phase through its real launcher.

    python -m lwsl_ds.demo                 # runs/demo; refuses an existing run directory
    python -m lwsl_ds.demo --resume        # skip the phases an interrupted run already finished
    python -m lwsl_ds.demo --overwrite     # delete runs/demo and start over

Phases: non-greedy super-net training with DeepSpeed (2 layer groups) -> memory report -> FLOPs-limited
evolutionary search -> short retraining of the best arch -> a single-path (spos) super-net trained for the
same training time -> ground truth (K sampled archs trained briefly from scratch) -> ranking (Kendall tau
with bootstrap interval) and representation shift of both super-nets -> ``runs/demo/report/report.html``
(+ ``report.md``); each phase writes into its own sub-folder of ``runs/demo``. Each phase prints one header
line, shows the launcher's own progress bar, and ends with
one result line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from lwsl_ds.common.logging import read_jsonl

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "demo.yaml"
MIN_FREE_BYTES = 500 * 2**20  # data (~20 MB), checkpoints and exports stay well below this
# Ground truth: K archs, each trained from scratch for STEPS steps on the whole demo train split (3000
# images). Measured on 2 cores: see docs/demo.md (about 10 s per arch on an idle machine).
TRUTH_ARCHS = 10
TRUTH_STEPS = 60
# The spos run gets this many times the non-greedy run's epochs as its schedule: a spos step trains one
# path, a non-greedy step every choice of every layer; on 2 idle cores spos runs 2.9-3.9x the steps in the
# same time, so with 4x the time budget ends spos close to the end of its cosine schedule. Too small and the
# schedule ends first (3x: spos used 8.8 s of non-greedy's 11.7 s); too large and spos stops with its
# learning rate still high (6x: 48% of the schedule).
SPOS_EPOCH_FACTOR = 4


@dataclass(frozen=True)
class Phase:
    """One step of the demo: a name, the command that runs it, and where its marker file goes."""

    name: str
    cmd: Union[list[str], Callable[[], list[str]]]  # a callable when it depends on an earlier phase's output

    def command(self) -> list[str]:
        """The command line (built now when it depends on earlier phases)."""
        return self.cmd() if callable(self.cmd) else self.cmd


def train_seconds(run_dir: Path) -> tuple[float, int]:
    """(cumulative step seconds, step) of a super-net run, from the last line of its metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    last = (read_jsonl(path) or [{}])[-1]
    if "train_seconds" not in last:
        raise RuntimeError(f"{path}: no train_seconds in the last metrics line (a run from before the loop "
                           "recorded its step time?); rerun the demo with --overwrite")
    return float(last["train_seconds"]), int(last["step"])


def _phases(run: Path) -> list[Phase]:
    py = sys.executable
    ds = str(Path(py).with_name("deepspeed"))
    cfg = str(CONFIG)
    sup = run / "supernet"
    truth = run / "groundtruth"
    return [
        Phase("super-net training (non_greedy, DeepSpeed, 2 layer groups)",
              lambda: [ds, "--num_gpus", "1", str(REPO / "launchers/train.py"), "--ds_config",
                       str(REPO / "ds_configs/train_cpu.json"), "--config", cfg, "--run_dir", str(sup), *_resume(sup)]),
        Phase("memory report (accounted, per strategy and per layer)",
              [py, str(REPO / "profiling/memory_report.py"), "--config", cfg, "--ds_config",
               str(REPO / "ds_configs/train_cpu.json"), "--out", str(run / "memory")]),
        Phase("evolutionary search under a MACs limit",
              [py, str(REPO / "launchers/search.py"), "--config", cfg, "--checkpoint", str(sup),
               "--out", str(run / "search")]),
        Phase("retraining the best arch from scratch (DeepSpeed)",
              [py, str(REPO / "launchers/retrain.py"), "--ds_config", str(REPO / "ds_configs/retrain_cpu.json"),
               "--config", cfg, "--arch", str(run / "search" / "best_arch.yaml"), "--run_dir", str(run / "retrain"),
               "--resume", "auto"]),
        Phase("single-path super-net (spos) for the same training time",
              lambda: [ds, "--num_gpus", "1", str(REPO / "launchers/train.py"), "--ds_config",
                       str(REPO / "ds_configs/train_cpu.json"), "--config", cfg, "--run_dir", str(run / "spos"),
                       "train.strategy=spos", f"train.max_minutes={train_seconds(sup)[0] / 60!r}",
                       f"train.epochs={_epochs() * SPOS_EPOCH_FACTOR}", *_resume(run / "spos")]),
        Phase(f"ground truth: {TRUTH_ARCHS} sampled archs trained from scratch for {TRUTH_STEPS} steps each",
              [py, str(REPO / "launchers/groundtruth.py"), "--config", cfg, "--ds_config",
               str(REPO / "ds_configs/retrain_cpu.json"), "--out", str(truth), "--archs", str(TRUTH_ARCHS),
               "--steps", str(TRUTH_STEPS), "data.max_per_class=null"]),
        *[Phase(f"ranking and representation shift of the {name} super-net",
                [py, str(REPO / "launchers/rank.py"), "--config", cfg, "--checkpoint", str(run / folder),
                 "--out", str(run / "rank" / name), "--title", name, "--no-progress",
                 f"rank.truth={truth / 'truth.csv'}", f"rank.archs_file={truth / 'archs.txt'}"])
          for name, folder in (("non_greedy", "supernet"), ("spos", "spos"))],
    ]


def _resume(train_dir: Path) -> list[str]:
    """``--resume`` when an interrupted training run left checkpoints (its step time carries over)."""
    return ["--resume"] if (train_dir / "checkpoints").is_dir() else []


def _epochs() -> int:
    """train.epochs of the demo config (the non-greedy run's length)."""
    from lwsl_ds.config import load_experiment

    return load_experiment(CONFIG).train.epochs


def _result_line(run: Path, k: int) -> str:
    """One line summarising what phase ``k`` produced (read from its outputs)."""
    try:
        if k == 0:
            m = read_jsonl(run / "supernet" / "metrics.jsonl")[-1]
            losses = {key: v for key, v in m.items() if key.startswith("loss/")}
            return f"step {m.get('step')}: mean local loss {sum(losses.values()) / max(1, len(losses)):.3f}"
        if k == 1:
            return f"report in {run / 'memory'}"
        if k == 2:
            import yaml

            doc = yaml.safe_load((run / "search" / "best_arch.yaml").read_text())
            return (f"best arch {doc['named']}: top-1 {100 * doc.get('score', 0):.2f}% on the "
                    f"{doc.get('score_split', 'val split')}, {doc.get('flops', 0) / 1e6:.2f}M MACs")
        if k == 3:
            final = json.loads((run / "retrain" / "final.json").read_text())
            return (f"step {final.get('step')}: top-1 {100 * final.get('top1', 0):.2f}% on the "
                    f"{final.get('split', 'val')} split ({'EMA' if final.get('ema') else 'raw'} weights)")
        if k == 4:
            (ng_s, ng_step), (sp_s, sp_step) = train_seconds(run / "supernet"), train_seconds(run / "spos")
            return (f"spos {sp_step} steps in {sp_s:.1f} s of step time; non_greedy {ng_step} steps in "
                    f"{ng_s:.1f} s")
        if k == 5:
            import csv

            with (run / "groundtruth" / "truth.csv").open() as f:
                accs = sorted(float(r["accuracy"]) for r in csv.DictReader(f))
            return f"{len(accs)} archs, top-1 {accs[0]:.3f}..{accs[-1]:.3f}"
        if k in (6, 7):
            name = "non_greedy" if k == 6 else "spos"
            rank = json.loads((run / "rank" / name / "ranking.json").read_text())
            tau = rank["metrics"]["kendall_tau"]
            shift = json.loads((run / "rank" / name / "shift.json").read_text())
            return (f"Kendall tau {tau['value']:.3f} [{tau['lo']:.3f}, {tau['hi']:.3f}]; shift off-diagonal "
                    f"mean {shift['off_diagonal_mean']:.3f}")
    except (OSError, ValueError, KeyError, IndexError, RuntimeError) as e:
        return f"(no summary: {e})"
    return ""


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m lwsl_ds.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/demo")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="skip phases an earlier run finished")
    g.add_argument("--overwrite", action="store_true", help="delete the run directory first")
    ap.add_argument("--no-screenshot", action="store_true", help="do not render the report in Chromium")
    args = ap.parse_args(argv)
    run = Path(args.run_dir).resolve()
    done_dir = run / ".done"
    if run.exists() and not (args.resume or args.overwrite):
        print(f"error: {run} already exists. Use --resume to continue it, or --overwrite to start over "
              f"(make demo DEMO_ARGS=--resume).", file=sys.stderr)
        return 2
    if args.overwrite and run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(run).free
    if free < MIN_FREE_BYTES:
        print(f"error: only {free / 2**20:.0f} MiB free on the disk of {run}; the demo needs about "
              f"{MIN_FREE_BYTES / 2**20:.0f} MiB. Free space or pass --run-dir on another disk.", file=sys.stderr)
        return 2
    done_dir.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    phases = _phases(run)
    t_all = time.time()
    for k, phase in enumerate(phases):
        marker = done_dir / f"phase{k}"
        head = f"[{k + 1}/{len(phases) + 1}] {phase.name}"
        if marker.exists():
            print(f"{head}: already done (--resume)", flush=True)
            continue
        try:
            cmd = phase.command()
        except (OSError, RuntimeError, ValueError) as e:
            print(f"error: phase '{phase.name}' cannot start: {e}", file=sys.stderr)
            return 1
        print(f"{head} ...\n  + {' '.join(cmd)}", flush=True)
        t0 = time.time()
        rc = subprocess.call(cmd, cwd=REPO, env=env)
        if rc != 0:
            print(f"error: phase '{phase.name}' failed with exit status {rc} (output above). Fix the cause and "
                  f"rerun with --resume to continue from this phase.", file=sys.stderr)
            return rc
        marker.write_text(f"{time.time() - t0:.1f}\n")
        print(f"  -> {phase.name}: {_result_line(run, k)} ({time.time() - t0:.0f} s)", flush=True)
    print(f"[{len(phases) + 1}/{len(phases) + 1}] report ...", flush=True)
    from .report.build import build_report

    html, md = build_report(run, screenshot=not args.no_screenshot)
    print(f"  -> demo finished in {time.time() - t_all:.0f} s\nreport: {html}\nmarkdown twin: {md}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
