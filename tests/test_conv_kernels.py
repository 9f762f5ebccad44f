"""The other kernel paths of the elastic convolutions (`train.pointwise_kernel`,
`train.depthwise_kernel`, nn/elastic.py): the same results as the convolutions, up to rounding."""
import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TINY_NAME

from supernas import SupernasError
from supernas.nn import SuperNet
from supernas.nn.elastic import ElasticConv2d


def _conv_and_grads(conv, x, out_channels, offset=0, amp=False):
    conv.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        y = conv(x, out_channels, offset=offset)
    (y.float() * torch.linspace(-1, 1, y.numel(), device=y.device).reshape(y.shape)).sum().backward()
    return y, x.grad, conv.weight.grad


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("cin,cout,offset", [(16, 24, 0), (10, 24, 0), (16, 7, 3)])  # whole; input cut; rows
def test_a_pointwise_convolution_as_a_matrix_product_gives_the_convolution(channels_last, cin, cout, offset):
    # in float64, so that sums taken in another order (another CPU's kernels, thread count) stay equal
    torch.manual_seed(0)
    conv = ElasticConv2d(16, 24, 1).double()
    x = torch.randn(3, cin, 5, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    reference = _conv_and_grads(conv, x, cout, offset)
    conv.gemm = True
    gemm = _conv_and_grads(conv, x, cout, offset)
    for a, b in zip(reference, gemm):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    # the layout the next layer expects: channels_last in, channels_last out
    assert gemm[0].is_contiguous(memory_format=torch.channels_last) == channels_last


def test_a_pointwise_matrix_product_under_bf16_autocast_is_as_accurate_as_the_convolution():
    torch.manual_seed(0)
    conv = ElasticConv2d(32, 48, 1)
    x = torch.randn(4, 32, 8, 8).contiguous(memory_format=torch.channels_last)
    exact = _conv_and_grads(conv, x, 48)[0]
    errors = []
    for gemm in (False, True):
        conv.gemm = gemm
        y = _conv_and_grads(conv, x, 48, amp=True)[0]
        assert y.dtype == torch.bfloat16
        errors.append(((y.float() - exact).norm() / exact.norm()).item())
    assert errors[1] < 2 * errors[0] + 1e-3, errors


def test_strided_and_larger_kernels_stay_convolutions():
    torch.manual_seed(0)
    for conv, x in ((ElasticConv2d(3, 8, 3, stride=2), torch.randn(2, 3, 9, 9)),
                    (ElasticConv2d(8, 8, 1, stride=2), torch.randn(2, 8, 9, 9))):
        expected = conv(x, 8)
        conv.gemm = True
        assert torch.equal(conv(x, 8), expected)


def _step(net, x, y, arch):
    """Input and parameter gradients and buffers after one step from the state now (restored)."""
    state = copy.deepcopy(net.state_dict())
    net.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    F.cross_entropy(net(x, arch), y).backward()
    grads = torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None])
    buffers = torch.cat([b.double().reshape(-1) for b in net.buffers()])
    net.load_state_dict(state)
    return x.grad, grads, buffers


@pytest.mark.parametrize("name", [TINY_NAME, "fpnas-l0"])
def test_a_supernet_step_is_the_same_with_either_path(name):
    # float64: a deep net with BatchNorm over 4 images amplifies float32 rounding (0.7 % on fpnas-l0's input
    # gradient with 2 threads, 4 images), which would say nothing about the paths
    torch.manual_seed(0)
    net = SuperNet(name, num_classes=10).train().double()
    x, y = torch.randn(3, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (3,))
    # the tiny space's largest and a sampled Arch; of fpnas-l0 (26 M weights) one with Split-Attention
    for arch in (net.space.largest(), net.space.sample(rng=0)) if name != "fpnas-l0" else (net.space.sample(rng=0),):
        reference = _step(net, x, y, arch)
        net.set_conv_kernels("gemm", "native")  # native: a CPU runs the convolution
        other = _step(net, x, y, arch)
        net.set_conv_kernels()
        for a, b in zip(reference, other):  # sums in another order: equal up to float64 rounding
            assert ((a - b).norm() / a.norm()).item() < 1e-9
    assert net.conv_kernels == {"pointwise": "conv", "depthwise": "conv"}


def test_set_conv_kernels_reaches_every_elastic_convolution_and_names_a_bad_choice():
    net = SuperNet(TINY_NAME, num_classes=10)
    net.set_conv_kernels(pointwise="gemm")
    convs = [m for m in net.modules() if isinstance(m, ElasticConv2d)]
    assert all(m.gemm and not m.native for m in convs)
    for bad in ({"pointwise": "fast"}, {"depthwise": "cudnn"}, {"pointwise": None}):
        with pytest.raises(SupernasError, match="choose one of"):
            net.set_conv_kernels(**bad)


@pytest.mark.parametrize("key,value", [("pointwise_kernel", "fast"), ("depthwise_kernel", "cudnn"),
                                       ("pointwise_kernel", "1"), ("cuda_graphs", "maybe")])
def test_a_bad_kernel_setting_names_the_key(key, value):
    from supernas.config import SupernetConfig, load_config

    with pytest.raises(SupernasError, match=key):
        load_config(SupernetConfig, overrides=[f"train.{key}={value}"])


def test_the_kernel_settings_reach_the_trainers_supernet(tmp_path):
    from supernas.train.supernet import SupernetTrainer
    from tiny_runs import supernet_config

    cfg = supernet_config(tmp_path / "run", epochs=1, max_steps=1)
    cfg["train"].update(pointwise_kernel="gemm", depthwise_kernel="native")
    t = SupernetTrainer(cfg)
    assert t.net.conv_kernels == {"pointwise": "gemm", "depthwise": "native"}


@pytest.mark.gpu
@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_native_depthwise_kernel_gives_the_convolution(amp, channels_last):
    torch.manual_seed(0)
    conv = ElasticConv2d(24, 24, 5, stride=2, depthwise=True).cuda()
    x = torch.randn(4, 16, 15, 15, device="cuda")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    reference = _conv_and_grads(conv, x, 16, amp=amp)
    conv.native = True
    native = _conv_and_grads(conv, x, 16, amp=amp)
    tol = dict(rtol=2e-2, atol=2e-2) if amp else dict(rtol=1e-4, atol=1e-5)
    for a, b in zip(reference, native):
        assert a.dtype == b.dtype and torch.allclose(a.float(), b.float(), **tol)
    assert native[0].is_contiguous(memory_format=torch.channels_last) == channels_last
