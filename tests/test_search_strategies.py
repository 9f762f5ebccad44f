"""Stage 2 that does not get stuck: the spread initial population, niches, edge moves,
random search within every budget the space can meet, the guided strategy, the settings that
reach the previous search, and one-line refusals of bad settings."""
import hashlib
import json

import numpy as np
import pytest

from supernas.cli import main
from supernas.errors import SupernasError
from supernas.sampling.constrained import fit_to_budget
from supernas.search import STRATEGIES, EvolutionSearch, GuidedSearch, RandomSearch, SearchResult, SearchSettings
from supernas.search.evolution import LEGACY
from supernas.search.operators import edge_moves, feasible_values, search_tables
from supernas.spaces import CostModel, get_space

from tiny_runs import FAST_SCORING, TINY

BIG = get_space("attentivenas")
BIG_COST = CostModel(BIG, 1000)
TINY_COST = CostModel(TINY, 10)
A1 = 279.24  # MFLOPs of the published A1: the smallest Arch at 224 px costs 274.5, at 192 px 203.4


def stuck_score(space, cost, seed=0):
    """The structure issue 22 describes: a higher resolution is worth more than anything the rest
    of a tight budget buys, and the rest adds up with diminishing returns (accuracy per Arch row)."""
    base = np.zeros((1, len(space.dims)), np.int64)
    floor = float(cost.mflops_indices(base)[0])
    res = space.column("resolution")
    w = np.zeros(len(space.dims))
    factor = np.random.default_rng(seed).uniform(0.3, 1.7, len(space.dims))
    for d in range(len(space.dims)):
        if d != res and space.cardinalities[d] > 1:
            row = base.copy()
            row[0, d] = space.cardinalities[d] - 1
            grown = float(cost.mflops_indices(space.canonicalize_indices(row))[0]) - floor
            w[d] = 0.0028 * grown / (space.cardinalities[d] - 1) * factor[d]
    bonus = np.array([0.0, 1.5, 2.5, 3.0])[: len(space.dims[res])]
    calls = []

    def score(archs):
        calls.append(len(archs))
        idx = space.to_indices(archs)
        return 70 + bonus[idx[:, res]] + 10 * (1 - np.exp(-(idx @ w) / 3))

    return score, calls


def _mflops(result):
    return np.array([e.mflops for e in result.evaluated])


# ---------------------------------------------------------------------- initial population
def test_spread_initial_population_covers_the_budget_range():
    score, _ = stuck_score(BIG, BIG_COST)
    budget, floor = 709.0, float(BIG_COST.mflops(BIG.smallest()))
    kw = dict(population=256, generations=0, seed=0)
    spread = EvolutionSearch(BIG, BIG_COST, score, [budget], **kw).run()
    uniform = EvolutionSearch(BIG, BIG_COST, score, [budget], **kw, init="uniform").run()
    for r in (spread, uniform):
        assert len(r.evaluated) == 256 and _mflops(r).max() <= budget
    lower = lambda r: np.mean(_mflops(r) < (floor + budget) / 2)  # noqa: E731
    # uniform draws under the budget pile at its upper edge; the spread fills the range
    assert lower(spread) > 0.3 > lower(uniform)
    resolutions = {e.arch["resolution"] for e in spread.evaluated}
    assert resolutions == {192, 224, 256, 288}  # every resolution the budget allows, from the first population


def test_spread_initial_population_at_a_tight_budget_holds_the_higher_resolution():
    score, _ = stuck_score(BIG, BIG_COST)
    r = EvolutionSearch(BIG, BIG_COST, score, [A1], population=64, generations=0, seed=0).run()
    assert {e.arch["resolution"] for e in r.evaluated} == {192, 224}
    assert all(e.mflops <= A1 for e in r.evaluated)


# ---------------------------------------------------------------------- niches
def test_niches_keep_every_resolution_the_budget_allows():
    # an objective where 192 px wins everywhere: without niches the population loses the rest
    col = BIG.column("resolution")
    score = lambda archs: -100.0 * BIG.to_indices(archs)[:, col] + BIG_COST.mflops(archs) / 100  # noqa: E731
    kw = dict(population=32, mutations=16, crossovers=16, generations=3, seed=0)
    kept = EvolutionSearch(BIG, BIG_COST, score, [500.0], **kw)
    kept.run()
    lost = EvolutionSearch(BIG, BIG_COST, score, [500.0], **kw, niche="none")
    lost.run()
    allowed = set(feasible_values(BIG, BIG_COST.mflops_indices, 500.0, col).tolist())
    assert allowed == {0, 1, 2, 3}
    assert set(kept.population_rows(0)[:, col].tolist()) == allowed
    assert set(lost.population_rows(0)[:, col].tolist()) == {0}
    assert kept.population_rows(0)[0, col] == 0  # the best still comes first


# ---------------------------------------------------------------------- edge moves
def test_edge_moves_and_shrinking_stay_within_the_budget():
    rng = np.random.default_rng(0)
    tables = search_tables(BIG, BIG_COST)
    assert tables[0].bin_width == 25.0
    parents = BIG.sample_indices(rng, 4000)
    parents = parents[BIG_COST.mflops_indices(parents) <= 400][:200]
    kids = edge_moves(BIG, parents, BIG_COST.mflops_indices, 400.0, rng)
    assert len(kids) > 100 and BIG_COST.mflops_indices(kids).max() <= 400.0
    col = BIG.column("resolution")
    assert (kids[:, col] > parents[:, col].min()).any()
    # a 224 px Arch can come out of 192 px parents at A1's budget, the rest shrunk to fit
    low = np.zeros((400, len(BIG.dims)), np.int64)
    low[:, BIG.column("mb6.depth")] = 2
    kids = edge_moves(BIG, low, BIG_COST.mflops_indices, A1, rng)
    assert BIG_COST.mflops_indices(kids).max() <= A1 and (kids[:, col] == 1).any()
    # shrinking: every row fits, frozen columns untouched
    big = BIG.sample_indices(rng, 100)
    frozen = np.zeros(len(BIG.dims), bool)
    frozen[col] = True
    big[:, col] = 1
    fit, ok = fit_to_budget(BIG, big, BIG_COST.mflops_indices, A1, rng, frozen)
    assert ok.all() and BIG_COST.mflops_indices(fit).max() <= A1 and (fit[:, col] == 1).all()
    fit, ok = fit_to_budget(BIG, np.full((3, len(BIG.dims)), 0) + np.eye(1, len(BIG.dims), col, dtype=int) * 3,
                            BIG_COST.mflops_indices, A1, rng, frozen)
    assert not ok.any()  # 288 px kept, nothing else to shrink: it cannot fit


# ---------------------------------------------------------------------- random search
def test_random_search_meets_a_budget_near_the_smallest_arch():
    score, _ = stuck_score(BIG, BIG_COST)
    r = RandomSearch(BIG, BIG_COST, score, [210.0, A1], per_budget=64, seed=0).run()
    assert all(e is not None for e in r.best) and not r.missing()
    assert r.best[0].mflops <= 210.0 and r.best[1].mflops <= A1
    assert r.scored == len(r.evaluated) > 64 and max(e.mflops for e in r.evaluated) <= A1
    # a budget holding one Arch (the smallest) gets it
    floor = float(BIG_COST.mflops(BIG.smallest()))
    one = RandomSearch(BIG, BIG_COST, score, [floor], per_budget=8, seed=0).run()
    assert [e.arch for e in one.evaluated] == [BIG.smallest()]


@pytest.mark.parametrize("strategy", ["evolution", "random", "guided"])
def test_an_unmeetable_budget_is_one_line(strategy):
    score, _ = stuck_score(TINY, TINY_COST)
    with pytest.raises(SupernasError, match="below the smallest Arch") as e:
        STRATEGIES.get(strategy)(TINY, TINY_COST, score, [0.1, 2.0], SearchSettings(8, 4, 4, 1))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("strategy", ["evolution", "random", "guided"])
def test_a_score_function_that_returns_too_few_scores_is_one_line(strategy):
    search = STRATEGIES.get(strategy)(TINY, TINY_COST, lambda archs: [0.5] * (len(archs) - 1), [1.0],
                                      SearchSettings(8, 2, 4, 1))
    with pytest.raises(SupernasError, match=r"score_fn returned \d+ scores for \d+ Archs; it must return one"):
        search.run()


def test_a_result_explains_a_budget_it_has_no_arch_for():
    r = SearchResult([1.0, 2.0], [None, None], [])
    assert len(r.missing()) == 2 and "not searched yet" in r.missing()[0]


# ---------------------------------------------------------------------- guided search
def test_guided_search_counts_its_calls_and_beats_random_search():
    score, calls = stuck_score(BIG, BIG_COST)
    budgets, n = [A1, 443.54], 48
    settings = SearchSettings(population=64, mutations=16, crossovers=16, generations=4, seed=0, calls=n, batch=12)
    calls.clear()
    guided = STRATEGIES.get("guided")(BIG, BIG_COST, score, budgets, settings)
    assert isinstance(guided, GuidedSearch)
    r = guided.run()
    assert sum(calls) == r.scored == len(r.evaluated) <= n * len(budgets)  # each Arch scored once
    assert r.ranked > 2 * r.scored  # the surrogate rated more than the scorer saw
    for b, e in zip(budgets, r.best):  # reported accuracies are the real scorer's
        assert e.mflops <= b and e.accuracy == pytest.approx(float(score([e.arch])[0]))
    rand = RandomSearch(BIG, BIG_COST, score, budgets, per_budget=n, seed=0).run()
    for g, x in zip(r.best, rand.best):
        assert g.accuracy >= x.accuracy
    assert r.best[0].arch["resolution"] == 224  # out of the trap


def test_guided_search_resumes_exactly():
    score, _ = stuck_score(TINY, TINY_COST)
    settings = SearchSettings(population=16, mutations=8, crossovers=8, generations=2, seed=1, calls=12, batch=4)
    full = STRATEGIES.get("guided")(TINY, TINY_COST, score, [1.0, 2.0], settings).run()
    part = STRATEGIES.get("guided")(TINY, TINY_COST, score, [1.0, 2.0], settings)
    for _ in range(3):
        part.step()
    state = json.loads(json.dumps(part.state_dict()))
    resumed = STRATEGIES.get("guided")(TINY, TINY_COST, score, [1.0, 2.0], settings, state=state).run()
    assert [e.arch for e in resumed.evaluated] == [e.arch for e in full.evaluated]
    assert (resumed.scored, resumed.ranked) == (full.scored, full.ranked)
    with pytest.raises(SupernasError, match="calls"):
        STRATEGIES.get("guided")(TINY, TINY_COST, score, [1.0, 2.0],
                                 SearchSettings(16, 8, 8, 2, seed=1, calls=13, batch=4), state=state)


# ---------------------------------------------------------------------- the previous behaviour
def _fingerprint(result):
    return hashlib.sha1("|".join(e.arch.to_json() for e in result.evaluated).encode()).hexdigest()[:16]


def test_settings_reach_the_previous_evolution_draw_for_draw():
    w = np.random.default_rng(1).normal(size=len(TINY.dims))
    score = lambda archs: TINY.encode(archs) @ w  # noqa: E731
    kw = dict(population=16, mutations=8, crossovers=8, generations=3, seed=5)
    # recorded from the evolution before issue 22 (commit a5ad15f) with these settings
    old = EvolutionSearch(TINY, TINY_COST, score, [1.0, 2.5], **kw, **LEGACY).run()
    assert (len(old.evaluated), _fingerprint(old)) == (100, "ce959291f0a4938c")
    assert [round(e.accuracy, 6) for e in old.best] == [-101.970979, -97.410223]
    settings = SearchSettings(16, 8, 8, 3, seed=5).with_options(
        ["search.init=uniform", "search.niche=none", "search.edge=0", "search.fresh=0"])
    via = STRATEGIES.get("evolution")(TINY, TINY_COST, score, [1.0, 2.5], settings).run()
    assert _fingerprint(via) == "ce959291f0a4938c"
    reference = STRATEGIES.get("evolution")(TINY, TINY_COST, score, [1.0, 2.5],
                                            settings.with_options(["search.parents=16"]))
    assert reference.parents == reference.population == 16


# ---------------------------------------------------------------------- bad settings
@pytest.mark.parametrize("item, match", [
    ("search.parents=0", "search.parents"), ("search.parents=abc", "search.parents"),
    ("search.parents=2.5", "search.parents"), ("search.init=grid", "search.init"),
    ("search.niche_share=1.5", "search.niche_share"), ("search.edge=-0.1", "search.edge"),
    ("search.fresh=nan", "search.fresh"), ("search.edge=", "search.edge"), ("search.calls=1", "search.calls"),
    ("search.batch=0", "search.batch"), ("search.niche=", "search.niche"),
    ("search.parent=3", "did you mean search.parents"), ("search.edge", "search.KEY=VALUE"),
    ("edge=0.5", "search.KEY=VALUE"), ("search.niche=yes", "search.niche=True is not allowed: a string"),
    ("search.niche=[a]", "search.niche"), ("search.edge=1e400", "search.edge"), ("search.calls=~", "search.calls"),
])
def test_bad_search_settings_are_one_line(item, match):
    with pytest.raises(SupernasError, match=match) as e:
        SearchSettings().with_options([item])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw, match", [
    (dict(niche="mb9.width"), "niche 'mb9.width' is not a dimension"), (dict(init="grid"), "init"),
    (dict(edge=2), "edge"), (dict(fresh=True), "fresh"), (dict(niche_share="a"), "niche_share"),
    (dict(parents=100), "parents"), (dict(niche=3), "niche"),
])
def test_bad_evolution_arguments_are_one_line(kw, match):
    score, _ = stuck_score(TINY, TINY_COST)
    with pytest.raises(SupernasError, match=match) as e:
        EvolutionSearch(TINY, TINY_COST, score, [2.0], population=16, **kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw, match", [(dict(calls=1), "calls"), (dict(calls=8, batch=0), "batch"),
                                       (dict(calls=8, evolution={"niche": "x"}), "niche 'x'")])
def test_bad_guided_arguments_are_one_line(kw, match):
    score, _ = stuck_score(TINY, TINY_COST)
    with pytest.raises(SupernasError, match=match) as e:
        GuidedSearch(TINY, TINY_COST, score, [2.0], **kw)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------- the command line
def test_search_command_takes_guided_and_search_settings(run_copy, tmp_path, capsys):
    out = tmp_path / "guided"
    tiny = ["--population", "4", "--mutations", "2", "--crossovers", "2", "--generations", "1", *FAST_SCORING]
    assert main(["search", str(run_copy), "--budgets", "2", "--strategy", "guided", *tiny, "--out", str(out),
                 "search.calls=3", "search.batch=1", "search.niche=none"]) == 0
    front = json.loads((out / "pareto.json").read_text())
    assert front["search"]["strategy"] == "guided" and front["search"]["options"][0] == "search.calls=3"
    scored = json.loads((out / "evaluated.json").read_text())["entries"]
    assert front["search"]["scored"] == len(scored) == 3 and front["search"]["ranked"] > 0
    capsys.readouterr()
    assert main(["search", str(run_copy), "--budgets", "2", *tiny, "--out", str(tmp_path / "x"),
                 "search.edge=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "search.edge=2 is out of range: a number in [0, 1]" in err and len(err.splitlines()) == 1
    assert main(["search", str(run_copy), "--budgets", "0.1", "--strategy", "random", *tiny,
                 "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip()
    assert "below the smallest Arch" in err and len(err.splitlines()) == 1
