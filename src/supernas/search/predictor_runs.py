"""The accuracy predictor on a trained run directory: fit it on Archs scored by the calibrated
supernet, check it on Archs it has not seen, and turn it into the offline best / worst Pareto sets
that stage 1's `sampler.kind: pareto` trains on (AttentiveNAS section 4.4, Appendix C).

    predictor, check, path = fit_predictor_run("runs/cifar10-supernet", n=1000)
    report = eval_predictor_run("runs/cifar10-supernet", n=200)
    best_path, worst_path = offline_sets_run("runs/cifar10-supernet", n=1_000_000)
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SupernasError, SupernasWarning
from ..evaluation import Evaluator, load_run, load_supernet
from ..runtime import distributed as ddp
from ..runtime.run_dir import locked_dir
from ..spaces import Arch, CostModel
from ..utils.file_names import LOCK
from ..utils.io import atomic_write_text
from .pareto import offline_pareto_sets, write_pareto
from .runner import score_source

# Below this many held-out Archs a Kendall tau says little (3 Archs give 1.000 by chance one time in
# six): the fit warns, and always reports the count and a bootstrap interval.
MIN_HELD_OUT = 10
BOOTSTRAP = 1000


def tau_interval(pred: "Sequence[float] | np.ndarray", true: "Sequence[float] | np.ndarray", seed: int = 0,
                 resamples: int = BOOTSTRAP, level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of Kendall's tau of `pred` against `true`: the held-out Archs
    resampled with replacement `resamples` times (seeded: the same interval every time)."""
    from ..predictors import kendall_tau

    a, b = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        pick = rng.integers(0, len(a), len(a))
        if np.ptp(a[pick]) == 0 or np.ptp(b[pick]) == 0:  # one distinct value: no order to compare
            taus.append(0.0)
            continue
        taus.append(kendall_tau(a[pick], b[pick]))
    lo, hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _held_out_check(space: Any, archs: Sequence[Arch], top1: Sequence[float], holdout: float,
                    seed: int) -> dict[str, Any] | None:
    """Kendall tau on the held-out part `fit_from_evaluations` reports on, with how many Archs it
    rests on and its bootstrap interval; None without a holdout."""
    from ..predictors import held_out_predictions, kendall_tau

    held = held_out_predictions(space, archs, top1, holdout, seed)
    if held is None:
        return None
    pred, true = held
    return {"kendall_tau": kendall_tau(pred, true), "held_out": len(true),
            "interval": list(tau_interval(pred, true, seed=seed))}


def describe_tau(check: Mapping[str, Any]) -> str:
    """'Kendall tau on 40 held-out Archs: 0.712 (95% bootstrap interval 0.55 to 0.84)'."""
    lo, hi = check["interval"]
    return (f"Kendall tau on {check['held_out']} held-out Archs: {check['kendall_tau']:.3f} (95% bootstrap "
            f"interval {lo:.2f} to {hi:.2f})")


def _min_archs(holdout: float) -> int:
    """The fewest Archs (-n) that leave at least 2 held out and 2 to fit with `holdout` > 0."""
    n = 4
    while n < 10**7 and (round(holdout * n) < 2 or n - round(holdout * n) < 2):
        n += 1
    return n


def check_fit_sizes(n: Any, holdout: Any, where: str = "") -> None:
    """Refuse an -n and --holdout that `fit_from_evaluations` would refuse after every Arch was
    scored (minutes on a GPU): at least 2 Archs, a holdout fraction in [0, 1), and with a holdout,
    at least 2 Archs held out and 2 to fit. `where` says why n is what it is, for the message."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise SupernasError(f"evaluate at least 2 Archs (-n), got {n!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not math.isfinite(holdout) \
            or not 0 <= holdout < 1:
        raise SupernasError(f"--holdout must be a fraction in [0, 1) (0: no held-out Archs, no Kendall tau), "
                            f"got {holdout!r}")
    held = int(round(holdout * n))
    if held and (held < 2 or n - held < 2):
        raise SupernasError(f"-n {n}{where} with --holdout {holdout:g} holds out {held} Arch(s) and fits on "
                            f"{n - held}: Kendall tau needs at least 2 of each; evaluate at least "
                            f"{_min_archs(holdout)} Archs, or give --holdout 0")


def _evaluate_random(net, data, n: int, seed: int, bn_batches: int, max_batches: int | None,
                     exclude: Sequence[Arch] = ()) -> tuple[list[Arch], list[float], dict[str, Any]]:
    """(Archs, top-1 list, where they were scored): `n` distinct random Archs outside `exclude`,
    scored by the calibrated supernet `net` (spread over ranks under torchrun)."""
    if n < 2:
        raise SupernasError(f"evaluate at least 2 Archs (-n), got {n}")
    rng, skip, archs = np.random.default_rng(seed), set(exclude), []
    for _ in range(100):
        for a in net.space.sample(rng, 2 * n):
            if a not in skip:
                skip.add(a)
                archs.append(a)
        if len(archs) >= n:
            break
    if len(archs) < n:  # a space smaller than -n: say so rather than score fewer silently
        excluded = f" ({len(exclude)} of them fitted on, so left out)" if exclude else ""
        warnings.warn(f"the space has {net.space.size} Archs{excluded}: scoring the {len(archs)} there are, not "
                      f"the {n} of -n", SupernasWarning, stacklevel=3)
    archs = archs[:n]
    evaluator = Evaluator(net, data, device=next(net.parameters()).device, bn_batches=bn_batches,
                          max_batches=max_batches)
    top1 = [r["top1"] for r in evaluator.evaluate_many(archs, progress=True)]
    return archs, top1, score_source(evaluator, None)


def _default_predictor(run_dir: "str | Path", predictor: "str | Path | None") -> Path:
    from ..predictors import run_predictor_path

    return Path(predictor).expanduser() if predictor else run_predictor_path(run_dir)


def _locked(predictor: Path):
    """The predictor's own lock (its folder is often a run directory, which has its own): one
    process writes a predictor and the files beside it at a time."""
    return locked_dir(predictor.parent, "--predictor", name=f".{predictor.name}.lock", files=f"{predictor.stem}.")


def fit_predictor_run(run_dir: "str | Path", n: int = 1000, holdout: float = 0.2, seed: int = 0,
                      bn_batches: int = 64, max_batches: int | None = None, device: str = "auto",
                      out: "str | Path | None" = None, overrides: Sequence[str] = ()):
    """Evaluate `n` random Archs with the calibrated supernet, fit the random-forest predictor, save
    it (default RUN/predictor.npz, the evaluations beside it) and return (predictor, the held-out
    check: Kendall tau, held-out count and interval, or None without a holdout, path).
    `overrides`: data.KEY=VALUE settings replacing the run's."""
    from ..predictors import fit_from_evaluations

    check_fit_sizes(n, holdout)  # before any Arch is scored
    path = _default_predictor(run_dir, out)
    with _locked(path):
        net, _, data = load_run(run_dir, device, overrides)
        if net.space.size < n:  # all the Archs there are: the holdout must still work on them
            check_fit_sizes(int(net.space.size), holdout, f" (the {net.space.size} Archs of space {net.space.name})")
        archs, top1, scored = _evaluate_random(net, data, n, seed, bn_batches, max_batches)
        check = _held_out_check(net.space, archs, top1, holdout, seed)
        predictor, _ = fit_from_evaluations(net.space, list(zip(archs, top1)), holdout=0, seed=seed)
        tau = check["kendall_tau"] if check else None
        if check and check["held_out"] < MIN_HELD_OUT:
            warnings.warn(f"the Kendall tau rests on {check['held_out']} held-out Archs, fewer than {MIN_HELD_OUT}: "
                          f"it says little (interval {check['interval'][0]:.2f} to {check['interval'][1]:.2f}); "
                          f"evaluate at least {math.ceil(MIN_HELD_OUT / holdout)} Archs (-n) for one that does",
                          SupernasWarning, stacklevel=2)
        if ddp.current().is_main:
            predictor.save(path)
            atomic_write_text(path.with_suffix(".evaluations.json"),
                              json.dumps([{"arch": a.to_dict(), "top1": t} for a, t in zip(archs, top1)]))
            # what `supernas report` and pareto.json of a predictor-scored search say about the predictor
            atomic_write_text(path.with_suffix(".fit.json"), json.dumps({
                "archs": len(archs), "holdout": holdout, "kendall_tau": tau, "seed": seed, "scored": scored,
                **({"held_out": check["held_out"], "kendall_tau_interval": check["interval"]} if check else {}),
                "max_batches": max_batches, "overrides": list(overrides),
                "device": next(net.parameters()).device.type}, indent=1))
    return predictor, check, path


def eval_predictor_run(run_dir: "str | Path", predictor: "str | Path | None" = None, n: int = 200, seed: int = 1,
                       bn_batches: int = 64, max_batches: int | None = None, device: str = "auto",
                       overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Score `n` random Archs the predictor was not fitted on with the calibrated supernet and compare:
    Kendall tau, Pearson r and mean absolute error (top-1 points). Written to PREDICTOR.eval.json."""
    from ..predictors import kendall_tau, load_predictor, pearson_r

    path = _default_predictor(run_dir, predictor)
    if not path.is_file():
        raise SupernasError(f"no predictor at '{path}'; fit one with `supernas predictor fit {run_dir}`")
    with _locked(path):
        seen_file = path.with_suffix(".evaluations.json")
        seen_records = json.loads(seen_file.read_text()) if seen_file.is_file() else []
        net, _, data = load_run(run_dir, device, overrides)
        model = load_predictor(path, net.space)
        seen = [net.space.arch(r["arch"]) for r in seen_records]
        archs, top1, scored = _evaluate_random(net, data, n, seed, bn_batches, max_batches, exclude=seen)
        pred, true = np.asarray(model.predict(archs), dtype=np.float64), np.asarray(top1, dtype=np.float64)
        report = {"predictor": str(path), "archs": len(archs), "kendall_tau": kendall_tau(pred, true),
                  "pearson": pearson_r(pred, true), "mae": float(np.abs(pred - true).mean()),
                  "excluded_fitting_archs": len(seen), "seed": seed, "scored": scored, "max_batches": max_batches,
                  "evaluations": [{"arch": a.to_dict(), "top1": float(t), "predicted": float(p)}
                                  for a, t, p in zip(archs, true, pred)]}
        if ddp.current().is_main:
            atomic_write_text(path.with_suffix(".eval.json"), json.dumps(report, indent=1))
    return report


def offline_sets_run(run_dir: "str | Path", predictor: "str | Path | None" = None, n: int = 1_000_000,
                     bin_width: float = 25.0, seed: int = 0, out_dir: "str | Path | None" = None) -> tuple[Path, Path]:
    """The offline best and worst Pareto sets: per `bin_width`-MFLOPs bin, the Arch of highest and of
    lowest predicted accuracy among `n` random ones. Writes OUT/pareto_best.{json,csv} and
    OUT/pareto_worst.{json,csv} (default OUT: RUN/offline); returns the two JSON paths, which
    `sampler.kind=pareto sampler.pareto_set=PATH` of `supernas train` reads."""
    from ..predictors import load_predictor

    # 0 is no count here (not "the default"), and a NaN or infinite width would make one bin of everything
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SupernasError(f"-n must be a count of Archs to rank (an integer >= 1), got {n!r}")
    if isinstance(bin_width, bool) or not isinstance(bin_width, (int, float)) or not math.isfinite(bin_width) \
            or bin_width <= 0:
        raise SupernasError(f"--bin-width must be a finite number of MFLOPs > 0, got {bin_width!r}")
    path = _default_predictor(run_dir, predictor)
    if not path.is_file():
        raise SupernasError(f"no predictor at '{path}'; fit one with `supernas predictor fit {run_dir}`")
    net, _ = load_supernet(run_dir, "cpu")  # the space and classes only: no data needed
    best, worst = offline_pareto_sets(net.space, load_predictor(path, net.space), CostModel(net.space, net.num_classes),
                                      n=n, bin_width=bin_width, seed=seed)
    out = Path(out_dir).expanduser() if out_dir else Path(run_dir).expanduser() / "offline"
    with locked_dir(out, "--out", fresh=True, ours=(LOCK, "pareto_best.json", "pareto_worst.json")):
        best_json, _ = write_pareto(out, best, net.space, name="pareto_best")
        worst_json, _ = write_pareto(out, worst, net.space, name="pareto_worst")
    return best_json, worst_json
