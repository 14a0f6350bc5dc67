"""common/dist.py queries without a process group, the CPU thread split and the divisibility check."""

from __future__ import annotations

import pytest
import torch

from lwsl_ds.common import dist
from lwsl_ds.config.schema import ConfigError


def test_no_group_means_one_rank():
    assert not dist.has_group()
    assert (dist.group_size(), dist.group_rank(), dist.is_multi_rank()) == (1, 0, False)


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
