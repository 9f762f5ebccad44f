"""Bad input ends in one line, exit status 2, never a traceback: typed
values, nothing-to-run settings, space files and Arch values, wrong checkpoints and a full disk."""
import errno
import json
import os

import pytest
import torch

from supernas.cli import main

from cli_errors import one_line
from tiny_runs import TINY, TINY_NAME


# ---------------------------------------------------------------------------- items 5 and 8: typed values
@pytest.mark.parametrize("override, message", [
    ("train.epochs=abc", "train.epochs='abc' is not allowed: an integer >= 1"),
    ("train.batch_size=0", "train.batch_size=0 is out of range: an integer >= 1"),
    ("train.batch_size=-4", "train.batch_size=-4 is out of range: an integer >= 1"),
    ("train.batch_size=2.5", "train.batch_size=2.5 is not allowed: an integer >= 1"),
    ("train.lr=-1", "train.lr=-1 is out of range: a number > 0"),
    ("checkpoint.every_steps=0", "checkpoint.every_steps=0 is out of range: an integer >= 1"),
    ("log.every_steps=0", "log.every_steps=0 is out of range: an integer >= 1"),
    ("train.workers=-1", "train.workers=-1 is out of range: an integer >= 0"),
    ("train.dropout=1.5", "train.dropout=1.5 is out of range: a number in [0, 1)"),
    ("run.seed=abc", "run.seed='abc' is not allowed: an integer >= 0"),
    ("train.epochs=0", "train.epochs=0 is out of range: an integer >= 1"),  # item 5: nothing would run
    ("train.max_steps=0", "train.max_steps=0 is out of range: an integer >= 1 (or null)"),
    ("run.device=cuda:99", "device 'cuda:99'"),
    ("run.device=tpu", "device 'tpu'"),
    ("data.on_bad_image=ignore", "data.on_bad_image='ignore' is not allowed: one of error, skip"),
])
@pytest.mark.parametrize("command", ["train", "fpnas"])
def test_each_bad_value_is_one_line_and_nothing_runs(tmp_path, capsys, command, override, message):
    run = tmp_path / "run"
    if command == "fpnas" and override.startswith("train.dropout"):
        message = "unknown config key 'train.dropout'"  # FP-NAS trains without dropout
    assert main([command, f"run.dir={run}", "data.path=digits", override]) == 2
    assert message in one_line(capsys)
    assert not run.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_a_cuda_device_without_a_gpu_is_one_line(tmp_path, capsys):
    assert main(["train", f"run.dir={tmp_path / 'run'}", "run.device=cuda", "data.path=digits"]) == 2
    assert "device 'cuda' asks for a CUDA GPU, but this machine has none" in one_line(capsys)


def test_a_lowercase_yaml_number_is_a_number(tmp_path):
    from supernas.config import SupernetConfig, load_config

    f = tmp_path / "c.yaml"
    f.write_text("train: {lr: 1e-3, weight_decay: 5e-5}\n")  # YAML 1.1 reads both as strings
    cfg = load_config(SupernetConfig, f)
    assert cfg.train.lr == 1e-3 and cfg.train.weight_decay == 5e-5


# ---------------------------------------------------------------------------- item 9: space files and Arch values
SPACE = """name: toy
resolution: [16, 24]
stem: {width: 8, stride: STEM}
stages:
  - {name: s1, width: [8, WIDTH], depth: [1, 2], kernel: [3, KERNEL], expand: [1, 4], stride: STRIDE}
head: {kind: conv, width: 32}
"""


@pytest.mark.parametrize("text, message", [
    ("name: toy\nstages: [1, 2\n", "is not valid YAML (expected ',' or ']', but got '<stream end>' at line 3"),
    ("", "it is empty; give a space definition"),
    ("- a list\n", "a search space must be a mapping"),
    (SPACE.replace("STRIDE", "two"), "toy.s1.stride='two' is not allowed: 1 or 2"),
    (SPACE.replace("STEM", "0"), "toy.stem.stride=0 is not allowed: 1 or 2"),
    (SPACE.replace("KERNEL", "5.5"), "toy.s1.kernel=5.5 is not allowed: an odd integer >= 1"),
    (SPACE.replace("KERNEL", "4"), "toy.s1.kernel=4 is not allowed: an odd integer >= 1"),
    (SPACE.replace("WIDTH", "8.5"), "toy.s1.width=8.5 is not allowed: an integer >= 1"),
    (SPACE.replace("WIDTH", "[16]"), "toy.s1.width=[16] is not allowed: an integer >= 1"),
    (SPACE.replace("[16, 24]", "[1, 24]"), "toy.resolution=1 is not allowed: at least 4 px"),
    (SPACE.replace("[16, 24]", "3"), "toy.resolution=3 is not allowed: at least 4 px"),
    (SPACE.replace("stages:\n  -", "stages:\n  - 7\n  -"), "toy.stages[0] must be a mapping"),
    (SPACE.replace("conv", "dense"), "toy.head.kind='dense' is not allowed: one of mbpool, conv"),
])
def test_a_bad_space_file_is_one_line_naming_field_value_and_rule(tmp_path, capsys, text, message):
    f = tmp_path / "space.yaml"
    f.write_text(text.replace("STEM", "2").replace("WIDTH", "16").replace("KERNEL", "5").replace("STRIDE", "2"))
    assert main(["flops", "--space", str(f), "--arch", "{}"]) == 2
    line = one_line(capsys)
    assert f"space file '{f}': " in line and message in line, line


def test_the_packaged_spaces_and_configs_stay_valid():
    from pathlib import Path

    import yaml

    from supernas.spaces import get_space, list_spaces

    for name in list_spaces():
        get_space(name)
    configs = Path(__file__).resolve().parents[1] / "src" / "supernas" / "configs"
    for f in configs.glob("*.yaml"):
        space = yaml.safe_load(f.read_text()).get("space")
        if space is not None:
            get_space(space)


@pytest.mark.parametrize("value", [[12, 16], {"a": 1}])
def test_an_arch_value_that_is_a_list_or_a_mapping_is_one_line(run_copy, tmp_path, capsys, value):
    arch = {**TINY.smallest().to_dict(), "resolution": value}
    rule = f"field 'resolution' has value {value!r}, which is not allowed; allowed: 12, 16"
    assert main(["flops", "--space", TINY_NAME, "--arch", json.dumps(arch)]) == 2
    assert rule in one_line(capsys)
    assert main(["export", str(run_copy), "--arch", json.dumps(arch), "--device", "cpu"]) == 2
    assert rule in one_line(capsys)
    assert main(["retrain", json.dumps(arch), f"space={TINY_NAME}", f"run.dir={tmp_path / 'r'}", "data.path=digits",
                 "run.device=cpu"]) == 2
    assert rule in one_line(capsys)


# ---------------------------------------------------------------------------- item 10: wrong files
@pytest.mark.parametrize("content, what", [({"foo": 1}, "holds no supernet weights"),
                                           ([1, 2], "holds no supernet weights"),
                                           ({"model": {"classifier.weight": torch.zeros(3, 192)}},
                                            "do not fit the supernet of its space")])
def test_stage_2_on_a_checkpoint_with_the_wrong_content_is_one_line(run_copy, capsys, content, what):
    torch.save(content, run_copy / "checkpoint.pt")
    assert main(["search", str(run_copy), "--budgets", "30", "--device", "cpu"]) == 2
    assert what in one_line(capsys)


def test_an_fpnas_checkpoint_given_to_train_is_one_line(tmp_path, capsys):
    from tiny_runs import fpnas_config

    from supernas.fpnas.probabilistic import ProbabilisticSearch

    run = tmp_path / "fpnas"
    ProbabilisticSearch(fpnas_config(run, max_steps=1)).fit()
    capsys.readouterr()
    assert main(["train", f"run.dir={run}", "data.path=digits", "run.device=cpu", "--resume"]) == 2
    assert "was written by `supernas fpnas`, not `supernas train`" in one_line(capsys)


def test_an_fpnas_run_dir_is_locked(tmp_path):
    from tiny_runs import fpnas_config

    from supernas import SupernasError
    from supernas.fpnas.probabilistic import ProbabilisticSearch
    from supernas.utils.lock import DirectoryLock

    run = tmp_path / "fpnas"
    with DirectoryLock(run), pytest.raises(SupernasError, match="is in use by another supernas process"):
        ProbabilisticSearch(fpnas_config(run, max_steps=1)).fit()
    assert not (run / "checkpoint.pt").exists()


def test_a_full_disk_is_one_line_naming_the_file_and_the_space_it_needed(tmp_path, capsys, monkeypatch):
    real_fsync = os.fsync

    def full(fd):  # the device fills up as the checkpoint is flushed
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".checkpoint.pt."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    run = tmp_path / "run"
    assert main(["train", f"run.dir={run}", f"space={TINY_NAME}", "data.path=digits", "data.image_size=12",
                 "data.train_subset=64", "train.batch_size=32", "train.max_steps=1", "train.workers=0",
                 "sampler.kind=uniform", "run.device=cpu", "log.progress=false", "log.tensorboard=false"]) == 2
    line = one_line(capsys)
    assert f"no space left on the device to write '{run / 'checkpoint.pt'}' (" in line and "MiB needed" in line, line
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []


def test_a_full_disk_on_any_other_write_is_one_line(tmp_path, capsys, monkeypatch):
    import supernas.cli as cli

    def spaces(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "log.txt"))

    monkeypatch.setitem(cli.COMMANDS, "spaces", spaces)
    assert main(["spaces"]) == 2
    assert f"no space left on the device to write '{tmp_path / 'log.txt'}'" in one_line(capsys)


def test_a_torch_built_for_numpy_1_beside_numpy_2_is_one_line_naming_the_fix(tmp_path, capsys, monkeypatch):
    # torch 2.1 and 2.2 raise this from every array exchange when NumPy 2 is installed (pip picks
    # NumPy 2 for them, as they do not pin it); here the exchange is made to fail as theirs does
    import torch

    def from_numpy(array):
        raise RuntimeError("Numpy is not available")

    monkeypatch.setattr(torch, "from_numpy", from_numpy)
    assert main(["train", f"run.dir={tmp_path / 'run'}", f"space={TINY_NAME}", "data.path=digits",
                 "data.image_size=12", "train.max_steps=1", "train.workers=0", "run.device=cpu",
                 "log.progress=false", "log.tensorboard=false"]) == 2
    line = one_line(capsys)
    assert f"torch {torch.__version__} cannot exchange arrays with the installed NumPy" in line, line
    assert "pip install 'numpy<2', or use torch 2.3 or newer" in line, line
