"""Check 4: the tests marked ``gpu`` (``pytest -m gpu``), with the sample JPEGs where the tests look for them.

The data tests find the ImageNet sample folder as ``$LWSL_SHARED_DATA/imagenet-samples``; when the check
was given such a folder (``images`` ending in ``imagenet-samples``), its parent is passed as
``LWSL_SHARED_DATA``. Without CUDA the run is skipped with the reason: every selected test would skip.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .record import Result, check_main, cuda_reason, python, run_child

__all__ = ["summary", "run"]

REPO = Path(__file__).resolve().parents[2]


def summary(text: str) -> dict[str, int]:
    """Counts from pytest's closing line ('3 passed, 1 skipped, 120 deselected in 9.1s')."""
    lines = [ln for ln in text.splitlines() if re.search(r"\b(passed|failed|skipped|deselected|error)", ln)]
    if not lines:
        return {}
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed)", lines[-1])}


def run(p: dict[str, Any], result: Result) -> None:
    """Run ``pytest -m gpu`` on the whole suite and record its counts."""
    why = cuda_reason()
    if why:
        result.skip(f"{why}: every test marked gpu would skip", tests="pytest -m gpu")
        return
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    images = Path(p["images"]).resolve() if p.get("images") else None
    if images is not None and images.name == "imagenet-samples":
        env["LWSL_SHARED_DATA"] = str(images.parent)
    log = Path(p["out"]) / "logs" / "pytest_gpu.log"
    # A module that fails to import on that machine must not keep the GPU tests from running (it still
    # counts as an error in the summary).
    cmd = [python(), "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", "tests"]
    with result.item(tests="pytest -m gpu", command=" ".join(cmd[1:])) as rec:
        rc, secs = run_child(cmd, log, float(p["limit_s"]), cwd=REPO, env=env)
        text = log.read_text(errors="replace")
        rec.update(counts=summary(text), exit_code=rc,
                   skips=[ln.strip() for ln in text.splitlines() if ln.startswith("SKIPPED")][:10])
        if rc is None:
            raise TimeoutError(f"pytest over its {p['limit_s']} s limit (log {log})")
        if rc != 0:
            raise AssertionError(f"pytest exit {rc}: {rec['counts']}")


if __name__ == "__main__":
    raise SystemExit(check_main(run))
