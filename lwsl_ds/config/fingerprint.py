"""Resume fingerprints: everything about a run that must not change when it is continued from a checkpoint.

A checkpoint's manifest records :func:`train_fingerprint` / :func:`retrain_fingerprint` (a flat dict of
``key -> value``); ``--resume`` compares it with the fingerprint of the command being run and
:func:`check_resume` refuses any difference, listing every key with both values and how to start a new
run instead. The rule is an allow-list: every key of the phase's config sections is fingerprinted except
those in ``MAY_CHANGE`` (how often to log or checkpoint, how many checkpoints to keep, threads, workers,
progress bar, timeouts, the held-out check and the run length - a longer schedule is refused or re-planned by
``train.extend`` / ``retrain.extend``, see ``engines/extend.py``).
From the ds_config: batch sizes, precision, ZeRO stage, gradient clipping, optimizer and scheduler.
"""

from __future__ import annotations

from typing import Any, Mapping

from .schema import ConfigError, to_dict

__all__ = ["MAY_CHANGE", "train_fingerprint", "saved_train_fingerprint", "retrain_fingerprint", "check_resume", "flatten"]

# Keys (flattened) that may differ between a run and its resume.
MAY_CHANGE = frozenset("""
train.log_every train.checkpoint_every train.keep_checkpoints train.threads train.progress train.max_minutes
train.max_steps train.epochs train.dist_timeout_s train.extend train.heldout_archs train.parallel.timeout_s
retrain.log_every_steps retrain.checkpoint_every_steps retrain.keep_checkpoints retrain.max_steps retrain.epochs
retrain.eval_every_epochs retrain.eval_batches retrain.export retrain.dist_timeout_s retrain.arch retrain.extend
data.num_workers data.num_threads
""".split())

# Keys added after checkpoints were already being written, with their value before they existed: fingerprinted
# only when set to something else, so a checkpoint from before the key still resumes.
_ADDED_LATER = {"train.channels_last": False, "retrain.channels_last": False}

_DS_KEYS = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size", "fp16", "bf16",
            "torch_autocast", "zero_optimization.stage", "gradient_clipping", "optimizer", "scheduler")


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and scalars are leaves)."""
    if isinstance(doc, Mapping) and doc:
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: doc}


def _ds_part(ds: Mapping[str, Any], world_size: int) -> dict[str, Any]:
    from .ds_config import micro_batch_size

    flat = flatten({k: v for k, v in ds.items() if not str(k).startswith("_")})
    out = {}
    for key in _DS_KEYS:
        for k, v in flat.items():
            if k == key or k.startswith(key + "."):
                out[f"ds_config.{k}"] = v
    out["ds_config.micro_batch_per_rank"] = micro_batch_size(ds, world_size)
    return out


def _keep(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items()
            if k not in MAY_CHANGE and not (k in _ADDED_LATER and v == _ADDED_LATER[k])}


def train_fingerprint(cfg: Any, ds: Mapping[str, Any], world_size: int, backend: str) -> dict[str, Any]:
    """Super-net training: seeds, space, data, train section (minus MAY_CHANGE), ds_config, world size, backend."""
    d = to_dict(cfg)
    flat = flatten({"seed": d["seed"], "space": d["space"], "data": d["data"], "train": d["train"]})
    return {**_keep(flat), **_ds_part(ds, world_size), "world_size": world_size, "backend": backend}


def saved_train_fingerprint(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fingerprint a training checkpoint recorded; rebuilt from its config and ds_config when it is older
    than fingerprints (None when it holds neither)."""
    if isinstance(manifest.get("fingerprint"), Mapping):
        return dict(manifest["fingerprint"])
    if not isinstance(manifest.get("config"), Mapping) or not isinstance(manifest.get("ds_config"), Mapping):
        return None
    from .loader import parse_experiment

    try:
        cfg = parse_experiment(dict(manifest["config"]))
    except ConfigError:
        return None
    return train_fingerprint(cfg, manifest["ds_config"], int(manifest.get("world_size", 1)),
                             str(manifest.get("backend", "deepspeed")))


def retrain_fingerprint(exp: Any, ds: Mapping[str, Any], world_size: int, arch: str, space: str) -> dict[str, Any]:
    """Retraining: seeds, data, retrain section (minus MAY_CHANGE), arch, space, ds_config, world size."""
    d = to_dict(exp)
    flat = flatten({"seed": d["seed"], "data": d["data"], "retrain": d["retrain"]})
    return {**_keep(flat), **_ds_part(ds, world_size), "world_size": world_size, "arch": arch,
            "space.name": space}


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:60] + "..."


def check_resume(saved: Mapping[str, Any] | None, now: Mapping[str, Any], where: str, new_run: str) -> None:
    """Raise ConfigError listing every key whose value differs between the checkpoint and this command."""
    if saved is None:
        return
    saved, now = {**_ADDED_LATER, **saved}, {**_ADDED_LATER, **now}  # a key left out means its old default
    _none = object()
    diff = [k for k in sorted(set(saved) | set(now)) if k not in MAY_CHANGE and saved.get(k, _none) != now.get(k, _none)
            and not (k.startswith("ds_config.") and k not in saved and now.get(k) is None)]
    if diff:
        parts = [f"{k}: {_show(saved.get(k, '<unset>'))} in the checkpoint, {_show(now.get(k, '<unset>'))} now"
                 for k in diff[:8]]
        more = f" (+{len(diff) - 8} more)" if len(diff) > 8 else ""
        raise ConfigError(f"{where}: --resume refused, this command differs from the run it would continue: "
                          f"{'; '.join(parts)}{more}. Resume with the run's own settings, or {new_run}")
