"""Published AttentiveNAS supernets: the reference checkpoint layout read and written, and the
network computing exactly what the reference implementation computes."""
import json
import sys
import types

import pytest
import torch
from reference_fixture import FIXTURE, case_input, load_fixture, reference_checkpoint
from tiny_runs import TINY_NAME

from supernas.cli import main
from supernas.evaluation import load_exported
from supernas.nn import SuperNet
from supernas.nn.reference import read_reference_checkpoint
from supernas.spaces import load_arch
from supernas.spaces.builtin import ATTENTIVENAS_MODELS

needs_fixture = pytest.mark.skipif(not FIXTURE.is_file(), reason=f"{FIXTURE} is absent (it lies beside the checkout)")


@pytest.fixture(scope="module")
def fixture():
    return load_fixture()


@pytest.fixture(scope="module")
def reference_net(fixture):
    return SuperNet.from_reference_checkpoint(reference_checkpoint(fixture))


# ---------------------------------------------------------------------- exactness against the reference
@needs_fixture
@pytest.mark.parametrize("name", sorted(ATTENTIVENAS_MODELS))
def test_published_models_compute_what_the_reference_computes(fixture, reference_net, name):
    case = next(c for c in fixture["cases"] if c["name"] == name)
    arch = load_arch(reference_net.space, name)
    assert arch == load_arch(reference_net.space, case["arch"])
    x, want = case_input(case["arch"]["resolution"]), torch.tensor(case["logits"])
    with torch.no_grad():
        extracted = reference_net.extract(arch).eval()(x)
        shared = reference_net(x, arch)
    worst = max(float((extracted - want).abs().max()), float((shared - want).abs().max()))
    print(f"{name}: worst |logit - reference logit| {worst:.2e} (reference logits' std {case['logits_std']:.3f})")
    assert worst < 1e-4


@needs_fixture
def test_export_writes_the_reference_layout_and_import_reads_it_back(fixture, reference_net):
    written = reference_net.reference_checkpoint()["state_dict"]
    # every key of the reference's own model, in its order, with its shape and dtype
    assert [(k, list(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in written.items()] == \
        [("module." + k, shape, dtype) for k, shape, dtype in fixture["keys"]]
    original = reference_checkpoint(fixture)["state_dict"]
    for key, t in written.items():
        if ".bn_tracking." not in key:
            assert torch.equal(t, original[key]), key
    assert reference_net.num_classes == 1000 and reference_net.space.name == "attentivenas"


# ---------------------------------------------------------------------- formats
@pytest.fixture
def tiny():
    """A supernet of the tiny space with BN statistics of its own (not the initial 0 / 1)."""
    net = SuperNet(TINY_NAME, 10)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)
    return net


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("form", ["official", "official-no-prefix", "bare", "bare-no-prefix"])
def test_import_reads_every_layout_from_file_and_memory(tiny, form, tmp_path):
    sd = tiny.reference_checkpoint()["state_dict"]
    if form.endswith("no-prefix"):
        sd = {k.removeprefix("module."): t for k, t in sd.items()}
    obj = sd if form.startswith("bare") else {"state_dict": sd, "epoch": 3, "optimizer": {"state": {}}}
    torch.save(obj, tmp_path / "c.pth.tar")
    _assert_same(SuperNet.from_reference_checkpoint(tmp_path / "c.pth.tar", TINY_NAME), tiny)
    _assert_same(SuperNet.from_reference_checkpoint(obj, TINY_NAME), tiny)
    assert set(read_reference_checkpoint(obj)) == {k.removeprefix("module.") for k in sd if ".bn_tracking." not in k}


@pytest.mark.skipif(not hasattr(torch.serialization, "safe_globals"), reason="torch < 2.5: no safe_globals")
def test_import_reads_a_checkpoint_with_the_reference_config_without_running_its_code(tiny, tmp_path, monkeypatch):
    # The reference saves its config object (`args`) beside the weights, in the legacy format.
    ran = []
    module = types.ModuleType("reference_utils_config")

    class Config(dict):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.__dict__ = self

        def __setstate__(self, state):
            ran.append(state)  # would run if the file's class were used

    Config.__module__, Config.__qualname__ = module.__name__, "Config"
    module.Config = Config
    monkeypatch.setitem(sys.modules, module.__name__, module)
    obj = {"state_dict": tiny.reference_checkpoint()["state_dict"], "args": Config(lr=0.1, dataset="imagenet")}
    torch.save(obj, tmp_path / "c.pth.tar", _use_new_zipfile_serialization=False)
    monkeypatch.delitem(sys.modules, module.__name__)
    _assert_same(SuperNet.from_reference_checkpoint(tmp_path / "c.pth.tar", TINY_NAME), tiny)
    assert not ran


def _bad_checkpoint(kind: str, tiny: SuperNet, tmp_path):
    sd = dict(tiny.reference_checkpoint()["state_dict"])
    path = tmp_path / "bad.pth.tar"
    if kind == "not a checkpoint":
        path.write_text("weights: none\n")
        return path
    if kind == "no file":
        return tmp_path / "nowhere.pth.tar"
    if kind == "a list":
        obj = [torch.zeros(3)]
    elif kind == "not tensors":
        obj = {"state_dict": {"epoch": 3}}
    elif kind == "missing key":
        del sd["module.blocks.2.mobile_inverted_conv.depth_conv.bn.bn.running_var"]
        obj = {"state_dict": sd}
    elif kind == "unexpected key":
        obj = {"state_dict": {**sd, "module.blocks.99.extra.weight": torch.zeros(4, 2)}}
    elif kind == "mis-shaped":
        sd["module.last_conv.feature_mix_layer.conv.conv.weight"] = torch.zeros(192, 100, 1, 1)
        obj = {"state_dict": sd}
    elif kind == "twice":
        obj = {**sd, "first_conv.conv.conv.weight": sd["module.first_conv.conv.conv.weight"]}
    else:
        raise AssertionError(kind)
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("kind, space, message", [
    ("not a checkpoint", TINY_NAME, "is not a PyTorch checkpoint"),
    ("no file", TINY_NAME, "no checkpoint at"),
    ("a list", TINY_NAME, "holds a list, not a state dict"),
    ("not tensors", TINY_NAME, "entry 'epoch' holds a int, not a tensor"),
    ("missing key", TINY_NAME, "lacks 'blocks.2.mobile_inverted_conv.depth_conv.bn.bn.running_var' (shape [96])"),
    ("unexpected key", TINY_NAME, "holds 'blocks.99.extra.weight' (shape [4, 2]), which the attentivenas-tiny supernet "
                             "has no place for"),
    ("mis-shaped", TINY_NAME, "'last_conv.feature_mix_layer.conv.conv.weight' has shape [192, 100, 1, 1] in the "
                         "checkpoint but [192, 192, 1, 1]"),
    ("twice", TINY_NAME, "holds 'first_conv.conv.conv.weight' twice"),
    # a checkpoint of another space: its first tensor already differs
    ("official", "attentivenas", "'first_conv.conv.conv.weight' has shape [16, 3, 3, 3] in the checkpoint but "
                                 "[24, 3, 3, 3] in the attentivenas supernet"),
    ("official", "fpnas-l0", "space 'fpnas-l0' has identity shortcuts"),
])
def test_bad_checkpoints_are_one_line_errors_naming_the_key(kind, space, message, tiny, tmp_path, capsys):
    if kind == "official":
        path = tmp_path / "c.pth.tar"
        torch.save(tiny.reference_checkpoint(), path)
    else:
        path = _bad_checkpoint(kind, tiny, tmp_path)
    assert main(["import", "attentivenas", str(path), "--space", space, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()  # nothing written


def test_import_refuses_an_existing_run_and_settings_other_than_data(tiny, tmp_path, capsys):
    path = tmp_path / "c.pth.tar"
    torch.save(tiny.reference_checkpoint(), path)
    run = tmp_path / "run"
    base = ["import", "attentivenas", str(path), "--space", TINY_NAME, "--out", str(run)]
    assert main(base + ["train.epochs=3"]) == 2
    assert "takes only data.KEY=VALUE" in capsys.readouterr().err
    assert main(base + ["data.nonsense=3"]) == 2
    assert "unknown config key 'data.nonsense'" in capsys.readouterr().err
    assert main(base) == 0
    assert main(base) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "reference", "--arch", "{}"]) == 2
    assert "drop --arch" in capsys.readouterr().err
    assert main(["export", str(run), "--arch", "{}", "--bn-batch-size", "0"]) == 2
    assert "--bn-batch-size must be at least 1, got 0" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "reference", "--out", str(tmp_path / "fpnas")]) == 0
    # a space the reference layout cannot hold is refused on export as well
    fpnas = tmp_path / "fpnas-run"
    fpnas.mkdir()
    (fpnas / "config.yaml").write_text("space: fpnas-l0\n")
    torch.save({"model": SuperNet("fpnas-l0", 10).state_dict(), "space": "fpnas-l0"}, fpnas / "checkpoint.pt")
    assert main(["export", str(fpnas), "--format", "reference"]) == 2
    assert "space 'fpnas-l0' has identity shortcuts" in capsys.readouterr().err


# ---------------------------------------------------------------------- run directories
def test_imported_run_without_its_data_says_how_to_name_it(tmp_path, capsys):
    path = tmp_path / "c.pth.tar"
    torch.save(SuperNet(TINY_NAME, 1000).reference_checkpoint(), path)
    run = tmp_path / "run"
    assert main(["import", "attentivenas", str(path), "--space", TINY_NAME, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["search", str(run), "--budgets", "2", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "predicts 1000 classes but its data (the built-in digits) has 10" in err and "data.path=" in err
    assert main(["search", str(run), "--budgets", "2", "run.dir=elsewhere"]) == 2
    assert "takes only data.KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "src/supernas/configs/attentivenas_digits_quick.yaml", f"run.dir={run}",
                 f"space={TINY_NAME}", "--resume"]) == 2
    assert "holds imported weights" in capsys.readouterr().err


@pytest.mark.slow
def test_round_trip_gives_identical_tensors_and_the_same_stage2(trained_run, tmp_path, capsys):
    assert main(["export", str(trained_run), "--format", "reference", "--out", str(tmp_path / "ref")]) == 0
    run = tmp_path / "imported"
    # the trained run's data, named at import
    data = ["data.path=digits", "data.image_size=12", "data.train_subset=256", "data.search_size=100"]
    assert main(["import", "attentivenas", str(tmp_path / "ref" / "supernet.pth.tar"), "--space", TINY_NAME,
                 "--out", str(run), *data]) == 0
    trained = torch.load(trained_run / "checkpoint.pt", weights_only=True)["model"]
    imported = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert trained.keys() == imported.keys()
    for k in trained:
        assert torch.equal(trained[k], imported[k]), k
    # stage 2: an export of the imported run is the export of the trained one
    arch = json.dumps(SuperNet(TINY_NAME, 10).space.smallest().to_dict())
    for source, out in ((trained_run, "from-trained"), (run, "from-imported")):
        assert main(["export", str(source), "--arch", arch, "--bn-batches", "2", "--device", "cpu",
                     "--out", str(tmp_path / out)]) == 0
    x = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        a, b = (load_exported(tmp_path / out)[0](x) for out in ("from-trained", "from-imported"))
    assert torch.equal(a, b)
    # the search (data named again after the options) and the predictor take it as a trained run
    assert main(["search", str(run), "--budgets", "2", "--population", "4", "--mutations", "2", "--crossovers", "2",
                 "--generations", "1", "--bn-batches", "1", "--device", "cpu", "data.val_subset=50"]) == 0
    assert (run / "search" / "pareto.json").is_file()
    assert main(["predictor", "fit", str(run), "-n", "6", "--holdout", "0", "--bn-batches", "1", "--max-batches", "1",
                 "--device", "cpu"]) == 0
