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
``config`` argument is used when the run has none, and when both exist the values it sets in the ``space``
section must agree with the run's (training records the values it resolved, e.g. the class count).

:func:`experiment_for_run` and :func:`experiment_for_arch` give a later phase its whole config from the run
(or from the search that wrote an arch), with the phase's own config file and overrides on top
(``lwsl_ds/config/recorded.py``): no setting of training has to be repeated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..config.schema import ConfigError
from ..objectives import objective_of
from ..space.spec import load_space
from ..space.supernet import SuperNet

__all__ = ["build_supernet", "load_supernet_from_run", "supernet_of", "recorded_config", "experiment_for_run", "experiment_for_arch",
           "STATE_DICT_FILE", "CONFIG_FILES", "SEARCH_CONFIG_FILE"]

STATE_DICT_FILE = "supernet.pt"
CONFIG_FILES = ("config.yaml", "experiment.yaml")
SEARCH_CONFIG_FILE = "search_config.json"  # written by launchers/search.py beside best_arch.yaml


def build_supernet(cfg: Any) -> SuperNet:
    """An untrained super-net of an experiment config (space section + train objective settings)."""
    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    return SuperNet(space, objective_of(cfg.train, space.num_classes))


def _space_of(cfg: Any) -> tuple:
    return (cfg.space.name, cfg.space.resolution, cfg.space.num_classes)


def _pick_config(own: Optional[Any], given: Optional[Any], where: Path) -> Any:
    """The run's own config, checked against the caller's; the caller's when the run has none."""
    if own is None:
        if given is None:
            raise ConfigError(f"{where}: no experiment config ({' or '.join(CONFIG_FILES)} or a checkpoint "
                              "manifest) to rebuild the super-net from; pass config=")
        return given
    # Only what the caller sets counts: a null resolution or class count means "the run's".
    if given is not None and any(g is not None and g != o for g, o in zip(_space_of(given), _space_of(own))):
        raise ConfigError(f"{where}: the super-net was trained on space {_space_of(own)} (name, resolution, "
                          f"classes) but the config asks for {_space_of(given)}")
    return own


def _folder_config(run: Path) -> Optional[dict]:
    from ..config.loader import load_yaml

    for name in CONFIG_FILES:
        if (run / name).is_file():
            return load_yaml(run / name)
    return None


def _locate(path: Path, verify: bool = False) -> tuple[Path, Optional[dict]]:
    """(weights file, recorded config as a plain dict or None) of a run directory or a ``.pt`` file.

    ``verify``: a checkpoint's files are checked against its sha256.json before any of them is read.
    """
    if not path.exists():
        raise ConfigError(f"--checkpoint {path}: no such run directory or file")
    if not path.is_dir():
        return path, _folder_config(path.parent)
    from ..common.checkpoint import find_latest

    latest = find_latest(path, verify=False)
    final = path / STATE_DICT_FILE
    if latest is not None and final.is_file() and \
            final.stat().st_mtime >= (latest[0] / STATE_DICT_FILE).stat().st_mtime:
        latest = None  # the run's final weights, written after its newest checkpoint
    if latest is not None:
        ck_dir, manifest = latest
        if verify:
            from ..common.safe_io import verify_digests

            verify_digests(ck_dir)
        weights = ck_dir / STATE_DICT_FILE
        own = manifest["config"] if "config" in manifest else _folder_config(path)
    else:
        weights = path / STATE_DICT_FILE
        own = _folder_config(path)
    if not weights.is_file():
        raise ConfigError(f"{path}: no {STATE_DICT_FILE} (neither a training checkpoint under "
                          f"{path / 'checkpoints'} nor a plain state dict in the folder)")
    return weights, own


def recorded_config(run_dir: str | Path) -> Optional[dict]:
    """The experiment config a run recorded (plain dict, resolved values included); None when it has none."""
    return _locate(Path(run_dir))[1]


def _given(config: Optional[str | Path], overrides: Sequence[str]) -> dict:
    """A phase's own config as plain data (file plus overrides), before defaults are filled in."""
    from ..config.loader import apply_overrides, load_yaml

    data = load_yaml(config) if config is not None else {}
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{config}: the top level must be a mapping, got {type(data).__name__}")
    return apply_overrides(data or {}, overrides)


def _new_names(data: Optional[dict]) -> Optional[dict]:
    """``data`` with old key names (search.max_flops) renamed, so a layer on top replaces a value, not conflicts."""
    from ..config.schema import fold_aliases
    from ..config.sections.search import SearchConfig

    if isinstance(data, dict) and isinstance(data.get("search"), dict):
        return {**data, "search": fold_aliases(SearchConfig, data["search"], "search")}
    return data


def _parse(data: dict, where: str) -> Any:
    from ..config.loader import parse_experiment

    try:
        return parse_experiment(data)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def supernet_of(checkpoint: Optional[str | Path], config: Optional[str | Path] = None,
                overrides: Sequence[str] = ()) -> Path:
    """The super-net a phase loads: ``--checkpoint``, else ``<run_root>/<name>/supernet`` of ``--config``."""
    if checkpoint is None:
        if config is None:
            raise ConfigError("pass --checkpoint <super-net folder> or --config <experiment.yaml> (whose "
                              "<run_root>/<name>/supernet is used)")
        from ..config import load_experiment
        from ..config.layout import phase_dir

        checkpoint = phase_dir(load_experiment(config, overrides), "supernet")
    path = Path(checkpoint)
    if not path.exists():
        raise ConfigError(f"--checkpoint {path}: no such run directory or file")
    return path


def experiment_for_run(run_dir: str | Path, config: Optional[str | Path] = None,
                       overrides: Sequence[str] = ()) -> Any:
    """The config of a phase that loads a trained super-net: the run's recorded config, ``config`` and
    ``overrides`` on top; conflicts with the run's identity are refused (``lwsl_ds/config/recorded.py``)."""
    from ..config.recorded import merge_with_run

    given = _given(config, overrides)  # the caller's own file first: its errors name it, before the run is read
    own = recorded_config(run_dir)
    if own is None and config is None:
        raise ConfigError(f"--checkpoint {run_dir}: the run records no config ({' or '.join(CONFIG_FILES)}); "
                          "pass --config")
    where = str(config) if config is not None else f"{run_dir} (recorded config)"
    return _parse(merge_with_run(_new_names(own), _new_names(given), where=where), where)


def experiment_for_arch(arch: str | Path, config: Optional[str | Path] = None,
                        overrides: Sequence[str] = ()) -> Any:
    """The config of a phase that starts from a searched arch: the search's own config (``search_config.json``
    beside the arch file, else the recorded config of the run the arch names as ``checkpoint``), with
    ``config`` and ``overrides`` on top as in :func:`experiment_for_run`."""
    import json

    from ..config.loader import load_yaml
    from ..config.recorded import merge_with_run

    arch = Path(arch)
    if not arch.is_file():
        raise ConfigError(f"--arch {arch}: no such arch file")
    own: Optional[dict] = None
    beside = arch.parent / SEARCH_CONFIG_FILE
    if beside.is_file():
        try:
            own = json.loads(beside.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{beside}: malformed JSON: {e}") from None
    else:
        doc = load_yaml(arch)
        run = doc.get("checkpoint") if isinstance(doc, dict) else None
        if run and Path(run).exists():
            own = recorded_config(run)
    if own is None and config is None:
        raise ConfigError(f"--arch {arch}: no {SEARCH_CONFIG_FILE} beside it and no recorded config of the run it "
                          "was searched on; pass --config")
    where = str(config) if config is not None else f"{arch} (the search's config)"
    return _parse(merge_with_run(_new_names(own), _new_names(_given(config, overrides)), where=where), where)


def load_supernet_from_run(run_dir: str | Path, *, config: Optional[Any] = None,
                           map_location: str | torch.device = "cpu") -> SuperNet:
    """The trained super-net of a run (weights and BN statistics), in eval mode.

    ``run_dir`` is a training run directory, a folder with ``supernet.pt``, or a ``.pt`` state-dict file
    (see the module docstring); ``config`` (an ExperimentConfig) is used when the run carries none.
    """
    weights, own = _locate(Path(run_dir), verify=True)
    net = build_supernet(_pick_config(None if own is None else _parse(own, str(weights)), config, weights))
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
