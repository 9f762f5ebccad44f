import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from supernas import SupernasError, get_space, load_arch
from supernas.spaces import ATTENTIVENAS_MODELS, from_reference, to_reference


def test_arch_is_an_immutable_hashable_value(space):
    a, b = space.sample(rng=3), space.sample(rng=3)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.x = 1
    assert space.arch(json.loads(a.to_json())) == a
    assert space.arch(a.to_json()) == a
    assert pickle.loads(pickle.dumps(a)) == a


def test_sampling_is_uniform_and_reproducible(space):
    idx = space.sample_indices(np.random.default_rng(0), 4000)
    assert np.array_equal(idx, space.sample_indices(np.random.default_rng(0), 4000))
    for j, d in enumerate(space.dims):
        if d.name.endswith(".depth") or d.name == "resolution":
            counts = np.bincount(idx[:, j], minlength=len(d))
            assert (counts > 0.5 * 4000 / len(d)).all(), d.name
    assert space.sample(rng=1) != space.sample(rng=2)


def test_smallest_and_largest_are_extremes(space):
    small, large = space.smallest(), space.largest()
    for d in space.dims:
        if isinstance(d.choices[0], (int, float)) and not d.name.endswith((".act",)):
            assert small[d.name] == min(d.choices) or _inactive(space, small, d.name)
            assert large[d.name] == max(d.choices)


def _inactive(space, arch, name):
    parts = name.split(".")
    return len(parts) == 3 and f"{parts[0]}.depth" in arch and int(parts[1]) >= arch[f"{parts[0]}.depth"]


def test_mutate_and_crossover_stay_in_space(space):
    rng = np.random.default_rng(0)
    a, b = space.sample(rng), space.sample(rng)
    m = space.mutate(a, rng, prob=0.5)
    assert m != a and space.arch(m.to_dict()) == m
    assert space.mutate(a, rng, prob=0.0) == a
    c = space.crossover(a, b, rng)
    assert all(c[k] in (a[k], b[k]) or _inactive(space, c, k) for k in c)
    assert space.crossover(a, b, rng, prob=1.0) == a


def test_encode_decode_round_trip(space):
    archs = space.sample(rng=0, n=20)
    x = space.encode(archs)
    assert x.shape == (20, len(space.dims)) and x.dtype == np.float64
    assert space.decode(x) == archs
    assert space.decode(space.encode(archs[0])) == archs[0]


def test_canonical_form_resets_inactive_blocks():
    space = get_space("attentivenas")  # shared stages: no inactive fields
    assert space.size == np.prod(space.cardinalities)
    toy = get_space({"name": "toy", "resolution": 32, "stem": {"width": 8, "stride": 1},
                     "stages": [{"name": "s1", "width": [8, 16], "depth": [1, 2], "kernel": [3, 5],
                                 "expand": 1, "stride": 1, "per_block": True}],
                     "head": {"kind": "conv", "width": 32}})
    # depth 1: one block of 2x2 choices; depth 2: two blocks -> 4 + 16 distinct Archs
    assert toy.size == 4 + 16
    a = toy.arch({"s1.depth": 1, "s1.0.width": 16, "s1.0.kernel": 5, "s1.1.width": 16, "s1.1.kernel": 5})
    b = toy.arch({"s1.depth": 1, "s1.0.width": 16, "s1.0.kernel": 5, "s1.1.width": 8, "s1.1.kernel": 3})
    assert a == b
    distinct = {toy.from_indices(row[None])[0] for row in toy.sample_indices(0, 3000)}
    assert len(distinct) == toy.size


def test_sizes_of_builtin_spaces():
    assert get_space("attentivenas").size == 440_301_256_704
    assert f"{get_space('fpnas-l0').size:.3e}" == "3.832e+68"


@pytest.mark.parametrize("change, field", [({"mb3.kernel": 7}, "mb3.kernel"), ({"resolution": 100}, "resolution"),
                                           ({"mb1.depth": "2"}, "mb1.depth")])
def test_validation_names_field_value_and_choices(change, field):
    space = get_space("attentivenas")
    d = {**space.smallest().to_dict(), **change}
    with pytest.raises(SupernasError) as e:
        space.arch(d)
    msg = str(e.value)
    assert field in msg and repr(change[field]) in msg and "allowed" in msg
    allowed = ", ".join(map(str, next(x for x in space.dims if x.name == field).choices))
    assert allowed in msg


def test_validation_of_unknown_and_missing_fields():
    space = get_space("attentivenas")
    d = space.smallest().to_dict()
    with pytest.raises(SupernasError, match="unknown field 'mb9.width'"):
        space.arch({**d, "mb9.width": 8})
    d.pop("mb2.width")
    with pytest.raises(SupernasError, match="'mb2.width' is missing"):
        space.arch(d)
    with pytest.raises(SupernasError, match="not valid JSON"):
        space.arch("{oops")


def test_reference_format_round_trip_and_published_models():
    space = get_space("attentivenas")
    for a in space.sample(rng=0, n=10):
        assert from_reference(space, to_reference(space, a)) == a
    for name, ref in ATTENTIVENAS_MODELS.items():
        arch = load_arch(space, name)
        assert to_reference(space, arch)["width"] == ref["width"]
        assert load_arch(space, json.dumps(ref)) == arch
    with pytest.raises(SupernasError, match="per-block"):
        to_reference(get_space("fpnas-l0"), get_space("fpnas-l0").sample(rng=0))


def test_load_arch_from_file(tmp_path):
    space = get_space("fpnas-l1")
    a = space.sample(rng=5)
    f = tmp_path / "arch.json"
    f.write_text(json.dumps({"space": "fpnas-l1", "arch": a.to_dict()}))
    assert load_arch(space, str(f)) == a
    with pytest.raises(SupernasError, match="neither JSON nor an existing file"):
        load_arch(space, str(tmp_path / "missing.json"))


def test_fpnas_blocks_choose_everything_the_supplementary_lists():
    space = get_space("fpnas-l0")
    names = set(space.names)
    for f, choices in [("kernel", (3, 5)), ("act", ("relu", "swish")), ("attention", (0, 1, 2, 4)),
                       ("expand", (1.5, 2.25, 3, 3.75, 4.5, 5.25, 6))]:
        dim = next(d for d in space.dims if d.name == f"s3.0.{f}")
        assert dim.choices == choices
        assert f"s3.1.{f}" in names  # per block, not per stage


def test_space_from_yaml(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text("name: tiny\nresolution: [32, 48]\nstem: {width: 8, stride: 2}\n"
                 "stages:\n  - {name: s1, width: [8, 16], depth: [1, 2], kernel: [3, 5], expand: [1, 4], stride: 2}\n"
                 "head: {kind: conv, width: 64}\n")
    space = get_space(str(f))
    assert space.name == "tiny" and space.size == 2 * 2 * 2 * 2 * 2
    with pytest.raises(SupernasError, match="unknown space"):
        get_space("no-such-space")


# Tables D.4-D.6 of the FP-NAS supplementary, one row per MBCConv stage:
# (max input channels, min channels, max channels, step, repeat, stride); then resolution and stem width.
FPNAS_TABLES = {
    "fpnas-l0": (224, 16, [(16, 8, 32, 8, 1, 1), (32, 16, 32, 8, 2, 2), (32, 16, 32, 8, 2, 1), (32, 16, 56, 8, 2, 2),
                           (56, 16, 56, 8, 2, 1), (56, 48, 96, 16, 4, 2), (96, 48, 96, 16, 3, 1),
                           (96, 72, 136, 16, 3, 1), (136, 112, 224, 16, 2, 2), (224, 112, 224, 16, 2, 1),
                           (224, 168, 280, 16, 2, 1)]),
    "fpnas-l1": (240, 24, [(24, 16, 40, 8, 1, 1), (40, 24, 40, 8, 2, 2), (40, 24, 40, 8, 2, 1), (40, 24, 72, 8, 3, 2),
                           (72, 24, 72, 8, 2, 1), (72, 64, 120, 16, 3, 2), (120, 64, 120, 16, 3, 1),
                           (120, 88, 168, 16, 3, 1), (168, 88, 168, 16, 3, 1), (168, 136, 272, 16, 2, 2),
                           (272, 136, 272, 16, 2, 1), (272, 208, 336, 16, 2, 1), (336, 208, 336, 16, 2, 1)]),
}
FPNAS_TABLES["fpnas-l2"] = (256, *FPNAS_TABLES["fpnas-l1"][1:])
PAPERS = Path(__file__).resolve().parents[1] / ".." / "shared" / "papers" / "fpnas-supplementary.txt"


def _paper_rows(text: str) -> dict[str, list[tuple[int, ...]]]:
    """The MBCConv rows of each table D.x in the supplementary's text."""
    row = re.compile(r"\$\d+\^2 \\times (\d+)\$\tMBCConv\t\(1\.5, 6\.0, 0\.75\)\t\((\d+), (\d+), (\d+)\)\t(\d+)\t(\d+)")
    return {m.group(2): [tuple(map(int, r)) for r in row.findall(m.group(1))]
            for m in re.finditer(r"Max Input(.*?)Table (D\.\d)", text, re.S)}


@pytest.mark.skipif(not PAPERS.is_file(), reason="the FP-NAS supplementary is not in ../shared/papers")
def test_fpnas_table_transcription_matches_the_supplementary():
    rows = _paper_rows(PAPERS.read_text())
    assert [rows["D.4"], rows["D.5"], rows["D.6"]] == [FPNAS_TABLES[n][2] for n in ("fpnas-l0", "fpnas-l1", "fpnas-l2")]


@pytest.mark.parametrize("name", ["fpnas-l0", "fpnas-l1", "fpnas-l2"])
def test_fpnas_spaces_follow_tables_d4_to_d6(name):
    """Every stage spans its row's channel range, both ends included (a step that does not divide
    max - min still reaches max: the next row's input is max), with the row's repeat and stride."""
    resolution, stem, table = FPNAS_TABLES[name]
    spec = get_space(name).spec
    assert spec.resolution.choices == (resolution,) and spec.stem_width.choices == (stem,)
    assert len(spec.stages) == len(table)
    prev_max = stem
    for st, (cin, lo, hi, step, repeat, stride) in zip(spec.stages, table):
        widths = st["width"].choices
        assert (widths[0], widths[-1]) == (lo, hi), st.name
        assert cin == prev_max, st.name  # the table's max input is the previous row's max channels
        assert all(0 < b - a <= step for a, b in zip(widths, widths[1:])), st.name
        assert (st["depth"].choices, st.stride) == ((repeat,), stride), st.name
        assert st["expand"].choices == (1.5, 2.25, 3, 3.75, 4.5, 5.25, 6)
        prev_max = hi
    blocks = sum(r[4] for r in table)
    assert sum(st.max_depth for st in spec.stages) == blocks
    assert f"{blocks} MBCConv blocks" in spec.description  # what `supernas spaces` prints
