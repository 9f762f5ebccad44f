"""Typed configs: one schema per command, one validation path, one-line errors naming key, value and
rule, the same key for the same concept in every command, and renamed keys still read."""
import dataclasses
import re

import pytest

from supernas import SupernasError
from supernas.cli import main
from supernas.config import SCHEMAS, FinetuneConfig, FpnasConfig, RetrainConfig, SupernetConfig, load_config


@pytest.mark.parametrize("override, message", [
    ("train.epochs=abc", "train.epochs='abc' is not allowed: an integer >= 1"),
    ("train.epochs=0", "train.epochs=0 is out of range: an integer >= 1"),
    ("train.lr=-1", "train.lr=-1 is out of range: a number > 0"),
    ("train.lr=fast", "train.lr='fast' is not allowed: a number > 0"),
    ("train.batch_size=0", "train.batch_size=0 is out of range: an integer >= 1"),
    ("train.batch_size=-4", "train.batch_size=-4 is out of range: an integer >= 1"),
    ("train.batch_size=2.5", "train.batch_size=2.5 is not allowed: an integer >= 1"),
    ("train.batch_size=true", "train.batch_size=True is not allowed: an integer >= 1"),
    ("checkpoint.every_steps=0", "checkpoint.every_steps=0 is out of range: an integer >= 1"),
    ("log.every_steps=0", "log.every_steps=0 is out of range: an integer >= 1"),
    ("train.workers=-1", "train.workers=-1 is out of range: an integer >= 0"),
    ("train.dropout=1.5", "train.dropout=1.5 is out of range: a number in [0, 1)"),
    ("run.seed=abc", "run.seed='abc' is not allowed: an integer >= 0"),
    ("train.grad_clip=0", "train.grad_clip=0 is out of range: a number > 0 (or null)"),
    ("sampler.k=0", "sampler.k=0 is out of range: an integer >= 1 (or null)"),
    ("log.progress=maybe", "log.progress='maybe' is not allowed: true or false"),
])
def test_bad_values_are_one_line_errors_naming_key_value_and_rule(override, message):
    with pytest.raises(SupernasError, match=re.escape(message)):
        load_config(SupernetConfig, overrides=[override])


def test_the_cli_refuses_a_bad_value_before_anything_runs(tmp_path, capsys):
    assert main(["train", f"run.dir={tmp_path / 'r'}", "train.epochs=two"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.epochs='two' is not allowed" in err
    assert not (tmp_path / "r").exists()


def test_numbers_that_yaml_reads_as_strings_are_numbers():
    cfg = load_config(SupernetConfig, overrides=["train.lr=1e-3", "train.weight_decay=4e-5", "train.momentum=0",
                                                  "train.nesterov=false"])  # Nesterov needs a momentum
    assert cfg.train.lr == 0.001 and cfg.train.weight_decay == 4e-5
    assert cfg.train.momentum == 0.0 and isinstance(cfg.train.momentum, float)  # an int where a float is asked


def test_unknown_keys_name_the_closest_valid_one(tmp_path):
    with pytest.raises(SupernasError, match="unknown config key 'train.epoch'; did you mean 'train.epochs'"):
        load_config(SupernetConfig, overrides=["train.epoch=3"])
    with pytest.raises(SupernasError, match="unknown config key 'trian'; did you mean 'train'"):
        load_config(SupernetConfig, data={"trian": {"lr": 1}})
    f = tmp_path / "c.yaml"
    f.write_text("- a list\n")
    with pytest.raises(SupernasError, match="must hold a mapping"):
        load_config(SupernetConfig, f)
    f.write_text("train: [1, 2\n")
    with pytest.raises(SupernasError, match="is not valid YAML"):
        load_config(SupernetConfig, f)
    with pytest.raises(SupernasError, match="train must be a mapping of settings"):
        load_config(SupernetConfig, data={"train": 3})


def test_each_command_keeps_its_own_defaults_under_a_partial_section():
    assert load_config(SupernetConfig, overrides=["run.seed=3"]).run.dir == "runs/supernet"
    assert load_config(FpnasConfig, data={"run": {"seed": 3}}).run.dir == "runs/fpnas"
    finetune = load_config(FinetuneConfig, overrides=["train.batch_size=16"])
    assert (finetune.train.epochs, finetune.train.lr, finetune.train.warmup_epochs) == (30, 0.01, 0)
    assert load_config(RetrainConfig).train.epochs == 360
    assert load_config(FpnasConfig).data.search_size == 0.2 and load_config(RetrainConfig).data.autoaugment is True


def test_one_concept_has_one_key_in_every_command():
    def keys(cfg, where=""):
        out = set()
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            out |= keys(v, f"{where}{f.name}.") if dataclasses.is_dataclass(v) else {f"{where}{f.name}"}
        return out

    every = set.intersection(*(keys(schema()) for schema in SCHEMAS.values()))
    for key in ("train.epochs", "train.max_steps", "train.batch_size", "train.lr", "train.warmup_epochs",
                "train.weight_decay", "train.label_smoothing", "train.grad_clip", "train.workers", "run.dir",
                "run.seed", "run.device", "run.amp", "log.every_steps", "checkpoint.every_steps", "data.path"):
        assert key in every, key
    assert not any(k.startswith("search.") and k.split(".")[1] in ("lr", "epochs", "batch_size", "workers")
                   for k in keys(FpnasConfig()))


def test_renamed_keys_are_read_with_a_warning(tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("search: {epochs: 3, lr: 0.5, warmup_epochs: 1, lr_warmup_epochs: 2, mode: parsec}\n")
    with pytest.warns(DeprecationWarning) as seen:
        cfg = load_config(FpnasConfig, f, ["search.batch_size=8"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size, cfg.train.warmup_epochs) == (3, 0.5, 8, 2)
    assert (cfg.search.arch_warmup_epochs, cfg.search.mode) == (1, "parsec")
    assert {str(w.message).split("'")[1] for w in seen} == {"search.epochs", "search.lr", "search.warmup_epochs",
                                                              "search.lr_warmup_epochs", "search.batch_size"}


def test_a_resolved_config_round_trips_through_yaml(tmp_path):
    from supernas.config import dump_config

    for schema in SCHEMAS.values():
        cfg = load_config(schema, overrides=["train.lr=0.25"])
        dump_config(cfg, tmp_path / "c.yaml")
        assert load_config(schema, tmp_path / "c.yaml") == cfg


def test_config_show_says_in_words_what_every_key_takes(capsys):
    from supernas.cli import main

    for command in ("train", "fpnas", "retrain", "finetune"):
        assert main(["config", "show", command]) == 0
        out = capsys.readouterr().out
        assert "# Any" not in out, command  # a type with no words for the user
    assert main(["config", "show", "train"]) == 0
    assert "space: attentivenas  # a built-in space's name, the path of a space file" in capsys.readouterr().out


# the rules between settings live in the schema (Section.check), refused when a config is loaded
@pytest.mark.parametrize("schema, overrides, message", [
    (SupernetConfig, ["train.momentum=0"], "train.nesterov needs train.momentum > 0"),
    (FpnasConfig, ["train.momentum=0"], "train.nesterov needs train.momentum > 0"),
    (RetrainConfig, ["train.momentum=0"], "train.nesterov needs train.momentum > 0"),
    (FpnasConfig, ["search.k_min=5", "search.k_max=3"], r"search.k_max \(3\) must be >= search.k_min \(5\)"),
    (FpnasConfig, ["search.k_rule=linear", "search.k_per_nat=2"], "search.k_per_nat .* goes with "
                                                                   "search.k_rule=proportional, not linear"),
    (FpnasConfig, ["search.beta=0.5", "search.cost_mode=hinge"], "need search.cost_target, a positive budget in "
                                                                  "MFLOPs"),
    (RetrainConfig, ["ema.decay=null", "ema.export=ema"], "ema.export=ema needs an EMA"),
    (RetrainConfig, ["arch=smallest", "init=runs/x/export"], "give either arch .* or init .*, not both"),
    (SupernetConfig, ["run.dir= "], "run.dir is empty"),
    (SupernetConfig, ["run.seed=9223372036854775808"], "run.seed=9223372036854775808 is out of range"),
    (SupernetConfig, ["train.epochs=1000000"], "train.epochs=1000000 is out of range"),
])
def test_settings_that_do_not_go_together_are_refused_when_loaded(schema, overrides, message):
    with pytest.raises(SupernasError, match=message):
        load_config(schema, overrides=overrides, require=False)


def test_the_rules_leave_good_combinations_alone():
    load_config(SupernetConfig, overrides=["train.momentum=0", "train.nesterov=false"], require=False)
    load_config(FpnasConfig, overrides=["search.k_rule=proportional", "search.k_per_nat=2"], require=False)
    load_config(RetrainConfig, overrides=["train.optimizer=rmsprop", "train.momentum=0"], require=False)
    for name, schema in SCHEMAS.items():  # every command's defaults, as `config show` loads them
        load_config(schema, require=False)


def test_a_section_with_new_values_checks_those_and_its_rules():
    from supernas.data import DataConfig

    cfg = DataConfig.from_dict({"path": "x"})
    assert cfg.with_values({"search_size": 0.1}) == DataConfig.from_dict({"path": "x", "search_size": 0.1})
    with pytest.raises(SupernasError, match="data.search_size=1.5 is out of range"):
        cfg.with_values({"search_size": 1.5})
    with pytest.raises(SupernasError, match="unknown config key 'data.serach_size'"):
        cfg.with_values({"serach_size": 3})
    with pytest.raises(SupernasError, match="data.std must be positive"):  # the section's own rules run too
        cfg.with_values({"std": [1, 0, 1]})
