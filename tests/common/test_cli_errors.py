"""The `lwsl` command reports a bad argument as one `error:` line and exit 2, like every launcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lwsl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lwsl_ds.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_unknown_space_is_one_line():
    r = _lwsl("space", "no_such_space")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no_such_space" in lines[0]


def test_report_of_a_missing_folder_is_one_line(tmp_path):
    r = _lwsl("report", str(tmp_path / "nothing-here"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nothing-here" in lines[0]
