"""What `supernas retrain ARCH` trains: the space and Arch named by an FP-NAS run directory, an
export directory, a JSON file or string, a published model name, or smallest / largest."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import SupernasError
from ..spaces import Arch, SearchSpace, get_space, list_spaces, load_arch
from ..spaces.builtin import ATTENTIVENAS_MODELS
from ..utils.file_names import ARCH, CONFIG, RESULT
from ..utils.structured import loads_json, read_json


def resolve_arch(source: Any, space: Any = None) -> tuple[SearchSpace, Arch]:
    """The space and Arch that ARCH names.

    `source`: an FP-NAS run directory (its result.json's most likely Arch), an export directory
    (arch.json), a JSON file or string holding {"arch": ...} or a bare Arch, a mapping of the
    same, a published model name (a0..a6), or 'smallest' / 'largest' of `space`. The space is
    the file's "space_definition" when it has one, else `space` (a built-in name, a definition
    mapping or a YAML path), else the built-in space the file names.
    """
    if isinstance(source, str) and _is_name(source):
        return _named(source.strip().lower(), space)
    doc, where, run_space = _arch_document(source)
    if not isinstance(doc, Mapping):
        raise SupernasError(f"{where} must hold a JSON object (an Arch, or a file with an \"arch\"), "
                            f"not a {type(doc).__name__}")
    value: Any  # any JSON value: load_arch refuses what is not an Arch
    if "most_likely" in doc:  # an FP-NAS / PARSEC result.json
        value = doc["most_likely"].get("arch") if isinstance(doc["most_likely"], Mapping) else None
    else:
        value = doc.get("arch", doc)
    chosen = _pick_space(doc.get("space_definition") or run_space, space, doc.get("space"), where)
    try:
        return chosen, load_arch(chosen, value)
    except SupernasError as e:
        raise SupernasError(f"the Arch of {where} is not in space '{chosen.name}': {e}") from None


def _is_name(text: str) -> bool:
    name = text.strip().lower()
    return name in ("smallest", "largest") or name.removeprefix("attentivenas-") in ATTENTIVENAS_MODELS


def _named(name: str, space: Any) -> tuple[SearchSpace, Arch]:
    if name in ("smallest", "largest"):
        if space is None:
            raise SupernasError(f"ARCH '{name}' needs the space it is the {name} Arch of: add space=NAME "
                                f"(built in: {', '.join(list_spaces())}) or space=PATH.yaml")
        chosen = get_space(space)
        return chosen, chosen.smallest() if name == "smallest" else chosen.largest()
    chosen = get_space("attentivenas" if space is None else space)  # the published models' space
    if chosen.name != "attentivenas":
        raise SupernasError(f"'{name}' is a published model of the attentivenas space, not of '{chosen.name}'; "
                            "set space=attentivenas (or leave space unset)")
    return chosen, load_arch(chosen, name)


def _arch_document(source: Any) -> tuple[Any, str, Any]:
    """(the JSON document holding the Arch, how messages name it, the space of its run's config.yaml)."""
    if isinstance(source, Mapping):
        return (source.to_dict() if isinstance(source, Arch) else source), "the given Arch", None
    if not isinstance(source, (str, Path)) or not str(source).strip():
        raise SupernasError("no Arch to train: give ARCH (an FP-NAS run directory, an export directory, a JSON "
                            "file or string, or a published name such as a0)")
    text = str(source).strip()
    if text.startswith("{"):
        return loads_json(text, "ARCH"), "the ARCH JSON string", None
    path = Path(text).expanduser()
    if path.is_dir():
        return _run_document(path)
    if path.is_file():
        return _read_json(path), f"'{path}'", None
    raise SupernasError(f"ARCH '{text}' does not exist; give an FP-NAS run directory, an export directory, a JSON "
                        "file or string with an Arch, or a published name (a0..a6)")


def _run_document(path: Path) -> tuple[Any, str, Any]:
    if (path / ARCH).is_file():  # written by `supernas export`, or RUN/export of a retrain
        return _read_json(path / ARCH), f"the export '{path}'", None
    if (path / RESULT).is_file():  # an FP-NAS / PARSEC run, or a retrain run
        run_space = None
        if (path / CONFIG).is_file():
            from ..config.loading import load_yaml_file

            run_space = (load_yaml_file(path / CONFIG, "the run's config") or {}).get("space")
        return _read_json(path / RESULT), f"'{path / 'result.json'}'", run_space
    raise SupernasError(f"'{path}' holds neither arch.json (an export directory) nor result.json (a finished FP-NAS "
                        f"run); for a supernet run, export an Arch first: supernas export {path} --arch ...")


def _read_json(path: Path) -> Any:
    return read_json(path, "the Arch file")  # duplicate keys, deep nesting, binary files: one line


def _pick_space(definition: Any, configured: Any, named: Any, where: str) -> SearchSpace:
    """The file's definition, else the configured space, else the built-in space the file names."""
    if definition:
        return get_space(definition)
    if configured is not None:
        return get_space(configured)
    if isinstance(named, str) and named in list_spaces():
        return get_space(named)
    if named:
        raise SupernasError(f"{where} names space '{named}', which is not built in, and holds no space_definition "
                            "to rebuild it from; give its definition with space=PATH.yaml")
    raise SupernasError(f"{where} does not say which space its Arch belongs to; add space=NAME (built in: "
                        f"{', '.join(list_spaces())}) or space=PATH.yaml")
