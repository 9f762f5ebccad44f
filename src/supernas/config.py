"""Configs: nested mappings from YAML, merged onto a command's defaults, with `key=value` overrides.

Every key a user writes must exist in the defaults, so a typo is an error that names the key
and the closest valid one, not a setting silently ignored.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import SupernasError


def _merge(base: dict, update: Mapping, where: str = "") -> dict:
    for key, value in update.items():
        path = f"{where}{key}"
        if key not in base:
            close = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            hint = f"; did you mean '{where}{close[0]}'?" if close else f"; valid keys here: {', '.join(map(str, base))}"
            raise SupernasError(f"unknown config key '{path}'{hint}")
        if isinstance(base[key], dict) and base[key] and isinstance(value, Mapping):
            _merge(base[key], value, f"{path}.")
        else:
            base[key] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return base


def parse_override(item: str) -> tuple[list[str], Any]:
    """'optim.lr=0.2' -> (['optim', 'lr'], 0.2); the value is read as YAML (numbers, lists, null)."""
    if "=" not in item:
        raise SupernasError(f"override '{item}' must look like key=value (e.g. train.epochs=10)")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.strip().split("."), value


def load_config(defaults: Mapping[str, Any], path: "str | Path | None" = None,
                overrides: Iterable[str] = (), data: "Mapping[str, Any] | None" = None) -> dict:
    """Defaults, updated by the YAML file at `path`, then by `data`, then by `key=value` overrides."""
    cfg = copy.deepcopy(dict(defaults))
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise SupernasError(f"config file '{path}' does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise SupernasError(f"config file '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, Mapping):
            raise SupernasError(f"config file '{path}' must hold a mapping of settings at the top level")
        _merge(cfg, loaded)
    if data:
        _merge(cfg, data)
    for item in overrides:
        keys, value = parse_override(item)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        _merge(cfg, nested)
    return cfg


def dump_config(cfg: Mapping[str, Any], path: "str | Path") -> None:
    from .utils.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False))
