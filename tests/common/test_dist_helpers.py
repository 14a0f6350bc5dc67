"""common/dist.py queries without a process group, the CPU thread split and the divisibility check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lwsl_ds.common import dist
from lwsl_ds.config.schema import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_no_group_means_one_rank():
    # A fresh interpreter: in-process engine tests of the same session may have created a process group.
    code = ("from lwsl_ds.common import dist; "
            "print(dist.has_group(), dist.group_size(), dist.group_rank(), dist.is_multi_rank())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "1", "0", "False"], out.stderr[-2000:]


def test_cpu_threads_split_over_local_ranks(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(dist.os, "cpu_count", lambda: 16)
    try:
        assert dist.set_cpu_threads(None, 4) == 4 and torch.get_num_threads() == 4
        assert dist.set_cpu_threads(3, 4) == 3
        assert dist.set_cpu_threads(None, 32) == 1
    finally:
        torch.set_num_threads(before)


def test_check_divides_names_the_key():
    dist.check_divides(2, 4, "train.parallel.data_parallel")
    with pytest.raises(ConfigError, match=r"train.parallel.data_parallel=3 does not divide the world size 4"):
        dist.check_divides(3, 4, "train.parallel.data_parallel")
