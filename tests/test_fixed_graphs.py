"""`train.cuda_graphs`: the largest and smallest Archs' passes replayed from CUDA graphs
(train/fixed_graphs.py), eager where a graph cannot serve."""
import copy

import pytest
import torch

from supernas.nn import SuperNet
from supernas.train.fixed_graphs import FixedArchGraphs
from supernas.train.supernet import SupernetTrainer

from tiny_runs import TINY_NAME, supernet_config


def _one_step(tmp_path, graphs: bool, device: str = "cpu", steps: int = 1, dropout: float = 0.0):
    cfg = supernet_config(tmp_path / f"g{graphs}", epochs=1, cuda_graphs=graphs, dropout=dropout, drop_path=0.0)
    cfg["run"]["device"] = device
    cfg["sampler"] = {"kind": "uniform"}
    t = SupernetTrainer(cfg)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 12, 12, generator=g).to(device)
    y = torch.randint(0, 10, (8,), generator=g).to(device)
    middle = [t.space.sample(rng=1), t.space.sample(rng=2)]
    for _ in range(steps):
        losses = t.train_step(x, y, middle)
    t.close()
    return t, losses


def test_on_a_cpu_the_step_is_the_eager_step(tmp_path):
    eager, a = _one_step(tmp_path, False)
    graphs, b = _one_step(tmp_path, True)
    assert graphs.passes.enabled and graphs.passes.replays == 0  # a CPU runs every pass eager
    assert torch.equal(a["loss"], b["loss"]) and torch.equal(a["loss_distill"], b["loss_distill"])
    sa, sb = eager.net.state_dict(), graphs.net.state_dict()  # weights after the SGD step, and BN buffers
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


class FakeGraphs:
    """Stands in for torch.cuda.make_graphed_callables on a CPU: runs the module's warm-up passes
    (which move BatchNorm statistics, as the real ones do) and returns the module as the 'graph'."""

    def __init__(self, fail: bool = False):
        self.captures, self.fail = 0, fail

    def __call__(self, module, sample_args, allow_unused_input=False):
        self.captures += 1
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        assert allow_unused_input and not sample_args[0].requires_grad
        with torch.no_grad():
            for _ in range(3):
                module(*sample_args)
        return module


def _pretend_gpu(monkeypatch, fake):
    monkeypatch.setattr(FixedArchGraphs, "_graphable", staticmethod(lambda x: True))
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake)


def test_each_fixed_arch_is_captured_once_its_warm_up_undone_and_other_calls_run_eager(monkeypatch):
    fake = FakeGraphs()
    _pretend_gpu(monkeypatch, fake)
    torch.manual_seed(0)
    net = SuperNet(TINY_NAME, num_classes=10).train()
    largest, smallest, other = net.space.largest(), net.space.smallest(), net.space.sample(rng=3)
    passes = FixedArchGraphs(True, None, {largest, smallest})
    x = torch.randn(4, 3, 12, 12)
    before = copy.deepcopy(net.state_dict())
    passes(net, x, largest, dropout=0.0)
    after_capture = net.state_dict()
    reference = copy.deepcopy(before)
    plain = SuperNet(TINY_NAME, num_classes=10).train()
    plain.load_state_dict(reference)
    plain(x, largest, dropout=0.0)  # one training pass moves the statistics once, not four times
    assert all(torch.equal(after_capture[k], plain.state_dict()[k]) for k in after_capture)
    passes(net, x, largest, dropout=0.0)
    passes(net, x, smallest)
    passes(net, x, smallest)
    assert fake.captures == 2 and passes.replays == 4
    passes(net, x, other)  # not a fixed Arch
    passes(net, x[:3], largest, dropout=0.0)  # a short last batch
    passes(net, x, largest, dropout=0.5)  # other options than captured
    with torch.no_grad():
        passes(net, x, largest, dropout=0.0)  # no gradients: nothing to replay backward
    net.eval()
    passes(net, x, largest, dropout=0.0)
    assert fake.captures == 2 and passes.replays == 4


def test_a_failed_capture_is_said_once_and_every_pass_runs_eager(monkeypatch):
    fake = FakeGraphs(fail=True)
    _pretend_gpu(monkeypatch, fake)
    net = SuperNet(TINY_NAME, num_classes=10).train()
    passes = FixedArchGraphs(True, None, {net.space.largest()})
    x = torch.randn(2, 3, 12, 12)
    with pytest.warns(UserWarning, match="train.cuda_graphs: capturing .* failed \\(RuntimeError: operation not "
                                         "permitted when stream is capturing\\); every pass runs eager"):
        y = passes(net, x, net.space.largest())
    assert y.shape == (2, 10) and passes.failed.startswith("RuntimeError")
    passes(net, x, net.space.largest())
    assert fake.captures == 1 and passes.replays == 0


def test_disabled_graphs_never_capture(monkeypatch):
    fake = FakeGraphs()
    _pretend_gpu(monkeypatch, fake)
    net = SuperNet(TINY_NAME, num_classes=10).train()
    passes = FixedArchGraphs(False, None, {net.space.largest()})
    passes(net, torch.randn(2, 3, 12, 12), net.space.largest())
    assert fake.captures == 0 and passes.replays == 0


@pytest.mark.gpu
@pytest.mark.parametrize("steps", [1, 3])
def test_on_a_gpu_graphed_steps_train_as_eager_steps_do(tmp_path, steps):
    eager, a = _one_step(tmp_path, False, "cuda", steps)
    graphs, b = _one_step(tmp_path, True, "cuda", steps)
    assert graphs.passes.failed is None and graphs.passes.replays == 2 * steps
    assert torch.allclose(a["loss"], b["loss"], rtol=1e-4) and torch.allclose(a["loss_distill"], b["loss_distill"],
                                                                               rtol=1e-4)
    sa, sb = eager.net.state_dict(), graphs.net.state_dict()
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), rtol=1e-3, atol=1e-5), k


@pytest.mark.gpu
def test_on_a_gpu_dropout_draws_new_masks_on_every_replay(tmp_path):
    t, _ = _one_step(tmp_path, True, "cuda", 1, dropout=0.5)
    x = torch.randn(8, 3, 12, 12, device="cuda")
    outs = [t.passes(t.net, x, t.space.largest(), dropout=0.5, drop_path=0.0).detach().clone() for _ in range(2)]
    assert t.passes.replays >= 3 and not torch.equal(*outs)
