"""A full disk ends training with one line naming the file that could not be written (a real 256 KiB tmpfs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .helpers import run, train_cmd, write_ds


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()[:200]}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_names_the_file(small_fs: Path, tmp_path):
    ds = write_ds(tmp_path / "ds.json")
    r = run(train_cmd(ds, small_fs, "full", "train.max_steps=4", "train.checkpoint_every=2"))
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device writing " + str(small_fs / "full") in errors[0], \
        r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "iostream" not in errors[0]
