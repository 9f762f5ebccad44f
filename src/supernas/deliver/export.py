"""Export an Arch of a trained supernet: the extracted plain model with BatchNorm re-calibrated on
training images, saved with its Arch JSON and state dict beside it."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..errors import SupernasError
from ..nn.calibrate import recalibrate_bn
from ..nn.static import resize_to
from ..spaces import Arch, CostModel
from ..utils.io import atomic_torch_save, atomic_write_bytes, atomic_write_text

FORMATS = ("pt", "torchscript", "onnx")


def calibrate_extracted(model: torch.nn.Module, data, bn_batches: int = 64, device: "str | torch.device" = "cpu",
                        batch_size: int = 64) -> torch.nn.Module:
    """BN statistics of an extracted Arch from `bn_batches` seeded training batches (the same ones,
    augmentation included, every time), resized to its resolution; returns it in eval mode."""
    loader = DataLoader(data.calibration, batch_size=min(batch_size, len(data.calibration)), shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        recalibrate_bn(model, (resize_to(x.to(device), model.resolution) for x, _ in loader), num_batches=bn_batches)
    return model.eval()


def save_export(model: torch.nn.Module, space, arch: Arch, data, out_dir: "str | Path",
                made_by: "dict | None" = None) -> Path:
    """`out_dir`/arch.json (the Arch, its space definition, costs, resolution and the data's
    normalisation and classes: all that `supernas eval` and `finetune` need; `made_by`: the settings
    that made it, for `supernas report`), state_dict.pt and model.pt; returns model.pt's path."""
    out = Path(out_dir).expanduser()
    cost = CostModel(space, data.num_classes)
    meta = {"space": space.name, "space_definition": space.definition, "arch": arch.to_dict(),
            "mflops": float(cost.mflops(arch)), "params": int(cost.params(arch)), "resolution": model.resolution,
            "num_classes": data.num_classes, "image_size": data.image_size, "mean": list(data.mean),
            "std": list(data.std), "classes": [str(c) for c in data.classes],
            **({"made_by": made_by} if made_by else {})}
    atomic_write_text(out / "arch.json", json.dumps(meta, indent=1))
    atomic_torch_save(model.state_dict(), out / "state_dict.pt")
    return atomic_torch_save(model, out / "model.pt")


def export_arch(net, arch: Arch, data, out_dir: "str | Path", fmt: str = "pt", bn_batches: int = 64,
                batch_size: int = 64) -> Path:
    """Write `out_dir`/model.{pt,torchscript.pt,onnx}, state_dict.pt and arch.json; returns the model path."""
    if fmt not in FORMATS:
        raise SupernasError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir).expanduser()
    model = net.extract(arch).cpu()
    calibrate_extracted(model, data, bn_batches, batch_size=batch_size)
    save_export(model, net.space, arch, data, out,
                made_by={"command": "export", "format": fmt, "bn_batches": bn_batches, "bn_batch_size": batch_size})
    example = torch.randn(1, 3, model.resolution, model.resolution)
    if fmt == "pt":
        return out / "model.pt"
    if fmt == "torchscript":
        scripted = torch.jit.trace(model, example)
        path = out / "model.torchscript.pt"
        tmp = out / ".model.torchscript.tmp"
        scripted.save(str(tmp))
        tmp.replace(path)
        return path
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SupernasError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    tmp = out / ".model.onnx.tmp"
    # the TorchScript-based exporter: newer torch must be asked for it by name, older has no other
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(model, (example,), str(tmp), input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, **legacy)
    atomic_write_bytes(out / "model.onnx", tmp.read_bytes())
    tmp.unlink()
    return out / "model.onnx"
