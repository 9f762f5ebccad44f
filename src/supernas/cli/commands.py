"""The registry of `supernas` commands. Each command registers its handler with `@command(name,
help, arguments)`, the function that declares its arguments written beside the handler."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Optional

Handler = Callable[[argparse.Namespace], Optional[int]]
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Spec:
    """What a command's parser shows and takes."""

    help: str
    arguments: Arguments
    epilog: str | None = None


COMMANDS: dict[str, Handler] = {}  # name -> the handler `main` runs
SPECS: dict[str, Spec] = {}  # name -> its parser's help and arguments


def command(name: str, help: str, arguments: Arguments, epilog: str | None = None) -> Callable[[Handler], Handler]:
    """Register the decorated handler as `supernas NAME`."""
    def register(fn: Handler) -> Handler:
        COMMANDS[name], SPECS[name] = fn, Spec(help, arguments, epilog)
        return fn
    return register
