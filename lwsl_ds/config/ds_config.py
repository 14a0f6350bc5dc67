"""DeepSpeed JSON configs: load, validate before any work starts, derive one config per layer group.

DeepSpeed checks nested sections (``zero_optimization``, ``bf16``, monitors) with pydantic, but silently
accepts typos at the top level and only asserts on batch sizes deep inside ``initialize``. This module
catches those first, with messages naming the file, the key and the value. No DeepSpeed import here
unless ``deep=True`` (pydantic check of the nested sections, about 2 s of import).

Example::

    cfg = load_ds_config("ds_configs/train_cpu.json")
    validate_ds_config(cfg, world_size=2)
"""

from __future__ import annotations

import copy
import difflib
import json
from pathlib import Path
from typing import Any, Mapping

from .schema import ConfigError

__all__ = ["load_ds_config", "validate_ds_config", "micro_batch_size", "merge_config", "derive_group_config",
           "KNOWN_TOP_LEVEL_KEYS", "OPTIMIZERS", "SCHEDULERS", "check_optimizer_values", "check_scheduler_values"]

# Top-level keys DeepSpeed 0.19.8 reads (runtime/config.py and constants.py). Keys starting with "_" are
# treated as comments ("_comment": "...") and ignored.
KNOWN_TOP_LEVEL_KEYS = frozenset("""
train_batch_size train_micro_batch_size_per_gpu gradient_accumulation_steps managed_gradient_accumulation
steps_per_print dump_state optimizer scheduler zero_optimization zero_allow_untested_optimizer
zero_force_ds_cpu_optimizer fp16 bf16 bfloat16 torch_autocast amp gradient_clipping prescale_gradients
gradient_predivide_factor gradient_allreduce_op communication_data_type seq_parallel_communication_data_type
sparse_gradients disable_allgather disable_python_gc wall_clock_breakdown memory_breakdown flops_profiler
comms_logger tensorboard csv_monitor wandb comet aim activation_checkpointing elasticity autotuning
curriculum_learning data_efficiency compression_training checkpoint data_types pipeline aio nebula
sparse_attention hybrid_engine compile weight_quantization timers graph_harvesting
use_data_before_expert_parallelism dataloader_drop_last eigenvalue progressive_layer_drop quantize_training
log_level vocabulary_size tensor_parallel expert_parallel zenflow
""".split())

# Optimizers this toolkit builds itself (so parameter groups can be skipped, see engines/optim.py).
# DeepSpeed's own semantics are kept: "Adam" is AdamW unless "adam_w_mode": false.
OPTIMIZERS = {
    "adam": {"lr", "betas", "eps", "weight_decay", "adam_w_mode", "torch_adam", "amsgrad", "bias_correction"},
    "adamw": {"lr", "betas", "eps", "weight_decay", "torch_adam", "amsgrad", "bias_correction"},
    "sgd": {"lr", "momentum", "weight_decay", "nesterov", "dampening"},
}
# "Cosine" is this toolkit's own (cosine annealing without DeepSpeed's forced warmup; engines/optim.py).
SCHEDULERS = ("Cosine", "WarmupCosineLR", "WarmupLR", "WarmupDecayLR", "OneCycle", "LRRangeTest")


def _hint(key: str, allowed) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_ds_config(path: str | Path) -> dict:
    """Read a ds_config JSON file; malformed JSON names the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: ds_config file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object, got {type(data).__name__}")
    return data


def micro_batch_size(cfg: Mapping[str, Any], world_size: int = 1) -> int:
    """Per-rank micro-batch size implied by a (validated) ds_config."""
    if "train_micro_batch_size_per_gpu" in cfg:
        return int(cfg["train_micro_batch_size_per_gpu"])
    gas = int(cfg.get("gradient_accumulation_steps", 1))
    return int(cfg["train_batch_size"]) // (gas * world_size)


def _positive_int(cfg: Mapping[str, Any], key: str, where: str) -> int | None:
    if key not in cfg:
        return None
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{where}{key}: expected a positive integer, got {v!r}")
    return v


def validate_ds_config(cfg: Mapping[str, Any], world_size: int, *, where: str = "<ds_config>",
                       require_explicit_clipping: bool = True, deep: bool = False) -> None:
    """Check top-level keys, batch arithmetic, optimizer, scheduler, ZeRO stage and clipping; raise ConfigError."""
    w = f"{where}: "
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{w}the top level must be a JSON object")
    for key in cfg:
        if key.startswith("_"):
            continue
        if key not in KNOWN_TOP_LEVEL_KEYS:
            raise ConfigError(f"{w}unknown top-level key {key!r}{_hint(key, KNOWN_TOP_LEVEL_KEYS)}; DeepSpeed "
                              "would silently ignore it")
    tbs = _positive_int(cfg, "train_batch_size", w)
    micro = _positive_int(cfg, "train_micro_batch_size_per_gpu", w)
    gas = _positive_int(cfg, "gradient_accumulation_steps", w)
    if tbs is None and micro is None:
        raise ConfigError(f"{w}set train_micro_batch_size_per_gpu (the per-rank batch size; the only place "
                          "the batch size is configured)")
    if tbs is not None and micro is not None:
        g = gas or 1
        if tbs != micro * g * world_size:
            raise ConfigError(f"{w}batch sizes do not multiply out: train_batch_size={tbs} != "
                              f"train_micro_batch_size_per_gpu={micro} x gradient_accumulation_steps={g} x "
                              f"world_size={world_size} = {micro * g * world_size}")
    elif tbs is not None and tbs % ((gas or 1) * world_size):
        raise ConfigError(f"{w}train_batch_size={tbs} is not divisible by gradient_accumulation_steps="
                          f"{gas or 1} x world_size={world_size}")
    opt = cfg.get("optimizer")
    if opt is not None:
        if not isinstance(opt, Mapping) or "type" not in opt:
            raise ConfigError(f"{w}optimizer: expected an object with a 'type' key, got {opt!r}")
        t = str(opt["type"]).lower()
        if t not in OPTIMIZERS:
            raise ConfigError(f"{w}optimizer.type: unknown optimizer {opt['type']!r}; supported: "
                              f"{['Adam', 'AdamW', 'SGD']}")
        params = opt.get("params", {})
        if not isinstance(params, Mapping):
            raise ConfigError(f"{w}optimizer.params: expected an object, got {params!r}")
        for k in params:
            if k not in OPTIMIZERS[t]:
                raise ConfigError(f"{w}optimizer.params.{k}: unknown for {opt['type']}{_hint(k, OPTIMIZERS[t])}; "
                                  f"allowed: {sorted(OPTIMIZERS[t])}")
        extra = set(opt) - {"type", "params"}
        if extra:
            raise ConfigError(f"{w}optimizer: unknown keys {sorted(extra)}; allowed: ['params', 'type']")
        check_optimizer_values(params, w)
    sch = cfg.get("scheduler")
    if sch is not None:
        if not isinstance(sch, Mapping) or sch.get("type") not in SCHEDULERS:
            got = sch.get("type") if isinstance(sch, Mapping) else sch
            raise ConfigError(f"{w}scheduler.type: unknown scheduler {got!r}{_hint(got, SCHEDULERS)}; "
                              f"supported: {list(SCHEDULERS)}")
        check_scheduler_values(sch.get("params", {}), w)
    zero = cfg.get("zero_optimization", {})
    if not isinstance(zero, Mapping):
        raise ConfigError(f"{w}zero_optimization: expected an object, got {zero!r}")
    stage = zero.get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"{w}zero_optimization.stage: {stage!r} is not one of [0, 1, 2, 3]")
    if require_explicit_clipping and "gradient_clipping" not in cfg:
        raise ConfigError(f"{w}gradient_clipping is not set; DeepSpeed would silently clip at 1.0. Set it "
                          "explicitly (0.0 disables clipping)")
    gc = cfg.get("gradient_clipping", 0.0)
    if isinstance(gc, bool) or not isinstance(gc, (int, float)) or gc < 0:
        raise ConfigError(f"{w}gradient_clipping: expected a number >= 0, got {gc!r}")
    if deep:
        _deep_validate(cfg, where)


MAX_LR = 10.0  # far above any sane rate; 1e30 or inf used to train until the non-finite-loss stop


def _number(v: Any, key: str, w: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
            hi_open: bool = False) -> float:
    """``v`` as a finite number inside the given bounds, else a ConfigError naming ``key``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
        raise ConfigError(f"{w}{key}: expected a finite number, got {str(v)[:40]!r}")
    if lo is not None and (v < lo or (lo_open and v == lo)) or hi is not None and (v > hi or (hi_open and v == hi)):
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}" \
              f"{')' if hi_open else ']'}"
        raise ConfigError(f"{w}{key}: {v!r} is out of range; it must be in {rng}")
    return float(v)


def check_optimizer_values(params: Mapping[str, Any], w: str = "") -> None:
    """Optimizer parameter values (lr, betas, eps, weight_decay, momentum, dampening) before any engine exists."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{w}optimizer.params: expected an object, got {str(params)[:60]!r}")
    k = "optimizer.params."
    if "lr" in params:
        _number(params["lr"], k + "lr", w, 0.0, MAX_LR, lo_open=True)
    if "betas" in params:
        b = params["betas"]
        if not isinstance(b, (list, tuple)) or len(b) != 2:
            raise ConfigError(f"{w}{k}betas: expected two numbers in [0, 1), got {str(b)[:60]!r}")
        for i, x in enumerate(b):
            _number(x, f"{k}betas[{i}]", w, 0.0, 1.0, hi_open=True)
    if "eps" in params:
        _number(params["eps"], k + "eps", w, 0.0, 1.0, lo_open=True)
    for key in ("weight_decay", "momentum", "dampening"):
        if key in params:
            _number(params[key], k + key, w, 0.0, 1.0 if key != "weight_decay" else 1.0)
    for key in ("adam_w_mode", "torch_adam", "amsgrad", "bias_correction", "nesterov"):
        if key in params and not isinstance(params[key], bool):
            raise ConfigError(f"{w}{k}{key}: expected true/false, got {str(params[key])[:40]!r}")


def check_scheduler_values(params: Any, w: str = "") -> None:
    """Scheduler parameter values (step counts, ratios, lr bounds) before any engine exists."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{w}scheduler.params: expected an object, got {str(params)[:60]!r}")
    k = "scheduler.params."
    for key, v in params.items():
        if key.endswith("num_steps") or key.endswith("_step_size") or key == "total_num_steps":
            if v == "auto" and key == "total_num_steps":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{w}{k}{key}: expected an integer >= 0" + (" or \"auto\"" if key ==
                                  "total_num_steps" else "") + f", got {str(v)[:40]!r}")
        elif key.endswith("ratio"):
            _number(v, k + key, w, 0.0, 1.0)
        elif key.endswith("_lr"):
            _number(v, k + key, w, 0.0, MAX_LR)


def _deep_validate(cfg: Mapping[str, Any], where: str) -> None:
    """Let DeepSpeed's own pydantic models check the nested sections (world size 1 view of the batch)."""
    from deepspeed.runtime.config import DeepSpeedConfig

    c = copy.deepcopy(dict(cfg))
    micro = micro_batch_size(c, 1) if "train_micro_batch_size_per_gpu" in c else None
    if micro is not None:
        c["train_batch_size"] = micro * int(c.get("gradient_accumulation_steps", 1))
    try:
        DeepSpeedConfig(c)
    except Exception as e:  # pydantic ValidationError, AssertionError: re-raise with the file name
        raise ConfigError(f"{where}: DeepSpeed rejects the config: {type(e).__name__}: {e}") from None


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """Deep-merge ``override`` into a copy of ``base`` (objects merge, everything else replaces)."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_config(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# Per-engine ZeRO bucket default: DeepSpeed's 5e8 elements is 2 GB of fp32 *per engine*.
DEFAULT_BUCKET = int(2e7)


def derive_group_config(base: Mapping[str, Any], override: Mapping[str, Any] | None, *, group: int,
                        backward_calls: int, world_size: int, job_name: str,
                        monitor_dir: str | Path | None = None) -> dict:
    """The ds_config of one layer group's engine.

    ``gradient_accumulation_steps`` becomes the number of backward calls this engine gets per training step
    (each backward is one micro-step, ``scale_wrt_gas=False``: the only way ZeRO 1/2 sum several losses per
    step correctly: with the default scaling ZeRO 1/2 average the losses instead of summing them). ``optimizer``/``scheduler`` stay in the returned
    dict for :func:`lwsl_ds.engines.optim.build_optimizer`; the engine factory removes them before
    ``deepspeed.initialize`` because the toolkit builds them itself. Enabled monitors get ``job_name`` and,
    unless the ds_config sets one, ``monitor_dir`` as their output path (DeepSpeed's default is the cwd).
    """
    cfg = merge_config(base, override or {})
    validate_ds_config(cfg, world_size, where=f"ds_config of layer group {group}")
    gas0 = int(cfg.get("gradient_accumulation_steps", 1))
    if gas0 != 1:
        raise ConfigError(f"ds_config of layer group {group}: gradient_accumulation_steps={gas0}; super-net "
                          "training sets it itself (one micro-step per backward call); remove it or set 1")
    stage = cfg.get("zero_optimization", {}).get("stage", 0)
    if stage == 3:
        raise ConfigError(f"ds_config of layer group {group}: zero_optimization.stage 3 is not supported for "
                          "super-net training (it partitions parameters that strategies read outside the "
                          "engine, and re-applies stale gradients to unsampled choices); use 0, 1 or 2")
    micro = micro_batch_size(cfg, world_size)
    cfg["train_micro_batch_size_per_gpu"] = micro
    cfg["gradient_accumulation_steps"] = int(backward_calls)
    cfg["train_batch_size"] = micro * int(backward_calls) * world_size
    cfg["zero_allow_untested_optimizer"] = True  # our optimizer subclass (skippable groups) is a torch Adam
    if stage in (1, 2):
        z = cfg.setdefault("zero_optimization", {})
        z.setdefault("reduce_bucket_size", DEFAULT_BUCKET)
        z.setdefault("allgather_bucket_size", DEFAULT_BUCKET)
    for mon in ("csv_monitor", "tensorboard", "wandb", "comet"):
        if isinstance(cfg.get(mon), Mapping) and cfg[mon].get("enabled"):
            cfg[mon] = dict(cfg[mon], job_name=job_name)
            if monitor_dir is not None and mon in ("csv_monitor", "tensorboard"):
                cfg[mon].setdefault("output_path", str(monitor_dir))
    return cfg
