"""Run the checks one after another, each in its own process under its own time limit, within a total budget.

After every check ``report.json`` and ``report.md`` are rewritten, so whatever stops the run (a check over
its limit, the device call's own timeout) leaves a report of what was done. A check's process group is
killed at its limit; the items it had written stay, and the check is marked ``timeout``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import CHECKS
from .record import error_line, last_line, python, run_child
from .report import render

__all__ = ["PROFILES", "LIMITS", "start_machine_info", "machine_info", "run_checks", "main"]

REPO = Path(__file__).resolve().parents[2]
CPUS = os.cpu_count() or 2

# Sizes per profile: "gpu" is the measurement (fits 8 minutes on one H200 with 16 cores), "cpu" the
# rehearsal at a size a 2-core machine does in about a minute and a half.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "gpu": {"data": {"resolution": 224, "batch": 64, "repeat": 16, "generate": 256, "threads": min(8, CPUS),
                     "workers": min(8, CPUS), "max_seconds": 12},
            "train": {"steps": 20, "batch": 64, "resolution": 32, "per_class": 64, "run_limit_s": 60,
                      "rel_tol": 1e-3, "parallel": 1},
            "memory": {"space": "paper", "resolution": 224, "batches": [128, 64]},
            "pytest": {}},
    "cpu": {"data": {"resolution": 224, "batch": 16, "repeat": 2, "generate": 32, "threads": 2, "workers": 0,
                     "max_seconds": 5},
            "train": {"steps": 3, "batch": 8, "resolution": 32, "per_class": 4, "run_limit_s": 150,
                      "rel_tol": 1e-6, "parallel": 3, "cpu_runs": ["greedy_bf16"]},
            "memory": {"space": "paper", "resolution": 64, "batches": [8]},
            "pytest": {}},
}
# Seconds per check (a cap: a check that ends sooner leaves its time to the next); sum 470 <= the budget 480.
LIMITS = {"gpu": {"data": 60, "train": 200, "memory": 150, "pytest": 60},
          "cpu": {"data": 120, "train": 400, "memory": 300, "pytest": 60}}

_INFO = r"""
import json, os, platform, sys
from importlib import metadata
def ver(n):
    try:
        return metadata.version(n)
    except Exception:
        return None
import torch
info = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count(), "host": platform.node(),
        "deepspeed": ver("deepspeed"), "dali": ver("nvidia-dali-cuda130"), "fvcore": ver("fvcore"),
        "torchvision": ver("torchvision")}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
print(json.dumps(info))
"""


def start_machine_info() -> subprocess.Popen:
    """Read versions and the device in a child process, alongside the first check (its torch import costs
    seconds); the parent never creates a CUDA context."""
    return subprocess.Popen([python(), "-c", _INFO], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


def machine_info(proc: subprocess.Popen) -> dict[str, Any]:
    """The child's answer (or an error line: the report is written either way)."""
    try:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}")
        return json.loads(out.strip().splitlines()[-1])
    except Exception as e:
        proc.kill()
        return {"error": error_line(e), "python": platform.python_version()}


def _status(doc: dict[str, Any], rc: int | None) -> str:
    """ok / failed / timeout / skipped from the exit code and the items."""
    items = doc.get("items", [])
    if rc is None:
        return "timeout"
    if rc != 0 or any(i.get("status") == "failed" for i in items):
        return "failed"
    if items and all(i.get("status") == "skipped" for i in items):
        return "skipped"
    return "ok"


def _run_one(name: str, limit: float, out: Path, params: dict[str, Any], images: str | None) -> dict[str, Any]:
    """One check in its own process group under ``limit`` seconds; its report entry."""
    cdir = (out / name).resolve()  # children run from the repository root
    cdir.mkdir(parents=True, exist_ok=True)
    p = {**params, "out": str(cdir), "images": images, "limit_s": limit}
    (cdir / "params.json").write_text(json.dumps(p, indent=1))
    result = cdir / "result.json"
    result.unlink(missing_ok=True)
    log = out / "logs" / f"{name}.log"
    cmd = [python(), "-m", f"lwsl_ds.gpucheck.{name}_check", "--params", str(cdir / "params.json"),
           "--result", str(result)]
    print(f"[gpu-check] {name}: limit {limit:.0f} s", flush=True)
    rc, secs = run_child(cmd, log, limit, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        doc = json.loads(result.read_text())
    except (OSError, ValueError):
        doc = {"items": []}
    entry = {"limit_s": round(limit, 1), "seconds": round(secs, 1), "exit_code": rc, "status": _status(doc, rc),
             "items": doc.get("items", []), **{k: v for k, v in doc.items() if k != "items"}}
    if rc is None:
        entry["error"] = f"killed at its {limit:.0f} s limit; the items above are what it finished"
    elif rc != 0:
        entry["error"] = last_line(log)
    print(f"[gpu-check] {name}: {entry['status']} in {secs:.0f} s", flush=True)
    return entry


def run_checks(out: Path, checks: list[str], params: dict[str, dict[str, Any]], limits: dict[str, float],
               budget_s: float, profile: str, images: str | None, concurrent: bool = False,
               mirror: Path | None = None) -> dict[str, Any]:
    """Run ``checks`` in order (or all at once: ``concurrent``); returns the report (also written to ``out``
    and, when given, ``mirror``: the device tool's $OUT, so a call cut at its limit still returns it)."""
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    info = start_machine_info()
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "profile": profile,
                              "budget_s": budget_s, "concurrent": concurrent, "images": images, "machine": {},
                              "checks": {name: {"status": "not run"} for name in checks}}
    lock = threading.Lock()

    def write() -> None:
        with lock:
            if not report["machine"] and info.poll() is not None:
                report["machine"] = machine_info(info)
            report["total_seconds"] = round(time.perf_counter() - t_start, 1)
            for folder in (out, mirror) if mirror else (out,):
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
                (folder / "report.md").write_text(render(report))

    def one(name: str) -> None:
        limit = min(float(limits[name]), budget_s - (time.perf_counter() - t_start))
        if limit < 5:
            report["checks"][name] = {"limit_s": round(limit, 1), "status": "skipped",
                                      "reason": f"total budget of {budget_s:.0f} s spent before this check"}
        else:
            report["checks"][name] = _run_one(name, limit, out, params[name], images)
        write()

    write()
    if concurrent:  # the CPU rehearsal: most of its time is start-up, which overlaps well
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:
            list(pool.map(one, checks))
    else:
        for name in checks:
            one(name)
    report["machine"] = report["machine"] or machine_info(info)
    write()
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI of ``python -m lwsl_ds.gpucheck`` (see docs/gpu_check.md)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lwsl_ds.gpucheck",
                                 description="GPU acceptance check (rehearsed on CPU): report.md / report.json")
    ap.add_argument("--out", type=Path, default=Path("runs/gpu-check"))
    ap.add_argument("--images", default=None, help="JPEG folder (the ImageNet sample folder with manifest.csv, "
                                                   "or any .jpg folder); default: generate JPEGs")
    ap.add_argument("--profile", choices=["auto", "gpu", "cpu"], default="auto",
                    help="sizes and limits: gpu when CUDA is available (auto), else the cpu rehearsal")
    ap.add_argument("--checks", default=",".join(CHECKS), help=f"comma list out of {','.join(CHECKS)}")
    ap.add_argument("--budget-s", type=float, default=480.0, help="total seconds for all checks")
    ap.add_argument("--mirror", type=Path, default=None, help="also write report.md/json here after each check")
    ap.add_argument("--concurrent", action="store_true",
                    help="run the checks at the same time (a quicker rehearsal; its numbers are then no benchmark)")
    ap.add_argument("--limit", action="append", default=[], metavar="CHECK=SECONDS", help="one check's limit")
    ap.add_argument("--set", action="append", default=[], metavar="CHECK.KEY=VALUE",
                    help="override a profile value (JSON value, else string), e.g. memory.batches=[256]")
    a = ap.parse_args(argv)
    checks = [c.strip() for c in a.checks.split(",") if c.strip()]
    bad = [c for c in checks if c not in CHECKS]
    if bad:
        ap.error(f"--checks: unknown {bad}; choose from {list(CHECKS)}")
    if a.images is not None and not Path(a.images).is_dir():
        ap.error(f"--images: {a.images} is not a folder")
    profile = a.profile
    if profile == "auto":
        from .record import cuda_reason

        profile = "cpu" if cuda_reason() else "gpu"
    params = {k: dict(v) for k, v in PROFILES[profile].items()}
    limits = dict(LIMITS[profile])
    for item in a.limit:
        name, _, val = item.partition("=")
        if name not in CHECKS or not val.replace(".", "", 1).isdigit():
            ap.error(f"--limit {item!r}: expected CHECK=SECONDS with CHECK in {list(CHECKS)}")
        limits[name] = float(val)
    for item in a.set:
        key, eq, val = item.partition("=")
        name, _, field = key.partition(".")
        if not eq or name not in CHECKS or not field:
            ap.error(f"--set {item!r}: expected CHECK.KEY=VALUE with CHECK in {list(CHECKS)}")
        try:
            params[name][field] = json.loads(val)
        except ValueError:
            params[name][field] = val
    images = str(Path(a.images).resolve()) if a.images else None
    report = run_checks(a.out, checks, params, limits, a.budget_s, profile, images, a.concurrent, a.mirror)
    print((a.out / "report.md").read_text())
    bad_checks = [n for n, c in report["checks"].items() if c["status"] in ("failed", "timeout")]
    if bad_checks:
        print(f"[gpu-check] not ok: {bad_checks} (see {a.out}/report.md and {a.out}/logs)", file=sys.stderr)
        return 1
    return 0
