"""Issue 21, items 10-16: what a newcomer following the README tripped on (locks left behind,
duplicate lines, records that disagree with what ran, estimates from too little, the quickstart's
delivered model, latency tables)."""
import json
from pathlib import Path

import pytest

from supernas import get_space
from supernas.cli import main
from tiny_runs import FAST_SCORING, TINY_TRAIN

TINY = get_space("attentivenas-tiny")

LOCK = ".supernas.lock"


# ---------------------------------------------------------------------------- item 16
def test_a_lock_file_is_removed_when_its_holder_ends_and_the_folder_stays_ours(tmp_path, capsys):
    from supernas.utils.lock import DirectoryLock

    with DirectoryLock(tmp_path / "a"):
        assert (tmp_path / "a" / LOCK).is_file()
    assert not (tmp_path / "a" / LOCK).exists()
    # a file a killed holder left is taken, then removed like any other
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / LOCK).write_text("12345\n")
    with DirectoryLock(tmp_path / "b"):
        pass
    assert not (tmp_path / "b" / LOCK).exists()

    run = tmp_path / "run"
    train = ["train", *TINY_TRAIN, f"run.dir={run}", "log.progress=false"]
    assert main(train) == 0
    assert not (run / LOCK).exists()
    # still recognised as a run (not as a folder of the user's files) without its lock
    assert main([*train, "train.max_steps=6", "--resume"]) == 0
    assert main(train) == 2 and "already holds a run" in capsys.readouterr().err
    out = tmp_path / "search"
    search = ["search", str(run), "--budgets", "1,2", "--population", "4", "--mutations", "2", "--crossovers", "2",
              "--generations", "1", "--out", str(out), *FAST_SCORING]
    assert main(search) == 0
    assert not (out / LOCK).exists()
    # the same --out again: a search of ours, refused only because it holds a search
    assert main(search) == 2 and "already holds a search" in capsys.readouterr().err
    export = tmp_path / "export"
    smallest = json.dumps(get_space("attentivenas-tiny").smallest().to_dict())
    assert main(["export", str(run), "--arch", smallest, "--out", str(export), *FAST_SCORING]) == 0
    assert not (export / LOCK).exists()
    # another format of the same Arch joins the export: the folder is still ours
    assert main(["export", str(run), "--arch", smallest, "--format", "torchscript", "--out", str(export),
                 *FAST_SCORING]) == 0


def test_two_searches_of_a_run_have_plots_of_different_titles(tmp_path):
    from supernas.search.plots import search_title

    front = {"run": "/runs/r", "space": "attentivenas-tiny", "cost": "mflops", "budgets": [1.0, 2.0],
             "score": {"source": "supernet"}, "data": "digits",
             "search": {"strategy": "evolution", "population": 4, "generations": 1}}
    first = search_title(front, Path("/runs/r/search"))
    other = search_title({**front, "budgets": [1.5], "search": {**front["search"], "generations": 3}},
                         Path("/runs/r/search-b"))
    assert first != other
    assert "search/" in first and "budgets 1, 2 MFLOPs" in first and "1 generation" in first
    assert "1 generations" not in first
    assert "search-b/" in other and "3 generations" in other
    # a pareto.json of another version (no settings) still gets a title
    assert search_title({"budgets": "garbage"}, Path("x")).startswith("run ")


# ---------------------------------------------------------------------------- item 11
def test_eval_without_data_uses_the_dataset_the_export_records(trained_run, tmp_path, capsys):
    export = tmp_path / "export"
    smallest = json.dumps(get_space("attentivenas-tiny").smallest().to_dict())
    assert main(["export", str(trained_run), "--arch", smallest, "--out", str(export), *FAST_SCORING]) == 0
    meta = json.loads((export / "arch.json").read_text())
    assert meta["data"]["path"] == "digits" and meta["data"]["image_size"] == 12
    capsys.readouterr()
    assert main(["eval", str(export), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] > 0 and 0 <= result["top1"] <= 100
    assert result["on"] == "the val split of the built-in digits"
    assert main(["eval", str(export), "--device", "cpu"]) == 0
    assert "top1 " in (out := capsys.readouterr().out) and "on the val split of the built-in digits" in out
    # a dataset that is not here (the export came from another machine): latency only, and why
    meta["data"]["path"] = str(tmp_path / "elsewhere")
    (export / "arch.json").write_text(json.dumps(meta))
    (export / "manifest.json").unlink()  # arch.json was edited by hand: no manifest to disagree with it
    with pytest.warns(UserWarning, match="no manifest"):
        assert main(["eval", str(export), "--device", "cpu", "--latency-repeats", "2"]) == 0
    cap = capsys.readouterr()
    assert "top1" not in cap.out and "latency" in cap.out
    assert "is not found here; give --data PATH" in cap.err


# ---------------------------------------------------------------------------- item 12
def test_a_search_records_the_bn_batches_that_ran(run_copy, tmp_path, capsys):
    from supernas.evaluation import Evaluator, load_run

    net, _, data = load_run(run_copy, "cpu")  # 256 training images
    assert Evaluator(net, data, bn_batches=4, batch_size=32).calibration_note() == ""
    assert Evaluator(net, data, bn_batches=4, batch_size=32).batches_per_arch()[0] == 4
    note = Evaluator(net, data, bn_batches=64).calibration_note()
    assert note == " (bn_batches 64: the training split holds 1 batch of 256)"
    out = tmp_path / "s"
    assert main(["search", str(run_copy), "--budgets", "2,3", "--population", "4", "--mutations", "1",
                 "--crossovers", "1", "--generations", "1", "--out", str(out), "--bn-batches", "4",
                 "--max-batches", "1", "--device", "cpu", "--threads", "1"]) == 0
    score = json.loads((out / "pareto.json").read_text())["score"]
    # one batch of 256 is all the training split holds: 1 ran, 4 were asked
    assert score["bn_batches"] == 1 and score["bn_batches_asked"] == 4
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("evolution: ")]
    assert lines[-1].startswith("evolution: 4/4 populations (100%), budget 3 (generation 1 of 1)")
    assert main(["search", str(run_copy), "--budgets", "2", "--generations", "1", "--population", "4",
                 "--out", str(tmp_path / "d"), "--dry-run", *FAST_SCORING]) == 0
    dry = capsys.readouterr().out
    assert "then 1 generation of " in dry and "1 generations" not in dry


def test_a_train_dry_run_says_how_many_bn_batches_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, f"run.dir={run}", "eval.bn_batches=8", "eval.batch_size=256",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "bn_batches: 8" in out  # the resolved config
    assert "re-calibration on 1 batches (bn_batches 8: the training split holds 1 batch of 256)" in out


def test_the_time_left_comes_from_steady_state_steps():
    from supernas.runtime.loop import WARMUP_STEPS, SteadyRate

    rate, now = SteadyRate(0, 0.0), 0.0
    for step in range(1, 11):
        now += 20.0 if step == 1 else 1.0  # a slow first step, then 1 s a step
        estimate = rate.seconds_per_step(step, now)
        rate.stepped(step, now)
        if step == 5:
            now += 30.0  # a checkpoint and a validation between steps
            rate.resume(now)
    assert estimate == 1.0  # not (20 + 9 + 30) / 10
    early = SteadyRate(0, 0.0)
    assert early.seconds_per_step(1, 20.0) == 20.0  # before any steady step: what there is
    assert WARMUP_STEPS >= 1


# ---------------------------------------------------------------------------- item 13
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


# ---------------------------------------------------------------------------- item 15
class BurstySampler:
    """A deterministic 'clock' for one run: the module's work, plus a burst of other processes
    that adds 5 ms to the runs numbered [start, start + 40); records which module each run timed."""

    def __init__(self, start):
        self.start, self.calls, self.order = start, 0, []

    @staticmethod
    def work(module, x):
        return 1e-4 * x.numel() + 1e-5 * sum(p.numel() for p in module.parameters()) + 0.01

    def __call__(self, module, x):
        self.order.append(id(module))
        busy = self.start <= self.calls < self.start + 40
        self.calls += 1
        return self.work(module, x) + (5.0 if busy else 0.0)


def test_layers_are_measured_in_interleaved_rounds_and_a_burst_does_not_move_the_table():
    from supernas.evaluation.latency import LatencyTable

    idx = TINY.sample_indices(0, 30)
    tables = []
    for start in (0, 70):  # two tables built in a row, another process busy at different moments
        sampler = BurstySampler(start)
        table = LatencyTable(TINY, 10, warmup=0, repeats=10, device="cpu", sampler=sampler, window_s=0)
        assert len(table.build(idx)) == 0  # no check models: no end-to-end latencies
        k = table.measured
        assert k == len(table.entries) > 10 and sampler.calls == 10 * k
        # one run of every layer (the tiny space's fit in one chunk) per round: a round times each once
        assert len(set(sampler.order[:k])) == k and sampler.order[:k] == sampler.order[k:2 * k]
        tables.append(table)
    assert tables[0].entries == tables[1].entries  # the fastest of 10 runs ignores the burst
    from supernas.evaluation import compare_latency

    a, b = (t.latency_indices(idx[:16]) for t in tables)  # Archs whose layers the tables hold
    assert compare_latency(a, b)["kendall_tau"] == 1.0


def test_rounds_go_on_until_the_timed_runs_span_the_window():
    import torch

    from supernas.evaluation.latency import interleaved_runs

    pairs = [(torch.nn.Identity(), torch.zeros(1))] * 2
    two_ms = lambda module, x: 2.0  # noqa: E731 - 4 ms a round
    assert [len(r) for r in interleaved_runs(pairs, 0, 3, two_ms, window_s=0.05)] == [13, 13]  # 52 ms >= 50
    assert [len(r) for r in interleaved_runs(pairs, 0, 3, two_ms, window_s=0)] == [3, 3]
    assert [len(r) for r in interleaved_runs(pairs, 0, 30, two_ms, window_s=0.05)] == [30, 30]


class DriftSampler:
    """The machine halves its speed once the first chunk of layers is measured: a layer it has not
    met in its first round means a new chunk (the check models run in every chunk)."""

    def __init__(self):
        self.first, self.seen, self.round_done, self.slow = set(), [], False, False

    def __call__(self, module, x):
        self.seen.append(module)  # alive, so that no later module takes its id
        if not self.round_done:
            self.round_done = id(module) in self.first
            self.first.add(id(module))
        elif id(module) not in self.first:
            self.slow = True
        return BurstySampler.work(module, x) * (2.0 if self.slow else 1.0)


def test_a_drift_between_chunks_is_taken_out_by_the_check_models_timed_in_each(monkeypatch):
    from supernas.evaluation import build_latency_table, latency

    steady = build_latency_table(TINY, 10, warmup=0, repeats=3, device="cpu", build_archs=10, check_archs=4,
                                 sampler=BurstySampler.work, window_s=0)
    monkeypatch.setattr(latency, "CHUNK_BYTES", 1 << 15)  # several chunks
    sampler = DriftSampler()
    drifted = build_latency_table(TINY, 10, warmup=0, repeats=3, device="cpu", build_archs=10, check_archs=4,
                                  sampler=sampler, window_s=0)
    assert sampler.slow  # the later chunks did run at half speed
    # every layer on one footing (that of most runs), the check models on it too: one factor throughout
    ratios = [drifted.entries[k] / steady.entries[k] for k in steady.entries]
    assert ratios == pytest.approx([ratios[0]] * len(ratios), rel=1e-9) and ratios[0] in (pytest.approx(1),
                                                                                        pytest.approx(2))
    f, g = drifted.fit, steady.fit
    assert f["scale"] == pytest.approx(g["scale"]) and f["offset"] == pytest.approx(ratios[0] * g["offset"])
    assert f["kendall_tau"] == g["kendall_tau"] and f["mean_ratio"] == pytest.approx(g["mean_ratio"])
    # without the check models each chunk keeps the speed it ran at
    plain = latency.LatencyTable(TINY, 10, warmup=0, repeats=3, device="cpu", sampler=DriftSampler(), window_s=0)
    plain.build(TINY.sample_indices(0, 10))
    assert len({round(plain.entries[k] / steady.entries[k], 6) for k in plain.entries}) == 2


def test_calibration_fits_the_overhead_a_sum_of_layers_misses_and_reports_agreement(tmp_path):
    import numpy as np

    from supernas.evaluation.latency import LatencyTable

    table = LatencyTable(TINY, 10, warmup=0, repeats=3, device="cpu", sampler=BurstySampler(10 ** 9), window_s=0)
    idx = TINY.sample_indices(2, 8)
    table.build(idx)
    sums = table.layer_sums(idx)
    fit = table.calibrate(idx, 1.3 * sums + 0.4)  # a model costs 30% more than its layers, plus 0.4 ms
    assert fit["scale"] == pytest.approx(1.3) and fit["offset"] == pytest.approx(0.4)
    assert fit["kendall_tau"] == pytest.approx(1.0) and fit["mean_ratio"] == pytest.approx(1.0)
    assert fit["layers_only_mean_ratio"] < 0.8
    assert np.allclose(table.latency_indices(idx), 1.3 * sums + 0.4)
    assert "Kendall tau 1.00, mean ratio 1.00" in table.describe_fit()
    path = table.save(tmp_path / "t.json")
    again = LatencyTable.load(path, TINY, 10, device="cpu")
    assert np.allclose(again.latency_indices(idx), table.latency_indices(idx)) and again.fit == fit
    data = json.loads(path.read_text())
    data["fit"]["scale"] = -1
    path.write_text(json.dumps(data))
    from supernas.errors import SupernasError

    with pytest.raises(SupernasError, match="holds a fit that is not a positive scale"):
        LatencyTable.load(path, TINY, 10, device="cpu")


def test_build_latency_table_builds_calibrates_and_describes():
    from supernas.evaluation import build_latency_table

    table = build_latency_table(TINY, 10, warmup=0, repeats=3, device="cpu", build_archs=10, check_archs=5,
                                sampler=BurstySampler(10 ** 9), window_s=0)
    assert table.fit["archs"] == 5 and table.fit["scale"] > 0
    assert table.describe_fit().startswith("latency table against end to end on 5 Archs")


# ---------------------------------------------------------------------------- item 10
def test_quickstart_budgets_lie_inside_the_space_range():
    from supernas.quickstart import budgets_in_range
    from supernas.spaces import CostModel

    cost = CostModel(TINY, 10)
    lo, hi = (float(cost.mflops(a)) for a in (TINY.smallest(), TINY.largest()))
    budgets = budgets_in_range(lo, hi)
    assert len(budgets) == 3 and all(lo < b <= hi for b in budgets) and budgets == sorted(set(budgets))
    assert budgets_in_range(1.0, 1.001) == [1.001]  # a range too narrow for 2 decimals: its top


@pytest.mark.slow
def test_quickstart_delivers_a_fine_tuned_model_and_its_val_top1(tmp_path, capsys):
    from supernas.quickstart import quickstart

    short = ["train.max_steps=3", "data.train_subset=256", "eval.bn_batches=1", "log.progress=false",
             "log.tensorboard=false", "run.threads=1"]
    r = quickstart(tmp_path / "qs", "cpu", overrides=short,
                   finetune_overrides=["train.max_steps=2", "log.progress=false", "log.tensorboard=false"])
    out = capsys.readouterr().out
    assert "top-1 on the validation split (359 images)" in out and "before the fine-tune" in out
    assert Path(r["export"]).is_dir() and 0 <= r["top1_val"] <= 100
    assert r["budgets"] == sorted(r["budgets"]) and len(r["budgets"]) == 3
