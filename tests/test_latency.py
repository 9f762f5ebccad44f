import json

import numpy as np
import pytest
import torch
from tiny_runs import TINY

from supernas.cli import main
from supernas.errors import SupernasError
from supernas.evaluation import LatencyTable, compare_latency, measure_end_to_end
from supernas.evaluation.latency import _distinct_rows
from supernas.search import EvolutionSearch, ParetoEntry, format_table, pareto_front, plot_pareto, write_pareto
from supernas.spaces import CostModel


class CountingTimer:
    """Deterministic 'latency': grows with the layer's work (input numel and weights), and counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, module, x):
        self.calls += 1
        weights = sum(p.numel() for p in module.parameters())
        return 1e-4 * x.numel() + 1e-5 * weights + 0.01


def fake_table(space=TINY, **kw):
    timer = CountingTimer()
    return LatencyTable(space, num_classes=10, device="cpu", timer=timer, **kw), timer


def test_table_sums_are_positive_and_grow_with_the_arch():
    table, _ = fake_table()
    small, large = table.latency([TINY.smallest(), TINY.largest()])
    assert 0 < small < large
    ms = table.latency_indices(TINY.sample_indices(0, 200))
    assert ms.shape == (200,) and (ms >= small - 1e-12).all() and (ms <= large + 1e-12).all()


def test_each_layer_is_measured_once():
    table, timer = fake_table()
    idx = TINY.sample_indices(0, 300)
    first = table.latency_indices(idx)
    assert timer.calls == table.measured == len(table.entries)
    # Every key names its kind of layer, and the stem, blocks and head all appear.
    assert {k.split()[0] for k in table.entries} == {"stem", "block", "head"}
    again = table.latency_indices(np.concatenate([idx, idx[:50]]))
    assert timer.calls == len(table.entries)  # nothing measured twice
    assert np.array_equal(again[:300], first)


def test_distinct_rows_match_numpy_unique_even_near_overflow():
    rng = np.random.default_rng(0)
    for rows in (rng.integers(0, 5, (3000, 10)), rng.integers(-3, 1 << 40, (500, 3)),
                 np.array([[1 << 40, 2, 1 << 40]] * 3 + [[0, 0, 0]])):
        got, inverse = _distinct_rows(rows)
        want, want_inverse = np.unique(rows, axis=0, return_inverse=True)
        assert np.array_equal(got, want) and np.array_equal(inverse, want_inverse.reshape(-1))


def test_measuring_leaves_the_global_generator_alone():
    table, _ = fake_table()
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    table.latency(TINY.sample(0, 5))
    assert torch.equal(torch.rand(3), want)


def test_latency_indices_agrees_with_latency_per_arch():
    table, _ = fake_table()
    archs = TINY.sample(1, 25)
    bulk = table.latency(archs)
    assert np.allclose(bulk, [table.latency(a) for a in archs], rtol=0, atol=1e-12)
    assert isinstance(table.latency(archs[0]), float)
    with pytest.raises(SupernasError, match="out of range"):
        table.latency_indices(np.full((1, len(TINY.dims)), 99))


def test_save_load_round_trip_and_refusal(tmp_path):
    table, _ = fake_table()
    archs = TINY.sample(2, 20)
    want = table.latency(archs)
    path = table.save(tmp_path / "latency_table.json")
    data = json.loads(path.read_text())
    assert data["batch_size"] == 1 and data["torch"] == torch.__version__ and data["device"].startswith("cpu")
    timer = CountingTimer()
    loaded = LatencyTable(TINY, num_classes=10, device="cpu", timer=timer).load(path)
    assert np.array_equal(loaded.latency(archs), want) and timer.calls == 0  # nothing re-measured
    with pytest.raises(SupernasError, match="batch_size"):
        LatencyTable(TINY, num_classes=10, batch_size=8, device="cpu").load(path)
    data["device"] = "cuda: some other GPU"
    path.write_text(json.dumps(data))
    with pytest.raises(SupernasError, match="measured with device .*delete the file"):
        LatencyTable(TINY, num_classes=10, device="cpu").load(path)
    path.write_text("{}")
    with pytest.raises(SupernasError, match="not a supernas latency table"):
        LatencyTable(TINY, device="cpu").load(path)


def test_real_measurement_and_end_to_end_check(one_thread):
    # A few real timings: cheap layers of the tiny space at 12-16 px; timings are noisy, so only sanity.
    table = LatencyTable(TINY, num_classes=10, warmup=1, repeats=3, device="cpu", window_s=0)
    archs = [TINY.smallest(), TINY.largest()]
    ms = table.latency(archs)
    assert (ms > 0).all() and table.measured == len(table.entries) > 0
    e2e = measure_end_to_end(TINY, archs, num_classes=10, warmup=1, repeats=3, device="cpu", window_s=0)
    assert e2e.shape == (2,) and (e2e > 0).all()
    cmp = compare_latency(ms, e2e)
    assert set(cmp) == {"n", "pearson_r", "kendall_tau", "mean_ratio"} and cmp["mean_ratio"] > 0
    with pytest.raises(SupernasError):
        compare_latency([1.0], [1.0])
    with pytest.raises(SupernasError, match="repeats"):
        LatencyTable(TINY, repeats=0)


# ---------------------------------------------------------------------- search under latency budgets
def _score(archs):
    return TINY.encode(archs).sum(axis=1)  # bigger Archs "more accurate": pushes against the budget


def test_search_keeps_every_arch_within_its_latency_budget():
    table, _ = fake_table()
    lo, hi = table.latency([TINY.smallest(), TINY.largest()])
    budgets = [lo + 0.3 * (hi - lo), lo + 0.7 * (hi - lo)]
    search = EvolutionSearch(TINY, CostModel(TINY, 10), _score, budgets, population=8, mutations=4, crossovers=4,
                             generations=2, constraint=("latency_ms", table.latency_indices))
    res = search.run()
    assert res.cost == "latency_ms"
    for budget, best in zip(res.budgets, res.best):
        assert best.latency_ms <= budget and best.latency_ms == pytest.approx(table.latency(best.arch))
    assert all(e.latency_ms is not None for e in res.evaluated)
    assert all(e.latency_ms <= budgets[-1] for e in res.evaluated)
    front = res.pareto()
    assert [e.latency_ms for e in front] == sorted(e.latency_ms for e in front)
    # The constraint is part of the saved settings: an MFLOPs search does not resume a latency one.
    state = json.loads(json.dumps(search.state_dict()))
    with pytest.raises(SupernasError, match="constraint"):
        EvolutionSearch(TINY, CostModel(TINY, 10), _score, budgets, population=8, mutations=4, crossovers=4,
                        generations=2, state=state)


def test_states_saved_before_constraints_resume_as_mflops():
    cost = CostModel(TINY, 10)
    kw = dict(population=8, mutations=4, crossovers=4, generations=1)
    search = EvolutionSearch(TINY, cost, _score, [3.0], **kw)
    search.step()
    state = json.loads(json.dumps(search.state_dict()))
    del state["config"]["constraint"]
    resumed = EvolutionSearch(TINY, cost, _score, [3.0], state=state, **kw).run()
    assert resumed.cost == "mflops" and resumed.best[0].mflops <= 3.0


def test_latency_budget_below_the_smallest_arch_is_a_clear_error():
    table, _ = fake_table()
    floor = table.latency(TINY.smallest())
    with pytest.raises(SupernasError, match=r"budget .* ms is below the smallest Arch.*raise the budgets"):
        EvolutionSearch(TINY, CostModel(TINY, 10), _score, [floor / 2],
                        constraint=("latency_ms", table.latency_indices))
    with pytest.raises(SupernasError, match="unknown constraint"):
        EvolutionSearch(TINY, CostModel(TINY, 10), _score, [5.0], constraint=("watts", table.latency_indices))


def test_pareto_files_table_and_plot_carry_latency(tmp_path):
    table, _ = fake_table()
    cost = CostModel(TINY, 10)
    archs = TINY.sample(3, 30)
    mf, pa, ms = cost.mflops(archs), cost.params(archs), table.latency(archs)
    entries = [ParetoEntry(a, float(m), float(p), float(np.log(m)), latency_ms=float(t))
               for a, m, p, t in zip(archs, mf, pa, ms)]
    front = pareto_front(entries, cost="latency_ms")
    js, cs = write_pareto(tmp_path, front, TINY)
    rows = json.loads(js.read_text())["entries"]
    assert all(r["latency_ms"] > 0 for r in rows)
    lines = cs.read_text().splitlines()
    assert lines[0] == "mflops,params,latency_ms,accuracy,arch" and len(lines) == len(front) + 1
    assert "Lat(ms)" in format_table(front)
    png = plot_pareto(front, tmp_path / "p.png", extra_series=entries, x="latency_ms")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SupernasError, match="no latency_ms"):
        pareto_front([ParetoEntry(archs[0], 1.0, 1.0, 1.0)], cost="latency_ms")


# ---------------------------------------------------------------------- command line
def _search(run, out, budgets, *extra):
    return main(["search", str(run), "--budgets", ",".join(map(str, budgets)), "--population", "6",
                 "--mutations", "3", "--crossovers", "3", "--generations", "1", "--bn-batches", "1",
                 "--device", "cpu", "--cost", "latency", "--latency-warmup", "1", "--latency-repeats", "3",
                 "--latency-window", "0", "--out", str(out), *extra])


def test_cli_search_with_latency_budgets(trained_run, tmp_path, capsys, one_thread):
    # Far below any Arch: a one-line error in ms, before anything is searched.
    assert _search(trained_run, tmp_path / "lat0", [0.0001]) == 2
    err = capsys.readouterr().err
    assert "ms is below the smallest Arch" in err and "\n" not in err.strip()
    assert _search(trained_run, tmp_path / "lat0", [1], "--max-mflops", "2") == 2
    assert "--budgets in ms" in capsys.readouterr().err

    # A budget every Arch meets measures some layers; their table then sets budgets that bind.
    assert _search(trained_run, tmp_path / "lat1", [1000]) == 0
    table = LatencyTable(TINY, num_classes=10, warmup=1, repeats=3, device="cpu").load(
        tmp_path / "lat1" / "latency_table.json")
    lo, hi = table.latency([TINY.smallest(), TINY.largest()])
    budgets = [round(lo + 0.3 * (hi - lo), 4), round(lo + 0.7 * (hi - lo), 4)]
    out = tmp_path / "lat2"
    out.mkdir()
    (out / "latency_table.json").write_text((tmp_path / "lat1" / "latency_table.json").read_text())  # reused
    capsys.readouterr()
    assert _search(trained_run, out, budgets) == 0
    text = capsys.readouterr().out
    assert "Lat(ms)" in text and "latency_table.json" in text
    entries = json.loads((out / "pareto.json").read_text())["entries"]
    assert entries and all(0 < e["latency_ms"] <= budgets[-1] for e in entries)
    best = json.loads((out / "best_per_budget.json").read_text())
    assert [b["budget"] for b in best] == budgets and all(b["latency_ms"] <= b["budget"] for b in best)
    assert "latency_ms" in (out / "pareto.csv").read_text().splitlines()[0]
    # The figures are the saved table's sums, and --resume reuses that table: same results, nothing new.
    saved = json.loads((out / "latency_table.json").read_text())
    table = LatencyTable(TINY, num_classes=10, device="cpu", timer=CountingTimer()).load(out / "latency_table.json")
    assert [table.latency(TINY.arch(e["arch"])) for e in entries] == pytest.approx([e["latency_ms"] for e in entries])
    assert table.timer.calls == 0
    assert _search(trained_run, out, budgets, "--resume") == 0
    assert json.loads((out / "pareto.json").read_text())["entries"] == entries
    assert json.loads((out / "latency_table.json").read_text())["entries"] == saved["entries"]


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
    from supernas.evaluation import latency

    idx, check = TINY.sample_indices(0, 10), TINY.sample_indices(1, 4)
    models = latency._extracted(TINY, TINY.from_indices(check), 10, 1, torch.device("cpu"), 0)

    def build(sampler):
        table = latency.LatencyTable(TINY, 10, warmup=0, repeats=3, device="cpu", sampler=sampler, window_s=0)
        check_ms = table.build(np.concatenate([idx, check]), models)
        return table, table.calibrate(check, check_ms)

    steady, g = build(BurstySampler.work)
    monkeypatch.setattr(latency, "CHUNK_BYTES", 1 << 15)  # several chunks
    sampler = DriftSampler()
    drifted, f = build(sampler)
    assert sampler.slow  # the later chunks did run at half speed
    # every layer on one footing (that of most runs), the check models on it too: one factor throughout
    ratios = [drifted.entries[k] / steady.entries[k] for k in steady.entries]
    assert ratios == pytest.approx([ratios[0]] * len(ratios), rel=1e-9) and ratios[0] in (pytest.approx(1),
                                                                                        pytest.approx(2))
    assert f["scale"] == pytest.approx(g["scale"]) and f["offset"] == pytest.approx(ratios[0] * g["offset"])
    assert f["kendall_tau"] == g["kendall_tau"] and f["mean_ratio"] == pytest.approx(g["mean_ratio"])
    # without the check models each chunk keeps the speed it ran at
    plain = latency.LatencyTable(TINY, 10, warmup=0, repeats=3, device="cpu", sampler=DriftSampler(), window_s=0)
    plain.build(idx)
    assert len({round(plain.entries[k] / steady.entries[k], 6) for k in plain.entries}) == 2


def test_the_fit_targets_the_check_models_timed_on_their_own_before_and_after_the_layers():
    from supernas.evaluation import build_latency_table
    from supernas.evaluation.latency import LatencyTable

    class AmongLayers:
        """Whole models read twice as slow while layers run in the same rounds (on a real CPU the
        caches make it 2-27 %)."""

        def __init__(self):
            self.layers_running = False

        def __call__(self, module, x):
            whole = x.shape[1] == 3 and len(list(module.children())) > 3
            self.layers_running |= not whole
            return BurstySampler.work(module, x) * (2.0 if whole and self.layers_running else 1.0)

    sampler = AmongLayers()
    table = build_latency_table(LatencyTable(TINY, 10, warmup=0, repeats=3, device="cpu", sampler=sampler,
                                             timer=BurstySampler.work, window_s=0), build_archs=10, check_archs=6)
    some = TINY.sample_indices(5, 12)
    alone = np.asarray([BurstySampler.work(m, x) for m, x in latency_models(some)])
    assert np.mean(table.latency_indices(some) / alone) == pytest.approx(1, abs=0.1)  # not the reading among layers


def latency_models(idx):
    from supernas.evaluation.latency import _extracted

    return _extracted(TINY, TINY.from_indices(idx), 10, 1, torch.device("cpu"), 0)


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
    again = LatencyTable(TINY, 10, device="cpu").load(path)
    assert np.allclose(again.latency_indices(idx), table.latency_indices(idx)) and again.fit == fit
    data = json.loads(path.read_text())
    data["fit"]["scale"] = -1
    path.write_text(json.dumps(data))
    from supernas.errors import SupernasError

    with pytest.raises(SupernasError, match="holds a fit that is not a positive scale"):
        again.load(path)
    # a refused file leaves the table as it was; a file without a fit leaves none behind
    assert np.allclose(again.latency_indices(idx), table.latency_indices(idx)) and again.fit == fit
    del data["fit"]
    path.write_text(json.dumps(data))
    assert again.load(path).fit is None and np.allclose(again.latency_indices(idx), sums)


@pytest.mark.parametrize("n", [3, 8])  # one parameter, and the linear fit
def test_whole_models_faster_than_their_layers_scale_the_sums_down_never_below_zero(n, tmp_path):
    from supernas.errors import SupernasError
    from supernas.evaluation.latency import LatencyTable

    table = LatencyTable(TINY, 10, warmup=0, repeats=3, device="cpu", sampler=BurstySampler(10 ** 9), window_s=0)
    idx = TINY.sample_indices(2, n)
    table.build(idx)
    sums = table.layer_sums(idx)
    fit = table.calibrate(idx, 1.2 * sums - 0.9 * sums.min())  # a line that would cross 0 above the smallest Arch
    assert fit["offset"] == 0 and fit["scale"] > 0
    everything = TINY.to_indices([TINY.smallest(), TINY.largest()])
    assert (table.latency_indices(everything) > 0).all()
    data = {**json.loads(table.save(tmp_path / "t.json").read_text())}
    data["fit"]["offset"] = -1.0  # a file that says otherwise is refused
    (tmp_path / "t.json").write_text(json.dumps(data))
    with pytest.raises(SupernasError, match="a positive scale and a finite offset >= 0"):
        LatencyTable(TINY, 10, device="cpu").load(tmp_path / "t.json")


def test_build_latency_table_builds_calibrates_and_describes():
    from supernas.evaluation import build_latency_table
    from supernas.evaluation.latency import LatencyTable

    table = build_latency_table(LatencyTable(TINY, 10, warmup=0, repeats=3, device="cpu",
                                             sampler=BurstySampler(10 ** 9), window_s=0), build_archs=10, check_archs=5)
    assert table.fit["archs"] == 5 and table.fit["scale"] > 0
    assert table.describe_fit().startswith("latency table against end to end on 5 Archs")
