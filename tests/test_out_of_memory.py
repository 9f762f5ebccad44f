"""Running out of device memory ends a run with one line naming the settings to change, and the
run continues from its checkpoint with them. The allocator's error is raised on purpose here (a
CPU cannot be made to run out of memory reliably); everything after it is the product's."""
from pathlib import Path

import pytest
import torch

from supernas.cli import main
from supernas.runtime.out_of_memory import is_out_of_memory
from supernas.train.standalone import StandaloneTrainer
from supernas.train.supernet import SupernetTrainer

from tiny_runs import TINY_TRAIN

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "supernas" / "configs"
CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB"


@pytest.mark.parametrize("error, oom", [
    (torch.cuda.OutOfMemoryError(CUDA_OOM), True),
    (RuntimeError(CUDA_OOM), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 68719476736 bytes"), True),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
    (ValueError("out of memory"), False),
])
def test_out_of_memory_errors_are_told_from_others(error, oom):
    assert is_out_of_memory(error) is oom


def one_line_error(capsys) -> str:
    """The error line that ends stderr (a run's header lines may come before it), no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert ": error: out of memory on " in last, err
    return last


def _failing_once(method, at=None):
    """`method` raising a CUDA out-of-memory error once, on the call where the task's step is `at`
    (or the first call)."""
    state = {"raised": False}

    def wrapped(self, *args, **kwargs):
        if not state["raised"] and (at is None or self.step == at):
            state["raised"] = True
            raise torch.cuda.OutOfMemoryError(CUDA_OOM)
        return method(self, *args, **kwargs)
    return wrapped


def test_a_training_step_out_of_memory_names_the_fix_and_the_run_resumes_with_it(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    argv = ["train", *TINY_TRAIN, f"run.dir={run}", "checkpoint.every_steps=2", "log.progress=false"]
    monkeypatch.setattr(SupernetTrainer, "train_step", _failing_once(SupernetTrainer.train_step, at=2))
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert ("out of memory on cpu during training step 3 with train.batch_size=32: continue from the last "
            "checkpoint with --resume and train.recompute_bn_act=true") in err
    assert "run.amp=bf16" in err and "or start over with a smaller train.batch_size" in err
    assert (run / "checkpoint.pt").is_file()  # step 2's, intact
    monkeypatch.undo()
    assert main(argv + ["train.recompute_bn_act=true", "--resume"]) == 0
    log = (run / "log.txt").read_text()
    assert "resuming" in log and "train.recompute_bn_act False -> True" in log


def test_a_validation_out_of_memory_names_eval_batch_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(SupernetTrainer, "validate", _failing_once(SupernetTrainer.validate))
    assert main(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'run'}", "log.progress=false"]) == 2
    err = one_line_error(capsys)
    assert "during the validation at step 4 with eval.batch_size=" in err
    assert "continue from the last checkpoint with --resume and a smaller eval.batch_size" in err


def test_a_static_model_out_of_memory_does_not_offer_the_supernet_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(StandaloneTrainer, "train_step", _failing_once(StandaloneTrainer.train_step))
    assert main(["retrain", "smallest", str(CONFIGS / "retrain_digits_quick.yaml"), f"run.dir={tmp_path / 'r'}",
                 "train.max_steps=2", "run.threads=1", "log.progress=false", "log.tensorboard=false"]) == 2
    err = one_line_error(capsys)
    assert "during training step 1 with train.batch_size=" in err and "run.amp=bf16" in err
    assert "recompute_bn_act" not in err and "--resume" not in err  # no checkpoint yet: nothing to continue


def test_a_dry_run_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(SupernetTrainer, "train_step", _failing_once(SupernetTrainer.train_step))
    assert main(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'run'}", "--dry-run"]) == 2
    err = one_line_error(capsys)
    assert ("during a timed step of the dry run (step 1) with train.batch_size=32: set train.recompute_bn_act=true "
            "(less than half the stored activations) or run.amp=bf16 (half the activation memory), or a smaller "
            "train.batch_size") in err


def test_a_stage2_command_out_of_memory_names_its_batch_flag(tmp_path, capsys, monkeypatch):
    import supernas.evaluation

    assert main(["retrain", "smallest", str(CONFIGS / "retrain_digits_quick.yaml"), f"run.dir={tmp_path / 'r'}",
                 "train.max_steps=1", "run.threads=1", "log.progress=false", "log.tensorboard=false"]) == 0

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError(CUDA_OOM)
    monkeypatch.setattr(supernas.evaluation, "evaluate_model", out_of_memory)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r" / "export"), "--data", "digits", "--batch-size", "64",
                 "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("supernas eval: error: out of memory on the device: lower --batch-size (now 64)")
    assert "--device cpu" in err
