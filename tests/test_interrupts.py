"""SIGINT / SIGTERM stop a run at the next step boundary with a checkpoint and
the command that continues it; checkpoints also by time; a resumed run says where it resumes."""
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from supernas import SupernasError
from supernas.cli import main
from supernas.config import SupernetConfig, load_config
from supernas.errors import RunInterrupted
from supernas.runtime import loop as run_loop
from supernas.runtime.checkpoint import load_checkpoint
from supernas.runtime.interrupts import resume_command
from supernas.train.standalone import StandaloneTrainer
from supernas.train.supernet import SupernetTrainer

from tiny_runs import FAST_SCORING, TINY_NAME, TINY_TRAIN

SRC = Path(__file__).resolve().parents[1] / "src"


def supernet_config(run_dir, epochs=2, **checkpoint):
    """6 steps an epoch; a validation at each epoch's end; a checkpoint every 4 steps."""
    return {"run": {"dir": str(run_dir), "device": "cpu"}, "space": TINY_NAME,
            "data": {"path": "digits", "image_size": 12, "train_subset": 96},
            "train": {"epochs": epochs, "batch_size": 16, "workers": 0, "warmup_epochs": 1},
            "sampler": {"kind": "uniform"}, "eval": {"every_epochs": 1, "bn_batches": 1, "max_batches": 1},
            "log": {"progress": False, "tensorboard": False, "every_steps": 1},
            "checkpoint": {"every_steps": 4, **checkpoint}}


def signal_during_step(monkeypatch, cls, step, *signals):
    """Deliver `signals` to this process while `cls` takes the step that starts at `step`."""
    original = cls.train_step

    def train_step(self, *a, **k):
        if self.step == step:
            for s in signals:
                os.kill(os.getpid(), s)
        return original(self, *a, **k)

    monkeypatch.setattr(cls, "train_step", train_step)


def test_sigint_stops_at_the_next_step_with_a_checkpoint_and_the_resume_is_exact(tmp_path, monkeypatch, capsys):
    full = SupernetTrainer(supernet_config(tmp_path / "full", epochs=1))
    full.fit()

    run = tmp_path / "stopped"
    with monkeypatch.context() as m:
        signal_during_step(m, SupernetTrainer, 2, signal.SIGINT)
        with pytest.raises(RunInterrupted, match=r"interrupted at step 3 of 6 \(SIGINT\).*continue with: .*resume"):
            SupernetTrainer(supernet_config(run, epochs=1)).fit()
    assert load_checkpoint(run)["step"] == 3  # no planned checkpoint step (every 4, epoch ends): written for the stop
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    log = (run / "log.txt").read_text()
    assert "interrupted at step 3 of 6" in log and "step 4/6" not in log

    resumed = SupernetTrainer(supernet_config(run, epochs=1), resume=True)
    resumed.fit()
    assert f"resuming {run} from step 3 of 6" in (run / "log.txt").read_text()
    assert f"resuming {run} from step 3 of 6" in capsys.readouterr().err
    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_stops_a_standalone_training_too(tmp_path, monkeypatch):
    cfg = {"arch": "smallest", "space": TINY_NAME, "run": {"dir": str(tmp_path / "r"), "device": "cpu"},
           "data": {"path": "digits", "image_size": 12, "train_subset": 128, "autoaugment": False},
           "train": {"epochs": 2, "batch_size": 32, "workers": 0},
           "log": {"progress": False, "tensorboard": False}, "checkpoint": {"every_steps": 100}}
    signal_during_step(monkeypatch, StandaloneTrainer, 2, signal.SIGTERM)
    with pytest.raises(RunInterrupted, match=r"interrupted at step 3 of 8 \(SIGTERM\)"):
        StandaloneTrainer(cfg).fit()
    assert load_checkpoint(tmp_path / "r")["step"] == 3
    monkeypatch.undo()
    result = StandaloneTrainer(cfg, resume=True).fit()
    assert result["steps"] == 8
    assert "resuming" in (tmp_path / "r" / "log.txt").read_text()


def test_a_second_signal_stops_at_once(tmp_path, monkeypatch):
    signal_during_step(monkeypatch, SupernetTrainer, 4, signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        SupernetTrainer(supernet_config(tmp_path / "r", epochs=1)).fit()
    assert load_checkpoint(tmp_path / "r")["step"] == 4  # the last planned one; step 5 was lost


def test_time_based_checkpoints(tmp_path, monkeypatch):
    saved = []
    original = run_loop.Loop.save

    def save(self):
        saved.append(self.task.step)
        original(self)

    monkeypatch.setattr(run_loop.Loop, "save", save)
    SupernetTrainer(supernet_config(tmp_path / "a", epochs=1, every_steps=1000)).fit()
    assert saved == [6]  # the default 10 minutes never pass here: only the epoch's end
    saved.clear()
    SupernetTrainer(supernet_config(tmp_path / "b", epochs=1, every_steps=1000, every_minutes=1e-9)).fit()
    assert saved == [1, 2, 3, 4, 5, 6]  # a minute-based checkpoint after every step


@pytest.mark.parametrize("value, message", [
    ("-1", "checkpoint.every_minutes=-1 is out of range: a number > 0"),
    ("0", "checkpoint.every_minutes=0 is out of range: a number > 0"),
    ("abc", "checkpoint.every_minutes='abc' is not allowed: a number > 0"),
    ("true", "checkpoint.every_minutes=True is not allowed: a number > 0"),
])
def test_bad_checkpoint_minutes_are_one_line_errors(value, message, tmp_path, capsys):
    with pytest.raises(SupernasError, match=re.escape(message)):
        load_config(SupernetConfig, overrides=[f"checkpoint.every_minutes={value}"])
    assert main(["train", f"run.dir={tmp_path / 'r'}", f"checkpoint.every_minutes={value}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert load_config(SupernetConfig).checkpoint.every_minutes == 10


def test_resume_command_rebuilds_the_command_line(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert resume_command(["/usr/local/bin/supernas", "train", "c.yaml", "run.dir=my runs/a"]) == \
        "supernas train c.yaml 'run.dir=my runs/a' --resume"
    assert resume_command(["/usr/local/bin/supernas", "train", "--resume", "x=1"]) == "supernas train --resume x=1"
    cli = str(SRC / "supernas" / "cli" / "__main__.py")  # what `python -m supernas.cli` puts in sys.argv[0]
    assert resume_command([cli, "fpnas", "a=b"]).endswith("-m supernas.cli fpnas a=b --resume")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "7")
    assert resume_command([cli, "train", "a=b"]) == "torchrun <the same options> -m supernas.cli train a=b --resume"
    assert resume_command(["/usr/bin/pytest", "-q"]) == "the same call with resume=True"


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_stops_and_its_command_continues(tmp_path):
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group, DataLoader workers included
    (they ignore it and keep feeding the last step); then the printed command continues the run."""
    run = tmp_path / "run"
    argv = ["train", f"run.dir={run}", *TINY_TRAIN, "train.max_steps=400", "train.epochs=50", "train.workers=1"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "supernas.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        for line in proc.stdout:  # a pipe: progress comes as lines
            if line.startswith("step 2/400"):
                os.killpg(proc.pid, signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    stopped = re.search(r"interrupted at step (\d+) of 400 \(SIGINT\), checkpoint written to .*; continue with: (.*)",
                        err)
    assert stopped and "Traceback" not in err, err
    step = int(stopped.group(1))
    assert load_checkpoint(run)["step"] == step
    command = shlex.split(stopped.group(2))
    assert command[:3] == [sys.executable, "-m", "supernas.cli"] or command[:3] == [
        Path(sys.executable).name, "-m", "supernas.cli"]
    assert command[3:] == [*argv, "--resume"]
    # continued here, shortened: the same run, to a few more steps
    assert main([*command[3:-1], f"train.max_steps={step + 2}", "--resume"]) == 0
    assert f"resuming {run} from step {step} of {step + 2}" in (run / "log.txt").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM])  # SIGINT is a KeyboardInterrupt by itself
def test_a_stopped_search_says_how_to_continue(signum, run_copy, monkeypatch, capsys):
    from supernas.search.evolution import EvolutionSearch

    original, calls = EvolutionSearch.step, []

    def step(self, callback=None):
        calls.append(1)
        if len(calls) == 3:  # two generations done and saved
            os.kill(os.getpid(), signum)
        return original(self, callback)

    argv = ["search", str(run_copy), "--budgets", "2", *FAST_SCORING, "--population", "4", "--mutations", "1",
            "--crossovers", "1", "--generations", "3"]
    monkeypatch.setattr(EvolutionSearch, "step", step)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "supernas search: interrupted; continue from its state saved after the last finished generation with: " \
           "the same call with resume=True" in err  # under pytest: no command line of supernas to rebuild
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0
