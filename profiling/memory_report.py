"""Memory report of super-net training: peak per strategy (paper Table IV) and per layer (paper Fig. 6).

One command for a space, a resolution and batch sizes. For every strategy (spos = 100%, greedy,
non_greedy, and the balanced greedy / non_greedy of lwsl_ds.memory.planner) it runs the real training step
on the ``meta`` device under the accounting tracker and writes:

* ``report.md``: table of peaks, absolute and % of single path, in three views: accounted tensors
  (activations + input batch), + model states (params, grads, Adam, per engine), and device level (measured
  with ``max_memory_allocated`` on a GPU; otherwise accounted + a fixed overhead, ``--overhead-mib``);
* ``layers_<strategy>_b<batch>.png``: per-layer peak, stacked by category (Fig. 6 style);
* ``report.json``: every number (per-phase peaks and breakdowns, engines, plans).

Command (paper space, about 4 minutes on 2 CPU cores)::

    python profiling/memory_report.py --space paper --resolution 224 --batch 128 256 --out runs/memory/paper224
    python profiling/memory_report.py --config configs/demo.yaml --ds_config ds_configs/train_cpu.json
        # the experiment's space, resolution, strategies, layer groups and levers; -> <run_root>/<name>/memory
    python profiling/memory_report.py --run runs/paper_ce/supernet    # a training run's setting -> runs/paper_ce/memory

``--run <super-net folder>`` takes the space (with its resolved class count), resolution, per-rank batch, layer
groups, objective, ZeRO stage, precision, offloaded and checkpointed groups from the run's recorded config and
ds_config; a flag given as well must agree with the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's

from lwsl_ds.config.schema import ConfigError, from_dict  # noqa: E402
from lwsl_ds.config.sections.memory import MemoryConfig  # noqa: E402
from lwsl_ds.config.sections.train import Levers  # noqa: E402

GIB = 2 ** 30
MIB = 2 ** 20
# Device-level default: one number everywhere, memory.device_overhead_mib (lwsl_ds/config/sections/memory.py).
DEFAULT_OVERHEAD_MIB = MemoryConfig().device_overhead_mib


def _split(n: int, k: int) -> list[list[int]]:
    """Contiguous layer groups of near-equal size."""
    if not 1 <= k <= n:
        raise ConfigError(f"--groups: {k} is not in 1..{n} (number of layers)")
    bounds = [round(n * g / k) for g in range(k + 1)]
    return [list(range(bounds[g], bounds[g + 1])) for g in range(k)]


def _plot(path: Path, title: str, acc, batch_bytes: int) -> None:
    """Stacked bars of the per-phase peak (input batch, carried, saved, transient)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [p for p in acc.profile.phases if p.name in ("stem", "layer", "head", "backward")]
    labels = [p.label for p in phases]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels) + 2), 3.6))
    bottom = [batch_bytes / GIB] * len(phases)
    ax.bar(labels, bottom, color="#bbbbbb", label="input batch")
    colors = {"carried": "#4c72b0", "saved": "#dd8452", "transient": "#55a868"}
    for cat in ("carried", "saved", "transient"):
        vals = [p.breakdown.get(cat, 0) / GIB for p in phases]
        ax.bar(labels, vals, bottom=bottom, color=colors[cat], label=cat)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("peak activation memory (GiB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    ax.tick_params(axis="x", labelsize=7, rotation=90)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _balance_ratio(acc) -> float:
    peaks = [p.peak_bytes + acc.batch_bytes for p in acc.profile.phases if p.name in ("stem", "layer")]
    return max(peaks) / (sum(peaks) / len(peaks)) if peaks else float("nan")


_BUILTIN = {"space": "paper", "resolution": None, "batch": [128], "strategies": ["spos", "greedy", "non_greedy"], "objective": "ce",
            "rng": "worst", "balance": "auto", "floor_factor": 2.0, "groups": 1, "zero": 0, "precision": "fp32",
            "checkpoint_groups": [], "overhead_mib": DEFAULT_OVERHEAD_MIB, "out": "runs/memory/report"}


def _fill_from_config(args: argparse.Namespace) -> list[list[int]] | None:
    """Unset flags from ``--config`` (lwsl_ds/memory/from_config.py), then the built-in defaults.

    Returns the experiment's explicit layer groups unless ``--groups`` overrides them (None: use --groups).
    """
    settings: dict = {}
    groups_given = args.groups is not None
    if args.config is not None:
        from lwsl_ds.config import load_experiment
        from lwsl_ds.config.layout import phase_dir
        from lwsl_ds.memory.from_config import memory_settings

        exp = load_experiment(args.config)
        ds = None
        if args.ds_config is not None:
            from lwsl_ds.config.ds_config import load_ds_config

            ds = load_ds_config(args.ds_config)
        settings = memory_settings(exp, ds)
        settings["out"] = str(phase_dir(exp, "memory"))
    elif args.ds_config is not None:
        raise ConfigError("--ds_config: only used with --config")
    for key, default in _BUILTIN.items():
        if getattr(args, key, None) is None:
            value = settings.get(key, default)
            setattr(args, key, default if key == "groups" and isinstance(value, list) else value)
    if args.offload is None and settings.get("offload") is not None:
        args.offload = settings["offload"]
    if args.budget_mib is None:
        args.budget_mib = settings.get("budget_mib")
    explicit = settings.get("groups")
    return explicit if isinstance(explicit, list) and not groups_given else None


def _from_run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``--run``: fill the training run's setting into ``args``; a flag also given must agree with it."""
    from lwsl_ds.memory.from_config import run_settings
    from lwsl_ds.search.loading import recorded_config

    run = Path(args.run)
    setting, cfg = run_settings(run, recorded_config(run) if run.is_dir() else None)
    given = {a.dest for a in parser._actions for tok in argv if tok.split("=")[0] in a.option_strings}
    for key, value in setting.items():
        if key in given and getattr(args, key) != value:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(args, key)} conflicts with run {run} ({value}); "
                              "drop the flag, --run sets it")
        setattr(args, key, value)
    if "groups" in given:
        raise ConfigError(f"--groups: run {run} records its layer groups {cfg.train.layer_groups}; drop the flag")
    args.groups, args.num_classes = cfg.train.layer_groups, cfg.space.num_classes
    if args.out is None:
        from lwsl_ds.config.layout import beside_supernet

        args.out = str(beside_supernet(run, cfg, "memory"))


def _parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="experiment YAML: space, resolution, strategies, layer groups, "
                                                     "memory levers and the memory: section come from it (flags "
                                                     "override); output defaults to <run_root>/<name>/memory")
    ap.add_argument("--ds_config", default=None, help="with --config: batch size, ZeRO stage and precision")
    ap.add_argument("--space", default=None, help="preset name or space YAML (default paper)")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="per-rank batch sizes (default 128)")
    ap.add_argument("--strategies", nargs="+", default=None, help="default: spos greedy non_greedy")
    ap.add_argument("--objective", default=None, choices=["ce", "infonce"])
    ap.add_argument("--rng", default=None, choices=["worst", "sample"])
    ap.add_argument("--balance", default=None, choices=["off", "auto"], help="also account balanced modes "
                                                                              "(default auto)")
    ap.add_argument("--budget-mib", type=float, default=None, help="balanced budget (default: auto)")
    ap.add_argument("--floor-factor", type=float, default=None)
    ap.add_argument("--groups", type=int, default=None, help="layer groups (engines) for model states: a count of "
                                                             "near-equal contiguous groups (default 1; with --config: "
                                                             "train.layer_groups resolved)")
    ap.add_argument("--zero", type=int, default=None, choices=[0, 1, 2])
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--offload", type=int, nargs="*", default=None,
                    help="layer groups whose model states wait in host memory while inactive, as "
                         "train.offload_inactive does (no value: every group); greedy/non_greedy only")
    ap.add_argument("--checkpoint-groups", type=int, nargs="*", default=None,
                    help="groups whose losses run every choice they call under activation checkpointing, as "
                         "train.activation_checkpointing does")
    ap.add_argument("--overhead-mib", type=float, default=None,
                    help=f"device-level view without GPU: fixed overhead added to every strategy (default "
                         f"memory.device_overhead_mib, {DEFAULT_OVERHEAD_MIB:g})")
    ap.add_argument("--out", default=None, help="output folder (default: memory/ of the experiment with --config or "
                                                "--run, else runs/memory/report)")
    ap.add_argument("--run", default=None, help="training run (super-net) folder: its space, resolution, batch, "
                                                "groups, objective, ZeRO stage and precision, as recorded")
    return ap


def _settings(args: argparse.Namespace, ap: argparse.ArgumentParser,
              argv: list[str] | None) -> tuple[MemoryConfig, Any, list[list[int]], Levers]:
    """(report settings, space, layer groups, levers) from the flags, --run and --config; ConfigError if bad."""
    if args.run:
        if args.config is not None:
            raise ConfigError("--run and --config: pass one (--run reads the run's recorded config)")
        _from_run(args, ap, sys.argv[1:] if argv is None else argv)
    fixed_groups = _fill_from_config(args)
    cfg = from_dict(MemoryConfig, {"strategies": args.strategies, "batch_sizes": args.batch,
                                   "resolution": args.resolution, "rng": args.rng,
                                   "floor_factor": args.floor_factor, "device_overhead_mib": args.overhead_mib},
                    "memory")
    from lwsl_ds.space import load_space

    space = load_space(args.space, resolution=cfg.resolution, num_classes=getattr(args, "num_classes", None))
    groups = (fixed_groups if fixed_groups is not None else args.groups if isinstance(args.groups, list)
              else _split(space.num_layers, args.groups))
    # the levers as training takes them (train.*; --offload without a value: every group)
    levers = Levers(offload_inactive=True if args.offload == [] else list(args.offload or []),
                    activation_checkpointing=list(args.checkpoint_groups or []))
    if args.budget_mib is not None:
        Levers(micro_batches="auto", memory_budget_mib=args.budget_mib)  # checks it
    return cfg, space, groups, levers


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, account every strategy, write report.md / report.json / PNGs."""
    ap = _parser()
    args = ap.parse_args(argv)
    try:
        cfg, space, groups, levers = _settings(args, ap, argv)
        offload, checkpointed = levers.offload_groups(len(groups)), levers.checkpoint_groups(groups)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from lwsl_ds.common.atomic import write_atomic, write_json_atomic
    from lwsl_ds.memory import EngineSettings, account_step, auto_balance
    from lwsl_ds.memory.cuda import cuda_available_reason, measure_step

    from lwsl_ds.config.layout import claim

    try:
        out = claim(args.out, "memory", option="--out")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    engine = EngineSettings(zero_stage=args.zero, precision=args.precision, reduce_bucket_size=cfg.reduce_bucket_size)
    common = dict(groups=groups, engine=engine, objective=args.objective, rng=cfg.rng, seed=cfg.seed)
    cuda_why = cuda_available_reason()
    overhead = int(cfg.device_overhead_mib * MIB)
    doc: dict = {"space": space.name, "resolution": space.resolution, "objective": args.objective, "groups": groups,
                 "zero_stage": args.zero, "precision": args.precision, "rng": cfg.rng, "offloaded_groups": offload,
                 "device_view": "measured (CUDA)" if not cuda_why else
                 f"accounted + {cfg.device_overhead_mib:.0f} MiB fixed overhead ({cuda_why})",
                 "overhead_bytes": None if not cuda_why else overhead, "results": {}}
    md = [f"# Memory report: space `{space.name}`, {space.resolution} px, objective {args.objective}", "",
          f"Groups {groups}, ZeRO {args.zero}, {args.precision}, Adam; draws: {cfg.rng}. Device view: "
          f"{doc['device_view']}.", ""]
    if offload:
        md += [f"Offload (train.offload_inactive): groups {offload} keep their model states in host memory while "
               "inactive (greedy/non_greedy; SPOS keeps all): device model states = the active group's + ZeRO 1/2 "
               "reduce buckets of the others + non-greedy's read-only next-layer choices; no prefetch.", ""]
    if checkpointed:
        md += [f"Activation checkpointing (train.activation_checkpointing): groups {checkpointed} run every "
               "choice their losses call (non-greedy's read-only next-layer choice included) checkpointed: only "
               "its input is saved, its activations are recomputed in backward.", ""]
    for b in cfg.batch_sizes:
        rows = {}
        t0 = time.time()
        for s in cfg.strategies:
            # SPOS keeps every group's states within a step (offload refused for it)
            mine = dataclasses.replace(levers, offload_inactive=False) if s == "spos" else levers
            rows[s] = account_step(space, s, b, levers=mine, **common)
        if args.balance == "auto":
            for s in [s for s in cfg.strategies if s != "spos"]:
                budget = int(args.budget_mib * MIB) if args.budget_mib else None
                kw = {k: v for k, v in common.items() if k not in ("objective",)}
                bal = auto_balance(space, s, b, budget=budget, floor_factor=cfg.floor_factor,
                                   objective=args.objective, levers=levers, **kw)
                rows[f"{s}_balanced"] = bal.account
                doc.setdefault("balance", {})[f"{s}_b{b}"] = bal.to_dict()
        ref = rows.get("spos")
        res = {}
        md += [f"## batch {b} (accounted in {time.time() - t0:.0f} s)", "",
               f"| strategy | activations GiB | % spos | + model states{' on device' if offload else ''} GiB | % spos "
               "| device GiB | % spos | max/mean layer |", "|---|---|---|---|---|---|---|---|"]
        for name, acc in rows.items():
            act, full = acc.activation_peak, acc.device_peak
            meas = measure_step(args.space, name.replace("_balanced", ""), b, resolution=space.resolution,
                                objective=args.objective, rng=cfg.rng) if not cuda_why and "balanced" not in name \
                else None
            dev = meas["measured_peak_bytes"] if meas and "measured_peak_bytes" in meas else full + overhead
            res[name] = {**acc.to_dict(), "device_level_bytes": dev, "measured": meas or {"skipped": cuda_why or
                         "balanced modes are measured through the engines, not here"},
                         "balance_ratio": _balance_ratio(acc)}
            if ref is not None:
                ref_dev = res["spos"]["device_level_bytes"] if "spos" in res else ref.device_peak + overhead
                res[name]["pct_of_spos"] = {"activations": 100 * act / ref.activation_peak,
                                            "with_states": 100 * full / ref.device_peak,
                                            "device": 100 * dev / ref_dev}
            p = res[name].get("pct_of_spos", {})
            ratio = "n/a" if name == "spos" else f"{res[name]['balance_ratio']:.2f}"  # spos peaks are cumulative
            md.append(f"| {name} | {act / GIB:.3f} | {p.get('activations', float('nan')):.1f}% | {full / GIB:.3f} | "
                      f"{p.get('with_states', float('nan')):.1f}% | {dev / GIB:.3f} | {p.get('device', float('nan')):.1f}% "
                      f"| {ratio} |")
            _plot(out / f"layers_{name}_b{b}.png", f"{name}, {space.name} {space.resolution}px, batch {b}: "
                  f"per-layer peak", acc, acc.batch_bytes)
        md.append("")
        doc["results"][str(b)] = res
    write_json_atomic(out / "report.json", doc)
    write_atomic(out / "report.md", "\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {out}/report.md, report.json and layers_*.png")
    return 0


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
