"""Hostile inputs end in one line and exit status 2, never a traceback, a hang or silent damage
(issue 21, items 2 to 8): spaces, Arch JSON, numbers, output flags, silently wrong settings, hangs
and the tracebacks of a hostile trial."""
import json
import os
import subprocess
import sys

import pytest

from supernas.cli import main

TINY = "attentivenas-tiny"


def one_line(capsys):
    """The error, one line (what a command logged before it is not part of it)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("supernas ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def refused(capsys, argv, *messages):
    """`supernas ARGV` exits 2 with one line holding every message."""
    assert main(argv) == 2
    line = one_line(capsys)
    for m in messages:
        assert m in line, line
    return line


def supernas(*argv, timeout=120, stdin=None, cwd=None):
    """The command in a fresh process (hangs and file descriptors are its own)."""
    return subprocess.run([sys.executable, "-m", "supernas.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, stdin=stdin, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


# ---------------------------------------------------------------------------- item 4: numbers
@pytest.mark.parametrize("budgets, message", [
    ("1:1e300:1e-300", "holds inf budgets; at most 1000"),
    ("1:1e12:1", "holds 1e+12 budgets; at most 1000"),
    ("3,,4", "'3,,4' has an empty item"),
    ("3,", "'3,' has an empty item"),
    ("1_000", "without underscores, got '1_000'"),
    ("1e309", "must be finite"),
    ("nan", "must be finite"),
])
def test_budgets_that_would_not_fit_are_refused_before_anything_runs(tmp_path, capsys, budgets, message):
    refused(capsys, ["search", str(tmp_path / "no-run"), "--budgets", budgets], message)


@pytest.mark.parametrize("argv, message", [
    (["predictor", "fit", "RUN", "-n", "1e9"], "-n must be at most 100,000, got 1e9"),
    (["predictor", "fit", "RUN", "-n", "0"], "-n must be at least 1, got 0"),
    (["predictor", "offline-sets", "RUN", "-n", "1e12"], "-n must be at most 10,000,000"),
    (["predictor", "fit", "RUN", "-n", "1_000"], "without underscores"),
    (["predictor", "fit", "RUN", "-n", "2.5"], "-n must be a whole number, got 2.5"),
    (["sample", "--space", TINY, "-n", "1e9"], "-n must be at most 1,000,000"),
    (["sample", "--space", TINY, "--max-mflops", "1e309"], "--max-mflops must be finite"),
    (["sample", "--space", TINY, "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["sample", "--space", TINY, "--seed", str(2**64)], "--seed must be at most"),
    (["export", "RUN", "--pick", "1e309"], "--pick must be finite"),
    (["export", "RUN", "--pick", "0"], "--pick=0 is out of range: above 0"),
])
def test_counts_and_numbers_are_read_strictly_and_bounded(tmp_path, capsys, argv, message):
    refused(capsys, [str(tmp_path / "no-run") if a == "RUN" else a for a in argv], message)


def test_the_help_says_how_numbers_are_read(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "no underscores (1_000 is refused)" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------------------- item 2: spaces
SPACE = {"name": "toy", "resolution": [16, 24], "stem": {"width": 8, "stride": 2},
         "stages": [{"name": "s1", "width": [8, 16], "depth": [1, 2], "kernel": [3, 5], "expand": [1, 4],
                     "stride": 2}],
         "head": {"kind": "conv", "width": 32}}


def _space_with(**change):
    import copy

    d = copy.deepcopy(SPACE)
    for key, value in change.items():
        where, _, field = key.rpartition("__")
        target = d if not where else d[where] if where != "s1" else d["stages"][0]
        target[field] = value
    return d


@pytest.mark.parametrize("change, message", [
    ({"stem__width": 10**20}, "toy.stem.width=100000000000000000000 is not allowed: an integer >= 1 and at most 16384"),
    ({"s1__width": [8, 10**18]}, "toy.s1.width=1000000000000000000 is not allowed"),
    ({"head__width": 2**40}, "at most 16384 (channels; no real network comes near it"),
    ({"resolution": [10**9]}, "toy.resolution=1000000000 is not allowed: an integer >= 1 and at most 4096"),
    ({"s1__depth": 10_000}, "toy.s1.depth=10000 is not allowed: an integer >= 1 and at most 64"),
    ({"s1__kernel": [3, 1001]}, "at most 31"),
    ({"s1__expand": [1, 1e6]}, "at most 64"),
    ({"stages": [dict(SPACE["stages"][0], name=f"s{i}", stride=1) for i in range(1000)]},
     "toy.stages: 1000 stages; at most 32"),
    ({"stages": [dict(SPACE["stages"][0], name=f"s{i}", stride=1, depth=64) for i in range(3)]},
     "toy: 192 blocks at the largest depths; at most 128"),
    ({"s1__width": list(range(8, 8 + 300))}, "toy.s1.width: 300 choices; at most 256"),
])
def test_a_space_beyond_any_real_network_is_refused_saying_so(tmp_path, capsys, change, message):
    f = tmp_path / "space.yaml"
    f.write_text(json.dumps(_space_with(**change)))  # JSON is YAML
    line = refused(capsys, ["sample", "--space", str(f), "-n", "1", "--seed", "0"], message)
    assert "no real network comes near it" in line


def test_costs_at_the_bounds_are_positive_and_finite():
    """The largest sizes the bounds allow: the cost arithmetic (float64 on bounded sizes) neither
    overflows nor turns negative, where a width of 1e18 used to cost -1.9e16 MFLOPs."""
    import numpy as np

    from supernas.spaces import CostModel, get_space
    from supernas.spaces.spec import MAX_EXPAND, MAX_KERNEL, MAX_RESOLUTION, MAX_WIDTH

    space = get_space({"name": "max", "resolution": MAX_RESOLUTION, "stem": {"width": MAX_WIDTH, "stride": 2},
                       "stages": [{"name": "s", "width": [8, MAX_WIDTH], "depth": [1, 64], "kernel": MAX_KERNEL,
                                   "expand": MAX_EXPAND, "stride": 2, "attention": 1}],
                       "head": {"kind": "mbpool", "width": MAX_WIDTH, "expand": MAX_EXPAND},
                       "shortcut": "projection"})
    mflops, params = CostModel(space, 1_000_000).costs_indices(space.to_indices([space.smallest(), space.largest()]))
    assert np.all(np.isfinite(mflops)) and np.all(mflops > 0) and np.all(params > 0)
    assert mflops[1] > mflops[0] and params[1] < 2**63


BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]) + "\n"


@pytest.mark.parametrize("argv, what", [
    (["config", "show", "train", "FILE"], "config file"),
    (["train", "FILE", "--dry-run"], "config file"),
    (["flops", "--space", "FILE", "--arch", "{}"], "space file"),
])
def test_yaml_anchor_bombs_are_refused_fast(tmp_path, argv, what):
    """A few lines whose anchors expand to 10**10 values (item 2 and 7): refused while it is read,
    in a fresh process with a generous limit (it used to hang or end in a MemoryError)."""
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB + "name: bomb\n")
    r = supernas(*[str(f) if a == "FILE" else a for a in argv], timeout=120)
    assert r.returncode == 2, r.stderr
    assert "is refused: its anchors and aliases expand to over 1,000,000 values" in r.stderr
    assert what in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("text, message", [
    ("a: " + "[" * 50_000 + "]" * 50_000 + "\n", "is nested too deeply"),
    ("a: &a [1, *a]\n", "an anchor refers to itself"),
    ("a: '" + "x" * (5 << 20) + "'\n", "characters; at most"),
])
def test_yaml_too_deep_recursive_or_huge_is_one_line(tmp_path, capsys, text, message):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    refused(capsys, ["config", "show", "train", str(f)], "is refused", message)
    refused(capsys, ["flops", "--space", str(f), "--arch", "{}"], "it is refused", message)


# ---------------------------------------------------------------------------- item 3: Arch JSON
def _tiny_arch():
    from supernas.spaces import get_space

    return get_space(TINY).smallest().to_dict()


def test_deeply_nested_arch_json_is_one_line(tmp_path, capsys):
    deep = "[" * 200_000 + "]" * 200_000
    refused(capsys, ["flops", "--space", TINY, "--arch", "{\"a\": " + deep + "}"], "the Arch is nested too deeply")
    f = tmp_path / "arch.json"
    f.write_text("{\"arch\": " + deep + "}")
    refused(capsys, ["flops", "--space", TINY, "--arch", str(f)], "nested too deeply")
    refused(capsys, ["retrain", str(f), f"space={TINY}", f"run.dir={tmp_path / 'r'}", "data.path=digits"],
            "nested too deeply")


def test_an_arch_giving_a_key_twice_is_refused(tmp_path, capsys):
    text = json.dumps(_tiny_arch())[:-1] + ", \"mb1.depth\": 2}"
    refused(capsys, ["flops", "--space", TINY, "--arch", text], "key 'mb1.depth' appears twice")
    refused(capsys, ["retrain", text, f"space={TINY}", f"run.dir={tmp_path / 'r'}", "data.path=digits"],
            "key 'mb1.depth' appears twice")


@pytest.mark.parametrize("field, value", [("mb1.depth", 1.0), ("resolution", 12.0), ("mb2.width", 16.0)])
def test_a_float_for_an_integer_field_is_refused(capsys, field, value):
    arch = {**_tiny_arch(), field: value}
    refused(capsys, ["flops", "--space", TINY, "--arch", json.dumps(arch)], f"field '{field}' has value {value}, "
            "a float; give an integer")


def test_an_arch_saved_for_another_space_is_named(tmp_path, capsys):
    f = tmp_path / "arch.json"
    f.write_text(json.dumps({"space": "attentivenas", "arch": _tiny_arch()}))
    refused(capsys, ["flops", "--space", TINY, "--arch", str(f)],
            f"the Arch was saved for space 'attentivenas', not '{TINY}'")


# ---------------------------------------------------------------------------- item 5: data loss
def _digest(folder):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# every output flag of every command, as ARGV with OUT where the output goes
OUTPUT_FLAGS = [
    ["predictor", "fit", "RUN", "--predictor", "OUT", "-n", "2", "--bn-batches", "1", "--max-batches", "1"],
    ["predictor", "fit", "RUN", "--predictor", "OUT", "--force", "-n", "2"],
    ["predictor", "offline-sets", "RUN", "--predictor", "RUN/predictor.npz", "--out", "OUT"],
    ["search", "RUN", "--budgets", "1", "--out", "OUT"],
    ["export", "RUN", "--arch", "ARCH", "--out", "OUT"],
    ["export", "RUN", "--format", "reference", "--out", "OUT"],
    ["report", "RUN", "--out", "OUT"],
    ["report", "RUN", "--out", "OUT", "--force"],
    ["import", "attentivenas", "RUN/checkpoint.pt", "--out", "OUT"],
    ["train", "run.dir=OUT", "data.path=digits"],
    ["quickstart", "--dir", "OUT"],
]


@pytest.mark.parametrize("owned", ["checkpoint.pt", "config.yaml", "metrics.jsonl"])
@pytest.mark.parametrize("argv", OUTPUT_FLAGS, ids=lambda a: " ".join(a[:2] + a[a.index("OUT") - 1:a.index("OUT")]
                                                                     if "OUT" in a else a[:2]))
def test_no_output_flag_writes_over_a_file_the_run_owns(run_copy, capsys, argv, owned):
    before = _digest(run_copy)
    arch = json.dumps(_tiny_arch())
    out = run_copy / owned
    argv = [a.replace("RUN", str(run_copy)).replace("OUT", str(out)).replace("ARCH", arch) for a in argv]
    assert main([*argv, "--device", "cpu"] if argv[0] in ("search", "export", "predictor") else argv) == 2
    assert str(out) in one_line(capsys)
    assert _digest(run_copy) == before


@pytest.mark.parametrize("argv", [a for a in OUTPUT_FLAGS if "--force" not in a],
                         ids=lambda a: " ".join(a[:2]))
def test_no_output_flag_writes_over_a_users_file_without_force(run_copy, tmp_path, capsys, argv):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    arch = json.dumps(_tiny_arch())
    argv = [a.replace("RUN", str(run_copy)).replace("OUT", str(notes)).replace("ARCH", arch) for a in argv]
    assert main([*argv, "--device", "cpu"] if argv[0] in ("search", "export", "predictor") else argv) == 2
    assert str(notes) in one_line(capsys)
    assert notes.read_text() == "my notes\n"
