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


def _field(where: str, value: Any, *, numeric: bool = True, allowed: Sequence | None = None) -> Field:
    searched = isinstance(value, (list, tuple))
    raw = list(value) if searched else [value]
    if not raw:
        raise SupernasError(f"{where}: the list of choices is empty; give at least one value")
    for v in raw:
        if allowed is not None and v not in allowed:
            raise SupernasError(f"{where}: {v!r} is not allowed; choose from {', '.join(map(str, allowed))}")
        if numeric and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise SupernasError(f"{where}: {v!r} is not a number")
        if numeric and v <= 0 and allowed is None:
            raise SupernasError(f"{where}: {v!r} must be positive")
    if len(set(raw)) != len(raw):
        raise SupernasError(f"{where}: choices {raw} repeat a value")
    choices = tuple(sorted(raw)) if numeric else tuple(raw)
    # Whole-number floats become ints so that JSON and YAML spell them the same way.
    choices = tuple(int(c) if isinstance(c, float) and c.is_integer() else c for c in choices)
    return Field(choices, searched)


def _require(d: Mapping, key: str, where: str):
    if key not in d:
        raise SupernasError(f"{where}: missing field '{key}'")
    return d[key]


def _check_keys(d: Mapping, allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise SupernasError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def parse_space(d: Mapping[str, Any]) -> SpaceSpec:
    """Read a space definition (see the module docstring) and check it."""
    if not isinstance(d, Mapping):
        raise SupernasError("a search space must be a mapping with name, resolution, stem, stages, head")
    _check_keys(d, ("name", "description", "resolution", "stem", "stages", "head", "shortcut", "gate"), "space")
    name = str(_require(d, "name", "space"))
    stem = _require(d, "stem", name)
    _check_keys(stem, ("width", "stride", "act"), f"{name}.stem")
    stages = []
    for i, s in enumerate(_require(d, "stages", name)):
        sname = str(s.get("name", f"s{i + 1}"))
        where = f"{name}.{sname}"
        _check_keys(s, ("name", "stride", "per_block") + STAGE_FIELDS, where)
        stride = int(_require(s, "stride", where))
        if stride not in (1, 2):
            raise SupernasError(f"{where}.stride: {stride} is not supported; use 1 or 2")
        fields = {
            "width": _field(f"{where}.width", _require(s, "width", where)),
            "depth": _field(f"{where}.depth", s.get("depth", 1)),
            "kernel": _field(f"{where}.kernel", _require(s, "kernel", where)),
            "expand": _field(f"{where}.expand", _require(s, "expand", where)),
            "act": _field(f"{where}.act", s.get("act", "swish"), numeric=False, allowed=ACTIVATIONS),
            "attention": _field(f"{where}.attention", s.get("attention", 0), allowed=(0, 1, 2, 3, 4, 8)),
        }
        for k in fields["kernel"].choices:
            if k % 2 == 0:
                raise SupernasError(f"{where}.kernel: {k} is even; kernels must be odd (3, 5, 7)")
        for e in fields["expand"].choices:
            if e < 1:
                raise SupernasError(f"{where}.expand: {e} is below 1; expansion ratios are >= 1")
        stages.append(StageSpec(sname, stride, bool(s.get("per_block", False)), fields))
    if not stages:
        raise SupernasError(f"{name}: 'stages' is empty; a space needs at least one stage")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise SupernasError(f"{name}: stage names repeat: {names}")
    head = _require(d, "head", name)
    _check_keys(head, ("kind", "width", "expand", "act"), f"{name}.head")
    kind = head.get("kind", "conv")
    if kind not in HEAD_KINDS:
        raise SupernasError(f"{name}.head.kind: {kind!r} is unknown; choose from {', '.join(HEAD_KINDS)}")
    shortcut = d.get("shortcut", "identity")
    if shortcut not in SHORTCUTS:
        raise SupernasError(f"{name}.shortcut: {shortcut!r} is unknown; choose from {', '.join(SHORTCUTS)}")
    gate = d.get("gate", "sigmoid")
    if gate not in GATES:
        raise SupernasError(f"{name}.gate: {gate!r} is unknown; choose from {', '.join(GATES)}")
    stem_act = _field(f"{name}.stem.act", stem.get("act", "swish"), numeric=False, allowed=ACTIVATIONS)
    head_act = _field(f"{name}.head.act", head.get("act", "swish"), numeric=False, allowed=ACTIVATIONS)
    return SpaceSpec(
        name=name,
        resolution=_field(f"{name}.resolution", _require(d, "resolution", name)),
        stem_width=_field(f"{name}.stem.width", _require(stem, "width", f"{name}.stem")),
        stem_stride=int(stem.get("stride", 2)),
        stem_act=stem_act.choices[0],
        stages=tuple(stages),
        head_kind=kind,
        head_width=_field(f"{name}.head.width", _require(head, "width", f"{name}.head")),
        head_expand=int(head.get("expand", 6)),
        head_act=head_act.choices[0],
        shortcut=shortcut,
        gate=gate,
        description=str(d.get("description", "")),
    )
