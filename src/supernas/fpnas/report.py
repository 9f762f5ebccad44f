"""Pictures of a search: its curves (entropy, K, expected MFLOPs) and an Arch drawn like FP-NAS
Figure B.1 (a box per MBConv block: colour = kernel, height = output channels, hatching = Swish,
attention written on top, stages separated by gaps)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import SupernasError
from ..spaces import Arch, SearchSpace, get_space, load_arch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display, and in worker processes
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: "str | Path") -> list[dict[str, Any]]:
    """The train records of a run's metrics.jsonl, in step order."""
    path = Path(run_dir).expanduser() / "metrics.jsonl"
    if not path.is_file():
        raise SupernasError(f"no metrics.jsonl in '{run_dir}'; point at the run directory of a search")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise SupernasError(f"{path} line {n} is not JSON; the file is damaged") from None
        if rec.get("kind") == "train" and "entropy" in rec:
            rows.append(rec)
    if not rows:
        raise SupernasError(f"{path} holds no search records (entropy, K); is it from `supernas fpnas`?")
    # a resumed run re-logs the steps after its checkpoint: keep the last record of each step
    return sorted({r["step"]: r for r in rows}.values(), key=lambda r: r["step"])


def plot_search(run_dir: "str | Path", path: "str | Path | None" = None) -> Path:
    """Entropy (and its maximum), K, expected MFLOPs and archs sampled so far over the steps."""
    rows = read_metrics(run_dir)
    out = Path(path) if path is not None else Path(run_dir).expanduser() / "search.png"
    plt = _pyplot()
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(7, 9), sharex=True)
    panels = [("entropy", "entropy (nats)"), ("K", "K (Archs per step)"),
              ("expected_mflops", "expected MFLOPs"), ("samples_total", "Archs sampled so far")]
    for ax, (key, label) in zip(axes, panels):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], lw=1.5)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].plot(steps, [r["max_entropy"] for r in rows], ls="--", c="grey", lw=1, label="max (uniform)")
    # mark the end of the warm-up and the coarse-to-fine switch, where the curves change regime
    first_arch = next((r["step"] for r in rows if r.get("arch_step")), None)
    switch = next((r["step"] for a, r in zip(rows, rows[1:]) if a.get("distribution") != r.get("distribution")),
                  None)
    for ax in axes:
        if first_arch is not None:
            ax.axvline(first_arch, c="tab:green", ls=":", lw=1, label="warm-up ends" if ax is axes[0] else None)
        if switch is not None:
            ax.axvline(switch, c="tab:red", ls=":", lw=1, label="joint" if ax is axes[0] else None)
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("step")
    fig.suptitle(f"search {Path(run_dir).name}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _stage_of_blocks(space: SearchSpace) -> list[int]:
    """Stage number of each supernet block position (every stage at its largest depth)."""
    stages = []
    for i, st in enumerate(space.spec.stages):
        stages += [i] * max(st.fields["depth"].choices)
    return stages


def draw_arch(space: "SearchSpace | str | Mapping[str, Any]", arch: "Arch | Mapping[str, Any] | str",
              path: "str | Path", title: str | None = None) -> Path:
    """One box per active block, FP-NAS Figure B.1 style; returns `path` (PNG or any matplotlib format)."""
    from ..spaces.layout import plan

    space = get_space(space)
    arch = load_arch(space, arch)
    blocks = plan(space, arch).blocks
    if not blocks:
        raise SupernasError(f"the Arch has no blocks to draw in space '{space.name}'")
    plt = _pyplot()
    from matplotlib.patches import Patch, Rectangle

    stage_of = _stage_of_blocks(space)
    # every kernel of the space in the legend, so drawings of different Archs share colours
    kernels = sorted({b.kernel for b in blocks} | {k for st in space.spec.stages if "kernel" in st.fields
                                                   for k in st.fields["kernel"].choices})
    cmap = plt.get_cmap("tab10")
    colour = {k: cmap(i % 10) for i, k in enumerate(kernels)}
    top = max(b.cout for b in blocks)
    width, gap = 1.0, 0.6
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(blocks) + 2), 3.6))
    x, prev = 0.0, None
    for b in blocks:
        stage = stage_of[b.index] if b.index < len(stage_of) else -1
        if prev is not None and stage != prev:
            ax.axvline(x + gap / 2 - 0.05, c="grey", ls="--", lw=0.8)  # stage boundary
            x += gap
        h = b.cout / top
        ax.add_patch(Rectangle((x, 0), width * 0.9, h, facecolor=colour[b.kernel], edgecolor="black", lw=0.8,
                               hatch="///" if b.act == "swish" else None))
        label = {0: "", 1: "SE"}.get(b.attention, str(b.splits or b.attention))
        if label:
            ax.text(x + width * 0.45, h + 0.02, label, ha="center", va="bottom", fontsize=8)
        ax.text(x + width * 0.45, -0.04, str(b.cout), ha="center", va="top", fontsize=6, rotation=90)
        x += width
        prev = stage
    ax.set_xlim(-0.3, x + 0.2)
    ax.set_ylim(-0.25, 1.2)
    ax.set_yticks([])
    ax.set_xticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [Patch(facecolor=colour[k], edgecolor="black", label=f"kernel {k}x{k}") for k in kernels]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="///", label="Swish"),
                Patch(facecolor="white", edgecolor="black", label="ReLU")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              title="height: out channels\ntop: SE / splits", title_fontsize=7)
    ax.set_title(title or f"{space.name}: {len(blocks)} blocks")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
