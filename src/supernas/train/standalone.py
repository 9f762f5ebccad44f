"""Train one fixed Arch as a standalone model: `supernas retrain` (from scratch) and `supernas
finetune` (from the weights of an exported model).

The recipe is that of the FP-NAS supplementary, Section C: label smoothing, AutoAugment and an
exponential moving average (EMA) of the weights, with stochastic depth for large models only
(it cost the small ones accuracy). Around it: SGD with nesterov momentum (or RMSProp), the
learning rate given per 256 images and scaled linearly with the global batch, linear warm-up then
cosine decay, dropout before the classifier, and optional knowledge distillation from a teacher:
an exported model, or the largest Arch of a stage-1 supernet.

AttentiveNAS needs neither command: its subnets are deployed with the supernet's weights ("no
fine-tuning or re-training is needed", BN re-calibrated by `supernas export`). `finetune` serves
transfer to another dataset (the paper's Appendix G fine-tunes for that), a supernet trained too
briefly to deploy its subnets as they are, and comparing inherited weights with more training.

One step: the batch, loaded at the dataset's image size, is resized on the device to the Arch's
resolution (and to the teacher's, for the teacher), one forward and backward, gradients averaged
over ranks by DistributedDataParallel (one model, so its overlapped all-reduce fits, unlike the
supernet's several subnets per step), an optimizer step, the scheduler, then the EMA. Resume is
exact: weights, EMA, optimizer, scheduler, RNG and the data position are in every checkpoint.

The run directory ends with result.json and export/ in the format of `supernas export`
(arch.json, state_dict.pt, model.pt), so `supernas eval RUN/export --data ...` evaluates it.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from ..config import load_config
from ..deliver.evaluate_model import evaluate_model, load_export_weights
from ..deliver.export import resize_to, save_export
from ..errors import SupernasError, require_int
from ..nn import StaticNet, SuperNet
from ..spaces import Arch, CostModel, SearchSpace, get_space
from ..utils.io import atomic_write_text
from . import distributed as dist
from .arch_source import resolve_arch
from .checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from .device_metrics import DeviceMeans, require_finite
from .ema import ModelEma
from .engine import autocast, data_defaults, open_run, param_groups, precision
from .logging import RunLogger
from .losses import label_smoothing_ce, soft_target_ce
from .resumable import ResumableLoader, ResumableSampler
from .schedule import scaled_lr, warmup_cosine_scheduler
from .teacher import Teacher, load_teacher

OPTIMIZERS = ("sgd", "rmsprop")
# Section C trains the large FP-NAS models (the L spaces) with stochastic depth "as EfficientNet"
# without giving the rate: EfficientNet's 0.2. The small models lost accuracy with it.
FPNAS_LARGE_SPACES = ("fpnas-l0", "fpnas-l1", "fpnas-l2")
FPNAS_LARGE_DROP_PATH = 0.2
EXPORT_WEIGHTS = ("best", "ema", "raw")

DEFAULTS: dict[str, Any] = {
    "run": {"dir": "runs/retrain", "seed": 0, "device": "auto", "amp": "auto", "channels_last": "auto",
            "cudnn_benchmark": "auto"},
    "arch": None,  # what to train (see resolve_arch): the ARCH of `supernas retrain`
    "init": None,  # an export directory whose weights start the run: the MODEL of `supernas finetune`
    "space": None,  # the space of a bare Arch or a name (a built-in name, a definition, a YAML path)
    "data": None,  # DataConfig's fields, AutoAugment on (filled below)
    "train": {
        "epochs": 360,  # AttentiveNAS's schedule length
        "max_steps": None,  # stop after this many steps (quick runs); the schedule still spans `epochs`
        "batch_size": 128,  # per process
        "optimizer": "sgd",  # sgd (nesterov momentum) | rmsprop (EfficientNet's)
        "lr": 0.1,  # per 256 images, scaled linearly with the global batch
        "warmup_epochs": 5,
        "final_lr_ratio": 0.0,
        "momentum": 0.9,
        "nesterov": True,  # sgd only
        "rmsprop_alpha": 0.9,  # rmsprop only: decay of the squared-gradient average
        "rmsprop_eps": 1.0e-3,  # rmsprop only: TensorFlow-like, large for stability
        "weight_decay": 4.0e-5,  # on conv and linear weights; not on BatchNorm or biases
        "label_smoothing": 0.1,
        "dropout": 0.2,  # before the classifier
        "drop_path": "auto",  # stochastic depth rising with block index to this rate; auto: see drop_path_for
        "grad_clip": None,  # clip each gradient value to [-c, c]; null: off
        "teacher": None,  # distil from an export directory, or a supernet run directory's largest Arch
        "distill_weight": 1.0,  # loss = (1 - w) * label loss + w * T^2 * soft-target loss
        "distill_temperature": 1.0,
        "teacher_bn_batches": 64,  # BN re-calibration of a supernet teacher's largest Arch
        "workers": 4,
    },
    "ema": {
        "decay": 0.9998,  # per step; null: no EMA
        "warmup": True,  # decay min(decay, (1 + n) / (10 + n)) after n steps: short runs average sensibly
        "export": "best",  # best (higher val top-1 of EMA and raw) | ema | raw
    },
    "eval": {"every_epochs": 1, "batch_size": 256, "max_batches": None},
    "log": {"every_steps": 20, "tensorboard": True, "progress": True},
    "checkpoint": {"every_steps": 500},
}

DEFAULTS["data"] = data_defaults(autoaugment=True)

# Fine-tuning starts from trained weights: a short schedule at a tenth of the rate, no warm-up.
FINETUNE_DEFAULTS: dict[str, Any] = load_config(DEFAULTS, data={
    "run": {"dir": "runs/finetune"}, "train": {"epochs": 30, "lr": 0.01, "warmup_epochs": 0}})


# ---------------------------------------------------------------------------- export
def write_export(model: StaticNet, space: SearchSpace, arch: Arch, data, out_dir: "str | Path") -> Path:
    """`out_dir`/arch.json, state_dict.pt and model.pt in the format of `supernas export`; returns model.pt."""
    model = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format)
    model.set_drop_path(0.0)  # a deployed model carries no training-only regularisation
    model.dropout.p = 0.0
    model.requires_grad_(True).eval()  # the EMA copy is frozen; a user may train this one further
    return save_export(model, space, arch, data, out_dir)


def drop_path_for(setting: "float | str", space: SearchSpace) -> float:
    """The stochastic-depth rate of `train.drop_path`: a number as given; 'auto' is 0.2 for an Arch
    whose blocks are those of an FP-NAS L space (fpnas-l0/l1/l2, or one derived from them with
    another resolution or stem, such as the CIFAR-10 configs' space), and 0 otherwise."""
    if setting != "auto":
        return float(setting)
    large = any(space.spec.stages == get_space(name).spec.stages for name in FPNAS_LARGE_SPACES)
    return FPNAS_LARGE_DROP_PATH if large else 0.0


# ---------------------------------------------------------------------------- the trainer
def _check_config(cfg: Mapping[str, Any]) -> None:
    """Fail early, naming the setting, instead of deep inside the first step."""
    t, ema = cfg["train"], cfg["ema"]

    def number(section: str, name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
        v = cfg[section][name]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (v > lo if lo_open else v >= lo) \
            and (v < hi if hi_open else v <= hi)
        if not ok:
            span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise SupernasError(f"{section}.{name} must be a number in {span}, got {v!r}")

    for name, minimum in (("epochs", 1), ("batch_size", 1), ("warmup_epochs", 0), ("workers", 0),
                          ("teacher_bn_batches", 1)):
        require_int(f"train.{name}", t[name], minimum)
    require_int("train.max_steps", t["max_steps"], 1, optional=True)
    if t["optimizer"] not in OPTIMIZERS:
        raise SupernasError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {t['optimizer']!r}")
    if t["optimizer"] == "sgd" and t["nesterov"] and not t["momentum"]:
        raise SupernasError("train.nesterov needs train.momentum > 0; set train.nesterov=false or a momentum")
    number("train", "lr", 0, math.inf, lo_open=True)
    number("train", "dropout", 0, 1, hi_open=True)
    dp = t["drop_path"]
    if dp != "auto" and not (isinstance(dp, (int, float)) and not isinstance(dp, bool) and 0 <= dp < 1):
        raise SupernasError(f"train.drop_path must be 'auto' (0.2 for the FP-NAS L spaces' Archs, else 0) or a "
                            f"number in [0, 1), got {dp!r}")
    number("train", "label_smoothing", 0, 1, hi_open=True)
    number("train", "distill_weight", 0, 1)
    number("train", "distill_temperature", 0, math.inf, lo_open=True)
    if ema["decay"] is not None:
        number("ema", "decay", 0, 1)
    if ema["export"] not in EXPORT_WEIGHTS:
        raise SupernasError(f"ema.export must be one of {', '.join(EXPORT_WEIGHTS)}, got {ema['export']!r}")
    if ema["export"] == "ema" and ema["decay"] is None:
        raise SupernasError("ema.export=ema needs an EMA: set ema.decay (e.g. 0.9998), or ema.export=raw")
    if cfg["arch"] is not None and cfg["init"] is not None:
        raise SupernasError("give either arch (train an Arch from scratch) or init (start from an export), not both")
    if cfg["arch"] is None and cfg["init"] is None:
        raise SupernasError("nothing to train: give ARCH (`supernas retrain ARCH`) or an export to start from "
                            "(`supernas finetune MODEL`)")


class StandaloneTrainer:
    """`StandaloneTrainer(config).fit()` trains one Arch and returns its result (also RUN/result.json).

    `config` is a mapping over `DEFAULTS` (see `load_config`) naming the Arch (`arch`, from scratch)
    or an export to start from (`init`); `resume=True` continues the run in `run.dir` exactly.
    """

    def __init__(self, config: Mapping[str, Any], resume: bool = False):
        self.cfg = load_config(DEFAULTS, data=config)
        _check_config(self.cfg)
        run, t = self.cfg["run"], self.cfg["train"]
        self.info, self.device = dist.setup_distributed(run["device"])
        self.run_dir = Path(run["dir"]).expanduser()
        self.resume = resume
        cuda = self.device.type == "cuda"
        self.amp_dtype, self.channels_last, self.cudnn_benchmark = precision(run, cuda, fixed_shapes=True)
        self.seed = int(run["seed"])
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)

        from ..data import DataConfig, build_datasets

        self.data = build_datasets(DataConfig.from_dict(self.cfg["data"]))
        self.net, self.space, self.arch, self.origin = self._build_net()
        self.cost = CostModel(self.space, self.data.num_classes)
        self.ema = ModelEma(self.net, self.cfg["ema"]["decay"], self.cfg["ema"]["warmup"]) \
            if self.cfg["ema"]["decay"] is not None else None
        self.model: nn.Module = self.net
        if self.info.enabled:
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=[self.device] if cuda else None)

        self.rows = ResumableSampler(self.data.train, t["batch_size"], self.seed, self.info.rank,
                                     self.info.world_size)
        self.loader = ResumableLoader(self.data.train, self.rows, self.seed, t["batch_size"], t["workers"],
                                      pin_memory=cuda)
        self.steps_per_epoch = self.rows.batches_per_epoch
        self.total_steps = t["epochs"] * self.steps_per_epoch
        self.stop_step = self.total_steps if t["max_steps"] is None else min(self.total_steps, t["max_steps"])
        self.lr = scaled_lr(t["lr"], t["batch_size"] * self.info.world_size)
        self.optimizer = self._optimizer()
        self.scheduler = warmup_cosine_scheduler(self.optimizer, self.total_steps,
                                                 t["warmup_epochs"] * self.steps_per_epoch, t["final_lr_ratio"])
        self.teacher: Teacher | None = None
        if t["teacher"]:
            with torch.random.fork_rng(devices=[]):  # distilling or not, the student's random stream is the same
                self.teacher = load_teacher(t["teacher"], self.data, self.device, t["teacher_bn_batches"],
                                            self.channels_last)
        self.step = 0
        self.seconds = 0.0

    # ------------------------------------------------------------------ the model
    def _build_net(self) -> tuple[StaticNet, SearchSpace, Arch, str]:
        """The StaticNet of the Arch: fresh (initialised as the supernet is, sliced), or with the
        weights of `init`; then the regularisers of the config."""
        t, init = self.cfg["train"], self.cfg["init"]
        weights = load_export_weights(init) if init is not None else None
        space, arch = resolve_arch(init if init is not None else self.cfg["arch"], self.cfg["space"])
        net = SuperNet(space, self.data.num_classes).extract(arch)
        origin = "fresh weights" if weights is None else self._load_init(net, init, *weights)
        self.drop_path = drop_path_for(t["drop_path"], space)
        net.set_drop_path(self.drop_path)
        net.dropout.p = t["dropout"]
        net = net.to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net, space, arch, origin

    def _load_init(self, net: StaticNet, init: Any, state: dict[str, torch.Tensor], meta: Mapping[str, Any]) -> str:
        if meta.get("num_classes") != self.data.num_classes:  # another dataset: a new classifier
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as e:  # tensors of other shapes
            raise SupernasError(f"the weights in '{init}' do not fit the Arch of its arch.json "
                                f"({str(e).splitlines()[-1].strip()}); export the model again") from None
        if unexpected or any(not k.startswith("classifier.") for k in missing):
            raise SupernasError(f"the weights in '{init}' do not fit the Arch of its arch.json (missing "
                                f"{missing[:3]}, unexpected {unexpected[:3]}); export the model again")
        return f"the weights of '{init}'" + (f" with a new {self.data.num_classes}-class classifier" if missing else "")

    def _optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg["train"]
        groups = param_groups(self.net, t["weight_decay"])
        if t["optimizer"] == "rmsprop":
            return torch.optim.RMSprop(groups, lr=self.lr, alpha=t["rmsprop_alpha"], eps=t["rmsprop_eps"],
                                       momentum=t["momentum"])
        return torch.optim.SGD(groups, lr=self.lr, momentum=t["momentum"], nesterov=t["nesterov"])

    # ------------------------------------------------------------------ the step
    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def _student_input(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_to(x, self.net.resolution)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def loss(self, logits: torch.Tensor, y: torch.Tensor,
             x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Label-smoothed cross-entropy, mixed with the teacher's soft targets when there is one.

        `x` is the batch at the dataset's size: the teacher resizes it to its own resolution."""
        t = self.cfg["train"]
        label = label_smoothing_ce(logits, y, t["label_smoothing"])
        if self.teacher is None:
            return label, {}
        with self._autocast():
            teacher_logits = self.teacher(x)
        temp, w = t["distill_temperature"], t["distill_weight"]
        # T^2 keeps the soft-target gradients' scale independent of the temperature (Hinton et al.)
        soft = soft_target_ce(logits.float() / temp, torch.softmax(teacher_logits / temp, dim=-1)) * temp ** 2
        return (1 - w) * label + w * soft, {"loss_label": label.detach(), "loss_distill": soft.detach()}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on a batch (on the device, at the dataset's image size); the losses
        stay on the device."""
        t = self.cfg["train"]
        self.model.train()
        with self._autocast():
            logits = self.model(self._student_input(x))
        loss, parts = self.loss(logits, y, x)
        loss.backward()
        if t["grad_clip"]:
            torch.nn.utils.clip_grad_value_(self.net.parameters(), t["grad_clip"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.net)
        self.step += 1
        return {"loss": loss.detach(), **parts}

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """Train to the end of the schedule (or `train.max_steps`), evaluate, write result.json and
        RUN/export; returns the result (on every rank)."""
        if self.resume:
            self._load()
        log = open_run(self.run_dir, self.cfg, self.resume, total=self.stop_step, initial=self.step)
        try:
            log.info(f"{self.space.name} Arch of {float(self.cost.mflops(self.arch)):.1f} MFLOPs at "
                     f"{self.net.resolution} px from {self.origin} ({self.data.describe()}); "
                     f"{self.info.world_size} process(es) on {self.device.type}, {self.steps_per_epoch} steps per "
                     f"epoch, {self.stop_step} steps, lr {self.lr:g}, stochastic depth {self.drop_path:g}"
                     + (f", distilling from '{self.cfg['train']['teacher']}'" if self.teacher else ""))
            self._train(log)
            self.loader.close()
            result = self._finish(log)
        finally:
            self.loader.close()
            log.close()
        return result

    def _train(self, log: RunLogger) -> None:
        every, eval_every = self.cfg["log"]["every_steps"], self.cfg["eval"]["every_epochs"]
        t0, seconds0, seen = time.perf_counter(), self.seconds, 0
        means = DeviceMeans()
        while self.step < self.stop_step:
            epoch, start = divmod(self.step, self.steps_per_epoch)
            for x, y in self.loader.epoch(epoch, start):
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                means.add(**self.train_step(x, y))
                seen += x.shape[0] * self.info.world_size
                self.seconds = seconds0 + time.perf_counter() - t0
                img_s = seen / (self.seconds - seconds0)
                end_of_epoch = self.step % self.steps_per_epoch == 0
                log_now = self.step % every == 0 or self.step == self.stop_step
                save_now = end_of_epoch or self.step % self.cfg["checkpoint"]["every_steps"] == 0 \
                    or self.step == self.stop_step
                if log_now or save_now:  # read before saving: a non-finite loss must not reach a checkpoint
                    values = means.read(reset=log_now)
                    require_finite(values, self.step, "train.lr")
                log.progress(1, **({"loss": f"{values['loss']:.3f}", "img_s": f"{img_s:.0f}"} if log_now else {}))
                if log_now:
                    log.metrics(self.step, {**values, "lr": self.optimizer.param_groups[0]["lr"], "epoch": epoch,
                                            "images_per_s": img_s})
                if save_now:
                    self._save()
                if end_of_epoch and eval_every and (self.step // self.steps_per_epoch) % eval_every == 0 \
                        and self.step < self.stop_step:  # the last evaluation is _finish's
                    self._log_validation(log)
                if self.step >= self.stop_step:
                    break

    # ------------------------------------------------------------------ evaluation and results
    def _evaluate(self, model: StaticNet) -> dict[str, float]:
        """Top-1 / top-5 on val, the split shared out over ranks and the counts averaged back."""
        e, total = self.cfg["eval"], len(self.data.val)
        rows = np.arange(total)
        if e["max_batches"] is not None:  # evenly spread: val files are often sorted by class
            rows = np.unique(np.linspace(0, total - 1, min(total, e["max_batches"] * e["batch_size"])).astype(int))
        mine = Subset(self.data.val, rows[self.info.rank::self.info.world_size].tolist())
        # a DataLoader's iterator draws from the global RNG: evaluating must not shift training's
        with torch.random.fork_rng(devices=[]), self._autocast():
            r = evaluate_model(model, mine, e["batch_size"], self.device, model.resolution)
        counts = torch.tensor([r["top1"] * r["images"], r["top5"] * r["images"], r["images"]],
                              dtype=torch.float64, device=self.device)
        hit1, hit5, images = dist.all_reduce_mean_(counts).tolist()
        return {"top1": hit1 / max(images, 1), "top5": hit5 / max(images, 1)}

    def validate(self) -> dict[str, float]:
        """{"top1", "top5"} of the trained weights and, with an EMA, {"top1_ema", "top5_ema"}."""
        res = self._evaluate(self.net)
        if self.ema is not None:
            res.update({f"{k}_ema": v for k, v in self._evaluate(self.ema.module).items()})
        return res

    def _log_validation(self, log: RunLogger) -> dict[str, float]:
        res = self.validate()
        log.metrics(self.step, res, kind="val")
        log.info(f"step {self.step} (epoch {self.step / self.steps_per_epoch:.2f}): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
        return res

    def _export_choice(self, res: Mapping[str, float]) -> str:
        choice = self.cfg["ema"]["export"] if self.ema is not None else "raw"
        if choice == "best":
            choice = "ema" if res["top1_ema"] >= res["top1"] else "raw"
        return choice

    def _finish(self, log: RunLogger) -> dict[str, Any]:
        dist.barrier()
        res = self._log_validation(log)
        weights = self._export_choice(res)
        model = self.ema.module if weights == "ema" else self.net
        suffix = "_ema" if weights == "ema" else ""
        out = self.run_dir / "export"
        t = self.cfg["train"]
        result = {
            "top1": res["top1" + suffix], "top5": res["top5" + suffix], "weights": weights,
            "top1_raw": res["top1"], "top5_raw": res["top5"],
            "top1_ema": res.get("top1_ema"), "top5_ema": res.get("top5_ema"),
            "epochs": round(self.step / self.steps_per_epoch, 3), "steps": self.step,
            "seconds": round(self.seconds, 3), "mflops": float(self.cost.mflops(self.arch)),
            "params": int(self.cost.params(self.arch)), "resolution": self.net.resolution,
            "num_classes": self.data.num_classes, "arch": self.arch.to_dict(), "space": self.space.name,
            "space_definition": self.space.definition, "init": self.cfg["init"], "teacher": t["teacher"],
            "run_dir": str(self.run_dir), "export": str(out),
        }
        if self.info.is_main:
            write_export(model, self.space, self.arch, self.data, out)
            atomic_write_text(self.run_dir / "result.json", json.dumps(result, indent=2) + "\n")
            log.info(f"top-1 {result['top1']:.2f} ({weights} weights); exported to {out}")
        dist.barrier()
        return result

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> None:
        if not self.info.is_main:
            return
        save_checkpoint(self.run_dir, {
            "kind": "standalone", "step": self.step, "seconds": self.seconds, "model": self.net.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": rng_states(), "config": self.cfg, "arch": self.arch.to_dict(),
            "space_definition": self.space.definition, "num_classes": self.data.num_classes,
            "world_size": self.info.world_size,
        })

    def _load(self) -> None:
        ck = load_checkpoint(self.run_dir)
        if ck.get("kind") != "standalone":
            raise SupernasError(f"the checkpoint in '{self.run_dir}' is not from `supernas retrain` or `finetune`; "
                                "point run.dir at such a run")
        if ck["world_size"] != self.info.world_size:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' was written by {ck['world_size']} process(es); "
                                f"resume with the same number (now {self.info.world_size}) so the data order holds")
        if ck["arch"] != self.arch.to_dict() or ck["space_definition"] != self.space.definition:
            raise SupernasError(f"the run in '{self.run_dir}' trains another Arch than the one given now; resume "
                                "with the same ARCH (or MODEL) and space")
        if (ck["ema"] is None) != (self.ema is None):
            had = "without" if ck["ema"] is None else "with"
            raise SupernasError(f"the run in '{self.run_dir}' was started {had} an EMA; resume with the same "
                                "ema.decay setting")
        self.net.load_state_dict(ck["model"])
        if self.ema is not None:
            self.ema.load_state_dict(ck["ema"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        set_rng_states(ck["rng"])
        self.step, self.seconds = ck["step"], ck["seconds"]


# ---------------------------------------------------------------------------- the two commands
def _config(defaults: Mapping[str, Any], config: "str | Path | Mapping[str, Any] | None", overrides: Iterable[str],
            given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, a YAML file (or mapping), what the command line names (ARCH / MODEL), then overrides."""
    path, data = (None, dict(config)) if isinstance(config, Mapping) else (config, {})
    return load_config(defaults, path, overrides, data={**data, **given})


def retrain(arch: Any, config: "str | Path | Mapping[str, Any] | None" = None, overrides: Iterable[str] = (),
            resume: bool = False) -> dict[str, Any]:
    """Train `arch` (see `resolve_arch`) from scratch; returns the result (also RUN/result.json)."""
    if isinstance(arch, Arch):
        arch = arch.to_dict()
    elif isinstance(arch, Path):
        arch = str(arch)
    cfg = _config(DEFAULTS, config, overrides, {"arch": arch})
    return StandaloneTrainer(cfg, resume=resume).fit()


def finetune(model_dir: "str | Path", config: "str | Path | Mapping[str, Any] | None" = None,
             overrides: Iterable[str] = (), resume: bool = False) -> dict[str, Any]:
    """Train the model exported in `model_dir` further (`FINETUNE_DEFAULTS`: short, low rate, no
    warm-up); `train.teacher=SUPERNET_RUN` distils from the supernet's largest Arch."""
    cfg = _config(FINETUNE_DEFAULTS, config, overrides, {"init": str(model_dir)})
    return StandaloneTrainer(cfg, resume=resume).fit()
