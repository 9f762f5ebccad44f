"""The AttentiveNAS reference subnet format: {resolution, width[9], depth[7], kernel_size[7],
expand_ratio[7]}, for spaces whose stages share their choices (like `attentivenas`)."""
from __future__ import annotations

from typing import Any, Mapping, TypeGuard

from ..errors import SupernasError
from .arch import Arch
from .space import SearchSpace

REFERENCE_KEYS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")
_STAGE_KEYS = (("depth", "depth"), ("kernel_size", "kernel"), ("expand_ratio", "expand"))


def is_reference_format(d: Any) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(d, Mapping) and "width" in d and isinstance(d.get("width"), list)


def _check_supported(space: SearchSpace) -> None:
    if any(st.per_block for st in space.spec.stages):
        raise SupernasError(f"space '{space.name}' has per-block choices; the reference format fits "
                            "only spaces whose stages share their choices, such as 'attentivenas'")


def from_reference(space: SearchSpace, d: Mapping[str, Any]) -> Arch:
    """Read a subnet in the reference format (extra keys such as 'flops' are ignored)."""
    _check_supported(space)
    stages = space.spec.stages
    for key, n in (("width", len(stages) + 2), ("depth", len(stages)), ("kernel_size", len(stages)),
                   ("expand_ratio", len(stages))):
        if key not in d:
            raise SupernasError(f"reference-format Arch lacks '{key}' (needs {', '.join(REFERENCE_KEYS)})")
        if not isinstance(d[key], list) or len(d[key]) != n:
            raise SupernasError(f"reference-format '{key}' must be a list of {n} values, got {d[key]!r}")
    values: dict[str, Any] = {"resolution": d.get("resolution"), "stem.width": d["width"][0],
                              "head.width": d["width"][-1]}
    for i, st in enumerate(stages):
        values[f"{st.name}.width"] = d["width"][i + 1]
        for key, field in _STAGE_KEYS:
            values[f"{st.name}.{field}"] = d[key][i]
    # Fields the space keeps constant are not dimensions: drop them (they must match, though).
    for name in list(values):
        if name not in space._col:
            const = _constant(space, name)
            if values[name] != const:
                raise SupernasError(f"reference-format value {values[name]!r} for '{name}' differs from the "
                                    f"space's fixed value {const!r}")
            del values[name]
    return space.arch(values)


def _constant(space: SearchSpace, name: str):
    s = space.spec
    if name == "resolution":
        return s.resolution.min
    if name == "stem.width":
        return s.stem_width.min
    if name == "head.width":
        return s.head_width.min
    stage, field = name.split(".")
    return next(st for st in s.stages if st.name == stage)[field].min


def to_reference(space: SearchSpace, arch: Arch) -> dict[str, Any]:
    """Write an Arch in the reference format."""
    _check_supported(space)
    get = lambda name: arch[name] if name in arch else _constant(space, name)  # noqa: E731
    stages = space.spec.stages
    return {
        "resolution": get("resolution"),
        "width": [get("stem.width")] + [get(f"{st.name}.width") for st in stages] + [get("head.width")],
        "depth": [get(f"{st.name}.depth") for st in stages],
        "kernel_size": [get(f"{st.name}.kernel") for st in stages],
        "expand_ratio": [get(f"{st.name}.expand") for st in stages],
    }


def reference_columns(space: SearchSpace) -> list[int]:
    """For each of the reference format's numbers in order (resolution, width[S+2], depth[S],
    kernel_size[S], expand_ratio[S]), the column of `space.encode` that holds it: the published
    accuracy predictor reads that vector, ours read `space.encode`'s. Every number must be a
    searched dimension of the space."""
    _check_supported(space)
    stages = space.spec.stages
    names = (["resolution", "stem.width"] + [f"{st.name}.width" for st in stages] + ["head.width"]
             + [f"{st.name}.{field}" for _, field in _STAGE_KEYS for st in stages])
    fixed = [n for n in names if n not in space._col]
    if fixed:
        raise SupernasError(f"space '{space.name}' keeps {', '.join(fixed)} fixed, so it cannot be read by a "
                            "predictor over the reference format's numbers; use the 'attentivenas' space")
    return [space._col[n] for n in names]
