"""FP-NAS / PARSEC on 2 gloo ranks (torchrun, CPU): the ranks must stay in lockstep — same Archs
drawn, same weights, same alpha — while each trains on its own share of every batch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

WORKER = Path(__file__).with_name("fpnas_ddp_worker.py")

# 128 train images, 16 per rank and step: 4 steps per epoch; one warm-up epoch, then the arch
# steps on the joint distribution (switch at epoch 1), so both phases and the switch run
QUICK = ["data.train_subset=128", "train.batch_size=16", "train.epochs=2", "search.arch_warmup_epochs=1",
         "search.switch_epoch=1", "search.k_min=2", "search.k_max=4", "search.k_fixed=4",
         "search.mc_samples=32", "search.top_n=3", "checkpoint.every_steps=3"]


def run_two_ranks(tmp_path: Path, overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any], Path]:
    run = tmp_path / "run"
    # --standalone: a free local port, so concurrent test runs do not collide
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        str(WORKER), str(tmp_path), str(run), *overrides],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    load = lambda n: torch.load(tmp_path / f"rank{n}.pt", weights_only=True)  # noqa: E731
    return load(0), load(1), run


def assert_lockstep(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Same Archs every step, same weights (BN running statistics are per rank), same alpha."""
    assert len(a["seen"]) == len(b["seen"]) == a["step"] == b["step"]
    assert all(torch.equal(x["idx"], y["idx"]) for x, y in zip(a["seen"], b["seen"]))
    wa, wb = a["weights"], b["weights"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa if "running" not in k)
    assert a["kind"] == b["kind"]
    assert all(torch.equal(x, y) for x, y in zip(a["alpha"], b["alpha"]))
    assert a["samples_total"] == b["samples_total"] == sum(len(s["idx"]) for s in a["seen"])
    assert a["arch_steps"] == b["arch_steps"]


def assert_sharded_batches(a: dict[str, Any], b: dict[str, Any], per_rank: int) -> None:
    """Each rank trains on `per_rank` images a step, from its own share of the data."""
    assert a["steps_per_epoch"] == a["train_size"] // (2 * per_rank)
    assert all(s["batch"] == per_rank for s in a["seen"] + b["seen"])
    assert any(not torch.equal(x["labels"], y["labels"]) for x, y in zip(a["seen"], b["seen"]))


def assert_outputs_written_once(a: dict[str, Any], b: dict[str, Any], run: Path) -> None:
    """Only rank 0 writes result.json and the metrics, and fit() returns on every rank after it."""
    assert (a["finish_calls"], b["finish_calls"]) == (1, 0)
    assert a["result_exists"] and b["result_exists"]
    assert a["evaluated_exists"] and b["evaluated_exists"]  # the top Archs, scored over both ranks
    res = json.loads((run / "result.json").read_text())
    assert res["samples_total"] == a["samples_total"] and res["steps"] == a["step"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, a["step"] + 1))
    assert (run / "checkpoint.pt").is_file()


def test_two_gloo_ranks_search_in_lockstep(tmp_path):
    a, b, run = run_two_ranks(tmp_path, QUICK)
    assert a["step"] == 8 and a["arch_steps"] == 4 and a["kind"] == "joint"
    assert any(lg.abs().max() > 0 for lg in a["alpha"])  # alpha moved: its equality is not trivial
    assert_lockstep(a, b)
    assert_sharded_batches(a, b, per_rank=16)
    assert_outputs_written_once(a, b, run)


@pytest.mark.slow
def test_two_gloo_ranks_parsec_longer_search_in_lockstep(tmp_path):
    """Also with measured latency as the cost: rank 0 times the layers, every rank gets its figures."""
    overrides = [o for o in QUICK if not o.startswith(("data.train_subset", "train.epochs"))]
    latency = ["search.cost=latency", "search.beta=0.5", "search.cost_mode=hinge", "search.cost_target=0.01",
               "search.latency.warmup=0", "search.latency.repeats=1", "search.latency.window_s=0"]
    a, b, run = run_two_ranks(tmp_path, [*overrides, *latency, "search.mode=parsec", "data.train_subset=256",
                                         "train.epochs=3"])
    assert a["step"] == 24 and a["arch_steps"] == 16 and a["kind"] == "joint"
    assert (run / "latency_table.json").is_file()
    assert json.loads((run / "result.json").read_text())["most_likely"]["latency_ms"] > 0
    assert_lockstep(a, b)
    assert_sharded_batches(a, b, per_rank=16)
    assert_outputs_written_once(a, b, run)
