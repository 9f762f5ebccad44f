"""Where users extend supernas: each kind of plug-in is one registration, chosen by name in a config
or on the command line (the worked examples of docs/architecture.md, run here), and an unknown
name is a one-line error listing the choices."""
import json

import numpy as np
import pytest
import torch
from tiny_runs import TINY, TINY_NAME

from supernas import CostModel, SupernasError
from supernas.cli import main
from supernas.search import STRATEGIES, SearchSettings


# ---------------------------------------------------------------------------- a sampler
def test_a_registered_sampler_trains_by_name(tmp_path):
    from supernas.sampling import SAMPLERS, UniformSampler
    from supernas.train.supernet import SupernetTrainer

    drawn = []

    class SmallHalf(UniformSampler):
        """Uniform Archs of the smaller half of the widths (the docs' example)."""

        def sample(self):
            arch = super().sample()
            drawn.append(arch)
            return arch

    @SAMPLERS.register("test-small-half")
    def build(cfg, context):
        return SmallHalf(context.space, context.rng())

    try:
        SupernetTrainer({"run": {"dir": str(tmp_path / "r"), "device": "cpu"}, "space": TINY_NAME,
                         "data": {"path": "digits", "image_size": 12, "train_subset": 64},
                         "train": {"epochs": 1, "batch_size": 32, "workers": 0, "max_steps": 2},
                         "sampler": {"kind": "test-small-half", "prefetch": 1},
                         "eval": {"bn_batches": 1, "max_batches": 1},
                         "log": {"progress": False, "tensorboard": False}}).fit()
    finally:
        SAMPLERS._entries.pop("test-small-half")
    assert len(drawn) >= 4  # 2 steps x 2 sampled Archs (and what the prefetcher drew ahead)


def test_unknown_plugin_names_are_one_line_errors(tmp_path, trained_run, capsys):
    from supernas.train.supernet import SupernetTrainer

    cfg = {"run": {"dir": str(tmp_path / "r"), "device": "cpu"}, "space": TINY_NAME,
           "data": {"path": "digits", "image_size": 12}, "sampler": {"kind": "magic"}}
    with pytest.raises(SupernasError, match="sampler.kind='magic' is not a known sampler; choose one of uniform, "
                                            "flops, attentive, pareto"):
        SupernetTrainer(cfg)
    cfg["sampler"] = {"kind": "attentive", "score": "vibes"}
    with pytest.raises(SupernasError, match="sampler.score='vibes' is not a known scorer; choose one of loss"):
        SupernetTrainer(cfg)
    cfg["sampler"] = {}
    cfg["data"]["format"] = "parquet"
    with pytest.raises(SupernasError, match="data format 'parquet' is unknown; use auto or one of: cifar10"):
        SupernetTrainer(cfg)
    assert main(["search", str(trained_run), "--budgets", "2", "--strategy", "anneal", "--device", "cpu"]) == 2
    assert "--strategy='anneal' is not a known search strategy; choose one of evolution, random" \
        in capsys.readouterr().err
    assert main(["export", str(trained_run), "--arch", "smallest", "--format", "tflite", "--device", "cpu"]) == 2
    assert "--format='tflite' is not a known export format; choose one of pt, pickle, torchscript, onnx" \
        in capsys.readouterr().err


# ---------------------------------------------------------------------------- a dataset format
def test_a_registered_dataset_format_reads_by_name(tmp_path):
    """The docs' example: images and labels as two .npy files per split."""
    from supernas.data import build_datasets
    from supernas.data.datasets import ImageTensors
    from supernas.data.formats import FORMATS, DataFormat

    def locate(root):
        return root if (root / "train_images.npy").is_file() else None

    def read(folder):
        def split(name):
            images = torch.from_numpy(np.load(folder / f"{name}_images.npy"))  # (N, 3, H, W) uint8
            labels = torch.from_numpy(np.load(folder / f"{name}_labels.npy"))
            return ImageTensors(images, labels, classes=["a", "b"])
        return split("train"), split("val") if (folder / "val_images.npy").is_file() else None

    rng = np.random.default_rng(0)
    for name, n in (("train", 40), ("val", 10)):
        np.save(tmp_path / f"{name}_images.npy", rng.integers(0, 256, (n, 3, 16, 16), dtype=np.uint8))
        np.save(tmp_path / f"{name}_labels.npy", np.arange(n) % 2)
    FORMATS.register("test-npy")(DataFormat("root/{train,val}_{images,labels}.npy", read, locate,
                                            (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    try:
        ds = build_datasets({"path": str(tmp_path), "format": "test-npy"})
        assert (len(ds.train), len(ds.val), ds.num_classes, ds.format) == (40, 10, 2, "test-npy")
        assert ds.train[0][0].shape == (3, 16, 16) and ds.mean == (0.5, 0.5, 0.5)
        assert build_datasets({"path": str(tmp_path)}).format == "test-npy"  # detected, as the built-ins are
    finally:
        FORMATS._entries.pop("test-npy")


# ---------------------------------------------------------------------------- search strategies
def _score(cost):
    return lambda archs: [float(cost.mflops(a)) for a in archs]  # bigger is better: an easy landscape


def test_random_search_scores_as_many_archs_as_the_evolution_and_resumes_exactly():
    cost = CostModel(TINY, 10)
    settings = SearchSettings(population=8, mutations=4, crossovers=4, generations=2)
    full = STRATEGIES.get("random")(TINY, cost, _score(cost), [1.5, 3.0], settings).run()
    assert all(e.mflops <= 3.0 for e in full.evaluated) and full.best[0].mflops <= 1.5
    assert len(full.evaluated) == 2 * settings.archs_per_budget == 48  # no Arch scored twice
    first = STRATEGIES.get("random")(TINY, cost, _score(cost), [1.5, 3.0], settings)
    first.step()
    state = json.loads(json.dumps(first.state_dict()))  # through JSON, as search_state.json holds it
    resumed = STRATEGIES.get("random")(TINY, cost, _score(cost), [1.5, 3.0], settings, state=state).run()
    assert [e.arch for e in resumed.evaluated] == [e.arch for e in full.evaluated]
    assert [e.arch for e in resumed.best] == [e.arch for e in full.best]
    with pytest.raises(SupernasError, match="budgets"):
        STRATEGIES.get("random")(TINY, cost, _score(cost), [1.5], settings, state=state)
    with pytest.raises(SupernasError, match="not a random search"):
        STRATEGIES.get("random")(TINY, cost, _score(cost), [1.5, 3.0], settings,
                                 state=STRATEGIES.get("evolution")(TINY, cost, _score(cost), [1.5, 3.0],
                                                                   settings).state_dict())


def test_search_command_runs_either_strategy(trained_run, tmp_path):
    for strategy in ("evolution", "random"):
        out = tmp_path / strategy
        assert main(["search", str(trained_run), "--budgets", "2", "--strategy", strategy, "--population", "4",
                     "--mutations", "2", "--crossovers", "2", "--generations", "1", "--bn-batches", "1",
                     "--max-batches", "1", "--device", "cpu", "--out", str(out)]) == 0
        front = json.loads((out / "pareto.json").read_text())
        assert front["search"]["strategy"] == strategy and front["entries"]
        scored = json.loads((out / "evaluated.json").read_text())["entries"]
        assert len(scored) <= 4 + 1 * (2 + 2)


# ---------------------------------------------------------------------------- the schemas
def test_config_show_lists_every_key_with_its_default_and_rule(capsys, tmp_path):
    assert main(["config", "show", "fpnas"]) == 0
    out = capsys.readouterr().out
    assert "  lr: 0.1  # a number > 0." in out and "  arch_warmup_epochs: 2  # an integer >= 0." in out
    assert "mode: fpnas  # one of fpnas, parsec." in out
    f = tmp_path / "c.yaml"
    f.write_text("train: {epochs: 3}\nsearch: {lr: 0.5}\n")  # an old key, still read
    with pytest.warns(DeprecationWarning, match="'search.lr' is now 'train.lr'"):
        assert main(["config", "show", "fpnas", str(f), "train.batch_size=8"]) == 0
    out = capsys.readouterr().out
    assert "  epochs: 3  #" in out and "  lr: 0.5  #" in out and "  batch_size: 8  #" in out
    assert main(["config", "show", "train", str(f)]) == 2
    assert "unknown config key 'search'" in capsys.readouterr().err
