"""Pictures of a search: its curves (train and validation loss, entropy, K, expected MFLOPs) and an
Arch drawn like FP-NAS Figure B.1 (a box per MBConv block: colour = kernel, height = output
channels, hatching = Swish, attention written on top, kernel / expansion / width written under,
stages named with their feature-map sizes)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

from ..errors import SupernasError
from ..runtime.logging import last_per_step, read_metric_records
from ..spaces import Arch, SearchSpace, get_space, load_arch
from ..spaces.layout import BlockPlan, NetPlan, stage_of_block
from ..utils.file_names import CONFIG, METRICS, RESULT

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display, and in worker processes
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: "str | Path") -> list[dict[str, Any]]:
    """The train records of a run's metrics.jsonl, in step order."""
    path = Path(run_dir).expanduser() / METRICS
    if not path.is_file():
        raise SupernasError(f"no metrics.jsonl in '{run_dir}'; point at the run directory of a search")
    records, damaged = read_metric_records(path)
    if damaged:
        raise SupernasError(f"{path} line {damaged[0]} is not a metrics record; the file is damaged")
    rows = [r for _, r in records if r.get("kind") == "train" and "entropy" in r]
    if not rows:
        raise SupernasError(f"{path} holds no search records (entropy, K); is it from `supernas fpnas`?")
    return last_per_step(rows)


def _run_facts(run_dir: Path) -> dict[str, Any]:
    """What a search's plot title and marks need: its mode, space, data, search split, cost target
    and most likely Arch, from result.json (when finished) and config.yaml, whichever is readable."""
    import yaml

    from ..utils.structured import UniqueKeyLoader

    facts: dict[str, Any] = {}
    try:
        cfg = yaml.load((run_dir / CONFIG).read_text(), Loader=UniqueKeyLoader) or {}  # noqa: S506
        facts.update(mode=cfg["search"]["mode"], data=cfg["data"].get("path") or "digits",
                     search_size=cfg["data"].get("search_size"), cost=cfg["search"].get("cost", "mflops"),
                     target=cfg["search"].get("cost_target"))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        pass
    try:
        res = json.loads((run_dir / RESULT).read_text())
        facts.update(mode=res["mode"], space=res["space"], most_likely_mflops=res["most_likely"]["mflops"])
        facts["data"] = res.get("data", facts.get("data"))
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        pass
    return facts


def _save(fig, out: Path) -> Path:
    """`fig` written to `out` (its folder made), then closed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=100)
    finally:
        _pyplot().close(fig)
    return out


def plot_search(run_dir: "str | Path", path: "str | Path | None" = None) -> Path:
    """`search_figure` saved to `path` (default RUN/search.png); returns the path."""
    return _save(search_figure(run_dir), Path(path) if path is not None else Path(run_dir).expanduser() / "search.png")


def search_figure(run_dir: "str | Path"):
    """Train and validation (search split) loss, entropy (and its maximum), K, expected MFLOPs (with
    the cost target and the most likely Arch's MFLOPs) and Archs sampled so far over the steps,
    titled with the run, its data and split."""
    from matplotlib.ticker import MaxNLocator

    rows = read_metrics(run_dir)
    run_dir = Path(run_dir).expanduser()
    facts = _run_facts(run_dir)
    plt = _pyplot()
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(5, 1, figsize=(7, 11), sharex=True)
    split = f"search split ({facts['search_size']} held-out train images)" if facts.get("search_size") \
        else "search split"
    axes[0].plot(steps, [r.get("loss", float("nan")) for r in rows], lw=1.5, label="train (weight steps)")
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    if val:
        axes[0].plot(*zip(*val), lw=1.5, label=f"validation: {split}")
    axes[0].set_ylabel("loss")
    axes[0].legend(loc="best", fontsize=8)
    panels = [("entropy", "entropy (nats)"), ("K", "K (Archs per step)"),
              ("expected_mflops", "expected MFLOPs"), ("samples_total", "Archs sampled so far")]
    for ax, (key, label) in zip(axes[1:], panels):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], lw=1.5)
        ax.set_ylabel(label)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].plot(steps, [r["max_entropy"] for r in rows], ls="--", c="grey", lw=1, label="max (uniform)")
    ks = [r["K"] for r in rows if "K" in r]
    if ks:  # K counts Archs: whole numbers, with room around a K that never changed
        axes[2].set_ylim(min(ks) - 0.5, max(ks) + 0.5)
    for ax in (axes[2], axes[4]):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if facts.get("cost") == "mflops" and facts.get("target") is not None:
        axes[3].axhline(facts["target"], c="tab:blue", ls=":", lw=1.2, label=f"budget {facts['target']:g} MFLOPs")
    if facts.get("most_likely_mflops") is not None:
        m = facts["most_likely_mflops"]
        axes[3].axhline(m, c="tab:green", lw=1.2, label=f"most likely Arch (result.json): {m:.4g} MFLOPs")
    if axes[3].get_legend_handles_labels()[0]:
        axes[3].legend(loc="best", fontsize=8)
    # mark the end of the warm-up and the coarse-to-fine switch, where the curves change regime
    first_arch = next((r["step"] for r in rows if r.get("arch_step")), None)
    switch = next((r["step"] for a, r in zip(rows, rows[1:]) if a.get("distribution") != r.get("distribution")),
                  None)
    for ax in axes:
        if first_arch is not None:
            ax.axvline(first_arch, c="tab:green", ls=":", lw=1, label="warm-up ends" if ax is axes[1] else None)
        if switch is not None:
            ax.axvline(switch, c="tab:red", ls=":", lw=1, label="joint" if ax is axes[1] else None)
    axes[1].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("step")
    fig.suptitle(f"{facts.get('mode', 'FP-NAS')} search, run {run_dir.name}"
                 + (f" ({facts['space']})" if "space" in facts else "")
                 + f"\ndata {facts.get('data', '?')}\nvalidation: the {split}", fontsize=9)
    fig.tight_layout()
    return fig


def _expand_of(space: SearchSpace, arch: Arch, stage: int, position: int) -> float:
    """A block's expansion ratio: its own choice, its stage's, or the space's constant."""
    st = space.spec.stages[stage]
    values = arch.to_dict()
    return values.get(f"{st.name}.{position}.expand", values.get(f"{st.name}.expand", st.fields["expand"].choices[0]))


_WIDTH, _GAP = 1.0, 0.7  # of a block's box, and between stages, in the drawing's x units
_ROWS = (-0.1, -0.24, -0.38)  # text rows under the boxes: kernel, expansion, width


def _arch_costs(space: SearchSpace, arch: Arch, num_classes: int) -> tuple[float, float]:
    """The Arch's (MFLOPs, parameters) for a head of `num_classes`."""
    from ..spaces import CostModel

    # costs_indices gives two arrays, (MFLOPs, parameters): two numbers for the one Arch
    return cast("tuple[float, float]",
                tuple(float(v[0]) for v in CostModel(space, num_classes).costs_indices(space.to_indices(arch))))


def _kernel_colours(plt: Any, space: SearchSpace, net: NetPlan) -> dict[int, Any]:
    """A colour per kernel size, in size order: every kernel of the space in the legend, so drawings
    of different Archs share colours."""
    kernels = sorted({b.kernel for b in net.blocks} | {k for st in space.spec.stages if "kernel" in st.fields
                                                       for k in st.fields["kernel"].choices})
    cmap = plt.get_cmap("tab10")
    return {k: cmap(i % 10) for i, k in enumerate(kernels)}


def _box(ax: Axes, x: float, h: float, face: Any, hatch: str | None = None) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x, 0), _WIDTH * 0.9, h, facecolor=face, edgecolor="black", lw=0.8, hatch=hatch))


def _column(ax: Axes, x: float, texts: Sequence[str]) -> None:
    """`texts` under the box at `x`, one a row of _ROWS."""
    for y, t in zip(_ROWS, texts):
        ax.text(x + _WIDTH * 0.45, y, t, ha="center", va="center", fontsize=8)


def _end_box(ax: Axes, x: float, name: str, channels: int, top: int) -> None:
    """The stem's or the head's grey box, no taller than the widest block, its name and width under it."""
    _box(ax, x, min(1.0, max(channels / top, 0.05)), "0.85")
    _column(ax, x, (name, "", str(channels)))


def _draw_blocks(ax: Axes, space: SearchSpace, arch: Arch, net: NetPlan, stage_of: list[int],
                 colour: dict[int, Any], top: int) -> float:
    """The active blocks left to right after the stem, each stage opened by a dashed line and its name
    with its feature-map sizes; returns the x after the last block."""
    from ..spaces.layout import layout

    hw = layout(space, space.to_indices(arch))
    hw_in, hw_out = hw.hw_in.reshape(-1), hw.hw_out.reshape(-1)
    first_of = {s: stage_of.index(s) for s in set(stage_of)}
    x, prev = _WIDTH + _GAP, None
    for b in net.blocks:
        stage = stage_of[b.index] if b.index < len(stage_of) else -1
        if stage != prev:
            if prev is not None:
                x += _GAP
            ax.axvline(x - _GAP / 2, c="grey", ls="--", lw=0.8)  # stage boundary
            st = space.spec.stages[stage]
            ax.text(x, 1.12, f"{st.name}\n{hw_in[b.index]}\u2192{hw_out[b.index]}", ha="left", va="bottom",
                    fontsize=7.5)
        expand = _expand_of(space, arch, stage, b.index - first_of.get(stage, b.index))
        _draw_block(ax, x, b, colour[b.kernel], top, expand)
        x += _WIDTH
        prev = stage
    return x


def _draw_block(ax: Axes, x: float, b: BlockPlan, face: Any, top: int, expand: float) -> None:
    """A block's box (height = output channels, hatched for Swish), SE or its splits on top, and its
    kernel, expansion and width under it."""
    h = max(b.cout / top, 0.05)
    _box(ax, x, h, face, "///" if b.act == "swish" else None)
    label = {0: "", 1: "SE"}.get(b.attention, f"S{b.splits or b.attention}")
    if label:
        ax.text(x + _WIDTH * 0.45, h + 0.02, label, ha="center", va="bottom", fontsize=7)
    _column(ax, x, (f"{b.kernel}", f"{expand:g}", f"{b.cout}"))


def _frame(ax: Axes, right: float, colour: dict[int, Any]) -> None:
    """The drawing's limits up to `right`, its rows named and no spines; the legend: kernels by colour
    and the activations by hatching."""
    from matplotlib.patches import Patch

    ax.set_xlim(-1.6, right + 0.2)
    ax.set_ylim(-0.48, 1.35)
    ax.set_xticks([])
    ax.set_yticks(_ROWS, ["kernel", "expansion", "width"], fontsize=8)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    handles = [Patch(facecolor=c, edgecolor="black", label=f"kernel {k}x{k}") for k, c in colour.items()]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="///", label="Swish"),
                Patch(facecolor="white", edgecolor="black", label="ReLU")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              title="height: out channels\ntop: SE / S<splits>", title_fontsize=7)


def arch_figure(space: "SearchSpace | str | Mapping[str, Any]", arch: "Arch | Mapping[str, Any] | str",
                title: str | None = None, num_classes: int = 1000, costs: "tuple[float, float] | None" = None):
    """A matplotlib figure of an Arch, FP-NAS Figure B.1 style: a box per active block (colour =
    kernel, height = output channels, hatching = Swish, SE / split count on top), under each its
    kernel, expansion and width, stages named with their feature-map sizes, stem and head widths,
    and the Arch's MFLOPs, parameters (for `num_classes`, or `costs` = (MFLOPs, parameters) as a
    search recorded them) and input resolution in the title."""
    from ..search.pareto import mflops_decimals
    from ..spaces.layout import plan

    space = get_space(space)
    arch = load_arch(space, arch)
    net = plan(space, arch)
    if not net.blocks:
        raise SupernasError(f"the Arch has no blocks to draw in space '{space.name}'")
    mflops, params = costs if costs is not None else _arch_costs(space, arch, num_classes)
    plt = _pyplot()
    colour = _kernel_colours(plt, space, net)
    top = max(b.cout for b in net.blocks)  # a wide head (1792 channels) is clipped, not the scale
    stage_of = stage_of_block(space)
    stages = len({stage_of[b.index] for b in net.blocks if b.index < len(stage_of)})
    extent = (len(net.blocks) + 2) * _WIDTH + (stages + 1) * _GAP
    fig, ax = plt.subplots(figsize=(max(7.0, 0.5 * extent + 2.5), 4.4))
    _end_box(ax, 0.0, "stem", net.stem_out, top)
    ax.text(_WIDTH * 0.45, 1.12, f"input\n{net.resolution}\u00d7{net.resolution}", ha="center", va="bottom",
            fontsize=8)
    x = _draw_blocks(ax, space, arch, net, stage_of, colour, top) + _GAP
    ax.axvline(x - _GAP / 2, c="grey", ls="--", lw=0.8)
    _end_box(ax, x, "head", net.head_out, top)
    _frame(ax, x + _WIDTH, colour)
    ax.set_title(f"{title or space.name}: {mflops:.{mflops_decimals([mflops])}f} MFLOPs, {params / 1e6:.3g} M params, "
                 f"input {net.resolution}\u00d7{net.resolution}, {len(net.blocks)} blocks", fontsize=9, wrap=True)
    fig.tight_layout()
    return fig


def draw_arch(space: "SearchSpace | str | Mapping[str, Any]", arch: "Arch | Mapping[str, Any] | str",
              path: "str | Path", title: str | None = None, num_classes: int = 1000) -> Path:
    """`arch_figure` saved to `path` (PNG or any matplotlib format); returns `path`."""
    return _save(arch_figure(space, arch, title, num_classes), Path(path))
