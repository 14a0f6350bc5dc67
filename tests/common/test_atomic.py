"""common/atomic.py: a write either replaces the file whole or leaves the old one; a full disk names the file."""

from __future__ import annotations

import json

import pytest

from lwsl_ds.common.atomic import atomic_path, write_atomic, write_json_atomic
from lwsl_ds.common.errors import DiskFullError


def test_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    write_atomic(p, "old")
    write_json_atomic(p, {"x": [1, 2]}, sort_keys=True)
    assert json.loads(p.read_text()) == {"x": [1, 2]}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_error_inside_keeps_old_file_and_removes_temp(tmp_path):
    p = tmp_path / "state.txt"
    write_atomic(p, "good")
    with pytest.raises(KeyError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise KeyError("writer died")
    assert p.read_text() == "good"
    assert not (tmp_path / "state.txt.tmp").exists()


def test_simulated_full_disk_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LWSL_FAULT", "enospc")
    with pytest.raises(DiskFullError, match="state.txt"):
        write_atomic(tmp_path / "state.txt", "x")
    assert list(tmp_path.iterdir()) == []
