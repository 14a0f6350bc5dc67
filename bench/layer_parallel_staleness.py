"""Effect of the non-greedy replica's staleness on the local losses (layer-parallel, 2 ranks, real data).

Runs ``launchers/train_layer_parallel.py`` (non_greedy, NAS-Bench-Macro space, CIFAR-10 subset, fixed
layer groups so every run splits the same way) once per (replica_lag L, replica_refresh_every K) setting.
L=0, K=1 is the synchronous algorithm exactly (tested bit-exact), so it is the reference. All runs see the
same batches and the same sampled choices; the per-layer losses of the last ``--window`` steps are averaged
and compared with the reference's.

    python bench/layer_parallel_staleness.py --steps 120 --out runs/bench/lp_staleness.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [(0, 1), (1, 1), (2, 1), (4, 4)]


def run(root: Path, lag: int, every: int, a: argparse.Namespace) -> dict[int, dict[str, float]]:
    """One training run; returns {step: metrics of both ranks merged}."""
    name = f"lag{lag}_every{every}"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "launchers" / "train_layer_parallel.py"), "--ds_config", "ds_configs/train_cpu.json",
           "--config", "configs/train_nasbench_macro.yaml", "--run_dir", str(root / name), f"run_root={root}",
           f"name={name}",
           "train.strategy=non_greedy", f"train.max_steps={a.steps}", "train.log_every=1", "train.epochs=100",
           f"train.layer_groups={a.groups}", f"data.max_per_class={a.per_class}", "data.backend=torchvision",
           "data.num_workers=0", "--parallel", f"replica_lag={lag}", "--parallel", f"replica_refresh_every={every}"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    steps: dict[int, dict[str, float]] = {}
    for r in (0, 1):
        for line in (root / name / f"metrics_rank{r}.jsonl").read_text().splitlines():
            m = json.loads(line)
            steps.setdefault(m["step"], {}).update({k: v for k, v in m.items() if k.startswith("loss/")})
    return steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--window", type=int, default=40, help="average the losses of the last N steps")
    p.add_argument("--per-class", type=int, default=200, help="CIFAR-10 train images per class")
    p.add_argument("--groups", default="[[0,1,2],[3,4,5,6,7]]")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lp_staleness_"))
    results = {f"L{lag}_K{every}": run(root, lag, every, a) for lag, every in SETTINGS}
    ref = results["L0_K1"]
    last = sorted(ref)[-a.window:]
    keys = sorted(ref[last[0]], key=lambda k: (k != "loss/stem", int(k[10:]) if k[5:10] == "layer" else -1))
    summary: dict = {"args": vars(a), "groups": a.groups, "mean_loss_last_window": {}, "mean_abs_diff_vs_L0": {}}
    for name, steps in results.items():
        summary["mean_loss_last_window"][name] = {k: sum(steps[s][k] for s in last) / len(last) for k in keys}
        summary["mean_abs_diff_vs_L0"][name] = {
            k: sum(abs(steps[s][k] - ref[s][k]) for s in last) / len(last) for k in keys}
    print(f"{'setting':>8} " + " ".join(f"{k[5:]:>8}" for k in keys))
    for name in results:
        print(f"{name:>8} " + " ".join(f"{summary['mean_loss_last_window'][name][k]:8.4f}" for k in keys))
    print("mean |loss - loss(L0,K1)| over the window:")
    for name in results:
        print(f"{name:>8} " + " ".join(f"{summary['mean_abs_diff_vs_L0'][name][k]:8.4f}" for k in keys))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
