"""`run.threads` (default: the cores this process may use), DataLoader workers
of one thread each that leave Ctrl-C to the main process, the numbers in the run's header."""
import re
import signal

import pytest
import torch
from torch.utils.data import Dataset

from supernas import SupernasError
from supernas.cli import main
from supernas.config import SCHEMAS, load_config
from supernas.runtime import threads
from supernas.runtime.data_order import ResumableLoader, ResumableSampler

from tiny_runs import FAST_SCORING, TINY_TRAIN


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_is_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 2, 5})  # e.g. taskset -c 0,2,5
    monkeypatch.setattr(threads, "TORCH_DEFAULT_THREADS", 64)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads.usable_cores() == 3 and threads.resolve_threads("auto") == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's processes on this machine share them
    assert threads.resolve_threads("auto") == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setattr(threads, "TORCH_DEFAULT_THREADS", 2)  # OMP_NUM_THREADS=2, or 2 physical cores
    assert threads.resolve_threads("auto") == 2
    assert threads.resolve_threads(5) == 5  # a number is taken as given


def test_the_header_names_the_threads_and_torch_uses_them(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", f"run.dir={run}", *TINY_TRAIN, "run.threads=2", "train.max_steps=1"]) == 0
    assert torch.get_num_threads() == 2
    header = re.search(r"threads: 2 intra-op \(run\.threads=2; \d+ core\(s\) usable by this process\), no "
                       r"DataLoader workers", (run / "log.txt").read_text())
    assert header and header.group(0) in capsys.readouterr().err


class _WorkerReport(Dataset):
    """Each item: the worker's intra-op threads and whether it ignores SIGINT and SIGTERM."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        ignored = all(signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM))
        return torch.tensor([torch.get_num_threads(), int(ignored)]), 0


def test_loader_workers_compute_with_one_thread_and_leave_ctrl_c_to_the_run():
    torch.set_num_threads(2)
    data = _WorkerReport()
    loader = ResumableLoader(data, ResumableSampler(data, batch_size=2), seed=0, batch_size=2, workers=1)
    try:
        reports = torch.cat([x for x, _ in loader.epoch(0, 0)])
    finally:
        loader.close()
    assert reports.tolist() == [[1, 1], [1, 1], [1, 1], [1, 1]]


@pytest.mark.parametrize("value, message", [
    ("0", "run.threads=0 is out of range"),
    ("-2", "run.threads=-2 is out of range"),
    ("abc", "run.threads='abc' is not allowed"),
    ("1.5", "run.threads=1.5 is not allowed"),
])
@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_bad_run_threads_are_one_line_errors(command, value, message):
    with pytest.raises(SupernasError, match=re.escape(message) + ".*auto"):
        load_config(SCHEMAS[command], overrides=[f"run.threads={value}"])


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5"])
def test_bad_threads_option_of_stage2_and_eval(value, trained_run, tmp_path, capsys):
    for argv in (["search", str(trained_run), "--budgets", "2", "--dry-run", *FAST_SCORING[:-2]],
                 ["eval", str(tmp_path)]):
        assert main([*argv, "--threads", value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--threads must be auto or a positive integer, got '{value}'" in err


def test_threads_option_sets_torch(trained_run, capsys):
    assert main(["search", str(trained_run), "--budgets", "2", "--dry-run", *FAST_SCORING[:-2], "--threads", "1",
                 "--population", "4", "--generations", "0"]) == 0
    assert torch.get_num_threads() == 1
    assert "with 1 thread(s) (--threads)" in capsys.readouterr().out
