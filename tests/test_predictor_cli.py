"""`supernas predictor fit | eval | offline-sets` on a tiny trained run, and training on the sets."""
import json

import pytest

from supernas.cli import main


def test_fit_eval_and_offline_sets_feed_stage_one(run_copy, tiny_run_factory, tmp_path, capsys):
    run = run_copy
    common = ["--bn-batches", "1", "--device", "cpu"]
    assert main(["predictor", "eval", str(run), *common]) == 2  # nothing fitted yet: says how
    assert "supernas predictor fit" in capsys.readouterr().err

    assert main(["predictor", "fit", str(run), "-n", "12", "--holdout", "0.25", *common]) == 0
    assert "Kendall tau" in capsys.readouterr().out
    fitted = json.loads((run / "predictor.evaluations.json").read_text())
    assert len(fitted) == 12

    assert main(["predictor", "eval", str(run), "-n", "6", *common]) == 0
    assert "Archs it was not fitted on" in capsys.readouterr().out
    report = json.loads((run / "predictor.eval.json").read_text())
    # the figures are those of the Archs it lists: recomputed here from them
    from supernas.predictors import kendall_tau

    true = [r["top1"] for r in report["evaluations"]]
    pred = [r["predicted"] for r in report["evaluations"]]
    assert report["archs"] == len(true) == 6
    assert report["kendall_tau"] == pytest.approx(kendall_tau(pred, true))
    assert report["mae"] == pytest.approx(sum(abs(a - b) for a, b in zip(pred, true)) / 6)
    fitted_archs = {json.dumps(r["arch"], sort_keys=True) for r in fitted}
    assert not fitted_archs & {json.dumps(r["arch"], sort_keys=True) for r in report["evaluations"]}

    assert main(["predictor", "offline-sets", str(run), "-n", "3000", "--bin-width", "0.5"]) == 0
    assert "sampler.pareto_set=" in capsys.readouterr().out
    best = json.loads((run / "offline" / "pareto_best.json").read_text())["entries"]
    worst = json.loads((run / "offline" / "pareto_worst.json").read_text())["entries"]
    assert len(best) == len(worst) > 1
    assert all(b["accuracy"] >= w["accuracy"] for b, w in zip(best, worst))  # same bins, by MFLOPs

    # Stage 1 trains on the best set (AttentiveNAS's offline BestUp).
    tiny_run_factory(tmp_path / "offline-run", kind="pareto", pareto_set=str(run / "offline" / "pareto_best.json"))
    assert (tmp_path / "offline-run" / "checkpoint.pt").is_file()
