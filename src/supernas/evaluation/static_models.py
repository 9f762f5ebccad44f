"""Use an exported model: load it (the one way every command loads an export), measure its
accuracy on a dataset and its latency on the current device."""
from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from ..errors import SupernasError
from ..nn import SuperNet
from ..spaces import get_space
from ..utils.file_names import ARCH, MANIFEST, WEIGHTS
from ..utils.manifest import check_manifest

# What arch.json must hold for a model to be rebuilt, evaluated and fine-tuned from it.
META_KEYS = ("arch", "resolution", "num_classes", "mean", "std", "mflops", "params")


def load_exported(path: "str | Path") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model in eval mode, arch.json) of an export (`deliver.export`): a directory is its
    state_dict.pt rebuilt with arch.json (no code runs on load); a file of it is loaded as its
    format is (state_dict.pt, model.torchscript.pt, model.onnx through onnxruntime; model.pt, a
    pickled module, is refused: loading it could run code). Every file manifest.json lists
    is checked first; anything damaged, altered or foreign is a one-line error naming the file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SupernasError(f"'{path}' does not exist; give a directory written by `supernas export`")
    folder = p if p.is_dir() else p.parent
    if not (folder / ARCH).is_file():
        raise SupernasError(f"'{folder}' is not an export directory (no arch.json); give a directory written by "
                            "`supernas export`, or RUN/export of `supernas retrain`")
    name = WEIGHTS if p.is_dir() else p.name
    if name not in LOADERS:
        raise SupernasError(f"'{p}' is not a model file of an export; give the export directory or one of its "
                            f"files: {', '.join(LOADERS)}")
    if not (folder / name).is_file():
        raise SupernasError(f"'{folder}' holds no {name}; export it again (`supernas export`)")
    if not check_manifest(folder, [ARCH, name]):
        warnings.warn(f"'{folder}' has no {MANIFEST} (an export of an older supernas): its files are not checked "
                      "against each other; export it again to get one", UserWarning, stacklevel=2)
    meta = read_export_meta(folder)
    return LOADERS[name](folder / name, meta).eval(), meta


def read_export_meta(folder: Path) -> dict[str, Any]:
    """arch.json of an export, checked for what loading and evaluating need."""
    path = folder / ARCH
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SupernasError(f"'{path}' is not valid JSON ({getattr(e, 'msg', e)}); export the model again") from None
    if not isinstance(meta, dict):
        raise SupernasError(f"'{path}' must hold a JSON object, not a {type(meta).__name__}; export the model again")
    missing = [k for k in META_KEYS if k not in meta]
    if missing or not (meta.get("space_definition") or meta.get("space")):
        raise SupernasError(f"'{path}' lacks {', '.join(missing) or 'space'}; export the model again")
    return meta


def _rebuilt(path: Path, meta: dict[str, Any]) -> torch.nn.Module:
    """The StaticNet of arch.json's Arch (built on the meta device: no memory, no random init)
    holding the weights of state_dict.pt, read without running code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a state dict of tensors (weights_only refuses any code)
        raise SupernasError(f"'{path}' is not a readable state dict ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); export the model "
                            "again") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SupernasError(f"'{path}' is not a state dict of tensors; export the model again")
    where = path.parent / ARCH
    try:
        space = get_space(meta.get("space_definition") or meta["space"])
        arch = space.arch(meta["arch"])
    except SupernasError as e:
        raise SupernasError(f"'{where}': {e}") from None
    with torch.device("meta"):
        model = SuperNet(space, int(meta["num_classes"])).extract(arch)
    model = model.to_empty(device="cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise SupernasError(f"the weights in '{path}' do not fit the Arch of '{where}' "
                            f"({str(e).strip().splitlines()[-1].strip()}); export the model again") from None
    return model


def _torchscript(path: Path, meta: dict[str, Any]) -> torch.nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise SupernasError(f"'{path}' is not a TorchScript model ({type(e).__name__}); export it again with "
                            "--format torchscript") from None


def _pickled(path: Path, meta: dict[str, Any]) -> torch.nn.Module:
    # A pickled module runs whatever code it holds as it loads, and an export folder is what people
    # share: it is written on request for the user's own tools, never read here.
    raise SupernasError(f"'{path}' is a pickled module, which could run any code as it loads, so supernas does not "
                        f"load it; give the export directory '{path.parent}' (its state_dict.pt and arch.json are "
                        "the same model, read without running code)")


class OnnxModel(torch.nn.Module):
    """An ONNX export run by onnxruntime (on the CPU) behind the interface of a torch model."""

    def __init__(self, path: Path):
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise SupernasError(f"'{path}' is an ONNX model: evaluating it needs onnxruntime (pip install "
                                "onnxruntime), or give the export directory") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise SupernasError(f"'{path}' is not a readable ONNX model ({type(e).__name__}); export it again with "
                                "--format onnx") from None
        self.input = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


LOADERS: dict[str, Callable[[Path, dict[str, Any]], torch.nn.Module]] = {
    WEIGHTS: _rebuilt, "model.torchscript.pt": _torchscript, "model.onnx": lambda p, _: OnnxModel(p),
    "model.pt": _pickled}


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset, batch_size: int = 256, device: "str | torch.device" = "cpu",
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


def export_dataset(meta: dict[str, Any], path: "str | None" = None) -> "tuple[Any, str]":
    """(datasets, where) to evaluate an export on: `path` when given (with the split settings the
    export recorded when it is the same data), else the data recorded in its arch.json when it is
    found here; (None, why not) when neither. `where` names the data and the split."""
    from ..data import DataConfig, build_datasets
    from ..data.formats import is_builtin

    recorded = meta.get("data") if isinstance(meta.get("data"), dict) else None
    if path is None:
        if recorded is None:
            return None, "the export records no dataset (an older supernas); give --data PATH for its accuracy"
        path = recorded.get("path")
        if not is_builtin(path) and not Path(str(path)).exists():
            return None, (f"the export's dataset '{path}' is not found here; give --data PATH for its accuracy")
    same = recorded is not None and (str(recorded.get("path")) == str(path) or (
        not is_builtin(path) and not is_builtin(recorded.get("path"))
        and Path(str(path)).expanduser().absolute() == Path(str(recorded.get("path"))).absolute()))
    settings = {k: v for k, v in (recorded or {}).items() if k != "path"} if same else {}
    settings.update(path=path, image_size=meta.get("image_size"), mean=meta["mean"], std=meta["std"])
    data = build_datasets(DataConfig.from_dict(settings))
    if data.num_classes != meta["num_classes"]:
        raise SupernasError(f"the model has {meta['num_classes']} classes but '{path}' has {data.num_classes}; "
                            "evaluate on the dataset it was trained on")
    subset = f" (its seeded subset of {settings['val_subset']})" if settings.get("val_subset") else ""
    return data, f"the val split{subset} of {'the built-in digits' if is_builtin(path) else path}"


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
                    repeats: int = 50, device: str = "cpu") -> dict[str, float | str]:
    """Median and 90th-percentile wall time (ms) of one forward pass on `device` (see `time_forward`)."""
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, resolution, resolution, device=device)
    times = time_forward(model, x, warmup, repeats)
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "batch_size": batch_size, "device": str(device)}
