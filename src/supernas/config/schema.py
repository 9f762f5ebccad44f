"""The settings of every command that takes a config: `supernas train` (AttentiveNAS stage 1),
`supernas fpnas` (FP-NAS / PARSEC), `supernas retrain` and `supernas finetune`.

One concept has one key in every command: `train.*` is always the weight training (epochs, batch,
learning rate and its warm-up, optimizer), `run.*` where and how the run runs, `eval.*` its
validation, `log.*` and `checkpoint.*` what it writes. `supernas config show COMMAND` prints a
schema with its defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Union

from ..data.config import DataConfig
from ..errors import SupernasError
from ..utils.settings import Section, section, setting

SPACE_VALUES = "a built-in space's name, the path of a space file (YAML), or a definition mapping"

Auto = Literal["auto"]
# the unit of each cost a budget is given in
COST_UNITS = {"mflops": "MFLOPs", "latency": "ms"}
# Bounds no real run reaches: a seed must fit torch's and numpy's 64 bits (with the offsets added to
# it), and a schedule of 10**12 epochs is a typo that a dry run would spend forever counting.
MAX_SEED = 2**63 - 1
MAX_EPOCHS = 100_000


# ---------------------------------------------------------------------------- shared sections
@dataclass
class Run(Section):
    dir: str = setting("runs/run", "the run directory: config, checkpoints, metrics, results")
    seed: int = setting(0, "seeds the weights, the data order, the augmentations and the Arch draws", low=0)
    device: str = setting("auto", "auto (the GPU when there is one), cpu, cuda or cuda:N")
    amp: Literal["auto", "bf16", "fp32"] = setting("auto", "autocast dtype; auto: measured per kind of model "
                                                           "(docs/performance.md)")
    channels_last: Union[bool, Auto] = setting("auto", "NHWC activations; auto: static models on a GPU only")
    cudnn_benchmark: Union[bool, Auto] = setting("auto", "cuDNN's per-shape tuning; auto: static models only "
                                                         "(a supernet's shapes change every step)")
    threads: Union[int, Auto] = setting("auto", "CPU threads of torch's operators; auto: the cores this process "
                                                "may use, shared among torchrun's local processes, at most torch's "
                                                "default (docs/training.md: how to choose)", low=1)

    def check(self) -> None:
        # An empty run.dir would be the current folder, among the user's own files.
        if isinstance(self.dir, str) and not self.dir.strip():
            raise SupernasError("run.dir is empty; give the run a folder of its own (e.g. run.dir=runs/mine)")
        if isinstance(self.seed, int) and self.seed > MAX_SEED:
            raise SupernasError(f"run.seed={self.seed} is out of range: at most {MAX_SEED} (seeds are 64-bit)")


@dataclass
class Log(Section):
    every_steps: int = setting(20, "a metrics record (and a read of the losses) every this many steps", low=1)
    tensorboard: bool = setting(True, "TensorBoard events in RUN/tensorboard")
    progress: bool = setting(True, "a progress bar on a terminal; elsewhere (a file, a pipe) a line every "
                                   "every_steps steps")


@dataclass
class Checkpoint(Section):
    every_steps: int = setting(500, "an atomic checkpoint every this many steps (and at every epoch's end)", low=1)
    every_minutes: float = setting(10.0, "also one when this many minutes passed since the last, so no more than "
                                         "that is lost to a crash", low=0, low_open=True)


@dataclass
class TrainCommon(Section):
    """The weight training every command shares."""

    epochs: int = setting(360, "length of the schedule", low=1)
    max_steps: Union[int, None] = setting(None, "stop after this many steps (quick runs); the schedule still "
                                                "spans `epochs`", low=1)
    batch_size: int = setting(32, "images per process and step", low=1)
    lr: float = setting(0.1, "learning rate per 256 images, scaled linearly with the global batch", low=0,
                        low_open=True)
    warmup_epochs: int = setting(5, "linear learning-rate warm-up, then cosine decay", low=0)
    final_lr_ratio: float = setting(0.0, "the learning rate at the end, as a fraction of the peak", low=0, high=1)
    momentum: float = setting(0.9, "SGD momentum", low=0, high=1, high_open=True)
    nesterov: bool = setting(True, "Nesterov momentum (SGD)")
    weight_decay: float = setting(1.0e-5, "on conv and linear weights; not on BatchNorm or biases", low=0)
    label_smoothing: float = setting(0.1, "of the cross-entropy on the labels", low=0, high=1, high_open=True)
    grad_clip: Union[float, None] = setting(1.0, "clip each gradient value to [-c, c]; null: off", low=0,
                                            low_open=True)
    workers: int = setting(4, "DataLoader worker processes per process (one core each)", low=0)

    def check(self) -> None:
        if self.epochs > MAX_EPOCHS:
            raise SupernasError(f"train.epochs={self.epochs} is out of range: at most {MAX_EPOCHS:,} (no schedule "
                                "runs that long; a typo?)")
        if getattr(self, "optimizer", "sgd") == "sgd" and self.nesterov and not self.momentum:
            raise SupernasError("train.nesterov needs train.momentum > 0; set train.nesterov=false or a momentum")


@dataclass
class WeightSharingTrain(TrainCommon):
    """The training of a supernet's shared weights (stage 1, the FP-NAS search)."""

    recompute_bn_act: bool = setting(False, "store only each BatchNorm's input; rebuild its output and the "
                                            "activation's in backward: less than half the activation memory, "
                                            "an elementwise pass or two more per layer (docs/performance.md)")
    pointwise_kernel: Literal["conv", "gemm"] = setting(
        "conv", "1x1 convolutions: conv (cuDNN or oneDNN), or gemm (a matrix product: no per-shape plan on a GPU)")
    depthwise_kernel: Literal["conv", "native"] = setting(
        "conv", "depthwise convolutions: conv (cuDNN or oneDNN), or native (PyTorch's own CUDA kernel, which takes "
                "bf16 without a per-shape plan; a CPU runs conv)")


# ---------------------------------------------------------------------------- supernas train
@dataclass
class SupernetTrain(WeightSharingTrain):
    dropout: float = setting(0.2, "before the classifier, largest Arch only", low=0, high=1, high_open=True)
    drop_path: float = setting(0.2, "stochastic depth rate, largest Arch only", low=0, high=1, high_open=True)
    drop_path_scope: Literal["last_two_stages", "all_blocks"] = setting(
        "last_two_stages", "where drop-path applies: the reference's last two stages, or a ramp over all blocks")
    num_arch_training: int = setting(4, "Archs per step: largest + sampled + smallest", low=2)
    cuda_graphs: bool = setting(False, "replay the largest and the smallest Arch's forward and backward from CUDA "
                                       "graphs captured once (their shapes repeat every step); eager on a CPU and "
                                       "for a batch of another size")


@dataclass
class Sampler(Section):
    kind: str = setting("attentive", "how the middle Archs of a step are drawn: a registered sampler "
                                     "(uniform, flops, attentive, pareto)")
    mode: Literal["best", "worst"] = setting("best", "attentive and pareto: BestUp or WorstUp")
    score: str = setting("loss", "attentive: a registered scorer (loss: minibatch loss; predictor)")
    loss_against: Literal["labels", "teacher"] = setting(
        "labels", "score loss: against the labels (the reference) or the largest Arch's predictions")
    k: Union[int, None] = setting(None, "candidates per attentive draw; null: 3 for loss, 50 for predictor", low=1)
    predictor: Union[str, None] = setting(None, "score predictor: path of a saved accuracy predictor")
    pareto_set: Union[str, None] = setting(None, "pareto: path of a pareto.json (offline best or worst set)")
    bin_width: float = setting(25.0, "MFLOPs per bin of the FLOPs prior", low=0, low_open=True)
    n_prior: int = setting(1_000_000, "random Archs behind the FLOPs prior and proposal tables", low=1)
    cache_dir: Union[str, None] = setting(None, "where to keep the prior tables (.npz)")
    prefetch: int = setting(8, "draws made ahead on a thread, per sampled Arch of a step", low=0)


@dataclass
class Validation(Section):
    """When and on how much of the val split a run validates (retrain, finetune; the supernet's
    adds its BatchNorm re-calibration)."""

    every_epochs: int = setting(1, "validate every this many epochs; 0: at the end only", low=0)
    batch_size: int = setting(256, "images per evaluation batch", low=1)
    max_batches: Union[int, None] = setting(None, "evaluate on at most this many batches", low=1)


@dataclass
class SupernetEval(Validation):
    every_epochs: int = setting(1, "validate the smallest and largest Archs every this many epochs; 0: at the "
                                   "end only", low=0)
    batch_size: int = setting(128, "images per evaluation batch", low=1)
    bn_batches: int = setting(64, "BatchNorm re-calibration batches per Arch", low=1)


@dataclass
class SupernetConfig(Section):
    """`supernas train`: AttentiveNAS stage 1."""

    run: Run = section(lambda: Run(dir="runs/supernet"), "where and how the run runs")
    space: Any = setting("attentivenas", "the space the supernet runs", allows=SPACE_VALUES)
    data: DataConfig = section(DataConfig, "the dataset and its splits (supernas.data.DataConfig)")
    train: SupernetTrain = section(SupernetTrain, "the sandwich training of the weights")
    sampler: Sampler = section(Sampler, "the Archs between the largest and the smallest")
    eval: SupernetEval = section(SupernetEval, "validation")
    log: Log = section(Log, "metrics and progress")
    checkpoint: Checkpoint = section(Checkpoint, "checkpoints")


# ---------------------------------------------------------------------------- supernas fpnas
@dataclass
class FpnasTrain(WeightSharingTrain):
    epochs: int = setting(10, "length of the search", low=1)
    batch_size: int = setting(64, "images per process, for both the train and the search batches", low=1)
    warmup_epochs: int = setting(0, "linear learning-rate warm-up of the weights", low=0)
    weight_decay: float = setting(4.0e-5, "on conv and linear weights; not on BatchNorm or biases", low=0)
    label_smoothing: float = setting(0.0, "of the weight step's cross-entropy", low=0, high=1, high_open=True)
    grad_clip: Union[float, None] = setting(None, "clip each gradient value to [-c, c]; null: off", low=0,
                                            low_open=True)


@dataclass
class Latency(Section):
    device: Union[str, None] = setting(None, "where layers are timed; null: the search's device")
    batch_size: int = setting(1, "batch of the timed layers", low=1)
    warmup: int = setting(10, "untimed runs per layer", low=0)
    repeats: int = setting(30, "timed runs per layer, in interleaved rounds (the fastest counts)", low=1)
    window_s: float = setting(10.0, "seconds of timed runs the rounds span at least (more rounds if repeats take "
                                    "less): a shared machine runs at full speed only in brief spells", low=0,
                              high=3600)


@dataclass
class Search(Section):
    mode: Literal["fpnas", "parsec"] = setting("fpnas", "fpnas: adaptive K, coarse-to-fine; parsec: joint, fixed K")
    arch_warmup_epochs: int = setting(2, "epochs with alpha frozen (uniform Archs) before it learns", low=0)
    weight_step: Literal["uniform", "importance"] = setting(
        "uniform", "the K Archs' gradients averaged, or weighted by their normalised likelihoods")
    arch_lr: float = setting(0.01, "Adam's learning rate on alpha", low=0, low_open=True)
    arch_betas: list[float] = setting([0.9, 0.999], "Adam's betas on alpha")
    k_min: int = setting(2, "fpnas: fewest Archs per step (2: one sample gives no contrast)", low=1)
    k_max: int = setting(16, "fpnas: most Archs per step", low=1)
    k_rule: Literal["proportional", "linear", "perplexity", "fixed"] = setting(
        "proportional", "how K follows the entropy (supernas.fpnas.num_samples)")
    k_per_nat: Union[float, None] = setting(None, "proportional: K = k_per_nat * entropy; null: k_max * entropy / "
                                                  "max entropy", low=0, low_open=True)
    k_fixed: int = setting(16, "parsec: Archs per step", low=1)
    switch_epoch: Union[int, None] = setting(5, "fpnas: factorized -> joint at the start of this epoch; null: "
                                                "never", low=0)
    beta: float = setting(0.0, "weight of the cost term (0: accuracy only)", low=0)
    cost: Literal["mflops", "latency"] = setting("mflops", "the cost: analytic MFLOPs or measured latency (ms)")
    cost_target: Union[float, None] = setting(None, "budget in MFLOPs, or ms with cost latency", low=0,
                                              low_open=True)
    latency: Latency = section(Latency, "cost latency: the per-layer table")
    cost_mode: Literal["linear", "hinge", "hinge_expected"] = setting(
        "linear", "linear; hinge per sample; hinge on the distribution's expected cost")
    cost_norm: Literal["sum", "target"] = setting("sum", "linear and hinge: costs over their sum or the target")
    temperature: float = setting(1.0, "divides the summed-loss log-likelihoods (1: the paper)", low=0,
                                 low_open=True)
    mc_samples: int = setting(256, "Archs drawn to estimate the expected MFLOPs", low=1)
    top_n: int = setting(5, "distinct most likely Archs in result.json", low=1)
    score_images: Union[int, None] = setting(
        10000, "at the end the top_n Archs are scored on this many search-split images with the supernet's "
               "weights (evaluated.json, pareto.json, as stage 2's search writes); 0: not scored; null: all",
        low=0)
    score_bn_batches: int = setting(16, "train batches that re-calibrate each scored Arch's BatchNorm", low=1)

    def check(self) -> None:
        if self.k_max < self.k_min:
            raise SupernasError(f"search.k_max ({self.k_max}) must be >= search.k_min ({self.k_min})")
        if self.k_per_nat is not None and self.k_rule != "proportional":
            raise SupernasError(f"search.k_per_nat (Archs per nat of entropy) goes with search.k_rule=proportional, "
                                f"not {self.k_rule}; set one or drop search.k_per_nat")
        needs_target = self.beta > 0 and (self.cost_mode != "linear" or self.cost_norm == "target")
        if needs_target and self.cost_target is None:
            raise SupernasError(f"search.cost_mode={self.cost_mode} / cost_norm={self.cost_norm} need "
                                f"search.cost_target, a positive budget in {COST_UNITS[self.cost]}; got null")


@dataclass
class FpnasConfig(Section):
    """`supernas fpnas`: FP-NAS, or PARSEC with search.mode parsec."""

    run: Run = section(lambda: Run(dir="runs/fpnas"), "where and how the run runs")
    space: Any = setting("fpnas-l0", "the space the search runs over", allows=SPACE_VALUES)
    data: DataConfig = section(lambda: DataConfig(search_size=0.2), "the dataset; the architecture steps need "
                                                                     "a search split")
    train: FpnasTrain = section(FpnasTrain, "the weight steps")
    search: Search = section(Search, "the distribution over Archs and its steps")
    log: Log = section(lambda: Log(every_steps=1), "metrics and progress")
    checkpoint: Checkpoint = section(lambda: Checkpoint(every_steps=200), "checkpoints")


# ---------------------------------------------------------------------------- retrain / finetune
@dataclass
class StandaloneTrain(TrainCommon):
    batch_size: int = setting(128, "images per process and step", low=1)
    optimizer: Literal["sgd", "rmsprop"] = setting("sgd", "sgd (nesterov momentum) or rmsprop (EfficientNet's)")
    rmsprop_alpha: float = setting(0.9, "rmsprop: decay of the squared-gradient average", low=0, high=1)
    rmsprop_eps: float = setting(1.0e-3, "rmsprop: TensorFlow-like, large for stability", low=0, low_open=True)
    weight_decay: float = setting(4.0e-5, "on conv and linear weights; not on BatchNorm or biases", low=0)
    dropout: float = setting(0.2, "before the classifier", low=0, high=1, high_open=True)
    drop_path: Union[float, Auto] = setting("auto", "stochastic depth rising with block index to this rate; auto: "
                                                    "0.2 for FP-NAS L-space Archs, else 0", low=0, high=1,
                                            high_open=True)
    grad_clip: Union[float, None] = setting(None, "clip each gradient value to [-c, c]; null: off", low=0,
                                            low_open=True)
    teacher: Union[str, None] = setting(None, "distil from an export directory or a supernet run's largest Arch")
    distill_weight: float = setting(1.0, "loss = (1 - w) label loss + w T^2 soft-target loss", low=0, high=1)
    distill_temperature: float = setting(1.0, "T of the soft targets", low=0, low_open=True)
    teacher_bn_batches: int = setting(64, "BN re-calibration batches of a supernet teacher's largest Arch", low=1)


@dataclass
class Ema(Section):
    decay: Union[float, None] = setting(0.9998, "per step; null: no EMA", low=0, high=1)
    warmup: bool = setting(True, "decay min(decay, (1 + n) / (10 + n)) after n steps")
    export: Literal["best", "ema", "raw"] = setting("best", "which weights the export holds: the better on val, "
                                                            "the EMA or the raw ones")

    def check(self) -> None:
        if self.export == "ema" and self.decay is None:
            raise SupernasError("ema.export=ema needs an EMA: set ema.decay (e.g. 0.9998), or ema.export=raw")


@dataclass
class RetrainConfig(Section):
    """`supernas retrain`: one Arch trained from scratch (the FP-NAS supplementary's recipe)."""

    run: Run = section(lambda: Run(dir="runs/retrain"), "where and how the run runs")
    arch: Any = setting(None, "what to train", allows="an FP-NAS run, an export, a JSON file or string, an Arch "
                        "mapping, or a0..a6 (or null: given on the command line)")
    init: Union[str, None] = setting(None, "an export directory whose weights start the run (finetune's MODEL)")
    space: Any = setting(None, "the space of a bare Arch", allows=SPACE_VALUES + " (or null)")
    data: DataConfig = section(lambda: DataConfig(autoaugment=True), "the dataset (AutoAugment on)")
    train: StandaloneTrain = section(StandaloneTrain, "the training")
    ema: Ema = section(Ema, "the exponential moving average of the weights")
    eval: Validation = section(Validation, "validation")
    log: Log = section(Log, "metrics and progress")
    checkpoint: Checkpoint = section(Checkpoint, "checkpoints")

    def check(self) -> None:
        # neither is a setting still to give (the trainer asks for it); both do not go together
        if self.arch is not None and self.init is not None:
            raise SupernasError("give either arch (train an Arch from scratch) or init (start from an export), not "
                                "both")


@dataclass
class FinetuneTrain(StandaloneTrain):
    epochs: int = setting(30, "length of the schedule", low=1)
    lr: float = setting(0.01, "learning rate per 256 images (a tenth of retrain's)", low=0, low_open=True)
    warmup_epochs: int = setting(0, "linear warm-up: none, the weights are trained already", low=0)


@dataclass
class FinetuneConfig(RetrainConfig):
    """`supernas finetune`: an exported model trained further, optionally distilled from a supernet."""

    run: Run = section(lambda: Run(dir="runs/finetune"), "where and how the run runs")
    train: FinetuneTrain = section(FinetuneTrain, "the training")


def run_kind(config: Mapping[str, Any]) -> str | None:
    """What made a run, from its config.yaml: 'supernet' (`supernas train`), 'fpnas' or 'parsec'
    (`supernas fpnas`), 'retrain' or 'finetune'; None for a config of none of them."""
    search = config.get("search")
    if isinstance(search, Mapping) and "mode" in search:
        return str(search["mode"])
    if "arch" in config and "init" in config:
        return "finetune" if config["init"] is not None else "retrain"
    if "sampler" in config:
        return "supernet"
    return None


SCHEMAS: dict[str, type[Section]] = {"train": SupernetConfig, "fpnas": FpnasConfig, "retrain": RetrainConfig,
                                     "finetune": FinetuneConfig}

# Keys renamed so that one concept has one key everywhere: old key -> new key (still read, with a warning).
RENAMED: dict[type, dict[str, str]] = {FpnasConfig: {
    **{f"search.{k}": f"train.{k}" for k in ("epochs", "max_steps", "batch_size", "lr", "final_lr_ratio", "momentum",
                                             "nesterov", "weight_decay", "label_smoothing", "grad_clip",
                                             "workers")},
    "search.lr_warmup_epochs": "train.warmup_epochs",
    "search.warmup_epochs": "search.arch_warmup_epochs",
}}
