"""Random-forest accuracy predictor over Arch encodings (AttentiveNAS section 4.2, Appendix B)."""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SupernasError
from ..spaces import Arch, SearchSpace, get_space
from ..utils.io import atomic_write_bytes, atomic_write_text
from .metrics import kendall_tau

FORMAT = "supernas-predictor/1"


class AccuracyPredictor:
    """Predicts an Arch's accuracy from `space.encode(arch)` with a scikit-learn random forest.

    `predict` takes Archs or an already encoded (N, D) matrix, so it also serves as the
    ``predictor.predict(space.encode(archs))`` regressor of the attentive sampler.
    """

    def __init__(self, space: "SearchSpace | str", n_estimators: int = 100, max_depth: int | None = 15,
                 seed: int = 0):
        from sklearn.ensemble import RandomForestRegressor

        if not isinstance(n_estimators, int) or n_estimators < 1:
            raise SupernasError(f"n_estimators must be a positive integer, got {n_estimators!r}")
        if max_depth is not None and (not isinstance(max_depth, int) or max_depth < 1):
            raise SupernasError(f"max_depth must be a positive integer or None, got {max_depth!r}")
        self.space = get_space(space)
        self.n_estimators, self.max_depth, self.seed = n_estimators, max_depth, seed
        self.model = RandomForestRegressor(n_estimators=n_estimators, max_depth=max_depth, random_state=seed,
                                           n_jobs=1)
        self.fitted = False
        self.num_train = 0

    # ------------------------------------------------------------------ features
    def features(self, archs_or_x: Any) -> np.ndarray:
        """(N, D) float matrix from Archs (or one Arch) or an encoded matrix, checked against the space."""
        if isinstance(archs_or_x, Arch):
            archs_or_x = [archs_or_x]
        if isinstance(archs_or_x, np.ndarray):
            x = archs_or_x
        else:
            items = list(archs_or_x)
            if items and isinstance(items[0], Mapping):
                x = self.space.encode([self.space.arch(a) for a in items])
            else:
                x = np.asarray(items, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        d = len(self.space.dims)
        if x.ndim != 2 or x.shape[1] != d:
            raise SupernasError(f"the predictor for space '{self.space.name}' needs Archs or an (N, {d}) encoding "
                                f"(space.encode), got shape {tuple(x.shape)}")
        return x

    # ------------------------------------------------------------------ fit / predict
    def fit(self, archs: Any, accs: "Sequence[float] | np.ndarray") -> "AccuracyPredictor":
        x = self.features(archs)
        y = np.asarray(accs, dtype=np.float64).reshape(-1)
        if y.size != x.shape[0]:
            raise SupernasError(f"fit needs one accuracy per Arch, got {x.shape[0]} Archs and {y.size} accuracies")
        if y.size < 2:
            raise SupernasError("fit needs at least two evaluated Archs")
        if not np.all(np.isfinite(y)):
            raise SupernasError("some accuracies are not finite; drop those Archs before fitting")
        self.model.fit(x, y)
        self.fitted, self.num_train = True, int(y.size)
        return self

    def predict(self, archs_or_x: Any) -> np.ndarray:
        """Predicted accuracies, (N,) float64."""
        if not self.fitted:
            raise SupernasError("the predictor is not fitted; call fit(archs, accs) or load a saved one")
        return np.asarray(self.model.predict(self.features(archs_or_x)), dtype=np.float64)

    def score(self, archs_or_x: Any, accs: "Sequence[float] | np.ndarray") -> float:
        """Kendall's tau of predictions against measured accuracies."""
        return kendall_tau(self.predict(archs_or_x), accs)

    # ------------------------------------------------------------------ persistence
    def metadata(self) -> dict[str, Any]:
        return {"format": FORMAT, "space": self.space.name, "dims": list(self.space.names),
                "n_estimators": self.n_estimators, "max_depth": self.max_depth, "seed": self.seed,
                "num_train": self.num_train}

    def save(self, path: "str | Path") -> Path:
        """Pickle to `path` and write readable metadata to `path`.json, both atomically."""
        if not self.fitted:
            raise SupernasError("only a fitted predictor can be saved; call fit first")
        path = Path(path).expanduser()
        buf = io.BytesIO()
        # The spec (plain data) rather than the SearchSpace, so custom spaces come back too.
        pickle.dump({"meta": self.metadata(), "spec": self.space.spec, "model": self.model}, buf,
                    protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_text(_meta_path(path), json.dumps(self.metadata(), indent=2) + "\n")
        return path


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_predictor(path: "str | Path", space: "SearchSpace | str | None" = None) -> AccuracyPredictor:
    """A predictor saved by :meth:`AccuracyPredictor.save`; with `space`, checks it was fitted on it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SupernasError(f"predictor '{path}' does not exist; fit one with `supernas predictor` first")
    try:
        blob = pickle.loads(p.read_bytes())
    except Exception as e:  # any unpickling failure means the file is not ours
        raise SupernasError(f"'{path}' is not a saved supernas predictor ({type(e).__name__}: {e})") from None
    if not isinstance(blob, dict) or blob.get("meta", {}).get("format") != FORMAT:
        raise SupernasError(f"'{path}' is not a saved supernas predictor (expected format {FORMAT})")
    meta = blob["meta"]
    saved = SearchSpace(blob["spec"])
    if space is not None:
        want = get_space(space)
        if want.name != meta["space"] or list(want.names) != meta["dims"]:
            raise SupernasError(f"predictor '{path}' was fitted on space '{meta['space']}', not '{want.name}'; "
                                f"fit a predictor on '{want.name}' or search the space '{meta['space']}'")
        saved = want
    pred = AccuracyPredictor(saved, meta["n_estimators"], meta["max_depth"], meta["seed"])
    pred.model, pred.fitted, pred.num_train = blob["model"], True, int(meta.get("num_train", 0))
    return pred


def fit_from_evaluations(space: "SearchSpace | str", records: Sequence[Any], holdout: float = 0.2, seed: int = 0,
                         **kwargs: Any) -> tuple[AccuracyPredictor, float | None]:
    """Fit on evaluated Archs and report Kendall's tau on a held-out part.

    `records` are (Arch, accuracy) pairs or mappings with "arch" and "top1" (or "accuracy"), as the
    Evaluator and search results give. The returned predictor is refitted on all records; the tau
    (None when `holdout` is 0) is that of the model fitted without the held-out part.
    """
    space = get_space(space)
    archs, accs = _unpack(space, records)
    if not 0 <= holdout < 1:
        raise SupernasError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    tau = None
    n_held = int(round(holdout * len(archs)))
    if n_held:
        if n_held < 2 or len(archs) - n_held < 2:
            raise SupernasError(f"{len(archs)} records are too few for a holdout of {holdout}; evaluate more Archs "
                                "or set holdout to 0")
        order = np.random.default_rng(seed).permutation(len(archs))
        held, train = order[:n_held], order[n_held:]
        probe = AccuracyPredictor(space, seed=seed, **kwargs).fit([archs[i] for i in train], accs[train])
        tau = probe.score([archs[i] for i in held], accs[held])
    return AccuracyPredictor(space, seed=seed, **kwargs).fit(archs, accs), tau


def _unpack(space: SearchSpace, records: Sequence[Any]) -> tuple[list[Arch], np.ndarray]:
    archs, accs = [], []
    for r in records:
        if isinstance(r, Mapping):
            acc = r.get("top1", r.get("accuracy"))
            if "arch" not in r or acc is None:
                raise SupernasError("each evaluation record needs an 'arch' and a 'top1' (or 'accuracy') value")
            arch = r["arch"]
        else:
            try:
                arch, acc = r
            except (TypeError, ValueError):
                raise SupernasError("records must be (Arch, accuracy) pairs or "
                                    "{'arch': ..., 'top1': ...} mappings") from None
        archs.append(space.arch(arch))
        accs.append(float(acc))
    if len(archs) < 2:
        raise SupernasError(f"fitting a predictor needs at least two evaluated Archs, got {len(archs)}")
    return archs, np.asarray(accs, dtype=np.float64)
