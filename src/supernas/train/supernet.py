"""AttentiveNAS stage 1: train a weight-sharing supernet with the sandwich rule, in-place
distillation and (attentive) Arch sampling.

One step on a batch: the largest Arch learns from the labels (label smoothing, dropout and
stochastic depth only here, the latter by default in the last two stages as in the reference),
then `num_arch_training - 2` sampled Archs and the smallest learn from the largest's
predictions; gradients of all of them accumulate, are averaged over ranks once, clipped, and one
SGD step follows. Only one subnet's activations live at a time.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import load_config
from ..errors import SupernasError
from ..nn import SuperNet
from ..nn.supernet import DROP_PATH_SCOPES
from ..nn.calibrate import frozen_bn_stats
from ..spaces import Arch, CostModel, SearchSpace, get_space
from . import distributed as dist
from .checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from .engine import amp_dtype, autocast, data_defaults, open_run, param_groups
from .losses import label_smoothing_ce, soft_target_ce
from .resumable import ResumableSampler, resumable_loader
from .schedule import scaled_lr, warmup_cosine_scheduler

# What the attentive sampler's minibatch loss is measured against (sampler.loss_against).
LOSS_TARGETS = ("labels", "teacher")

DEFAULTS: dict[str, Any] = {
    "run": {"dir": "runs/supernet", "seed": 0, "device": "auto", "amp": "auto", "channels_last": "auto"},
    "space": "attentivenas",
    "data": None,  # filled below with supernas.data.DataConfig's fields (engine.data_defaults)
    "train": {
        "epochs": 360,
        "max_steps": None,  # stop after this many steps (quick runs); the schedule still spans `epochs`
        "batch_size": 32,  # per process
        "lr": 0.1,  # per 256 images, scaled linearly with the global batch
        "warmup_epochs": 5,
        "final_lr_ratio": 0.0,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 1.0e-5,  # on conv and linear weights; not on BatchNorm or biases
        "label_smoothing": 0.1,
        "dropout": 0.2,  # largest Arch only
        "drop_path": 0.2,  # largest Arch only
        "drop_path_scope": "last_two_stages",  # last_two_stages (the reference) | all_blocks
        "grad_clip": 1.0,  # clip each gradient value to [-c, c] (the reference); null: off
        "num_arch_training": 4,  # largest + sampled + smallest
        "workers": 4,
    },
    "sampler": {
        "kind": "attentive",  # uniform | flops | attentive | pareto
        "mode": "best",  # attentive, pareto: best (BestUp) | worst (WorstUp)
        "score": "loss",  # attentive: loss (minibatch) | predictor
        "loss_against": "labels",  # score loss: labels (the reference's CE) | teacher (distillation loss)
        "k": None,  # candidates per attentive step (default 3 for loss, 50 for predictor)
        "predictor": None,  # path of a saved accuracy predictor (score: predictor)
        "pareto_set": None,  # pareto: path of a pareto.json (offline best or worst set)
        "bin_width": 25.0,
        "n_prior": 1_000_000,
        "cache_dir": None,
        "prefetch": 8,
    },
    "eval": {"every_epochs": 1, "bn_batches": 64, "batch_size": 128, "max_batches": None},
    "log": {"every_steps": 20, "tensorboard": True, "progress": True},
    "checkpoint": {"every_steps": 500},
}


DEFAULTS["data"] = data_defaults()


@dataclass
class StepResult:
    loss_largest: float
    loss_distill: float
    archs: list[Arch]


class SupernetTrainer:
    """Stage 1 as an object: `SupernetTrainer(config).fit()` trains and returns the run directory.

    `config` is a mapping over `DEFAULTS` (see `load_config`); `resume=True` continues the run
    in `run.dir` from its checkpoint.
    """

    def __init__(self, config: Mapping[str, Any], resume: bool = False):
        self.cfg = load_config(DEFAULTS, data=config)
        self.info, self.device = dist.setup_distributed(self.cfg["run"]["device"])
        self.run_dir = Path(self.cfg["run"]["dir"]).expanduser()
        self.resume = resume
        run, t = self.cfg["run"], self.cfg["train"]
        cuda = self.device.type == "cuda"
        self.amp_dtype = amp_dtype(run["amp"], cuda)
        self.channels_last = cuda if run["channels_last"] == "auto" else bool(run["channels_last"])
        if t["num_arch_training"] < 2:
            raise SupernasError(f"train.num_arch_training must be at least 2 (largest and smallest), "
                                f"got {t['num_arch_training']}")
        torch.manual_seed(run["seed"])
        np.random.seed(run["seed"])

        from ..data import DataConfig, build_datasets

        self.data = build_datasets(DataConfig.from_dict(self.cfg["data"]))
        self.space: SearchSpace = get_space(self.cfg["space"])
        self.cost = CostModel(self.space, self.data.num_classes)
        self.net = SuperNet(self.space, self.data.num_classes).to(self.device)
        if t["drop_path_scope"] not in DROP_PATH_SCOPES:
            raise SupernasError(f"train.drop_path_scope must be one of {', '.join(DROP_PATH_SCOPES)}, "
                                f"got {t['drop_path_scope']!r}")
        self.net.set_drop_path_scope(t["drop_path_scope"])
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

        self.sampler_rows = ResumableSampler(self.data.train, t["batch_size"], run["seed"], self.info.rank,
                                             self.info.world_size)
        self.steps_per_epoch = self.sampler_rows.batches_per_epoch
        self.total_steps = t["epochs"] * self.steps_per_epoch
        self.stop_step = self.total_steps if t["max_steps"] is None else min(self.total_steps, t["max_steps"])
        global_batch = t["batch_size"] * self.info.world_size
        self.lr = scaled_lr(t["lr"], global_batch)
        self.optimizer = torch.optim.SGD(param_groups(self.net, t["weight_decay"]), lr=self.lr,
                                         momentum=t["momentum"], nesterov=t["nesterov"])
        self.scheduler = warmup_cosine_scheduler(self.optimizer, self.total_steps,
                                                 t["warmup_epochs"] * self.steps_per_epoch, t["final_lr_ratio"])
        self.arch_sampler = build_arch_sampler(self.cfg["sampler"], self.space, self.cost, run["seed"],
                                               losses_of=self.minibatch_losses)
        self.step = 0
        self._candidates = None
        self._batch_for_scoring: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ the step
    def train_step(self, x: torch.Tensor, y: torch.Tensor, middle: Sequence[Arch | Callable[[], Arch]]) -> StepResult:
        """One sandwich step on a batch; `middle` are the sampled Archs (or thunks choosing them once
        the largest's predictions exist, for attentive sampling)."""
        t = self.cfg["train"]
        net = self.net
        net.train()
        largest, smallest = self.space.largest(), self.space.smallest()
        with self._autocast():
            logits = net(x, largest, dropout=t["dropout"], drop_path=t["drop_path"])
            loss = label_smoothing_ce(logits, y, t["label_smoothing"])
        loss.backward()
        teacher = torch.softmax(logits.detach().float(), dim=-1)
        self._batch_for_scoring = (x, y, teacher)
        del logits
        archs = [m() if callable(m) else m for m in middle] + [smallest]
        distill = 0.0
        for arch in archs:
            with self._autocast():
                student = soft_target_ce(net(x, arch), teacher)
            student.backward()
            distill += float(student.detach())
        self._batch_for_scoring = None
        params = [p for p in net.parameters() if p.grad is not None]
        dist.all_reduce_grads(params)
        if t["grad_clip"]:
            torch.nn.utils.clip_grad_value_(params, t["grad_clip"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        return StepResult(float(loss.detach()), distill / len(archs), [largest] + archs)

    def minibatch_losses(self, archs: Sequence[Arch]) -> list[float]:
        """The attentive sampler's scores: each candidate's loss on the current batch against the
        labels (`sampler.loss_against: labels`, the reference's criterion: cross-entropy with the
        training's label smoothing) or against the largest Arch's predictions (`teacher`: the
        distillation loss the candidate will train on), without gradients or moving BN statistics,
        averaged over ranks (one all-reduce for all candidates) so that all ranks choose alike."""
        assert self._batch_for_scoring is not None, "scoring happens inside a training step"
        x, y, teacher = self._batch_for_scoring
        against_labels = self.cfg["sampler"]["loss_against"] == "labels"
        smoothing = self.cfg["train"]["label_smoothing"]
        with torch.no_grad(), frozen_bn_stats(self.net), self._autocast():
            logits = [self.net(x, a) for a in archs]
            losses = torch.stack([(label_smoothing_ce(z, y, smoothing) if against_labels
                                   else soft_target_ce(z, teacher)).float() for z in logits])
        return dist.all_reduce_mean_(losses).tolist()

    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    # ------------------------------------------------------------------ the loop
    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        t = self.cfg["train"]
        return resumable_loader(self.data.train, self.sampler_rows, self.cfg["run"]["seed"], epoch, start_batch,
                                t["batch_size"], t["workers"], self.device.type == "cuda")

    def fit(self) -> Path:
        from ..sampling import Prefetcher

        t = self.cfg["train"]
        if self.resume:
            self._load()
        log = open_run(self.run_dir, self.cfg, self.resume, total=self.stop_step, initial=self.step)
        log.info(f"supernet on {self.space.name} ({self.data.describe()}); {self.info.world_size} process(es) on "
                 f"{self.device.type}, {self.steps_per_epoch} steps per epoch, {self.total_steps} in all, "
                 f"lr {self.lr:g}, sampler {self.cfg['sampler']['kind']}")
        per_step = t["num_arch_training"] - 2
        draw = self._draw_fn()
        ahead = Prefetcher(draw, depth=max(1, self.cfg["sampler"]["prefetch"]) * max(1, per_step),
                           state_fn=self.arch_sampler.state_dict) if per_step else None
        eval_every = self.cfg["eval"]["every_epochs"]
        seen, t0, losses = 0, time.perf_counter(), []
        try:
            while self.step < self.stop_step:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                for x, y in self._loader(epoch, start):
                    x = x.to(self.device, non_blocking=True)
                    y = y.to(self.device, non_blocking=True)
                    if self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    middle = [self._chooser(ahead.get()) for _ in range(per_step)] if ahead else []
                    r = self.train_step(x, y, middle)
                    if ahead is not None:
                        self._sampler_state = ahead.state_dict()
                    losses.append(r.loss_largest)
                    seen += x.shape[0] * self.info.world_size
                    if not math.isfinite(r.loss_largest):
                        raise SupernasError(f"the loss became {r.loss_largest} at step {self.step}; lower train.lr "
                                            "or check the data")
                    log.progress(1, loss=f"{r.loss_largest:.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
                    if self.step % self.cfg["log"]["every_steps"] == 0 or self.step == self.stop_step:
                        log.metrics(self.step, {"loss": float(np.mean(losses)), "loss_distill": r.loss_distill,
                                                "lr": self.optimizer.param_groups[0]["lr"], "epoch": epoch,
                                                "images_per_s": seen / (time.perf_counter() - t0),
                                                "mflops": [round(float(m), 1) for m in self.cost.mflops(r.archs)]})
                        losses = []
                    end_of_epoch = self.step % self.steps_per_epoch == 0
                    if self.step % self.cfg["checkpoint"]["every_steps"] == 0 or self.step == self.stop_step:
                        self._save()
                    if (end_of_epoch and eval_every and (self.step // self.steps_per_epoch) % eval_every == 0) \
                            or self.step == self.stop_step:
                        res = self.validate()
                        log.metrics(self.step, res, kind="val")
                        log.info(f"step {self.step} (epoch {self.step / self.steps_per_epoch:.2f}): "
                                 + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
                    if self.step >= self.stop_step:
                        break
        finally:
            if ahead is not None:
                ahead.close()
            log.close()
        dist.barrier()
        return self.run_dir

    def _draw_fn(self):
        from ..sampling import AttentiveSampler

        s = self.arch_sampler
        if isinstance(s, AttentiveSampler):
            return s.propose
        return s.sample

    def _chooser(self, drawn):
        """An Arch, or for attentive sampling a thunk that scores the candidates on the batch."""
        from ..sampling import AttentiveSampler, Candidates

        if isinstance(self.arch_sampler, AttentiveSampler) and isinstance(drawn, Candidates):
            return lambda: self.arch_sampler.choose(drawn)
        return drawn

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Top-1 on val of the smallest and largest Archs after BN re-calibration (by the stage-2
        Evaluator, which leaves the supernet's statistics and the random streams as they were)."""
        from ..search.evaluate import Evaluator

        e = self.cfg["eval"]
        evaluator = Evaluator(self.net, self.data, self.device, bn_batches=e["bn_batches"],
                              batch_size=e["batch_size"], split="val", max_batches=e["max_batches"],
                              amp_dtype=self.amp_dtype, channels_last=self.channels_last)
        smallest, largest = evaluator.evaluate_many([self.space.smallest(), self.space.largest()])
        self.net.train()
        return {"top1_smallest": smallest["top1"], "top1_largest": largest["top1"]}

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> None:
        if not self.info.is_main:
            return
        save_checkpoint(self.run_dir, {
            "step": self.step, "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "sampler": getattr(self, "_sampler_state", None)
            or self.arch_sampler.state_dict(), "rng": rng_states(), "config": self.cfg,
            "space": self.cfg["space"],
            "num_classes": self.data.num_classes, "world_size": self.info.world_size,
        })

    def _load(self) -> None:
        ck = load_checkpoint(self.run_dir)
        if ck.get("world_size", 1) != self.info.world_size:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' was written by {ck['world_size']} process(es); "
                                f"resume with the same number (now {self.info.world_size}) so the data order holds")
        self.net.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.arch_sampler.load_state_dict(ck["sampler"])
        set_rng_states(ck["rng"])
        self.step = ck["step"]


def read_pareto_set(path: "str | Path", space: SearchSpace, cost: CostModel) -> list[tuple[Arch, float, float]]:
    """(Arch, MFLOPs, accuracy) triples from a pareto.json: a list of entries, or {"entries": [...]},
    each with an "arch" and its "accuracy" (MFLOPs are recomputed, so the file's own figures need
    not match this dataset)."""
    import json

    from ..spaces import load_arch

    p = Path(path).expanduser()
    if not p.is_file():
        raise SupernasError(f"Pareto set '{path}' does not exist; make one with `supernas search` "
                            "(pareto.json in its run directory)")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise SupernasError(f"Pareto set '{path}' is not valid JSON ({e.msg} at line {e.lineno})") from None
    entries = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "arch" in e for e in entries):
        raise SupernasError(f"Pareto set '{path}' must hold a non-empty list of entries with an 'arch' each")
    bad = next((i for i, e in enumerate(entries) if isinstance(e.get("accuracy"), bool)
                or not isinstance(e.get("accuracy"), (int, float))), None)
    if bad is not None:
        raise SupernasError(f"Pareto set '{path}': entry {bad} has no numeric 'accuracy', which picks the best "
                            "(or worst) member of a FLOPs bin; write the set with `supernas search` or "
                            "`supernas predictor offline-sets`")
    archs = [load_arch(space, e["arch"]) for e in entries]
    return list(zip(archs, (float(m) for m in cost.mflops(archs)), (float(e["accuracy"]) for e in entries)))


def build_arch_sampler(cfg: Mapping[str, Any], space: SearchSpace, cost: CostModel, seed: int,
                       losses_of: Callable[[Sequence[Arch]], Sequence[float]] | None = None):
    """The sampler of `cfg['kind']`, its generator seeded alike on every rank. `losses_of(archs)` is the
    trainer's minibatch loss, the score of attentive sampling by loss."""
    from .. import sampling

    kind = cfg["kind"]
    rng = np.random.default_rng([seed, 1])
    if kind == "uniform":
        return sampling.UniformSampler(space, rng)
    if kind == "pareto":
        if not cfg["pareto_set"]:
            raise SupernasError("sampler.kind=pareto needs sampler.pareto_set, the path of a pareto.json")
        if cfg["mode"] not in sampling.pareto.MODES:
            raise SupernasError(f"sampler.mode must be best (BestUp) or worst (WorstUp), got {cfg['mode']!r}")
        members = read_pareto_set(cfg["pareto_set"], space, cost)
        # Eqn (6)/(7): targets from the space's FLOPs prior, the same tables online sampling uses
        prior, _ = sampling.estimate_flops_tables(space, cost, cfg["n_prior"], bin_width=cfg["bin_width"],
                                                  cache_dir=cfg["cache_dir"])
        return sampling.ParetoSetSampler(space, members, prior, rng, mode=cfg["mode"])
    if kind not in ("flops", "attentive"):
        raise SupernasError(f"sampler.kind must be uniform, flops, attentive or pareto, got {kind!r}")
    base = sampling.FlopsConstrainedSampler(space, cost, rng, bin_width=cfg["bin_width"], n_prior=cfg["n_prior"],
                                            cache_dir=cfg["cache_dir"])
    if kind == "flops":
        return base
    if cfg["score"] == "loss":
        if cfg["loss_against"] not in LOSS_TARGETS:
            raise SupernasError(f"sampler.loss_against must be one of {', '.join(LOSS_TARGETS)} (what the candidates' "
                                f"minibatch loss is measured against), got {cfg['loss_against']!r}")
        if losses_of is None:
            raise SupernasError("sampler.score=loss needs the training loop's minibatch loss")
        scorer: Any = sampling.LossScorer(losses_of, batched=True)
    elif cfg["score"] == "predictor":
        if not cfg["predictor"]:
            raise SupernasError("sampler.score=predictor needs sampler.predictor, the path of a saved predictor")
        from ..predictors import load_predictor

        scorer = sampling.PredictorScorer(load_predictor(cfg["predictor"]), space)
    else:
        raise SupernasError(f"sampler.score must be loss or predictor, got {cfg['score']!r}")
    return sampling.AttentiveSampler(base, scorer, k=cfg["k"], mode=cfg["mode"])
