"""Ground truth for ranking on a space without a benchmark table: train K sampled archs briefly from scratch.

    .venv/bin/python launchers/groundtruth.py --config configs/demo.yaml --ds_config ds_configs/retrain_cpu.json \\
        --out runs/demo/groundtruth --archs 10 --steps 60 data.max_per_class=null
    .venv/bin/python launchers/groundtruth.py --checkpoint runs/demo/supernet --ds_config ds_configs/retrain_cpu.json
        # the super-net run's recorded config (as search/rank read it); --out defaults to runs/demo/groundtruth

Samples ``--archs`` archs (seeded, stratified by FLOPs), trains each with the config's ``retrain`` recipe for
``--steps`` optimizer steps (cosine schedule over exactly those steps, one process, one DeepSpeed engine),
evaluates on the whole val split and writes ``<out>/truth.csv`` (for ``rank.truth``), ``<out>/archs.txt``
(for ``rank.archs_file``), ``meta.json`` and one run directory per arch. Rerunning the same command skips
archs already trained. Trailing ``key=value`` arguments override the config. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's

from lwsl_ds.config.cli_args import add_override_args, launcher_parser, overrides_of  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: config, ds_config, output folder, number of archs, steps, seed, overrides."""
    p = launcher_parser(__doc__)
    p.add_argument("--config", default=None, help="experiment YAML (space, data, retrain sections); with "
                                                  "--checkpoint, on top of that run's recorded config")
    p.add_argument("--checkpoint", default=None, help="a trained super-net folder: its recorded config is the "
                                                      "base (the ground truth of the space that run trained)")
    p.add_argument("--ds_config", required=True, help="retraining DeepSpeed JSON (batch size; one process)")
    p.add_argument("--out", default=None, help="output folder (truth.csv, archs.txt, one folder per arch); "
                                               "default with --checkpoint: groundtruth/ next to the super-net")
    p.add_argument("--archs", type=int, default=10, help="number of archs to sample and train (>= 2)")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per arch")
    p.add_argument("--seed", type=int, default=0, help="seed of the arch sample")
    p.add_argument("--strata", type=int, default=None, help="FLOPs bins of the sample (default: archs // 2)")
    add_override_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, generate, print the table's path; bad input exits 2 with one line."""
    args = parse_args(argv)
    from lwsl_ds.common.entry import exit_code_of

    return exit_code_of(lambda: _generate(args))


def _generate(args: argparse.Namespace) -> int:
    from lwsl_ds.common import dist
    from lwsl_ds.config.layout import claim
    from lwsl_ds.ranking.groundtruth import TRUTH_FILE, TruthSettings, default_out, generate_truth

    out = args.out or default_out(args.config, args.checkpoint, overrides_of(args))
    claim(out, "groundtruth", option="--out")
    truth = generate_truth(args.config, args.ds_config, out, TruthSettings(args.archs, args.steps, args.seed,
                           args.strata), overrides=overrides_of(args), checkpoint=args.checkpoint)
    accs = sorted(truth.accuracy.values())
    print(f"ground truth of {len(accs)} archs (top-1 {accs[0]:.3f}..{accs[-1]:.3f}) -> {Path(out) / TRUTH_FILE}")
    dist.shutdown()
    return 0


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
