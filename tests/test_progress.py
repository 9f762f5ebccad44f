"""Progress that a file or a pipe can hold (plain lines, no carriage returns),
and a word on what runs after the last step."""
import re
from pathlib import Path

from tiny_runs import FAST_SCORING
from tiny_runs import TINY_TRAIN as TINY

from supernas.cli import main
from supernas.evaluation import Evaluator, load_run
from supernas.runtime import logging as run_logging
from supernas.runtime.logging import LineProgress, RunLogger, format_duration, progress_bar

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "supernas" / "configs"


def test_training_writes_progress_lines_to_stdout_and_log_when_not_on_a_terminal(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", f"run.dir={run}", *TINY]) == 0  # pytest's captured output is no terminal
    out, err = capsys.readouterr()
    lines = [l for l in out.splitlines() if l.startswith("step ")]
    assert [l.split()[1] for l in lines] == ["2/4", "4/4"]
    assert re.search(r"step 2/4 \(epoch 0\.25/0\.5\): loss \d.*\| \d+ images/s \| \S+ elapsed, \S+ left", lines[0])
    log = (run / "log.txt").read_text()
    assert "step 2/4 (epoch" in log and "step 4/4 (epoch" in log
    assert "\r" not in out + err + log  # no bar fragments anywhere
    # what runs after the last step is said before it runs
    assert re.search(r"final validation at step 4: the smallest and largest Archs.*\n.*top1_smallest", log)


def test_progress_false_keeps_stdout_quiet_but_the_log_complete(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", f"run.dir={run}", *TINY, "log.progress=false"]) == 0
    assert "step 2/4" not in capsys.readouterr().out
    assert "step 2/4 (epoch" in (run / "log.txt").read_text()


def test_a_terminal_gets_a_bar_and_no_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_logging, "on_terminal", lambda: True)
    log = RunLogger(tmp_path, tensorboard=False, total=4)
    assert log.bar is not None
    log.step_line("step 1/4")
    log.close()
    assert "step 1/4" not in capsys.readouterr().out
    assert "step 1/4" in (tmp_path / "log.txt").read_text()
    monkeypatch.setattr(run_logging, "on_terminal", lambda: False)
    assert isinstance(progress_bar(10, "evolution", "generations"), LineProgress)
    assert progress_bar(10, "evolution", "generations", enabled=False) is None


def test_line_progress_prints_whole_lines_at_intervals(capsys):
    bar = LineProgress(40, "evaluating", "Archs")
    for _ in range(40):
        bar.set_postfix(best="71.20")
        bar.update(1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20 and lines[-1].startswith("evaluating: 40/40 Archs (100%), best 71.20;")
    assert "left" in lines[0] and "left" not in lines[-1]
    assert [format_duration(s) for s in (5, 192, 7500, 3 * 86400 + 4 * 3600)] == ["5s", "3m12s", "2h05m", "3d04h"]


def test_stage2_evaluation_progress_is_file_safe(trained_run, capsys):
    net, _, data = load_run(trained_run, "cpu")
    archs = net.space.sample(__import__("numpy").random.default_rng(0), 3)
    Evaluator(net, data, bn_batches=1, max_batches=1).evaluate_many(archs, progress=True)
    out, err = capsys.readouterr()
    assert "evaluating: 3/3 Archs (100%)" in out
    assert "\r" not in out + err


def test_search_and_predictor_progress_are_lines(run_copy, capsys):
    assert main(["search", str(run_copy), "--budgets", "2,3", *FAST_SCORING, "--population", "4", "--mutations", "1",
                 "--crossovers", "1", "--generations", "1"]) == 0
    out, err = capsys.readouterr()
    generations = [line for line in out.splitlines() if line.startswith("evolution: ")]
    # 2 budgets x (the initial population + 1 generation), each line saying which one it was
    assert generations[-1].startswith("evolution: 4/4 populations (100%), budget 3 (generation 1 of 1), best ")
    assert generations[0].startswith("evolution: 1/4 populations (25%), budget 2 (initial population), best ")
    assert len(generations) == 4 and "left" in generations[0]
    assert main(["predictor", "fit", str(run_copy), "-n", "6", "--holdout", "0", *FAST_SCORING]) == 0
    out2, err2 = capsys.readouterr()
    assert "evaluating: 6/6 Archs (100%)" in out2
    assert "\r" not in out + err + out2 + err2


def test_standalone_and_fpnas_say_what_runs_after_the_last_step(tmp_path, capsys):
    run = tmp_path / "re"
    assert main(["retrain", "smallest", str(CONFIGS / "retrain_digits_quick.yaml"), f"run.dir={run}",
                 "train.max_steps=2", "log.every_steps=1", "run.threads=1", "log.tensorboard=false"]) == 0
    log = (run / "log.txt").read_text()
    assert re.search(r"step 2/2 .*\n.*final validation at step 2: top-1 of the raw and EMA weights on 359 val "
                     rf"images; then the export to {re.escape(str(run / 'export'))}", log)
    run = tmp_path / "fp"
    assert main(["fpnas", str(CONFIGS / "fpnas_digits_quick.yaml"), f"run.dir={run}", "train.max_steps=1",
                 "data.train_subset=128", "run.threads=1", "log.tensorboard=false"]) == 0
    assert re.search(r"step 1/1 .*\n.*scoring the top 5 Archs, each after BatchNorm re-calibration on \d+ batches"
                     r"( \([^)]*\))?: top-1 on \d+ search images; then writing .*result\.json \(the top 5 Archs\), "
                     r"distribution\.pt and the plots",
                     (run / "log.txt").read_text())
    assert "\r" not in "".join(capsys.readouterr())


def test_the_time_left_comes_from_steady_state_steps():
    from supernas.runtime.loop import WARMUP_STEPS, SteadyRate

    rate, now = SteadyRate(0, 0.0), 0.0
    for step in range(1, 11):
        now += 20.0 if step == 1 else 1.0  # a slow first step, then 1 s a step
        estimate = rate.seconds_per_step(step, now)
        rate.stepped(step, now)
        if step == 5:
            now += 30.0  # a checkpoint and a validation between steps
            rate.resume(now)
    assert estimate == 1.0  # not (20 + 9 + 30) / 10
    early = SteadyRate(0, 0.0)
    assert early.seconds_per_step(1, 20.0) == 20.0  # before any steady step: what there is
    assert WARMUP_STEPS >= 1
