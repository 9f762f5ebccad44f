import json
import math
from pathlib import Path

import pytest
import torch

from supernas import SupernasError
from supernas.config import FpnasConfig, load_config
from supernas.fpnas import FactorizedDistribution, JointDistribution
from supernas.fpnas.probabilistic import ProbabilisticSearch
from supernas.fpnas.figures import draw_arch, plot_search
from supernas.sampling import read_pareto_set
from supernas.spaces import CostModel, get_space
from tiny_runs import FPNAS_TINY_SPACE, fpnas_config

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "supernas" / "configs"

def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", ["fpnas", "parsec"])
def test_search_runs_end_to_end_and_writes_results(tmp_path, mode):
    run = tmp_path / mode
    s = ProbabilisticSearch(fpnas_config(run, mode=mode))
    assert s.steps_per_epoch == 4
    s.fit()
    rows = records(run)
    assert len(rows) == 8 and all({"K", "entropy", "expected_mflops", "samples_total", "loss"} <= set(r) for r in rows)
    assert [r["arch_step"] for r in rows] == [False] * 4 + [True] * 4  # alpha frozen in the warm-up
    assert all(r["entropy"] == pytest.approx(rows[0]["max_entropy"], abs=1e-4) for r in rows[:4])
    assert rows[-1]["entropy"] < rows[0]["entropy"]  # the architecture steps moved alpha
    assert rows[-1]["samples_total"] == sum(r["K"] for r in rows)
    res = json.loads((run / "result.json").read_text())
    assert res["samples_total"] == rows[-1]["samples_total"] and res["search_seconds"] > 0
    assert res["samples_warmup"] == sum(r["K"] for r in rows[:4])  # the warm-up's draws, counted apart
    assert res["samples_search"] == res["samples_total"] - res["samples_warmup"]
    assert res["mode"] == mode and res["distribution"] == "joint"
    assert 1 <= len(res["top"]) <= 3 and res["most_likely"] == res["top"][0]
    assert len({json.dumps(t["arch"], sort_keys=True) for t in res["top"]}) == len(res["top"])
    assert all(t["mflops"] > 0 and t["params"] > 0 for t in res["top"])
    assert res["top"][0]["log_prob"] >= res["top"][-1]["log_prob"]
    for name in ("search.png", "arch.png", "dist_epoch1.pt", "dist_epoch2.pt", "checkpoint.pt", "distribution.pt"):
        assert (run / name).is_file(), name
    # the top Archs scored as stage 2 scores them, in the files its search writes
    scored = json.loads((run / "evaluated.json").read_text())
    assert [e["arch"] for e in sorted(scored["entries"], key=lambda e: -e["log_prob"])] == [t["arch"] for t in res["top"]]
    assert all(0 <= e["accuracy"] <= 100 and e["top5"] >= e["accuracy"] for e in scored["entries"])
    # 10,000 images (the default) in batches of 32; the 16 re-calibration batches asked are more than
    # the tiny training split holds: the 4 that ran are recorded
    assert scored["score"] == {"source": "supernet", "split": "search", "images": 32, "bn_batches": 4,
                               "bn_batches_asked": 16, "max_batches": 313}
    assert scored["search"]["strategy"] == mode
    front = read_pareto_set(run / "pareto.json", get_space(FPNAS_TINY_SPACE), CostModel(get_space(FPNAS_TINY_SPACE), 10))
    assert 1 <= len(front) <= len(scored["entries"])
    snap = torch.load(run / "dist_epoch1.pt", weights_only=True)
    assert snap["epoch"] == 1 and "s1.0.kernel" in snap["marginals"]
    kinds = [r["distribution"] for r in rows]
    if mode == "parsec":  # joint from the start, K fixed
        assert set(kinds) == {"joint"} and {r["K"] for r in rows} == {3}
        assert snap["kind"] == "joint"
    else:  # factorized through epoch 0, joint after the switch
        assert kinds == ["factorized"] * 4 + ["joint"] * 4 and snap["kind"] == "factorized"
        assert rows[0]["K"] == 3


def test_scoring_the_top_archs_can_be_off_and_bounded(tmp_path):
    ProbabilisticSearch(fpnas_config(tmp_path / "off", epochs=1, score_images=0, max_steps=1)).fit()
    assert (tmp_path / "off" / "result.json").is_file() and not (tmp_path / "off" / "evaluated.json").exists()
    s = ProbabilisticSearch(fpnas_config(tmp_path / "few", epochs=1, score_images=20, score_bn_batches=1, max_steps=1))
    result, evaluator = s.search_result()
    assert evaluator.max_batches == 1 and evaluator.bn_batches == 1  # 20 images: one batch of 32
    assert result.budgets == [] and result.evaluated[0].arch.to_dict() == s.results()["most_likely"]["arch"]
    for bad in ({"score_images": -1}, {"score_images": "many"}, {"score_bn_batches": 0}):
        with pytest.raises(SupernasError, match="search.score_"):
            ProbabilisticSearch(fpnas_config(tmp_path / "bad", **bad))


def test_switch_keeps_the_distribution(tmp_path):
    s = ProbabilisticSearch(fpnas_config(tmp_path / "r"))
    torch.manual_seed(0)
    with torch.no_grad():
        for lg in s.distribution.logits:
            lg.copy_(torch.randn_like(lg))
    idx = s.distribution.sample(64, torch.Generator().manual_seed(1))
    before, h = s.distribution.log_prob(idx).detach(), float(s.distribution.entropy().detach())
    s.switch_to_joint()
    assert isinstance(s.distribution, JointDistribution)
    assert torch.allclose(s.distribution.log_prob(idx).detach(), before, atol=1e-5)
    assert float(s.distribution.entropy().detach()) == pytest.approx(h, abs=1e-4)
    assert s.arch_opt.param_groups[0]["params"][0] is s.distribution.logits[0]  # Adam follows the new parameters


def test_adaptive_k_drops_with_the_entropy(tmp_path):
    s = ProbabilisticSearch(fpnas_config(tmp_path / "r", k_min=2, k_max=10))
    ks = []
    for scale in (0.0, 1.0, 3.0, 30.0):
        with torch.no_grad():
            for lg in s.distribution.logits:
                lg.copy_(torch.arange(lg.numel(), dtype=lg.dtype) * scale)
        ks.append(s.num_samples())
    assert ks[0] == 10 and ks[-1] == 2 and ks == sorted(ks, reverse=True)


def test_search_draws_k_per_nat_of_the_entropy(tmp_path):
    run = tmp_path / "r"
    ProbabilisticSearch(fpnas_config(run, k_min=2, k_max=8, k_per_nat=0.3, arch_lr=0.5, epochs=3)).fit()
    rows = records(run)
    # each step's K comes from the entropy the previous step left (the logged one)
    want = [min(max(math.ceil(0.3 * r["entropy"] - 1e-9), 2), 8) for r in rows[:-1]]
    assert [r["K"] for r in rows[1:]] == want
    assert rows[0]["K"] == math.ceil(0.3 * rows[0]["max_entropy"])  # uniform start
    assert rows[-1]["K"] < rows[0]["K"]  # alpha sharpened, fewer samples


def test_latency_cost_measures_sampled_layers_and_keeps_the_table(tmp_path):
    run = tmp_path / "lat"
    lat = {"batch_size": 1, "warmup": 0, "repeats": 1, "window_s": 0}
    cfg = fpnas_config(run, cost="latency", beta=0.5, cost_mode="hinge", cost_target=0.01, latency=lat)
    s = ProbabilisticSearch(cfg)
    s.fit()
    assert s.latency.measured > 0
    rows = records(run)
    arch_rows = [r for r in rows if r["arch_step"]]
    assert arch_rows and all(r["latency_ms_samples"] > 0 for r in arch_rows)
    assert not any("latency_ms_samples" in r for r in rows if not r["arch_step"])
    res = json.loads((run / "result.json").read_text())
    assert res["cost"] == "latency" and all(t["latency_ms"] > 0 for t in res["top"])
    table = json.loads((run / "latency_table.json").read_text())
    assert len(table["entries"]) == s.latency.measured and table["batch_size"] == 1
    # the same run directory again (a resume) starts from the saved table: known layers are not re-timed
    again = ProbabilisticSearch(cfg, resume=True)
    assert again.latency.entries == s.latency.entries and again.latency.measured == 0
    again.sample_costs(again.distribution.sample(4, torch.Generator().manual_seed(0)))
    assert again.latency.measured == len(again.latency.entries) - len(table["entries"])  # only unseen layers


def test_interrupted_search_resumes_to_the_same_state(tmp_path, run_until_crash):
    full = ProbabilisticSearch(fpnas_config(tmp_path / "full"))
    full.fit()
    # the checkpoint is at step 3: factorized, two arch steps to redo
    run_until_crash(ProbabilisticSearch, fpnas_config(tmp_path / "crash"), 5)
    resumed = ProbabilisticSearch(fpnas_config(tmp_path / "crash"), resume=True)
    resumed.fit()
    assert resumed.step == full.step == 8 and resumed.samples_total == full.samples_total
    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert type(resumed.distribution) is type(full.distribution) is JointDistribution
    assert all(torch.equal(x, y) for x, y in zip(full.distribution.logits, resumed.distribution.logits))
    assert json.loads((tmp_path / "full" / "result.json").read_text())["top"] == \
        json.loads((tmp_path / "crash" / "result.json").read_text())["top"]


def test_bad_settings_name_the_fix(tmp_path):
    with pytest.raises(SupernasError, match="search.mode"):
        ProbabilisticSearch(fpnas_config(tmp_path / "a", mode="darts"))
    with pytest.raises(SupernasError, match="cost_target"):
        ProbabilisticSearch(fpnas_config(tmp_path / "b", cost_mode="hinge", cost_target=None))
    with pytest.raises(SupernasError, match="cost_mode=hinge_expected.*cost_target"):
        ProbabilisticSearch(fpnas_config(tmp_path / "b", cost_mode="hinge_expected", cost_target=None))
    with pytest.raises(SupernasError, match="search.weight_step='weighted' is not allowed: one of uniform, importance"):
        ProbabilisticSearch(fpnas_config(tmp_path / "b", weight_step="weighted"))
    with pytest.raises(SupernasError, match="k_max"):
        ProbabilisticSearch(fpnas_config(tmp_path / "c", k_min=5, k_max=2))
    with pytest.raises(SupernasError, match="search.k_rule='cubic' is not allowed: one of proportional"):
        ProbabilisticSearch(fpnas_config(tmp_path / "c", k_rule="cubic"))
    with pytest.raises(SupernasError, match="search.cost='joules' is not allowed: one of mflops, latency"):
        ProbabilisticSearch(fpnas_config(tmp_path / "c", cost="joules"))
    with pytest.raises(SupernasError, match="positive budget in ms"):
        ProbabilisticSearch(fpnas_config(tmp_path / "c", cost="latency", cost_mode="hinge", cost_target=None))
    with pytest.raises(SupernasError, match="search.latency.repeats"):
        ProbabilisticSearch(fpnas_config(tmp_path / "c", latency={"repeats": 0}))
    with pytest.raises(SupernasError, match="k_per_nat.*proportional"):
        ProbabilisticSearch(fpnas_config(tmp_path / "c", k_rule="linear", k_per_nat=0.5))
    cfg = fpnas_config(tmp_path / "d")
    cfg["data"]["search_size"] = None
    with pytest.raises(SupernasError, match="search_size"):
        ProbabilisticSearch(cfg)
    with pytest.raises(SupernasError, match="metrics.jsonl"):
        plot_search(tmp_path)


def test_draw_arch_and_shipped_configs(tmp_path):
    space = get_space(FPNAS_TINY_SPACE)
    out = draw_arch(space, space.largest(), tmp_path / "a.png", title="largest")
    assert out.is_file() and out.stat().st_size > 1000
    fp, pc = (load_config(FpnasConfig, CONFIGS / n) for n in ("fpnas_cifar10.yaml", "parsec_cifar10.yaml"))
    assert fp.search.mode == "fpnas" and pc.search.mode == "parsec"
    assert {k: v for k, v in fp.search.to_dict().items() if k != "mode"} == \
        {k: v for k, v in pc.search.to_dict().items() if k != "mode"}
    assert fp.train == pc.train
    s = get_space(fp.space)
    assert s.spec.resolution.choices == (32,) and FactorizedDistribution(s).num_parameters() > 0
    quick = load_config(FpnasConfig, CONFIGS / "fpnas_digits_quick.yaml")
    assert quick.data.search_size


def _per_arch_grads(s, x, y, archs):
    """Each Arch's loss gradient on its own, and its batch log-likelihood (minus the summed CE)."""
    grads, logliks = [], []
    for a in archs:
        s.net.zero_grad(set_to_none=True)
        logits = s.net(x, a)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in s.net.named_parameters() if p.grad is not None})
        logliks.append(-float(loss.detach()) * len(y))
    s.net.zero_grad(set_to_none=True)
    return grads, torch.tensor(logliks, dtype=torch.float64)


@pytest.mark.parametrize("weight_step", ["uniform", "importance"])
def test_weight_step_combines_the_archs_gradients(tmp_path, weight_step):
    """uniform: the mean of the K Archs' gradients; importance: weighted by the softmax of their
    batch log-likelihoods (the gradient of the log marginal likelihood, PARSEC / Section F)."""
    s = ProbabilisticSearch(fpnas_config(tmp_path, weight_step=weight_step, temperature=0.2))
    x, y = next(s.train_loader.epoch(0, 0))
    idx = s.distribution.sample(3, torch.Generator().manual_seed(1))
    archs = s.distribution.archs(idx)
    s.net.train()
    torch.manual_seed(0)
    grads, ll = _per_arch_grads(s, x, y, archs)
    w = torch.full((3,), 1 / 3, dtype=torch.float64) if weight_step == "uniform" else torch.softmax(ll / 0.2, 0)
    assert weight_step == "uniform" or float(w.max() - w.min()) > 0.05  # the weights do differ
    seen = {}
    s.optimizer.step = lambda: seen.update({n: p.grad.clone() for n, p in s.net.named_parameters()
                                            if p.grad is not None})
    s.weight_step(x, y, idx)
    for name, g in seen.items():
        want = sum(float(wk) * gk.get(name, torch.zeros_like(g)) for wk, gk in zip(w, grads))
        assert torch.allclose(g, want, atol=1e-6, rtol=1e-4), name
    if weight_step == "importance":
        assert torch.allclose(s.last_weights.double(), w, atol=1e-5)
        assert 1.0 <= s._weight_stats()["weight_ess"] < 3.0
