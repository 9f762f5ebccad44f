import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import FAST_SCORING, TINY, TINY_NAME

from supernas.cli import main
from supernas.data import build_datasets
from supernas.errors import SupernasError
from supernas.evaluation import Evaluator
from supernas.nn.supernet import SuperNet
from supernas.predictors import AccuracyPredictor
from supernas.sampling import read_pareto_set
from supernas.search import (
    EvolutionSearch,
    ParetoEntry,
    format_table,
    offline_pareto_sets,
    pareto_front,
    pareto_indices,
    parse_budgets,
    plot_pareto,
    write_pareto,
)
from supernas.spaces import CostModel, get_space


# ---------------------------------------------------------------------- budgets
def test_parse_budgets():
    assert parse_budgets("200:800:100") == [200, 300, 400, 500, 600, 700, 800]
    assert parse_budgets("200:750:100") == [200, 300, 400, 500, 600, 700]
    assert parse_budgets("300") == [300.0] and parse_budgets(450) == [450.0]
    assert parse_budgets("600, 200,400") == [200, 400, 600]
    for bad in ("", "abc", "200:100:50", "1:2", "-5", "0"):
        with pytest.raises(SupernasError):
            parse_budgets(bad)


# ---------------------------------------------------------------------- Pareto
def test_pareto_front_on_hand_made_points():
    pts = [(100, 70), (200, 75), (150, 69), (200, 74), (300, 75), (50, 60), (250, 80), (100, 70)]
    front = pareto_front(pts)
    assert front == [(50, 60), (100, 70), (200, 75), (250, 80)]
    assert list(pareto_indices([p[0] for p in pts], [p[1] for p in pts])) == [5, 0, 1, 6]
    assert pareto_front([]) == []
    with pytest.raises(SupernasError):
        pareto_front([1, 2])


def _entries(space, cost, n=30, seed=0):
    archs = space.sample(seed, n)
    mf, pa = cost.mflops(archs), cost.params(archs)
    acc = np.log(mf) * 10 + np.random.default_rng(seed).normal(0, 1, n)
    return [ParetoEntry(a, float(m), float(p), float(v), {"top5": 99.0}) for a, m, p, v in zip(archs, mf, pa, acc)]


def test_write_pareto_is_read_by_training(tmp_path):
    space = get_space("attentivenas")
    cost = CostModel(space, 1000)
    entries = pareto_front(_entries(space, cost))
    js, cs = write_pareto(tmp_path, entries, space)
    data = json.loads(js.read_text())
    assert data["space"] == "attentivenas" and len(data["entries"]) == len(entries)
    members = read_pareto_set(js, space, cost)
    assert [a for a, _, _ in members] == [e.arch for e in entries]
    assert np.allclose([m for _, m, _ in members], [e.mflops for e in entries])
    assert np.allclose([v for _, _, v in members], [e.accuracy for e in entries])
    data["entries"][0].pop("accuracy")
    (tmp_path / "no_acc.json").write_text(json.dumps(data))
    with pytest.raises(SupernasError, match="entry 0 has no numeric 'accuracy'"):
        read_pareto_set(tmp_path / "no_acc.json", space, cost)
    assert cs.read_text().splitlines()[0] == "mflops,params,accuracy,top5,arch"
    table = format_table(entries)
    assert len(table.splitlines()) == len(entries) + 1
    png = plot_pareto(entries, tmp_path / "pareto.png", "test", extra_series=_entries(space, cost, 50, 1))
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SupernasError):
        write_pareto(tmp_path, [], space)


def test_offline_pareto_sets_best_above_worst():
    space = get_space("attentivenas")
    cost = CostModel(space, 1000)
    archs = space.sample(0, 200)
    pred = AccuracyPredictor(space, n_estimators=10).fit(archs, cost.mflops(archs) ** 0.5)
    best, worst = offline_pareto_sets(space, pred, cost, n=3000, bin_width=100, chunk=1000)
    assert [e.extra["bin"] for e in best] == [e.extra["bin"] for e in worst]
    assert all(b.accuracy >= w.accuracy for b, w in zip(best, worst))
    for e in best:  # the bins of the FLOPs prior: centred on multiples of the width
        assert (e.extra["bin"] - 0.5) * 100 <= e.mflops < (e.extra["bin"] + 0.5) * 100


# ---------------------------------------------------------------------- evolution
@pytest.fixture(scope="module")
def synthetic():
    space = get_space("attentivenas")
    cost = CostModel(space, 1000)
    x = space.encode(space.sample(0, 2000))
    lo, span = x.min(0), np.maximum(x.max(0) - x.min(0), 1)
    w = np.random.default_rng(3).normal(size=len(space.dims))
    calls = []

    def score(archs):
        calls.append(len(archs))
        return ((space.encode(archs) - lo) / span) @ w

    return space, cost, score, calls


def _search(synthetic, **kw):
    space, cost, score, _ = synthetic
    args = dict(population=32, mutations=16, crossovers=16, generations=6, seed=0)
    args.update(kw)
    return EvolutionSearch(space, cost, score, [350.0, 600.0], **args)


def test_evolution_beats_random_within_budget(synthetic):
    space, cost, score, calls = synthetic
    calls.clear()
    res = _search(synthetic).run()
    n_scored = sum(calls)
    assert n_scored == len(res.evaluated)  # each Arch scored once, across budgets too
    assert len({e.arch for e in res.evaluated}) == len(res.evaluated)
    for budget, best in zip(res.budgets, res.best):
        assert best.mflops <= budget
        assert best.accuracy == pytest.approx(float(score([best.arch])[0]))
        # The same number of random Archs within the budget does worse.
        idx = space.sample_indices(1, 20 * n_scored)
        idx = idx[cost.mflops_indices(idx) <= budget][: n_scored // 2]
        assert best.accuracy > np.max(score(space.from_indices(idx)))
    assert res.pareto()


def test_evolution_state_round_trip_resumes_identically(synthetic):
    full = _search(synthetic).run()
    part = _search(synthetic)
    seen = []
    for _ in range(9):  # stop inside the second budget
        part.step(lambda g, b, best: seen.append((g, b)))
    assert seen[0] == (0, 350.0) and seen[7] == (0, 600.0)
    state = json.loads(json.dumps(part.state_dict()))  # the state is JSON-able
    resumed = _search(synthetic, state=state).run()
    assert [e.arch for e in resumed.best] == [e.arch for e in full.best]
    assert [e.arch for e in resumed.evaluated] == [e.arch for e in full.evaluated]
    with pytest.raises(SupernasError, match="population"):
        _search(synthetic, population=16, state=state)


def test_evolution_rejects_bad_budgets(synthetic):
    space, cost, score, _ = synthetic
    with pytest.raises(SupernasError, match="below the smallest Arch"):
        EvolutionSearch(space, cost, score, [10.0])
    with pytest.raises(SupernasError, match="at least one"):
        EvolutionSearch(space, cost, score, [])
    # Just above the smallest Arch: hardly any random Arch fits, the search still works.
    floor = float(cost.mflops(space.smallest()))
    res = EvolutionSearch(space, cost, score, [floor + 1], population=8, mutations=4, crossovers=4,
                          generations=1).run()
    assert res.best[0].mflops <= floor + 1


# ---------------------------------------------------------------------- evaluator
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    data = build_datasets({"path": "digits", "image_size": 16, "search_size": 128})
    return SuperNet(TINY_NAME, data.num_classes), data


def test_evaluator_scores_caches_and_leaves_supernet_alone(tiny):
    net, data = tiny
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ev = Evaluator(net, data, bn_batches=2, batch_size=64, max_batches=1)
    assert ev.split == "search" and ev.fallback is None
    arch = net.space.sample(0)
    r = ev.evaluate(arch)
    assert 0 <= r["top1"] <= r["top5"] <= 100 and r["loss"] > 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    calls = []
    ev._measure = lambda a: calls.append(a) or {"top1": -1.0}
    assert ev.evaluate(arch) == r and not calls  # cache hit
    assert ev.evaluate_many([arch, net.space.smallest()])[1] == {"top1": -1.0}

    state = json.loads(json.dumps(ev.cache_state()))
    fresh = Evaluator(net, data, bn_batches=2, batch_size=64, max_batches=1)
    assert fresh.load_cache(state) == 2 and fresh.evaluate(arch) == r
    other = Evaluator(net, data, bn_batches=3, batch_size=64, max_batches=1)
    with pytest.raises(SupernasError, match="bn_batches"):
        other.load_cache(state)


def test_evaluator_is_deterministic_and_falls_back_to_val(tiny):
    net, data = tiny
    arch = net.space.largest()
    a = Evaluator(net, data, bn_batches=1, batch_size=32, max_batches=1).evaluate(arch)
    b = Evaluator(net, data, bn_batches=1, batch_size=32, max_batches=1).evaluate(arch)
    assert a == b
    no_search = build_datasets({"path": "digits", "image_size": 16})
    ev = Evaluator(net, no_search, bn_batches=1, batch_size=32, max_batches=1)
    assert ev.split == "val" and "search" in ev.fallback
    with pytest.raises(SupernasError):
        Evaluator(net, data, split="train")


class CountingView:
    """A dataset view that counts the images read from it."""

    def __init__(self, view):
        self.view, self.reads = view, 0

    def __len__(self):
        return len(self.view)

    def __getitem__(self, i):
        self.reads += 1
        return self.view[i]


def _counted(data):
    import dataclasses

    return dataclasses.replace(data, calibration=CountingView(data.calibration), search=CountingView(data.search))


@pytest.mark.parametrize("keep_bytes, reads_again", [(None, False), (0, True)])
def test_every_arch_gets_the_same_batches_read_once_when_they_fit(tiny, keep_bytes, reads_again):
    net, data = tiny
    archs = [net.space.smallest(), net.space.largest(), net.space.sample(rng=4)]
    plain = Evaluator(net, data, bn_batches=2, batch_size=32, max_batches=2, keep_bytes=0)
    expected = [plain.evaluate(a) for a in archs]
    counted = _counted(data)
    ev = Evaluator(net, counted, bn_batches=2, batch_size=32, max_batches=2, keep_bytes=keep_bytes)
    first = ev.evaluate(archs[0])
    calibration, search = counted.calibration.reads, counted.search.reads
    assert calibration >= 2 * 32 and search >= 2 * 32
    assert [first] + [ev.evaluate(a) for a in archs[1:]] == expected  # the same figures, kept or read again
    again = (counted.calibration.reads - calibration, counted.search.reads - search)
    # read again: each later Arch reads what the first did (2 batches of 32 of each split)
    assert again == ((2 * calibration, 2 * 2 * 32) if reads_again else (0, 0))


# ---------------------------------------------------------------------- distributed evaluation
def _dist_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        data = build_datasets({"path": "digits", "image_size": 16, "search_size": 64})
        net = SuperNet(TINY_NAME, data.num_classes)
        ev = Evaluator(net, data, bn_batches=1, batch_size=32, max_batches=1)
        measured = []
        ev._measure = lambda a: measured.append(a) or {"top1": float(len(a.to_json())), "rank": float(rank)}
        archs = net.space.sample(0, 5)
        res = ev.evaluate_many(archs + archs[:2])  # repeats are measured once
        json.dump({"results": res, "measured": len(measured)}, open(f"{out_dir}/{rank}.json", "w"))
        dist.barrier()  # torch 2.1's FileStore hangs in destroy when one rank has already left
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_evaluate_many_splits_over_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["results"] == r1["results"] and len(r0["results"]) == 7
    assert r0["measured"] + r1["measured"] == 5 and min(r0["measured"], r1["measured"]) >= 2
    assert {r["rank"] for r in r0["results"]} == {0.0, 1.0}


def test_best_per_budget_grows_with_the_budget():
    """Archs scored for a smaller budget compete in a larger one, so its best is never worse."""
    space = TINY
    cost = CostModel(space, 10)
    score = lambda archs: [float(zlib.crc32(a.to_json().encode()) % 1000) for a in archs]  # noqa: E731 arbitrary
    search = EvolutionSearch(space, cost, score, [1.0, 3.0], population=8, mutations=4, crossovers=4,
                             generations=2, seed=0)
    result = search.run()
    assert result.best[1].accuracy >= result.best[0].accuracy


def test_two_searches_of_a_run_have_plots_of_different_titles(tmp_path):
    from supernas.search.plots import search_title

    front = {"run": "/runs/r", "space": TINY_NAME, "cost": "mflops", "budgets": [1.0, 2.0],
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
