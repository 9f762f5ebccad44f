import json

import pytest
import torch
from tiny_runs import TINY

from supernas.cli import main
from supernas.evaluation import load_exported


def test_search_writes_pareto_set_and_resumes(run_copy, capsys):
    argv = ["search", str(run_copy), "--budgets", "1,2", "--population", "8", "--mutations", "4",
            "--crossovers", "4", "--generations", "2", "--bn-batches", "1", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "MFLOPs" in out and "pareto.png" in out
    d = run_copy / "search"
    entries = json.loads((d / "pareto.json").read_text())["entries"]
    assert entries and all(0 <= e["accuracy"] <= 100 for e in entries)
    assert (d / "pareto.csv").is_file() and (d / "pareto.png").stat().st_size > 1000
    evaluated = json.loads((d / "evaluated.json").read_text())["entries"]
    assert len(evaluated) >= len(entries) and (d / "evaluated.csv").is_file()
    best = json.loads((d / "best_per_budget.json").read_text())
    assert [b["budget"] for b in best] == [1.0, 2.0] and all(b["mflops"] <= b["budget"] for b in best)
    assert main(argv) == 2  # an existing search is not overwritten
    assert "--resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0  # finished state: nothing left to do, same results
    assert json.loads((d / "pareto.json").read_text())["entries"] == entries


def _export(run, fmt, out):
    if not (run / "search" / "pareto.json").exists():
        main(["search", str(run), "--max-mflops", "2", "--population", "4", "--mutations", "2",
              "--crossovers", "2", "--generations", "1", "--bn-batches", "1", "--device", "cpu"])
    return main(["export", str(run), "--pick", "2", "--format", fmt, "--out", str(out), "--bn-batches", "1",
                 "--device", "cpu"])


@pytest.mark.parametrize("fmt", ["pt", "torchscript"])
def test_export_picks_and_writes_a_standalone_model(run_copy, fmt, tmp_path):
    out = tmp_path / "export"  # beside the run, not over it
    assert _export(run_copy, fmt, out) == 0
    meta = json.loads((out / "arch.json").read_text())
    assert meta["mflops"] <= 2 and meta["num_classes"] == 10
    x = torch.randn(2, 3, meta["resolution"], meta["resolution"])
    model = load_exported(out)[0] if fmt == "pt" else torch.jit.load(str(out / "model.torchscript.pt"))
    assert not (out / "model.pt").exists()  # no pickled module unless asked for
    assert model(x).shape == (2, 10)


def test_eval_reports_accuracy_and_latency_of_an_export(run_copy, tmp_path, capsys):
    out = tmp_path / "export"  # beside the run, not over it
    assert _export(run_copy, "pt", out) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--data", "digits", "--latency", "--json", "--device", "cpu"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["images"] == 359 and 0 <= r["top1"] <= r["top5"] <= 100 and r["latency"]["median_ms"] > 0
    assert main(["eval", str(out / "nowhere")]) == 2


def test_onnx_export_matches_pytorch(run_copy, tmp_path):
    out = tmp_path / "export"  # beside the run, not over it
    ort = pytest.importorskip("onnxruntime")
    assert _export(run_copy, "onnx", out) == 0
    assert _export(run_copy, "pt", out) == 0  # same Arch, same seeded calibration
    meta = json.loads((out / "arch.json").read_text())
    x = torch.randn(3, 3, meta["resolution"], meta["resolution"])
    got = ort.InferenceSession(str(out / "model.onnx")).run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        want = load_exported(out)[0](x)
    assert (torch.from_numpy(got) - want).abs().max() < 1e-4


def test_stage2_errors_are_one_line(tmp_path, capsys):
    assert main(["search", str(tmp_path), "--budgets", "1"]) == 2
    assert "not a supernet run directory" in capsys.readouterr().err


def test_pick_reads_the_budget_in_the_unit_the_search_bounded(tmp_path, capsys):
    from supernas.search.picking import picked_entry
    from supernas.errors import SupernasError
    from supernas.spaces import load_arch

    space = TINY
    small, large = space.smallest(), space.largest()

    def pick(budget):
        return load_arch(space, picked_entry(str(tmp_path), budget)[0]["arch"])

    entries = [{"arch": small.to_dict(), "mflops": 0.5, "accuracy": 80.0},
               {"arch": large.to_dict(), "mflops": 9.0, "accuracy": 90.0}]
    (tmp_path / "pareto.json").write_text(json.dumps({"entries": entries}))
    assert pick(1.0) == small  # MFLOPs
    # a latency search: the same number is a budget in ms
    timed = [{**entries[0], "latency_ms": 3.0}, {**entries[1], "latency_ms": 0.8}]
    (tmp_path / "pareto.json").write_text(json.dumps({"entries": timed}))
    assert pick(1.0) == large
    with pytest.raises(SupernasError, match="no searched Arch costs at most 0.5 ms"):
        pick(0.5)
