"""Offline attentive sampling (AttentiveNAS BestUp-1M / WorstUp-1M): train only Archs of a Pareto
set precomputed offline (e.g. by a predictor over a million random Archs).

How a member is picked, as Eqn (6)/(7) weight the objective: a target FLOPs bin is drawn from the
space's FLOPs prior (as online sampling draws it), then the set's best member in that bin (mode
'best', BestUp) or its worst (mode 'worst', WorstUp) by the set's accuracy, ties at random. So
the set is trained in proportion to the space's FLOPs distribution, not to how densely the front
was tabulated. The offline sets of `supernas predictor offline-sets` hold one member per bin of
the prior's binning, so every bin the set covers returns its member; a bin the set lacks falls
back to the members nearest the bin's centre.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SupernasError
from ..spaces import Arch, CostModel, SearchSpace, as_generator, load_arch
from .base import check_state, rng_state, set_rng_state
from .flops_tables import FlopsPrior

MODES = ("best", "worst")


class ParetoSetSampler:
    """Draws from a fixed list of (Arch, MFLOPs, accuracy): a bin from the prior, then its best
    (or worst) member."""

    kind = "pareto"

    def __init__(self, space: SearchSpace, members: Sequence[tuple[Arch, float, float]], prior: FlopsPrior,
                 rng: "np.random.Generator | int | None" = None, mode: str = "best"):
        rows = list(members)
        if not rows:
            raise SupernasError("the Pareto set is empty; give a non-empty list of (Arch, MFLOPs, accuracy)")
        if not isinstance(prior, FlopsPrior):
            raise SupernasError(f"the Pareto set sampler draws its targets from the space's FLOPs prior; pass "
                                f"estimate_flops_tables(space, cost)[0], got {type(prior).__name__}")
        if mode not in MODES:
            raise SupernasError(f"mode must be 'best' (BestUp) or 'worst' (WorstUp), got {mode!r}")
        try:
            self.archs = [space.arch(a) for a, _, _ in rows]
            self.mflops = np.array([float(f) for _, f, _ in rows], dtype=np.float64)
            self.accuracy = np.array([float(v) for _, _, v in rows], dtype=np.float64)
        except (TypeError, ValueError) as e:
            if isinstance(e, SupernasError):
                raise
            raise SupernasError(f"the Pareto set must be a list of (Arch, MFLOPs, accuracy) triples ({e})") from None
        if not (np.all(np.isfinite(self.mflops)) and np.all(np.isfinite(self.accuracy))):
            raise SupernasError("the Pareto set has non-finite MFLOPs or accuracies; score its Archs again")
        self.space, self.prior, self.mode = space, prior, mode
        self.bins = prior.bin_of(self.mflops)
        self.rng = as_generator(rng)

    def sample(self) -> Arch:
        b = self.prior.sample_target(self.rng)
        pool = np.flatnonzero(self.bins == b)
        if pool.size == 0:  # the set does not cover this bin: its members nearest the bin's centre
            gap = np.abs(self.mflops - self.prior.centre(b))
            pool = np.flatnonzero(gap == gap.min())
        acc = self.accuracy[pool]
        keep = pool[acc == (acc.max() if self.mode == "best" else acc.min())]
        return self.archs[int(keep[self.rng.integers(len(keep))])]

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": len(self.archs), "mode": self.mode, "rng": rng_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = check_state(state, self.kind)
        if state.get("size") != len(self.archs):
            raise SupernasError(f"the sampler state is for a Pareto set of {state.get('size')} Archs, this one has "
                                f"{len(self.archs)}; load the Pareto set of the run being resumed")
        if state.get("mode", self.mode) != self.mode:
            raise SupernasError(f"the sampler state is for mode={state['mode']!r}, this sampler has "
                                f"mode={self.mode!r}; build it with the resumed run's sampler.mode")
        set_rng_state(self.rng, state["rng"])


def read_pareto_set(path: "str | Path", space: SearchSpace, cost: CostModel) -> list[tuple[Arch, float, float]]:
    """(Arch, MFLOPs, accuracy) triples from a pareto.json: a list of entries, or {"entries": [...]},
    each with an "arch" and its "accuracy" (MFLOPs are recomputed, so the file's own figures need
    not match this dataset)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SupernasError(f"Pareto set '{path}' does not exist; make one with `supernas search` "
                            "(pareto.json in its run directory)")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise SupernasError(f"Pareto set '{path}' is not valid JSON ({e.msg} at line {e.lineno})") from None
    except (UnicodeDecodeError, RecursionError):
        raise SupernasError(f"Pareto set '{path}' is not a JSON text file (binary, or nested too deeply); "
                            "give a pareto.json written by `supernas search` or `predictor offline-sets`") from None
    entries = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "arch" in e for e in entries):
        raise SupernasError(f"Pareto set '{path}' must hold a non-empty list of entries with an 'arch' each")
    bad = next((i for i, e in enumerate(entries) if isinstance(e.get("accuracy"), bool)
                or not isinstance(e.get("accuracy"), (int, float))), None)
    if bad is not None:
        raise SupernasError(f"Pareto set '{path}': entry {bad} has no numeric 'accuracy', which picks the best "
                            "(or worst) member of a FLOPs bin; write the set with `supernas search` or "
                            "`supernas predictor offline-sets`")
    archs = [load_arch(space, e["arch"]) for e in entries]
    return list(zip(archs, (float(m) for m in cost.mflops(archs)), (float(e["accuracy"]) for e in entries)))
