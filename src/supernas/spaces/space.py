"""`SearchSpace`: the dimensions a space searches, and sampling, mutation, crossover,
encoding and validation of Archs, one at a time or as index matrices for speed."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SupernasError, shorten
from .arch import Arch
from .spec import ACTIVATIONS, BLOCK_FIELDS, STAGE_FIELDS, SpaceSpec, parse_space

RngLike = "np.random.Generator | int | None"


def as_generator(rng: "np.random.Generator | int | None") -> np.random.Generator:
    """A numpy Generator from a Generator, a seed, or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


@dataclass(frozen=True)
class Dimension:
    """One searched choice: its name in an Arch and its allowed values, smallest first."""

    name: str
    choices: tuple

    def __len__(self) -> int:
        return len(self.choices)

    def numeric(self) -> np.ndarray:
        """The choices as numbers (activations by their index in ACTIVATIONS)."""
        return np.array([ACTIVATIONS.index(c) if isinstance(c, str) else c for c in self.choices], dtype=np.float64)


class SearchSpace:
    """The set of Archs a supernet can run.

    Archs are kept two ways: as :class:`Arch` values (readable, JSON) and, for bulk work such
    as scoring millions of Archs, as integer matrices of shape (N, D) holding the index of each
    dimension's choice. ``to_indices`` and ``from_indices`` convert between the two.
    """

    def __init__(self, spec: SpaceSpec | Mapping[str, Any]):
        self.spec = spec if isinstance(spec, SpaceSpec) else parse_space(spec)
        # The mapping it was built from (JSON-able), so saved files can rebuild a derived space.
        self.definition: dict[str, Any] | None = None if isinstance(spec, SpaceSpec) else copy.deepcopy(dict(spec))
        self.name = self.spec.name
        self.dims = tuple(self._make_dims())
        self._col = {d.name: i for i, d in enumerate(self.dims)}
        self.cardinalities = np.array([len(d) for d in self.dims], dtype=np.int64)
        self._lookup = [{c: j for j, c in enumerate(d.choices)} for d in self.dims]
        self._numeric = [d.numeric() for d in self.dims]
        self._reset_cols = self._inactive_block_columns()

    # ------------------------------------------------------------------ structure
    def _make_dims(self):
        s = self.spec
        if s.resolution.searched:
            yield Dimension("resolution", s.resolution.choices)
        if s.stem_width.searched:
            yield Dimension("stem.width", s.stem_width.choices)
        for st in s.stages:
            if st.per_block:
                if st["depth"].searched:
                    yield Dimension(f"{st.name}.depth", st["depth"].choices)
                for i in range(st.max_depth):
                    for f in BLOCK_FIELDS:
                        if st[f].searched:
                            yield Dimension(f"{st.name}.{i}.{f}", st[f].choices)
            else:
                for f in STAGE_FIELDS:
                    if st[f].searched:
                        yield Dimension(f"{st.name}.{f}", st[f].choices)
        if s.head_width.searched:
            yield Dimension("head.width", s.head_width.choices)

    def _inactive_block_columns(self):
        """For per-block stages with elastic depth: (depth column, [(block, columns)])."""
        out = []
        for st in self.spec.stages:
            if st.per_block and st["depth"].searched:
                dcol = self._col[f"{st.name}.depth"]
                blocks = [(i, [self._col[f"{st.name}.{i}.{f}"] for f in BLOCK_FIELDS if st[f].searched])
                          for i in range(st.max_depth)]
                out.append((dcol, blocks))
        return out

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    def column(self, name: str) -> int:
        return self._col[name]

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, dims={len(self.dims)}, size={self.size:.3e})"

    # ------------------------------------------------------------------ size
    @cached_property
    def size(self) -> int:
        """Number of distinct Archs (canonical forms), as an exact integer."""
        total = 1
        for d in self.dims:  # dimensions outside per-block elastic stages multiply freely
            if not self._in_elastic_block_stage(d.name):
                total *= len(d)
        for st in self.spec.stages:
            if st.per_block and st["depth"].searched:
                per_block = math.prod(len(st[f].choices) for f in BLOCK_FIELDS if st[f].searched)
                total *= sum(per_block**depth for depth in st["depth"].choices)
        return total

    def _in_elastic_block_stage(self, name: str) -> bool:
        stage = name.split(".")[0]
        return any(st.name == stage and st.per_block and st["depth"].searched for st in self.spec.stages)

    # ------------------------------------------------------------------ Arch <-> indices
    def arch(self, values: Mapping[str, Any] | str) -> Arch:
        """Validate choices (a mapping or a JSON string) and return the canonical Arch.

        Raises :class:`SupernasError` naming the offending field, its value and the allowed values.
        """
        if isinstance(values, str):
            from ..utils.structured import loads_json

            values = loads_json(values, "the Arch")
        if isinstance(values, Arch):
            values = values.to_dict()
        if not isinstance(values, Mapping):
            raise SupernasError(f"an Arch must be a JSON object of dimension -> choice, got {type(values).__name__}")
        unknown = [k for k in values if k not in self._col]
        if unknown:
            raise SupernasError(
                f"unknown field {shorten(unknown[0])} for space '{self.name}'; its fields are: {', '.join(self.names)}")
        missing = [n for n in self.names if n not in values]
        if missing:
            raise SupernasError(f"field '{missing[0]}' is missing (space '{self.name}' needs {len(self.dims)} fields)")
        row = np.empty(len(self.dims), dtype=np.int64)
        for j, d in enumerate(self.dims):
            v = values[d.name]
            # a choice is a number or a name: a list or a mapping (unhashable) is no choice
            idx = self._lookup[j].get(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else None
            if idx is not None and isinstance(v, float) and not isinstance(d.choices[idx], float) \
                    and not d.name.endswith("expand"):
                # 1.0 equals 1 as a dict key: a float where a count or a size goes is refused, not rounded
                raise SupernasError(f"field '{d.name}' has value {shorten(v)}, a float; give an integer "
                                    f"({', '.join(map(str, d.choices))})")
            if idx is None:
                allowed = ", ".join(map(str, d.choices))
                raise SupernasError(f"field '{d.name}' has value {shorten(v)}, which is not allowed; "
                                    f"allowed: {allowed}")
            row[j] = idx
        return self.from_indices(row[None])[0]

    def validate(self, values: Mapping[str, Any] | str) -> Arch:
        """Alias of :meth:`arch`, for readability where only the check matters."""
        return self.arch(values)

    def to_indices(self, archs: Arch | Sequence[Arch]) -> np.ndarray:
        """(N, D) int64 matrix of choice indices; a single Arch gives shape (1, D)."""
        archs = [archs] if isinstance(archs, Arch) else list(archs)
        out = np.empty((len(archs), len(self.dims)), dtype=np.int64)
        for i, a in enumerate(archs):
            for j, d in enumerate(self.dims):
                out[i, j] = self._lookup[j][a[d.name]]
        return out

    def canonicalize_indices(self, idx: np.ndarray) -> np.ndarray:
        """Reset the choices of blocks that elastic depth switches off (in place; returned)."""
        for dcol, blocks in self._reset_cols:
            depth = np.asarray(self.dims[dcol].choices)[idx[:, dcol]]
            for i, cols in blocks:
                off = depth <= i
                if off.any():
                    idx[np.ix_(off, cols)] = 0
        return idx

    def from_indices(self, idx: np.ndarray) -> list[Arch]:
        idx = self.canonicalize_indices(np.array(idx, dtype=np.int64, copy=True).reshape(-1, len(self.dims)))
        names = self.names
        choices = [d.choices for d in self.dims]
        return [Arch(zip(names, (choices[j][k] for j, k in enumerate(row)))) for row in idx.tolist()]

    # ------------------------------------------------------------------ sampling
    def sample_indices(self, rng: "np.random.Generator | int | None", n: int) -> np.ndarray:
        """n Archs drawn uniformly per dimension, as a canonical (n, D) index matrix."""
        g = as_generator(rng)
        idx = (g.random((n, len(self.dims))) * self.cardinalities).astype(np.int64)
        return self.canonicalize_indices(idx)

    def sample(self, rng: "np.random.Generator | int | None" = None, n: int | None = None) -> Arch | list[Arch]:
        """One Arch (n=None) or a list of n Archs, each dimension uniform over its choices."""
        archs = self.from_indices(self.sample_indices(rng, 1 if n is None else n))
        return archs[0] if n is None else archs

    def smallest(self) -> Arch:
        """Every dimension at its smallest choice (for activations: the first listed)."""
        return self.from_indices(np.zeros((1, len(self.dims)), dtype=np.int64))[0]

    def largest(self) -> Arch:
        return self.from_indices((self.cardinalities - 1)[None])[0]

    def mutate(self, arch: Arch, rng: "np.random.Generator | int | None", prob: float = 0.1) -> Arch:
        """Each dimension, with probability `prob`, switches to a different choice."""
        return self.from_indices(self.mutate_indices(self.to_indices(arch), rng, prob))[0]

    def crossover(self, a: Arch, b: Arch, rng: "np.random.Generator | int | None", prob: float = 0.5) -> Arch:
        """Each dimension taken from `a` with probability `prob`, else from `b`."""
        ia, ib = self.to_indices([a, b])
        return self.from_indices(self.crossover_indices(ia[None], ib[None], rng, prob))[0]

    def mutate_indices(self, idx: np.ndarray, rng: "np.random.Generator | int | None", prob: float = 0.1) -> np.ndarray:
        """`mutate` for an (N, D) index matrix at once; returns canonical rows."""
        g = as_generator(rng)
        card = self.cardinalities
        flip = (g.random(idx.shape) < prob) & (card > 1)
        shift = 1 + (g.random(idx.shape) * (card - 1)).astype(np.int64)  # uniform over the other choices
        return self.canonicalize_indices(np.where(flip, (idx + shift) % card, idx))

    def crossover_indices(self, a: np.ndarray, b: np.ndarray, rng: "np.random.Generator | int | None",
                          prob: float = 0.5) -> np.ndarray:
        """`crossover` of two (N, D) index matrices row by row; returns canonical rows."""
        g = as_generator(rng)
        return self.canonicalize_indices(np.where(g.random(a.shape) < prob, a, b))

    # ------------------------------------------------------------------ encoding
    def encode_indices(self, idx: np.ndarray) -> np.ndarray:
        """Feature matrix (N, D) float64 of choice values, for predictors."""
        idx = np.asarray(idx).reshape(-1, len(self.dims))
        return np.stack([self._numeric[j][idx[:, j]] for j in range(len(self.dims))], axis=1)

    def encode(self, arch: Arch | Sequence[Arch]) -> np.ndarray:
        """Fixed-length vector (D,) of an Arch's choice values, or (N, D) for a list."""
        out = self.encode_indices(self.to_indices(arch))
        return out[0] if isinstance(arch, Arch) else out

    def decode(self, vector: np.ndarray) -> Arch | list[Arch]:
        """Inverse of :meth:`encode` (values are matched to the nearest choice)."""
        v = np.asarray(vector, dtype=np.float64)
        single = v.ndim == 1
        v = v.reshape(-1, len(self.dims))
        idx = np.stack([np.abs(v[:, j, None] - self._numeric[j][None]).argmin(1) for j in range(len(self.dims))], 1)
        archs = self.from_indices(idx)
        return archs[0] if single else archs
