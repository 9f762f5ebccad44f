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
(arch.json, state_dict.pt, manifest.json), so `supernas eval RUN/export --data ...` evaluates it.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from ..config import FinetuneConfig, RetrainConfig, load_config
from ..data import build_datasets
from ..deliver.export import save_export
from ..errors import SupernasError
from ..evaluation.static_models import evaluate_model, load_exported
from ..nn import StaticNet, SuperNet
from ..nn.static import resize_to
from ..runtime import distributed as ddp
from ..runtime.data_order import ResumableLoader, ResumableSampler
from ..runtime.logging import RunLogger
from ..runtime.loop import Loop, Schedule
from ..runtime.losses import label_smoothing_ce, soft_target_ce
from ..runtime.optim import param_groups, run_length, scaled_lr, warmup_cosine_scheduler
from ..runtime.precision import autocast
from ..runtime.task import Task
from ..spaces import Arch, CostModel, SearchSpace, get_space
from ..utils.file_names import RESULT
from ..utils.io import atomic_write_text
from .arch_source import resolve_arch
from .ema import ModelEma
from .parts import WeightParts
from .teacher import Teacher, load_teacher

# Section C trains the large FP-NAS models (the L spaces) with stochastic depth "as EfficientNet"
# without giving the rate: EfficientNet's 0.2. The small models lost accuracy with it.
FPNAS_LARGE_SPACES = ("fpnas-l0", "fpnas-l1", "fpnas-l2")
FPNAS_LARGE_DROP_PATH = 0.2

# ---------------------------------------------------------------------------- export
def write_export(model: StaticNet, space: SearchSpace, arch: Arch, data, out_dir: "str | Path") -> Path:
    """`out_dir`/arch.json, state_dict.pt and manifest.json in the format of `supernas export`; returns
    state_dict.pt."""
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
def _require_something_to_train(cfg: RetrainConfig) -> None:
    """An Arch or an export to start from: the one thing a standalone run must be given (the rules
    between its settings are the schema's, `RetrainConfig.check`)."""
    if cfg.arch is None and cfg.init is None:
        raise SupernasError("nothing to train: give ARCH (`supernas retrain ARCH`) or an export to start from "
                            "(`supernas finetune MODEL`)")


def _export_weights(folder: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, arch.json) of the export directory a finetune starts from."""
    if not Path(str(folder)).expanduser().is_dir():
        raise SupernasError(f"'{folder}' is not an export directory (a file, or nothing); give a directory written "
                            "by `supernas export`, or RUN/export of `supernas retrain`")
    model, meta = load_exported(folder)
    return model.state_dict(), meta


class StandaloneTrainer(Task):
    """`StandaloneTrainer(config).fit()` trains one Arch and returns its result (also RUN/result.json).

    `config` is a `RetrainConfig` / `FinetuneConfig`, or a mapping over RetrainConfig's defaults,
    naming the Arch (`arch`, from scratch) or an export to start from (`init`); `resume=True`
    continues the run in `run.dir` exactly. `parts` (train.parts.WeightParts: the Arch's StaticNet
    on the run's device, its optimizer and schedule) are used instead of being built; the config's
    dropout and stochastic depth are set on the given net as on a built one.
    """

    def __init__(self, config: "RetrainConfig | Mapping[str, Any]", resume: bool = False,
                 parts: WeightParts[StaticNet] | None = None):
        self.cfg = config if isinstance(config, RetrainConfig) else load_config(RetrainConfig, data=config)
        _require_something_to_train(self.cfg)
        run, t = self.cfg.run, self.cfg.train
        self.set_up_run(run, resume, fixed_shapes=True)
        cuda = self.device.type == "cuda"

        self.data = build_datasets(self.cfg.data)
        self.net, self.space, self.arch, self.origin = self._build_net(parts.net if parts else None)
        self.cost = CostModel(self.space, self.data.num_classes)
        self.ema = ModelEma(self.net, self.cfg.ema.decay, self.cfg.ema.warmup) if self.cfg.ema.decay is not None \
            else None
        self.model: nn.Module = self.net
        if self.info.enabled:
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=[self.device] if cuda else None)

        rows = ResumableSampler(self.data.train, t.batch_size, self.seed, self.info.rank, self.info.world_size)
        self.loader = ResumableLoader(self.data.train, rows, self.seed, t.batch_size, t.workers, pin_memory=cuda)
        self.steps_per_epoch = rows.batches_per_epoch
        self.total_steps, self.stop_step = run_length(t.epochs, self.steps_per_epoch, t.max_steps)
        self.lr = scaled_lr(t.lr, t.batch_size * self.info.world_size)
        if parts is not None:
            self.optimizer, self.scheduler = parts.optimizer, parts.scheduler
        else:
            self.optimizer = self._optimizer()
            self.scheduler = warmup_cosine_scheduler(self.optimizer, self.total_steps,
                                                     t.warmup_epochs * self.steps_per_epoch, t.final_lr_ratio)
        self.teacher: Teacher | None = None
        if t.teacher:
            with torch.random.fork_rng(devices=[]):  # distilling or not, the student's random stream is the same
                self.teacher = load_teacher(t.teacher, self.data, self.device, t.teacher_bn_batches,
                                            self.channels_last)
        self.step = 0
        self.seconds = 0.0

    # ------------------------------------------------------------------ the model
    def _build_net(self, given: StaticNet | None) -> tuple[StaticNet, SearchSpace, Arch, str]:
        """The StaticNet of the Arch: the net `given` (on the run's device and layout), or one built
        fresh (initialised as the supernet is, sliced) or with the weights of `init`; then the
        regularisers of the config, which the run's header reports."""
        t, init = self.cfg.train, self.cfg.init
        weights = _export_weights(init) if init is not None and given is None else None
        space, arch = resolve_arch(init if init is not None else self.cfg.arch, self.cfg.space)
        if given is not None:
            net, origin = given, "the weights given"
        else:
            net = SuperNet(space, self.data.num_classes).extract(arch)
            origin = "fresh weights" if weights is None else self._load_init(net, init, *weights)
            net = net.to(self.device)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
        self.drop_path = drop_path_for(t.drop_path, space)
        net.set_drop_path(self.drop_path)
        net.dropout.p = t.dropout
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
        t = self.cfg.train
        groups = param_groups(self.net, t.weight_decay)
        if t.optimizer == "rmsprop":
            return torch.optim.RMSprop(groups, lr=self.lr, alpha=t.rmsprop_alpha, eps=t.rmsprop_eps,
                                       momentum=t.momentum)
        return torch.optim.SGD(groups, lr=self.lr, momentum=t.momentum, nesterov=t.nesterov)

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
        t = self.cfg.train
        label = label_smoothing_ce(logits, y, t.label_smoothing)
        if self.teacher is None:
            return label, {}
        with self._autocast():
            teacher_logits = self.teacher(x)
        temp, w = t.distill_temperature, t.distill_weight
        # T^2 keeps the soft-target gradients' scale independent of the temperature (Hinton et al.)
        soft = soft_target_ce(logits.float() / temp, torch.softmax(teacher_logits / temp, dim=-1)) * temp ** 2
        return (1 - w) * label + w * soft, {"loss_label": label.detach(), "loss_distill": soft.detach()}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on a batch (on the device, at the dataset's image size); the losses
        stay on the device."""
        t = self.cfg.train
        self.model.train()
        with self._autocast():
            logits = self.model(self._student_input(x))
        loss, parts = self.loss(logits, y, x)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_value_(self.net.parameters(), t.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.net)
        return {"loss": loss.detach(), **parts}

    # ------------------------------------------------------------------ the task of the loop
    def fit(self) -> dict[str, Any]:
        """Train to the end of the schedule (or `train.max_steps`), evaluate, write result.json and
        RUN/export; returns the result (on every rank)."""
        return self.loop().run(self.resume)

    def loop(self) -> Loop:
        """The loop that runs this training (`fit`, or `runtime.dry_run` for an estimate)."""
        c = self.cfg
        # the last evaluation is finish's, which also picks the weights to export
        schedule = Schedule(self.steps_per_epoch, self.stop_step, c.log.every_steps, c.checkpoint.every_steps,
                            c.eval.every_epochs, validate_at_end=False, lr_key="train.lr")
        return Loop(self, self.run_dir, c, self.loader, self.device, schedule)

    def header(self) -> str:
        return (f"{self.space.name} Arch of {float(self.cost.mflops(self.arch)):.1f} MFLOPs at "
                f"{self.net.resolution} px from {self.origin} ({self.data.describe()}); "
                f"{self.info.world_size} process(es) on {self.device.type}, {self.steps_per_epoch} steps per "
                f"epoch, {self.stop_step} steps, lr {self.lr:g}, stochastic depth {self.drop_path:g}"
                + (f", distilling from '{self.cfg.train.teacher}'" if self.teacher else ""))

    def log_extra(self, epoch: int) -> dict[str, Any]:
        return {"lr": self.optimizer.param_groups[0]["lr"]}

    # ------------------------------------------------------------------ evaluation and results
    def _evaluate(self, model: StaticNet) -> dict[str, float]:
        """Top-1 / top-5 on val, the split shared out over ranks and the counts averaged back."""
        e, total = self.cfg.eval, len(self.data.val)
        rows = np.arange(total)
        if e.max_batches is not None:  # evenly spread: val files are often sorted by class
            rows = np.unique(np.linspace(0, total - 1, min(total, e.max_batches * e.batch_size)).astype(int))
        mine = Subset(self.data.val, rows[self.info.rank::self.info.world_size].tolist())
        # a DataLoader's iterator draws from the global RNG: evaluating must not shift training's
        with torch.random.fork_rng(devices=[]), self._autocast():
            # evaluate_model's `device` is annotated str, but it only passes it to .to(), which takes a torch.device
            r = evaluate_model(model, mine, e.batch_size, self.device, model.resolution)
        counts = torch.tensor([r["top1"] * r["images"], r["top5"] * r["images"], r["images"]],
                              dtype=torch.float64, device=self.device)
        hit1, hit5, images = ddp.all_reduce_mean_(counts).tolist()
        return {"top1": hit1 / max(images, 1), "top5": hit5 / max(images, 1)}

    def validation_plan(self) -> tuple[str, int]:
        e = self.cfg.eval
        val = len(self.data.val) if e.max_batches is None else min(len(self.data.val), e.max_batches * e.batch_size)
        models = 1 if self.ema is None else 2
        return (f"top-1 of the {'raw and EMA weights' if self.ema is not None else 'weights'} on {val} val images",
                models * -(-val // e.batch_size))

    def validate(self) -> dict[str, float]:
        """{"top1", "top5"} of the trained weights and, with an EMA, {"top1_ema", "top5_ema"}."""
        res = self._evaluate(self.net)
        if self.ema is not None:
            # the EMA's module is a copy of self.net, a StaticNet
            res.update({f"{k}_ema": v for k, v in self._evaluate(cast(StaticNet, self.ema.module)).items()})
        return res

    def _log_validation(self, log: RunLogger) -> dict[str, float]:
        res = self.validate()
        log.metrics(self.step, res, kind="val")
        log.info(f"step {self.step} (epoch {self.step / self.steps_per_epoch:.2f}): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
        return res

    def _export_choice(self, res: Mapping[str, float]) -> str:
        choice = self.cfg.ema.export if self.ema is not None else "raw"
        if choice == "best":
            choice = "ema" if res["top1_ema"] >= res["top1"] else "raw"
        return choice

    def finish(self, log: RunLogger) -> dict[str, Any]:
        ddp.barrier()
        log.info(f"final validation at step {self.step}: {self.validation_plan()[0]}; then the export to "
                 f"{self.run_dir / 'export'}")
        res = self._log_validation(log)
        weights = self._export_choice(res)
        # "ema" only when there is an EMA (_export_choice), whose module is a copy of self.net, a StaticNet
        model = cast(StaticNet, cast(ModelEma, self.ema).module) if weights == "ema" else self.net
        suffix = "_ema" if weights == "ema" else ""
        out = self.run_dir / "export"
        result = {
            "top1": res["top1" + suffix], "top5": res["top5" + suffix], "weights": weights,
            "top1_raw": res["top1"], "top5_raw": res["top5"],
            "top1_ema": res.get("top1_ema"), "top5_ema": res.get("top5_ema"),
            "epochs": round(self.step / self.steps_per_epoch, 3), "steps": self.step,
            "seconds": round(self.seconds, 3), "mflops": float(self.cost.mflops(self.arch)),
            "params": int(self.cost.params(self.arch)), "resolution": self.net.resolution,
            "num_classes": self.data.num_classes, "arch": self.arch.to_dict(), "space": self.space.name,
            "space_definition": self.space.definition, "init": self.cfg.init, "teacher": self.cfg.train.teacher,
            "run_dir": str(self.run_dir), "export": str(out),
        }
        if self.info.is_main:
            write_export(model, self.space, self.arch, self.data, out)
            atomic_write_text(self.run_dir / RESULT, json.dumps(result, indent=2) + "\n")
            # the figures are in the validation line above and in the command's summary line
            log.info(f"exported the {weights} weights to {out}")
        ddp.barrier()
        return result

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"kind": "standalone", "model": self.net.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "arch": self.arch.to_dict(), "space_definition": self.space.definition,
                "num_classes": self.data.num_classes}

    def load_state_dict(self, ck: Mapping[str, Any]) -> None:
        if ck.get("kind") != "standalone":
            raise SupernasError(f"the checkpoint in '{self.run_dir}' is not from `supernas retrain` or `finetune`; "
                                "point run.dir at such a run")
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


# ---------------------------------------------------------------------------- the two commands
def _config(schema: type, config: "str | Path | Mapping[str, Any] | RetrainConfig | None",
            overrides: Iterable[str], given: Mapping[str, Any]) -> RetrainConfig:
    """The schema's defaults, a YAML file, a mapping or a config already built (a RetrainConfig /
    FinetuneConfig: what `load_config` returns), what the command line names (ARCH / MODEL), then
    overrides."""
    if isinstance(config, RetrainConfig):  # FinetuneConfig is one too: the exact type must match
        if type(config) is not schema:
            raise TypeError(f"config is a {type(config).__name__}; this command takes a {schema.__name__}")
        config = config.to_dict()  # validated again below with what the command line adds
    path, data = (None, dict(config)) if isinstance(config, Mapping) else (config, {})
    return load_config(schema, path, overrides, data={**data, **given})


def retrain_trainer(arch: Any, config: "str | Path | Mapping[str, Any] | RetrainConfig | None" = None,
                    overrides: Iterable[str] = (), resume: bool = False) -> StandaloneTrainer:
    """The trainer of `retrain` (its data, model and loaders built; nothing written yet)."""
    if isinstance(arch, Arch):
        arch = arch.to_dict()
    elif isinstance(arch, Path):
        arch = str(arch)
    return StandaloneTrainer(_config(RetrainConfig, config, overrides, {"arch": arch}), resume=resume)


def retrain(arch: Any, config: "str | Path | Mapping[str, Any] | RetrainConfig | None" = None,
            overrides: Iterable[str] = (), resume: bool = False) -> dict[str, Any]:
    """Train `arch` (see `resolve_arch`) from scratch; returns the result (also RUN/result.json)."""
    return retrain_trainer(arch, config, overrides, resume).fit()


def finetune_trainer(model_dir: "str | Path", config: "str | Path | Mapping[str, Any] | FinetuneConfig | None" = None,
                     overrides: Iterable[str] = (), resume: bool = False) -> StandaloneTrainer:
    """The trainer of `finetune` (its data, model and loaders built; nothing written yet)."""
    return StandaloneTrainer(_config(FinetuneConfig, config, overrides, {"init": str(model_dir)}), resume=resume)


def finetune(model_dir: "str | Path", config: "str | Path | Mapping[str, Any] | FinetuneConfig | None" = None,
             overrides: Iterable[str] = (), resume: bool = False) -> dict[str, Any]:
    """Train the model exported in `model_dir` further (`FinetuneConfig`: short, low rate, no
    warm-up); `train.teacher=SUPERNET_RUN` distils from the supernet's largest Arch."""
    return finetune_trainer(model_dir, config, overrides, resume).fit()
