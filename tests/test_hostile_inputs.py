"""Hostile inputs end in one line and exit status 2, never a traceback, a hang or silent damage: spaces, Arch JSON, numbers, output flags, silently wrong settings, hangs
and the tracebacks of a hostile trial."""
import json
import os
import subprocess
import sys

import pytest

from supernas.cli import main

from cli_errors import one_line
from tiny_runs import TINY, TINY_NAME


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
    (["sample", "--space", TINY_NAME, "-n", "1e9"], "-n must be at most 1,000,000"),
    (["sample", "--space", TINY_NAME, "--max-mflops", "1e309"], "--max-mflops must be finite"),
    (["sample", "--space", TINY_NAME, "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["sample", "--space", TINY_NAME, "--seed", str(2**64)], "--seed must be at most"),
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
    return TINY.smallest().to_dict()


def test_deeply_nested_arch_json_is_one_line(tmp_path, capsys):
    deep = "[" * 200_000 + "]" * 200_000
    refused(capsys, ["flops", "--space", TINY_NAME, "--arch", "{\"a\": " + deep + "}"], "the Arch is nested too deeply")
    f = tmp_path / "arch.json"
    f.write_text("{\"arch\": " + deep + "}")
    refused(capsys, ["flops", "--space", TINY_NAME, "--arch", str(f)], "nested too deeply")
    refused(capsys, ["retrain", str(f), f"space={TINY_NAME}", f"run.dir={tmp_path / 'r'}", "data.path=digits"],
            "nested too deeply")


def test_an_arch_giving_a_key_twice_is_refused(tmp_path, capsys):
    text = json.dumps(_tiny_arch())[:-1] + ", \"mb1.depth\": 2}"
    refused(capsys, ["flops", "--space", TINY_NAME, "--arch", text], "key 'mb1.depth' appears twice")
    refused(capsys, ["retrain", text, f"space={TINY_NAME}", f"run.dir={tmp_path / 'r'}", "data.path=digits"],
            "key 'mb1.depth' appears twice")


@pytest.mark.parametrize("field, value", [("mb1.depth", 1.0), ("resolution", 12.0), ("mb2.width", 16.0)])
def test_a_float_for_an_integer_field_is_refused(capsys, field, value):
    arch = {**_tiny_arch(), field: value}
    refused(capsys, ["flops", "--space", TINY_NAME, "--arch", json.dumps(arch)], f"field '{field}' has value {value}, "
            "a float; give an integer")


def test_an_arch_saved_for_another_space_is_named(tmp_path, capsys):
    f = tmp_path / "arch.json"
    f.write_text(json.dumps({"space": "attentivenas", "arch": _tiny_arch()}))
    refused(capsys, ["flops", "--space", TINY_NAME, "--arch", str(f)],
            f"the Arch was saved for space 'attentivenas', not '{TINY_NAME}'")


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


# ---------------------------------------------------------------------------- item 6: silently wrong
def test_a_latency_table_with_a_negative_latency_is_refused(tmp_path):
    from supernas.errors import SupernasError
    from supernas.evaluation.latency import LatencyTable

    space = TINY
    table = LatencyTable(space, 10, device="cpu")
    table.entries = {"stem": 0.5}
    path = table.save(tmp_path / "latency_table.json")
    data = json.loads(path.read_text())
    data["entries"] = {"stem": -11000.0}
    path.write_text(json.dumps(data))
    with pytest.raises(SupernasError, match=r"holds -11000.0 ms for layer stem: a latency is a finite number >= 0"):
        LatencyTable(space, 10, device="cpu").load(path)


def test_a_custom_space_named_like_a_built_in_is_refused(tmp_path, capsys):
    f = tmp_path / "space.yaml"
    f.write_text(f"base: {TINY_NAME}\nname: {TINY_NAME}\nresolution: [12]\n")
    refused(capsys, ["flops", "--space", str(f), "--arch", "{}"],
            f"named '{TINY_NAME}' like a built-in space but differs")
    f.write_text(f"base: {TINY_NAME}\nname: {TINY_NAME}\n")  # the built-in itself, spelt out: fine
    assert main(["flops", "--space", str(f), "--arch", json.dumps(_tiny_arch())]) == 0


@pytest.mark.parametrize("argv, message", [
    (["spaces", "--num-classes", "0"], "--num-classes must be at least 1, got 0"),
    (["flops", "--space", TINY_NAME, "--arch", "{}", "--num-classes", "-5"],
     "--num-classes must be at least 1, got -5"),
    (["eval", "MODEL", "--latency-batch", "0"], "--latency-batch must be at least 1, got 0"),
    (["export", "RUN", "--arch", "{}", "--bn-batches", "0"], "--bn-batches must be at least 1, got 0"),
    (["sample", "--space", TINY_NAME, "-n", "1e9"], "-n must be at most 1,000,000"),
])
def test_settings_that_measure_nothing_are_refused(tmp_path, capsys, argv, message):
    refused(capsys, [str(tmp_path / "x") if a in ("RUN", "MODEL") else a for a in argv], message)


def test_an_empty_config_from_a_pipe_exits_non_zero():
    r = supernas("config", "show", "train", "/dev/stdin", stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "is a device or socket" in r.stderr  # /dev/null as stdin
    p = subprocess.run(f"printf '' | {sys.executable} -m supernas.cli config show train /dev/stdin", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "is empty (nothing came through the pipe)" in p.stderr, p.stderr


def test_data_check_starts_no_more_workers_than_cores_and_files(tmp_path, monkeypatch):
    import multiprocessing

    from PIL import Image

    from supernas.data import DataConfig
    from supernas.data.check import check_data

    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / c / "1.png")
    started = []
    real = multiprocessing.get_context()

    class Context:
        def Pool(self, n, **kw):  # noqa: N802 - multiprocessing's name
            started.append(n)
            return real.Pool(n, **kw)

    monkeypatch.setattr(multiprocessing, "get_context", lambda *a: Context())
    check_data(DataConfig.from_dict({"path": str(tmp_path)}), 10_000)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert all(n <= min(4, cores) for n in started)


# ---------------------------------------------------------------------------- item 7: hangs
def test_a_symlink_loop_in_a_dataset_folder_is_refused(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / c / "1.png")
    os.symlink("..", tmp_path / "train" / "a" / "loop")
    r = supernas("data", "check", tmp_path, timeout=120)
    assert r.returncode == 2 and "is a symbolic link to" in r.stderr and "loop" in r.stderr, r.stderr
    r = supernas("train", f"run.dir={tmp_path / 'run'}", f"data.path={tmp_path}", "--dry-run", timeout=120)
    assert r.returncode == 2 and "go round in a loop" in r.stderr, r.stderr


@pytest.mark.parametrize("override, message", [
    ("train.epochs=1e12", "train.epochs='1e12' is not allowed: an integer >= 1"),
    ("train.epochs=1000000000000", "train.epochs=1000000000000 is out of range: at most 100,000"),
])
def test_an_endless_schedule_is_refused_before_a_dry_run(tmp_path, capsys, override, message):
    refused(capsys, ["train", f"run.dir={tmp_path / 'run'}", "data.path=digits", override, "--dry-run"], message)


# ---------------------------------------------------------------------------- item 8: tracebacks
@pytest.mark.parametrize("override, message", [
    ("run.seed=99999999999999999999999", "run.seed=99999999999999999999999 is out of range"),
    ("run.seed=-1", "run.seed=-1 is out of range"),
])
def test_seeds_beyond_64_bits_or_negative_are_one_line(tmp_path, capsys, override, message):
    refused(capsys, ["train", f"run.dir={tmp_path / 'run'}", "data.path=digits", override, "--dry-run"], message)


@pytest.mark.parametrize("argv, message", [
    (["eval", "MODEL", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["eval", "MODEL", "--latency-repeats", "0"], "--latency-repeats must be at least 1, got 0"),
    (["search", "RUN", "--budgets", "2", "--latency-window", "-1"], "--latency-window=-1 is out of range: at least 0"),
    (["search", "RUN", "--budgets", "2", "--latency-window", "nan"], "--latency-window must be finite"),
    (["search", "RUN", "--budgets", "2", "--latency-window", "1e9"], "out of range: at most 3600"),
    (["fpnas", "search.latency.window_s=-1", "--dry-run"], "search.latency.window_s=-1 is out of range"),
    (["search", "RUN", "--budgets", "2", "--seed", "-1"], "--seed must be at least 0, got -1"),
])
def test_zero_sizes_are_one_line(tmp_path, capsys, argv, message):
    refused(capsys, [str(tmp_path / "x") if a in ("RUN", "MODEL") else a for a in argv], message)


@pytest.mark.parametrize("content, message", [
    ("", "is not valid JSON"),
    ("garbage", "is not valid JSON"),
    ("{}", "holds no searched Archs"),
    ("[1, 2]", "holds no searched Archs"),
    ('{"entries": [1, 2]}', "holds no searched Archs"),
    ('{"entries": []}', "holds no searched Archs"),
    ('{"entries": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
])
def test_export_pick_on_a_broken_pareto_json_is_one_line(run_copy, capsys, content, message):
    (run_copy / "search").mkdir()
    (run_copy / "search" / "pareto.json").write_text(content)
    refused(capsys, ["export", str(run_copy), "--pick", "5", "--device", "cpu"], message)


def test_a_deeply_nested_search_state_is_one_line(tmp_path):
    from supernas.errors import SupernasError
    from supernas.search.runner import read_search_state

    f = tmp_path / "search_state.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SupernasError, match="nested too deeply"):
        read_search_state(f, {})


def test_a_deeply_nested_pareto_json_is_a_note_of_the_report(tmp_path):
    from supernas.report.collect import _json

    f = tmp_path / "pareto.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    notes = []
    assert _json(f, notes, "the Pareto front") is None and "damaged" in notes[0]


@pytest.mark.parametrize("error, message", [
    (30, "is read-only (Read-only file system); write elsewhere"),  # EROFS
    (36, "is longer than the file system allows"),  # ENAMETOOLONG
])
def test_a_read_only_folder_or_a_long_name_is_one_line(tmp_path, capsys, monkeypatch, error, message):
    import errno

    from supernas.runtime import run_dir

    assert error in (errno.EROFS, errno.ENAMETOOLONG)
    target = tmp_path / "ro" / "run"

    def refuse(*a, **k):
        raise OSError(error, os.strerror(error), str(target))

    monkeypatch.setattr(run_dir.DirectoryLock, "acquire", refuse)
    line = refused(capsys, ["train", f"run.dir={target}", "data.path=digits"], message)
    assert str(tmp_path / "ro") in line


def test_a_real_name_too_long_is_one_line(tmp_path, capsys):
    refused(capsys, ["train", f"run.dir={tmp_path / ('x' * 300)}", "data.path=digits"],
            "is longer than the file system allows")


@pytest.mark.parametrize("path, message", [("DIR", "is a directory"), ("/dev/null", "is a device or socket")])
def test_a_config_path_that_is_a_folder_or_device_says_what_it_is(tmp_path, capsys, path, message):
    line = refused(capsys, ["config", "show", "train", str(tmp_path) if path == "DIR" else path], message)
    assert "does not exist" not in line


def test_a_config_that_is_not_utf8_is_one_line(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_bytes(b"train:\n  epochs: \xff\xfe\n")
    refused(capsys, ["train", str(f), "--dry-run"], "is not a text file")


def test_a_run_keeps_the_space_it_trained_when_its_space_file_is_edited(tmp_path, capsys):
    import warnings

    import yaml

    from supernas.errors import SupernasWarning
    from supernas.evaluation import load_run
    from tiny_runs import TINY_TRAIN

    definition = {**TINY.definition, "name": "my-tiny"}
    space_file = tmp_path / "my-tiny.yaml"
    space_file.write_text(yaml.safe_dump(definition))
    run = tmp_path / "run"
    settings = [s for s in TINY_TRAIN if not s.startswith("space=")] + [f"space={space_file}", f"run.dir={run}"]
    assert main(["train", *settings]) == 0
    edited = {**definition, "stem": {**definition["stem"], "width": [8, 12]}}  # the user edits the file later
    space_file.write_text(yaml.safe_dump(edited))
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net, _, _ = load_run(run, "cpu")
    assert net.space.definition == definition  # the weights' own space, not the edited one
    assert any(issubclass(w.category, SupernasWarning) and "differs from the one it trained" in str(w.message)
               for w in caught)
    # resuming would read the weights into another network: refused, saying how to go on
    assert main(["train", *settings, "train.max_steps=6", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "its definition has changed since" in err and len(err.splitlines()) == 1


def test_export_pick_refuses_an_arch_searched_with_another_runs_weights(trained_run, tmp_path, capsys):
    import shutil

    import torch

    from tiny_runs import FAST_SCORING

    a = shutil.copytree(trained_run, tmp_path / "a")
    b = shutil.copytree(trained_run, tmp_path / "b")
    ck = torch.load(b / "checkpoint.pt", weights_only=True)
    ck["model"]["classifier.weight"] += 0.01  # another run: other weights
    torch.save(ck, b / "checkpoint.pt")
    assert main(["search", str(a), "--max-mflops", "2", "--population", "4", "--mutations", "2", "--crossovers", "2",
                 "--generations", "1", "--out", str(b / "search"), *FAST_SCORING]) == 0
    capsys.readouterr()
    export = ["--pick", "2", "--bn-batches", "1", "--device", "cpu"]
    refused(capsys, ["export", str(b), *export, "--out", str(tmp_path / "xb")], "scored its Archs with the weights")
    assert not (tmp_path / "xb").exists()
    assert main(["export", str(a), "--search", str(b / "search"), *export, "--out", str(tmp_path / "xa")]) == 0
