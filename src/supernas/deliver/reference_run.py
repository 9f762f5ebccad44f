"""Run directories to and from the AttentiveNAS reference checkpoint layout: `supernas import`
turns a published supernet into a run directory that every stage-2 command takes, and
`supernas export RUN --format reference` writes a run's supernet in the official layout."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import SupernasError
from ..utils.file_names import CONFIG, REFERENCE_SUPERNET
from ..utils.io import atomic_torch_save
from ..utils.lock import DirectoryLock

REFERENCE_FILE = REFERENCE_SUPERNET


def import_reference(checkpoint: "str | Path | Mapping[str, Any]", out: "str | Path", space: str = "attentivenas",
                     overrides: Sequence[str] = ()) -> Path:
    """Write `out`/config.yaml and `out`/checkpoint.pt holding the reference checkpoint's supernet
    of `space` (a built-in name or a space file). `overrides` (data.KEY=VALUE) name the data that
    stage-2 commands re-calibrate BatchNorm and evaluate on; they can also be given to each of them."""
    from ..config import SupernetConfig, dump_config, load_config
    from ..nn import SuperNet
    from ..runtime.checkpoint import save_checkpoint
    from ..spaces import get_space, list_spaces
    from ..utils.file_names import CHECKPOINT

    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # an import makes a run directory whole: it never mixes into a folder that holds anything
        held = "already holds a run" if (out / CHECKPOINT).exists() else "is not empty"
        raise SupernasError(f"'{out}' {held}; import into a new or empty folder (--out)")
    for item in overrides:
        if not item.startswith("data."):
            raise SupernasError(f"'{item}': import takes only data.KEY=VALUE settings (e.g. data.path=~/imagenet)")
    resolved = get_space(space)
    space_entry: Any = space if space in list_spaces() else resolved.definition
    # a bad data setting fails now, not at the first stage-2 command
    cfg = load_config(SupernetConfig, None, overrides, data={"run": {"dir": str(out)}, "space": space_entry})
    net = SuperNet.from_reference_checkpoint(checkpoint, resolved)
    source = str(checkpoint) if isinstance(checkpoint, (str, Path)) else "a state dict"
    with DirectoryLock(out, "--out", clean=""):  # a run directory: one writer, as for a training run
        if (out / CHECKPOINT).exists():
            raise SupernasError(f"'{out}' already holds a run; choose another --out")
        dump_config(cfg, out / CONFIG)
        save_checkpoint(out, {"model": net.state_dict(), "space": space_entry, "num_classes": net.num_classes,
                              "imported_from": source})
    return out


def export_reference(run_dir: "str | Path", out_dir: "str | Path") -> Path:
    """`out_dir`/supernet.pth.tar: the run's supernet as `{'state_dict': {'module.' + key: tensor}}`."""
    from ..evaluation.runs import load_supernet

    net, _ = load_supernet(run_dir, "cpu")
    out = Path(out_dir).expanduser()
    with DirectoryLock(out, "--out", clean=REFERENCE_FILE):
        return atomic_torch_save(net.reference_checkpoint(), out / REFERENCE_FILE)
