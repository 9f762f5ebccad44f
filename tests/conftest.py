from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TINY_NAME

from supernas import get_space, list_spaces

SPACES = list_spaces()


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need a CUDA device: skipped without one (a session lent a GPU runs them
    with `python -m pytest -m gpu`, see bench/device_first_call.sh)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(params=SPACES)
def space(request):
    return get_space(request.param)


def train_tiny_run(run_dir, **sampler):
    """A supernet of the tiny space trained for 3 steps on digits: a stage-1 run directory to test
    what comes after (search, predictor, export) without waiting for real training."""
    from supernas.train.supernet import SupernetTrainer

    SupernetTrainer({
        "run": {"dir": str(run_dir), "device": "cpu"}, "space": TINY_NAME,
        "data": {"path": "digits", "image_size": 12, "train_subset": 256, "search_size": 100},
        "train": {"epochs": 1, "batch_size": 32, "workers": 0, "max_steps": 3},
        "sampler": {"kind": "uniform", **sampler}, "eval": {"bn_batches": 1, "max_batches": 1},
        "log": {"progress": False, "tensorboard": False},
    }).fit()
    return run_dir


def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny trained run shared by the stage-2 tests, read only: a test that writes into a run
    takes `run_copy`. Checked at the end of the session: what a test left there would make the
    results of later tests depend on the order they run in."""
    run = train_tiny_run(tmp_path_factory.mktemp("stage2") / "run")
    before = _listing(run)
    yield run
    assert _listing(run) == before, "a test wrote into the shared trained_run; give it run_copy instead"


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the shared trained run that a test may write into (search, predictor, export)."""
    import shutil

    return Path(shutil.copytree(trained_run, tmp_path / "run"))


@pytest.fixture(scope="session")
def tiny_run_factory():
    return train_tiny_run


def _run_until_crash(cls, config, step):
    """`cls(config).fit()` stopped as a crash would stop it: by an exception as `train_step` is
    entered at `step` (after the checkpoints before it were written)."""
    original = cls.train_step

    def crashing(self, *a, **k):
        if self.step == step:
            raise KeyboardInterrupt("simulated crash")
        return original(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "train_step", crashing)
        with pytest.raises(KeyboardInterrupt):
            cls(config).fit()


@pytest.fixture
def run_until_crash():
    return _run_until_crash


@pytest.fixture
def one_thread():
    """Tiny models on a shared CPU: several OpenMP threads mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def bench(monkeypatch):
    """The scripts of bench/ importable as modules (by their file names) for the test's duration."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
