"""Configs: a command's schema defaults, updated by a YAML file, then by a mapping given in Python,
then by `key=value` overrides, validated once into the schema's dataclass.

Every key a user writes must exist in the schema, so a typo is an error that names the key and
the closest valid one, not a setting silently ignored; a renamed key is still read, with a
warning naming its new name.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from ..errors import SupernasError
from ..utils.settings import build, unknown_key
from ..utils.structured import UniqueKeyLoader, YamlTooLarge, yaml_error_line
from .schema import RENAMED

T = TypeVar("T")


def _merge(base: dict, update: Mapping, where: str = "") -> dict:
    for key, value in update.items():
        path = f"{where}{key}"
        if key not in base:
            raise SupernasError(unknown_key(path, [str(k) for k in base], where))
        if isinstance(base[key], dict) and base[key] and isinstance(value, Mapping):
            _merge(base[key], value, f"{path}.")
        else:
            base[key] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return base


def _renamed(update: Mapping, renames: Mapping[str, str], where: str = "", root: dict | None = None) -> dict:
    """`update` with its old keys moved to their new names (each named in a DeprecationWarning)."""
    out: dict = {} if root is None else {}
    root = out if root is None else root
    for key, value in update.items():
        path = f"{where}{key}"
        if path in renames:
            new = renames[path]
            warnings.warn(f"config key '{path}' is now '{new}'; the old name will stop working in a later "
                          "release", DeprecationWarning, stacklevel=4)
            _set(root, new.split("."), value)
            continue
        if isinstance(value, Mapping) and any(old.startswith(f"{path}.") for old in renames):
            value = _renamed(value, renames, f"{path}.", root)
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key].update(value)  # a renamed key landed here first
        else:
            out[key] = value
    return out


def _set(tree: dict, keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        tree = tree.setdefault(k, {})
    tree[keys[-1]] = value


def parse_override(item: str) -> tuple[list[str], Any]:
    """'train.lr=0.2' -> (['train', 'lr'], 0.2); the value is read as YAML (numbers, lists, null)."""
    if "=" not in item:
        raise SupernasError(f"override '{item}' must look like key=value (e.g. train.epochs=10)")
    key, text = item.split("=", 1)
    # On a command line `~` is the home folder, not YAML's null: `data.path=~` or `run.dir=~/runs`
    # stays a path (expanded where it is used); a key that may be unset takes `null`.
    if text.strip() == "~" or text.strip().startswith("~/"):
        return key.strip().split("."), text.strip()
    try:
        value = load_yaml_text(text, "the value") if text.strip() else ""
    except SupernasError:
        value = text
    return key.strip().split("."), value


def load_yaml_text(text: str, where: str) -> Any:
    """YAML `text` read safely with duplicate keys refused; errors are one line naming `where`."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except YamlTooLarge as e:  # anchors expanding to billions of values, a huge or too deep text
        raise SupernasError(f"{where} is refused: {e}") from None
    except yaml.YAMLError as e:
        raise SupernasError(f"{where} is not valid YAML: {yaml_error_line(e)}") from None


def load_yaml_file(path: "str | Path", what: str = "file") -> Any:
    """The YAML file at `path` read as `load_yaml_text` reads text; `what` names it in errors."""
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise SupernasError(f"{what} '{path}' is not a text file") from None
    return load_yaml_text(text, f"{what} '{path}'")


def read_yaml(path: "str | Path") -> Mapping[str, Any]:
    import stat

    p = Path(path).expanduser()
    if p.is_dir():
        raise SupernasError(f"config file '{path}' is a directory; give the YAML file in it")
    if not p.exists():
        raise SupernasError(f"config file '{path}' does not exist")
    piped = stat.S_ISFIFO(p.stat().st_mode)  # /dev/stdin of `... | supernas train /dev/stdin`, <(...)
    if not p.is_file() and not piped:
        raise SupernasError(f"config file '{path}' is a device or socket, not a file; give a YAML file")
    loaded = load_yaml_file(p, "config file")
    if loaded is None and piped:  # an empty pipe is a mistake upstream, not a config of defaults
        raise SupernasError(f"config file '{path}' is empty (nothing came through the pipe)")
    loaded = loaded or {}
    if not isinstance(loaded, Mapping):
        raise SupernasError(f"config file '{path}' must hold a mapping of settings at the top level")
    return loaded


# A config file marks a setting the user must give (a dataset's path) with a value starting with this;
# the rest of the value says what to give.
REQUIRED = "???"


def _unset_required(tree: Mapping, where: str = "") -> tuple[str, str] | None:
    """(key, what to give) of the first setting still marked REQUIRED, or None."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            found = _unset_required(value, f"{where}{key}.")
            if found:
                return found
        elif isinstance(value, str) and value.startswith(REQUIRED):
            return f"{where}{key}", value[len(REQUIRED):].strip()
    return None


def load_config(schema: "type[T]", path: "str | Path | None" = None, overrides: Iterable[str] = (),
                data: "Mapping[str, Any] | None" = None, require: bool = True) -> T:
    """The settings of `schema` (a dataclass of `config.schema`): its defaults, updated by the YAML
    file at `path`, then by `data`, then by `key=value` overrides, then validated. With `require`,
    a setting the file marks as required (a value '??? what to give') that nothing set is an error."""
    renames = RENAMED.get(schema, {})
    cfg = schema().to_dict()  # type: ignore[attr-defined]
    updates = [read_yaml(path)] if path is not None else []
    if data:
        updates.append(data.to_dict() if hasattr(data, "to_dict") else data)
    for item in overrides:
        keys, value = parse_override(item)
        nested: dict = {}
        _set(nested, keys, value)
        updates.append(nested)
    for update in updates:
        _merge(cfg, _renamed(update, renames))
    unset = _unset_required(cfg) if require else None
    if unset:
        key, what = unset
        raise SupernasError(f"{key} is required by {path or 'the config'}: give {key}=... "
                            f"({what or 'see the config file'})")
    return build(schema, cfg)


def dump_config(cfg: Any, path: "str | Path") -> None:
    from ..utils.io import atomic_write_text

    values = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))
