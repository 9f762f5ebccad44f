"""What importing a published supernet costs on CPU: `supernas import attentivenas` of a full-size
AttentiveNAS checkpoint (the reference layout, 24.0 M values), against a baseline process that
only loads the modules the command loads.

    python bench/import_reference.py [--repeats 3] [--dir /tmp/import-bench]
    python bench/import_reference.py --small        # one run of each (a test runs it)

The checkpoint is a randomly initialised `attentivenas` SuperNet written in the reference layout by
supernas (`supernas.nn.reference_checkpoint`, what `supernas export --format reference` writes):
the keys and shapes of the published file, whose values do not change what an import costs. Each
command runs in a fresh process (OMP_NUM_THREADS=1); wall time is the best of `--repeats`, peak
memory the largest resident set of the process (getrusage of the finished child).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

from common import add_small_flag, parse_small
from supernas import get_space
from supernas.nn import SuperNet, reference_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "import torch, supernas.cli, supernas.deliver.reference_run, supernas.train.supernet, supernas.data"


def run_child(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    # ru_maxrss of RUSAGE_CHILDREN is the largest of the finished children: run one child per call
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def best(argv: list[str], repeats: int, before=None) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        if before:
            before()
        runs.append(run_child(argv))
    return min(r[0] for r in runs), max(r[1] for r in runs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", help="working directory (default: a temporary one, removed after)")
    add_small_flag(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: one run of each command (the checkpoint is full size either way: the
    reference layout is that of the full space)."""
    return parse_small(build_parser(), argv, {"repeats": 1})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(args.dir or tempfile.mkdtemp(prefix="import-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    ck = work / "attentive_nas_reference_layout.pth.tar"
    torch.manual_seed(0)
    torch.save(reference_checkpoint(SuperNet(get_space("attentivenas"), 1000)), ck)
    run = work / "run"
    state = torch.load(ck, weights_only=True)["state_dict"]
    values = sum(t.numel() for k, t in state.items() if "bn_tracking" not in k)
    print(f"checkpoint: {ck} ({ck.stat().st_size / 2**20:.1f} MiB, {values / 1e6:.1f} M values), "
          f"torch {torch.__version__}, {args.repeats} runs each\n")
    # The baseline first, in a process of its own: ru_maxrss of children only grows.
    base_s, base_mb = best([sys.executable, "-c", BASELINE], args.repeats)
    imp_s, imp_mb = best([sys.executable, "-m", "supernas.cli", "import", "attentivenas", str(ck), "--out", str(run)],
                         args.repeats, before=lambda: shutil.rmtree(run, ignore_errors=True))
    print(f"{'':<40}{'wall s':>8}{'peak MiB':>10}")
    print(f"{'modules only (baseline)':<40}{base_s:>8.2f}{base_mb:>10.0f}")
    print(f"{'supernas import attentivenas':<40}{imp_s:>8.2f}{imp_mb:>10.0f}")
    print(f"{'import minus baseline':<40}{imp_s - base_s:>8.2f}{imp_mb - base_mb:>10.0f}")
    print(f"\nrun directory: {run} (checkpoint.pt {(run / 'checkpoint.pt').stat().st_size / 2**20:.1f} MiB)")
    if not args.dir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
