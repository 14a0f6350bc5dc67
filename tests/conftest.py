"""Shared fixtures: paths to the read-only data beside the checkout, small thread counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LWSL_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(min(2, os.cpu_count() or 1))
# The named data sets (cifar10-jpeg/, nas-bench-macro/) default to $LWSL_DATA_DIR; point it at the shared
# folder so in-process calls and the launchers the tests start (they inherit the environment) find them.
if SHARED_DATA.is_dir():
    os.environ.setdefault("LWSL_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real third-party data (../shared/data); skip with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (set LWSL_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nasbench_table(shared_data: Path) -> dict:
    """The NAS-Bench-Macro ground truth (6561 keys)."""
    import json

    return json.loads((shared_data / "nas-bench-macro" / "nas-bench-macro_cifar10.json").read_text())


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: on a shared 2-core machine two spinning OpenMP threads run several
    times slower (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
