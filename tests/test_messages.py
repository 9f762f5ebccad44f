"""Messages that said the wrong thing, or nothing, now say what is wrong and what
to do, in one line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from supernas import SupernasError
from supernas.cli import main
from supernas.search import parse_budgets
from supernas.train.supernet import SupernetTrainer

from tiny_runs import FAST_SCORING, TINY_NAME, TINY_TRAIN

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "src" / "supernas" / "configs"


def one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("config, dataset", [("attentivenas_cifar10.yaml", "the CIFAR-10 folder"),
                                             ("attentivenas_imagenet.yaml", "the ImageNet folder")])
def test_a_dataset_config_requires_its_path(config, dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(CONFIGS / config), f"run.dir={run}"]) == 2
    err = one_line_error(capsys)
    assert f"data.path is required by {CONFIGS / config}: give data.path=... ({dataset}" in err
    assert not run.exists()  # nothing trained on digits instead
    # given, the path is the one used: a missing folder is named
    assert main(["train", str(CONFIGS / config), f"run.dir={run}", f"data.path={tmp_path / 'nowhere'}"]) == 2
    assert "nowhere" in one_line_error(capsys)
    # showing the config needs no path: it says what is still to give
    assert main(["config", "show", "train", str(CONFIGS / config)]) == 0
    assert f"??? {dataset}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def other_runs(tmp_path_factory):
    """A finished FP-NAS search and a finished retrain: run directories of other commands than train."""
    root = tmp_path_factory.mktemp("other_runs")
    assert main(["fpnas", str(CONFIGS / "fpnas_digits_quick.yaml"), f"run.dir={root / 'fpnas'}", "train.epochs=1",
                 "train.max_steps=1", "search.arch_warmup_epochs=0", "search.switch_epoch=0", "run.threads=1",
                 "log.progress=false", "log.tensorboard=false", "data.train_subset=128"]) == 0
    assert main(["retrain", "smallest", str(CONFIGS / "retrain_digits_quick.yaml"), f"run.dir={root / 'retrain'}",
                 "train.max_steps=1", "run.threads=1", "log.progress=false", "log.tensorboard=false"]) == 0
    return root


@pytest.mark.parametrize("argv", [["search", "--budgets", "2"], ["predictor", "fit"], ["export", "--arch", "a0"]])
def test_a_stage2_command_on_another_commands_run_says_what_it_is(argv, other_runs, capsys):
    capsys.readouterr()
    for kind, what, instead in [("fpnas", "is an FP-NAS search (`supernas fpnas`)", "`supernas retrain"),
                                ("retrain", "is a standalone training (`supernas retrain`)", "`supernas eval")]:
        run = other_runs / kind
        assert main([argv[0], *argv[1:2], str(run), *argv[2:]] if argv[0] == "predictor"
                    else [argv[0], str(run), *argv[1:]]) == 2
        err = one_line_error(capsys)
        assert f"'{run}' {what}" in err and instead in err and "supernet runs of `supernas train`" in err
        assert "unknown config key" not in err


def test_export_before_the_first_checkpoint_says_there_are_no_weights_yet(tmp_path, capsys, run_until_crash):
    run = tmp_path / "run"
    config = {"run": {"dir": str(run), "device": "cpu"}, "space": TINY_NAME,
              "data": {"path": "digits", "image_size": 12, "train_subset": 128},
              "train": {"epochs": 1, "batch_size": 32, "workers": 0}, "log": {"progress": False, "tensorboard": False}}
    run_until_crash(SupernetTrainer, config, 0)  # a training that has written its config but no checkpoint yet
    assert (run / "config.yaml").is_file() and not (run / "checkpoint.pt").exists()
    capsys.readouterr()
    assert main(["export", str(run), "--arch", "a0", "--device", "cpu"]) == 2
    err = one_line_error(capsys)
    assert "holds no trained weights yet (no checkpoint.pt)" in err and "--resume" not in err


def test_a_zero_step_of_a_budget_range_is_named_as_the_step(capsys):
    with pytest.raises(SupernasError, match=r"the step 0 of budget range '1:2:0' must be a positive MFLOPs value"):
        parse_budgets("1:2:0")
    with pytest.raises(SupernasError, match=r"the step -1 of budget range '1:2:-1' must be a positive ms value"):
        parse_budgets("1:2:-1", "ms")
    with pytest.raises(SupernasError, match=r"^budget 0 must be a positive MFLOPs value"):
        parse_budgets("0:2:1")  # a zero budget is still a budget
    assert main(["search", "nowhere", "--budgets", "1:2:0"]) == 2
    err = one_line_error(capsys)
    assert "the step 0 of budget range '1:2:0'" in err and "budget 0 " not in err


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_a_budget_above_the_largest_arch_warns(strategy, trained_run, capsys):
    # the dry run builds the search as the search does, and scores only a few Archs
    argv = ["search", str(trained_run), "--budgets", "2,100", *FAST_SCORING, "--population", "4", "--mutations", "0",
            "--crossovers", "0", "--generations", "0", "--strategy", strategy, "--dry-run"]
    assert main(argv) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warning == ["supernas: warning: budget 100 MFLOPs is above the largest Arch of space 'attentivenas-tiny' "
                       "(4.087 MFLOPs): every Arch fits, so each searches the whole space; budgets up to 4.087 MFLOPs "
                       "cover it"]
    assert main([*argv[:3], "2,3", *argv[4:]]) == 0
    assert "warning" not in capsys.readouterr().err


def test_sample_into_a_reader_that_leaves_ends_quietly():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run(["bash", "-c", "set -o pipefail; " + f"'{sys.executable}' -m supernas.cli sample --space "
                        "attentivenas -n 2000 --seed 0 | head -1"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert len(r.stdout.splitlines()) == 1 and "arch" in json.loads(r.stdout)


@pytest.mark.parametrize("command", [["train"], ["fpnas"], ["retrain", "smallest"]])
def test_a_bad_value_fails_before_the_header(command, tmp_path, capsys):
    assert main([*command, f"run.dir={tmp_path / 'r'}", *TINY_TRAIN[:1], "train.epochs=two"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "train.epochs='two' is not allowed" in err
    assert not (tmp_path / "r").exists()
