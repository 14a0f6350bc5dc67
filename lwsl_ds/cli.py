"""`lwsl` console entry point: one sub-command per phase, each mapping onto its launcher.

    lwsl space paper                                   # print a search space and its size
    lwsl train   --ranks 2 -- --ds_config ds_configs/train_cpu.json --config configs/train_demo.yaml
    lwsl search  -- --config configs/train_demo.yaml --checkpoint runs/demo/supernet
    lwsl retrain -- --ds_config ds_configs/retrain_cpu.json --config configs/retrain_cifar10.yaml --arch best.yaml
    lwsl rank    -- --config configs/train_demo.yaml --checkpoint runs/demo/supernet
    lwsl groundtruth -- --config configs/demo.yaml --ds_config ds_configs/retrain_cpu.json --out runs/gt
    lwsl profile -- --space paper --resolution 224 --batch 128
    lwsl report runs/demo                              # <experiment dir>/report/report.html from any experiment
    lwsl predict runs/demo/retrain/export img1.png img2.png   # classify image files with an exported sub-net
    lwsl demo                                          # the end-to-end demo (same as `make demo`)

Arguments after ``--`` go to the launcher unchanged; ``--ranks N`` (N > 1) starts it with
``deepspeed --num_gpus N`` (CPU ranks on gloo when no GPU is present), otherwise with this Python.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]

PHASES = {
    "train": ("launchers/train.py", "super-net training: spos, greedy or non_greedy, one DeepSpeed engine per layer group"),
    "search": ("launchers/search.py", "evolutionary search under MACs/params limits with inherited super-net weights"),
    "retrain": ("launchers/retrain.py", "train the found architecture from scratch (DeepSpeed, one or many nodes)"),
    "rank": ("launchers/rank.py", "ranking correlation (Kendall tau) against ground truth, and representation shift"),
    "groundtruth": ("launchers/groundtruth.py", "ground truth for a space without a table: briefly train K sampled "
                                                "archs from scratch, write truth.csv for rank"),
    "profile": ("profiling/memory_report.py", "memory per strategy and per layer (paper Table IV / Fig. 6)"),
}


def _launch(script: str, ranks: int, args: list[str]) -> int:
    path = REPO / script
    if not path.is_file():
        print(f"error: {path} not found; the launchers live in the repository checkout (pip install -e .)",
              file=sys.stderr)
        return 2
    if args and args[0] == "--":
        args = args[1:]
    if ranks > 1:
        cmd = [str(Path(sys.executable).with_name("deepspeed")), "--num_gpus", str(ranks), str(path), *args]
    else:
        cmd = [sys.executable, str(path), *args]
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=os.getcwd())


def main(argv: list[str] | None = None) -> int:
    """Parse the sub-command and run it; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("predict", "data-stats"):  # their own parsers (and --help)
        if args[0] == "predict":
            from .predict import main as predict_main

            return predict_main(args[1:])
        from .data.stats import main as stats_main

        return stats_main(args[1:])
    parser = argparse.ArgumentParser(prog="lwsl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, (script, text) in PHASES.items():
        p = sub.add_parser(name, help=text, description=f"{text}. Runs {script}; pass its arguments after --.")
        p.add_argument("--ranks", type=int, default=1, help="processes to start (deepspeed launcher when > 1)")
        p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the launcher (after --)")
    p = sub.add_parser("space", help="print a search space (layers, choices, number of archs)")
    p.add_argument("name", nargs="?", default="paper", help="preset name or path to a space YAML")
    p.add_argument("--resolution", type=int, default=None)
    p = sub.add_parser("report", help="(re)build <experiment dir>/report/report.html from whatever phases ran",
                       description="Build <experiment dir>/report/report.html (self-contained) and report.md: a "
                                   "summary first (best arch, MACs, params, search score, retrained top-1, ranking, "
                                   "memory saving, each with the split it was measured on), then one section per "
                                   "phase folder found, then the full config. Phases that did not run are absent.")
    p.add_argument("experiment_dir", help="the experiment's run directory <run_root>/<name>, i.e. the folder holding "
                                          "its phase folders (supernet/, search/, retrain/, rank/, memory/)")
    p.add_argument("--screenshot", action="store_true", help="also render it in headless Chromium")
    p = sub.add_parser("predict", help="classify image files with an exported sub-net (subnet.pt2 + preprocess.json)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("data-stats", help="per-channel mean/std of a config's training images (for data.mean/std)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("demo", help="end-to-end demo on generated data (super-net -> search -> retrain -> report)")
    p.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)

    if ns.cmd in PHASES:
        return _launch(PHASES[ns.cmd][0], ns.ranks, ns.args)
    if ns.cmd == "space":
        from .space import load_space

        print(load_space(ns.name, ns.resolution).summary())
        return 0
    if ns.cmd == "report":
        from .report.build import build_report

        html, md = build_report(Path(ns.experiment_dir), screenshot=ns.screenshot)
        print(f"report: {html}\nmarkdown: {md}")
        return 0
    from .demo import main as demo_main

    return demo_main(ns.args)


def entry() -> NoReturn:
    """The ``lwsl`` console script: :func:`main` under the launchers' error path (one line, exit 2)."""
    from .common.entry import run_main

    run_main(main)


if __name__ == "__main__":
    entry()
