"""report.md from a GPU-style report document: the paths only a device run produces, rendered here."""

from __future__ import annotations

from lwsl_ds.gpucheck.pytest_check import summary
from lwsl_ds.gpucheck.report import render
from lwsl_ds.gpucheck.runner import _status

GIB = 2 ** 30


def _gpu_report() -> dict:
    mem = [{"batch": 128, "mode": "spos", "status": "ok", "measured_peak_bytes": 8 * GIB, "reserved_bytes": 10 * GIB,
            "accounted_activation_peak_bytes": 4 * GIB, "accounted_device_peak_bytes": 5 * GIB},
           {"batch": 128, "mode": "greedy", "status": "ok", "measured_peak_bytes": 2 * GIB,
            "reserved_bytes": 4 * GIB, "accounted_activation_peak_bytes": 1 * GIB,
            "accounted_device_peak_bytes": 1.25 * GIB},
           {"batch": 128, "mode": "non_greedy_balanced", "status": "ok", "measured_peak_bytes": 1 * GIB,
            "reserved_bytes": 2 * GIB, "accounted_activation_peak_bytes": GIB / 2,
            "accounted_device_peak_bytes": GIB, "micro_batches": {"-1": 8, "0": 9}},
           {"batch": 256, "mode": "spos", "status": "failed", "error": "MemoryError: batch 256 does not fit: CUDA out"}]
    train = [{"run": "greedy_bf16", "backend": "deepspeed", "status": "ok", "comm": "nccl", "images_per_s": 5120.3,
              "loss_first": 2.31, "loss_last": 1.87, "loss_falls": True, "steps": 20, "wall_seconds": 14.2},
             {"run": "spos_fp32", "backend": "deepspeed", "status": "failed", "error": "RuntimeError: exit 1: boom"},
             {"kind": "digest", "status": "failed", "runs": "greedy_fp32 vs greedy_fp32_reference", "device": "cuda",
              "digests_equal": False, "max_abs_diff": 0.02, "max_abs_diff_at": "stem.0.weight",
              "rel_l2_diff": 0.004, "rel_tol": 0.001, "within_tolerance": False, "error": "AssertionError: x"}]
    return {"date": "2027-01-01 00:00:00 UTC", "profile": "gpu", "budget_s": 480, "total_seconds": 401.0,
            "machine": {"gpu": "NVIDIA H200", "gpu_memory_gib": 139.8, "cpus": 16, "python": "3.12.3",
                        "torch": "2.11.0+cu130", "torch_cuda": "13.0"},
            "checks": {"data": {"status": "ok", "seconds": 40.0, "limit_s": 60, "items": [
                           {"pipeline": "dali_mixed", "status": "ok", "images_per_s": 9000.0, "images": 2000,
                            "output_device": "cuda:0"}]},
                       "train": {"status": "failed", "seconds": 180.0, "limit_s": 200, "items": train},
                       "memory": {"status": "timeout", "seconds": 150.0, "limit_s": 150, "space": "paper",
                                  "resolution": 224, "items": mem,
                                  "error": "killed at its 150 s limit; the items above are what it finished"},
                       "pytest": {"status": "skipped", "limit_s": 0, "reason": "total budget of 480 s spent"}}}


def test_render_gpu_report_ratios_failures_and_timeouts():
    md = render(_gpu_report())
    assert "Machine: NVIDIA H200 (139.8 GiB), 16 CPUs" in md
    assert "| memory | timeout | 150.0 | 150 | killed at its 150 s limit" in md
    assert "| dali_mixed | 9000 | 2000 | cuda:0 |  |" in md
    assert "| greedy_bf16 | deepspeed | nccl | 5120.3 | 2.310 -> 1.870 | yes | 20 | 14.2 |  |" in md
    assert "**failed**: RuntimeError: exit 1: boom" in md
    assert "parameter sha256 different; largest difference 0.02 (stem.0.weight), relative L2 0.004" in md
    assert "**outside**" in md
    # % of SPOS at the same batch: measured allocated, reserved, accounted; paper column for greedy
    assert "| greedy | 2.000 | 25.0% | 4.000 | 40.0% | 1.000 | 25.0% | 1.250 | 25.0% | 43.9% |  |" in md
    assert "| non_greedy_balanced | 1.000 | 12.5% | 2.000 | 20.0% | 0.500 | 12.5% | 1.000 | 20.0% |  | " \
           "micro-batches {'-1': 8, '0': 9} |" in md
    assert "**batch 256**" in md and "**failed**: MemoryError: batch 256 does not fit" in md
    assert "Skipped: total budget of 480 s spent" in md


def test_status_and_pytest_summary():
    assert _status({"items": [{"status": "ok"}]}, None) == "timeout"
    assert _status({"items": [{"status": "ok"}, {"status": "failed"}]}, 0) == "failed"
    assert _status({"items": [{"status": "skipped"}]}, 0) == "skipped"
    assert _status({"items": []}, 3) == "failed" and _status({"items": [{"status": "ok"}]}, 0) == "ok"
    text = "....s\nSKIPPED [1] tests/x.py:3: no CUDA\n3 passed, 1 skipped, 812 deselected in 40.2s\n"
    assert summary(text) == {"passed": 3, "skipped": 1, "deselected": 812}
    assert summary("no tests ran in 1.0s") == {}
