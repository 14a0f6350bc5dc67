"""Extending a resumed run: a longer schedule is re-planned or refused, never silently trained at lr 0.

The cosine factors (``optim._CosineFactor``, ``retrain.recipe.WarmupCosine``) are callable objects, so
``LambdaLR.load_state_dict`` restores their ``total`` from the checkpoint: a run resumed with more steps
(``train.max_steps`` / ``train.epochs`` or ``retrain.epochs`` raised) would otherwise keep the old end of
the schedule and train every extra step at the final learning rate (0 by default).

``replan`` sets the schedule's end to the new total: the run continues on the cosine it would have had
if it had been started with the new length (at the resume step the lr jumps from the old schedule's value
to the new one's; warmup is unchanged). Both values are logged.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from ..config.schema import ConfigError

__all__ = ["schedulers_of", "extend_schedules"]


def schedulers_of(backend: Any) -> list:
    """The LR schedulers of an update backend (DeepSpeed engines or the reference backend; wrappers pass through)."""
    engines = getattr(backend, "engines", None)
    if engines is None and getattr(backend, "engine", None) is not None:  # one layer-parallel stage
        engines = [backend.engine]
    if engines is not None:
        return [getattr(e, "lr_scheduler", None) for e in engines]
    if getattr(backend, "scheduler", None) is not None:
        return [backend.scheduler]
    return list(getattr(backend, "schedulers", []) or [])


def _factors(sched: Any) -> list:
    return [f for f in getattr(sched, "lr_lambdas", []) if hasattr(f, "total")]


def extend_schedules(schedulers: Iterable[Any], *, old_total: Optional[int], total: int, step: int, mode: str,
                     key: str) -> Optional[str]:
    """Re-plan (``mode='replan'``) or refuse (``'refuse'``, ConfigError) a schedule that ends before ``total``.

    ``old_total``: the end the checkpoint's run planned (None: read it from the restored schedules).
    Returns the log line of a re-plan, None when the schedule already spans ``total`` steps.
    """
    scheds = [s for s in schedulers if s is not None]
    ends = [f.total for s in scheds for f in _factors(s)]
    old = old_total if old_total is not None else (max(ends) if ends else None)
    if old is None or total <= old:
        return None
    final = min((f.min_ratio for s in scheds for f in _factors(s)), default=0.0)
    if mode != "replan":
        raise ConfigError(f"{key}: the checkpoint's learning-rate schedule ends at step {old} but this run asks for "
                          f"{total} steps: steps {old + 1}..{total} would train at the final lr (x{final:g}); set "
                          f"{key}=replan to re-plan the cosine over {total} steps from step {step}, or keep the "
                          "old length")
    before, after = [], []
    for s in scheds:
        if not _factors(s):
            raise ConfigError(f"{key}=replan: scheduler {type(s).__name__} cannot be re-planned (only the "
                              "toolkit's cosine schedules); keep the old length")
        before += list(s.get_last_lr())
        for f in _factors(s):
            f.total = total
        # LambdaLR keeps the last lr in the groups: recompute it for the current step with the new end.
        lrs = [base * lam(s.last_epoch) for base, lam in zip(s.base_lrs, s.lr_lambdas)]
        for group, lr in zip(s.optimizer.param_groups, lrs):
            group["lr"] = lr
        s._last_lr = lrs
        after += lrs
    return (f"{key}=replan: learning-rate schedule extended from {old} to {total} steps at step {step}; lr "
            f"{max(before):.4g} -> {max(after):.4g} (cosine to x{final:g} at step {total})")
