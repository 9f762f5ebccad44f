import json
import pickle
import threading

import numpy as np
import pytest

from supernas import SupernasError, get_space
from supernas.sampling import (AttentiveSampler, FlopsConstrainedSampler, FlopsPrior, LossScorer, ParetoSetSampler,
                               PredictorScorer, Prefetcher, UniformSampler, estimate_flops_tables)
from supernas.spaces import CostModel

N_PRIOR = 100_000  # tests use a tenth of the paper's pool, for speed


@pytest.fixture(scope="module")
def space():
    return get_space("attentivenas")


@pytest.fixture(scope="module")
def cost(space):
    return CostModel(space, 1000)


@pytest.fixture(scope="module")
def tables(space, cost):
    return estimate_flops_tables(space, cost, n=N_PRIOR, seed=0)


def flops_sampler(space, cost, tables, seed=0, **kw):
    return FlopsConstrainedSampler(space, cost, seed, tables=tables, **kw)


def tail_bin(prior, share=1e-3):
    """The lowest bin above the mode whose prior is below `share` (a hard target for naive rejection)."""
    bins = prior.bins
    p = np.array([prior.prob(b) for b in bins])
    return int(next(b for b, q in zip(bins, p) if b > bins[p.argmax()] and q < share))


# ------------------------------------------------------------------ uniform
def test_uniform_covers_every_choice_and_repeats(space):
    archs = UniformSampler(space, 1).sample_many(3000)
    for d in space.dims:
        assert {a[d.name] for a in archs} == set(d.choices), d.name
    s1, s2 = UniformSampler(space, 7), UniformSampler(space, 7)
    assert [s1.sample() for _ in range(20)] == [s2.sample() for _ in range(20)]
    one_by_one = UniformSampler(space, 3)
    assert UniformSampler(space, 3).sample_many(5) == [one_by_one.sample() for _ in range(5)]


# ------------------------------------------------------------------ prior and proposal
def test_prior_sums_to_one_and_matches_the_cost_model_histogram(space, cost, tables):
    prior, _ = tables
    assert prior.n == N_PRIOR and np.isclose(prior.probs.sum(), 1.0)
    mf = cost.mflops_indices(space.sample_indices(np.random.default_rng(0), N_PRIOR))  # same pool, one chunk
    edges = (np.arange(prior.lo, prior.lo + len(prior.counts) + 1) - 0.5) * prior.bin_width
    hist, _ = np.histogram(mf, bins=edges)
    assert np.array_equal(hist, prior.counts)
    assert prior.bins.min() == prior.lo and np.all(prior.counts[prior.bins - prior.lo] > 0)


def test_prior_targets_follow_the_prior(tables):
    prior, _ = tables
    rng = np.random.default_rng(5)
    draws = np.array([prior.sample_target(rng) for _ in range(20_000)])
    freq = np.bincount(draws - prior.lo, minlength=len(prior.counts)) / len(draws)
    assert np.abs(freq - prior.probs).max() < 0.01
    assert set(draws) <= set(prior.bins.tolist())


def test_proposal_is_smoothed_and_normalised(space, tables):
    prior, table = tables
    for b in (prior.bins.min(), prior.bins.max(), int(np.median(prior.bins))):
        p = table.probs(b)
        assert np.allclose(p.sum(1), 1.0)
        valid = np.arange(p.shape[1])[None] < space.cardinalities[:, None]
        assert np.all(p[valid] > 0) and np.all(p[~valid] == 0)


def test_proposal_ignores_blocks_switched_off_by_depth():
    toy = get_space({"name": "toy-blocks", "resolution": 32, "stem": {"width": 8, "stride": 1},
                     "stages": [{"name": "s1", "width": [8, 16], "depth": [1, 2, 3], "kernel": [3, 5],
                                 "expand": 1, "stride": 1, "per_block": True}],
                     "head": {"kind": "conv", "width": 32}})
    prior, table = estimate_flops_tables(toy, CostModel(toy, 10), n=3000, seed=1, bin_width=0.01)
    idx = toy.sample_indices(np.random.default_rng(1), 3000)
    depth = np.asarray(toy.dims[toy.column("s1.depth")].choices)[idx[:, toy.column("s1.depth")]]
    for block in range(3):
        col = toy.column(f"s1.{block}.width")
        assert table.counts[:, col].sum() == (depth > block).sum()


def test_tables_cache_to_npz(space, cost, tmp_path):
    a = estimate_flops_tables(space, cost, n=2000, seed=3, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and "attentivenas_1000c_2000n_seed3" in files[0].name
    b = estimate_flops_tables(space, cost, n=2000, seed=3, cache_dir=tmp_path)
    assert np.array_equal(a[0].counts, b[0].counts) and np.array_equal(a[1].counts, b[1].counts)
    files[0].write_bytes(b"not an npz")  # a torn or foreign file is recomputed, not trusted
    c = estimate_flops_tables(space, cost, n=2000, seed=3, cache_dir=tmp_path)
    assert np.array_equal(a[0].counts, c[0].counts)
    other = CostModel(space, 10)  # another number of classes: another file
    estimate_flops_tables(space, other, n=2000, seed=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2


# ------------------------------------------------------------------ FLOPs-constrained sampling
def test_accepted_archs_fall_in_the_requested_bin(space, cost, tables):
    prior, _ = tables
    s = flops_sampler(space, cost, tables)
    mode = prior.lo + int(prior.counts.argmax())
    for b in (prior.bins.min(), prior.bins.max(), tail_bin(prior), mode):
        for arch in s.sample_at(b, 3):
            lo, hi = prior.range(b)
            assert lo <= cost.mflops(arch) < hi
    for _ in range(50):  # prior-drawn targets too: the accepted FLOPs are in the stats' bins
        a = s.sample()
        assert int(prior.bin_of(cost.mflops(a))) in s.stats.per_bin
    assert s.stats.accepted == 4 * 3 + 50


@pytest.mark.parametrize("name", ["fpnas-l0", "fpnas-l2"])
def test_flops_sampler_on_per_block_spaces(name):
    sp = get_space(name)
    cm = CostModel(sp, 1000)
    s = FlopsConstrainedSampler(sp, cm, 0, n_prior=5000)
    for _ in range(10):
        b = s.sample_target()
        a = s.sample(target_bin=b)
        assert int(s.prior.bin_of(cm.mflops(a))) == b
    assert s.stats.mean_trials < 100


def test_flops_sampler_is_deterministic(space, cost, tables):
    a = flops_sampler(space, cost, tables, seed=11)
    b = flops_sampler(space, cost, tables, seed=11)
    assert [a.sample() for _ in range(30)] == [b.sample() for _ in range(30)]
    assert a.stats.to_dict() == b.stats.to_dict()
    c = flops_sampler(space, cost, tables, seed=12)
    assert [c.sample() for _ in range(5)] != [b.sample() for _ in range(5)]


def test_proposal_needs_far_fewer_trials_than_naive(space, cost, tables):
    prop = flops_sampler(space, cost, tables, seed=1)
    naive = flops_sampler(space, cost, tables, seed=1, proposal="uniform")
    for _ in range(300):
        prop.sample()
        naive.sample()
    assert prop.stats.mean_trials < 25  # the paper reports ~12 with its space and pool
    assert naive.stats.mean_trials > 2 * prop.stats.mean_trials
    b = tail_bin(tables[0])  # at rare FLOPs, naive rejection needs ~1/p(bin) trials
    prop.sample_at(b, 10)
    naive.sample_at(b, 10)
    assert prop.stats.per_bin[b][1] * 10 < naive.stats.per_bin[b][1]


def test_state_dict_round_trip_reproduces_the_next_samples(space, cost, tables):
    s = flops_sampler(space, cost, tables, seed=4)
    [s.sample() for _ in range(5)]
    state = pickle.loads(pickle.dumps(s.state_dict()))
    json.dumps(state)  # plain data: fits any checkpoint format
    want = [s.sample() for _ in range(5)]
    t = flops_sampler(space, cost, tables, seed=999)
    t.load_state_dict(state)
    assert [t.sample() for _ in range(5)] == want
    assert t.stats.to_dict() == s.stats.to_dict()

    u = UniformSampler(space, 1)
    st = u.state_dict()
    want = [u.sample() for _ in range(3)]
    u2 = UniformSampler(space, 2)
    u2.load_state_dict(st)
    assert [u2.sample() for _ in range(3)] == want


# ------------------------------------------------------------------ attentive
class FlopsScorer:
    """Fake accuracy: the candidate's MFLOPs (distinct within a bin, so the pick is unambiguous)."""

    higher_is_better = True

    def __init__(self, cost):
        self.cost = cost

    def score(self, archs):
        return self.cost.mflops(archs)


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_bestup_and_worstup_pick_the_extremes(space, cost, tables, mode):
    att = AttentiveSampler(flops_sampler(space, cost, tables, seed=2), FlopsScorer(cost), k=5, mode=mode)
    loss = AttentiveSampler(flops_sampler(space, cost, tables, seed=2), lambda a: cost.mflops(a), k=5, mode=mode)
    for _ in range(10):
        a, b = att.sample(), loss.sample()
        scores = att.last_scores
        pick = scores.max() if mode == "best" else scores.min()
        assert cost.mflops(a) == pick
        # the same candidates scored as losses: 'best' is now the lowest
        assert cost.mflops(b) == (scores.min() if mode == "best" else scores.max())


def test_candidates_of_one_draw_share_the_target_bin(space, cost, tables):
    prior, _ = tables
    att = AttentiveSampler(flops_sampler(space, cost, tables, seed=3), FlopsScorer(cost), k=4)
    for _ in range(20):
        c = att.propose()
        assert len(c.archs) == 4 and len(set(c.archs)) > 1
        assert set(prior.bin_of(cost.mflops(c.archs)).tolist()) == {c.target_bin}
        assert np.allclose(c.mflops, cost.mflops(c.archs))


def test_predictor_scorer_and_default_k(space, cost, tables):
    class SumPredictor:
        def predict(self, X):
            return X.sum(axis=1)

    base = flops_sampler(space, cost, tables, seed=6)
    att = AttentiveSampler(base, PredictorScorer(SumPredictor(), space), k=8)
    arch = att.sample()
    assert space.encode(arch).sum() == space.encode(att.last.archs).sum(axis=1).max()
    assert AttentiveSampler(base, PredictorScorer(SumPredictor(), space)).k == 50
    assert AttentiveSampler(base, LossScorer(lambda a: 0.0)).k == 3
    assert AttentiveSampler(base, lambda a: 0.0).k == 3


def test_attentive_state_round_trip(space, cost, tables):
    att = AttentiveSampler(flops_sampler(space, cost, tables, seed=8), FlopsScorer(cost), k=3, mode="worst")
    att.sample()
    state = att.state_dict()
    want = [att.sample() for _ in range(4)]
    other = AttentiveSampler(flops_sampler(space, cost, tables, seed=0), FlopsScorer(cost), k=3, mode="worst")
    other.load_state_dict(state)
    assert [other.sample() for _ in range(4)] == want


def test_pareto_set_sampler(space, cost, tables):
    prior, _ = tables
    archs = UniformSampler(space, 0).sample_many(40)
    members = [(a, m, float(i)) for i, (a, m) in enumerate(zip(archs, cost.mflops(archs)))]
    s = ParetoSetSampler(space, members, prior, rng=1)
    drawn = [s.sample() for _ in range(200)]
    assert set(drawn) <= set(archs)
    state = s.state_dict()
    t = ParetoSetSampler(space, members, prior, rng=99)
    t.load_state_dict(state)
    assert [t.sample() for _ in range(5)] == [s.sample() for _ in range(5)]
    with pytest.raises(SupernasError, match="mode='worst'"):
        ParetoSetSampler(space, members, prior, rng=99, mode="worst").load_state_dict(state)
    with pytest.raises(SupernasError, match="FLOPs prior"):
        ParetoSetSampler(space, members, None)
    with pytest.raises(SupernasError, match="BestUp"):
        ParetoSetSampler(space, members, prior, mode="top")
    with pytest.raises(SupernasError, match="triples"):
        ParetoSetSampler(space, [(a, m) for a, m, _ in members], prior)


def test_pareto_set_sampler_keeps_the_best_or_worst_member_of_the_bin(space, cost, tables):
    prior, _ = tables
    b = int(prior.bins[np.argmax(prior.probs[prior.bins - prior.lo])])  # the likeliest bin
    inside = FlopsConstrainedSampler(space, cost, 0, tables=tables).sample_at(b, 3)
    members = [(a, m, acc) for a, m, acc in zip(inside, cost.mflops(inside), [70.0, 75.0, 72.0])]
    only_b = FlopsPrior(prior.bin_width, b, np.array([1]))  # every target is bin b
    for mode, want in (("best", inside[1]), ("worst", inside[0])):
        s = ParetoSetSampler(space, members, only_b, rng=3, mode=mode)
        assert {s.sample() for _ in range(50)} == {want}


def test_pareto_sampler_follows_the_flops_prior(space, cost, tables, tmp_path):
    """Eqn (6)/(7): over 10,000 draws of stage 1's offline BestUp sampler (an offline set written as
    `supernas predictor offline-sets` writes it, read back by the trainer), the FLOPs bins of the
    drawn Archs follow the space's FLOPs prior, not the set's one-member-per-bin uniformity."""
    from scipy.stats import chisquare

    from supernas.search import offline_pareto_sets, write_pareto
    from supernas.config.schema import Sampler
    from supernas.sampling import SamplerContext, build_sampler

    class SumPredictor:  # any accuracy model will do: the set keeps one Arch per bin
        def predict(self, x):
            return x.sum(axis=1)

    prior, _ = tables
    best, _ = offline_pareto_sets(space, SumPredictor(), cost, n=N_PRIOR, bin_width=prior.bin_width, seed=0,
                                  chunk=N_PRIOR)  # the prior's own pool: every bin of the prior is covered
    path, _ = write_pareto(tmp_path, best, space, name="pareto_best")
    cfg = Sampler(kind="pareto", pareto_set=str(path), mode="best", n_prior=N_PRIOR, bin_width=prior.bin_width)
    sampler = build_sampler(cfg, SamplerContext(space, cost, seed=0))
    assert np.array_equal(sampler.prior.counts, prior.counts)
    bins = prior.bin_of(cost.mflops([sampler.sample() for _ in range(10_000)]))
    observed = np.bincount(bins - prior.lo, minlength=len(prior.counts))
    assert len(observed) == len(prior.counts)  # no draw outside the prior's bins
    tv = 0.5 * np.abs(observed / observed.sum() - prior.probs).sum()
    uniform_tv = 0.5 * np.abs(prior.counts.astype(bool) / prior.counts.astype(bool).sum() - prior.probs).sum()
    assert tv < 0.04 < 0.3 < uniform_tv  # drawing members uniformly would miss by far more
    big = prior.probs * 10_000 >= 5  # chi-square on bins expecting >= 5 draws, the rest pooled
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(prior.probs[big], prior.probs[~big].sum()) * 10_000
    assert chisquare(obs, exp).pvalue > 1e-3


# ------------------------------------------------------------------ prefetcher
def test_prefetcher_keeps_the_direct_order(space, cost, tables):
    direct = flops_sampler(space, cost, tables, seed=5)
    want = [direct.sample() for _ in range(20)]
    with Prefetcher.from_sampler(flops_sampler(space, cost, tables, seed=5), depth=4) as pf:
        assert [next(pf) for _ in range(20)] == want


def test_prefetcher_checkpoint_is_the_state_before_unconsumed_items(space, cost, tables):
    direct = flops_sampler(space, cost, tables, seed=9)
    want = [direct.sample() for _ in range(12)]
    sampler = flops_sampler(space, cost, tables, seed=9)
    pf = Prefetcher.from_sampler(sampler, depth=5)
    assert pf.state_dict() == flops_sampler(space, cost, tables, seed=9).state_dict()  # nothing consumed yet
    got = [pf.get() for _ in range(7)]
    state = pf.state_dict()  # the thread has run ahead; the checkpoint must not
    pf.close()
    assert got == want[:7]
    resumed = flops_sampler(space, cost, tables, seed=0)
    resumed.load_state_dict(state)
    assert resumed.stats.accepted == 7  # the stats rewind with the generator
    assert [resumed.sample() for _ in range(5)] == want[7:]


def test_prefetcher_reraises_errors_and_closes():
    calls = iter(range(3))

    def fn():
        return next(calls)  # StopIteration after three items

    pf = Prefetcher(fn, depth=2)
    assert [pf.get(), pf.get(), pf.get()] == [0, 1, 2]
    with pytest.raises(StopIteration):
        pf.get(timeout=5)
    with pytest.raises(StopIteration):  # and again: the error sticks
        pf.get(timeout=5)
    with pytest.raises(SupernasError, match="state_fn"):
        pf.state_dict()
    pf.close()

    pf = Prefetcher(lambda: 1, depth=1)
    pf.get()
    pf.close()
    assert pf._thread not in threading.enumerate()
    with pytest.raises(SupernasError, match="closed"):
        pf.get()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("k", [0, -1, 2.5, "3", True])
def test_bad_k(space, cost, tables, k):
    with pytest.raises(SupernasError, match="k "):
        AttentiveSampler(flops_sampler(space, cost, tables), FlopsScorer(cost), k=k)


def test_bad_mode_scorer_and_settings(space, cost, tables):
    base = flops_sampler(space, cost, tables)
    with pytest.raises(SupernasError, match="mode"):
        AttentiveSampler(base, FlopsScorer(cost), mode="median")
    with pytest.raises(SupernasError, match="scorer"):
        AttentiveSampler(base, 42)
    with pytest.raises(SupernasError, match="predict"):
        PredictorScorer(object(), space)
    with pytest.raises(SupernasError, match="proposal"):
        flops_sampler(space, cost, tables, proposal="gibbs")
    with pytest.raises(SupernasError, match="bin_width"):
        estimate_flops_tables(space, cost, n=10, bin_width=0)
    with pytest.raises(SupernasError, match="n_prior"):
        estimate_flops_tables(space, cost, n=0)
    with pytest.raises(SupernasError, match="non-finite"):
        AttentiveSampler(base, lambda a: float("nan")).sample()
    bad = type("Bad", (), {"higher_is_better": True, "score": lambda self, archs: np.zeros(1)})()
    with pytest.raises(SupernasError, match="one score per Arch"):
        AttentiveSampler(base, bad, k=3).sample()


def test_unreachable_bin_and_exhausted_trials(space, cost, tables):
    prior, _ = tables
    s = flops_sampler(space, cost, tables)
    with pytest.raises(SupernasError, match="unreachable"):
        s.sample(target_bin=prior.bins.max() + 40)
    with pytest.raises(SupernasError, match="unreachable"):
        s.sample(target_bin=0)
    with pytest.raises(SupernasError, match="integer bin id"):
        s.sample(target_bin=300.0)
    naive = flops_sampler(space, cost, tables, proposal="uniform", max_trials=20)
    with pytest.raises(SupernasError, match="raise max_trials"):
        naive.sample(target_bin=tail_bin(prior))


def test_loading_a_foreign_state_fails_clearly(space, cost, tables):
    s = flops_sampler(space, cost, tables)
    with pytest.raises(SupernasError, match="'uniform' sampler"):
        s.load_state_dict(UniformSampler(space, 0).state_dict())
    with pytest.raises(SupernasError, match="proposal"):
        s.load_state_dict(flops_sampler(space, cost, tables, proposal="uniform").state_dict())
    with pytest.raises(SupernasError, match="prior_seed"):  # same settings, another pool of random Archs
        s.load_state_dict(FlopsConstrainedSampler(space, cost, 0, n_prior=N_PRIOR, prior_seed=1).state_dict())
    with pytest.raises(SupernasError, match="state_dict"):
        s.load_state_dict([1, 2])
