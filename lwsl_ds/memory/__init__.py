"""Memory levers and accounting: the levers around an update backend, model states per engine, activations
of a real strategy step (meta device), balance.

Example::

    from lwsl_ds.memory import Levers, account_step, auto_balance
    spos = account_step("paper", "spos", batch_size=128, resolution=224)
    bal = auto_balance("paper", "non_greedy", batch_size=128, resolution=224)
    bal.account.activation_peak / spos.activation_peak
    account_step("paper", "greedy", 128, groups=[[0, 1], [2, 3]], levers=Levers(offload_inactive=True))
"""

from .balance import (MicroBatchBackend, checkpoint_choices, micro_backward_calls, micro_group_calls,
                      plan_micro_batches, split_batch)
from .checkpointing import CheckpointBackend
from .levers import NO_LEVERS, Levers, resolve_levers, wrap_levers
from .planner import BalancePlan, auto_balance, calibrate
from .states import DEFAULT_BUCKET, EngineSettings, EngineStates, engine_states, offloaded_device_states
from .step import AccountingBackend, StepAccount, WorstCaseRng, account_step, build_net
from .tracker import CATEGORIES, PhaseProfile, StepProfile, StepTracker, saved_bytes

__all__ = ["Levers", "NO_LEVERS", "resolve_levers", "wrap_levers", "CheckpointBackend", "MicroBatchBackend",
           "checkpoint_choices", "micro_backward_calls", "micro_group_calls", "plan_micro_batches", "split_batch",
           "BalancePlan", "auto_balance", "calibrate", "DEFAULT_BUCKET", "EngineSettings", "EngineStates", "engine_states",
           "offloaded_device_states", "AccountingBackend", "StepAccount", "WorstCaseRng", "account_step", "build_net",
           "CATEGORIES", "PhaseProfile", "StepProfile", "StepTracker", "saved_bytes"]
