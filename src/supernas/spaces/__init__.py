"""Search spaces: Archs as values, spaces as data, and the analytic cost model."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import SupernasError, shorten
from .arch import Arch
from .builtin import ATTENTIVENAS_MODELS, BUILTIN_SPACES
from .cost import CostModel, layout_costs
from .layout import NetPlan, layout, plan
from .reference import from_reference, is_reference_format, reference_columns, to_reference
from .space import Dimension, SearchSpace, as_generator

__all__ = ["Arch", "CostModel", "Dimension", "NetPlan", "SearchSpace", "as_generator", "from_reference",
           "get_space", "layout", "layout_costs", "list_spaces", "load_arch", "plan", "reference_columns",
           "to_reference"]


def list_spaces() -> list[str]:
    return list(BUILTIN_SPACES)


@lru_cache(maxsize=None)
def _builtin(name: str) -> SearchSpace:
    return SearchSpace(BUILTIN_SPACES[name])


def get_space(space: "str | Mapping[str, Any] | SearchSpace") -> SearchSpace:
    """A space by built-in name, from a YAML/JSON file path, or from a definition mapping."""
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        return _not_posing_as_builtin(SearchSpace(_with_base(space)))
    if space in BUILTIN_SPACES:
        return _builtin(space)
    if not isinstance(space, str):
        raise SupernasError(f"space={space!r} is not allowed: a built-in name ({', '.join(BUILTIN_SPACES)}), the "
                            "path of a space definition in YAML, or a definition mapping")
    path = Path(space).expanduser()
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        try:
            return _not_posing_as_builtin(SearchSpace(_with_base(_read_space_file(path))))
        except SupernasError as e:
            raise SupernasError(f"space file '{path}': {e}") from None
    raise SupernasError(f"unknown space '{space}'; built-in spaces: {', '.join(BUILTIN_SPACES)} "
                        "(or give the path of a space definition in YAML)")


def _not_posing_as_builtin(space: SearchSpace) -> SearchSpace:
    """A custom space may not take a built-in space's name unless it is that space: runs,
    predictors and searches tell spaces by name, so a look-alike would pass as the original."""
    from dataclasses import replace

    if space.name in BUILTIN_SPACES and replace(space.spec, description="") != replace(
            _builtin(space.name).spec, description=""):
        raise SupernasError(f"the space is named '{space.name}' like a built-in space but differs from it; give it "
                            "a name of its own")
    return space


def _read_space_file(path: Path) -> Any:
    import yaml

    from ..utils.structured import UniqueKeyLoader, YamlTooLarge, yaml_error_line

    try:
        d = yaml.load(path.read_text(), Loader=UniqueKeyLoader)  # noqa: S506 - safe, and a key given twice is an error
    except UnicodeDecodeError:
        raise SupernasError("it is not a text file; give a space definition in YAML") from None
    except YamlTooLarge as e:  # anchors expanding to billions of values, a huge or too deep text
        raise SupernasError(f"it is refused: {e}") from None
    except yaml.YAMLError as e:
        raise SupernasError(f"it is not valid YAML ({yaml_error_line(e)})") from None
    if d is None:
        raise SupernasError("it is empty; give a space definition (name, resolution, stem, stages, head)")
    return d


def _with_base(d: Any) -> Any:
    """`{base: attentivenas, resolution: [32, 48], ...}`: a built-in space with some top-level
    fields replaced (e.g. smaller resolutions for CIFAR-size images)."""
    if not isinstance(d, Mapping) or "base" not in d:
        return d  # parse_space says what is wrong with a value that is no mapping
    base = d["base"]
    if not isinstance(base, str) or base not in BUILTIN_SPACES:
        raise SupernasError(f"unknown base space '{base}'; built-in spaces: {', '.join(BUILTIN_SPACES)}")
    merged = {**BUILTIN_SPACES[base], **{k: v for k, v in d.items() if k != "base"}}
    if "name" not in d:
        merged["name"] = f"{base}-custom"
    return merged


def _read_arch_file(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise SupernasError(f"the Arch file '{path}' is not a text file") from None


def load_arch(space: SearchSpace, value: "str | Mapping[str, Any] | Arch") -> Arch:
    """An Arch from a JSON string, a JSON file path, a mapping (ours or the reference format), or a
    published model name such as 'a0' for the attentivenas space."""
    from ..utils.structured import loads_json

    if isinstance(value, Arch):
        return space.arch(value)
    if isinstance(value, str):
        text = value.strip()
        if space.name == "attentivenas" and text.lower().removeprefix("attentivenas-") in ATTENTIVENAS_MODELS:
            return from_reference(space, ATTENTIVENAS_MODELS[text.lower().removeprefix("attentivenas-")])
        if not text.startswith("{"):
            path = Path(text)
            if not path.is_file():
                name = text.lower().removeprefix("attentivenas-")
                if name in ATTENTIVENAS_MODELS:  # a published model, asked of a run of another space
                    raise SupernasError(f"'{value}' is a published model of the space 'attentivenas' (a0..a6), not "
                                        f"of '{space.name}'; give an Arch of '{space.name}' as JSON or a file")
                raise SupernasError(f"the Arch {shorten(value)} is neither JSON nor an existing file")
            text = _read_arch_file(path)
        value = loads_json(text, "the Arch")  # duplicate keys and deep nesting refused in one line
    if isinstance(value, Mapping) and "arch" in value and isinstance(value["arch"], Mapping):
        saved = value.get("space")  # our saved files: {"space": ..., "arch": {...}, ...}
        if isinstance(saved, str) and saved != space.name:
            raise SupernasError(f"the Arch was saved for space '{saved}', not '{space.name}'; give an Arch of "
                                f"'{space.name}' (or --space {saved})")
        value = value["arch"]
    if is_reference_format(value):
        return from_reference(space, value)
    return space.arch(value)
