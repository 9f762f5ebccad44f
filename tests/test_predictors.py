import json

import numpy as np
import pytest
from tiny_runs import FAST_SCORING, TINY_NAME

from supernas.cli import main
from supernas.errors import SupernasError
from supernas.predictors import AccuracyPredictor, fit_from_evaluations, kendall_tau, load_predictor
from supernas.predictors.metrics import _tau_b
from supernas.spaces import get_space


def _synthetic(space, n, seed):
    """Accuracy that grows with the widths and the resolution, plus noise."""
    archs = space.sample(seed, n)
    cols = [j for j, name in enumerate(space.names) if name.endswith("width") or name == "resolution"]
    x = space.encode(archs)[:, cols]
    lo, hi = x.min(0), x.max(0)
    z = (x - lo) / np.where(hi > lo, hi - lo, 1)
    return archs, z.sum(1) + np.random.default_rng(seed).normal(0, 0.2, n)


@pytest.fixture(scope="module")
def fitted():
    space = get_space("attentivenas")
    archs, acc = _synthetic(space, 600, 0)
    return space, AccuracyPredictor(space, n_estimators=50, seed=0).fit(archs, acc)


def test_predictor_ranks_synthetic_accuracy(fitted):
    space, pred = fitted
    archs, acc = _synthetic(space, 200, 1)
    assert pred.score(archs, acc) > 0.7
    # An encoded matrix, as PredictorScorer passes, gives the same predictions as Archs.
    np.testing.assert_array_equal(pred.predict(space.encode(archs)), pred.predict(archs))
    assert pred.predict(archs[0]).shape == (1,)


def test_predictor_rejects_wrong_width_and_unfitted(fitted):
    space, pred = fitted
    with pytest.raises(SupernasError, match="encoding"):
        pred.predict(np.zeros((3, len(space.dims) + 1)))
    with pytest.raises(SupernasError, match="not fitted"):
        AccuracyPredictor(space).predict(space.sample(0, 2))
    with pytest.raises(SupernasError, match="one accuracy per Arch"):
        AccuracyPredictor(space).fit(space.sample(0, 3), [1.0, 2.0])


def test_save_load_round_trip(fitted, tmp_path):
    space, pred = fitted
    path = pred.save(tmp_path / "pred.pkl")
    meta = json.loads((tmp_path / "pred.pkl.json").read_text())
    assert meta["space"] == "attentivenas" and meta["num_train"] == 600
    archs = space.sample(5, 50)
    for loaded in (load_predictor(path), load_predictor(path, "attentivenas")):
        np.testing.assert_array_equal(loaded.predict(archs), pred.predict(archs))


def test_load_checks_space_and_file(fitted, tmp_path):
    _, pred = fitted
    path = pred.save(tmp_path / "pred.pkl")
    with pytest.raises(SupernasError, match="fitted on space 'attentivenas'"):
        load_predictor(path, TINY_NAME)
    with pytest.raises(SupernasError, match="does not exist"):
        load_predictor(tmp_path / "missing.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SupernasError, match="not a saved supernas predictor"):
        load_predictor(tmp_path / "junk.pkl")


def test_fit_from_evaluations_reports_holdout_tau():
    space = get_space("attentivenas")
    archs, acc = _synthetic(space, 300, 2)
    records = [{"arch": a.to_dict(), "top1": float(v)} for a, v in zip(archs, acc)]
    pred, tau = fit_from_evaluations(space, records, holdout=0.2, seed=0, n_estimators=30)
    assert tau is not None and tau > 0.6
    assert pred.num_train == 300
    _, none = fit_from_evaluations(space, list(zip(archs[:20], acc[:20])), holdout=0, n_estimators=5)
    assert none is None
    with pytest.raises(SupernasError, match="too few"):
        fit_from_evaluations(space, list(zip(archs[:3], acc[:3])), holdout=0.2)


def test_kendall_tau_matches_own_implementation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    b[:5] = b[5]  # ties
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)
    assert kendall_tau(a, b) == pytest.approx(_tau_b(a, b))
    with pytest.raises(SupernasError):
        kendall_tau([1, 2], [1, 2, 3])


def test_predictor_fit_reports_the_held_out_count_an_interval_and_warns_below_the_minimum(run_copy, capsys):
    assert main(["predictor", "fit", str(run_copy), "-n", "16", *FAST_SCORING]) == 0
    out, err = capsys.readouterr()
    assert "the Kendall tau rests on 3 held-out Archs, fewer than 10: it says little" in err
    assert "Kendall tau on 3 held-out Archs: " in out and "95% bootstrap interval" in out
    fit = json.loads((run_copy / "predictor.fit.json").read_text())
    lo, hi = fit["kendall_tau_interval"]
    assert fit["held_out"] == 3 and -1 <= lo <= fit["kendall_tau"] <= hi <= 1 and hi - lo > 0.5


def test_the_tau_interval_narrows_with_more_archs():
    import numpy as np

    from supernas.search.predictor_runs import tau_interval

    rng = np.random.default_rng(0)
    true = rng.normal(size=200)
    pred = true + rng.normal(scale=0.5, size=200)
    lo, hi = tau_interval(pred, true)
    few = tau_interval(pred[:5], true[:5])
    assert hi - lo < 0.2 < few[1] - few[0]
    assert tau_interval(pred, true) == (lo, hi)  # seeded
