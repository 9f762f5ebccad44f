import numpy as np
import pytest
import torch
from tiny_runs import TINY_NAME
from torch import nn

from supernas import SupernasError
from supernas.nn import SuperNet
from supernas.nn import elastic

N_ARCHS = 12


def _randomize_bn(net: nn.Module, g: torch.Generator) -> None:
    """Non-trivial BN statistics and affine weights, so that slicing mistakes show."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.fixture(scope="module")
def nets():
    out = {}
    return out


def _net(cache, name):
    if name not in cache:
        torch.manual_seed(0)
        net = SuperNet(name, num_classes=10).eval()
        _randomize_bn(net, torch.Generator().manual_seed(0))
        cache[name] = net
    return cache[name]


# L1 and L2 share L0's blocks at larger sizes (a minute between them): slow
@pytest.mark.parametrize("name", ["attentivenas", "fpnas-l0", pytest.param("fpnas-l1", marks=pytest.mark.slow),
                                  pytest.param("fpnas-l2", marks=pytest.mark.slow)])
def test_extracted_model_matches_supernet(nets, name):
    net = _net(nets, name)
    space = net.space
    rng = np.random.default_rng(1)
    archs = [space.smallest(), space.largest()] + space.sample(rng, N_ARCHS - 2)
    worst = 0.0
    with torch.no_grad():
        for arch in archs:
            res = arch.get("resolution", space.spec.resolution.choices[0])
            x = torch.randn(1, 3, res, res)
            model = net.extract(arch)
            assert not any(isinstance(m, (elastic.ElasticConv2d, elastic.ElasticLinear, elastic.ElasticAttention))
                           for m in model.modules())
            assert not model.training
            worst = max(worst, (net(x, arch) - model(x)).abs().max().item())
    assert worst <= 1e-5


def test_extracted_model_stands_alone_and_reloads():
    net = _net({}, "fpnas-l0")
    arch = net.space.sample(rng=4)
    model = net.extract(arch)
    again = net.extract(arch)
    again.load_state_dict(model.state_dict())
    del net
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_forward_resizes_input_to_arch_resolution():
    net = SuperNet("attentivenas", num_classes=10).eval()
    space = net.space
    arch = space.arch({**space.smallest().to_dict(), "resolution": 192})
    x = torch.randn(2, 3, 224, 224)
    small = torch.nn.functional.interpolate(x, size=(192, 192), mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(net(x, arch), net(small, arch), atol=1e-6)


def test_training_step_touches_only_the_active_slices():
    net = SuperNet("attentivenas", num_classes=10).train()
    arch = net.space.smallest()
    x = torch.randn(2, 3, 192, 192)
    net(x, arch).logsumexp(1).sum().backward()
    w = net.stem_conv.weight
    stem = arch["stem.width"]
    assert w.grad[:stem].abs().sum() > 0 and w.grad[stem:].abs().sum() == 0
    used = {b.index for b in net.plan(arch).blocks}
    unused = [i for i in range(len(net.blocks)) if i not in used]
    assert unused, "the smallest Arch skips trailing blocks"
    assert all(p.grad is None for i in unused for p in net.blocks[i].parameters())


def test_batchnorm_statistics_update_only_active_channels():
    net = SuperNet("attentivenas", num_classes=10).train()
    arch = net.space.smallest()
    before = net.stem_bn.running_mean.clone()
    net(torch.randn(4, 3, 192, 192) + 1, arch)
    c = arch["stem.width"]
    assert not torch.equal(net.stem_bn.running_mean[:c], before[:c])
    assert torch.equal(net.stem_bn.running_mean[c:], before[c:])


def test_channels_last_gives_the_same_result():
    net = _net({}, "fpnas-l0")
    arch = net.space.sample(rng=9)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = net(x, arch)
        out = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), arch)
    assert (ref - out).abs().max() < 1e-4


@pytest.mark.gpu
def test_cuda_bf16_channels_last_matches_extracted():
    net = SuperNet("attentivenas", num_classes=10).cuda().eval().to(memory_format=torch.channels_last)
    arch = net.space.sample(rng=2)
    res = arch["resolution"]
    x = torch.randn(4, 3, res, res, device="cuda").to(memory_format=torch.channels_last)
    model = net.extract(arch).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        a, b = net(x, arch).float(), model(x).float()
    assert (a - b).abs().max() < 5e-2 * a.abs().max()


def test_split_attention_batchnorm_statistics_are_written_back():
    net = SuperNet("fpnas-l0", num_classes=10).train()
    space = net.space
    arch = space.arch({**space.smallest().to_dict(), "s3.0.attention": 4})
    block = net.blocks[next(b.index for b in net.plan(arch).blocks if b.splits == 4)]
    p = next(b for b in net.plan(arch).blocks if b.splits == 4)
    before = block.dw_bn.running_mean.clone()
    net(torch.randn(4, 3, 224, 224), arch)
    rows = block.branch_rows(4, p.mid, before.device)
    changed = block.dw_bn.running_mean != before
    assert changed[rows].all() and changed.sum() == len(rows)


@pytest.mark.parametrize("scope", ["last_two_stages", "all_blocks"])
def test_drop_path_reaches_the_last_two_stages_by_default(scope):
    """As the reference's set_dropout_rate: a reached block's rate is rate * index / (all blocks);
    by default only the blocks of the last two stages are reached."""
    net = SuperNet(TINY_NAME, num_classes=10).train()
    if scope != "last_two_stages":
        net.set_drop_path_scope(scope)
    rates = {}
    for i, block in enumerate(net.blocks):
        block.register_forward_hook(lambda m, args, out, i=i: rates.__setitem__(i, args[2]))
    net(torch.randn(2, 3, 16, 16), net.space.largest(), drop_path=0.4)
    n = len(net.blocks)
    last_two = {i for i, s in enumerate(net.stage_of_block) if s >= len(net.space.spec.stages) - 2}
    want = {i: 0.4 * i / n if scope == "all_blocks" or i in last_two else 0.0 for i in range(n)}
    assert rates == pytest.approx(want)
    assert any(rates[i] == 0 for i in range(1, n)) == (scope == "last_two_stages")
    with pytest.raises(SupernasError, match="last_two_stages, all_blocks"):
        net.set_drop_path_scope("stage4")
