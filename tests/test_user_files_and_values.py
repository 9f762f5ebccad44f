"""Issue 26: nothing a user made is overwritten, no value silently falls back to a default, checks
come before work and messages say what is wrong."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from supernas.cli import main
from supernas.config import SupernetConfig, load_config, parse_override
from supernas.errors import SupernasError

from tiny_runs import FAST_SCORING, TINY_TRAIN

TINY = "attentivenas-tiny"


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("supernas ")]
    assert lines and "Traceback" not in err, err
    return lines[-1]


# ---------------------------------------------------------------------------- 1, 2: a user's files
@pytest.mark.parametrize("override", ["run.dir=", "run.dir= ", "data.path="])
def test_an_empty_run_dir_or_data_path_is_refused(override, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'r'}", override]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "is empty" in line and override.split("=")[0] in line
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("flag", [["search", "RUN", "--budgets", "2", "--out", ""],
                                  ["export", "RUN", "--arch", "a0", "--out", ""],
                                  ["predictor", "offline-sets", "RUN", "--out", ""],
                                  ["eval", "RUN", "--data", ""],
                                  ["quickstart", "--dir", ""]])
def test_an_empty_output_or_data_flag_is_refused(flag, tmp_path, capsys):
    argv = [str(tmp_path) if a == "RUN" else a for a in flag]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "is empty" in line and f"--{'dir' if 'quickstart' in flag else 'out' if '--out' in flag else 'data'}" \
        in line


def test_train_does_not_write_among_a_users_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own\n")
    (mine / "log.txt").write_text("my notes\n")
    assert main(["train", *TINY_TRAIN, f"run.dir={mine}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds files supernas did not write (config.yaml, log.txt)" in line and "run.dir" in line
    assert sorted(os.listdir(mine)) == ["config.yaml", "log.txt"]
    assert (mine / "config.yaml").read_text() == "my: own\n"


def test_search_out_into_a_users_folder_is_refused(run_copy, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pareto.json").write_text("{}")
    assert main(["search", str(run_copy), "--budgets", "2", "--population", "2", "--generations", "1",
                 *FAST_SCORING, "--out", str(mine)]) == 2
    assert "holds files supernas did not write (pareto.json)" in _one_line(capsys.readouterr().err)
    assert os.listdir(mine) == ["pareto.json"]


def test_export_out_into_a_users_folder_needs_force(run_copy, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    from supernas.spaces import get_space

    smallest = json.dumps(get_space(TINY).smallest().to_dict())
    argv = ["export", str(run_copy), "--arch", smallest, "--bn-batches", "1", "--device", "cpu", "--out", str(mine)]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds files supernas did not write (notes.txt)" in line and "--force" in line
    assert os.listdir(mine) == ["notes.txt"]
    assert main(argv + ["--force"]) == 0
    assert (mine / "notes.txt").read_text() == "mine" and (mine / "arch.json").is_file()


def test_import_goes_into_a_new_or_empty_folder_only(tmp_path, capsys):
    from supernas.nn import SuperNet

    path = tmp_path / "c.pth.tar"
    torch.save(SuperNet(TINY, 10).reference_checkpoint(), path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("my: own\n")
    assert main(["import", "attentivenas", str(path), "--space", TINY, "--out", str(out)]) == 2
    assert "is not empty; import into a new or empty folder" in _one_line(capsys.readouterr().err)
    assert (out / "config.yaml").read_text() == "my: own\n" and os.listdir(out) == ["config.yaml"]
    (out / "config.yaml").unlink()
    assert main(["import", "attentivenas", str(path), "--space", TINY, "--out", str(out)]) == 0


# ---------------------------------------------------------------------------- 3: ~ is a path
def test_tilde_overrides_are_paths_not_null(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_override("data.path=~") == (["data", "path"], "~")
    assert parse_override("run.dir=~/runs/a") == (["run", "dir"], "~/runs/a")
    assert parse_override("data.image_size=null") == (["data", "image_size"], None)
    cfg = load_config(SupernetConfig, None, ["data.path=~", "run.dir=~/runs/a"])
    assert cfg.data.path == "~" and cfg.run.dir == "~/runs/a"
    # the home folder is no dataset: an error naming it, not a silent run on the built-in digits
    assert main(["train", *TINY_TRAIN, f"run.dir={tmp_path / 'r'}", "data.path=~", "--dry-run"]) == 2
    assert f"'{tmp_path}'" in _one_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------- 4: duplicate keys
def test_a_config_with_a_key_twice_is_refused_naming_both_lines(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochs: 8\n  lr: 0.4\nlog:\n  every_steps: 2\ntrain:\n  epochs: 360\n")
    assert main(["config", "show", "train", str(config)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "key 'train' appears twice, on line 1 and on line 6" in line and str(config) in line
    config.write_text("train:\n  epochs: 8\n  epochs: 9\n")
    with pytest.raises(SupernasError, match="key 'epochs' appears twice, on line 2 and on line 3"):
        load_config(SupernetConfig, config)


def test_a_space_file_with_a_key_twice_is_refused(tmp_path):
    from supernas.spaces import get_space

    f = tmp_path / "space.yaml"
    f.write_text("name: mine\nresolution: [32]\nname: other\n")
    with pytest.raises(SupernasError, match="key 'name' appears twice, on line 1 and on line 3"):
        get_space(str(f))


def test_a_yaml_tab_error_names_line_and_column(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n\tepochs: 8\n")
    with pytest.raises(SupernasError, match=r"tab.*line 2, column 1"):
        load_config(SupernetConfig, config)
