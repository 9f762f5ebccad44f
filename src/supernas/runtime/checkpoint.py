"""Checkpoints: everything a run needs to continue as if never stopped, written atomically."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SupernasError
from ..utils.io import atomic_torch_save

CHECKPOINT = "checkpoint.pt"


def rng_states() -> dict[str, Any]:
    state = {"torch": torch.random.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    torch.random.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: "str | Path", state: dict[str, Any], name: str = CHECKPOINT) -> Path:
    return atomic_torch_save(state, Path(run_dir) / name)


def load_checkpoint(run_dir: "str | Path", name: str = CHECKPOINT, map_location: Any = "cpu") -> dict[str, Any]:
    path = Path(run_dir) / name
    if not path.is_file():
        raise SupernasError(f"no checkpoint to resume from at '{path}'; start the run without --resume "
                            "or point run.dir at the directory of the interrupted run")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # a file from another program or a different layout
        raise SupernasError(f"cannot read checkpoint '{path}': {e}") from None


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
