"""Check 2: ``deepspeed --num_gpus 1 launchers/train.py``, one engine per layer group, per strategy and precision.

Each run is the real launcher on the demo space and demo-style data (generated here, 32 px), ZeRO 0,
``train.max_steps`` steps, metrics every step: images/s (median of the logged windows after the first)
and whether the loss falls (mean local loss, last third of the steps below the first third). The comm
backend follows from the accelerator DeepSpeed names in the run's log (cuda: nccl, cpu: gloo). Digest: the
fp32 greedy run against the same run with ``--backend reference`` (plain torch optimizers) on the same device: the
parameter sha256 (``param_digests.json``) and the largest and relative differences of ``supernet.pt``.

Without CUDA the NCCL runs are skipped with the reason; the fp32 digest pair and the ``cpu_runs`` (the
rehearsal: greedy bf16) still run on gloo (on CPU the two backends of the pair are bit-identical).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
from pathlib import Path
from typing import Any

from .record import Result, check_main, cuda_reason, free_port, last_line, python, run_child

__all__ = ["ds_config", "launch_command", "read_run", "compare_params", "run"]

REPO = Path(__file__).resolve().parents[2]
STRATEGIES = ("greedy", "non_greedy", "spos")
PRECISIONS = ("fp32", "bf16")
DIGEST_RUN = ("greedy", "fp32")  # the DeepSpeed run the reference run is compared with


def ds_config(batch: int, precision: str) -> dict[str, Any]:
    """The project's training ds_config (ZeRO 0, torch Adam, no clipping) at ``batch``, fp32 or bf16."""
    from ..config.ds_config import load_ds_config

    cfg = load_ds_config(REPO / "ds_configs" / "train_cpu.json")
    cfg["train_micro_batch_size_per_gpu"] = batch
    cfg.pop("csv_monitor", None)  # not needed here; each engine would write its own csv files
    if precision == "bf16":
        cfg["bf16"] = {"enabled": True}
    return cfg


def launcher() -> list[str]:
    """The ``deepspeed`` launcher: the console script when on PATH, else the module it runs."""
    exe = shutil.which("deepspeed")
    return [exe] if exe else [python(), "-m", "deepspeed.launcher.runner"]


def launch_command(ds_path: Path, data: Path, run_root: Path, name: str, strategy: str, backend: str,
                   steps: int, resolution: int) -> list[str]:
    """``deepspeed --num_gpus 1 launchers/train.py ...`` for one run (overrides as on the command line)."""
    return [*launcher(), "--num_gpus", "1", "--master_port", str(free_port()), "launchers/train.py",
            "--ds_config", str(ds_path), "--config", "configs/train_demo.yaml", "--backend", backend,
            "--run_dir", str(run_root / name), f"name={name}", f"run_root={run_root}", f"train.strategy={strategy}", f"train.max_steps={steps}",
            "train.epochs=1000", "train.log_every=1", "train.checkpoint_every=1000000", "train.progress=false",
            "train.layer_groups=per_layer", "data.source=folder", f"data.root={data}",
            f"data.resolution={resolution}", "data.backend=torchvision", "data.num_workers=2",
            "data.max_per_class=null"]


def read_run(run_dir: Path, log: Path) -> dict[str, Any]:
    """Images/s, loss trajectory and comm backend of a finished run."""
    from ..common.logging import read_jsonl

    recs = read_jsonl(run_dir / "metrics.jsonl")
    if not recs:
        raise ValueError(f"{run_dir}/metrics.jsonl: no metrics (did the run train?)")
    losses = [statistics.fmean(v for k, v in r.items() if k.startswith("loss/")) for r in recs]
    rates = [r["images_per_s"] for r in recs[1:]] or [recs[0]["images_per_s"]]
    third = max(1, len(losses) // 3)
    # DeepSpeed names its accelerator at start ("Setting accelerator to CPU", "... ds_accelerator to cuda");
    # its comm backend follows from it (init_distributed runs quietly).
    acc = re.findall(r"[Ss]etting (?:ds_)?accelerator to (\w+)", log.read_text(errors="replace"))
    comm = [{"cuda": "nccl", "cpu": "gloo"}.get(a.lower(), a.lower()) for a in acc]
    return {"steps": recs[-1]["step"], "images_per_s": round(statistics.median(rates), 1),
            "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
            # None: one logged step says nothing about the trend
            "loss_falls": statistics.fmean(losses[-third:]) < statistics.fmean(losses[:third]) if len(losses) > 1
            else None,
            "train_seconds": recs[-1].get("train_seconds"), "comm": comm[0] if comm else "unknown"}


def compare_params(a: Path, b: Path, rel_tol: float) -> dict[str, Any]:
    """Digest equality and differences of two runs' ``supernet.pt`` (relative L2 over all floats)."""
    import torch

    da, db = (json.loads((d / "param_digests.json").read_text()) for d in (a, b))
    sa, sb = (torch.load(d / "supernet.pt", map_location="cpu", weights_only=True) for d in (a, b))
    if sa.keys() != sb.keys():
        raise ValueError(f"different parameter names: {sorted(sa.keys() ^ sb.keys())[:3]}")
    diff2 = norm2 = 0.0
    worst, where = 0.0, ""
    for k, va in sa.items():
        if not va.is_floating_point():
            continue
        d = (va.double() - sb[k].double()).abs()
        diff2 += float((d ** 2).sum())
        norm2 += float((va.double() ** 2).sum())
        if d.numel() and float(d.max()) > worst:
            worst, where = float(d.max()), k
    rel = (diff2 ** 0.5) / max(norm2 ** 0.5, 1e-30)
    exact = da["ranks"][0]["params"] == db["ranks"][0]["params"] if "ranks" in da else da == db
    return {"digests_equal": bool(exact), "max_abs_diff": worst, "max_abs_diff_at": where,
            "rel_l2_diff": rel, "rel_tol": rel_tol, "within_tolerance": rel <= rel_tol}


def _runs(why: str | None, cpu_runs: list[str]) -> list[tuple[str, str, str, str | None]]:
    """Every run in launch order: (strategy, precision, backend, skip reason or None).

    The digest pair comes first (a check cut at its limit still has it); without CUDA only the pair and
    ``cpu_runs`` (names like ``greedy_bf16``) run, on gloo.
    """
    runs: list[tuple[str, str, str, str | None]] = [(*DIGEST_RUN, "deepspeed", None), (*DIGEST_RUN, "reference", None)]
    here = ", ".join([*cpu_runs, "the digest pair"])
    for strategy in STRATEGIES:
        for precision in PRECISIONS:
            if (strategy, precision) == DIGEST_RUN:
                continue
            skip = None
            if why and f"{strategy}_{precision}" not in cpu_runs:
                skip = f"{why}: NCCL engines need a GPU (the rehearsal runs {here} on gloo)"
            runs.append((strategy, precision, "deepspeed", skip))
    return runs


def _digest(result: Result, pair: list[Path], on_cpu: bool, rel_tol: float) -> None:
    """The digest item: DeepSpeed vs reference parameters of the same run on the same device."""
    with result.item(kind="digest", runs=f"{pair[0].name} vs {pair[1].name}", device="cpu" if on_cpu else "cuda") \
            as rec:
        rec.update(compare_params(pair[0], pair[1], rel_tol))
        if not rec["within_tolerance"]:
            raise AssertionError(f"DeepSpeed vs reference: relative L2 difference {rec['rel_l2_diff']:.3g} "
                                 f"> {rec['rel_tol']}")


def run(p: dict[str, Any], result: Result) -> None:
    """Launch every run (GPU: 6 DeepSpeed + 1 reference; CPU: the fp32 digest pair on gloo) and compare.

    ``parallel`` > 1 launches that many runs at once (the CPU rehearsal: start-up dominates there); the
    GPU profile runs one at a time so that images/s is not shared.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..data import demo_dataset

    out = Path(p["out"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = demo_dataset.generate(out / "train-data", train_per_class=int(p["per_class"]), val_per_class=1,
                                 size=64)
    why = cuda_reason()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not why:
        env.setdefault("DS_ACCELERATOR", "cuda")
    run_root = out / "runs"
    todo = []
    for strategy, precision, backend, skip in _runs(why, list(p.get("cpu_runs", []))):
        name = f"{strategy}_{precision}" + ("_reference" if backend == "reference" else "")
        ident = dict(run=name, strategy=strategy, precision=precision, backend=backend)
        if skip:
            todo.append((ident, skip))
            continue
        ds_path = out / f"ds_{precision}.json"
        ds_path.write_text(json.dumps(ds_config(int(p["batch"]), precision), indent=1))
        shutil.rmtree(run_root / name, ignore_errors=True)
        cmd = launch_command(ds_path, data, run_root, name, strategy, backend, int(p["steps"]), int(p["resolution"]))
        at = cmd.index("--num_gpus")  # the deepspeed console script, or python -m of the module it runs
        todo.append(({**ident, "command": " ".join(["deepspeed", *cmd[at:]]), "launcher": " ".join(cmd[:at])},
                     cmd))

    def launch(job: tuple[dict[str, Any], Any]) -> tuple[dict[str, Any], Any]:
        ident, cmd = job
        if isinstance(cmd, str):  # a skip reason
            return ident, cmd
        log = out / "logs" / f"{ident['run']}.log"
        return ident, (run_child(cmd, log, float(p["run_limit_s"]), cwd=REPO, env=env), log)

    pair: list[Path] = []
    with ThreadPoolExecutor(max_workers=max(1, int(p.get("parallel", 1)))) as pool:
        for ident, done in pool.map(launch, todo):  # in order, each recorded as soon as it is its turn
            if isinstance(done, str):
                result.skip(done, **ident)
                continue
            (rc, secs), log = done
            with result.item(**ident) as rec:
                rec["wall_seconds"] = round(secs, 1)
                if rc is None:
                    raise TimeoutError(f"run over its {p['run_limit_s']} s limit (log {log})")
                if rc != 0:
                    raise RuntimeError(f"exit {rc}: {last_line(log)}")
                rec.update(read_run(run_root / ident["run"], log))
                if (ident["strategy"], ident["precision"]) == DIGEST_RUN:
                    pair.append(run_root / ident["run"])
            if ident["backend"] == "reference":  # the pair is complete (or one of it failed): compare now
                if len(pair) == 2:
                    _digest(result, pair, why is not None, float(p["rel_tol"]))
                else:
                    result.add(kind="digest", status="failed", error="a run of the digest pair failed (see it above)")


if __name__ == "__main__":
    raise SystemExit(check_main(run))
