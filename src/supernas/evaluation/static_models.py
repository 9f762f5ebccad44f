"""Use an exported model: load it with its arch.json, measure its accuracy on a dataset and its
latency on the current device."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..errors import SupernasError


def load_exported(path: "str | Path") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model, metadata) from an export directory or its model.pt / model.torchscript.pt."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SupernasError(f"'{path}' does not exist; give a directory written by `supernas export`")
    folder = p if p.is_dir() else p.parent
    meta_path = folder / "arch.json"
    if not meta_path.is_file():
        raise SupernasError(f"no arch.json beside '{path}'; give a directory written by `supernas export`")
    meta = json.loads(meta_path.read_text())
    if p.is_dir():
        p = next((folder / n for n in ("model.pt", "model.torchscript.pt") if (folder / n).is_file()), None)
        if p is None:
            raise SupernasError(f"'{folder}' holds no model.pt or model.torchscript.pt (ONNX models run in onnxruntime)")
    model = torch.jit.load(str(p)) if p.name.endswith("torchscript.pt") else torch.load(p, weights_only=False)
    return model.eval(), meta


def load_export_weights(model_dir: "str | Path") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, arch.json) of an export directory: state_dict.pt, else model.pt's weights."""
    folder = Path(model_dir).expanduser()
    if not (folder / "arch.json").is_file():
        raise SupernasError(f"'{model_dir}' is not an export directory (no arch.json); give a directory written by "
                            "`supernas export`, or RUN/export of `supernas retrain`")
    meta = json.loads((folder / "arch.json").read_text())
    if (folder / "state_dict.pt").is_file():
        return torch.load(folder / "state_dict.pt", map_location="cpu", weights_only=True), meta
    if (folder / "model.pt").is_file():
        return torch.load(folder / "model.pt", map_location="cpu", weights_only=False).state_dict(), meta
    raise SupernasError(f"'{folder}' holds neither state_dict.pt nor model.pt to start from; export it again with "
                        "--format pt")


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset, batch_size: int = 256, device: str = "cpu",
                   resolution: int | None = None) -> dict[str, float]:
    """Top-1 / top-5 (percent) of `model` on a dataset of (image, label); images are resized (bicubic)
    to `resolution` when given, as the supernet did in training."""
    from ..nn.static import resize_to

    model = model.to(device).eval()
    correct1 = correct5 = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x = x.to(device)
        logits = model(resize_to(x, resolution) if resolution else x)
        top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices.cpu()
        correct1 += int((top[:, 0] == y).sum())
        correct5 += int((top == y[:, None]).any(-1).sum())
        total += len(y)
    return {"top1": 100.0 * correct1 / max(total, 1), "top5": 100.0 * correct5 / max(total, 1), "images": total}


@torch.no_grad()
def time_forward(model: torch.nn.Module, x: torch.Tensor, warmup: int = 10, repeats: int = 50) -> list[float]:
    """Sorted wall times (ms) of `repeats` forward passes of `model` on `x`, after `warmup` untimed ones.

    On CUDA the model runs as it would be deployed there (channels_last, bf16 autocast), timed
    between synchronisations; elsewhere in float32 as given. `model` must already be on x's device."""
    cuda = x.device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)


def measure_latency(model: torch.nn.Module, resolution: int, batch_size: int = 1, warmup: int = 10,
                    repeats: int = 50, device: str = "cpu") -> dict[str, float]:
    """Median and 90th-percentile wall time (ms) of one forward pass on `device` (see `time_forward`)."""
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, resolution, resolution, device=device)
    times = time_forward(model, x, warmup, repeats)
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "batch_size": batch_size, "device": str(device)}
