"""FLOPs-constrained sampling on the attentivenas space (1000 classes): the proposal table against
naive rejection, as in AttentiveNAS Appendix C (paper: ~12 trials vs 50,878 per Arch).

Trials per accepted Arch are averaged two ways:
  * prior-weighted -- targets drawn from the FLOPs prior, as training draws them;
  * bin-averaged   -- every reachable 25-MFLOPs bin counted once (Figure 8's per-target view,
                      where rare FLOPs dominate naive rejection).
Proposal trials are measured by running the sampler. Naive trials are estimated, not run: a
uniform Arch lands in bin b with probability p(b), the pool's share, so it needs 1/p(b) trials
there on average (a bin holding one Arch of the pool needs about n_prior). Prior-weighted, that
is exactly the number of reachable bins. A short measured naive run checks the estimate.

    python bench/sampler.py [--n-prior N] [--samples S] [--per-bin M]
    python bench/sampler.py --small           # seconds (a test runs it)
"""
from __future__ import annotations

import argparse
import time
from typing import Sequence

import numpy as np

from common import add_small_flag, parse_small
from supernas import get_space
from supernas.sampling import FlopsConstrainedSampler, estimate_flops_tables
from supernas.spaces import CostModel


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-prior", type=int, default=1_000_000, help="random Archs behind prior and proposal")
    ap.add_argument("--samples", type=int, default=3000, help="prior-drawn Archs for the proposal's speed and trials")
    ap.add_argument("--per-bin", type=int, default=20, help="Archs drawn in every bin for the bin-averaged trials")
    ap.add_argument("--naive-samples", type=int, default=300, help="prior-drawn Archs of the measured naive check")
    ap.add_argument("--seed", type=int, default=0)
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: 20,000 Archs behind the prior, 40 proposals, 2 per bin, 3 naive draws."""
    return parse_small(build_parser(), argv, {"n_prior": 20_000, "samples": 40, "per_bin": 2, "naive_samples": 3})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)

    space = get_space("attentivenas")
    cost = CostModel(space, 1000)
    cost.mflops_indices(space.sample_indices(0, 1000))  # warm up outside the timing

    t = time.perf_counter()
    tables = estimate_flops_tables(space, cost, n=args.n_prior, seed=args.seed, bin_width=25)
    build_s = time.perf_counter() - t
    prior = tables[0]
    bins = prior.bins
    p = np.array([prior.prob(b) for b in bins])
    print(f"space attentivenas, 1000 classes, 25-MFLOPs bins, pool of {args.n_prior:,} uniform Archs")
    print(f"prior + proposal tables built in {build_s:.2f} s ({args.n_prior / build_s:,.0f} Archs/s scored); "
          f"{len(bins)} reachable bins, {prior.range(bins.min())[0]:.0f}-{prior.range(bins.max())[1]:.0f} MFLOPs")

    prop = FlopsConstrainedSampler(space, cost, args.seed + 1, tables=tables)
    t = time.perf_counter()
    for _ in range(args.samples):
        prop.sample()
    rate = args.samples / (time.perf_counter() - t)
    prop_weighted = prop.stats.mean_trials

    per_bin = FlopsConstrainedSampler(space, cost, args.seed + 2, tables=tables)
    for b in bins:
        for _ in range(args.per_bin):
            per_bin.sample(target_bin=int(b))
    prop_bin = np.array([per_bin.stats.per_bin[int(b)][1] / per_bin.stats.per_bin[int(b)][0] for b in bins])

    naive_bin = 1.0 / p  # estimated, see the module docstring
    naive_weighted = float((p * naive_bin).sum())
    naive = FlopsConstrainedSampler(space, cost, args.seed + 3, tables=tables, proposal="uniform",
                                    max_trials=20 * args.n_prior)
    for _ in range(args.naive_samples):
        naive.sample()

    print(f"FLOPs-constrained sampler (proposal): {rate:,.0f} Archs/s over {args.samples} prior-drawn targets")
    print("trials per accepted Arch       proposal (run)   naive (est. 1/p)   naive / proposal")
    print(f"  prior-weighted targets      {prop_weighted:14.1f}   {naive_weighted:16.1f}   "
          f"{naive_weighted / prop_weighted:16.1f}")
    print(f"  bin-averaged targets        {prop_bin.mean():14.1f}   {naive_bin.mean():16.1f}   "
          f"{naive_bin.mean() / prop_bin.mean():16.1f}")
    print(f"  worst bin                   {prop_bin.max():14.1f}   {naive_bin.max():16.1f}")
    print(f"naive measured (run, {args.naive_samples} prior-drawn targets): {naive.stats.mean_trials:.1f} trials "
          f"per Arch (estimate {naive_weighted:.1f})")
    print("paper (Appendix C): proposal ~12, naive 50,878 trials per Arch")


if __name__ == "__main__":
    main()
