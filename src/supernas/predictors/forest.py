"""Random-forest accuracy predictor over Arch encodings (AttentiveNAS section 4.2, Appendix B)."""
from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import numpy as np

from ..errors import SupernasError, SupernasWarning
from ..spaces import Arch, SearchSpace, get_space
from ..utils.file_names import PREDICTOR
from ..utils.io import atomic_write_bytes, atomic_write_text
from ..utils.safe_pickle import JOBLIB_GLOBALS, NUMPY_GLOBALS, Record, read_restricted, record_class
from .metrics import kendall_tau
from .trees import TreeEnsemble

FORMAT = "supernas-predictor/2"          # a numpy archive: the trees' arrays and a JSON header
LEGACY_FORMAT = "supernas-predictor/1"   # a pickle (supernas 0.1), read by the restricted reader
LEGACY_PREDICTOR_FILE = "predictor.pkl"  # what supernas 0.1 called it


def run_predictor_path(run_dir: "str | Path") -> Path:
    """A run's own predictor: RUN/predictor.npz, or the older RUN/predictor.pkl where only it exists."""
    run = Path(run_dir).expanduser()
    new, old = run / PREDICTOR, run / LEGACY_PREDICTOR_FILE
    return old if old.is_file() and not new.exists() else new


class AccuracyPredictor:
    """Predicts an Arch's accuracy from `space.encode(arch)` with a random forest: fitted by
    scikit-learn, then kept (and saved) as its trees' arrays, which predict without the library.

    `predict` takes Archs or an already encoded (N, D) matrix, so it also serves as the
    ``predictor.predict(space.encode(archs))`` regressor of the attentive sampler.
    """

    def __init__(self, space: "SearchSpace | str", n_estimators: int = 100, max_depth: int | None = 15,
                 seed: int = 0):
        if not isinstance(n_estimators, int) or n_estimators < 1:
            raise SupernasError(f"n_estimators must be a positive integer, got {n_estimators!r}")
        if max_depth is not None and (not isinstance(max_depth, int) or max_depth < 1):
            raise SupernasError(f"max_depth must be a positive integer or None, got {max_depth!r}")
        self.space = get_space(space)
        self.n_estimators, self.max_depth, self.seed = n_estimators, max_depth, seed
        self.forest: TreeEnsemble | None = None
        self.num_train = 0
        self.origin: str | None = None   # where an imported forest came from

    @property
    def fitted(self) -> bool:
        return self.forest is not None

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
        from sklearn.ensemble import RandomForestRegressor

        model = RandomForestRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                      random_state=self.seed, n_jobs=1).fit(x, y)
        self.forest, self.num_train = TreeEnsemble.from_sklearn(model), int(y.size)
        return self

    def predict(self, archs_or_x: Any) -> np.ndarray:
        """Predicted accuracies, (N,) float64."""
        if self.forest is None:
            raise SupernasError("the predictor is not fitted; call fit(archs, accs) or load a saved one")
        return self.forest.predict(self.features(archs_or_x))

    def score(self, archs_or_x: Any, accs: "Sequence[float] | np.ndarray") -> float:
        """Kendall's tau of predictions against measured accuracies."""
        return kendall_tau(self.predict(archs_or_x), accs)

    # ------------------------------------------------------------------ persistence
    def metadata(self) -> dict[str, Any]:
        return {"format": FORMAT, "space": self.space.name, "dims": list(self.space.names),
                "n_estimators": self.n_estimators, "max_depth": self.max_depth, "seed": self.seed,
                "num_train": self.num_train, **({"origin": self.origin} if self.origin else {})}

    def save(self, path: "str | Path") -> Path:
        """The trees' arrays and a JSON header in one numpy archive (no pickle: loading it runs
        no code, in any scikit-learn version), and the header again in `path`.json; both atomic."""
        if self.forest is None:
            raise SupernasError("only a fitted predictor can be saved; call fit first")
        path = Path(path).expanduser()
        header = {**self.metadata(), "definition": self.space.definition, "n_features": self.forest.n_features}
        buf = io.BytesIO()
        # cast: the arrays' names (left, right, ...) are not savez's keyword allow_pickle, which mypy cannot see
        np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                 **cast("dict[str, Any]", self.forest.arrays()))
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_text(_meta_path(path), json.dumps(self.metadata(), indent=2) + "\n")
        return path


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_predictor(path: "str | Path", space: "SearchSpace | str | None" = None) -> AccuracyPredictor:
    """A predictor saved by :meth:`AccuracyPredictor.save` (or by supernas before 0.2, read without
    running code from it); with `space`, checks it was fitted on it."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise SupernasError(f"predictor '{path}' is a directory; give the predictor file in it")
    if not p.is_file():
        raise SupernasError(f"predictor '{path}' does not exist; fit one with `supernas predictor fit` first")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04":
        meta, definition, forest = _read_archive(p)
    elif magic[:1] == b"\x80":
        meta, definition, forest = _read_legacy(p)
    else:
        raise SupernasError(f"'{path}' is not a saved supernas predictor (neither its archive format nor an older "
                            "supernas pickle); fit one with `supernas predictor fit`")
    saved = _saved_space(path, meta, definition)
    if space is not None:
        want = get_space(space)
        if want.name != meta["space"] or list(want.names) != meta["dims"]:
            raise SupernasError(f"predictor '{path}' was fitted on space '{meta['space']}', not '{want.name}'; "
                                f"fit a predictor on '{want.name}' or search the space '{meta['space']}'")
        saved = want
    if forest.n_features != len(saved.dims):
        raise SupernasError(f"predictor '{path}' takes {forest.n_features} features but its space "
                            f"'{saved.name}' has {len(saved.dims)} dimensions; the file is damaged")
    pred = AccuracyPredictor(saved, meta["n_estimators"], meta["max_depth"], meta["seed"])
    pred.forest, pred.num_train = forest, int(meta.get("num_train") or 0)
    pred.origin = meta.get("origin") if isinstance(meta.get("origin"), str) else None
    return pred


def import_attentivenas_predictor(path: "str | Path", space: "SearchSpace | str" = "attentivenas") -> AccuracyPredictor:
    """The accuracy predictor the AttentiveNAS authors publish (`acc_predictor.joblib`: a scikit-learn
    random forest over the reference format's 31 numbers), read without running code from the
    file and without scikit-learn (whose versions from 1.3 on cannot unpickle it), as a predictor
    over `space.encode`: its split features are renumbered to the space's columns, so it predicts
    what the original gives for the same Arch."""
    from ..spaces import reference_columns

    space = get_space(space)
    columns = np.asarray(reference_columns(space), dtype=np.int64)
    model = read_restricted(path, forest_globals(), "a scikit-learn random forest (such as the published "
                            "acc_predictor.joblib)")
    forest = forest_from_record(model, f"'{path}'")
    if forest.n_features != len(columns):
        raise SupernasError(f"'{path}' is a forest over {forest.n_features} numbers, but the AttentiveNAS predictor "
                            f"reads the {len(columns)} numbers of the reference format (resolution, width, depth, "
                            "kernel_size, expand_ratio); is it the published acc_predictor.joblib?")
    inner = forest.left != -1
    arrays = {**forest.arrays(), "feature": np.where(inner, columns[np.clip(forest.feature, 0, None)], forest.feature)}
    max_depth = model.get("max_depth")
    pred = AccuracyPredictor(space, n_estimators=forest.n_trees,
                             max_depth=max_depth if isinstance(max_depth, int) and max_depth > 0 else None)
    pred.forest = TreeEnsemble.from_arrays(arrays, len(space.dims))
    pred.origin = f"imported from {Path(path).name} (AttentiveNAS reference format)"
    return pred


def _read_archive(p: Path) -> tuple[dict[str, Any], Any, TreeEnsemble]:
    not_ours = f"'{p}' is not a saved supernas predictor"
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (KeyError, ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile) as e:
        raise SupernasError(f"{not_ours} (unreadable archive: {type(e).__name__}: {e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise SupernasError(f"{not_ours} of this version: it says format {found!r}, this supernas reads "
                            f"{FORMAT}" + ("; upgrade supernas to read it" if found else ""))
    _check_meta(p, header)
    try:
        forest = TreeEnsemble.from_arrays(arrays, header.get("n_features", len(header["dims"])))
    except SupernasError as e:
        raise SupernasError(f"{not_ours}: {e}") from None
    return header, header.get("definition"), forest


# What a predictor pickled by supernas 0.1 names: its header (dicts), the space's spec, and the
# scikit-learn forest, all read as records and turned into arrays without the library.
_FOREST_CLASSES = {("sklearn.ensemble._forest", "RandomForestRegressor"),
                   ("sklearn.ensemble.forest", "RandomForestRegressor"),
                   ("sklearn.tree._classes", "DecisionTreeRegressor"), ("sklearn.tree.tree", "DecisionTreeRegressor"),
                   ("sklearn.tree._tree", "Tree")}


def forest_globals() -> dict[tuple[str, str], Any]:
    """The allowlist of a pickled scikit-learn random forest (plain pickle or joblib)."""
    return {**NUMPY_GLOBALS, **JOBLIB_GLOBALS, **{key: record_class(key[1]) for key in _FOREST_CLASSES}}


def _read_legacy(p: Path) -> tuple[dict[str, Any], Any, TreeEnsemble]:
    from ..spaces import spec as spec_module

    spec_classes = {("supernas.spaces.spec", n): record_class(n) for n, v in vars(spec_module).items()
                    if isinstance(v, type) and v.__module__ == spec_module.__name__}
    blob = read_restricted(p, {**forest_globals(), **spec_classes}, "a saved supernas predictor")
    meta = blob.get("meta") if isinstance(blob, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != LEGACY_FORMAT:
        raise SupernasError(f"'{p}' is not a saved supernas predictor (expected format {FORMAT} or {LEGACY_FORMAT})")
    _check_meta(p, meta)
    forest = forest_from_record(blob.get("model"), f"'{p}'")
    warnings.warn(f"'{p}' is a predictor in the pickle format of supernas 0.1; it was read without running code "
                  f"from it. Save it again in the current format: "
                  f"python -c \"from supernas.predictors import load_predictor as l; l('{p}').save('{p}')\"",
                  SupernasWarning, stacklevel=3)
    return blob["meta"], None, forest


def forest_from_record(model: Any, where: str) -> TreeEnsemble:
    """The arrays of a scikit-learn RandomForestRegressor read by the restricted reader."""
    if type(model).__name__ != "RandomForestRegressor" or not isinstance(model, Record):
        raise SupernasError(f"{where} holds no random forest regressor (found {type(model).__name__})")
    estimators = model.get("estimators_")
    n_features = model.get("n_features_in_", model.get("n_features_"))
    if not isinstance(estimators, list) or not estimators or not isinstance(n_features, int):
        raise SupernasError(f"{where} holds an unfitted or damaged random forest (no trees or no feature count)")
    trees = []
    for i, est in enumerate(estimators):
        tree = est.get("tree_") if isinstance(est, Record) else None
        state = tree.state if isinstance(tree, Record) else None
        nodes = state.get("nodes") if isinstance(state, dict) else None
        values = state.get("values") if isinstance(state, dict) else None
        if not isinstance(nodes, np.ndarray) or nodes.dtype.names is None or not isinstance(values, np.ndarray) \
                or not {"left_child", "right_child", "feature", "threshold"} <= set(nodes.dtype.names) \
                or values.ndim != 3 or values.shape[0] != len(nodes) or values.shape[1:] != (1, 1):
            raise SupernasError(f"{where}: tree {i} of the forest is not a single-output regression tree")
        trees.append({"left": nodes["left_child"], "right": nodes["right_child"], "feature": nodes["feature"],
                      "threshold": nodes["threshold"], "value": values[:, 0, 0]})
    try:
        return TreeEnsemble.from_trees(trees, n_features)
    except SupernasError as e:
        raise SupernasError(f"{where}: {e}") from None


def _check_meta(p: Path, meta: dict[str, Any]) -> None:
    ok = isinstance(meta.get("space"), str) and isinstance(meta.get("dims"), list) \
        and all(isinstance(d, str) for d in meta["dims"]) and isinstance(meta.get("n_estimators"), int) \
        and (meta.get("max_depth") is None or isinstance(meta.get("max_depth"), int))
    if not ok:
        raise SupernasError(f"'{p}' is not a saved supernas predictor: its header lacks the space, its dimensions "
                            "or the forest's settings")


def _saved_space(path: "str | Path", meta: dict[str, Any], definition: Any) -> SearchSpace:
    if isinstance(definition, dict):
        return get_space(definition)
    try:
        return get_space(meta["space"])
    except SupernasError:
        raise SupernasError(f"predictor '{path}' was fitted on the space '{meta['space']}', which is neither built "
                            "in nor stored in the file; pass that space's file with --space") from None


def fit_from_evaluations(space: "SearchSpace | str", records: Sequence[Any], holdout: float = 0.2, seed: int = 0,
                         **kwargs: Any) -> tuple[AccuracyPredictor, float | None]:
    """Fit on evaluated Archs and report Kendall's tau on a held-out part.

    `records` are (Arch, accuracy) pairs or mappings with "arch" and "top1" (or "accuracy"), as the
    Evaluator and search results give. The returned predictor is refitted on all records; the tau
    (None when `holdout` is 0) is that of the model fitted without the held-out part.
    """
    space = get_space(space)
    archs, accs = _unpack(space, records)
    held = held_out_predictions(space, archs, accs, holdout, seed, **kwargs)
    tau = kendall_tau(*held) if held is not None else None
    return AccuracyPredictor(space, seed=seed, **kwargs).fit(archs, accs), tau


def held_out_predictions(space: SearchSpace, archs: Sequence[Arch], accs: "Sequence[float] | np.ndarray",
                         holdout: float = 0.2, seed: int = 0, **kwargs: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(predicted, measured) accuracies of a seeded `holdout` fraction of the Archs, by a forest
    fitted on the others: what a held-out Kendall tau (and its interval) is computed from; None
    when `holdout` rounds to no Arch."""
    if not 0 <= holdout < 1:
        raise SupernasError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    accs = np.asarray(accs, dtype=np.float64)
    n_held = int(round(holdout * len(archs)))
    if not n_held:
        return None
    if n_held < 2 or len(archs) - n_held < 2:
        raise SupernasError(f"{len(archs)} records are too few for a holdout of {holdout}; evaluate more Archs "
                            "or set holdout to 0")
    order = np.random.default_rng(seed).permutation(len(archs))
    held, train = order[:n_held], order[n_held:]
    probe = AccuracyPredictor(space, seed=seed, **kwargs).fit([archs[i] for i in train], accs[train])
    return probe.predict([archs[i] for i in held]), accs[held]


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
