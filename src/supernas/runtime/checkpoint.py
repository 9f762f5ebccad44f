"""Checkpoints: everything a run needs to continue as if never stopped, written atomically.

A checkpoint holds tensors and plain data only (numbers, strings, lists, dicts), so that it is
read with `torch.load(weights_only=True)`, which runs no code from the file: a run directory is
what people share (a teacher, a published supernet turned into a run), and reading one must be
safe. RNG states are stored as tensors and plain numbers, not as numpy objects.
"""
from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SupernasError, SupernasWarning
from ..utils.file_names import CHECKPOINT
from ..utils.io import atomic_torch_save


def rng_states() -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    state = {"torch": torch.random.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    torch.random.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state(state["numpy"]))
    random.setstate(tuple(_tuples(state["python"])))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state(state: Any) -> Any:
    """numpy's global RNG state as `np.random.set_state` takes it, from a checkpoint of this version
    (a dict whose key is a tensor) or of supernas 0.1 (numpy's legacy tuple)."""
    if isinstance(state, dict):
        key = state["state"]["key"]
        key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        return {**state, "state": {**state["state"], "key": key.astype(np.uint32)}}
    return state


def _tuples(value: Any) -> Any:
    # random.setstate wants tuples all the way down; a state read back may hold lists
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(run_dir: "str | Path", state: dict[str, Any], name: str = CHECKPOINT) -> Path:
    return atomic_torch_save(state, Path(run_dir) / name)


def load_checkpoint(run_dir: "str | Path", name: str = CHECKPOINT, map_location: Any = "cpu") -> dict[str, Any]:
    path = Path(run_dir) / name
    if not path.is_file():
        raise SupernasError(f"no checkpoint to resume from at '{path}'; start the run without --resume "
                            "or point run.dir at the directory of the interrupted run")
    return read_checkpoint(path, map_location)


# What a checkpoint of supernas 0.1 holds besides plain data: numpy's RNG state (an array of the
# key and its dtype). These rebuild arrays from bytes and run nothing else.
_LEGACY_NUMPY = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
                 "numpy.dtype", "numpy.dtypes.UInt32DType")


def read_checkpoint(path: "str | Path", map_location: Any = "cpu") -> Any:
    """What `torch.save` wrote to `path`, read with `weights_only=True` (no code from the file runs).
    A checkpoint of supernas 0.1, whose numpy RNG state is a numpy array, is read with numpy's array
    constructors allowed by name and nothing else, with a warning."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        refused = _unsafe_globals(path)
        if refused and all(g in _LEGACY_NUMPY for g in refused):
            return _read_legacy(path, map_location)
        names = f" (it names {', '.join(refused[:4])})" if refused else ""
        raise SupernasError(f"'{path}' is not a supernas checkpoint: it holds objects other than tensors and plain "
                            f"data{names}, which are not loaded because loading them could run code from the file") \
            from None
    except Exception as e:  # a file from another program, truncated, or not a torch file at all
        raise SupernasError(f"'{path}' is not a readable checkpoint ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'})") from None


def _unsafe_globals(path: Path) -> list[str]:
    find = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5
    if find is None:
        return []
    try:
        return list(find(path))
    except Exception:
        return []


def _read_legacy(path: Path, map_location: Any) -> Any:
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5
        raise SupernasError(f"'{path}' was written by supernas 0.1; reading it safely needs torch 2.5 or newer "
                            f"(this is {torch.__version__}): read it once with a newer torch, or start the run anew")
    allowed = [np.ndarray, np.dtype, np.ndarray(0).__reduce__()[0], type(np.dtype(np.uint32))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location=map_location, weights_only=True)
    warnings.warn(f"'{path}' was written by supernas 0.1 (numpy objects in its RNG state); it was read without "
                  "running code from it, and the run's next checkpoint is written in the current format",
                  SupernasWarning, stacklevel=3)
    return state


def weights_fingerprint(state: "dict[str, torch.Tensor]") -> str:
    """sha256 of a state dict's names, dtypes, shapes and values: equal exactly when the weights
    are, however the checkpoint around them was written (what a saved search is keyed to)."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def require_same_space(ck: Any, space: Any, run_dir: "str | Path") -> None:
    """Refuse to resume a run whose space changed since it started (a space file edited after the
    run began): its weights and sampler would be read into another network. Checkpoints before
    the space was stored in them are taken as they are."""
    stored = ck.get("space_definition") if isinstance(ck, dict) else None
    if isinstance(stored, dict) and stored != space.definition:
        raise SupernasError(f"the run in '{run_dir}' trained the space '{stored.get('name')}' as it was when it "
                            "started, and its definition has changed since (an edited space file?); restore that "
                            "definition to resume, or start a new run in another run.dir")

