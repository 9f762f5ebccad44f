"""A stage-1 run directory read back: its supernet with the trained weights, its config and data,
for every command that comes after training (search, predictor, export, a teacher to distil from)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import torch

from ..config import SupernetConfig, load_config, read_yaml, run_kind
from ..data import build_datasets
from ..errors import SupernasError, SupernasWarning
from ..nn import SuperNet
from ..runtime import distributed as ddp
from ..runtime.checkpoint import load_checkpoint
from ..spaces import get_space
from ..utils.file_names import CHECKPOINT, CONFIG, LOCK
from ..utils.lock import DirectoryLock


def load_supernet(run_dir: "str | Path", device: str = "auto", overrides: Sequence[str] = ()):
    """(supernet with the run's weights, resolved config) of a stage-1 run directory, without its
    data. `overrides` are `data.KEY=VALUE` settings replacing the run's (its data elsewhere, or
    named for the first time: an imported supernet's ImageNet tree)."""
    run_dir = Path(run_dir).expanduser()
    if not (run_dir / CONFIG).is_file():
        raise SupernasError(f"'{run_dir}' is not a supernet run directory (no config.yaml); give the run.dir of "
                            "`supernas train` or the --out of `supernas import`")
    for item in overrides:
        if not item.startswith("data."):
            raise SupernasError(f"'{item}': a stage-2 command takes only data.KEY=VALUE settings (e.g. "
                                "data.path=~/imagenet); the rest of the run's config stays as trained")
    _require_supernet_run(run_dir)
    cfg = load_config(SupernetConfig, run_dir / CONFIG, overrides)
    _, dev = ddp.setup_distributed(device)
    ck = load_checkpoint(run_dir, map_location=dev)
    model = ck.get("model") if isinstance(ck, Mapping) else None
    if not isinstance(model, Mapping) or not isinstance(model.get("classifier.weight"), torch.Tensor):
        raise SupernasError(f"'{run_dir / CHECKPOINT}' holds no supernet weights (a checkpoint of `supernas train` "
                            "or `supernas import` has them under 'model'); give such a run directory")
    net = SuperNet(_trained_space(run_dir, ck, cfg), int(model["classifier.weight"].shape[0])).to(dev)
    try:
        net.load_state_dict(model)
    except RuntimeError as e:
        raise SupernasError(f"the weights in '{run_dir / CHECKPOINT}' do not fit the supernet of its space "
                            f"({str(e).strip().splitlines()[-1].strip()}); was the checkpoint or config.yaml "
                            "replaced?") from None
    origin = checkpoint_origin(run_dir, ck)
    # what an export records of the weights it came from (an attribute SuperNet does not declare)
    cast(Any, net).origin = origin
    if origin.get("training"):
        warnings.warn(f"'{run_dir}' is still training: this uses its checkpoint of step {origin['step']} "
                      f"(epoch {origin['epoch']:.2f}), not its final weights", SupernasWarning, stacklevel=2)
    return net.eval(), cfg


def _trained_space(run_dir: Path, ck: Mapping, cfg: SupernetConfig):
    """The space the run trained: the definition its checkpoint keeps (a space file edited since is
    said, not used), else what its config names."""
    stored = ck.get("space_definition")
    if not isinstance(stored, Mapping):
        return get_space(ck.get("space", cfg.space))
    trained = get_space(dict(stored))
    try:
        now = get_space(cfg.space).definition
    except SupernasError:  # the space file is gone or broken: the stored definition is all there is
        now = None
    if now != trained.definition:
        warnings.warn(f"the space of '{run_dir}' ({cfg.space}) differs from the one it trained, which its checkpoint "
                      "keeps; that one is used", SupernasWarning, stacklevel=3)
    return trained


def checkpoint_origin(run_dir: Path, ck: Mapping) -> dict:
    """Which weights a run's checkpoint holds: {'run', 'step', 'epoch', 'training'} (step and epoch
    None for an imported supernet, which has no training state); `training`: the run still holds
    its lock, so a later checkpoint will replace these weights."""
    step = ck.get("step")
    epoch = None
    try:
        per_epoch = int(ck["train_images"]) // (int(ck["config"]["train"]["batch_size"]) * int(ck.get("world_size", 1)))
        epoch = round(step / per_epoch, 4) if isinstance(step, int) and per_epoch > 0 else None
    except (KeyError, TypeError, ValueError):
        pass
    return {"run": str(run_dir), "step": step if isinstance(step, int) else None, "epoch": epoch,
            "training": isinstance(step, int) and _locked_by_a_run(run_dir)}


def _locked_by_a_run(run_dir: Path) -> bool:
    """Whether a running process holds the run directory's lock (a training still writing it)."""
    if not (run_dir / LOCK).exists() or not ddp.current().is_main:  # ranks would take it from each other
        return False
    try:
        DirectoryLock(run_dir, "run.dir").acquire().release()
    except SupernasError:
        return True
    return False


# what to do with a run of another command than `supernas train`
_OTHER_RUNS = {
    "fpnas": "an FP-NAS search (`supernas fpnas`): its Archs are in RUN/result.json; train the best one with "
             "`supernas retrain RUN`",
    "parsec": "a PARSEC search (`supernas fpnas` with search.mode parsec): its Archs are in RUN/result.json; train "
              "the best one with `supernas retrain RUN`",
    "retrain": "a standalone training (`supernas retrain`): its model is in RUN/export; evaluate it with "
               "`supernas eval RUN/export --data PATH`",
    "finetune": "a standalone training (`supernas finetune`): its model is in RUN/export; evaluate it with "
                "`supernas eval RUN/export --data PATH`",
}


def _require_supernet_run(run_dir: Path) -> None:
    """Name what `run_dir` holds when it is no supernet run with weights, and what reads it instead."""
    kind = run_kind(read_yaml(run_dir / CONFIG))
    if kind in _OTHER_RUNS:
        raise SupernasError(f"'{run_dir}' is {_OTHER_RUNS[kind].replace('RUN', str(run_dir))}; search, predictor "
                            "and export read the supernet runs of `supernas train` (or `supernas import`)")
    if not (run_dir / CHECKPOINT).is_file():
        raise SupernasError(f"'{run_dir}' holds no trained weights yet (no {CHECKPOINT}): its training has not "
                            "written a checkpoint; wait for one (every checkpoint.every_steps steps or "
                            "checkpoint.every_minutes minutes) or train the supernet first")


def load_run(run_dir: "str | Path", device: str = "auto", overrides: Sequence[str] = ()):
    """(supernet with trained weights, resolved config, datasets) of a stage-1 run directory; see
    `load_supernet` for `overrides`."""
    net, cfg = load_supernet(run_dir, device, overrides)
    data = build_datasets(cfg.data)
    if data.num_classes != net.num_classes:
        where = cfg.data.path or "the built-in digits"
        raise SupernasError(f"the supernet in '{run_dir}' predicts {net.num_classes} classes but its data ({where}) "
                            f"has {data.num_classes}: name the data it was trained on with data.path=PATH (on this "
                            "command, or once on `supernas import`)")
    return net, cfg, data
