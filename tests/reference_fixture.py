"""The AttentiveNAS reference fixture (../shared/data/attentivenas-reference-fixture.json, made by
running facebookresearch/AttentiveNAS itself): its checkpoint rebuilt from the fixture's formula,
and the inputs of its cases. Shared by tests/test_reference_checkpoint.py and
bench/import_reference.py."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "data" / "attentivenas-reference-fixture.json"


def load_fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def _fill(i: int, key: str, shape: list[int], dtype: str, phase: float) -> torch.Tensor:
    """Tensor i of the formula: b = sin(0.37 k + 1.7 i + phase) over its elements, in float64."""
    if dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)  # num_batches_tracked
    n = int(np.prod(shape)) if shape else 1
    b = np.sin(0.37 * np.arange(n) + 1.7 * i + phase).reshape(shape)
    if key.endswith("running_var"):
        v = 1 + 0.5 * b ** 2
    elif key.endswith("running_mean"):
        v = 0.1 * b
    elif key.endswith("bias"):
        v = 0.05 * b
    elif len(shape) == 1:
        v = 1 + 0.1 * b
    else:
        v = 3 * b / math.sqrt(n / shape[0])
    return torch.from_numpy(np.asarray(v)).float()


def reference_checkpoint(fixture: dict[str, Any]) -> dict[str, Any]:
    """The reference supernet filled by the formula, in the official layout."""
    sd = {"module." + key: _fill(i, key, shape, dtype, fixture["phase"])
          for i, (key, shape, dtype) in enumerate(fixture["keys"])}
    return {"state_dict": sd, "epoch": 360}


def case_input(resolution: int) -> torch.Tensor:
    n = 2 * 3 * resolution * resolution
    return torch.sin(0.01 * torch.arange(n, dtype=torch.float64) + 0.3).float().reshape(2, 3, resolution, resolution)
