"""The GPU check's CPU rehearsal: the same entry point as on the GPU, every CUDA item skipped with a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _gpu_check(tmp: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The entry point from another folder with a relative --out (as `make gpu-check` passes runs/gpu-check)."""
    cmd = [sys.executable, "-m", "lwsl_ds.gpucheck", "--out", "gc", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the rehearsal is the no-CUDA path; make gpu-check measures")
def test_rehearsal_reports_gpu_items_skipped_and_cpu_items_measured(tmp_path: Path) -> None:
    """Tiny input, all four checks: exit 0, GPU items skipped with the CUDA reason, CPU items with numbers."""
    t0 = time.time()
    r = _gpu_check(tmp_path, "--concurrent", "--set", "data.generate=8", "--set", "data.repeat=2",
                   "--set", "data.batch=4", "--set", "data.max_seconds=60", "--set", "train.steps=1",
                   "--set", "train.batch=4", "--set", "train.per_class=2",
                   "--set", "memory.space=demo", "--set", "memory.resolution=32", "--set", "memory.batches=[4]",
                   "--set", 'memory.modes=["spos","greedy","greedy_balanced"]')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rep = json.loads((tmp_path / "gc" / "report.json").read_text())
    md = (tmp_path / "gc" / "report.md").read_text()
    assert rep["profile"] == "cpu" and rep["machine"]["cuda_available"] is False and rep["concurrent"]
    assert list(rep["checks"]) == ["data", "train", "memory", "pytest"]
    cuda = "no CUDA device"

    data = {i["pipeline"]: i for i in rep["checks"]["data"]["items"]}
    assert data["dali_mixed"]["status"] == "skipped" and cuda in data["dali_mixed"]["reason"]
    for name in ("dali_cpu", "torchvision"):  # measured on 8 generated JPEGs x 2 at 224 px
        assert data[name]["status"] == "ok" and data[name]["images_per_s"] > 0 and data[name]["images"] == 12
        assert data[name]["shape"] == [4, 3, 224, 224]

    train = rep["checks"]["train"]
    runs = {i["run"]: i for i in train["items"] if "run" in i}
    assert len(runs) == 7
    skipped = [n for n, i in runs.items() if i["status"] == "skipped"]
    assert sorted(skipped) == ["non_greedy_bf16", "non_greedy_fp32", "spos_bf16", "spos_fp32"]
    assert all(cuda in runs[n]["reason"] and "NCCL" in runs[n]["reason"] for n in skipped)
    # the digest pair and bf16 ran through the deepspeed launcher, on gloo
    for n in ("greedy_fp32", "greedy_fp32_reference", "greedy_bf16"):
        assert runs[n]["status"] == "ok" and runs[n]["comm"] == "gloo" and runs[n]["steps"] == 1
        assert runs[n]["images_per_s"] > 0 and runs[n]["command"].startswith("deepspeed --num_gpus 1 --master_port ")
    digest = next(i for i in train["items"] if i.get("kind") == "digest")
    # On CPU the DeepSpeed engines and the reference backend give bit-identical parameters.
    assert digest["status"] == "ok" and digest["digests_equal"] and digest["max_abs_diff"] == 0.0
    assert runs["greedy_bf16"]["loss_falls"] is None  # one step: no trend to report

    mem = rep["checks"]["memory"]
    assert mem["measured"] is False and cuda in mem["skipped_reason"]
    modes = {i["mode"]: i for i in mem["items"]}
    assert set(modes) == {"spos", "greedy", "greedy_balanced"}
    assert all(i["status"] == "ok" and cuda in i["measured_skipped"] and "measured_peak_bytes" not in i
               for i in modes.values())
    act = {m: i["accounted_activation_peak_bytes"] for m, i in modes.items()}
    assert act["greedy_balanced"] < act["greedy"] < act["spos"]  # the layer-wise saving, then the balanced one
    assert modes["greedy_balanced"]["micro_batches"]

    pt = rep["checks"]["pytest"]
    assert pt["status"] == "skipped" and cuda in pt["items"][0]["reason"]
    assert "skipped: no CUDA device" in md and "| dali_cpu |" in md and "Digest (greedy_fp32" in md
    print(f"rehearsal took {time.time() - t0:.0f} s")


def test_a_check_over_its_limit_is_recorded_and_the_next_still_runs(tmp_path: Path) -> None:
    """A check killed at its limit is 'timeout' with an error line; the budget check skips what cannot start."""
    r = _gpu_check(tmp_path, "--checks", "memory,pytest", "--limit", "memory=6", "--budget-s", "10",
                   "--set", "memory.resolution=224", "--set", "memory.batches=[256]", "--mirror",
                   str(tmp_path / "OUT"), timeout=120)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads((tmp_path / "gc" / "report.json").read_text())
    mem, pt = rep["checks"]["memory"], rep["checks"]["pytest"]
    assert mem["status"] == "timeout" and "6 s limit" in mem["error"] and mem["seconds"] < 20
    assert pt["status"] == "skipped" and "budget" in pt["reason"]
    assert "| memory | timeout |" in (tmp_path / "gc" / "report.md").read_text()
    assert (tmp_path / "OUT" / "report.md").read_text() == (tmp_path / "gc" / "report.md").read_text()  # $OUT copy


def test_bad_arguments_fail_with_one_clear_line(tmp_path: Path, capsys) -> None:
    from lwsl_ds.gpucheck.runner import main

    for args, msg in ((["--checks", "data,gpu"], "--checks: unknown ['gpu']"),
                      (["--set", "memory=3"], "expected CHECK.KEY=VALUE"),
                      (["--limit", "train=soon"], "expected CHECK=SECONDS"),
                      (["--images", str(tmp_path / "nope")], "is not a folder")):
        with pytest.raises(SystemExit) as e:
            main(["--out", str(tmp_path), *args])
        assert e.value.code == 2 and msg in capsys.readouterr().err, args
    assert not (tmp_path / "report.json").exists()  # nothing ran
