"""`Arch`: one architecture of a search space, as an immutable, hashable value."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Union

Value = Union[int, float, str]


class Arch(Mapping[str, Value]):
    """An architecture: an ordered mapping from dimension name to the chosen value.

    Archs are values: two Archs with the same choices are equal and hash alike, so they can key
    caches and sets. Build them through :meth:`SearchSpace.arch`, which validates the choices
    and puts the Arch in canonical form (dimensions in the space's order; choices of inactive
    blocks reset), so that equal networks give equal Archs.
    """

    __slots__ = ("_items", "_hash", "_index")
    _items: tuple[tuple[str, Value], ...]
    _hash: int
    _index: dict[str, int]

    def __init__(self, items: Mapping[str, Value] | Iterator[tuple[str, Value]]):
        pairs = tuple(items.items() if isinstance(items, Mapping) else items)
        object.__setattr__(self, "_items", pairs)
        object.__setattr__(self, "_hash", hash(pairs))
        object.__setattr__(self, "_index", {k: i for i, (k, _) in enumerate(pairs)})

    def __setattr__(self, name, value):  # immutability, as for a tuple
        raise AttributeError("Arch is immutable; use SearchSpace.arch({...}) to make another")

    def __getitem__(self, key: str) -> Value:
        return self._items[self._index[key]][1]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        if isinstance(other, Arch):
            return self._hash == other._hash and self._items == other._items
        return NotImplemented

    def __repr__(self) -> str:
        return f"Arch({self.to_json()})"

    def __reduce__(self):
        return (Arch, (self._items,))

    def to_dict(self) -> dict[str, Value]:
        return dict(self._items)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)
