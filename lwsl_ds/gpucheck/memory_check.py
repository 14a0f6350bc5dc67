"""Check 3: paper Table IV on a device: measured CUDA peaks of a real step beside the accounted peaks.

Per batch size, for spos, greedy, non_greedy and the balanced greedy / non_greedy (micro-batch plan from
``auto_balance``): ``max_memory_allocated`` and ``max_memory_reserved`` of one real strategy step on the
GPU (``lwsl_ds.memory.cuda.measure_step``: same worst-case draws, accounting backend, no optimizer) and
the accounted peaks of the same step (activations + batch; + model states of one fp32 Adam engine). The
report puts the ratios to SPOS next to the paper's 43.9% (greedy) / 52.6% (non-greedy). A batch that does
not fit is recorded as ``failed`` with the out-of-memory line, and the next item still runs.

Without CUDA the measured columns are skipped with the reason and only the accounting runs (small size).
"""

from __future__ import annotations

from typing import Any

from .record import Result, check_main, cuda_reason

__all__ = ["MODES", "PAPER_PCT", "run"]

MODES = ("spos", "greedy", "non_greedy", "greedy_balanced", "non_greedy_balanced")
PAPER_PCT = {"greedy": 43.9, "non_greedy": 52.6}  # paper Table IV, % of SPOS


def run(p: dict[str, Any], result: Result) -> None:
    """Measure (CUDA) and account every mode at every batch size."""
    import torch

    from ..memory import account_step, auto_balance
    from ..memory.cuda import measure_step

    space, res = p["space"], int(p["resolution"])
    why = cuda_reason()
    result.set(space=space, resolution=res, batches=p["batches"], paper_pct_of_spos=PAPER_PCT,
               measured=why is None, skipped_reason=why)
    for batch in p["batches"]:
        for mode in p.get("modes", MODES):
            strategy = mode.removesuffix("_balanced")
            with result.item(batch=int(batch), mode=mode) as rec:
                plan = None
                if mode.endswith("_balanced"):
                    bal = auto_balance(space, strategy, int(batch), resolution=res)
                    plan = bal.plan
                    rec["micro_batches"] = {str(k): v for k, v in plan.items()}
                    rec["balance_ratio"] = round(bal.balance_ratio(), 3)
                if why:  # accounted only; the measured columns say why they are empty
                    acc = bal.account if plan else account_step(space, strategy, int(batch), resolution=res)
                    rec.update(measured_skipped=why, accounted_activation_peak_bytes=acc.activation_peak,
                               accounted_device_peak_bytes=acc.device_peak)
                    continue
                try:
                    m = measure_step(space, strategy, int(batch), resolution=res, plan=plan)
                except torch.cuda.OutOfMemoryError as e:
                    torch.cuda.empty_cache()
                    raise MemoryError(f"batch {batch} does not fit: {str(e).splitlines()[0]}") from None
                rec.update({k: v for k, v in m.items() if k != "micro_batches"})


if __name__ == "__main__":
    raise SystemExit(check_main(run))
