"""runtime.task.Task: what every task of the loop declares, the hooks it may leave alone, and the
set-up every task starts with."""
import pytest
import torch

from supernas.config import SupernetConfig, load_config
from supernas.fpnas.probabilistic import ProbabilisticSearch
from supernas.runtime.task import Task
from supernas.train.standalone import StandaloneTrainer
from supernas.train.supernet import SupernetTrainer


def test_every_trainer_is_a_task():
    assert all(issubclass(cls, Task) for cls in (SupernetTrainer, ProbabilisticSearch, StandaloneTrainer))


def test_the_hooks_a_task_may_leave_alone_do_nothing_and_the_others_must_be_written():
    task = Task()
    assert task.log_extra(3) == {} and task.validate() is None and task.validation_plan() is None
    assert task.step_phases(12) == [("training steps", 0, 12)]
    assert task.on_epoch_start(0, None) is None and task.on_epoch_end(0) is None and task.close() is None
    assert task.amp_dtype is None and task.step == 0 and task.seconds == 0.0
    for call in (task.header, lambda: task.train_step(torch.zeros(1), torch.zeros(1)), task.state_dict,
                 lambda: task.load_state_dict({}), lambda: task.finish(None)):
        with pytest.raises(NotImplementedError):
            call()


def test_set_up_run_takes_the_device_precision_and_seed_of_the_run_section(tmp_path):
    run = load_config(SupernetConfig, overrides=[f"run.dir={tmp_path / 'r'}", "run.device=cpu", "run.seed=7",
                                                 "data.path=digits"]).run
    a, b = Task(), Task()
    a.set_up_run(run, resume=False, fixed_shapes=True)
    first = torch.rand(3)
    b.set_up_run(run, resume=True, fixed_shapes=True)
    assert torch.equal(first, torch.rand(3))  # seeded alike
    assert a.device == torch.device("cpu") and a.run_dir == tmp_path / "r" and a.seed == 7 and b.resume
    assert (a.amp_dtype, a.channels_last) == (None, False)  # 'auto' on a CPU: fp32, NCHW


def test_a_trainer_given_its_parts_trains_those(tmp_path):
    from supernas.nn import SuperNet
    from supernas.train import WeightParts
    from tiny_runs import TINY_NAME, supernet_config

    net = SuperNet(TINY_NAME, num_classes=10)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    t = SupernetTrainer(supernet_config(tmp_path / "run", epochs=1, max_steps=2),
                        parts=WeightParts(net, optimizer, scheduler))
    assert t.net is net and t.optimizer is optimizer and t.scheduler is scheduler
    before = [p.detach().clone() for p in net.parameters()]
    t.fit()
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters()))  # the given weights trained
    built = SupernetTrainer(supernet_config(tmp_path / "other", epochs=1, max_steps=1))
    assert isinstance(built.optimizer, torch.optim.SGD) and built.optimizer.defaults["nesterov"]


def test_a_standalone_trainer_given_its_parts_trains_those(tmp_path):
    from supernas.nn import SuperNet
    from supernas.train import WeightParts
    from tiny_runs import STANDALONE_ARCH, TINY, standalone_config

    net = SuperNet(TINY, num_classes=10).extract(TINY.arch(STANDALONE_ARCH))
    net.dropout.p = 0.77  # the config's regularisers replace what the given net had
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    config = {**standalone_config(tmp_path / "run", epochs=1, max_steps=2), "arch": STANDALONE_ARCH}
    t = StandaloneTrainer(config, parts=WeightParts(net, optimizer, scheduler))
    assert t.net is net and t.optimizer is optimizer and t.scheduler is scheduler and t.origin == "the weights given"
    assert net.dropout.p == t.cfg.train.dropout != 0.77
    before = [p.detach().clone() for p in net.parameters()]
    t.fit()
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters()))
