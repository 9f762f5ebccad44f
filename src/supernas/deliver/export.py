"""Export an Arch of a trained supernet: the extracted plain model with BatchNorm re-calibrated on
training images.

An export folder is one thing: arch.json (the Arch, its space and what a user of the model needs)
and state_dict.pt (the weights) always, the file of the chosen format beside them (TorchScript,
ONNX, or a pickled module on request), and manifest.json listing each file's size and sha256,
which every load checks (`evaluation.load_exported`). The default format runs no code on load:
the model is rebuilt from arch.json and the weights are read with `weights_only=True`; a pickled
module (`--format pickle`, model.pt) runs code when loaded and is written only when asked for.
"""
from __future__ import annotations

import inspect
import io
import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from ..errors import SupernasError
from ..nn.calibrate import recalibrate_bn
from ..nn.static import StaticNet, resize_to
from ..registry import Registry
from ..spaces import Arch, CostModel
from ..utils.file_names import ARCH, LOCK, MANIFEST, REFERENCE_SUPERNET, WEIGHTS
from ..utils.io import atomic_torch_save, atomic_write, atomic_write_bytes, atomic_write_text
from ..utils.lock import DirectoryLock
from ..utils.manifest import describe_file, read_manifest, write_manifest


def calibrate_extracted(model: StaticNet, data, bn_batches: int = 64, device: "str | torch.device" = "cpu",
                        batch_size: int = 64) -> StaticNet:
    """BN statistics of an extracted Arch from `bn_batches` seeded training batches (the same ones,
    augmentation included, every time), resized to its resolution; returns it in eval mode."""
    loader = DataLoader(data.calibration, batch_size=min(batch_size, len(data.calibration)), shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        recalibrate_bn(model, (resize_to(x.to(device), model.resolution) for x, _ in loader), num_batches=bn_batches)
    return model.eval()


# The data settings that decide which images the validation split holds: recorded in arch.json so
# that `supernas eval EXPORT` without --data evaluates on the same split.
_VAL_SETTINGS = ("path", "format", "image_size", "val_size", "val_subset", "seed")


def recorded_data(cfg: Any) -> dict[str, Any]:
    """The data settings of `cfg` (a DataConfig) that rebuild its validation split, the path made
    absolute (an export is evaluated from anywhere); the built-in digits stay 'digits'."""
    from ..data.formats import is_builtin

    values = {k: getattr(cfg, k) for k in _VAL_SETTINGS}
    values["path"] = "digits" if is_builtin(cfg.path) else str(Path(cfg.path).expanduser().absolute())
    return values


def save_export(model: StaticNet, space, arch: Arch, data, out_dir: "str | Path",
                made_by: "dict | None" = None, fmt: str = "pt") -> Path:
    """`out_dir`/arch.json (the Arch, its space definition, costs, resolution and the data's
    normalisation and classes: all that `supernas eval` and `finetune` need; `made_by`: the settings
    that made it, for `supernas report`), state_dict.pt, the file of the format `fmt` (a name of
    EXPORT_FORMATS) and manifest.json, while holding the folder's lock (in this process alone: a
    distributed run calls it on its main rank); returns the model's file."""
    writer = EXPORT_FORMATS.get(fmt, "--format")
    out = Path(out_dir).expanduser()
    cost = CostModel(space, data.num_classes)
    meta = {"space": space.name, "space_definition": space.definition, "arch": arch.to_dict(),
            "mflops": float(cost.mflops(arch)), "params": int(cost.params(arch)), "resolution": model.resolution,
            "num_classes": data.num_classes, "image_size": data.image_size, "mean": list(data.mean),
            "std": list(data.std), "classes": [str(c) for c in data.classes],
            **({"data": recorded_data(data.config)} if getattr(data, "config", None) is not None else {}),
            **({"made_by": made_by} if made_by else {})}
    with DirectoryLock(out, "--out", clean=""):  # one writer; what an interrupted export left goes
        before = read_manifest(out) if (out / WEIGHTS).is_file() else None
        atomic_write_text(out / ARCH, json.dumps(meta, indent=1))
        atomic_torch_save(model.state_dict(), out / WEIGHTS)
        path = writer(model, out)
        written = [ARCH, WEIGHTS, path.name]
        # The files of earlier exports of the same weights (another format) stay part of this one.
        same = before is not None and before.get(WEIGHTS) == describe_file(out / WEIGHTS)
        kept = {name: entry for name, entry in (before or {}).items() if same and name not in written}
        write_manifest(out, written, kept)
    return path


# A format writes the calibrated static model of an Arch into the export folder (beside arch.json
# and state_dict.pt, which every export has) and returns the file it wrote:
# `EXPORT_FORMATS.register(name)` adds one.
Writer = Callable[[StaticNet, Path], Path]
EXPORT_FORMATS: Registry[Writer] = Registry("export format")


@EXPORT_FORMATS.register("pt")
def _weights(model: torch.nn.Module, out: Path) -> Path:
    return out / WEIGHTS  # save_export wrote it: the state dict, rebuilt with arch.json


@EXPORT_FORMATS.register("pickle")
def _pickled(model: torch.nn.Module, out: Path) -> Path:
    # The whole module pickled: loading it runs code (weights_only=False), so only on request.
    return atomic_torch_save(model, out / "model.pt")


@EXPORT_FORMATS.register("torchscript")
def _torchscript(model: StaticNet, out: Path) -> Path:
    scripted = torch.jit.trace(model, _example(model))
    return atomic_write(out / "model.torchscript.pt", lambda f: torch.jit.save(scripted, f))


@EXPORT_FORMATS.register("onnx")
def _onnx(model: StaticNet, out: Path) -> Path:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SupernasError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    buffer = io.BytesIO()
    # the TorchScript-based exporter: newer torch must be asked for it by name, older has no other
    legacy: dict[str, Any] = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    # torch annotates f as a path, but the TorchScript-based exporter writes to a file object too
    torch.onnx.export(model, (_example(model),), buffer,  # type: ignore[arg-type]
                      input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, **legacy)
    return atomic_write_bytes(out / "model.onnx", buffer.getvalue())


def _example(model: StaticNet) -> torch.Tensor:
    return torch.randn(1, 3, model.resolution, model.resolution)


def export_arch(net, arch: Arch, data, out_dir: "str | Path", fmt: str = "pt", bn_batches: int = 64,
                batch_size: int = 64) -> Path:
    """Write `out_dir`/arch.json, state_dict.pt, the file of the format `fmt` (a name of
    EXPORT_FORMATS: pt, pickle, torchscript, onnx) and manifest.json; returns the model's file."""
    EXPORT_FORMATS.get(fmt, "--format")  # a bad name fails before the calibration
    model = net.extract(arch).cpu()
    calibrate_extracted(model, data, bn_batches, batch_size=batch_size)
    # the checkpoint the weights came from (its step and epoch: a run may still be training)
    origin = dict(getattr(net, "origin", None) or {})
    return save_export(model, net.space, arch, data, out_dir, fmt=fmt,
                       made_by={"command": "export", "format": fmt, "bn_batches": bn_batches,
                                "bn_batch_size": batch_size,
                                **({"checkpoint": origin} if origin else {})})


def make_room_for_export(out: "str | Path", arch: dict | None, force: bool) -> None:
    """An export directory is not overwritten without --force, unless its export is of the same Arch
    (another format of it may join it). With --force, the files of the other Arch's export go, so
    that none is left beside the new arch.json that does not match it."""
    from ..runtime.run_dir import require_own_folder

    folder = Path(out).expanduser()
    if not force:  # a folder of the user's own files is not written into without --force
        require_own_folder(folder, "--out", ours=(ARCH, MANIFEST, REFERENCE_SUPERNET, LOCK),
                           force="--force")
    if arch is None:  # the supernet in the reference layout
        if (folder / REFERENCE_SUPERNET).is_file() and not force:
            raise SupernasError(f"'{folder}' already holds an export of the supernet; overwrite it with --force, or "
                                "choose another --out DIR")
        return
    if not (folder / ARCH).is_file():
        return
    try:
        held = json.loads((folder / ARCH).read_text())
    except (ValueError, OSError):
        held = {}
    if held.get("arch") == arch:
        return
    if not force:
        what = f"an Arch of {held['mflops']:.4g} MFLOPs" if "mflops" in held else "another Arch"
        raise SupernasError(f"'{folder}' already holds the export of {what}; replace it with --force, or write "
                            "this one elsewhere with --out DIR")
    for f in [folder / ARCH, folder / WEIGHTS, *folder.glob("model.*")]:
        f.unlink(missing_ok=True)
