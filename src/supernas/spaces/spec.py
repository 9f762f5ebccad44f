"""Search spaces as data: the macro-architecture and which of its fields are searched.

A space is a plain dict (YAML-friendly) read by :func:`parse_space`. In it, a field given as a
list is a *dimension* that Archs choose; a field given as a scalar is a constant of the space.

    name: my-space
    resolution: [160, 192]               # searched
    stem: {width: [16, 24], stride: 2, act: swish}
    stages:
      - {name: s1, width: [16, 24], depth: [1, 2], kernel: [3, 5], expand: 1, stride: 1,
         act: swish, attention: 0, per_block: false}
    head: {kind: mbpool, width: [1792, 1984], expand: 6, act: swish}
    shortcut: projection                 # or: identity
    gate: hsigmoid                       # gate of squeeze-excitation (attention 1)

Stage fields: `width` (output channels), `depth` (blocks), `kernel` (depthwise kernel),
`expand` (expansion ratio), `act` (relu | swish), `attention` (0 none, 1 squeeze-excitation,
r >= 2 Split-Attention with r splits). With `per_block: false` the blocks of a stage share one
choice per field (AttentiveNAS); with `per_block: true` every block chooses its own (FP-NAS).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import SupernasError

ACTIVATIONS = ("relu", "swish")
BLOCK_FIELDS = ("width", "kernel", "expand", "act", "attention")
STAGE_FIELDS = ("width", "depth", "kernel", "expand", "act", "attention")
HEAD_KINDS = ("mbpool", "conv")
SHORTCUTS = ("projection", "identity")
GATES = ("hsigmoid", "sigmoid")


@dataclass(frozen=True)
class Field:
    """The choices of one field; `searched` when the spec gave a list."""

    choices: tuple
    searched: bool

    @property
    def max(self):
        return self.choices[-1]

    @property
    def min(self):
        return self.choices[0]


@dataclass(frozen=True)
class StageSpec:
    name: str
    stride: int
    per_block: bool
    fields: Mapping[str, Field]

    def __getitem__(self, key: str) -> Field:
        return self.fields[key]

    @property
    def max_depth(self) -> int:
        return self.fields["depth"].max


@dataclass(frozen=True)
class SpaceSpec:
    name: str
    resolution: Field
    stem_width: Field
    stem_stride: int
    stem_act: str
    stages: tuple[StageSpec, ...]
    head_kind: str
    head_width: Field
    head_expand: int
    head_act: str
    shortcut: str
    gate: str
    description: str = ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# Bounds no real network comes near: they refuse typos (a width of 1e20) before a cost overflows
# or a space takes minutes to build. Within them every size the layout multiplies stays far below
# 2**53, so the float64 cost arithmetic is exact and never overflows.
MAX_WIDTH = 16384  # channels; the widest layers of published classifiers have 2048 to 4096
MAX_RESOLUTION = 4096  # px; classifiers train at 224 to 600
MAX_DEPTH = 64  # blocks per stage; ResNet-152's largest stage has 36
MAX_STAGES = 32  # MobileNets and EfficientNets have 7
MAX_BLOCKS = 128  # blocks of all stages at their largest depths; EfficientNet-B7 has 55 (more: slow cost tables)
MAX_KERNEL = 31  # depthwise kernels of large-kernel networks (RepLKNet) reach 31
MAX_EXPAND = 64  # expansion ratios are 1 to 6
MAX_CHOICES = 256  # choices per field
REAL = "no real network comes near it; a bound against typos and overflow"


def _bounded(test, low: str, high: float, words: str) -> tuple:
    return (lambda v: test(v) and v <= high, f"{low} and at most {high:g} ({words}; {REAL})")


_WHOLE = lambda v: _is_number(v) and float(v).is_integer() and v >= 1  # noqa: E731
# The rule of each kind of numeric field: (test, what it allows in words).
INTEGER = (_WHOLE, "an integer >= 1")
WIDTH = _bounded(_WHOLE, "an integer >= 1", MAX_WIDTH, "channels")
RESOLUTION = _bounded(_WHOLE, "an integer >= 1", MAX_RESOLUTION, "pixels")
DEPTH = _bounded(_WHOLE, "an integer >= 1", MAX_DEPTH, "blocks per stage")
ODD = _bounded(lambda v: _WHOLE(v) and int(v) % 2 == 1, "an odd integer >= 1 (3, 5, 7)", MAX_KERNEL, "kernel size")
RATIO = _bounded(lambda v: _is_number(v) and v >= 1, "a number >= 1", MAX_EXPAND, "expansion ratio")
HEAD_EXPAND = _bounded(_WHOLE, "an integer >= 1", MAX_EXPAND, "expansion ratio")
STRIDE = (lambda v: _is_number(v) and v in (1, 2), "1 or 2")


def _field(where: str, value: Any, rule: tuple = INTEGER, *, allowed: Sequence | None = None) -> Field:
    """The choices of a field: a list (searched) or one value, each checked against `rule` (a
    numeric rule) or `allowed` (the values a non-numeric or enumerated field takes)."""
    searched = isinstance(value, (list, tuple))
    raw = list(value) if searched else [value]
    if not raw:
        raise SupernasError(f"{where}: the list of choices is empty; give at least one value")
    if len(raw) > MAX_CHOICES:
        raise SupernasError(f"{where}: {len(raw)} choices; at most {MAX_CHOICES} ({REAL})")
    for v in raw:
        if allowed is not None:
            if isinstance(v, (bool, list, dict)) or v not in allowed:
                raise SupernasError(f"{where}={v!r} is not allowed: one of {', '.join(map(str, allowed))}")
        elif not rule[0](v):
            raise SupernasError(f"{where}={v!r} is not allowed: {rule[1]}")
    # Whole-number floats become ints so that JSON and YAML spell them the same way.
    raw = [int(c) if isinstance(c, float) and c.is_integer() else c for c in raw]
    if len(set(raw)) != len(raw):
        raise SupernasError(f"{where}: choices {raw} repeat a value")
    numeric = all(_is_number(c) for c in raw)  # numbers smallest first; names as given
    return Field(tuple(sorted(raw)) if numeric else tuple(raw), searched)


def _scalar(where: str, value: Any, rule: tuple) -> int:
    """A constant of the space (a stride, the head's expansion): one value, not a list of choices."""
    if not rule[0](value):
        raise SupernasError(f"{where}={value!r} is not allowed: {rule[1]}")
    return int(value)


def _mapping(where: str, value: Any, holds: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise SupernasError(f"{where} must be a mapping of {holds}, got {value!r}")
    return value


def _require(d: Mapping, key: str, where: str):
    if key not in d:
        raise SupernasError(f"{where}: missing field '{key}'")
    return d[key]


def _check_keys(d: Mapping, allowed: Sequence[str], where: str) -> None:
    unknown = sorted(map(str, set(d) - set(allowed)))
    if unknown:
        raise SupernasError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _one_of(where: str, value: Any, allowed: Sequence[str]) -> Any:
    if value not in allowed:
        raise SupernasError(f"{where}={value!r} is not allowed: one of {', '.join(allowed)}")
    return value


def _stage(name: str, i: int, value: Any) -> StageSpec:
    """Stage `i` of space `name`, its fields checked; unnamed, it is s1, s2, ... by its place."""
    s = _mapping(f"{name}.stages[{i}]", value, "a stage's fields")
    sname = str(s.get("name", f"s{i + 1}"))
    where = f"{name}.{sname}"
    _check_keys(s, ("name", "stride", "per_block") + STAGE_FIELDS, where)
    stride = _scalar(f"{where}.stride", _require(s, "stride", where), STRIDE)
    per_block = s.get("per_block", False)
    if not isinstance(per_block, bool):
        raise SupernasError(f"{where}.per_block={per_block!r} is not allowed: true or false")
    fields = {
        "width": _field(f"{where}.width", _require(s, "width", where), WIDTH),
        "depth": _field(f"{where}.depth", s.get("depth", 1), DEPTH),
        "kernel": _field(f"{where}.kernel", _require(s, "kernel", where), ODD),
        "expand": _field(f"{where}.expand", _require(s, "expand", where), RATIO),
        "act": _field(f"{where}.act", s.get("act", "swish"), allowed=ACTIVATIONS),
        "attention": _field(f"{where}.attention", s.get("attention", 0), allowed=(0, 1, 2, 3, 4, 8)),
    }
    return StageSpec(sname, stride, per_block, fields)


def _stages(name: str, stage_list: Any) -> tuple[StageSpec, ...]:
    """The stages of space `name`: at least one, names that do not repeat, within MAX_STAGES and
    MAX_BLOCKS."""
    if not isinstance(stage_list, list):
        raise SupernasError(f"{name}.stages must be a list of stages, got {stage_list!r}")
    if len(stage_list) > MAX_STAGES:
        raise SupernasError(f"{name}.stages: {len(stage_list)} stages; at most {MAX_STAGES} ({REAL})")
    stages = tuple(_stage(name, i, s) for i, s in enumerate(stage_list))
    if not stages:
        raise SupernasError(f"{name}: 'stages' is empty; a space needs at least one stage")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise SupernasError(f"{name}: stage names repeat: {names}")
    blocks = sum(st.max_depth for st in stages)
    if blocks > MAX_BLOCKS:
        raise SupernasError(f"{name}: {blocks} blocks at the largest depths; at most {MAX_BLOCKS} ({REAL})")
    return stages


def _resolution(name: str, value: Any, stem_stride: int, stages: Sequence[StageSpec]) -> Field:
    """The input resolutions of space `name`: the smallest no less than the network's total stride."""
    resolution = _field(f"{name}.resolution", value, RESOLUTION)
    total_stride = stem_stride * math.prod(st.stride for st in stages)
    if resolution.min < total_stride:
        raise SupernasError(f"{name}.resolution={resolution.min} is not allowed: at least {total_stride} px, the "
                            "network's total stride (stem and stages), so that the last stage sees whole pixels")
    return resolution


def parse_space(d: Mapping[str, Any]) -> SpaceSpec:
    """Read a space definition (see the module docstring) and check every field's type and range:
    an error names the field, its value and what is allowed."""
    if not isinstance(d, Mapping):
        raise SupernasError(f"a search space must be a mapping with name, resolution, stem, stages, head; got {d!r}")
    _check_keys(d, ("name", "description", "resolution", "stem", "stages", "head", "shortcut", "gate"), "space")
    name = _require(d, "name", "space")
    if not isinstance(name, str) or not name:
        raise SupernasError(f"space.name={name!r} is not allowed: a non-empty string")
    stem = _mapping(f"{name}.stem", _require(d, "stem", name), "width, stride, act")
    _check_keys(stem, ("width", "stride", "act"), f"{name}.stem")
    stem_stride = _scalar(f"{name}.stem.stride", stem.get("stride", 2), STRIDE)
    stages = _stages(name, _require(d, "stages", name))
    resolution = _resolution(name, _require(d, "resolution", name), stem_stride, stages)
    head = _mapping(f"{name}.head", _require(d, "head", name), "kind, width, expand, act")
    _check_keys(head, ("kind", "width", "expand", "act"), f"{name}.head")
    kind = _one_of(f"{name}.head.kind", head.get("kind", "conv"), HEAD_KINDS)
    shortcut = _one_of(f"{name}.shortcut", d.get("shortcut", "identity"), SHORTCUTS)
    gate = _one_of(f"{name}.gate", d.get("gate", "sigmoid"), GATES)
    stem_act = _field(f"{name}.stem.act", stem.get("act", "swish"), allowed=ACTIVATIONS)
    head_act = _field(f"{name}.head.act", head.get("act", "swish"), allowed=ACTIVATIONS)
    return SpaceSpec(
        name=name,
        resolution=resolution,
        stem_width=_field(f"{name}.stem.width", _require(stem, "width", f"{name}.stem"), WIDTH),
        stem_stride=stem_stride,
        stem_act=stem_act.choices[0],
        stages=stages,
        head_kind=kind,
        head_width=_field(f"{name}.head.width", _require(head, "width", f"{name}.head"), WIDTH),
        head_expand=_scalar(f"{name}.head.expand", head.get("expand", 6), HEAD_EXPAND),
        head_act=head_act.choices[0],
        shortcut=shortcut,
        gate=gate,
        description=str(d.get("description", "")),
    )
