"""A stage-2 search as one value: what `supernas search` was asked, built once (by the command line
or a caller), passed whole to the search and its dry run, and written whole into the results'
metadata (`pareto.json` "search"), from which a run's report rebuilds the command."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SupernasError
from ..evaluation.latency import WINDOW_S
from .strategies import SearchSettings


@dataclass(frozen=True)
class SearchJob:
    """Budgets and cost; the strategy and its settings; how Archs are scored (a run's supernet,
    BN re-calibrated, or a predictor, which needs no run); latency measurement; where results go."""

    budgets: tuple[float, ...]
    run: str | None = None              # the run directory; None: a predictor scores alone
    out: str | None = None              # default RUN/search; required without a run
    cost: str = "mflops"                # or "latency": budgets in ms on `device`
    strategy: str = "evolution"         # a name of STRATEGIES
    population: int = 512
    mutations: int = 128
    crossovers: int = 128
    generations: int = 20
    seed: int = 0
    options: tuple[str, ...] = ()       # search.KEY=VALUE settings of the strategy
    predictor: str | None = None
    bn_batches: int = 64                # scoring by the supernet: BN re-calibration batches
    max_batches: int | None = None      # and at most this many evaluation batches
    device: str = "auto"
    overrides: tuple[str, ...] = ()     # data.KEY=VALUE settings replacing the run's
    latency_batch: int = 1
    latency_warmup: int = 10
    latency_repeats: int = 30
    latency_window: float = WINDOW_S     # seconds the interleaved rounds of a table build span at least
    space: Any = None                   # without a run: the predictor's space, checked against this
    num_classes: int | None = None      # without a run: the head the MFLOPs count (default 1000)
    resume: bool = False

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen
        set_("budgets", tuple(float(b) for b in self.budgets))
        set_("options", tuple(str(o) for o in self.options))
        set_("overrides", tuple(str(o) for o in self.overrides))
        for name in ("run", "out", "predictor"):
            value = getattr(self, name)
            set_(name, None if value is None else str(value))
        if self.cost not in ("mflops", "latency"):
            raise SupernasError(f"unknown cost '{self.cost}'; choose mflops or latency")

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out).expanduser()
        if self.run is None:
            raise SupernasError("a search without a run directory needs --out DIR for its results")
        return Path(self.run).expanduser() / "search"

    def settings(self) -> SearchSettings:
        """The strategy's settings (a bad search.KEY=VALUE fails here, before any work)."""
        return SearchSettings(self.population, self.mutations, self.crossovers, self.generations,
                              self.seed).with_options(self.options)

    def replace(self, **changes: Any) -> "SearchJob":
        return dataclasses.replace(self, **changes)

    def record(self, device: str) -> dict[str, Any]:
        """The job as results record it ("search" in pareto.json), with the device it ran on; the
        latency settings only when latency was the cost."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("budgets", "run", "out", "resume", "space")}
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
        if self.cost != "latency":
            for key in ("latency_batch", "latency_warmup", "latency_repeats", "latency_window"):
                out.pop(key)
        return {**out, "device": device}
