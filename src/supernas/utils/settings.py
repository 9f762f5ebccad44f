"""Typed settings: a dataclass field per setting, its type, default, allowed range and doc in one
place, and the one validation every command's config goes through.

Why dataclasses (not pydantic or OmegaConf): the standard library is enough for nested sections
of scalars, no dependency can break a user's install (the NAS toolkits before this one broke on
new versions of theirs), and the error messages are ours: one line naming the key, the value and
what is allowed.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Callable, ClassVar, Literal, Mapping, Union

import yaml

from ..errors import SupernasError


def setting(default: Any, doc: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, allows: str | None = None) -> Any:
    """A dataclass field with its doc and, for numbers, its range ([low, high], ends open on request);
    `allows` says in words what a field typed Any takes (its type cannot say it)."""
    meta = {"doc": doc, "low": low, "high": high, "low_open": low_open, "high_open": high_open, "allows": allows}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: Callable[[], Any], doc: str) -> Any:
    """A nested section (a dataclass of settings)."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "section": True})


class Section:
    """Base of every settings dataclass: `from_dict()` builds and validates one, `to_dict()` gives it
    back for YAML and checkpoints, and `check()` holds the rules that span several of its settings
    (each setting's own type and range come first, from its `setting(...)`)."""

    # the key a section has in a config, for messages about it read on its own ("data.")
    prefix: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Any:
        """The section from a plain (YAML) mapping, validated as a config's section is; None: defaults."""
        return build(cls, values or {}, cls.prefix)

    def with_values(self, values: Mapping[str, Any]) -> Any:
        """A copy with `values` (settings of this section) checked as `from_dict` checks them, the
        others kept as they are, then `check()`."""
        # every Section is a dataclass, which mypy cannot see on the base
        changed = dataclasses.replace(self, **_checked(type(self), values, self.prefix))  # type: ignore[type-var]
        changed.check()
        return changed

    def check(self) -> None:
        """Refuse, with a SupernasError naming the settings, values that do not go together."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if hasattr(v, "to_dict") else (list(v) if isinstance(v, tuple) else v)
        return out


# ---------------------------------------------------------------------------- validation
def build(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """An instance of the settings dataclass `cls` from a mapping: unknown keys are refused with
    the closest valid key, every value is checked against its field's type and range, and the
    defaults fill what is missing."""
    if not isinstance(values, Mapping):
        raise SupernasError(f"{where.rstrip('.') or 'the config'} must be a mapping of settings, got {values!r}")
    built = cls(**_checked(cls, values, where))
    if isinstance(built, Section):
        built.check()
    return built


def _checked(cls: type, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Each of `values` as its field of `cls` takes it (nested sections built), unknown keys refused."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise SupernasError(unknown_key(f"{where}{key}", list(known), where))
    kwargs = {}
    for name, f in known.items():
        if name not in values:
            continue
        key = f"{where}{name}"
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build(typing.cast(type, tp), values[name] or {}, f"{key}.")
        else:
            kwargs[name] = check(key, values[name], tp, f.metadata)
    return kwargs


def unknown_key(key: str, valid: list[str], where: str = "") -> str:
    leaf = key[len(where):]
    close = difflib.get_close_matches(leaf, valid, n=1)
    hint = f"; did you mean '{where}{close[0]}'?" if close else f"; valid keys here: {', '.join(valid)}"
    return f"unknown config key '{key}'{hint}"


def check(key: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """`value` as the type `tp` allows (an int where a float is asked is a float; '1e-3', which
    YAML 1.1 reads as a string, is a number), or a one-line error naming key, value and rule."""
    ok, out = _coerce(value, tp)
    if not ok:
        raise SupernasError(f"{key}={_show(value)} is not allowed: {rule(tp, meta)}")
    if isinstance(out, (int, float)) and not isinstance(out, bool) and not _in_range(out, meta):
        raise SupernasError(f"{key}={_show(value)} is out of range: {rule(tp, meta)}")
    return out


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _arms(tp: Any) -> tuple:
    """The alternatives of a Union (`X | None` included), or (tp,)."""
    if typing.get_origin(tp) is Union or isinstance(tp, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    if tp is Any:
        return True, value
    arms = _arms(tp)
    if len(arms) > 1:
        for arm in arms:
            ok, out = _coerce(value, arm)
            if ok:
                return True, out
        return False, None
    origin = typing.get_origin(tp)
    if origin is Literal:  # type-exact: True is not the literal 1
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp)), value
    if origin in (list, tuple, collections.abc.Sequence):
        (arm, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            return False, None
        items = [_coerce(v, arm) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if tp is type(None):
        return value is None, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, (int, float)):
            return math.isfinite(value), float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                v = float(value)
            except ValueError:
                return False, None
            return math.isfinite(v), v
        return False, None
    if tp is str:
        return isinstance(value, str), value
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        return isinstance(value, Mapping), value
    return isinstance(value, tp), value


def _in_range(v: float, meta: Mapping[str, Any]) -> bool:
    lo, hi = meta.get("low"), meta.get("high")
    if lo is not None and (v <= lo if meta.get("low_open") else v < lo):
        return False
    if hi is not None and (v >= hi if meta.get("high_open") else v > hi):
        return False
    return True


def rule(tp: Any, meta: Mapping[str, Any]) -> str:
    """What a field allows, in words: 'an integer >= 1', 'one of sgd, rmsprop', 'a number in (0, 1]'."""
    if meta.get("allows"):
        return meta["allows"]
    parts = []
    null = False
    for arm in _arms(tp):
        if arm is type(None):
            null = True
        elif typing.get_origin(arm) is Literal:
            parts.append("one of " + ", ".join(str(a).lower() if isinstance(a, bool) else str(a)
                                               for a in typing.get_args(arm)))
        elif arm is bool:
            parts.append("true or false")
        elif arm in (int, float):
            parts.append(("an integer" if arm is int else "a number") + _span(meta))
        elif arm is str:
            parts.append("a string")
        elif typing.get_origin(arm) in (list, tuple, collections.abc.Sequence):
            item = (typing.get_args(arm) or (Any,))[0]
            parts.append("a list" + ("" if item is Any else f" of {rule(item, {}).replace('a ', '', 1)}s"))
        elif arm in (dict, Mapping) or typing.get_origin(arm) in (dict, Mapping):
            parts.append("a mapping")
        else:
            parts.append(getattr(arm, "__name__", str(arm)))
    return " or ".join(parts) + (" (or null)" if null else "")


def _span(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("low"), meta.get("high")
    if lo is not None and hi is not None:
        return f" in {'(' if meta.get('low_open') else '['}{lo:g}, {hi:g}{')' if meta.get('high_open') else ']'}"
    if lo is not None:
        return f" {'>' if meta.get('low_open') else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if meta.get('high_open') else '<='} {hi:g}"
    return ""


# ---------------------------------------------------------------------------- description
def describe(settings: Any, indent: str = "") -> list[str]:
    """A settings instance as commented YAML: every key with its value, what it allows and its doc."""
    hints = typing.get_type_hints(type(settings))
    lines = []
    for f in dataclasses.fields(settings):
        tp, value = hints[f.name], getattr(settings, f.name)
        doc = f.metadata.get("doc", "")
        if dataclasses.is_dataclass(tp):
            lines.append(f"{indent}{f.name}:{'  # ' + doc if doc else ''}")
            lines += describe(value, indent + "  ")
            continue
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else \
            (list(value) if isinstance(value, tuple) else value)
        if isinstance(value, str) and _reads_as_other(value):  # '~' or 'yes' unquoted would be null or true
            shown = yaml.safe_dump(value, default_style="'").strip()
        lines.append(f"{indent}{f.name}: {shown}  # {rule(tp, f.metadata)}. {doc}".rstrip())
    return lines


def _reads_as_other(text: str) -> bool:
    """Whether YAML reads `text`, written plain, as something other than that string."""
    try:
        return yaml.safe_load(text) != text
    except yaml.YAMLError:
        return True

