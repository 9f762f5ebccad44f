"""Every script of bench/ runs, end to end, in its --small mode (a bench that rots fails here), and
imports only supernas's public API or bench/common.py (a refactor of the package shows here first)."""
from __future__ import annotations

import ast
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "common")


@pytest.fixture
def load(bench) -> Callable[[str], Any]:
    """A bench script as a module (fresh, with bench/ importable), torch's thread count restored after."""
    threads = torch.get_num_threads()
    loaded = []

    def load(name: str) -> Any:
        sys.modules.pop(name, None)
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    torch.set_num_threads(threads)
    for name in loaded:
        sys.modules.pop(name, None)


# ---------------------------------------------------------------------------- each bench in --small mode
def _cost_model(mod, tmp_path, capsys):
    mod.main(["--small"])
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith(("attentivenas-tiny", "fpnas-l0"))]
    assert len(rows) == 2 and all(r.split()[-1] == "yes" for r in rows)  # analytic == FlopCounterMode


def _elastic_overhead(mod, tmp_path, capsys):
    mod.main(["--small"])
    out = capsys.readouterr().out
    assert "ratio: supernet time over extracted-model time" in out and "Self CPU time total" in out


def _latency_table(mod, tmp_path, capsys):
    mod.main(["--small"])
    out = capsys.readouterr().out
    assert "3 other Archs" in out and "Kendall tau" in out and "e2e again vs e2e" in out


def _sampler(mod, tmp_path, capsys):
    mod.main(["--small"])
    assert "naive measured (run, 3 prior-drawn targets)" in capsys.readouterr().out


def _stage2_batches(mod, tmp_path, capsys):
    mod.main(["--small"])
    assert "top-1 the same: True" in capsys.readouterr().out


def _train_step(mod, tmp_path, capsys):
    mod.main(["--small"])
    assert "ratio supernet/extracted step time" in capsys.readouterr().out


def _activation_memory(mod, tmp_path, capsys):
    mod.main(["--small"])
    out = capsys.readouterr().out
    assert "| fp32 | on |" in out and "whole sandwich step" in out and "sandwich step at 16 px" in out


def _loader(mod, tmp_path, capsys):
    res = mod.main(["--small"])
    assert set(res["per_workers"]) == {"cifar10, 0 workers", "imagenet-sized, 0 workers"}
    assert all(v > 0 for v in res["per_workers"].values())


def _gpu_suite(mod, tmp_path, capsys):
    # train and stage2 run in tests/test_device_steps.py; here the rest, the loader on generated images
    res = mod.main(["--small", "--device", "cpu", "--out", str(tmp_path), "--only", "profile,loader"])
    assert res["loader"]["per_workers"], res["loader"]
    assert not [k for k, v in res.get("profile", {}).items() if "error" in v]
    assert (tmp_path / "gpu_suite.md").is_file()


def _import_reference(mod, tmp_path, capsys):
    mod.main(["--small", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "24.0 M values" in out and "supernas import attentivenas" in out
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def _search_vs_random(mod, tmp_path, capsys):
    report = mod.main(["--small", "--out", str(tmp_path)])
    (row,) = report["rows"]
    assert {"val_top1", "mflops"} <= set(row["evolution"]) and "mean_best_of_n" in row["random"]
    assert row["evolution"]["mflops"] <= row["budget"] and row["random"]["mflops"] <= row["budget"]
    assert json.loads((tmp_path / "search_vs_random.json").read_text())["rows"] == json.loads(json.dumps([row]))


def _fpnas_vs_parsec(mod, tmp_path, capsys):
    report = mod.main(["--small", "--out", str(tmp_path)])
    for mode in ("fpnas", "parsec"):  # both searched and retrained
        assert report[mode]["samples"] > 0 and 0 <= report[mode]["top1"] <= 100
        assert not report[mode]["reused"]
        assert (tmp_path / f"retrain_{mode}" / "export" / "manifest.json").is_file()
    assert report["comparison"]["top1_diff"] is not None
    again = mod.main(["--small", "--out", str(tmp_path)])  # the same command again reuses every run
    assert again["fpnas"]["reused"] and again["parsec"]["retrain_reused"]
    assert again["fpnas"]["top1"] == report["fpnas"]["top1"]


def _fpnas_variants(mod, tmp_path, capsys):
    report = mod.main(["--small", "--out", str(tmp_path)])
    assert [(r["variant"], r["seed"]) for r in report["runs"]] == [("uniform", 0), ("importance", 0)]
    assert all("top1" in r and "random_top1" in r for r in report["runs"])
    assert set(report["mean_over_seeds"]) == {"uniform", "importance"}


def _search_quality(mod, tmp_path, capsys):
    report = mod.main(["--small", "--out", str(tmp_path / "q.json")])
    assert "guided real calls / new evolution real calls" in report["objectives"]["stuck"]["ratios"]
    assert json.loads((tmp_path / "q.json").read_text())["budgets"] == report["budgets"]


REFERENCE = BENCH.parents[1] / "shared" / "reference" / "attentivenas-c4c16f1.tar.gz"


def _reference_step(mod, tmp_path, capsys):
    if not REFERENCE.is_file():
        pytest.skip("the reference implementation's archive (../shared/reference) is not beside the checkout")
    result = mod.main(["--small", "--reference", str(REFERENCE), "--device", "cpu", "--json", str(tmp_path / "r.json")])
    row = result["precisions"]["fp32"]
    assert row["supernas"]["images_per_s"] > 0 and row["reference"]["images_per_s"] > 0
    assert row["speed_ratio"] == pytest.approx(row["supernas"]["images_per_s"] / row["reference"]["images_per_s"])
    assert "| fp32 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["resolutions"] == [32, 48]
    assert "models.model_factory" not in sys.modules  # the reference's generic module names are gone again


SMALL_RUNS = {
    "cost_model": _cost_model, "elastic_overhead": _elastic_overhead, "latency_table": _latency_table,
    "sampler": _sampler, "stage2_batches": _stage2_batches, "train_step": _train_step, "activation_memory": _activation_memory, "loader": _loader,
    "gpu_suite": pytest.param(_gpu_suite, marks=pytest.mark.slow),
    "import_reference": pytest.param(_import_reference, marks=pytest.mark.slow),
    "search_vs_random": pytest.param(_search_vs_random, marks=pytest.mark.slow),
    "fpnas_vs_parsec": pytest.param(_fpnas_vs_parsec, marks=pytest.mark.slow),
    "fpnas_variants": pytest.param(_fpnas_variants, marks=pytest.mark.slow),
    "reference_step": pytest.param(_reference_step, marks=pytest.mark.slow),
    "search_quality": pytest.param(_search_quality, marks=pytest.mark.slow),
}


@pytest.mark.slow
def test_the_first_device_call_runs_here_at_small_settings(tmp_path):
    import os
    import subprocess

    cifar = REFERENCE.parents[1] / "data" / "cifar10-jpg.tar.gz"
    if not (REFERENCE.is_file() and cifar.is_file()):
        pytest.skip("the reference and CIFAR-10 archives (../shared) are not beside the checkout")
    env = {**os.environ, "OUT": str(tmp_path), "REFERENCE": str(REFERENCE), "DATA": str(cifar),
           "PYTHON": sys.executable}
    # the reference rows and the loader on the CIFAR-10 archive: the two the script adds to the suite
    run = subprocess.run(["bash", str(BENCH / "device_first_call.sh"), "--small", "--device", "cpu",
                          "--only", "reference,loader"], cwd=BENCH.parent, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert result["reference"] and all("error" not in v for v in result["reference"].values()), result["reference"]
    assert any(k.startswith("cifar10") for k in result["loader"]["per_workers"]), result["loader"]
    tests = (tmp_path / "gpu_tests.log").read_text()
    if torch.cuda.is_available():
        assert " passed" in tests, tests
    else:
        assert " skipped" in tests and " passed" not in tests, tests
    assert " failed" not in tests and " error" not in tests, tests


def test_every_bench_has_a_small_run_here():
    assert sorted(SMALL_RUNS) == SCRIPTS, "give the new bench a --small mode and an entry in SMALL_RUNS"


@pytest.mark.parametrize("check", SMALL_RUNS.values(), ids=list(SMALL_RUNS))
def test_bench_runs_end_to_end_in_its_small_mode(check, load, tmp_path, capsys, one_thread, request):
    name = request.node.callspec.id
    check(load(name), tmp_path, capsys)


@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_has_a_parser_and_a_small_flag(name, load):
    mod = load(name)
    parser = mod.build_parser()
    assert any("--small" in action.option_strings for action in parser._actions)
    assert callable(mod.parse_args) and callable(mod.main)


# ---------------------------------------------------------------------------- only the public API
def _public_names(module: str) -> set[str]:
    return set(getattr(importlib.import_module(module), "__all__", ()))


REFERENCE_PATH = "# the reference implementation's own folder"


def _import_violations(path: Path) -> list[str]:
    """What `path` imports from supernas beyond the public API (names in a package's __all__), from
    another bench (but common.py), or how it reaches into private names or sys.path."""
    bad = []
    src = path.read_text()
    # the one exception: the reference implementation, for measurement beside ours, imports from where
    # it was unpacked (its README's way), on lines that say so
    reference_lines = {i + 1 for i, line in enumerate(src.splitlines()) if line.rstrip().endswith(REFERENCE_PATH)}
    for node in ast.walk(ast.parse(src)):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            top = module.split(".")[0]
            if node.level:
                bad.append(f"{where}: relative import")
            elif top == "supernas":
                parts = module.split(".")
                package = BENCH.parents[0] / "src" / Path(*parts) / "__init__.py"
                if len(parts) > 2 or not package.is_file():
                    bad.append(f"{where}: from {module} (a module inside a package; import from the package)")
                    continue
                public = _public_names(module)
                for alias in node.names:
                    if alias.name.startswith("_") or alias.name not in public:
                        bad.append(f"{where}: {alias.name} is not in {module}.__all__")
                    elif not hasattr(importlib.import_module(module), alias.name):
                        bad.append(f"{where}: {module}.__all__ names {alias.name}, which does not import")
            elif top in SCRIPTS:
                bad.append(f"{where}: imports bench {top} (share code through bench/common.py)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("supernas."):
                    bad.append(f"{where}: import {alias.name} (use `from supernas.<package> import NAME`)")
                elif alias.name.split(".")[0] in SCRIPTS:
                    bad.append(f"{where}: imports bench {alias.name} (share code through bench/common.py)")
        elif isinstance(node, ast.Attribute):
            if node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys":
                if node.lineno in reference_lines:
                    continue
                bad.append(f"{where}: sys.path (benches import supernas as installed, and bench/common.py)")
            elif node.attr.startswith("_") and not node.attr.startswith("__"):
                bad.append(f"{where}: private attribute .{node.attr}")
    return bad


@pytest.mark.parametrize("name", [*SCRIPTS, "common"])
def test_bench_imports_only_the_public_api(name):
    assert _import_violations(BENCH / f"{name}.py") == []


def test_the_import_check_catches_a_private_import(tmp_path):
    script = tmp_path / "x.py"
    script.write_text("import sys\nfrom supernas.runtime.losses import soft_target_ce\nfrom supernas.search import "
                      "_x, search_run\nimport gpu_suite\nsys.path.insert(0, 'tests')\ncost._tables.cache_clear()\n")
    found = _import_violations(script)
    assert len(found) == 5, found
    assert not [f for f in found if "search_run" in f]


def test_retrain_takes_the_config_a_bench_built(tmp_path):
    """bench/fpnas_vs_parsec.py hands retrain() the RetrainConfig it loaded (it once failed in
    read_yaml after both searches); a FinetuneConfig is refused with a message."""
    from supernas.config import FinetuneConfig, RetrainConfig, load_config
    from supernas.train.standalone import retrain_trainer

    cfg = load_config(RetrainConfig, BENCH.parent / "configs" / "retrain_digits_quick.yaml",
                      [f"run.dir={tmp_path}", "train.epochs=1", "data.train_subset=32",
                       "train.batch_size=16"], data={"arch": "smallest"})
    trainer = retrain_trainer(cfg.arch, config=cfg)
    assert trainer.cfg == cfg
    with pytest.raises(TypeError, match="FinetuneConfig"):
        retrain_trainer("smallest", config=load_config(FinetuneConfig, data={"init": str(tmp_path)}, require=False))
