"""The registry of `supernas` commands. Each command registers its handler with `@command(name,
help, arguments)`, the function that declares its arguments written beside the handler."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

Handler = Callable[[argparse.Namespace], Optional[int]]
Arguments = Callable[[argparse.ArgumentParser], None]
_H = TypeVar("_H", bound=Handler)  # a handler, keeping its own type through the decorator


@dataclass(frozen=True)
class Spec:
    """What a command's parser shows and takes."""

    help: str
    arguments: Arguments
    epilog: str | None = None


COMMANDS: dict[str, Handler] = {}  # name -> the handler `main` runs
SPECS: dict[str, Spec] = {}  # name -> its parser's help and arguments


def command(name: str, help: str, arguments: Arguments, epilog: str | None = None) -> Callable[[_H], _H]:
    """Register the decorated handler as `supernas NAME`."""
    def register(fn: _H) -> _H:
        COMMANDS[name], SPECS[name] = fn, Spec(help, arguments, epilog)
        return fn
    return register
