"""The launchers share their argument groups (config/cli_args.py): every one parses, and the backend names
the train launchers offer are the engines' registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_backend_names_are_the_registry():
    from lwsl_ds.config.cli_args import BACKEND_NAMES
    from lwsl_ds.engines import BACKENDS

    assert sorted(BACKEND_NAMES) == sorted(BACKENDS)


@pytest.mark.parametrize("launcher", ["train", "train_layer_parallel", "search", "rank", "groundtruth", "retrain"])
def test_help_lists_the_shared_arguments(launcher):
    out = subprocess.run([sys.executable, str(REPO / "launchers" / f"{launcher}.py"), "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    text = " ".join(out.stdout.split())  # argparse wraps to the terminal width
    assert "--set KEY=VALUE" in text and "--local_rank" not in text  # accepted, hidden
    if launcher in ("search", "rank"):
        assert "--checkpoint" in text and "recorded config" in text
    if launcher.startswith("train"):
        assert "{deepspeed,reference}" in text and "--run_dir" in text
