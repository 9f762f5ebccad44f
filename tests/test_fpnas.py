"""FP-NAS distributions, adaptive sampling and the Section F estimator."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from supernas import CostModel, SupernasError, get_space
from supernas.fpnas import (FactorizedDistribution, JointDistribution, adaptive_num_samples, arch_loss,
                            arch_weights, beta_for_target, loglik_from_losses, parameter_counts)


@pytest.fixture(scope="module")
def l0():
    return get_space("fpnas-l0")


def _randomize(dist, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in dist.logits:
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return dist


def _flat_block(dist, idx, g):
    """Flat index of group g computed independently (numpy C-order ravel)."""
    cols = list(dist.group_columns[g])
    card = dist.space.cardinalities[cols]
    return np.ravel_multi_index(tuple(idx[:, cols].numpy().T), tuple(card))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------- distributions
def test_factorized_sampling_frequencies_match_probs(l0):
    f = _randomize(FactorizedDistribution(l0))
    idx = f.sample(20000, _gen())
    assert idx.shape == (20000, len(l0.dims)) and idx.dtype == torch.int64
    for name in ["s1.0.width", "s3.1.expand", "s7.0.attention"]:
        col = l0.column(name)
        freq = torch.bincount(idx[:, col], minlength=int(l0.cardinalities[col])).double() / 20000
        assert torch.allclose(freq, f.probs_of_dim(name).double(), atol=0.015)


def test_joint_sampling_frequencies_match_probs(l0):
    j = _randomize(JointDistribution(l0), scale=2.0)
    idx = j.sample(20000, _gen(1))
    flat = _flat_block(j, idx, 0)
    probs = F.softmax(j.logits[0].detach(), 0).double()
    freq = torch.bincount(torch.from_numpy(flat), minlength=probs.numel()).double() / 20000
    assert (freq - probs).abs().max() < 0.015
    name = "s2.1.kernel"
    col = l0.column(name)
    freq = torch.bincount(idx[:, col], minlength=2).double() / 20000
    assert torch.allclose(freq, j.probs_of_dim(name).double(), atol=0.015)


def test_sampling_is_deterministic_with_a_generator(l0):
    f = _randomize(FactorizedDistribution(l0))
    assert torch.equal(f.sample(7, _gen(3)), f.sample(7, _gen(3)))
    archs = f.archs(f.sample(2, _gen(3)))
    assert len(archs) == 2 and l0.validate(archs[0]) == archs[0]


def test_log_prob_matches_manual(l0):
    f = _randomize(FactorizedDistribution(l0))
    j = _randomize(JointDistribution(l0), seed=1)
    idx = torch.from_numpy(l0.sample_indices(0, 9))
    manual_f = sum(F.log_softmax(f.logits[c], 0)[idx[:, c]] for c in range(len(l0.dims)))
    assert torch.allclose(f.log_prob(idx), manual_f, atol=1e-4)
    manual_j = sum(F.log_softmax(j.logits[g], 0)[torch.from_numpy(_flat_block(j, idx, g))]
                   for g in range(len(j.group_sizes)))
    assert torch.allclose(j.log_prob(idx), manual_j, atol=1e-4)
    assert j.log_prob(idx.numpy()).requires_grad  # numpy input and differentiable


def test_entropy_uniform_at_init_and_monte_carlo(l0):
    for cls in (FactorizedDistribution, JointDistribution):
        d = cls(l0)
        assert d.entropy().item() == pytest.approx(math.log(l0.size), rel=1e-5)
        assert d.max_entropy() == pytest.approx(math.log(l0.size), rel=1e-9)
        d = _randomize(d, scale=1.5, seed=2)
        with torch.no_grad():
            nlp = -d.log_prob(d.sample(4000, _gen(4))).double()
        se = nlp.std().item() / math.sqrt(nlp.numel())
        assert abs(nlp.mean().item() - d.entropy().item()) < 4 * se + 1e-3


def test_from_factorized_is_the_same_distribution(l0):
    f = _randomize(FactorizedDistribution(l0), scale=1.5).double()
    j = JointDistribution.from_factorized(f)
    idx = torch.from_numpy(l0.sample_indices(5, 64))
    idx = torch.cat([idx, f.sample(64, _gen(5))])
    assert torch.allclose(f.log_prob(idx), j.log_prob(idx), atol=1e-5)
    assert j.entropy().item() == pytest.approx(f.entropy().item(), abs=1e-5)
    for name in ["s1.0.expand", "s5.1.act"]:
        assert torch.allclose(f.probs_of_dim(name), j.probs_of_dim(name), atol=1e-9)
    with pytest.raises(SupernasError):
        JointDistribution.from_factorized(j)


def test_parameter_counts(l0):
    counts = parameter_counts(l0)
    assert counts["factorized"] == FactorizedDistribution(l0).num_parameters() == 506
    assert counts["joint"] == JointDistribution(l0).num_parameters() == 14672
    assert counts["joint"] > 10 * counts["factorized"]
    for name in ["fpnas-l1", "fpnas-l2"]:
        c = parameter_counts(name)
        assert (c["factorized"], c["joint"]) == (643, 21616)


def test_most_likely_is_the_argmax(l0):
    f = _randomize(FactorizedDistribution(l0))
    top = f.most_likely(1)[0]
    assert all(int(top[c]) == int(f.logits[c].argmax()) for c in range(len(l0.dims)))
    # second best: the best with one column moved to the choice that loses least
    lp = [F.log_softmax(p.detach(), 0) for p in f.logits]
    gaps = [(lp[c].max() - lp[c].sort(descending=True).values[1]).item() for c in range(len(l0.dims))]
    c2 = int(np.argmin(gaps))
    five = f.most_likely(5)
    assert int(five[1, c2]) == int(lp[c2].sort(descending=True).indices[1])
    scores = f.log_prob(five).detach()
    assert bool((scores[:-1] >= scores[1:] - 1e-6).all()) and len({tuple(r.tolist()) for r in five}) == 5
    assert scores[0] >= f.log_prob(f.sample(2000, _gen())).max() - 1e-6

    j = _randomize(JointDistribution(l0), seed=3)
    best = j.most_likely(1)
    for g in range(len(j.group_sizes)):
        assert int(_flat_block(j, best, g)[0]) == int(j.logits[g].argmax())


def test_state_dict_round_trip(l0):
    f = _randomize(FactorizedDistribution(l0))
    g = FactorizedDistribution(l0)
    g.load_state_dict(f.state_dict())
    idx = f.sample(4, _gen())
    assert torch.equal(f.log_prob(idx), g.log_prob(idx))


def test_bad_input_raises(l0):
    f = FactorizedDistribution(l0)
    with pytest.raises(SupernasError, match="positive integer"):
        f.sample(0)
    with pytest.raises(SupernasError, match=r"\(N, 125\)"):
        f.log_prob(torch.zeros(3, 4, dtype=torch.long))
    bad = torch.zeros(2, 125, dtype=torch.long)
    bad[0, 1] = 9
    with pytest.raises(SupernasError, match="s1.0.kernel"):
        f.log_prob(bad)
    with pytest.raises(SupernasError, match="unknown dimension"):
        f.probs_of_dim("nope")
    with pytest.raises(SupernasError):
        FactorizedDistribution(3)


# ---------------------------------------------------------------------- adaptive K
def test_adaptive_num_samples_monotone_and_bounded():
    h_max = 150.0
    for rule in ("proportional", "linear", "perplexity", "fixed", lambda h, m, a, b: a + (b - a) * (h / m) ** 2):
        ks = [adaptive_num_samples(h, h_max, 4, 32, rule) for h in np.linspace(0, h_max, 61)]
        assert all(4 <= k <= 32 for k in ks)
        assert all(a <= b for a, b in zip(ks, ks[1:]))
    assert adaptive_num_samples(h_max, h_max, 4, 32) == 32
    assert adaptive_num_samples(0.0, h_max, 4, 32) == 4
    assert adaptive_num_samples(h_max / 2, h_max, 4, 32) == 16  # proportional: K_max * H / H_max
    assert adaptive_num_samples(h_max / 10, h_max, 4, 32) == 4  # ... floored at K_min
    assert adaptive_num_samples(h_max / 2, h_max, 4, 32, "linear") == 18
    # K = per_nat * H whatever the space's maximum: a larger space draws more Archs by itself
    assert adaptive_num_samples(50.0, h_max, 2, 64, per_nat=0.1) == 5
    assert adaptive_num_samples(50.0, 4 * h_max, 2, 64, per_nat=0.1) == 5
    assert adaptive_num_samples(400.0, 4 * h_max, 2, 64, per_nat=0.1) == 40
    with pytest.raises(SupernasError, match="proportional"):
        adaptive_num_samples(1.0, h_max, 2, 8, "linear", per_nat=0.1)
    with pytest.raises(SupernasError, match="positive"):
        adaptive_num_samples(1.0, h_max, 2, 8, per_nat=0)
    assert adaptive_num_samples(math.log(10), h_max, 4, 32, "perplexity") == 10
    assert adaptive_num_samples(torch.tensor(1.0), h_max, 4, 32, "fixed") == 32
    for bad in [dict(k_min=0, k_max=4), dict(k_min=5, k_max=4)]:
        with pytest.raises(SupernasError):
            adaptive_num_samples(1.0, h_max, **bad)
    with pytest.raises(SupernasError, match="unknown sampling rule"):
        adaptive_num_samples(1.0, h_max, 1, 4, "cubic")


# ---------------------------------------------------------------------- estimator
def test_estimator_gradient_equals_hand_computation(l0):
    f = _randomize(FactorizedDistribution(l0)).double()
    idx = f.sample(3, _gen(7))
    ll = np.array([-10.0, -11.5, -9.0])
    costs = np.array([400.0, 300.0, 500.0])
    beta = 0.3
    m = np.exp(ll - ll.max()) / np.exp(ll - ll.max()).sum() - beta * costs / costs.sum()
    assert np.allclose(arch_weights(ll, costs, beta).numpy(), m)
    arch_loss(f, idx, ll, costs, beta).backward()
    for c in range(len(l0.dims)):
        p = F.softmax(f.logits[c].detach(), 0)
        onehot = F.one_hot(idx[:, c], p.numel()).double()
        want = sum(m[k] * (p - onehot[k]) for k in range(3))  # grad of -log softmax = p - onehot
        assert torch.allclose(f.logits[c].grad, want, atol=1e-10)

    j = _randomize(JointDistribution(l0), seed=4).double()
    arch_loss(j, idx, ll, costs, beta).backward()
    for g in range(len(j.group_sizes)):
        p = F.softmax(j.logits[g].detach(), 0)
        onehot = F.one_hot(torch.from_numpy(_flat_block(j, idx, g)), p.numel()).double()
        want = sum(m[k] * (p - onehot[k]) for k in range(3))
        assert torch.allclose(j.logits[g].grad, want, atol=1e-10)


def test_estimator_weights_are_detached_and_loglik_helper(l0):
    ll = torch.tensor([-1.0, -2.0], requires_grad=True)
    assert not arch_weights(ll).requires_grad
    assert torch.allclose(loglik_from_losses([0.5, 0.25], 100), torch.tensor([-50.0, -25.0], dtype=torch.float64))


def test_hinge_penalty_zero_below_target():
    ll = [-3.0, -2.0, -4.0]
    plain = arch_weights(ll)
    below = arch_weights(ll, [100.0, 200.0, 300.0], beta=5.0, cost_target=350.0, cost_mode="hinge")
    assert torch.allclose(below, plain)
    mixed = arch_weights(ll, [100.0, 200.0, 500.0], beta=2.0, cost_target=300.0, cost_mode="hinge")
    assert torch.allclose(mixed - plain, torch.tensor([0.0, 0.0, -2.0 * 200.0 / 800.0], dtype=torch.float64))
    by_target = arch_weights(ll, [100.0, 200.0, 500.0], beta=2.0, cost_target=300.0, cost_mode="hinge",
                             cost_norm="target")
    assert by_target[2] - plain[2] == pytest.approx(-2.0 * 200.0 / 900.0)
    with pytest.raises(SupernasError, match="cost_target"):
        arch_weights(ll, [1.0, 2.0, 3.0], beta=1.0, cost_mode="hinge")
    with pytest.raises(SupernasError, match="costs are needed"):
        arch_weights(ll, None, beta=1.0)
    with pytest.raises(SupernasError, match="one per sampled Arch"):
        arch_weights(ll, [1.0, 2.0], beta=1.0)


def test_beta_for_target():
    costs = [300.0, 500.0]
    beta = beta_for_target(costs, cost_target=400.0, overshoot=0.1)
    assert beta == pytest.approx(400.0 / 40.0)
    # an Arch 10% above the budget loses exactly the mean likelihood weight 1/K
    w = arch_weights([0.0, 0.0], [440.0, 360.0], beta=beta_for_target([440.0, 360.0], 400.0),
                     cost_target=400.0, cost_mode="hinge")
    assert float(w[0]) == pytest.approx(0.0, abs=1e-12)
    assert beta_for_target(costs, 400.0, 0.25, cost_norm="target") == pytest.approx(4.0)


def _kernel_share(dist, space):
    cols = [c for c, d in enumerate(space.dims) if d.name.endswith(".kernel")]
    return float(np.mean([dist.probs_of_dim(space.dims[c].name)[1].item() for c in cols])), cols


def test_adam_moves_probability_to_likely_and_cheap_archs(l0):
    cost = CostModel(l0, 1000)
    g = _gen(11)
    # likelihood: a fixed function of the choices (kernel 5 everywhere is best)
    f = FactorizedDistribution(l0)
    share0, kcols = _kernel_share(f, l0)
    opt = torch.optim.Adam(f.parameters(), lr=0.05)
    for _ in range(40):
        idx = f.sample(16, g)
        ll = 2.0 * (idx[:, kcols] == 1).sum(1).double()
        opt.zero_grad()
        arch_loss(f, idx, ll).backward()
        opt.step()
    share1, _ = _kernel_share(f, l0)
    assert share0 == pytest.approx(0.5) and share1 > 0.7

    # flat likelihood, cost penalty only: the expected MFLOPs fall
    f = FactorizedDistribution(l0)
    before = cost.mflops_indices(f.sample(512, _gen(12)).numpy()).mean()
    opt = torch.optim.Adam(f.parameters(), lr=0.05)
    for _ in range(40):
        idx = f.sample(16, g)
        opt.zero_grad()
        arch_loss(f, idx, torch.zeros(16), cost.mflops_indices(idx.numpy()), beta=1.0).backward()
        opt.step()
    after = cost.mflops_indices(f.sample(512, _gen(12)).numpy()).mean()
    assert after < 0.9 * before


def test_hinge_expected_weights_by_hand():
    ll = [-3.0, -2.0, -4.0]
    plain = arch_weights(ll)
    costs = [100.0, 200.0, 600.0]  # mean 300 > T = 200: the penalty is on
    got = arch_weights(ll, costs, beta=2.0, cost_target=200.0, cost_mode="hinge_expected")
    # (C_k - mean of the others) / (K T): (100 - 400) / 600, (200 - 350) / 600, (600 - 150) / 600
    want = plain - 2.0 * torch.tensor([-0.5, -0.25, 0.75], dtype=torch.float64)
    assert torch.allclose(got, want)
    within = arch_weights(ll, costs, beta=2.0, cost_target=300.0, cost_mode="hinge_expected")
    assert torch.allclose(within, plain)  # mean cost at the budget: no penalty
    with pytest.raises(SupernasError, match="cost_target"):
        arch_weights(ll, costs, beta=1.0, cost_mode="hinge_expected")


def test_hinge_expected_gradient_is_unbiased():
    """Averaged exactly over every pair of sampled Archs, the hinge_expected surrogate's gradient is
    beta * grad E[C] / T (above budget) whatever the logits: the score-function estimate is unbiased."""
    space = get_space({"name": "one-block", "resolution": 16, "stem": {"width": 8, "stride": 2},
                       "stages": [{"name": "s1", "width": [8, 16], "depth": 1, "stride": 2, "kernel": [3, 5],
                                   "expand": [1.5, 3.0], "act": ["relu", "swish"], "attention": [0, 1, 2],
                                   "per_block": True}],
                       "head": {"kind": "conv", "width": 32}})
    rows = np.stack(np.meshgrid(*[np.arange(c) for c in space.cardinalities], indexing="ij"), -1)
    rows = torch.from_numpy(rows.reshape(-1, len(space.dims)))  # every Arch: 48
    costs = torch.from_numpy(CostModel(space, 10).mflops_indices(rows.numpy()))
    f = _randomize(FactorizedDistribution(space), scale=0.8, seed=5).double()
    beta, target = 0.7, float(costs.min()) / 2  # every pair's mean is over budget
    exact = beta * (f.log_prob(rows).exp() * costs).sum() / target
    want = torch.autograd.grad(exact, list(f.parameters()))
    # grad of -log P(A) for every Arch, then the estimator's weights for every ordered pair
    per_arch = [torch.autograd.grad(-f.log_prob(rows[i:i + 1]).sum(), list(f.parameters())) for i in range(len(rows))]
    p = f.log_prob(rows).exp().detach()
    got = [torch.zeros_like(w) for w in want]
    for a in range(len(rows)):
        for b in range(len(rows)):
            m = arch_weights([0.0, 0.0], costs[[a, b]], beta, target, "hinge_expected")
            m = m - 0.5  # the likelihood part (equal weights) averages to zero; keep the cost part
            for g, ga, gb in zip(got, per_arch[a], per_arch[b]):
                g += p[a] * p[b] * (m[0] * ga + m[1] * gb)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-9)
