"""Reading structured text a user hands over (YAML configs and spaces, JSON Archs, search results)
with bounds, so that a hostile or broken file ends in one line instead of a hang, a MemoryError or
a RecursionError:

- YAML: at most `MAX_TEXT_BYTES` of text, and at most `MAX_YAML_NODES` values once aliases are
  expanded (a "billion laughs" file is a few lines whose anchors expand to 10**9 values: refused
  as it is read, before anything walks or copies it); nesting deeper than Python recursion is
  refused rather than crashing.
- JSON: a key given twice in one object is refused (`json` keeps the last one silently), and
  nesting too deep for the parser is refused.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import SupernasError

MAX_TEXT_BYTES = 4 << 20  # a config or a space definition is a few KiB
MAX_YAML_NODES = 1_000_000  # values once every alias is expanded; a real config has a few hundred


class YamlTooLarge(yaml.YAMLError):
    """A YAML text over the bounds (size, expanded values, nesting); the message says which."""


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many nodes `root` stands for once every alias is copied out, counted without copying
    (a node reached twice counts twice) and stopped as soon as it passes `limit`."""
    size: dict[int, int] = {}
    busy: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in size:
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done:
            busy.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > limit:
                return size[key]
            continue
        if key in busy:
            raise YamlTooLarge("an anchor refers to itself (an alias inside its own anchor)")
        busy.add(key)
        stack.append((node, True))
        for c in children:
            if id(c) in busy:
                raise YamlTooLarge("an anchor refers to itself (an alias inside its own anchor)")
            stack.append((c, False))
    return size[id(root)]


class BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses texts over MAX_TEXT_BYTES, documents that expand (through
    anchors and aliases) to over MAX_YAML_NODES values, and nesting deeper than the parser goes."""

    def __init__(self, stream: Any) -> None:
        if isinstance(stream, (str, bytes)) and len(stream) > MAX_TEXT_BYTES:
            raise YamlTooLarge(f"it holds {len(stream):,} characters; at most {MAX_TEXT_BYTES:,} are read (a "
                               "config or space definition is a few KiB)")
        super().__init__(stream)

    def compose_document(self) -> yaml.Node:
        try:
            node = super().compose_document()
        except RecursionError:
            raise YamlTooLarge("it is nested too deeply") from None
        if node is not None and _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise YamlTooLarge(f"its anchors and aliases expand to over {MAX_YAML_NODES:,} values (a \"billion "
                               "laughs\" file?); write the values out")
        return node

    def construct_document(self, node: yaml.Node) -> Any:
        try:
            return super().construct_document(node)
        except RecursionError:
            raise YamlTooLarge("it is nested too deeply") from None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise SupernasError(f"key '{key}' appears twice in one object; keep one")
        out[key] = value
    return out


def loads_json(text: str, where: str) -> Any:
    """JSON `text` with duplicate keys refused; a SupernasError naming `where` for any problem."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except SupernasError as e:
        raise SupernasError(f"{where}: {e}") from None
    except json.JSONDecodeError as e:
        raise SupernasError(f"{where} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise SupernasError(f"{where} is nested too deeply to be read as JSON") from None


def read_json(path: "str | Path", what: str) -> Any:
    """The JSON file at `path` read as `loads_json` reads text; `what` names it in errors ('the
    Pareto set'), and a folder, a binary file or an unreadable one is one line too."""
    p = Path(path).expanduser()
    where = f"{what} '{p}'"
    try:
        if p.stat().st_size > 64 * MAX_TEXT_BYTES and p.is_file():
            raise SupernasError(f"{where} is {p.stat().st_size:,} bytes: too large to be what it should be")
        text = p.read_text()
    except IsADirectoryError:
        raise SupernasError(f"{where} is a folder, not a JSON file") from None
    except FileNotFoundError:
        raise SupernasError(f"{where} does not exist") from None
    except UnicodeDecodeError:
        raise SupernasError(f"{where} is not a text file") from None
    except OSError as e:
        raise SupernasError(f"{where} cannot be read ({e.strerror or e})") from None
    return loads_json(text, where)


class DuplicateKey(yaml.YAMLError):
    """A mapping that gives a key twice; the message names the key and both lines."""


class UniqueKeyLoader(BoundedLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one
    silently: a second `train:` section would replace the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except (TypeError, yaml.YAMLError):
                continue  # an unhashable key: PyYAML's own error names it below
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKey(f"key '{key}' appears twice, on line {seen[key]} and on line {line}; keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def yaml_error_line(error: yaml.YAMLError) -> str:
    """One line saying what is wrong and where (line and column), from PyYAML's several-line text."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem is None:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    if "'\\t'" in problem:  # PyYAML shows a tab escaped
        problem += " (a tab: YAML indents with spaces only)"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem.strip()}{where}"
