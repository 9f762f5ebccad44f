import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from supernas import SupernasError
from supernas.cli import main
from supernas.config import SupernetConfig, load_config
from supernas.runtime.optim import warmup_cosine
from supernas.train.supernet import SupernetTrainer
from tiny_runs import supernet_config



def _six_steps_an_epoch(run_dir):
    cfg = supernet_config(run_dir)
    cfg["data"]["train_subset"] = 192  # 6 steps an epoch, 12 in all; checkpoints at 4, 6 (epoch end), 8, 12
    return cfg


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, run_until_crash):
    full = SupernetTrainer(_six_steps_an_epoch(tmp_path / "full"))
    full.fit()
    assert full.step == 12

    run_until_crash(SupernetTrainer, _six_steps_an_epoch(tmp_path / "crash"), 5)  # resumes mid-epoch, from 4
    resumed = SupernetTrainer(_six_steps_an_epoch(tmp_path / "crash"), resume=True)
    assert resumed.step == 0
    resumed.fit()
    assert resumed.step == 12
    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_holds_metrics_tensorboard_and_config(tmp_path):
    run = tmp_path / "run"
    SupernetTrainer(supernet_config(run, epochs=1, max_steps=4)).fit()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["kind"] == "train"]
    val = [r for r in lines if r["kind"] == "val"]
    assert len(train) == 4 and all(len(r["mflops"]) == 4 for r in train)  # largest, 2 sampled, smallest
    assert val and 0 <= val[-1]["top1_largest"] <= 100
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "checkpoint.pt").is_file() and (run / "config.yaml").is_file()
    assert not list(run.glob("*.tmp"))


def test_training_lowers_the_loss(tmp_path):
    cfg = supernet_config(tmp_path / "r", epochs=6, lr=0.4)
    cfg["sampler"] = {"kind": "uniform"}
    cfg["train"]["num_arch_training"] = 2  # the largest learns from the labels, the smallest from it: half the cost
    cfg["data"]["train_subset"] = 512
    # what is tested is the learning: no checkpoints but the last, no validation but the final one
    cfg.update(checkpoint={"every_steps": 10_000}, log={"progress": False, "every_steps": 1, "tensorboard": False})
    cfg["eval"]["every_epochs"] = 0
    t = SupernetTrainer(cfg)
    t.fit()
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert [r for r in rows if r["kind"] == "val"][-1]["top1_largest"] > 30  # chance is 10


def test_existing_run_needs_resume(tmp_path):
    SupernetTrainer(supernet_config(tmp_path / "r", epochs=1, max_steps=1)).fit()
    with pytest.raises(SupernasError, match="--resume"):
        SupernetTrainer(supernet_config(tmp_path / "r", epochs=1, max_steps=1)).fit()
    with pytest.raises(SupernasError, match="no checkpoint"):
        SupernetTrainer(supernet_config(tmp_path / "other"), resume=True).fit()


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(SupernasError, match="did you mean 'train.epochs'"):
        load_config(SupernetConfig, overrides=["train.epoch=3"])
    f = tmp_path / "c.yaml"
    f.write_text("train: {batch_size: 8}\nsampler: {kind: magic}\n")
    code = main(["train", str(f), f"run.dir={tmp_path / 'r'}", "data.path=digits", "run.device=cpu"])
    assert code == 2


def test_schedule_warms_up_then_decays():
    lrs = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01


def test_two_gloo_processes_train_identical_weights(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        "29533", str(worker), str(tmp_path), str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt", weights_only=True), torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a if "running" not in k and "num_batches" not in k)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


@pytest.mark.parametrize("against", ["labels", "teacher"])
def test_attentive_score_is_the_loss_against_labels_or_teacher(tmp_path, against):
    """score: loss ranks the candidates by their minibatch loss against the labels (the reference's
    criterion, label smoothing included: the default) or against the largest Arch's predictions."""
    from supernas.nn.calibrate import frozen_bn_stats
    from supernas.runtime.losses import label_smoothing_ce, soft_target_ce

    cfg = supernet_config(tmp_path / "r", label_smoothing=0.1)
    if against == "teacher":
        cfg["sampler"]["loss_against"] = "teacher"
    t = SupernetTrainer(cfg)
    x, y = next(t.loader.epoch(0, 0))
    cands = t.space.sample(rng=4, n=3)
    seen = {}

    def choose():
        seen["scores"] = t.minibatch_losses(cands)
        with torch.no_grad(), frozen_bn_stats(t.net):
            logits = [t.net(x, a) for a in cands]
            seen["labels"] = [float(label_smoothing_ce(z, y, 0.1)) for z in logits]
            teacher = t._batch_for_scoring[-1]
            seen["teacher"] = [float(soft_target_ce(z, teacher)) for z in logits]
        return cands[0]

    t.train_step(x, y, [choose])
    assert seen["scores"] == pytest.approx(seen[against], abs=1e-5)
    other = "teacher" if against == "labels" else "labels"
    assert seen["scores"] != pytest.approx(seen[other], abs=1e-3)


def test_bad_attentive_loss_target_names_the_key(tmp_path):
    cfg = supernet_config(tmp_path / "r")
    cfg["sampler"]["loss_against"] = "soft"
    with pytest.raises(SupernasError, match="sampler.loss_against='soft' is not allowed: one of labels, teacher"):
        SupernetTrainer(cfg)


def test_drop_path_scope_follows_the_reference_by_default(tmp_path):
    assert SupernetTrainer(supernet_config(tmp_path / "a")).net.drop_path_scope == "last_two_stages"
    assert SupernetTrainer(supernet_config(tmp_path / "b", drop_path_scope="all_blocks")).net.drop_path_scope == \
        "all_blocks"
    with pytest.raises(SupernasError, match="train.drop_path_scope='last_stage' is not allowed: one of last_two_stages, all_blocks"):
        SupernetTrainer(supernet_config(tmp_path / "c", drop_path_scope="last_stage"))
