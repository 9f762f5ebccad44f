"""Nothing a user made is overwritten, no value silently falls back to a default, checks
come before work and messages say what is wrong."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from supernas.cli import main
from supernas.config import SupernetConfig, load_config, parse_override
from supernas.errors import SupernasError

from tiny_runs import FAST_SCORING, TINY_TRAIN

TINY = "attentivenas-tiny"


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("supernas ")]
    assert lines and "Traceback" not in err, err
    return lines[-1]


# ---------------------------------------------------------------------------- 1, 2: a user's files
@pytest.mark.parametrize("override", ["run.dir=", "run.dir= ", "data.path="])
def test_an_empty_run_dir_or_data_path_is_refused(override, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'r'}", override]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "is empty" in line and override.split("=")[0] in line
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("flag", [["search", "RUN", "--budgets", "2", "--out", ""],
                                  ["export", "RUN", "--arch", "a0", "--out", ""],
                                  ["predictor", "offline-sets", "RUN", "--out", ""],
                                  ["eval", "RUN", "--data", ""],
                                  ["quickstart", "--dir", ""]])
def test_an_empty_output_or_data_flag_is_refused(flag, tmp_path, capsys):
    argv = [str(tmp_path) if a == "RUN" else a for a in flag]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "is empty" in line and f"--{'dir' if 'quickstart' in flag else 'out' if '--out' in flag else 'data'}" \
        in line


def test_train_does_not_write_among_a_users_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own\n")
    (mine / "log.txt").write_text("my notes\n")
    assert main(["train", *TINY_TRAIN, f"run.dir={mine}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds files supernas did not write (config.yaml, log.txt)" in line and "run.dir" in line
    assert sorted(os.listdir(mine)) == ["config.yaml", "log.txt"]
    assert (mine / "config.yaml").read_text() == "my: own\n"


def test_search_out_into_a_users_folder_is_refused(run_copy, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["search", str(run_copy), "--budgets", "2", "--population", "2", "--generations", "1",
                 *FAST_SCORING, "--out", str(mine)]) == 2
    assert "holds files supernas did not write (notes.txt)" in _one_line(capsys.readouterr().err)
    assert os.listdir(mine) == ["notes.txt"]


def test_export_out_into_a_users_folder_needs_force(run_copy, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    from supernas.spaces import get_space

    smallest = json.dumps(get_space(TINY).smallest().to_dict())
    argv = ["export", str(run_copy), "--arch", smallest, "--bn-batches", "1", "--device", "cpu", "--out", str(mine)]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds files supernas did not write (notes.txt)" in line and "--force" in line
    assert os.listdir(mine) == ["notes.txt"]
    assert main(argv + ["--force"]) == 0
    assert (mine / "notes.txt").read_text() == "mine" and (mine / "arch.json").is_file()


def test_import_goes_into_a_new_or_empty_folder_only(tmp_path, capsys):
    from supernas.nn import SuperNet

    path = tmp_path / "c.pth.tar"
    torch.save(SuperNet(TINY, 10).reference_checkpoint(), path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("my: own\n")
    assert main(["import", "attentivenas", str(path), "--space", TINY, "--out", str(out)]) == 2
    assert "is not empty; import into a new or empty folder" in _one_line(capsys.readouterr().err)
    assert (out / "config.yaml").read_text() == "my: own\n" and os.listdir(out) == ["config.yaml"]
    (out / "config.yaml").unlink()
    assert main(["import", "attentivenas", str(path), "--space", TINY, "--out", str(out)]) == 0


# ---------------------------------------------------------------------------- 3: ~ is a path
def test_tilde_overrides_are_paths_not_null(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_override("data.path=~") == (["data", "path"], "~")
    assert parse_override("run.dir=~/runs/a") == (["run", "dir"], "~/runs/a")
    assert parse_override("data.image_size=null") == (["data", "image_size"], None)
    cfg = load_config(SupernetConfig, None, ["data.path=~", "run.dir=~/runs/a"])
    assert cfg.data.path == "~" and cfg.run.dir == "~/runs/a"
    # the home folder is no dataset: an error naming it, not a silent run on the built-in digits
    assert main(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'r'}", "data.path=~", "--dry-run"]) == 2
    assert f"'{tmp_path}'" in _one_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------- 4: duplicate keys
def test_a_config_with_a_key_twice_is_refused_naming_both_lines(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochs: 8\n  lr: 0.4\nlog:\n  every_steps: 2\ntrain:\n  epochs: 360\n")
    assert main(["config", "show", "train", str(config)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "key 'train' appears twice, on line 1 and on line 6" in line and str(config) in line
    config.write_text("train:\n  epochs: 8\n  epochs: 9\n")
    with pytest.raises(SupernasError, match="key 'epochs' appears twice, on line 2 and on line 3"):
        load_config(SupernetConfig, config)


def test_a_space_file_with_a_key_twice_is_refused(tmp_path):
    from supernas.spaces import get_space

    f = tmp_path / "space.yaml"
    f.write_text("name: mine\nresolution: [32]\nname: other\n")
    with pytest.raises(SupernasError, match="key 'name' appears twice, on line 1 and on line 3"):
        get_space(str(f))


def test_a_yaml_tab_error_names_line_and_column(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n\tepochs: 8\n")
    with pytest.raises(SupernasError, match=r"tab.*line 2, column 1"):
        load_config(SupernetConfig, config)


# ---------------------------------------------------------------------------- 5: 16-bit images
def _image_folder(root: Path, images: dict[str, "np.ndarray"]) -> Path:
    from PIL import Image

    for name, array in images.items():
        for split in ("train", "val"):
            for label in ("a", "b"):
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(folder / name)
    return root


def test_a_16_bit_png_is_scaled_to_8_bits_and_a_float_image_refused(tmp_path, capsys):
    import numpy as np

    from supernas.data.datasets import decode_image, read_image

    ramp = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    root = _image_folder(tmp_path / "d", {"wide.png": ramp, "plain.png": np.full((32, 32, 3), 7, np.uint8)})
    image = np.asarray(read_image(str(root / "train" / "a" / "wide.png")))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    expected = np.round(ramp.astype(np.float64) * 255 / 65535)
    assert np.abs(image[..., 0].astype(np.float64) - expected).max() <= 1  # not clipped to white
    assert abs(image.mean() - expected.mean()) < 1 and image.mean() < 200

    from PIL import Image

    Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(root / "train" / "a" / "float.tiff")
    assert "mode F" in decode_image(str(root / "train" / "a" / "float.tiff"))[1]
    assert main(["data", "check", str(root), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "float.tiff: a floating-point image (PIL mode F)" in out and "wide.png" not in out


# ---------------------------------------------------------------------------- 6: image_size null
def test_image_size_null_takes_the_median_of_several_images_and_warns(tmp_path):
    import numpy as np

    from supernas.data import build_datasets
    from supernas.errors import SupernasWarning

    images = {f"{i:02d}.png": np.zeros((24, 24, 3), np.uint8) for i in range(1, 9)}
    images["00.png"] = np.zeros((1, 1, 3), np.uint8)  # a stray 1x1 that sorts first
    root = _image_folder(tmp_path / "d", images)
    with pytest.warns(SupernasWarning, match=r"differ in size \(1 to 24 px.*median, 24 px"):
        data = build_datasets({"path": str(root)})
    assert data.image_size == 24
    assert build_datasets({"path": str(root), "image_size": 16}).image_size == 16  # no warning needed
    tiny = _image_folder(tmp_path / "t", {"a.png": np.zeros((2, 2, 3), np.uint8)})
    with pytest.raises(SupernasError, match="2 px, below the 3 px"):
        build_datasets({"path": str(tiny)})
    with pytest.raises(SupernasError, match="data.image_size is 1 px"):
        build_datasets({"path": str(root), "image_size": 1})


# ---------------------------------------------------------------------------- 7, 9: predictor sizes
@pytest.mark.parametrize("flags, message", [(["-n", "0"], "-n must be"), (["--bin-width", "nan"], "--bin-width"),
                                            (["--bin-width", "inf"], "--bin-width")])
def test_offline_sets_refuses_zero_archs_and_a_nan_bin_width(flags, message, tmp_path, capsys):
    assert main(["predictor", "offline-sets", str(tmp_path), *flags]) == 2
    assert message in _one_line(capsys.readouterr().err)
    from supernas.search.predictor_runs import offline_sets_run

    with pytest.raises(SupernasError, match="-n must be"):
        offline_sets_run(tmp_path, n=0)
    with pytest.raises(SupernasError, match="--bin-width must be a finite"):
        offline_sets_run(tmp_path, bin_width=float("nan"))


@pytest.mark.parametrize("n, holdout, message", [(1000, 1.0, "--holdout must be a fraction in [0, 1)"),
                                                 (1000, float("nan"), "--holdout must be a fraction in [0, 1)"),
                                                 (4, 0.2, "-n 4 with --holdout 0.2 holds out 1 Arch(s)")])
def test_predictor_fit_sizes_are_checked_before_any_arch_is_scored(n, holdout, message, trained_run, monkeypatch,
                                                                   capsys):
    from supernas.search import predictor_runs

    def no_work(*args, **kwargs):
        raise AssertionError("the run was loaded before the sizes were checked")
    monkeypatch.setattr(predictor_runs, "load_run", no_work)
    with pytest.raises(SupernasError) as e:
        predictor_runs.fit_predictor_run(trained_run, n=n, holdout=holdout)
    assert message in str(e.value)
    if n == 4:
        assert "evaluate at least 8 Archs" in str(e.value)
        assert main(["predictor", "fit", str(trained_run), "-n", "4", *FAST_SCORING]) == 2
        assert message in _one_line(capsys.readouterr().err)


def test_a_space_smaller_than_n_is_said(monkeypatch):
    from supernas.errors import SupernasWarning
    from supernas.search import predictor_runs
    from supernas.spaces import get_space

    space = get_space(TINY)
    two = [space.smallest(), space.largest()]

    class TwoArchs:  # a space of two Archs
        size, name = 2, "two"

        def sample(self, rng, k):
            return [two[i] for i in rng.integers(0, 2, k)]

    class Net(torch.nn.Linear):
        pass

    net = Net(1, 1)
    net.space = TwoArchs()

    class Scorer:
        def __init__(self, *args, **kwargs):
            pass

        def evaluate_many(self, archs, progress=False):
            return [{"top1": 50.0} for _ in archs]
    monkeypatch.setattr(predictor_runs, "Evaluator", Scorer)
    monkeypatch.setattr(predictor_runs, "score_source", lambda *a: {})
    with pytest.warns(SupernasWarning, match="the space has 2 Archs: scoring the 2 there are, not the 8 of -n"):
        archs, top1, _ = predictor_runs._evaluate_random(net, None, 8, 0, 1, 1)
    assert sorted(map(str, archs)) == sorted(map(str, two))
    with pytest.raises(SupernasError, match=r"the 2 Archs of space two.*--holdout 0"):
        predictor_runs.check_fit_sizes(2, 0.5, " (the 2 Archs of space two)")


# ---------------------------------------------------------------------------- 10: messages
def test_sampling_without_a_range_never_says_widen_the_range():
    import numpy as np

    from supernas.sampling import sample_in_range
    from supernas.spaces import CostModel, get_space

    space = get_space(TINY)
    idx = sample_in_range(space, CostModel(space), np.random.default_rng(0), 30_000, -np.inf, np.inf,
                          max_trials=20_000)
    assert len(idx) == 30_000


def test_out_of_memory_on_the_cpu_does_not_suggest_the_cpu(capsys, monkeypatch):
    import supernas.cli as cli

    def cpu_out_of_memory(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 602112000000 bytes.")
    monkeypatch.setitem(cli.COMMANDS, "eval", cpu_out_of_memory)
    assert main(["eval", "x", "--latency-batch", "60000", "--device", "cpu", "--threads", "1"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "out of memory in the CPU's RAM: lower --batch-size (now 256) or --latency-batch (now 60000)" in line
    assert "--device cpu" not in line


def test_export_pick_reads_a_search_written_with_out(tmp_path, capsys):
    from supernas.cli import build_parser
    from supernas.search.picking import picked_entry

    args = build_parser().parse_args(["export", "RUN", "--pick", "100", "--search", "elsewhere"])
    assert args.search == "elsewhere"
    with pytest.raises(SupernasError, match="--search DIR"):
        picked_entry(str(tmp_path / "run" / "search"), 100)


# ---------------------------------------------------------------------------- 11: SIGTERM to data check
@pytest.mark.parametrize("when", ["decoding", "starting"])  # a worker busy, or one not yet past its set-up
def test_sigterm_to_data_check_with_workers_is_one_line_and_status_130(tmp_path, when):
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    root = _image_folder(tmp_path / "d", {f"{i}.png": np.zeros((8, 8, 3), np.uint8) for i in range(40)})
    started = tmp_path / "started"
    script = (
        "import sys, time\n"
        "import supernas.data.check as check\n"
        "def slow(*path):\n"
        f"    open({str(started)!r}, 'a').close()\n"
        "    time.sleep(0.5)\n"
        + ("check._check_file = slow\n" if when == "decoding" else
           "set_up = check._worker_signals\n"
           "check._worker_signals = lambda: (slow(), set_up())\n") +
        "from supernas.cli import main\n"
        f"sys.exit(main(['data', 'check', {str(root)!r}, '--workers', '2']))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        for _ in range(1200):
            if started.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert started.exists(), proc.communicate()
        os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler stops a job: the whole process group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    assert err.strip() == "supernas data: interrupted", err


# ---------------------------------------------------------------------------- 8: an export names its checkpoint
def test_export_records_its_checkpoint_and_says_when_the_run_still_trains(run_copy, tmp_path, capsys):
    from supernas.runtime.checkpoint import load_checkpoint
    from supernas.spaces import get_space
    from supernas.utils.lock import DirectoryLock

    step = load_checkpoint(run_copy)["step"]
    arch = json.dumps(get_space(TINY).smallest().to_dict())
    argv = ["export", str(run_copy), "--arch", arch, "--bn-batches", "1", "--device", "cpu", "--threads", "1"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    origin = json.loads((tmp_path / "a" / "arch.json").read_text())["made_by"]["checkpoint"]
    assert origin["step"] == step and origin["epoch"] > 0 and origin["training"] is False
    assert "still training" not in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "a"), "--data", "digits", "--threads", "1", "--device", "cpu"]) == 0
    assert f"step {step}  epoch {origin['epoch']:.2f}" in capsys.readouterr().out
    with DirectoryLock(run_copy, "run.dir"):  # as a training still writing the run holds it
        assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert f"is still training: this uses its checkpoint of step {step}" in err
    assert json.loads((tmp_path / "b" / "arch.json").read_text())["made_by"]["checkpoint"]["training"] is True


@pytest.mark.parametrize("content, says", [(bytes(range(7, 200)), "is not a PyTorch checkpoint: neither the zip"),
                                           (b"", "(it is empty)"),
                                           (b"PK\x03\x04broken", "is a zip archive as torch.save writes, but no"),
                                           (b"\x80\x04\x95\x00", "is a pickle, but not one of tensors")])
def test_importing_a_file_that_is_no_checkpoint_says_what_it_is_not(content, says, tmp_path, capsys):
    path = tmp_path / "c.pth.tar"
    path.write_bytes(content)
    assert main(["import", "attentivenas", str(path), "--out", str(tmp_path / "run")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert says in line and "file an issue" not in line and len(line) < 400


def test_a_published_model_asked_of_another_space_names_its_space(capsys):
    assert main(["flops", "--space", TINY, "--arch", "a0"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "'a0' is a published model of the space 'attentivenas' (a0..a6), not of 'attentivenas-tiny'" in line


def test_long_arch_values_are_cut_in_messages(tmp_path, capsys):
    from supernas.spaces import get_space

    arch = get_space(TINY).smallest().to_dict()
    for key, value in (("resolution", list(range(100_000))), ("x" * 100_000, 1), ("resolution", "y" * 100_000)):
        f = tmp_path / "arch.json"
        f.write_text(json.dumps({**arch, key: value}))
        assert main(["flops", "--space", TINY, "--arch", str(f)]) == 2
        line = _one_line(capsys.readouterr().err)
        assert len(line) < 1000 and "characters)" in line


def test_config_show_quotes_a_path_yaml_would_read_as_null(capsys):
    assert main(["config", "show", "train", "data.path=~", "run.dir=~/runs"]) == 0
    out = capsys.readouterr().out
    assert "  path: '~'  #" in out and "  dir: ~/runs  #" in out
    from supernas.utils.settings import _reads_as_other

    assert _reads_as_other("yes") and _reads_as_other("~") and _reads_as_other("a: [") and not _reads_as_other("runs")
