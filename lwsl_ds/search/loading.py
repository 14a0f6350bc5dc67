"""Load a trained super-net from a run directory: the one place the search knows the checkpoint format.

Supported today: a plain state dict ``<run>/supernet.pt`` (``torch.save(supernet.state_dict())``), or a
path to such a file, with the experiment config that built it (``<run>/config.yaml`` or the ``config``
argument) giving the space and objective. The training phase's own run-dir format
(``lwsl_ds/common/checkpoint.py``) is used when that module provides ``load_supernet(run_dir)``.
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


def _run_config(run: Path, config: Optional[Any]) -> Any:
    if config is not None:
        return config
    from ..config.loader import load_experiment

    for name in CONFIG_FILES:
        if (run / name).is_file():
            return load_experiment(run / name)
    raise ConfigError(f"{run}: no experiment config ({' or '.join(CONFIG_FILES)}) to rebuild the super-net "
                      "from; pass config=")


def load_supernet_from_run(run_dir: str | Path, *, config: Optional[Any] = None,
                           map_location: str | torch.device = "cpu") -> SuperNet:
    """The trained super-net of a run (weights and BN statistics), in eval mode.

    ``run_dir`` is a run directory or a ``.pt`` state-dict file; ``config`` (an ExperimentConfig)
    overrides the config found in the run directory.
    """
    path = Path(run_dir)
    if path.is_dir():
        try:  # the training phase's format, once lwsl_ds/common/checkpoint.py provides a loader
            from ..common import checkpoint as _ckpt  # type: ignore[attr-defined]
        except ImportError:
            _ckpt = None
        loader = getattr(_ckpt, "load_supernet", None)
        if loader is not None and not (path / STATE_DICT_FILE).is_file():
            return loader(path, config=config) if config is not None else loader(path)
    if path.is_dir():
        weights, run = path / STATE_DICT_FILE, path
    elif path.is_file():
        weights, run = path, path.parent
    else:
        raise ConfigError(f"--checkpoint {path}: no such run directory or file")
    if not weights.is_file():
        raise ConfigError(f"{path}: no {STATE_DICT_FILE} in the run directory (the training phase's checkpoint "
                          "format is not wired into the search yet: export the super-net's state dict there)")
    net = build_supernet(_run_config(run, config))
    state = torch.load(weights, map_location=map_location, weights_only=True)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        raise ConfigError(f"{weights}: state dict does not match the super-net of space {net.space.name!r} "
                          f"({len(missing)} missing keys, e.g. {missing[:2]}; {len(unexpected)} unexpected, "
                          f"e.g. {unexpected[:2]}; {len(shapes)} of another shape, e.g. {shapes[:2]}): "
                          "wrong space or objective in the config?")
    net.load_state_dict(state)
    return net.eval()
