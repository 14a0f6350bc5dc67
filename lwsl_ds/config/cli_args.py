"""One way to pass config overrides on every launcher's command line: ``--set a.b=c`` and/or trailing ``a.b=c``."""

from __future__ import annotations

import argparse

__all__ = ["add_override_args", "overrides_of"]


def add_override_args(p: argparse.ArgumentParser) -> None:
    """Add ``--set KEY=VALUE`` (repeatable) and trailing ``KEY=VALUE`` arguments to a launcher's parser."""
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.strategy=greedy (repeatable; same as a trailing KEY=VALUE)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.epochs=3")


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The overrides in command-line order: every ``--set`` first, then the trailing ones."""
    return [*getattr(args, "sets", []), *getattr(args, "overrides", [])]
