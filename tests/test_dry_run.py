"""`--dry-run` on train, fpnas, retrain, finetune and search prints the resolved
config, the data, the steps and an estimate of the wall time from a few timed steps, then exits
without writing the run."""
import json
import re
from pathlib import Path

import pytest
from tiny_runs import FAST_SCORING, TINY, TINY_TRAIN

from supernas.cli import build_parser, main

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "supernas" / "configs"


def listing(folder: Path) -> list:
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*") if p.is_file())


def check_training_dry_run(out: str, data: str, steps: str, phases=("training steps",)) -> None:
    assert out.startswith("# the resolved config\nrun:\n")
    assert "checkpoint:\n  every_steps:" in out and "every_minutes: 10.0" in out
    assert "# dry run: nothing is written" in out
    assert data in out  # the data found: counts, classes, image size
    assert re.search(r"threads: \d+ intra-op", out)
    assert steps in out
    for phase in phases:
        assert re.search(rf"timed \d of the {re.escape(phase)} on cpu: [\d.e-]+ s a step \(\d+ images/s\)", out)
    assert re.search(r"^estimate: about \S+ in all: ", out, re.M)


def test_train(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", f"run.dir={run}", *TINY_TRAIN, "--dry-run"]) == 0
    out = capsys.readouterr().out
    check_training_dry_run(out, "digits: 256 train, 359 val, 10 classes, 12 px",
                           "steps: 0 to 4 (0.5 epochs of 8 steps)")
    assert re.search(r"1 validation\(s\) of \S+ \(the smallest and largest Archs", out)
    assert not run.exists()


def test_resume_dry_run_leaves_the_run_as_it_was(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", f"run.dir={run}", *TINY_TRAIN, "train.max_steps=2"]) == 0
    before = listing(run)
    capsys.readouterr()
    assert main(["train", f"run.dir={run}", *TINY_TRAIN, "train.max_steps=6", "--resume", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "steps: 2 to 6 (0.75 epochs of 8 steps, resumed from its checkpoint)" in out
    assert listing(run) == before


def test_fpnas_times_each_phase(tmp_path, capsys):
    run = tmp_path / "fp"
    assert main(["fpnas", str(CONFIGS / "fpnas_digits_quick.yaml"), f"run.dir={run}", "train.epochs=2",
                 "search.arch_warmup_epochs=1", "search.switch_epoch=1", "run.threads=1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    check_training_dry_run(out, "digits: 1007 train, 359 val, 431 search, 10 classes, 16 px",
                           "steps: 0 to 30 (2 epochs of 15 steps)",
                           ("weight steps (alpha frozen)", "weight and architecture steps (K up to 8)"))
    assert "15 weight steps (alpha frozen)" in out and "15 weight and architecture steps" in out
    # and the end's scoring of the top Archs (search.score_images)
    assert re.search(r"1 validation\(s\) of \S+ \(the top 5 Archs, each after BatchNorm re-calibration on \d+ "
                     r"batches( \(bn_batches \d+: the training split holds \d+ batches of \d+\))?: top-1 on 431 search "
                     r"images\)", out)
    assert not run.exists()


def test_retrain(tmp_path, capsys):
    run = tmp_path / "re"
    assert main(["retrain", "smallest", str(CONFIGS / "retrain_digits_quick.yaml"), f"run.dir={run}",
                 "run.threads=1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    check_training_dry_run(out, "digits: 1438 train, 359 val, 10 classes, 16 px", "steps: 0 to 132 (6 epochs")
    assert re.search(r"3 validation\(s\) of \S+ \(top-1 of the raw and EMA weights on 359 val images\)", out)
    assert not run.exists()


def test_finetune(run_copy, tmp_path, capsys):
    model = tmp_path / "model"
    smallest = json.dumps(TINY.smallest().to_dict())
    assert main(["export", str(run_copy), "--arch", smallest, "--out", str(model), *FAST_SCORING]) == 0
    capsys.readouterr()
    run = tmp_path / "ft"
    assert main(["finetune", str(model), str(CONFIGS / "finetune_digits_quick.yaml"), f"run.dir={run}",
                 "data.image_size=12", "run.threads=1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    check_training_dry_run(out, "digits: 1438 train, 359 val, 10 classes, 12 px", "steps: 0 to 88 (4 epochs")
    assert not run.exists()


def test_search_shows_the_cost_of_the_paper_defaults(trained_run, capsys):
    assert main(["search", str(trained_run), "--budgets", "2,3", "--device", "cpu", "--threads", "1",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "per budget (evolution): a population of 512, then 20 generations of 128 mutations and 128 crossovers: " \
           "up to 5632 Archs scored (11264 for all budgets" in out
    assert "data digits: 256 train, 359 val, 100 search, 10 classes, 12 px" in out
    seconds = float(re.search(r"about ([\d.e-]+) s an Arch", out).group(1))
    estimate = re.search(r"^estimate: up to 11264 Archs x [\d.e-]+ s = about (\S+)$", out, re.M)
    assert seconds > 0 and estimate, out
    assert "--population" in out and "--bn-batches" in out and "--predictor" in out  # what to lower
    assert not (trained_run / "search").exists()


def test_search_dry_run_of_random_search_and_its_errors(trained_run, capsys):
    argv = ["search", str(trained_run), "--budgets", "2", *FAST_SCORING, "--dry-run", "--population", "8",
            "--generations", "1", "--mutations", "2", "--crossovers", "2"]
    assert main([*argv, "--strategy", "random"]) == 0
    assert "per budget (random): as many Archs as the evolution would score: up to 12 Archs" in capsys.readouterr().out
    assert main([*argv, "--strategy", "annealing"]) == 2
    assert "--strategy='annealing' is not a known search strategy" in capsys.readouterr().err
    assert main([*argv, "--population", "0"]) == 2
    assert "population must be an integer >= 1" in capsys.readouterr().err


def test_search_help_says_what_to_lower():
    parser = build_parser()
    search = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "search")[1]
    text = " ".join(search.format_help().split())
    assert "The defaults are the paper's" in text and "--dry-run" in text
    for setting in ("--population", "--generations", "--bn-batches", "--max-batches", "--predictor"):
        assert setting in text.split("The defaults are the paper's")[1]


@pytest.mark.parametrize("command", ["train", "fpnas", "retrain", "finetune", "search"])
def test_every_long_command_has_a_dry_run(command):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    assert any("--dry-run" in a.option_strings for a in sub._actions)


def test_a_train_dry_run_says_how_many_bn_batches_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, f"run.dir={run}", "eval.bn_batches=8", "eval.batch_size=256",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "bn_batches: 8" in out  # the resolved config
    assert "re-calibration on 1 batches (bn_batches 8: the training split holds 1 batch of 256)" in out
