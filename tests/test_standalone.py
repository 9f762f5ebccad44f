"""`supernas retrain` / `supernas finetune`: the standalone trainer, its EMA, ARCH sources and the CLI."""
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from supernas import SupernasError, get_space
from supernas.cli import main
from supernas.data import build_datasets
from supernas.evaluation import evaluate_model, load_exported
from supernas.nn import SuperNet
from supernas.train.ema import ModelEma
from supernas.train.arch_source import resolve_arch
from supernas.train.standalone import StandaloneTrainer, finetune, retrain
from supernas.train.teacher import Teacher
from supernas.train.supernet import SupernetTrainer

from tiny_runs import STANDALONE_ARCH as ARCH, TINY, TINY_NAME, standalone_config


pytestmark = pytest.mark.usefixtures("one_thread")



def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    """A (barely) trained stage-1 run with RUN/export holding its smallest Arch."""
    run = tmp_path_factory.mktemp("stage1") / "run"
    torch.set_num_threads(1)
    SupernetTrainer({
        "run": {"dir": str(run), "device": "cpu"}, "space": TINY_NAME,
        "data": {"path": "digits", "image_size": 12, "train_subset": 256},
        "train": {"epochs": 1, "batch_size": 32, "workers": 0, "max_steps": 3},
        "sampler": {"kind": "uniform"}, "eval": {"bn_batches": 1, "max_batches": 1},
        "log": {"progress": False, "tensorboard": False},
    }).fit()
    assert main(["export", str(run), "--arch", TINY.smallest().to_json(), "--bn-batches", "2",
                 "--device", "cpu"]) == 0
    return run


# ---------------------------------------------------------------------------- training
def test_retrain_on_digits_beats_chance(tmp_path):
    cfg = standalone_config(tmp_path / "r", epochs=5, batch_size=64, lr=0.8)
    cfg["data"]["train_subset"] = 640
    cfg["eval"] = {"every_epochs": 2, "max_batches": None}
    r = retrain("smallest", cfg)
    assert r["top1"] > 60 and r["top1_ema"] > 60  # chance is 10
    assert r["top1"] == max(r["top1_raw"], r["top1_ema"]) and r["weights"] in ("ema", "raw")  # ema.export=best
    assert r["steps"] == 50 and r["epochs"] == 5 and r["arch"] == TINY.smallest().to_dict()
    saved = json.loads((tmp_path / "r" / "result.json").read_text())
    assert saved == json.loads(json.dumps(r))
    val = [m for m in metrics(tmp_path / "r") if m["kind"] == "val"]
    assert [m["step"] for m in val] == [20, 40, 50] and all("top1_ema" in m for m in val)
    model, meta = load_exported(tmp_path / "r" / "export")
    assert meta["arch"] == r["arch"] and meta["space_definition"] == TINY.definition and meta["num_classes"] == 10
    assert model.dropout.p == 0 and all(b.drop_path == 0 for b in model.blocks)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, run_until_crash):
    def cfg(d):  # AutoAugment, dropout and stochastic depth: every random stream must resume
        c = standalone_config(d, drop_path=0.3, dropout=0.3)
        c["data"]["autoaugment"] = True
        return c

    full = StandaloneTrainer({**cfg(tmp_path / "full"), "arch": ARCH})
    full.fit()
    assert full.step == 16

    run_until_crash(StandaloneTrainer, {**cfg(tmp_path / "crash"), "arch": ARCH}, 7)
    resumed = StandaloneTrainer({**cfg(tmp_path / "crash"), "arch": ARCH}, resume=True)
    result = resumed.fit()
    assert resumed.step == 16 and result["steps"] == 16
    for a, b in ((full.net, resumed.net), (full.ema.module, resumed.ema.module)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert resumed.ema.updates == full.ema.updates == 16


def test_existing_run_needs_resume_and_the_same_arch(tmp_path):
    cfg = {**standalone_config(tmp_path / "r", max_steps=1, optimizer="rmsprop", lr=0.016), "arch": ARCH}
    t = StandaloneTrainer(cfg)
    assert isinstance(t.optimizer, torch.optim.RMSprop)
    t.fit()
    with pytest.raises(SupernasError, match="--resume"):
        StandaloneTrainer(cfg).fit()
    with pytest.raises(SupernasError, match="another Arch"):
        StandaloneTrainer({**cfg, "arch": "smallest"}, resume=True).fit()
    with pytest.raises(SupernasError, match="no checkpoint"):
        StandaloneTrainer({**standalone_config(tmp_path / "other"), "arch": ARCH}, resume=True).fit()


def test_distillation_from_an_export_is_logged(supernet_run, tmp_path):
    cfg = standalone_config(tmp_path / "kd", max_steps=3, teacher=str(supernet_run / "export"), distill_weight=0.5,
                      distill_temperature=2.0)
    retrain(ARCH, cfg)
    train = [m for m in metrics(tmp_path / "kd") if m["kind"] == "train"]
    assert len(train) == 3 and all(m["loss_distill"] > 0 and m["loss_label"] > 0 for m in train)
    assert all(m["loss"] == pytest.approx(0.5 * m["loss_label"] + 0.5 * m["loss_distill"], rel=1e-5) for m in train)


def test_finetune_from_an_export_distilling_from_the_supernet(supernet_run, tmp_path, capsys):
    export = supernet_run / "export"
    data = build_datasets({"path": "digits", "image_size": 12})
    model, meta = load_exported(export)
    before = evaluate_model(model, data.val, resolution=meta["resolution"])["top1"]
    cfg = standalone_config(tmp_path / "ft", epochs=3, teacher=str(supernet_run), distill_weight=0.5, teacher_bn_batches=2)
    cfg["eval"]["max_batches"] = None
    r = finetune(export, cfg)
    assert r["init"] == str(export) and r["arch"] == meta["arch"] and r["top1"] > before
    assert all("loss_distill" in m for m in metrics(tmp_path / "ft") if m["kind"] == "train")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "ft" / "export"), "--data", "digits", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(r["top1"])


def test_finetune_onto_another_number_of_classes_keeps_the_features(supernet_run, tmp_path):
    cfg = standalone_config(tmp_path / "ft", max_steps=1)
    meta = json.loads((supernet_run / "export" / "arch.json").read_text())
    meta["num_classes"] = 7  # as if exported for another dataset
    other = tmp_path / "other"
    other.mkdir()
    (other / "arch.json").write_text(json.dumps(meta))
    state = torch.load(supernet_run / "export" / "state_dict.pt")
    state["classifier.weight"], state["classifier.bias"] = torch.zeros(7, state["classifier.weight"].shape[1]), \
        torch.zeros(7)
    torch.save(state, other / "state_dict.pt")
    t = StandaloneTrainer({**cfg, "init": str(other)})
    assert "new 10-class classifier" in t.origin
    assert torch.equal(t.net.stem[0].weight, state["stem.0.weight"])


# ---------------------------------------------------------------------------- pieces
def test_ema_decay_0_copies_1_keeps_and_buffers_are_copied():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    copy_, keep, half = (ModelEma(net, d, warmup=False) for d in (0.0, 1.0, 0.5))
    start = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    net.train()
    net(torch.randn(8, 3))  # moves the BN running statistics
    for e in (copy_, keep, half):
        e.update(net)
    now = list(net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(copy_.module.parameters(), now))
    assert all(torch.equal(a, b) for a, b in zip(keep.module.parameters(), start))
    assert all(torch.allclose(a, (s + b) / 2) for a, s, b in zip(half.module.parameters(), start, now))
    for e in (copy_, keep, half):
        assert all(torch.equal(a, b) for a, b in zip(e.module.buffers(), net.buffers()))
        assert not e.module.training and not any(p.requires_grad for p in e.module.parameters())
    warm = ModelEma(net, 0.9999)
    assert warm.current_decay() == pytest.approx(0.1)
    warm.update(net)
    assert warm.current_decay() == pytest.approx(2 / 11)
    restored = ModelEma(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), 0.5, warmup=False)
    restored.load_state_dict(half.state_dict())
    assert restored.updates == 1 and all(torch.equal(a, b) for a, b in
                                         zip(restored.module.state_dict().values(), half.module.state_dict().values()))


def test_drop_path_acts_only_in_training_and_rises_with_depth():
    net = SuperNet(TINY, 10).extract(TINY.largest())
    net.set_drop_path(0.5)
    rates = [b.drop_path for b in net.blocks]
    assert rates[0] == 0 and rates == sorted(rates) and max(rates) < 0.5
    block = next(b for b, r in zip(net.blocks, rates) if b.residual and r > 0.3)
    nn.init.ones_(block.project[1].weight)  # the supernet's init starts each residual branch at zero
    x = torch.randn(64, block.project[0].out_channels, 4, 4)
    block.train()
    torch.manual_seed(0)
    out = block(x)
    dropped = (out == x).flatten(1).all(1)
    assert 0 < int(dropped.sum()) < 64  # whole samples keep only their shortcut
    block.eval()
    ref = block(x)
    assert torch.equal(block(x), ref) and not (ref == x).flatten(1).all(1).any()
    block.drop_path = 0.0
    assert torch.equal(block(x), ref)


def test_teacher_renormalises_and_resizes_the_students_batch():
    x = torch.randn(2, 3, 8, 8)
    t = Teacher(nn.Identity(), 16, mean=(0.5,) * 3, std=(0.25,) * 3, data_mean=(0.1, 0.2, 0.3),
                data_std=(0.2, 0.3, 0.4))
    got = t(x)
    assert got.shape == (2, 3, 16, 16)
    pixels = x * torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1) + torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    want = torch.nn.functional.interpolate((pixels - 0.5) / 0.25, size=(16, 16), mode="bicubic", align_corners=False)
    assert torch.allclose(got, want, atol=1e-5)


# ---------------------------------------------------------------------------- ARCH sources
DERIVED = {"base": TINY_NAME, "name": "tiny-derived", "resolution": [12]}


def fpnas_result(folder, definition=True, space="tiny-derived"):
    space_ = get_space(DERIVED)
    arch = space_.smallest().to_dict()
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"mode": "fpnas", "space": space, "most_likely": {"arch": arch, "mflops": 0.2},
           "top": [{"arch": arch}], "space_definition": space_.definition if definition else None}
    (folder / "result.json").write_text(json.dumps(doc))
    return folder / "result.json", arch


def test_arch_from_an_fpnas_result_and_run_directory(tmp_path):
    path, arch = fpnas_result(tmp_path / "run")
    space, got = resolve_arch(str(path), space="attentivenas")  # the file's definition wins
    assert space.name == "tiny-derived" and space.definition == get_space(DERIVED).definition
    assert got.to_dict() == arch
    # a run directory whose result.json has no definition: the space of its config.yaml
    path, arch = fpnas_result(tmp_path / "old", definition=False)
    (tmp_path / "old" / "config.yaml").write_text(json.dumps({"space": DERIVED}))
    space, got = resolve_arch(str(tmp_path / "old"))
    assert space.name == "tiny-derived" and got.to_dict() == arch
    with pytest.raises(SupernasError, match="not built in.*space_definition"):
        resolve_arch(str(path))
    space, got = resolve_arch(str(path), space=DERIVED)
    assert got.to_dict() == arch


def test_arch_names_strings_and_errors(tmp_path):
    space, arch = resolve_arch("a0")
    assert space.name == "attentivenas" and arch["resolution"] == 192
    assert resolve_arch("largest", TINY_NAME)[1] == TINY.largest()
    assert resolve_arch(json.dumps(ARCH), TINY_NAME)[1].to_dict() == ARCH
    assert resolve_arch({"space": TINY_NAME, "arch": ARCH})[1].to_dict() == ARCH
    with pytest.raises(SupernasError, match="does not exist"):
        resolve_arch(str(tmp_path / "missing.json"))
    with pytest.raises(SupernasError, match="does not say which space"):
        resolve_arch(json.dumps(ARCH))
    with pytest.raises(SupernasError, match="needs the space"):
        resolve_arch("smallest")
    with pytest.raises(SupernasError, match="published model of the attentivenas space"):
        resolve_arch("a3", TINY_NAME)
    with pytest.raises(SupernasError, match="not in space 'attentivenas-tiny'.*mb2.depth"):
        resolve_arch(json.dumps({**ARCH, "mb2.depth": 9}), TINY_NAME)
    with pytest.raises(SupernasError, match="neither arch.json"):
        resolve_arch(str(tmp_path))


# ---------------------------------------------------------------------------- command line
def test_cli_retrains_an_fpnas_result_then_evaluates_and_resumes(tmp_path, capsys):
    path, arch = fpnas_result(tmp_path / "search")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({k: v for k, v in standalone_config(tmp_path / "r", max_steps=3).items() if k != "space"}))
    assert main(["retrain", str(tmp_path / "search"), str(config), "eval.max_batches=null"]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "result.json" in out
    r = json.loads((tmp_path / "r" / "result.json").read_text())
    assert r["space"] == "tiny-derived" and r["arch"] == arch and r["steps"] == 3
    meta = json.loads((tmp_path / "r" / "export" / "arch.json").read_text())
    assert meta["space_definition"] == get_space(DERIVED).definition
    assert main(["eval", str(tmp_path / "r" / "export"), "--data", "digits", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(r["top1"])
    assert main(["retrain", str(path), str(config)]) == 2  # the run exists
    assert "--resume" in capsys.readouterr().err
    assert main(["retrain", str(path), str(config), "eval.max_batches=null", "--resume"]) == 0  # nothing left
    assert json.loads((tmp_path / "r" / "result.json").read_text())["top1"] == r["top1"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    cases = [
        (["retrain", str(tmp_path / "nowhere.json"), "run.device=cpu"], "does not exist"),
        (["retrain", json.dumps({**ARCH, "mb1.width": 99}), f"space={TINY_NAME}"], "not allowed"),
        (["retrain", "smallest", f"space={TINY_NAME}", "train.optimizer=adam"], "train.optimizer"),
        (["retrain", "smallest", "train.epoch=3"], "did you mean 'train.epochs'"),
        (["finetune", str(tmp_path)], "not an export directory"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_cli_finetune_runs(supernet_run, tmp_path, capsys):
    assert main(["finetune", str(supernet_run / "export"), f"run.dir={tmp_path / 'ft'}", "run.device=cpu",
                 "data.path=digits", "data.image_size=12", "data.autoaugment=false", "data.train_subset=64",
                 "train.max_steps=2", "train.batch_size=32", "train.workers=0", "eval.max_batches=1",
                 "log.progress=false", "log.tensorboard=false"]) == 0
    assert "top-1" in capsys.readouterr().out
    model, meta = load_exported(tmp_path / "ft" / "export")
    assert model(torch.randn(2, 3, meta["resolution"], meta["resolution"])).shape == (2, 10)
    cfg = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert cfg["train"]["lr"] == 0.01 and cfg["train"]["warmup_epochs"] == 0  # the fine-tuning defaults


@pytest.mark.slow  # 11 to 20 s here, mostly two processes starting
def test_two_gloo_processes_train_identical_weights(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(f"""
        import os, sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from tiny_runs import STANDALONE_ARCH as ARCH, standalone_config
        from supernas.train.standalone import StandaloneTrainer
        torch.set_num_threads(1)
        t = StandaloneTrainer({{**standalone_config({str(tmp_path / 'run')!r}, max_steps=3, batch_size=16), "arch": ARCH}})
        r = t.fit()
        torch.save({{"model": t.net.state_dict(), "ema": t.ema.module.state_dict(), "top1": r["top1"]}},
                   os.path.join({str(tmp_path)!r}, f"rank{{os.environ['RANK']}}.pt"))
    """))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        "29541", str(worker)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a["top1"] == b["top1"]
    for k in ("model", "ema"):  # BN running statistics are each rank's own, as in stage 1
        assert all(torch.equal(a[k][n], b[k][n]) for n in a[k] if "running" not in n)
    assert (tmp_path / "run" / "export" / "state_dict.pt").is_file() and (tmp_path / "run" / "export" / "manifest.json").is_file()


@pytest.mark.parametrize("config", ["retrain_cifar10.yaml", "retrain_digits_quick.yaml"])
def test_retrain_configs_give_fpnas_l_archs_stochastic_depth(tmp_path, config):
    """Section C: the large FP-NAS models (the L spaces) train with stochastic depth, the small ones
    without; `auto` (the configs' and the default) is 0.2 for the first, 0 for the rest."""
    from supernas.config import RetrainConfig, load_config

    configs = Path(__file__).resolve().parents[1] / "src" / "supernas" / "configs"
    l0_cifar = yaml.safe_load((configs / "fpnas_cifar10.yaml").read_text())["space"]  # derived from fpnas-l0
    quick = ["data.path=digits", "data.image_size=16", "data.train_subset=64", "data.val_subset=32",
             "data.autoaugment=false", "train.batch_size=32", "train.workers=0", "run.device=cpu"]
    assert load_config(RetrainConfig, configs / config).train.drop_path == "auto"

    def rates(name, space, *extra):
        cfg = load_config(RetrainConfig, configs / config, [*quick, f"run.dir={tmp_path / name}", *extra],
                          data={"arch": "largest", "space": space})
        return [b.drop_path for b in StandaloneTrainer(cfg).net.blocks]

    large = rates("l0", l0_cifar)
    assert len(large) == 25 and large[0] == 0 and max(large) == pytest.approx(0.2 * 24 / 25)
    assert set(rates("tiny", TINY_NAME)) == {0.0}
    assert max(rates("set", TINY_NAME, "train.drop_path=0.1")) > 0.05  # a number holds for any Arch
    with pytest.raises(SupernasError, match=re.escape("train.drop_path='sometimes' is not allowed: a number in [0, 1) or one of auto")):
        rates("bad", TINY_NAME, "train.drop_path=sometimes")
