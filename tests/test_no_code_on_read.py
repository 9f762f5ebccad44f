"""Reading a file a user names never runs code from it.

Every command that reads such a file (a predictor, a checkpoint, a run directory, a teacher, an
export, a CIFAR folder, a latency table, a saved search, an offline Pareto set) is given one with
a planted payload: a pickle whose loading would call `os.system` to create a marker file. Each
must end in a one-line error (exit 2) and the marker must never appear. A source scan keeps new
`pickle.load` / `torch.load` calls from slipping past the one restricted reader.
"""
import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from supernas.cli import main
from supernas.errors import SupernasError
from tiny_runs import FAST_SCORING, TINY, TINY_NAME

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD-RAN"
    yield path
    assert not path.exists(), "a planted payload ran"


@pytest.fixture
def planted(run_copy, marker):
    """The tiny trained run with a payload inside its checkpoint, beside its real weights."""
    ck = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    torch.save({**ck, "extra": Payload(marker)}, run_copy / "checkpoint.pt")
    return run_copy


def _legacy_predictor_with_payload(path: Path, marker: Path) -> Path:
    """A file in the layout of supernas 0.1's pickled predictors, carrying a payload."""
    path.write_bytes(pickle.dumps({"meta": {"format": "supernas-predictor/1", "space": TINY_NAME,
                                            "dims": [], "n_estimators": 1, "max_depth": 2, "seed": 0},
                                   "model": Payload(marker)}))
    return path


def _refused(argv, capsys, *words):
    assert main([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (argv, err)
    return err


def _smallest_arch(run: Path) -> str:
    return json.dumps(TINY.smallest().to_dict())


def test_a_checkpoint_with_a_payload_is_refused_by_every_command(planted, tmp_path, capsys, marker):
    run = planted
    refused = "not a supernas checkpoint"
    _refused(["search", run, "--budgets", "1", *FAST_SCORING], capsys, refused)
    _refused(["search", run, "--budgets", "1", "--dry-run", *FAST_SCORING], capsys, refused)
    _refused(["export", run, "--arch", _smallest_arch(run), "--out", tmp_path / "x", "--bn-batches", "1",
              "--device", "cpu"], capsys, refused)
    _refused(["export", run, "--format", "reference", "--out", tmp_path / "ref"], capsys, refused)
    _refused(["predictor", "fit", run, "-n", "4", "--holdout", "0", *FAST_SCORING[:2], "--device", "cpu"],
             capsys, refused)
    _refused(["train", run / "config.yaml", "--resume", f"run.dir={run}"], capsys, refused)


def test_a_teacher_run_with_a_payload_is_refused(trained_run, planted, tmp_path, capsys):
    export = tmp_path / "export"
    assert main(["export", str(trained_run), "--arch", _smallest_arch(trained_run), "--out", str(export),
                 "--bn-batches", "1", "--device", "cpu"]) == 0
    capsys.readouterr()
    _refused(["finetune", export, f"run.dir={tmp_path / 'ft'}", "run.device=cpu", "data.path=digits",
              "data.image_size=12", "train.epochs=1", "train.max_steps=1", "train.workers=0",
              f"train.teacher={planted}", "train.teacher_bn_batches=1", "log.tensorboard=false"],
             capsys, "not a supernas checkpoint")


def test_a_predictor_with_a_payload_is_refused_by_every_command(trained_run, tmp_path, capsys, marker):
    evil = _legacy_predictor_with_payload(tmp_path / "evil.pkl", marker)
    run = trained_run
    refused = "nothing in it was run"
    _refused(["search", run, "--budgets", "1", "--predictor", evil, "--out", tmp_path / "s", *FAST_SCORING],
             capsys, refused)
    _refused(["search", run, "--budgets", "1", "--predictor", evil, "--dry-run", "--out", tmp_path / "s2",
              *FAST_SCORING], capsys, refused)
    _refused(["predictor", "eval", run, "--predictor", evil, "-n", "4", *FAST_SCORING[:2], "--device", "cpu"],
             capsys, refused)
    _refused(["predictor", "offline-sets", run, "--predictor", evil, "-n", "100", "--out", tmp_path / "o"],
             capsys, refused)
    from tiny_runs import TINY_TRAIN

    _refused(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'att'}", "sampler.kind=attentive",
              "sampler.score=predictor", f"sampler.predictor={evil}"], capsys, refused)


def test_a_predictor_archive_holding_objects_is_refused(trained_run, tmp_path, marker):
    from supernas.predictors import load_predictor

    header = {"format": "supernas-predictor/2", "space": TINY_NAME, "dims": [], "n_estimators": 1,
              "max_depth": 2, "seed": 0}
    np.savez(tmp_path / "evil.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8),
             left=np.array([Payload(marker)], dtype=object))
    with pytest.raises(SupernasError, match="not a saved supernas predictor"):
        load_predictor(tmp_path / "evil.npz")


def test_json_files_a_command_reads_refuse_a_pickle(run_copy, tmp_path, capsys, marker):
    evil = pickle.dumps(Payload(marker))
    out = tmp_path / "search"
    out.mkdir()
    (out / "search_state.json").write_bytes(evil)
    _refused(["search", run_copy, "--budgets", "1", "--resume", "--out", out, *FAST_SCORING], capsys,
             "cannot be read as a saved search")
    # a search keeps its latency table in its --out folder, which only a search of its own may write to
    from supernas.evaluation import LatencyTable

    (tmp_path / "latency_table.json").write_bytes(evil)
    with pytest.raises(SupernasError, match="cannot read latency table"):
        LatencyTable(TINY, device="cpu").load(tmp_path / "latency_table.json")
    (tmp_path / "set.json").write_bytes(evil)
    from tiny_runs import TINY_TRAIN

    _refused(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'p'}", "sampler.kind=pareto",
              f"sampler.pareto_set={tmp_path / 'set.json'}"], capsys, "not a JSON text file")


def test_a_pickled_model_in_an_export_is_never_loaded(trained_run, tmp_path, capsys, marker):
    export = tmp_path / "export"
    assert main(["export", str(trained_run), "--arch", _smallest_arch(trained_run), "--out", str(export),
                 "--bn-batches", "1", "--device", "cpu"]) == 0
    capsys.readouterr()
    (export / "model.pt").write_bytes(pickle.dumps(Payload(marker)))
    # listed in the manifest, as an export with --format pickle would list it: refused all the same
    from supernas.utils.manifest import describe_file

    manifest = json.loads((export / "manifest.json").read_text())
    manifest["files"]["model.pt"] = describe_file(export / "model.pt")
    (export / "manifest.json").write_text(json.dumps(manifest))
    _refused(["eval", export / "model.pt", "--data", "digits", "--device", "cpu"], capsys, "pickled module")


def test_an_imported_checkpoint_with_a_payload_is_refused(tmp_path, capsys, marker):
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": Payload(marker)}, tmp_path / "evil.pth.tar")
    assert main(["import", "attentivenas", str(tmp_path / "evil.pth.tar"), "--out", str(tmp_path / "r")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def _cifar_folder(tmp_path: Path, meta: bytes) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(meta)
    return folder


def test_a_cifar_folder_with_a_payload_is_refused(tmp_path, capsys, marker):
    folder = _cifar_folder(tmp_path, pickle.dumps({"label_names": Payload(marker)}))
    _refused(["data", "check", folder, "--workers", "1"], capsys, "batches.meta", "nothing in it was run")
    from supernas.data import build_datasets

    with pytest.raises(SupernasError, match="nothing in it was run"):
        build_datasets({"path": str(folder)})


def test_python2_cifar_batches_read_with_the_restricted_reader(tmp_path):
    """The official CIFAR batches are Python 2 pickles (protocol 2, byte strings, numpy arrays by
    `_reconstruct`); this one is written opcode by opcode in that layout."""
    from supernas.data.readers import _unpickle

    data = bytes(range(6))

    def s(b: bytes) -> bytes:  # SHORT_BINSTRING, as Python 2 writes a str
        return b"U" + bytes([len(b)]) + b

    array = (b"cnumpy.core.multiarray\n_reconstruct\n" b"cnumpy\nndarray\n" b"K\x00\x85" + s(b"b") + b"\x87R"
             b"(K\x01K\x02K\x03\x86" b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
             b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb" b"\x89" + s(data) + b"tb")
    blob = b"\x80\x02}(" + s(b"data") + array + s(b"labels") + b"]K\x07a" + b"u."
    (tmp_path / "batch").write_bytes(blob)
    value = _unpickle(tmp_path / "batch")
    assert value["labels"] == [7]
    assert value["data"].dtype == np.uint8 and value["data"].tolist() == [[0, 1, 2], [3, 4, 5]]


# ---- the source scan -------------------------------------------------------------------------

ALLOWED_READER = ROOT / "src" / "supernas" / "utils" / "safe_pickle.py"


def _unsafe_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "joblib.load", "dill.load", "cloudpickle.load"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
        elif name.endswith("torch.load") or name == "load" and "weights_only" in kw:
            w = kw.get("weights_only")
            if not (isinstance(w, ast.Constant) and w.value is True):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name} without weights_only=True")
        elif name in ("np.load", "numpy.load"):
            a = kw.get("allow_pickle")
            if not (isinstance(a, ast.Constant) and a.value is False):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name} without allow_pickle=False")
    return found


def test_no_unrestricted_unpickling_in_the_package_or_benches():
    files = [p for folder in ("src", "bench") for p in (ROOT / folder).rglob("*.py") if p != ALLOWED_READER]
    assert files
    found = [hit for p in files for hit in _unsafe_calls(p)]
    assert not found, "read files without running code from them (torch.load(weights_only=True), " \
                      f"supernas.utils.safe_pickle): {found}"


def test_the_scan_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle, torch, numpy as np\npickle.loads(b'')\ntorch.load('x')\n"
                   "torch.load('x', weights_only=False)\nnp.load('x')\ntorch.load('x', weights_only=True)\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert len(_unsafe_calls(bad)) == 4
    finally:
        ROOT = root


# ---- the restricted reader itself ------------------------------------------------------------

def test_the_restricted_reader_refuses_what_it_must(tmp_path, marker):
    from supernas.utils.safe_pickle import NUMPY_GLOBALS, read_restricted

    def read(blob: bytes):
        (tmp_path / "f").write_bytes(blob)
        return read_restricted(tmp_path / "f", NUMPY_GLOBALS, "a test file")

    assert read(pickle.dumps({"a": np.arange(3.0), "b": [1, "x"]}))["a"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(SupernasError, match="posix.system|os.system"):
        read(pickle.dumps(Payload(marker)))
    with pytest.raises(SupernasError, match="builtins.eval"):
        read(b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1q\x85R.")
    whole = pickle.dumps({"a": np.arange(100.0)})
    with pytest.raises(SupernasError, match="not a test file"):
        read(whole[:len(whole) // 2])
    with pytest.raises(SupernasError, match="not a pickle"):
        read(b"plain text, not a pickle")
    # a class given a state would be altered for every later user of it
    with pytest.raises(SupernasError, match="sets the state"):
        read(b"\x80\x02cnumpy\ndtype\n}X\x01\x00\x00\x00aK\x01sb.")
