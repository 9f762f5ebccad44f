"""What a run writes is never lost or mixed: one process holds a
run, search or predictor folder at a time and a killed one leaves no stale lock; a resume is
refused when its settings would change the run and logs those it may change; a saved search
resumes only on the weights it scored; a resume after the last checkpoint finishes the run and
logs every step once; what interrupted writes left is removed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import FAST_SCORING, TINY, TINY_NAME, TINY_TRAIN, as_overrides, quick_supernet_config

from supernas import SupernasError
from supernas.cli import main
from supernas.runtime.checkpoint import load_checkpoint
from supernas.train.supernet import SupernetTrainer
from supernas.utils.io import atomic_write_bytes

LOCK = ".supernas.lock"

SRC = str(Path(__file__).resolve().parents[1] / "src")




def hold_lock(folder):
    """Another process holding `folder`'s lock as a running `supernas train` does (an OS lock on
    the lock file, its pid inside); it prints once it holds it."""
    code = ("import fcntl, os, sys, time; os.makedirs(sys.argv[1]); "
            "f = open(os.path.join(sys.argv[1], '.supernas.lock'), 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write(str(os.getpid())); f.flush(); print('held', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def kill9(p):
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------- item 1: locks
def test_a_run_dir_held_by_another_process_is_refused_and_a_kill_leaves_no_stale_lock(tmp_path, capsys):
    run = tmp_path / "run"
    holder = hold_lock(run)
    try:
        assert main(["train", *as_overrides(quick_supernet_config(run, max_steps=2))]) == 2
        line = one_line(capsys.readouterr().err)
        assert str(run) in line and f"pid {holder.pid}" in line, line
        assert not (run / "checkpoint.pt").exists() and not (run / "metrics.jsonl").exists()
    finally:
        kill9(holder)
    # the OS released the lock with the process: the next run takes it
    assert main(["train", *as_overrides(quick_supernet_config(run, max_steps=2))]) == 0
    assert load_checkpoint(run)["step"] == 2


def test_a_resume_while_the_run_still_runs_is_refused(tmp_path, run_until_crash):
    from supernas.utils.lock import DirectoryLock

    run = tmp_path / "run"
    run_until_crash(SupernetTrainer, quick_supernet_config(run, max_steps=3), step=2)
    with DirectoryLock(run):  # the first run, still going
        with pytest.raises(SupernasError, match=f"'{run}' is in use by another supernas process \\(pid {os.getpid()}"):
            SupernetTrainer(quick_supernet_config(run, max_steps=3), resume=True).fit()
    metrics = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [1, 2], "the refused resume wrote nothing"


def test_search_and_predictor_outputs_are_locked(run_copy, tmp_path):
    from supernas.search import SearchJob, search_run
    from supernas.search.predictor_runs import fit_predictor_run
    from supernas.utils.lock import DirectoryLock

    out = tmp_path / "search"
    with DirectoryLock(out):
        with pytest.raises(SupernasError, match=f"'{out}' is in use by another supernas process .*choose another --out"):
            search_run(SearchJob(budgets=(30,), run=run_copy, out=out, population=4, mutations=2, crossovers=2,
                                 generations=1, device="cpu", max_batches=1, bn_batches=1), progress=False)
    assert not (out / "search_state.json").exists()
    with DirectoryLock(run_copy, name=".predictor.npz.lock"):
        with pytest.raises(SupernasError, match="in use by another supernas process"):
            fit_predictor_run(run_copy, n=8, bn_batches=1, max_batches=1, device="cpu")
    assert not (run_copy / "predictor.npz").exists()


def test_a_lock_is_not_inherited_by_forked_children(tmp_path):
    # A DataLoader worker forked while the run holds its lock must not keep it after the run ends.
    from supernas.utils.lock import DirectoryLock

    lock = DirectoryLock(tmp_path).acquire()
    ready, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child outlives the lock's release below
        os.write(go, b"1")
        time.sleep(0.5)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"1"  # the child is running
        lock.release()
        with DirectoryLock(tmp_path):
            pass
    finally:
        os.waitpid(pid, 0)


@pytest.mark.slow
def test_two_supernas_train_processes_on_one_run_dir(tmp_path):
    """The issue's case with real processes: the second `supernas train` on a run.dir gets one line
    naming the directory and the first's pid; `kill -9` of the first leaves a run the next
    `--resume` continues (no stale lock)."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "supernas.cli", "train", *as_overrides(quick_supernet_config(run, epochs=500))]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoint.pt").exists():
            assert first.poll() is None and time.time() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.2)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        line = one_line(second.stderr)
        assert str(run) in line and f"pid {first.pid}" in line, line
    finally:
        kill9(first)
    stop = load_checkpoint(run)["step"] + 2
    resumed = subprocess.run([*cmd, f"train.max_steps={stop}", "--resume"], env=env, capture_output=True, text=True,
                             timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line).get("kind") != "val"]
    assert steps == list(range(1, stop + 1)), steps  # the steps logged after the checkpoint, once


# ---------------------------------------------------------------------------- item 2: resume compares the config
@pytest.fixture
def interrupted(tmp_path, run_until_crash):
    run = tmp_path / "run"
    run_until_crash(SupernetTrainer, quick_supernet_config(run, max_steps=4), step=2)
    return run


@pytest.mark.parametrize("change, shown", [
    ({"run": {"seed": 1}}, "run.seed 0 -> 1"),
    ({"train": {"batch_size": 16}}, "train.batch_size 32 -> 16"),
    ({"train": {"lr": 0.2}}, "train.lr 0.1 -> 0.2"),
    ({"space": {"base": TINY_NAME, "resolution": [16]}}, "space 'attentivenas-tiny' -> {'base'"),
    ({"data": {"train_subset": 96}}, "data.train_subset 128 -> 96"),
])
def test_a_resume_that_would_change_the_run_is_refused_with_the_diff(interrupted, change, shown):
    config = quick_supernet_config(interrupted, max_steps=4)
    for key, value in change.items():
        config[key] = {**config[key], **value} if key != "space" else value
    with pytest.raises(SupernasError, match="was started with other settings: .*" + shown.replace("(", "\\(")) as e:
        SupernetTrainer(config, resume=True).fit()
    assert "\n" not in str(e.value)
    assert load_checkpoint(interrupted)["step"] == 2


def test_fewer_epochs_are_refused_more_are_allowed_and_logged(tmp_path, run_until_crash):
    run = tmp_path / "run"
    run_until_crash(SupernetTrainer, quick_supernet_config(run, epochs=2, max_steps=5), step=2)
    with pytest.raises(SupernasError, match="train.epochs 2 -> 1 \\(it may only grow"):
        SupernetTrainer(quick_supernet_config(run, epochs=1, max_steps=3), resume=True).fit()
    config = quick_supernet_config(run, epochs=3, max_steps=3)
    config["log"]["every_steps"] = 2
    SupernetTrainer(config, resume=True).fit()
    log = (run / "log.txt").read_text()
    assert "from step 2 of 3; train.epochs 2 -> 3 (the learning-rate schedule now spans 3 epochs" in log
    assert "log.every_steps 1 -> 2" in log and "train.max_steps 5 -> 3" in log


def test_a_checkpoint_of_another_command_or_content_is_one_line(tmp_path, interrupted, capsys):
    from supernas.train.standalone import retrain

    with pytest.raises(SupernasError, match="was written by `supernas train`, not `supernas retrain`"):
        retrain("smallest", {"run": {"dir": str(interrupted), "device": "cpu"}, "space": TINY_NAME,
                             "data": {"path": "digits"},
                             "train": {"workers": 0}}, resume=True)
    for content, what in (({"foo": 1}, "a mapping of foo"), ([1, 2], "a list")):
        run = tmp_path / f"bad{what[-4:]}"
        run.mkdir()
        torch.save(content, run / "checkpoint.pt")
        assert main(["train", *as_overrides(quick_supernet_config(run, max_steps=2)), "--resume"]) == 2
        line = one_line(capsys.readouterr().err)
        assert f"is not the checkpoint of a supernas run (it holds {what}" in line, line


# ---------------------------------------------------------------------------- item 3: search state keyed to the weights
def _search(run, out, resume=False):
    from supernas.search import SearchJob, search_run

    return search_run(SearchJob(budgets=(30,), run=run, out=out, population=4, mutations=2, crossovers=2,
                                generations=1, device="cpu", max_batches=1, bn_batches=1, resume=resume),
                      progress=False)


def test_a_saved_search_does_not_resume_on_other_weights(run_copy, tmp_path):
    out = tmp_path / "search"
    _search(run_copy, out)
    _search(run_copy, out, resume=True)  # the same weights: resumes
    ck = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    ck["model"]["classifier.bias"] += 1.0  # another supernet: trained further, or another run
    torch.save(ck, run_copy / "checkpoint.pt")
    with pytest.raises(SupernasError, match="scored other supernet weights than this one"):
        _search(run_copy, out, resume=True)


@pytest.mark.parametrize("content, message", [
    (b"", "cannot be read as a saved search"),
    (b'{"search": {"vers', "cannot be read as a saved search"),
    (b"[1, 2]", "is not a saved search"),
])
def test_a_broken_search_state_is_one_line(run_copy, tmp_path, capsys, content, message):
    out = tmp_path / "search"
    out.mkdir()
    (out / "search_state.json").write_bytes(content)
    assert main(["search", str(run_copy), "--budgets", "30", "--out", str(out), "--resume", "--device", "cpu",
                 "--population", "4", "--mutations", "2", "--crossovers", "2", "--generations", "1",
                 "--max-batches", "1", "--bn-batches", "1"]) == 2
    assert message in one_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------- item 6: a resume after the last checkpoint
def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_resume_logs_the_steps_after_the_checkpoint_once(tmp_path, run_until_crash):
    run = tmp_path / "run"
    config = quick_supernet_config(run, epochs=2, max_steps=5)
    config["checkpoint"]["every_steps"] = 2
    run_until_crash(SupernetTrainer, config, step=3)  # steps 1..3 logged, the checkpoint at step 2
    SupernetTrainer(config, resume=True).fit()
    steps = [r["step"] for r in _records(run) if r.get("kind") != "val"]
    assert steps == [1, 2, 3, 4, 5]


def test_a_run_killed_in_its_final_validation_validates_on_resume(tmp_path):
    run = tmp_path / "run"
    config = quick_supernet_config(run, max_steps=3)
    original = SupernetTrainer.validate

    def dies(self):
        raise KeyboardInterrupt("killed while validating")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SupernetTrainer, "validate", dies)
        with pytest.raises(KeyboardInterrupt):
            SupernetTrainer(config).fit()
    assert load_checkpoint(run)["step"] == 3 and not [r for r in _records(run) if r.get("kind") == "val"]
    assert SupernetTrainer.validate is original
    SupernetTrainer(config, resume=True).fit()
    records = _records(run)
    assert [r["step"] for r in records if r.get("kind") == "val"] == [3]
    assert [r["step"] for r in records if r.get("kind") != "val"] == [1, 2, 3]


# ---------------------------------------------------------------------------- item 11: leftovers
def test_temporaries_of_interrupted_writes_are_removed_at_the_next_start(tmp_path, run_until_crash):
    run = tmp_path / "run"
    run_until_crash(SupernetTrainer, quick_supernet_config(run, max_steps=3), step=2)
    left = [run / ".checkpoint.pt.a1b2c3d4e5f6.tmp", run / ".metrics.jsonl.0123456789ab.tmp",
            run / ".config.yaml.k3j_x9ab.tmp"]  # the last as tempfile.mkstemp named them before
    for f in left:
        f.write_bytes(b"half a checkpoint")
    keep = [run / "notes.tmp", run / ".notes.tmp"]  # not temporaries of ours
    for f in keep:
        f.write_text("mine")
    SupernetTrainer(quick_supernet_config(run, max_steps=3), resume=True).fit()
    assert not any(f.exists() for f in left) and all(f.exists() for f in keep)


def test_an_interrupt_right_after_the_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch):
    real_open = os.open

    def interrupted_open(path, flags, *a, **k):  # the signal arrives as the syscall returns
        fd = real_open(path, flags, *a, **k)
        if flags & os.O_CREAT and str(path).endswith(".tmp"):
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", interrupted_open)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "state.json", b"{}")
    assert os.listdir(tmp_path) == []


def test_a_lock_file_is_removed_when_its_holder_ends_and_the_folder_stays_ours(tmp_path, capsys):
    from supernas.utils.lock import DirectoryLock

    with DirectoryLock(tmp_path / "a"):
        assert (tmp_path / "a" / LOCK).is_file()
    assert not (tmp_path / "a" / LOCK).exists()
    # a file a killed holder left is taken, then removed like any other
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / LOCK).write_text("12345\n")
    with DirectoryLock(tmp_path / "b"):
        pass
    assert not (tmp_path / "b" / LOCK).exists()

    run = tmp_path / "run"
    train = ["train", *TINY_TRAIN, f"run.dir={run}", "log.progress=false"]
    assert main(train) == 0
    assert not (run / LOCK).exists()
    # still recognised as a run (not as a folder of the user's files) without its lock
    assert main([*train, "train.max_steps=6", "--resume"]) == 0
    assert main(train) == 2 and "already holds a run" in capsys.readouterr().err
    out = tmp_path / "search"
    search = ["search", str(run), "--budgets", "1,2", "--population", "4", "--mutations", "2", "--crossovers", "2",
              "--generations", "1", "--out", str(out), *FAST_SCORING]
    assert main(search) == 0
    assert not (out / LOCK).exists()
    # the same --out again: a search of ours, refused only because it holds a search
    assert main(search) == 2 and "already holds a search" in capsys.readouterr().err
    export = tmp_path / "export"
    smallest = json.dumps(TINY.smallest().to_dict())
    assert main(["export", str(run), "--arch", smallest, "--out", str(export), *FAST_SCORING]) == 0
    assert not (export / LOCK).exists()
    # another format of the same Arch joins the export: the folder is still ours
    assert main(["export", str(run), "--arch", smallest, "--format", "torchscript", "--out", str(export),
                 *FAST_SCORING]) == 0
