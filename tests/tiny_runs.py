"""The tiny runs the tests start, one place for each kind: a supernet (two of them: the usual and
the quickest), an FP-NAS search, a standalone Arch, and the same as command-line settings, all on
the built-in digits, a few steps on the CPU."""
from supernas import get_space

# the small built-in space the tests run on, named here only: TINY_NAME where a test gives a name (a config,
# a command line), TINY where it needs the space (get_space of a built-in name returns this same object)
TINY_NAME = "attentivenas-tiny"
TINY = get_space(TINY_NAME)
# the smallest Arch with two blocks in mb1 and mb2: identity residuals deep enough for stochastic depth
STANDALONE_ARCH = {**TINY.smallest().to_dict(), "mb1.depth": 2, "mb2.depth": 2}

TINY_TRAIN = ["run.device=cpu", f"space={TINY_NAME}", "data.path=digits", "data.image_size=12",
              "data.train_subset=256", "train.epochs=1", "train.batch_size=32", "train.workers=0",
              "train.max_steps=4", "sampler.kind=uniform", "eval.bn_batches=1", "eval.max_batches=1",
              "log.tensorboard=false", "log.every_steps=2", "run.threads=1"]

# a stage-2 command's settings that score an Arch in a moment
FAST_SCORING = ["--bn-batches", "1", "--max-batches", "1", "--device", "cpu", "--threads", "1"]


def supernet_config(run_dir, **train):
    """A supernet of attentivenas-tiny on 320 digits: 10 steps an epoch, attentive sampling."""
    return {
        "run": {"dir": str(run_dir), "device": "cpu"},
        "space": TINY_NAME,
        "data": {"path": "digits", "image_size": 12, "train_subset": 320},
        "train": {"epochs": 2, "batch_size": 32, "workers": 0, "warmup_epochs": 1, **train},
        "sampler": {"kind": "attentive", "n_prior": 20000, "bin_width": 0.25},
        "eval": {"every_epochs": 1, "bn_batches": 2, "max_batches": 1},
        "log": {"progress": False, "every_steps": 1},
        "checkpoint": {"every_steps": 4},
    }


def quick_supernet_config(run_dir, **train):
    """The quickest supernet run: 128 digits, one epoch, uniform sampling, a checkpoint every step."""
    return {"run": {"dir": str(run_dir), "device": "cpu"}, "space": TINY_NAME,
            "data": {"path": "digits", "image_size": 12, "train_subset": 128},
            "train": {"epochs": 1, "batch_size": 32, "workers": 0, **train},
            "sampler": {"kind": "uniform"}, "eval": {"bn_batches": 1, "max_batches": 1},
            "checkpoint": {"every_steps": 1}, "log": {"every_steps": 1, "progress": False, "tensorboard": False}}


def as_overrides(config):
    """A nested config as the key=value words of the command line."""
    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
    return list(walk(config))


FPNAS_TINY_SPACE = {
    "name": "tiny-fp", "resolution": 12, "stem": {"width": 8, "stride": 1, "act": "swish"},
    "stages": [
        {"name": "s1", "width": [8, 16], "depth": 2, "stride": 2, "kernel": [3, 5], "expand": [1.5, 3.0],
         "act": ["relu", "swish"], "attention": [0, 1, 2], "per_block": True},
        {"name": "s2", "width": [16, 24], "depth": 2, "stride": 2, "kernel": [3, 5], "expand": [1.5, 3.0],
         "act": ["relu", "swish"], "attention": [0, 1, 2], "per_block": True},
    ],
    "head": {"kind": "conv", "width": 64, "act": "swish"}, "shortcut": "identity", "gate": "sigmoid",
}


FPNAS_TRAIN_KEYS = ("epochs", "batch_size", "workers", "lr", "max_steps")


def fpnas_config(run_dir, **settings):
    """An FP-NAS search over a two-stage Split-Attention space on 128 digits (train.* keys go to train, the rest to search)."""
    # 128 train images in batches of 32: 4 steps per epoch; one warm-up epoch, switch at epoch 1
    train = {k: v for k, v in settings.items() if k in FPNAS_TRAIN_KEYS}
    search = {k: v for k, v in settings.items() if k not in FPNAS_TRAIN_KEYS}
    return {
        "run": {"dir": str(run_dir), "device": "cpu", "seed": 3},
        "space": FPNAS_TINY_SPACE,
        "data": {"path": "digits", "image_size": 12, "train_subset": 128, "search_size": 32},
        "train": {"epochs": 2, "batch_size": 32, "workers": 0, "lr": 0.4, **train},
        "search": {"arch_warmup_epochs": 1, "switch_epoch": 1, "k_min": 1, "k_max": 3, "k_fixed": 3,
                   "arch_lr": 0.05, "top_n": 3, "beta": 0.5, "mc_samples": 32, **search},
        "log": {"progress": False, "tensorboard": False, "every_steps": 1},
        "checkpoint": {"every_steps": 3},
    }


def standalone_config(run_dir, **train):
    """A standalone Arch of attentivenas-tiny (retrain / finetune) on 256 digits, with an EMA."""
    return {
        "run": {"dir": str(run_dir), "device": "cpu"},
        "space": TINY_NAME,
        "data": {"path": "digits", "image_size": 12, "train_subset": 256, "autoaugment": False},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.4, "warmup_epochs": 0, "workers": 0, **train},
        "ema": {"decay": 0.9},
        "eval": {"every_epochs": 1, "batch_size": 128, "max_batches": 1},
        "log": {"progress": False, "every_steps": 1, "tensorboard": False},
        "checkpoint": {"every_steps": 4},
    }
