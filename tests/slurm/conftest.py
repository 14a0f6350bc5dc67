"""The ``slurm_cluster`` fixture: a real two-node Slurm cluster for the whole session (see cluster.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from .cluster import REPO, missing_binaries, start_cluster


def _install_packages() -> str:
    """Run scripts/system_deps.sh (what `make test` does first); returns its output for a skip reason."""
    try:
        out = subprocess.run(["bash", str(REPO / "scripts" / "system_deps.sh")], capture_output=True,
                             text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return (out.stdout + out.stderr).strip()[-400:]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """Start munged, slurmctld and slurmd n1/n2 on 127.0.0.1; skip only when Slurm cannot be installed."""
    if missing_binaries():
        if os.geteuid() != 0:
            pytest.skip(f"Slurm programs {missing_binaries()} are missing and installing them needs root")
        log = _install_packages()
        if missing_binaries():
            pytest.skip(f"Slurm programs {missing_binaries()} are missing and could not be installed: {log}")
    if os.geteuid() != 0:
        pytest.skip("a local Slurm cluster runs its daemons as root (SlurmUser=root); not root here")
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()
