"""An export is one thing: a manifest of its files (names, sizes,
sha256) checked on every load, one loader for every command, weights that load without running
code, a pickled module only on request, and a one-line error for every damaged or foreign file."""
import json
import shutil
import warnings

import pytest
import torch
from tiny_runs import FAST_SCORING, TINY

from supernas import SupernasError
from supernas.cli import main


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """The smallest Arch of the shared trained run exported in the default format, and with the
    pickled module (a folder each), to copy from."""
    from supernas.deliver import export_arch
    from supernas.evaluation import load_run

    net, _, data = load_run(trained_run, "cpu")
    root = tmp_path_factory.mktemp("exports")
    for fmt in ("pt", "pickle"):
        export_arch(net, net.space.smallest(), data, root / fmt, fmt, bn_batches=1)
    return root


@pytest.fixture
def export(exported, tmp_path):
    return shutil.copytree(exported / "pt", tmp_path / "export")


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_an_export_is_a_state_dict_arch_json_and_a_manifest(export):
    from supernas.utils.io import file_sha256

    assert sorted(p.name for p in export.iterdir()) == ["arch.json", "manifest.json",
                                                         "state_dict.pt"]
    files = json.loads((export / "manifest.json").read_text())["files"]
    assert sorted(files) == ["arch.json", "state_dict.pt"]
    for name, entry in files.items():
        assert entry == {"bytes": (export / name).stat().st_size, "sha256": file_sha256(export / name)}


def test_every_command_loads_an_export_through_one_function_that_runs_no_code(export, tmp_path):
    """A directory loads as state_dict.pt + arch.json with weights_only=True: a pickle put beside
    them (say, a model.pt from someone else) is never unpickled."""
    from supernas.evaluation import load_exported

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    torch.save(Payload(), export / "model.pt")
    model, meta = load_exported(export)
    assert not marker.exists()
    assert model(torch.randn(2, 3, meta["resolution"], meta["resolution"])).shape == (2, 10)
    with pytest.raises(SupernasError, match="model.pt' is not part of the export .*manifest.json does not list it"):
        load_exported(export / "model.pt")
    assert not marker.exists()


def test_an_export_altered_after_it_was_written_is_refused_by_eval_and_finetune(export, capsys):
    state = torch.load(export / "state_dict.pt", weights_only=True)
    state["classifier.bias"] += 1.0  # other weights under the same arch.json
    torch.save(state, export / "state_dict.pt")
    assert main(["eval", str(export), "--data", "digits", "--device", "cpu"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"'{export / 'state_dict.pt'}' was changed after the export" in line
    assert main(["finetune", str(export), "run.dir=" + str(export.parent / "ft"), "run.device=cpu",
                 "data.path=digits", "train.max_steps=1", "train.workers=0"]) == 2
    assert "was changed after the export" in one_line(capsys.readouterr().err)
    (export / "manifest.json").unlink()  # an export of an older supernas: loads, with a warning
    from supernas.evaluation import load_exported

    with pytest.warns(UserWarning, match="has no manifest.json"):
        load_exported(export)


def test_a_pickled_module_is_written_on_request_and_never_loaded(exported):
    from supernas.evaluation import load_exported

    folder = exported / "pickle"
    assert "model.pt" in json.loads((folder / "manifest.json").read_text())["files"]
    pickled = torch.load(folder / "model.pt", weights_only=False)  # the user's own tools may read it
    with pytest.raises(SupernasError, match="pickled module, which could run any code"):
        load_exported(folder / "model.pt")
    rebuilt, meta = load_exported(folder)
    x = torch.randn(3, 3, meta["resolution"], meta["resolution"])
    with torch.no_grad():
        assert torch.equal(pickled.eval()(x), rebuilt(x))


def test_a_file_from_another_export_is_refused_and_formats_of_the_same_weights_join(run_copy, tmp_path, capsys):
    space = TINY
    smallest, largest = space.smallest().to_json(), space.largest().to_json()
    argv = ["export", str(run_copy), "--bn-batches", "1", "--device", "cpu"]
    assert main([*argv, "--arch", largest, "--format", "torchscript", "--out", str(tmp_path / "large")]) == 0
    out = tmp_path / "export"
    assert main([*argv, "--arch", smallest, "--out", str(out)]) == 0
    shutil.copy(tmp_path / "large" / "model.torchscript.pt", out)  # another Arch's model, put beside it
    capsys.readouterr()
    assert main(["eval", str(out / "model.torchscript.pt"), "--device", "cpu"]) == 2
    assert "is not part of the export" in one_line(capsys.readouterr().err)
    assert main([*argv, "--arch", smallest, "--format", "torchscript", "--out", str(out)]) == 0
    assert main([*argv, "--arch", smallest, "--out", str(out)]) == 0  # the same weights again: it stays listed
    assert main(["eval", str(out / "model.torchscript.pt"), "--device", "cpu", "--latency-repeats", "2"]) == 0


def test_eval_runs_an_onnx_export_in_onnxruntime(run_copy, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "export"
    smallest = TINY.smallest().to_json()
    assert main(["export", str(run_copy), "--arch", smallest, "--format", "onnx", "--bn-batches", "1",
                 "--device", "cpu", "--out", str(out)]) == 0
    capsys.readouterr()
    results = []
    for target in (out / "model.onnx", out):
        assert main(["eval", str(target), "--data", "digits", "--json", "--device", "cpu", "--latency-repeats",
                     "2"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    onnx, torch_ = results
    assert onnx["images"] == torch_["images"] == 359
    assert abs(onnx["top1"] - torch_["top1"]) <= 100 / 359  # float rounding may flip one close call


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "arch.json").write_text("{\"arch\": "), "arch.json' is not valid JSON"),
    (lambda d: (d / "arch.json").write_text("[1, 2]"), "arch.json' must hold a JSON object, not a list"),
    (lambda d: (d / "arch.json").write_text("{}"), "arch.json' lacks arch, resolution"),
    (lambda d: (d / "state_dict.pt").write_bytes(b"not a zip of tensors"), "state_dict.pt' is not a readable state"),
    (lambda d: (d / "state_dict.pt").unlink(), "holds no state_dict.pt"),
])
def test_damaged_exports_are_one_line_errors(export, capsys, damage, message):
    damage(export)
    (export / "manifest.json").unlink()  # as an export of an older supernas: the files themselves are read
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no manifest to check them against
        assert main(["eval", str(export), "--device", "cpu"]) == 2
    assert message in one_line(capsys.readouterr().err)


def test_an_arch_value_that_is_a_list_in_arch_json_is_one_line(export, capsys):
    meta = json.loads((export / "arch.json").read_text())
    meta["arch"]["resolution"] = [12, 16]
    (export / "arch.json").write_text(json.dumps(meta))
    (export / "manifest.json").unlink()
    with pytest.warns(UserWarning):
        assert main(["eval", str(export), "--device", "cpu"]) == 2
    assert "field 'resolution' has value [12, 16], which is not allowed" in one_line(capsys.readouterr().err)


def test_a_garbage_model_file_named_by_the_user_is_one_line(export, tmp_path, capsys):
    for name in ("model.pt", "model.torchscript.pt", "model.onnx"):
        (export / name).write_bytes(b"\x00garbage")
    manifest = json.loads((export / "manifest.json").read_text())
    from supernas.utils.manifest import describe_file

    manifest["files"].update({n: describe_file(export / n) for n in ("model.pt", "model.torchscript.pt", "model.onnx")})
    (export / "manifest.json").write_text(json.dumps(manifest))  # listed: the files themselves are read
    for name, message in (("model.pt", "is a pickled module"),
                          ("model.torchscript.pt", "is not a TorchScript model"),
                          ("model.onnx", "is not a readable ONNX model")):
        assert main(["eval", str(export / name), "--device", "cpu"]) == 2
        assert message in one_line(capsys.readouterr().err), name
    (export / "weights.bin").write_bytes(b"")
    assert main(["eval", str(export / "weights.bin"), "--device", "cpu"]) == 2
    assert "is not a model file of an export" in one_line(capsys.readouterr().err)


def test_eval_without_data_uses_the_dataset_the_export_records(trained_run, tmp_path, capsys):
    export = tmp_path / "export"
    smallest = json.dumps(TINY.smallest().to_dict())
    assert main(["export", str(trained_run), "--arch", smallest, "--out", str(export), *FAST_SCORING]) == 0
    meta = json.loads((export / "arch.json").read_text())
    assert meta["data"]["path"] == "digits" and meta["data"]["image_size"] == 12
    capsys.readouterr()
    assert main(["eval", str(export), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] > 0 and 0 <= result["top1"] <= 100
    assert result["on"] == "the val split of the built-in digits"
    assert main(["eval", str(export), "--device", "cpu"]) == 0
    assert "top1 " in (out := capsys.readouterr().out) and "on the val split of the built-in digits" in out
    # a dataset that is not here (the export came from another machine): latency only, and why
    meta["data"]["path"] = str(tmp_path / "elsewhere")
    (export / "arch.json").write_text(json.dumps(meta))
    (export / "manifest.json").unlink()  # arch.json was edited by hand: no manifest to disagree with it
    with pytest.warns(UserWarning, match="no manifest"):
        assert main(["eval", str(export), "--device", "cpu", "--latency-repeats", "2"]) == 0
    cap = capsys.readouterr()
    assert "top1" not in cap.out and "latency" in cap.out
    assert "is not found here; give --data PATH" in cap.err
