"""Unreadable images: a truncated JPEG or an empty PNG is named in a one-line
error, from the main process or a DataLoader worker; `data.on_bad_image: skip` replaces it by the
next readable image of its split (the same one every time: a resumed run equals an unbroken one)
and logs and counts it once; `supernas data check PATH` lists the unreadable files."""
import json
import multiprocessing

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import TINY_NAME

from supernas.cli import main
from supernas.data import DataConfig, build_datasets
from supernas.train.supernet import SupernetTrainer

PER_CLASS = 12


def image_folder(root, bad=True):
    """root/train|val/<class>/*.png of random 16 px images, 2 classes; with `bad`, train holds an
    empty PNG and a truncated JPEG (not first: the first image's header sets the native size)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", PER_CLASS), ("val", 4)):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    if not bad:
        return root, []
    empty, truncated = root / "train" / "cat" / "5.png", root / "train" / "dog" / "7.jpg"
    empty.write_bytes(b"")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[:200])
    return root, [str(empty), str(truncated)]


def config(run, data, **data_settings):
    return {"run": {"dir": str(run), "device": "cpu"}, "space": TINY_NAME,
            "data": {"path": str(data), "image_size": 12, **data_settings},
            "train": {"epochs": 2, "batch_size": 8, "workers": 0},
            "sampler": {"kind": "uniform"}, "eval": {"bn_batches": 1, "max_batches": 1, "every_epochs": 0},
            "checkpoint": {"every_steps": 2}, "log": {"every_steps": 1, "progress": False, "tensorboard": False}}


def words(cfg):
    out = []
    for section, values in cfg.items():
        if isinstance(values, dict):
            out += [f"{section}.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]
        else:
            out.append(f"{section}={values}")
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_image_is_one_line_naming_the_file(tmp_path, capsys, workers):
    data, bad = image_folder(tmp_path / "data")
    cfg = config(tmp_path / "run", data)
    cfg["train"]["workers"] = workers
    assert main(["train", *words(cfg)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("supernas")]
    assert len(lines) == 1 and "error:" in lines[0], lines
    assert any(f"'{b}' is not a readable image" in lines[0] for b in bad), lines[0]
    assert "data.on_bad_image: skip" in lines[0]
    # the DataLoader workers ended with the run: left to the garbage collector after an error in
    # one of them, they never learnt to stop, and ignoring SIGTERM they kept the process from exiting
    assert multiprocessing.active_children() == []


def test_skip_replaces_an_unreadable_image_by_the_next_readable_one(tmp_path):
    data, bad = image_folder(tmp_path / "data")
    train = build_datasets(DataConfig(path=str(data), on_bad_image="skip")).train
    position = next(i for i in range(len(train)) if train.source.samples[int(train.indices[i])][0] == bad[0])
    x, y = train.with_transform(lambda im: torch.as_tensor(np.array(im)))[position]
    following = train.with_transform(lambda im: torch.as_tensor(np.array(im)))[position + 1]
    assert torch.equal(x, following[0]) and y == following[1]
    assert train.source.bad.new() == [bad[0]] and train.source.bad.new() == []


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_logs_each_file_once_counts_them_and_resumes_exactly(tmp_path, run_until_crash, workers):
    data, bad = image_folder(tmp_path / "data")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    cfg = config(whole, data, on_bad_image="skip")
    cfg["train"]["workers"] = workers
    SupernetTrainer(cfg).fit()  # 2 epochs: every bad file met twice
    log = (whole / "log.txt").read_text()
    for b in bad:
        assert log.count(f"skipped unreadable image '{b}'") == 1
    assert records(whole)[-2]["bad_images"] == 2  # the last training record (then the final validation)
    cfg["run"]["dir"] = str(resumed)
    run_until_crash(SupernetTrainer, cfg, step=5)
    SupernetTrainer(cfg, resume=True).fit()
    a = torch.load(whole / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = (resumed / "log.txt").read_text()
    assert sum(log.count(f"skipped unreadable image '{p}'") for p in bad) == 2  # not again after the resume


def test_a_run_stopped_by_an_unreadable_image_resumes_with_skip(tmp_path, capsys):
    data, bad = image_folder(tmp_path / "data")
    run = tmp_path / "run"
    cfg = config(run, data)
    cfg["train"]["batch_size"] = 4  # checkpoints before the first bad file
    assert main(["train", *words(cfg)]) == 2
    assert (run / "checkpoint.pt").is_file()
    capsys.readouterr()
    assert main(["train", *words(cfg), "data.on_bad_image=skip", "--resume"]) == 0
    assert "data.on_bad_image 'error' -> 'skip'" in (run / "log.txt").read_text()


def test_data_check_lists_the_unreadable_files(tmp_path, capsys):
    data, bad = image_folder(tmp_path / "data")
    assert main(["data", "check", str(data), "--workers", "2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.split(": ")[0] for line in out[:-1]) == sorted(bad)
    assert f"{bad[0]}: an empty file" in out
    assert out[-1].startswith(f"{data}: {2 * PER_CLASS + 8 + 1} image files (imagefolder), 2 unreadable")
    clean, _ = image_folder(tmp_path / "clean", bad=False)
    assert main(["data", "check", str(clean), "--workers", "1"]) == 0
    assert "0 unreadable" in capsys.readouterr().out
    assert main(["data", "check", "digits"]) == 0
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert main(["data", "check", str(clean), "--workers", "0"]) == 2


def test_a_dataset_of_one_class_gets_a_warning(tmp_path):
    data, _ = image_folder(tmp_path / "data", bad=False)
    for split in ("train", "val"):
        for f in (data / split / "dog").iterdir():
            f.unlink()
        (data / split / "dog").rmdir()
    with pytest.warns(UserWarning, match="has one class \\('cat'\\): every prediction is right"):
        build_datasets(DataConfig(path=str(data)))


def bomb_png(path):
    """A PNG of 100 bytes whose header says 20000 x 20000 pixels: PIL refuses it as a decompression
    bomb when it opens it, before decoding anything."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)  # 1-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_an_unreadable_image_everywhere(tmp_path, capsys):
    data, _ = image_folder(tmp_path / "data", bad=False)
    bomb = str(bomb_png(data / "train" / "dog" / "9.png"))
    assert main(["data", "check", str(data), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert f"{bomb}: a decompression bomb, refused before decoding" in out and "1 unreadable" in out
    cfg = config(tmp_path / "run", data)
    assert main(["train", *words(cfg)]) == 2  # one line naming it, as any unreadable image
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("supernas")]
    assert len(lines) == 1 and f"'{bomb}' is not a readable image (a decompression bomb" in lines[0], lines
    assert main(["train", *words(config(tmp_path / "skip", data, on_bad_image="skip"))]) == 0
    assert f"skipped unreadable image '{bomb}'" in (tmp_path / "skip" / "log.txt").read_text()
