"""Registries: the places where users extend supernas. Each kind of plug-in (samplers, scorers,
search strategies, data formats, export formats) has one registry; a config or a command names
the entry, and adding one is a module with a function and one `@REGISTRY.register("name")`.

    from supernas.sampling import SAMPLERS

    @SAMPLERS.register("smallest-half")
    def build(cfg, context):            # cfg: the `sampler:` section; context: space, cost model, seed, ...
        return MySampler(context.space, seed=context.seed)

    # then: supernas train ... sampler.kind=smallest-half
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import SupernasError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in the order they were registered."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered already")
            self._entries[name] = entry
            return entry
        return add

    def get(self, name: str, setting: str | None = None) -> T:
        """The entry `name`; an unknown name is a one-line error naming `setting` and the choices."""
        if name not in self._entries:
            where = f"{setting}={name!r}" if setting else f"{self.kind} {name!r}"
            raise SupernasError(f"{where} is not a known {self.kind}; choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
