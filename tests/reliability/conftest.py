"""Session fixtures: one tiny trained super-net run (ZeRO 1, so it has an optimizer file) shared by the cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import run, train_cmd, write_ds


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A finished 2-step run with a checkpoint at step 2: {"root", "run", "ds", "ckpt"} (treat as read-only)."""
    base = tmp_path_factory.mktemp("reliability")
    ds = write_ds(base / "ds.json", zero_stage=1)
    r = run(train_cmd(ds, base / "runs", "tiny", "train.max_steps=2", "train.checkpoint_every=2"))
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = base / "runs" / "tiny"
    ckpt = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    return {"base": base, "root": base / "runs", "run": run_dir, "ds": ds, "ckpt": ckpt}
