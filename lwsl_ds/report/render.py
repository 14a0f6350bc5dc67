"""Render a report in headless Chromium: a screenshot, and a check that every image decoded."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["find_chromium", "check_images", "screenshot"]

# Flags for a closed network and root: no sandbox, no background traffic, a fresh profile each time.
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--virtual-time-budget=10000"]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium binary found (Debian package 'chromium')")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def check_images(html_path: str | Path, timeout: float = 120) -> tuple[int, list[str]]:
    """(number of images that decoded, alt texts of broken ones) after the page's load event."""
    out = _run(["--dump-dom", Path(html_path).resolve().as_uri()], timeout)
    m_ok = re.search(r'data-images-ok="(\d+)"', out.stdout)
    m_bad = re.search(r'data-images-broken="([^"]*)"', out.stdout)
    if not m_ok or not m_bad:
        raise RuntimeError(f"page did not finish loading in chromium: {out.stderr[-2000:]}")
    return int(m_ok.group(1)), json.loads(m_bad.group(1).replace("&quot;", '"'))


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1200, height: int = 4000,
               timeout: float = 120) -> Path:
    """Full-page-ish PNG screenshot of the report."""
    png = Path(png_path).resolve()
    _run([f"--screenshot={png}", f"--window-size={width},{height}", Path(html_path).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png
