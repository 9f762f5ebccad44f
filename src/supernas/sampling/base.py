"""What every sampler shares: an explicit generator whose state checkpoints, and the uniform sampler."""
from __future__ import annotations

import copy
from typing import Any, Mapping, Protocol, cast, runtime_checkable

import numpy as np

from ..errors import SupernasError
from ..spaces import Arch, SearchSpace, as_generator


@runtime_checkable
class Sampler(Protocol):
    """Anything that draws Archs and can checkpoint exactly where it is in its sequence."""

    def sample(self) -> Arch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def rng_state(g: np.random.Generator) -> dict[str, Any]:
    """A deep copy of the generator's state (the live dict must not alias a checkpoint)."""
    # numpy's stubs type the state a Mapping; it is a dict
    return cast("dict[str, Any]", copy.deepcopy(g.bit_generator.state))


def set_rng_state(g: np.random.Generator, state: Mapping[str, Any]) -> None:
    want = g.bit_generator.state["bit_generator"]
    got = state.get("bit_generator") if isinstance(state, Mapping) else None
    if got != want:
        raise SupernasError(f"the checkpointed generator is {got!r} but this sampler uses {want!r}; "
                            f"build the sampler with a {got} generator (np.random.Generator({got}(seed)))")
    g.bit_generator.state = copy.deepcopy(dict(state))


def check_state(state: Any, kind: str) -> Mapping[str, Any]:
    """The state as a mapping, after checking it was saved by a sampler of the same kind."""
    if not isinstance(state, Mapping) or "kind" not in state:
        raise SupernasError(f"a {kind} sampler state must be the dict its state_dict() returned, "
                            f"got {type(state).__name__}")
    if state["kind"] != kind:
        raise SupernasError(f"this state was saved by a '{state['kind']}' sampler and cannot load into a "
                            f"'{kind}' sampler; build the sampler the checkpoint came from")
    return state


class UniformSampler:
    """Archs drawn uniformly per dimension (the 'Uniform' baseline of AttentiveNAS)."""

    kind = "uniform"

    def __init__(self, space: SearchSpace, rng: "np.random.Generator | int | None" = None):
        self.space = space
        self.rng = as_generator(rng)

    def sample(self) -> Arch:
        return self.space.from_indices(self.space.sample_indices(self.rng, 1))[0]

    def sample_many(self, n: int) -> list[Arch]:
        """n Archs; the same as n calls of :meth:`sample` (row by row the same draws)."""
        return self.space.from_indices(self.space.sample_indices(self.rng, n))

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "space": self.space.name, "rng": rng_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = check_state(state, self.kind)
        if state.get("space") != self.space.name:
            raise SupernasError(f"the sampler state is for space '{state.get('space')}', not '{self.space.name}'")
        set_rng_state(self.rng, state["rng"])
