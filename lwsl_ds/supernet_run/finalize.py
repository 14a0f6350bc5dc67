"""The end of a super-net run: the atomic ``supernet.pt``, the ranks' digests, the held-out check, a preemption exit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..common.logging import get_logger

__all__ = ["save_supernet", "finish_data_parallel", "exit_preempted"]

log = get_logger("lwsl_ds.supernet_run")


def save_supernet(state: dict[str, Any], run_dir: Path) -> Path:
    """Write the final weights to ``run_dir/supernet.pt`` atomically (a killed writer leaves the old file)."""
    import torch

    from ..common.atomic import atomic_path

    path = run_dir / "supernet.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def finish_data_parallel(net: Any, run_dir: Path, *, step: int, world_size: int, heldout_cfg: Any,
                         heldout_archs: int) -> None:
    """Every rank's parameter digest (the ranks must agree), then rank 0 writes the weights and digests."""
    from ..common.digest import gather_digests, write_digests
    from ..common.dist import barrier, is_main

    digests = gather_digests(net)  # every rank, before rank 0 saves: the ranks must hold the same weights
    if is_main():
        save_supernet(net.state_dict(), run_dir)
        write_digests(run_dir / "param_digests.json", digests, step=step, world_size=world_size)
        if len({d["params"] for d in digests}) > 1:
            log.error("ranks ended with different parameters: %s", digests)
        log.info("done: %d steps, super-net weights in %s", step, run_dir / "supernet.pt")
        if heldout_archs:
            heldout_check(net, heldout_cfg, run_dir, heldout_archs)
    barrier()


def heldout_check(net: Any, cfg: Any, run_dir: Path, archs: int) -> None:
    """Score a few sampled sub-nets on held-out data (rank 0, after supernet.pt is written); never fails the run."""
    from ..common.dist import device
    from ..search.check import heldout_check as check

    try:
        doc = check(net, cfg, run_dir, archs=archs, device=device())
    except Exception as e:  # the weights are saved; a failed check must not fail the run
        log.warning("held-out check skipped: %s: %s", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return
    scores = ", ".join(f"{a['named']} {100 * a['score']:.2f}%" for a in doc["archs"])
    log.info("held-out check (%s, %d images): %s", doc["split"], doc["images"], scores)


def exit_preempted(preemption: Any, run_dir: Path, step: int, total: int) -> None:
    """After a preemption checkpoint: say how the run continues, requeue under Slurm, exit 0 (no supernet.pt)."""
    from ..common.dist import is_main

    if is_main():
        if os.environ.get("SLURM_JOB_ID"):
            how = (f"requeueing Slurm job {os.environ['SLURM_JOB_ID']}; it resumes by itself "
                   "(train.sbatch passes --resume)")
        else:
            how = "rerun the same command with --resume to continue"
        log.warning("preempted at step %d/%d by %s: checkpoint written under %s, no supernet.pt; %s", step, total,
                    preemption.signal_name or "a signal to another rank", run_dir / "checkpoints", how)
    preemption.requeue_and_exit(0)
