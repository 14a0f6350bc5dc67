"""The command-line arguments the launchers share, so each is spelled and explained once.

Overrides: ``--set a.b=c`` and/or trailing ``a.b=c`` on every launcher. A launcher builds its parser with
:func:`launcher_parser` (description from its docstring, ``--local_rank`` accepted for the deepspeed
launcher), then adds the groups it needs: :func:`add_train_args` (super-net training, both paths),
:func:`add_supernet_args` (phases that read a trained super-net: search, rank, ground truth).
"""

from __future__ import annotations

import argparse

__all__ = ["add_override_args", "overrides_of", "launcher_parser", "add_train_args", "add_supernet_args",
           "BACKEND_NAMES"]

# The names of engines.BACKENDS (config sits below engines, so it cannot import the registry; a test keeps
# the two equal).
BACKEND_NAMES = ("deepspeed", "reference")


def add_override_args(p: argparse.ArgumentParser) -> None:
    """Add ``--set KEY=VALUE`` (repeatable) and trailing ``KEY=VALUE`` arguments to a launcher's parser."""
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.strategy=greedy (repeatable; same as a trailing KEY=VALUE)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.epochs=3")


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The overrides in command-line order: every ``--set`` first, then the trailing ones."""
    return [*getattr(args, "sets", []), *getattr(args, "overrides", [])]


def launcher_parser(doc: str | None) -> argparse.ArgumentParser:
    """A launcher's parser: its docstring's first paragraph as description, ``--local_rank`` accepted (hidden)."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed
    return p


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Super-net training: --ds_config, --config, overrides, --run_dir, --resume, --backend."""
    p.add_argument("--ds_config", required=True, help="DeepSpeed JSON (batch size per rank, optimizer, ZeRO, "
                                                      "precision)")
    p.add_argument("--config", required=True, help="experiment YAML (space, data, train)")
    add_override_args(p)
    p.add_argument("--run_dir", default=None, help="super-net folder (default: <run_root>/<name>/supernet)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    p.add_argument("--backend", choices=BACKEND_NAMES, default="deepspeed",
                   help="reference: plain torch optimizers (the oracle; for tests and benchmarks)")


def add_supernet_args(p: argparse.ArgumentParser, config_help: str) -> None:
    """Phases that read a trained super-net: --config (on top of the run's recorded config), --checkpoint."""
    p.add_argument("--config", default=None, help=f"experiment YAML ({config_help}) on top of the run's recorded "
                                                  "config (default: the run's own)")
    p.add_argument("--checkpoint", default=None, help="folder of the trained super-net (or its supernet.pt); "
                                                      "default: <run_root>/<name>/supernet of --config")
