"""Our stage-1 sandwich step against the AttentiveNAS reference implementation's, side by side:
the same device, batch and Archs, interleaved in one process, in fp32 and bf16 autocast.

    python bench/reference_step.py --reference ../shared/reference/attentivenas-c4c16f1.tar.gz
    python bench/reference_step.py --reference DIR --small --device cpu      # what the test runs

The reference (the public facebookresearch/AttentiveNAS code, an archive or the folder it unpacks
to) is imported from where it lies, for measurement only. Its step is the one its
`train_attentive_nas.py` runs, built from its own objects: `create_model` on its training config,
`sample_max_subnet` with its label-smoothed cross-entropy, `set_active_subnet` for each sampled
Arch and `sample_min_subnet`, each distilled with its `KLLossSoft` against the largest's logits,
gradients clipped by value as its config says, and its SGD from `build_optimizer`. Its forward
resizes the input to the active Arch's resolution, as ours does. Ours is the product's
`SupernetTrainer.train_step` on the same `attentivenas` space and classes. Both get the same
batch (loaded at 224 px) and, at each step, the same two sampled Archs.

Rounds alternate which implementation goes first; each round times `--steps` steps back to back
after a warm-up, with a device synchronisation at both ends. Printed: images/s (median over
rounds), peak memory (GPU only) and ours / reference ratios.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from common import REFERENCE_PRECISIONS, add_small_flag, parse_small, reference_side_by_side, reference_table

# ---------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True, help="the reference code: its archive (.tar.gz) or folder")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64, help="images per step (the reference's config: 32 per GPU)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps of each before the rounds")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating which goes first")
    ap.add_argument("--precision", default="fp32,bf16", help="comma list of fp32, bf16")
    ap.add_argument("--classes", type=int, default=1000, help="classes of both supernets' heads")
    ap.add_argument("--image-size", type=int, default=224, help="the batch's size before each Arch's resize")
    ap.add_argument("--resolutions", help="comma list replacing the space's resolutions on both sides (the "
                    "test's small inputs); default: the space's own, 192,224,256,288")
    ap.add_argument("--json", help="also write the figures to this file")
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = parse_small(build_parser(), argv, {"batch": 2, "steps": 1, "warmup": 1, "rounds": 1, "precision": "fp32",
                                              "image_size": 32, "resolutions": "32,48", "classes": 10})
    bad = [p for p in args.precision.split(",") if p not in REFERENCE_PRECISIONS]
    if bad:
        raise SystemExit(f"--precision: unknown {', '.join(bad)}; choose from {', '.join(REFERENCE_PRECISIONS)}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.manual_seed(0)
    resolutions = [int(r) for r in args.resolutions.split(",")] if args.resolutions else None
    result = reference_side_by_side(args.reference, torch.device(args.device), args.batch, args.steps, args.warmup, args.rounds,
                          args.precision.split(","), classes=args.classes, image_size=args.image_size,
                          resolutions=resolutions)
    print(reference_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
