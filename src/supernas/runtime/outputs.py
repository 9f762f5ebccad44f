"""Output flags that name a single file (`predictor fit --predictor`, `report --out`): never over a
file a run, search or export owns, nor over any other existing file that is not of the output's own
kind unless `--force` says so. (Folder outputs are guarded by run_dir.require_own_folder.)

`predictor fit RUN --predictor RUN/checkpoint.pt` used to write the predictor over the run's
checkpoint and exit 0.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..errors import SupernasError
from ..utils.file_names import CHECKPOINT, MANIFEST, OWNED


def check_output_file(path: "str | Path", flag: str, kind: str, is_kind: Callable[[Path], bool],
                      force: bool) -> Path:
    """`path` as the file `flag` writes (a `kind`, e.g. 'supernas predictor'): refused when it is a
    folder or a file a run owns, or an existing file `is_kind` does not recognise, unless `force`."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise SupernasError(f"{flag} '{path}' is a folder; give {flag} the file to write")
    if p.name in OWNED or p.name.startswith("events.out.tfevents"):
        what = OWNED.get(p.name, "the run's TensorBoard events")
        if p.exists() or (p.parent / CHECKPOINT).exists() or (p.parent / MANIFEST).exists():
            raise SupernasError(f"{flag} '{path}' names {what}; it is never overwritten: give {flag} another file")
    if p.exists() and not force:
        if not p.is_file():
            raise SupernasError(f"{flag} '{path}' is not a regular file; give {flag} a new file")
        if not is_kind(p):
            raise SupernasError(f"{flag} '{path}' exists and is not a {kind}; give {flag} a new file, or add --force "
                                "to replace it")
    return p


def is_saved_predictor(path: Path) -> bool:
    """A predictor file, told by the header supernas writes beside it (PATH.json), not by reading
    the file itself."""
    try:
        meta = json.loads(path.with_name(path.name + ".json").read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and str(meta.get("format", "")).startswith("supernas-predictor/")


def is_report_page(path: Path) -> bool:
    """A page `supernas report` wrote (its title says so)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.lower().startswith(b"<!doctype html") and b"<title>supernas report" in head
