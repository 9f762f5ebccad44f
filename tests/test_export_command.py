"""`export` says which Arch `--pick` chose, keeps an existing export of another
Arch unless `--force`, and traces to ONNX / TorchScript without TracerWarnings."""
import json
import re
import warnings

import pytest
import torch

from supernas.cli import main
from supernas.evaluation import load_exported

from tiny_runs import FAST_SCORING, TINY

SMALLEST, LARGEST = (json.dumps(a.to_dict()) for a in (TINY.smallest(), TINY.largest()))


@pytest.fixture
def searched_run(run_copy):
    assert main(["search", str(run_copy), "--budgets", "2,3", *FAST_SCORING, "--population", "4", "--mutations", "0",
                 "--crossovers", "0", "--generations", "0"]) == 0
    return run_copy


def test_pick_says_which_arch_it_chose(searched_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["export", str(searched_run), "--pick", "3", "--out", str(tmp_path / "e"), *FAST_SCORING]) == 0
    said = re.search(r"--pick 3: the best searched Arch within it: ([\d.]+) MFLOPs, ([\d.]+) M params, top-1 "
                     r"([\d.]+) \(the supernet on \d+ \w+ images\), at (\d+) px", capsys.readouterr().out)
    assert said, "no line naming the picked Arch"
    meta = json.loads((tmp_path / "e" / "arch.json").read_text())
    best = max((e for e in json.loads((searched_run / "search" / "pareto.json").read_text())["entries"]
                if e["mflops"] <= 3), key=lambda e: e["accuracy"])
    assert meta["arch"] == best["arch"]
    assert float(said.group(1)) == pytest.approx(meta["mflops"], rel=1e-3)
    assert float(said.group(2)) == pytest.approx(meta["params"] / 1e6, rel=1e-2)
    assert float(said.group(3)) == pytest.approx(best["accuracy"], abs=0.01)
    assert int(said.group(4)) == meta["resolution"]


def test_an_export_of_another_arch_is_kept_unless_forced(run_copy, tmp_path, capsys):
    out = tmp_path / "e"
    argv = ["export", str(run_copy), "--out", str(out), *FAST_SCORING]
    assert main([*argv, "--arch", SMALLEST, "--format", "onnx"]) == 0
    assert main([*argv, "--arch", SMALLEST, "--format", "torchscript"]) == 0  # another format of the same Arch joins
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main([*argv, "--arch", LARGEST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"already holds the export of an Arch of [\d.]+ MFLOPs; replace it "
                                              r"with --force, or write this one elsewhere with --out DIR", err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert main([*argv, "--arch", LARGEST, "--force"]) == 0
    assert json.loads((out / "arch.json").read_text())["arch"] == TINY.largest().to_dict()
    # no model of the replaced Arch is left beside the new one
    assert sorted(p.name for p in out.iterdir()) == ["arch.json", "manifest.json", "state_dict.pt"]


def test_the_supernet_export_is_kept_unless_forced(run_copy, tmp_path, capsys):
    out = tmp_path / "ref"
    argv = ["export", str(run_copy), "--format", "reference", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert "already holds an export of the supernet; overwrite it with --force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_tracing_raises_no_tracer_warning(fmt, run_copy, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    # at 12 px the third stage's strided block gets a 3-pixel map: its shortcut pools with padding
    arch = {**TINY.largest().to_dict(), "resolution": 12}
    out = tmp_path / "export"  # a folder of its own: tmp_path holds the run
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        assert main(["export", str(run_copy), "--arch", json.dumps(arch), "--format", fmt, "--out", str(out),
                     *FAST_SCORING]) == 0
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        want = load_exported(out)[0](x)
    if fmt == "torchscript":
        got = torch.jit.load(str(out / "model.torchscript.pt"))(x)
    else:
        ort = pytest.importorskip("onnxruntime")
        got = torch.from_numpy(ort.InferenceSession(str(out / "model.onnx")).run(None, {"images": x.numpy()})[0])
    assert (got - want).abs().max() < 1e-4
