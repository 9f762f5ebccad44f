"""The manifest of a folder whose files make one thing (an export): each file's name, size and
sha256, written last and checked on load, so that a file altered, replaced or left behind by
another export is caught instead of silently disagreeing with the others."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Optional

from ..errors import SupernasError
from .file_names import MANIFEST
from .io import atomic_write_text, file_sha256


def describe_file(path: Path) -> dict[str, object]:
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def write_manifest(folder: "str | Path", names: Iterable[str],
                   kept: Optional[Mapping[str, Mapping[str, object]]] = None) -> Path:
    """`folder`/manifest.json listing the files `names` as they are now, and the entries `kept`
    of an earlier manifest (files still part of the same thing) that the new ones do not replace."""
    folder = Path(folder)
    files = {**(kept or {}), **{name: describe_file(folder / name) for name in names}}
    return atomic_write_text(folder / MANIFEST, json.dumps({"files": dict(sorted(files.items()))}, indent=1) + "\n")


def read_manifest(folder: "str | Path") -> Optional[dict[str, dict[str, object]]]:
    """The entries of `folder`'s manifest, None when it has none; a damaged one is an error."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text()).get("files")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(v, dict) and {"bytes", "sha256"} <= set(v)
                                              for v in files.values()):
        raise SupernasError(f"'{path}' is damaged (not a manifest of files, sizes and sha256); export again")
    return files


def check_manifest(folder: "str | Path", needed: Iterable[str]) -> bool:
    """Check every file the manifest of `folder` lists against its size and sha256, and that it
    lists the files `needed`; False when the folder has no manifest (written before there were
    any), an error naming the file otherwise."""
    folder = Path(folder)
    files = read_manifest(folder)
    if files is None:
        return False
    for name in needed:
        if name not in files:
            raise SupernasError(f"'{folder / name}' is not part of the export in '{folder}' ({MANIFEST} does not list "
                                "it: another export left it, or it was added later); export again")
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            raise SupernasError(f"'{path}' is missing, but {MANIFEST} lists it; export again")
        size = path.stat().st_size
        if size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
            change = f"{entry['bytes']} bytes -> {size}" if size != entry["bytes"] else "same size, other bytes"
            raise SupernasError(f"'{path}' was changed after the export ({change}; it no longer matches {MANIFEST}): "
                                "its files would disagree; export again, or restore the file")
    return True
