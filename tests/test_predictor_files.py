"""Predictor files: the arrays format, older pickled predictors, and the published AttentiveNAS
forest, all read without running code and predicting what scikit-learn predicts."""
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from tiny_runs import TINY, TINY_NAME

from supernas import get_space
from supernas.cli import main
from supernas.errors import SupernasError, SupernasWarning
from supernas.predictors import AccuracyPredictor, import_attentivenas_predictor, load_predictor
from supernas.predictors.trees import TreeEnsemble
from supernas.spaces import reference_columns

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OLD_FOREST = SHARED / "old-sklearn-forest.joblib"


def _forest(n_features=31, n=300, seed=0, **kw):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 8, (n, n_features)).astype(np.float64) + rng.random((n, n_features)).round(2)
    y = x @ rng.random(n_features) + rng.normal(0, 0.5, n)
    return RandomForestRegressor(n_estimators=kw.pop("trees", 12), random_state=seed, n_jobs=1, **kw).fit(x, y), x


def test_arrays_predict_exactly_what_scikit_learn_predicts():
    model, x = _forest(max_depth=9)
    forest = TreeEnsemble.from_sklearn(model)
    rng = np.random.default_rng(1)
    probe = np.concatenate([x, rng.random((500, 31)) * 9])
    # inputs on the thresholds themselves (and a float32 step either side) decide the same way
    t = model.estimators_[0].tree_
    for i in np.flatnonzero(t.feature >= 0)[:40]:
        for v in (t.threshold[i], np.nextafter(np.float32(t.threshold[i]), np.float32(np.inf))):
            row = x[0].copy()
            row[t.feature[i]] = v
            probe = np.vstack([probe, row])
    np.testing.assert_array_equal(forest.predict(probe), model.predict(probe))


def test_malformed_trees_are_refused():
    model, _ = _forest(trees=1, max_depth=3)
    good = TreeEnsemble.from_sklearn(model).arrays()
    cycle = {**good, "left": good["left"].copy()}
    cycle["left"][0] = 0  # the root its own child: a walk that never ends
    with pytest.raises(SupernasError, match="malformed"):
        TreeEnsemble.from_arrays(cycle, 31)
    far = {**good, "feature": np.where(good["left"] != -1, 40, good["feature"])}
    with pytest.raises(SupernasError, match="feature outside"):
        TreeEnsemble.from_arrays(far, 31)
    with pytest.raises(SupernasError, match="takes \\(N, 31\\)"):
        TreeEnsemble.from_arrays(good, 31).predict(np.zeros((2, 30)))


def test_a_saved_predictor_is_an_archive_without_pickles_and_reloads(tmp_path):
    space = TINY
    archs = space.sample(0, 40)
    pred = AccuracyPredictor(space, n_estimators=5, max_depth=4).fit(archs, np.arange(40.0))
    path = pred.save(tmp_path / "p.npz")
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(f"{k}.npy" for k in ("header", *TreeEnsemble.ARRAYS))
    with np.load(path, allow_pickle=False) as z:  # nothing in it needs unpickling
        header = json.loads(z["header"].tobytes())
    assert header["format"] == "supernas-predictor/2" and header["space"] == "attentivenas-tiny"
    np.testing.assert_array_equal(load_predictor(path).predict(archs), pred.predict(archs))
    # a newer format is named, not misread
    header["format"] = "supernas-predictor/9"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "new.npz", **{**arrays, "header": np.frombuffer(json.dumps(header).encode(), np.uint8)})
    with pytest.raises(SupernasError, match="supernas-predictor/9.*upgrade supernas"):
        load_predictor(tmp_path / "new.npz")


def test_a_predictor_pickled_by_supernas_0_1_loads_with_a_warning(tmp_path):
    """The 0.1 layout: {"meta", "spec" (the space's dataclasses), "model" (the forest)}."""
    space = TINY
    archs = space.sample(1, 30)
    x = space.encode(archs)
    model = RandomForestRegressor(n_estimators=4, max_depth=5, random_state=0, n_jobs=1).fit(x, np.arange(30.0))
    meta = {"format": "supernas-predictor/1", "space": space.name, "dims": list(space.names), "n_estimators": 4,
            "max_depth": 5, "seed": 0, "num_train": 30}
    (tmp_path / "old.pkl").write_bytes(pickle.dumps({"meta": meta, "spec": space.spec, "model": model},
                                                    protocol=pickle.HIGHEST_PROTOCOL))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_predictor(tmp_path / "old.pkl", space)
    assert any(issubclass(w.category, SupernasWarning) and "without running code" in str(w.message) for w in caught)
    np.testing.assert_array_equal(loaded.predict(archs), model.predict(x))


def _write(path: Path, obj, how: str) -> Path:
    if how == "pickle":
        path.write_bytes(pickle.dumps(obj))
    else:
        import joblib

        joblib.dump(obj, path, compress=3 if how == "joblib-zlib" else 0)
    return path


@pytest.mark.parametrize("how", ["pickle", "joblib", "joblib-zlib"])
def test_a_forest_over_the_reference_format_imports_in_any_layout(tmp_path, how):
    space = get_space("attentivenas")
    model, x = _forest(max_depth=8)
    pred = import_attentivenas_predictor(_write(tmp_path / "acc_predictor.joblib", model, how), space)
    ours = np.zeros_like(x)
    ours[:, reference_columns(space)] = x  # the same numbers, in the space's column order
    np.testing.assert_array_equal(pred.predict(ours), model.predict(x))
    # and for real Archs: the published predictor read the reference format of the same Arch
    from supernas.spaces import to_reference

    archs = space.sample(3, 20)
    ref = np.array([[r["resolution"], *r["width"], *r["depth"], *r["kernel_size"], *r["expand_ratio"]]
                    for r in (to_reference(space, a) for a in archs)], dtype=np.float64)
    np.testing.assert_array_equal(pred.predict(archs), model.predict(ref))


@pytest.mark.skipif(not OLD_FOREST.is_file(), reason="../shared/data/old-sklearn-forest.joblib is not beside the checkout")
def test_the_published_layout_reproduces_the_original_library_exactly(tmp_path, capsys):
    """A forest pickled by scikit-learn 1.2 with joblib, as the published acc_predictor.joblib is:
    today's scikit-learn cannot unpickle it; the import reads it and gives the original's numbers."""
    recorded = json.loads(OLD_FOREST.with_suffix(".json").read_text())
    out = tmp_path / "published.npz"
    assert main(["predictor", "import", "attentivenas", str(OLD_FOREST), "--out", str(out)]) == 0
    assert "8 trees" in capsys.readouterr().out
    pred = load_predictor(out, "attentivenas")
    x = np.asarray(recorded["inputs"], dtype=np.float64)
    ours = np.zeros_like(x)
    ours[:, reference_columns(pred.space)] = x
    np.testing.assert_array_equal(pred.predict(ours), np.asarray(recorded["predictions"]))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_import_refuses_what_is_not_the_published_forest_in_one_line(tmp_path, capsys):
    marker = tmp_path / "PAYLOAD-RAN"
    model, _ = _forest(n_features=5, trees=2, max_depth=3)
    cases = {
        "wide": (_write(tmp_path / "wide.joblib", model, "joblib"), "forest over 5 numbers"),
        "payload": (_write(tmp_path / "evil.joblib", {"forest": _Payload(marker)}, "pickle"), "nothing in it was run"),
        "text": (tmp_path / "notes.txt", "not a pickle"),
        "other": (_write(tmp_path / "dict.joblib", {"a": 1}, "pickle"), "holds no random forest"),
    }
    cases["text"][0].write_text("hello")
    whole = (tmp_path / "full.joblib")
    _write(whole, _forest(trees=2, max_depth=3)[0], "joblib")
    (tmp_path / "cut.joblib").write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    cases["truncated"] = (tmp_path / "cut.joblib", "not a scikit-learn random forest")
    for name, (path, words) in cases.items():
        assert main(["predictor", "import", "attentivenas", str(path), "--out", str(tmp_path / f"{name}.npz")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, (name, err)
        assert not (tmp_path / f"{name}.npz").exists()
    assert not marker.exists()
    # the command's own bad forms
    assert main(["predictor", "import", "timm", str(whole), "--out", str(tmp_path / "x.npz")]) == 2
    assert "reads the 'attentivenas' format" in capsys.readouterr().err
    assert main(["predictor", "import", "attentivenas", str(whole)]) == 2
    assert "--out PREDICTOR" in capsys.readouterr().err
    (tmp_path / "mine.txt").write_text("a user's file")
    assert main(["predictor", "import", "attentivenas", str(whole), "--out", str(tmp_path / "mine.txt")]) == 2
    assert "is not a saved supernas predictor" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "a user's file"


def test_a_predictor_searches_alone_and_a_run_exports_its_pick(run_copy, tmp_path, capsys):
    """`search --predictor P` with no run directory: the predictor's own space, no supernet; then
    `export RUN --pick --search DIR` takes the Arch for the run's weights."""
    space = TINY
    archs = space.sample(2, 60)
    mflops = np.asarray([a["resolution"] for a in archs], dtype=np.float64)  # a rating that prefers resolution
    pred = AccuracyPredictor(space, n_estimators=5, max_depth=6).fit(archs, mflops + np.arange(60) / 100)
    path = pred.save(tmp_path / "p.npz")
    out = tmp_path / "alone"
    small = ["--population", "8", "--mutations", "4", "--crossovers", "4", "--generations", "2", "--device", "cpu"]
    assert main(["search", "--predictor", str(path), "--max-mflops", "2", "--out", str(out), "--num-classes", "10",
                 *small]) == 0
    header = json.loads((out / "pareto.json").read_text())
    assert header["run"] is None and header["weights"] is None and header["space"] == "attentivenas-tiny"
    assert header["score"]["source"] == "predictor" and header["num_classes"] == 10
    best = max(header["entries"], key=lambda e: e["accuracy"])
    assert best["accuracy"] == pytest.approx(float(pred.predict([space.arch(best["arch"])])[0]))
    capsys.readouterr()
    assert main(["export", str(run_copy), "--pick", "2", "--search", str(out), "--out", str(tmp_path / "x"),
                 "--bn-batches", "1", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "x" / "arch.json").read_text())["arch"] == best["arch"]
    # its bad forms, one line each
    for argv, words in ((["--max-mflops", "2", "--out", str(tmp_path / "a")], "give --predictor"),
                        (["--predictor", str(path), "--max-mflops", "2"], "needs --out"),
                        (["--predictor", str(path), "--space", "attentivenas", "--max-mflops", "2", "--out",
                          str(tmp_path / "b")], "fitted on space 'attentivenas-tiny'"),
                        (["data.path=digits", "--predictor", str(path), "--max-mflops", "2", "--out",
                          str(tmp_path / "c")], "no run directory was given"),
                        ([str(run_copy), "--space", TINY_NAME, "--max-mflops", "2", "--out",
                          str(tmp_path / "d")], "for a search without a run")):
        assert main(["search", *argv, *small]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, (argv, err)
