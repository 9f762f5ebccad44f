"""What keeps an accelerator busy, checked on the CPU: training steps that read nothing back to
the host, weights sliced without needless copies, the cuDNN and precision policy, the loaders,
and the GPU suite itself on tiny settings."""
import contextlib
import json
import subprocess
import re
import sys
from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from tiny_runs import TINY_NAME

from supernas.errors import SupernasError
from supernas.nn import SuperNet
from supernas.runtime.device_metrics import DeviceMeans

HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


@contextlib.contextmanager
def count_host_reads(floating_only: bool = False):
    """Counts calls that read a tensor's values on the host (each one waits for a GPU), except
    inside data loading (host tensors, in worker processes in a real run); `floating_only`: reads of
    floating-point tensors only (losses, activations, weights: not integer indices kept on the host)."""
    from supernas.runtime.data_order import SeededDataset

    counts: Counter = Counter()
    loading = []
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def wrap(name, fn):
        def counted(self, *a, **k):
            if not loading and (self.is_floating_point() or not floating_only):
                counts[name] += 1
            return fn(self, *a, **k)
        return counted

    get_item = SeededDataset.__getitem__

    def load(self, key):
        loading.append(1)
        try:
            return get_item(self, key)
        finally:
            loading.pop()

    with pytest.MonkeyPatch.context() as mp:
        for name, fn in originals.items():
            mp.setattr(torch.Tensor, name, wrap(name, fn))
        mp.setattr(SeededDataset, "__getitem__", load)
        yield counts


def supernet_config(run_dir, sampler="uniform", **train):
    return {"run": {"dir": str(run_dir), "device": "cpu"}, "space": TINY_NAME,
            "data": {"path": "digits", "image_size": 12, "train_subset": 256},
            "train": {"epochs": 1, "batch_size": 16, "workers": 0, **train},
            "sampler": {"kind": sampler, "n_prior": 2000, "bin_width": 0.25},
            "eval": {"bn_batches": 1, "max_batches": 1}, "log": {"progress": False, "tensorboard": False}}


def test_device_means_reads_all_values_at_once():
    m = DeviceMeans()
    for v in (1.0, 2.0, 6.0):
        m.add(loss=torch.tensor(v), other=torch.tensor(2 * v))
    assert len(m) == 3
    with count_host_reads() as reads:
        assert m.read(reset=False) == pytest.approx({"loss": 3.0, "other": 6.0})
        assert m.read() == pytest.approx({"loss": 3.0, "other": 6.0})
    assert sum(reads.values()) == 4  # .cpu() and .tolist() once per read, whatever the number of values
    assert m.read() == {} and len(m) == 0


@pytest.mark.parametrize("sampler, reads_per_step", [("uniform", 0), ("attentive", 1)])
def test_sandwich_step_reads_back_only_what_the_attentive_choice_needs(tmp_path, sampler, reads_per_step):
    from supernas.train.supernet import SupernetTrainer

    t = SupernetTrainer(supernet_config(tmp_path, sampler))
    x, y = torch.randn(8, 3, 12, 12), torch.randint(0, 10, (8,))
    steps = 3
    # attentive: drawn by the run's own sampler (candidates ahead on a thread, chosen on the batch)
    middle = [None if sampler == "attentive" else t.space.sample(rng=10 * s, n=2) for s in range(steps)]
    with count_host_reads() as reads:
        for m in middle:
            r = t.train_step(x, y, m)
    t.close()
    assert set(r) == {"loss", "loss_distill"} and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in r.values())
    # the attentive choice: one read of all k candidates' losses per sampled Arch
    assert sum(reads.values()) == reads_per_step * 2 * steps, dict(reads)


def test_supernet_loop_reads_the_losses_once_per_log(tmp_path, monkeypatch):
    from supernas.train.supernet import SupernetTrainer

    t = SupernetTrainer(supernet_config(tmp_path, max_steps=8, batch_size=16) |
                        {"log": {"every_steps": 4, "progress": False, "tensorboard": False},
                         "checkpoint": {"every_steps": 8}})
    monkeypatch.setattr(t, "validate", lambda: {})
    reads_in_steps = Counter()
    step = t.train_step

    def counted_step(*a, **k):
        with count_host_reads() as r:
            out = step(*a, **k)
        reads_in_steps.update(r)
        return out

    monkeypatch.setattr(t, "train_step", counted_step)
    with count_host_reads() as reads:
        t.fit()
    assert sum(reads_in_steps.values()) == 0
    # 2 logs x (.cpu + .tolist), and a few once per run or per epoch (the data order), none per step
    assert reads["cpu"] == 2 and sum(reads.values()) <= 2 * 2 + 3, dict(reads)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["kind"] == "train"] == [4, 8]


def test_standalone_and_fpnas_steps_read_nothing_back(tmp_path):
    from supernas.fpnas.probabilistic import ProbabilisticSearch
    from supernas.train.standalone import StandaloneTrainer

    st = StandaloneTrainer({"run": {"dir": str(tmp_path / "r"), "device": "cpu"}, "arch": "smallest",
                            "space": TINY_NAME, "data": {"path": "digits", "image_size": 12},
                            "train": {"epochs": 1, "batch_size": 16, "workers": 0},
                            "log": {"progress": False, "tensorboard": False}})
    search = ProbabilisticSearch({"run": {"dir": str(tmp_path / "f"), "device": "cpu"}, "space": TINY_NAME,
                                  "data": {"path": "digits", "image_size": 12, "search_size": 0.3},
                                  "train": {"batch_size": 16, "workers": 0},
                                  "log": {"progress": False, "tensorboard": False}})
    x, y = torch.randn(16, 3, 12, 12), torch.randint(0, 10, (16,))
    with count_host_reads() as reads:
        for _ in range(2):
            st.train_step(x, y)
    assert sum(reads.values()) == 0, dict(reads)
    # FP-NAS reads its sampled indices (drawn on the host, where the distribution lives), no loss
    idx = search.distribution.sample(3, search.gen)
    with count_host_reads(floating_only=True) as reads:
        for _ in range(2):
            search.weight_step(x, y, idx)
    assert sum(reads.values()) == 0, dict(reads)


# ---------------------------------------------------------------------------- copies
BATCH = 2


def step_ops(net: SuperNet, arch, channels_last: bool = False, amp: bool = False) -> Counter:
    """Operator counts of one forward + backward of `arch`; `weight copy` counts the copies made by
    `.contiguous()` of weights (not of activations, whose first dimension is the batch)."""
    res = arch.get("resolution", net.space.spec.resolution.choices[0])
    x = torch.randn(BATCH, 3, res, res)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = net(x, arch)
        out.float().sum().backward()
    ops = Counter(e.name for e in prof.events())
    # Casts the product makes (autocast's, and their gradients' back), not those a convolution kernel
    # makes inside itself: which kernels cast depends on the CPU (oneDNN's bf16 backward on CPUs with
    # AVX512-BF16 casts its weights again), and the product does not choose them.
    ops["weight cast"] = sum(e.name == "aten::_to_copy" and len(e.input_shapes[0]) == 4 and e.input_shapes[0][0] != BATCH
                             and not _inside_a_convolution_kernel(e) for e in prof.events())
    ops["weight copy"] = sum(e.name == "aten::clone" and e.cpu_parent is not None and e.cpu_parent.name == "aten::contiguous"
                             and e.input_shapes[0][0] != BATCH for e in prof.events())
    return ops


def _inside_a_convolution_kernel(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(("aten::convolution", "aten::_convolution", "aten::mkldnn", "aten::cudnn",
                                   "aten::miopen", "aten::_slow_conv", "aten::slow_conv", "aten::thnn_conv")):
            return True
        parent = parent.cpu_parent
    return False


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    plain = SuperNet(TINY_NAME, 10)
    return plain, SuperNet(TINY_NAME, 10).to(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_largest_arch_runs_on_the_weights_without_slices_or_copies(tiny_nets, channels_last):
    net = tiny_nets[channels_last]
    ops = step_ops(net, net.space.largest(), channels_last)
    assert ops["SliceBackward0"] == 0  # no slice at full size: its backward would scatter into zeros
    assert ops["weight copy"] == 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_sliced_weights_are_copied_at_most_once_per_convolution(tiny_nets, channels_last):
    net = tiny_nets[channels_last]
    arch = net.space.smallest()
    plain = step_ops(net, arch, channels_last)
    convs = plain["aten::conv2d"]
    # a dense weight (full size, or an output-channel prefix) goes to the convolution as a view
    assert 0 < plain["weight copy"] <= convs
    # under autocast the cast is the one copy (not .contiguous() and then autocast's own cast)
    mixed = step_ops(net, arch, channels_last, amp=True)
    assert mixed["weight copy"] == 0
    assert 0 < mixed["weight cast"] <= 2 * convs  # each weight cast, and its gradient cast back


# ---------------------------------------------------------------------------- policy
def test_cudnn_benchmark_is_off_for_supernets_on_for_static_models():
    from supernas.config.schema import Run
    from supernas.runtime.precision import precision

    auto = Run()
    assert precision(auto, cuda=True, fixed_shapes=False) == (None, False, False)
    assert torch.backends.cudnn.benchmark is False
    assert precision(auto, cuda=True, fixed_shapes=True) == (torch.bfloat16, True, True)
    assert torch.backends.cudnn.benchmark is True
    assert precision(auto, cuda=False, fixed_shapes=True) == (None, False, True)
    asked = Run(amp="bf16", channels_last=True, cudnn_benchmark=True)
    assert precision(asked, cuda=True, fixed_shapes=False) == (torch.bfloat16, True, True)
    torch.backends.cudnn.benchmark = False


@pytest.mark.parametrize("key, value, message", [
    ("cudnn_benchmark", "sometimes", "run.cudnn_benchmark='sometimes' is not allowed: true or false or one of auto"),
    ("channels_last", "maybe", "run.channels_last='maybe' is not allowed: true or false or one of auto"),
    ("amp", "fp16", "run.amp='fp16' is not allowed: one of auto, bf16, fp32"),
    ("amp", 16, "run.amp=16 is not allowed: one of auto, bf16, fp32"),
])
def test_bad_precision_settings_are_one_line_errors(tmp_path, key, value, message):
    from supernas.train.supernet import SupernetTrainer

    cfg = supernet_config(tmp_path)
    cfg["run"][key] = value
    with pytest.raises(SupernasError, match=re.escape(message)):
        SupernetTrainer(cfg)


# ---------------------------------------------------------------------------- loaders
def test_a_persistent_loader_gives_what_a_fresh_one_gives_from_any_position():
    from supernas.data import build_datasets
    from supernas.runtime.data_order import ResumableLoader, ResumableSampler

    data = build_datasets({"path": "digits", "image_size": 8, "train_subset": 160}).train

    def loader():
        return ResumableLoader(data, ResumableSampler(data, 16, seed=3), seed=3, batch_size=16, workers=1)

    kept = loader()
    first = next(kept.epoch(0, 0))  # an epoch left half-way, as a run's last epoch is
    assert first[0].shape == (16, 3, 8, 8)
    later = [x for x, _ in kept.epoch(1, 4)]
    fresh = [x for x, _ in loader().epoch(1, 4)]
    assert len(later) == len(fresh) == 10 - 4
    assert all(torch.equal(a, b) for a, b in zip(later, fresh))
    assert kept.loader.persistent_workers
    kept.close()
    with pytest.raises(RuntimeError, match="closed"):
        kept.epoch(0)


# ---------------------------------------------------------------------------- the suite
def test_gpu_suite_runs_on_the_cpu_with_tiny_settings(tmp_path, bench):
    sys.modules.pop("gpu_suite", None)
    import gpu_suite

    res = gpu_suite.main(["--small", "--device", "cpu", "--out", str(tmp_path), "--only", "train,stage2",
                          "--skip", "sandwich fp32 uniform, cudnn.benchmark on, per step;"
                          "sandwich fp32 uniform, per step over a longer run;"
                          # the same code again in other precisions: on a CPU, only slower
                          "sandwich bf16+cl uniform, recompute_bn_act;extracted static, in turn bf16;"
                          "torchvision mobilenet_v3_large bf16+cl;sandwich bf16+cl BestUp-3;sandwich bf16 uniform;"
                          "sandwich fp32+cl uniform;BN re-calibration + evaluation bf16+cl"])
    saved = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert saved["environment"]["device"] == "cpu"
    rows = {**res["train"], **res["stage2"]}
    failed = {k: v for k, v in rows.items() if "error" in v}
    assert not failed
    assert rows["sandwich fp32 uniform"]["images_per_s"] > 0
    assert rows["sandwich fp32 uniform, recompute_bn_act"]["images_per_s"] > 0
    assert rows["torchvision mobilenet_v3_large fp32"]["cudnn_benchmark"] is True
    assert rows["BN re-calibration + evaluation fp32"]["archs_per_min"] > 0
    assert rows["latency table (batch 1)"]["layers"] > 0
    assert rows["sandwich bf16 uniform, gemm + native depthwise + cuda graphs"]["images_per_s"] > 0  # eager here
    assert "| sandwich fp32 uniform | 4 |" in (tmp_path / "gpu_suite.md").read_text()


def test_loader_bench_times_the_steady_state_over_epochs(tmp_path, bench):
    """The workers' prefetch queue is not counted as throughput, and a dataset shorter than the
    images asked for is read over several epochs (the 16-worker figure once counted a full queue)."""
    from PIL import Image

    sys.modules.pop("loader", None)
    import loader

    for c in range(2):
        (tmp_path / "train" / f"c{c}").mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 20 * c, 0)).save(tmp_path / "train" / f"c{c}" / f"{i}.png")
    train = loader.training_split(tmp_path, 16)
    assert loader.throughput(train, 1, images=40, batch=4) > 0  # 12 images: 4 epochs at least
    res = loader.loader_throughput(tmp_path, [0], images=8, image_size=16, batch=4, per_class=2)
    assert set(res["per_workers"]) == {"cifar10, 0 workers", "imagenet-sized, 0 workers"}


EXITS_WITH_LIVE_WORKERS = """
import torch
from torch.utils.data import Dataset
from supernas.runtime.data_order import ResumableLoader, ResumableSampler

class Data(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        if i == 5 and {failing}:
            raise OSError("unreadable")
        return torch.zeros(3), 0

loader = ResumableLoader(Data(), ResumableSampler(Data(), 4), 0, 4, workers=1)
kept = []
try:
    for batch in loader.epoch(0):
        if not {failing}:
            break  # a run that stops with its loader open
except OSError as e:
    kept.append(e)  # as a caller that keeps the error: its traceback holds the iterator
    loader.close()
"""


@pytest.mark.parametrize("failing", [True, False])
def test_a_process_with_loader_workers_exits(failing):
    """The workers ignore SIGTERM (the main process stops the run at a step boundary), which is how
    multiprocessing ends workers at exit: closed or left open, a loader must not hang the exit."""
    code = EXITS_WITH_LIVE_WORKERS.format(failing=failing)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
