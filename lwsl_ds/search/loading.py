"""Load a trained super-net from a run directory: the one place the search knows the checkpoint format.

Accepted ``run_dir`` forms:

1. a folder with a plain ``supernet.pt`` (``torch.save(supernet.state_dict())``; training writes its
   final weights there) and optionally a ``config.yaml``, unless a newer checkpoint exists:
2. a training run directory (``lwsl_ds/common/checkpoint.py``): ``<run>/checkpoints/latest`` names the
   newest complete checkpoint, whose ``supernet.pt`` holds the whole super-net's state dict and whose
   ``manifest.json`` holds the experiment config it was trained with (used when the run has no final
   ``supernet.pt`` or the checkpoint is newer, e.g. a run killed or resumed after it finished once);
3. a path to such a ``.pt`` file.

The super-net is rebuilt from the run's own config (space section + ``train`` objective settings); the
``config`` argument is used when the run has none, and when both exist their ``space`` sections must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from ..config.schema import ConfigError
from ..objectives import get_objective
from ..space.spec import load_space
from ..space.supernet import SuperNet

__all__ = ["build_supernet", "load_supernet_from_run", "STATE_DICT_FILE", "CONFIG_FILES"]

STATE_DICT_FILE = "supernet.pt"
CONFIG_FILES = ("config.yaml", "experiment.yaml")


def build_supernet(cfg: Any) -> SuperNet:
    """An untrained super-net of an experiment config (space section + train objective settings)."""
    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    t = cfg.train
    objective = get_objective(t.objective, space.num_classes, proj_dim=t.proj_dim, temperature=t.temperature,
                              mlp=t.mlp_decoder, label_smoothing=t.label_smoothing)
    return SuperNet(space, objective)


def _space_of(cfg: Any) -> tuple:
    return (cfg.space.name, cfg.space.resolution, cfg.space.num_classes)


def _pick_config(own: Optional[Any], given: Optional[Any], where: Path) -> Any:
    """The run's own config, checked against the caller's; the caller's when the run has none."""
    if own is None:
        if given is None:
            raise ConfigError(f"{where}: no experiment config ({' or '.join(CONFIG_FILES)} or a checkpoint "
                              "manifest) to rebuild the super-net from; pass config=")
        return given
    if given is not None and _space_of(own) != _space_of(given):
        raise ConfigError(f"{where}: the super-net was trained on space {_space_of(own)} (name, resolution, "
                          f"classes) but the config asks for {_space_of(given)}")
    return own


def _folder_config(run: Path) -> Optional[Any]:
    from ..config.loader import load_experiment

    for name in CONFIG_FILES:
        if (run / name).is_file():
            return load_experiment(run / name)
    return None


def load_supernet_from_run(run_dir: str | Path, *, config: Optional[Any] = None,
                           map_location: str | torch.device = "cpu") -> SuperNet:
    """The trained super-net of a run (weights and BN statistics), in eval mode.

    ``run_dir`` is a training run directory, a folder with ``supernet.pt``, or a ``.pt`` state-dict file
    (see the module docstring); ``config`` (an ExperimentConfig) is used when the run carries none.
    """
    path = Path(run_dir)
    if not path.exists():
        raise ConfigError(f"--checkpoint {path}: no such run directory or file")
    own = None
    if path.is_dir():
        from ..common.checkpoint import find_latest

        latest = find_latest(path, verify=False)
        final = path / STATE_DICT_FILE
        if latest is not None and final.is_file() and \
                final.stat().st_mtime >= (latest[0] / STATE_DICT_FILE).stat().st_mtime:
            latest = None  # the run's final weights, written after its newest checkpoint
        if latest is not None:
            ck_dir, manifest = latest
            from ..common.safe_io import verify_digests

            verify_digests(ck_dir)  # the checkpoint's files match its sha256.json before any is read
            weights = ck_dir / STATE_DICT_FILE
            if "config" in manifest:
                from ..config.loader import parse_experiment

                own = parse_experiment(manifest["config"])
            else:
                own = _folder_config(path)
        else:
            weights = path / STATE_DICT_FILE
            own = _folder_config(path)
        if not weights.is_file():
            raise ConfigError(f"{path}: no {STATE_DICT_FILE} (neither a training checkpoint under "
                              f"{path / 'checkpoints'} nor a plain state dict in the folder)")
    else:
        weights = path
        own = _folder_config(path.parent)
    net = build_supernet(_pick_config(own, config, weights))
    from ..common.safe_io import load_tensor_file

    state = load_tensor_file(weights, map_location=map_location)  # weights-only: a planted pickle cannot run
    if not isinstance(state, dict):
        raise ConfigError(f"{weights}: not a state dict (a {type(state).__name__})")
    own_state = net.state_dict()
    missing = [k for k in own_state if k not in state]
    unexpected = [k for k in state if k not in own_state]
    shapes = [k for k in own_state if k in state and tuple(own_state[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        raise ConfigError(f"{weights}: state dict does not match the super-net of space {net.space.name!r} "
                          f"({len(missing)} missing keys, e.g. {missing[:2]}; {len(unexpected)} unexpected, "
                          f"e.g. {unexpected[:2]}; {len(shapes)} of another shape, e.g. {shapes[:2]}): "
                          "wrong space or objective in the config?")
    net.load_state_dict(state)
    return net.eval()
