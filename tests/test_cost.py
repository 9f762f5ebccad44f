"""The analytic cost model against what PyTorch counts on extracted models, the published
AttentiveNAS figures, and itself (tabulated vs per-Arch formulas, bulk vs one by one)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from supernas import SupernasError, get_space
from supernas.nn import SuperNet
from supernas.spaces import ATTENTIVENAS_MODELS, CostModel, SearchSpace, cost, from_reference, layout
from supernas.spaces.layout import make_divisible

BUILTIN = ["attentivenas", "fpnas-l0", "fpnas-l1", "fpnas-l2"]

# Small spaces reaching the paths the built-in ones do not: per-block stages with elastic depth
# (whose output width is that of whichever block is last), odd sizes, shared stages with
# Split-Attention, a conv head, constants everywhere.
TOY_ELASTIC = {
    "name": "toy-elastic", "resolution": [40, 57], "stem": {"width": [8, 16], "stride": 2},
    "stages": [
        {"name": "a", "width": [8, 16, 24], "depth": [1, 2, 3], "kernel": [3, 5, 7], "expand": [1, 2.5, 4],
         "stride": 1, "per_block": True, "attention": [0, 1, 2], "act": ["relu", "swish"]},
        {"name": "b", "width": [16, 24], "depth": [2, 3], "kernel": 3, "expand": [3, 6], "stride": 2,
         "attention": [0, 4]},
        {"name": "c", "width": [24, 32, 40], "depth": [1, 2], "kernel": [3, 5], "expand": 4, "stride": 2,
         "per_block": True, "attention": 1},
    ],
    "head": {"kind": "mbpool", "width": [64, 96], "expand": 4}, "shortcut": "projection", "gate": "hsigmoid",
}
TOY_FIXED = {
    "name": "toy-fixed", "resolution": 33, "stem": {"width": 8, "stride": 1},
    "stages": [
        {"name": "s1", "width": 8, "depth": 2, "kernel": 3, "expand": 1, "stride": 1},
        {"name": "s2", "width": [8, 16], "depth": [1, 2], "kernel": [3, 5], "expand": [1, 3], "stride": 2,
         "per_block": True, "attention": [0, 2]},
    ],
    "head": {"kind": "conv", "width": 32},
}
TOYS = {"toy-elastic": TOY_ELASTIC, "toy-fixed": TOY_FIXED}
ALL = BUILTIN + list(TOYS)


def _space(name: str) -> SearchSpace:
    return get_space(TOYS.get(name, name))


def _random_indices(space: SearchSpace, n: int, seed: int = 0) -> np.ndarray:
    """Canonical samples and, every other row, raw uniform indices (inactive blocks not reset)."""
    idx = space.sample_indices(seed, n)
    raw = (np.random.default_rng(seed + 1).random((n, len(space.dims))) * space.cardinalities).astype(np.int64)
    idx[1::2] = raw[1::2]
    return idx


# ---------------------------------------------------------------------- against PyTorch
@pytest.fixture(scope="module")
def supernets() -> Iterator[dict[str, SuperNet]]:
    cache: dict[str, SuperNet] = {}
    yield cache
    cache.clear()


def _check_against_torch(supernets: dict[str, SuperNet], name: str, archs: list) -> None:
    if name not in supernets:
        supernets[name] = SuperNet(_space(name), num_classes=10).eval()
    net = supernets[name]
    mflops, params = CostModel(net.space, 10).costs_indices(net.space.to_indices(archs))
    for arch, m, p in zip(archs, mflops, params):
        model = net.extract(arch)
        assert sum(t.numel() for t in model.parameters()) == p, arch
        # Shapes are all FlopCounterMode needs: count on the meta device, without computing.
        model = model.to("meta")
        x = torch.zeros(1, 3, model.resolution, model.resolution, device="meta")
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        assert counter.get_total_flops() == round(m * 1e6) * 2, arch


@pytest.mark.parametrize("name", ALL)
def test_costs_match_flop_counter_and_parameter_count(supernets, name):
    space = _space(name)
    archs = [space.smallest(), space.largest()] + space.sample(rng=0, n=3)
    _check_against_torch(supernets, name, archs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_costs_match_flop_counter_on_many_archs(supernets, name):
    _check_against_torch(supernets, name, _space(name).sample(rng=1, n=30))


# ---------------------------------------------------------------------- published figures
def test_attentivenas_extremes_are_exact():
    space = get_space("attentivenas")
    cm = CostModel(space, 1000)
    small, large = space.smallest(), space.largest()
    assert small["resolution"] == 192 and large["resolution"] == 288
    assert cm.mflops(small) == 203.389568
    assert cm.mflops(large) == 1939.335808
    assert round(cm.mflops(small) * 1e6) == 203_389_568


def test_published_attentivenas_models():
    space = get_space("attentivenas")
    cm = CostModel(space, 1000)
    expected = {"a0": 203.4, "a1": 279.2, "a2": 316.7, "a3": 356.5, "a4": 443.5, "a5": 490.5, "a6": 709.0}
    got = {k: round(cm.mflops(from_reference(space, ATTENTIVENAS_MODELS[k])), 1) for k in expected}
    assert got == expected


# ---------------------------------------------------------------------- self-consistency
@pytest.mark.parametrize("name", ALL)
def test_bulk_equals_one_by_one(name):
    space = _space(name)
    cm = CostModel(space, 10)
    idx = _random_indices(space, 64)
    mflops, params = cm.costs_indices(idx)
    assert mflops.shape == params.shape == (64,) and mflops.dtype == params.dtype == np.float64
    for i in range(len(idx)):
        m, p = cm.costs_indices(idx[i])
        assert m[0] == mflops[i] and p[0] == params[i]
    archs = space.from_indices(idx[:8])
    assert [cm.mflops(a) for a in archs] == list(mflops[:8])
    assert [cm.params(a) for a in archs] == list(params[:8].astype(np.int64))
    assert np.array_equal(cm.mflops(archs), mflops[:8])
    assert cm.costs_indices(idx[:0])[0].shape == (0,)


@pytest.fixture
def fresh_tables():
    """Rebuild the cost tables under patched limits, and leave none of them cached after."""
    cost._tables.cache_clear()
    yield
    cost._tables.cache_clear()


@pytest.mark.parametrize("limits", [None, {"_MERGE_LIMIT": 1}, {"_MAX_TABLE": 1}],
                         ids=["default", "no-merging", "no-tables"])
def test_tabulated_costs_equal_the_formulas_bit_for_bit(fresh_tables, monkeypatch, limits):
    for attr, value in (limits or {}).items():
        monkeypatch.setattr(cost, attr, value)
    for name in ALL:
        space = _space(name)
        idx = _random_indices(space, 2000, seed=3)
        mflops, params = CostModel(space, 1000).costs_indices(idx)
        macs, ref_params = cost.layout_costs(space, idx, 1000)
        assert np.array_equal(mflops, macs / 1e6) and np.array_equal(params, ref_params), name
        assert (cost._tables(space, 1000) is None) == (limits == {"_MAX_TABLE": 1})


def test_bad_indices_raise():
    space = get_space("attentivenas")
    cm = CostModel(space)
    idx = space.sample_indices(0, 4)
    for j, v in ((0, -1), (3, int(space.cardinalities[3]))):
        bad = idx.copy()
        bad[2, j] = v
        with pytest.raises(SupernasError, match=space.dims[j].name):
            cm.costs_indices(bad)


# ---------------------------------------------------------------------- layout
def _layout_one_by_one(space: SearchSpace, row: np.ndarray) -> dict[str, list]:
    """Straightforward block-by-block sizes of one Arch, to check the vectorised layout."""
    values = dict(zip(space.names, (d.choices[k] for d, k in zip(space.dims, row))))
    s = space.spec

    def get(name: str, const):
        return values.get(name, const)

    hw = (get("resolution", s.resolution.min) - 1) // s.stem_stride + 1
    ch = get("stem.width", s.stem_width.min)
    out: dict[str, list] = {k: [] for k in ("active", "cin", "mid", "hw_in", "hw_out")}
    for st in s.stages:
        depth = get(f"{st.name}.depth", st["depth"].min)
        for i in range(st.max_depth):
            field = f"{st.name}.{i}." if st.per_block else f"{st.name}."
            width = get(field + "width", st["width"].min)
            e = get(field + "expand", st["expand"].min)
            mid = ch if e == 1 else int(make_divisible(np.round(ch * e)))
            hw_out = (hw - 1) // (st.stride if i == 0 else 1) + 1
            for k, v in (("active", i < depth), ("cin", ch), ("mid", mid), ("hw_in", hw), ("hw_out", hw_out)):
                out[k].append(v)
            if i < depth:
                ch, hw = width, hw_out
    out["head"] = [ch, hw]
    return out


@pytest.mark.parametrize("name", ["attentivenas", "fpnas-l0", "toy-elastic", "toy-fixed"])
def test_layout_matches_block_by_block_sizes(name):
    space = _space(name)
    idx = _random_indices(space, 40, seed=5)
    L = layout(space, idx)
    for n, row in enumerate(idx):
        ref = _layout_one_by_one(space, row)
        for k in ("active", "cin", "mid", "hw_in", "hw_out"):
            assert list(getattr(L, k)[n]) == ref[k], (k, n)
        assert [L.head_in[n], L.head_hw[n]] == ref["head"]
