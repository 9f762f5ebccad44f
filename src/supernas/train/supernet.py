"""AttentiveNAS stage 1: train a weight-sharing supernet with the sandwich rule, in-place
distillation and (attentive) Arch sampling, as a task of `supernas.runtime.loop`.

One step on a batch: the largest Arch learns from the labels (label smoothing, dropout and
stochastic depth only here; by default, as the reference, stochastic depth only in the last two
stages), then `num_arch_training - 2` sampled Archs and the smallest learn from the largest's
predictions; gradients of all of them accumulate, are averaged over ranks once, clipped, and one
SGD step follows. Only one subnet's activations live at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, cast

import torch

from ..config import SupernetConfig, load_config
from ..data import build_datasets
from ..errors import SupernasError
from ..evaluation import Evaluator
from ..nn import SuperNet
from ..nn.calibrate import frozen_bn_stats
from ..runtime import distributed as ddp
from ..runtime.checkpoint import require_same_space
from ..runtime.data_order import ResumableLoader, ResumableSampler
from ..runtime.logging import RunLogger
from ..runtime.loop import Loop, Schedule
from ..runtime.losses import label_smoothing_ce, soft_target_ce
from ..runtime.optim import run_length, scaled_lr, step_accumulated
from ..runtime.precision import autocast
from ..runtime.task import Task
from ..sampling import AttentiveSampler, Candidates, Prefetcher, SamplerContext, build_sampler
from ..spaces import Arch, CostModel, SearchSpace, get_space
from .fixed_graphs import FixedArchGraphs
from .parts import WeightParts, weight_parts


class SupernetTrainer(Task):
    """Stage 1 as an object: `SupernetTrainer(config).fit()` trains and returns the run directory.

    `config` is a `SupernetConfig` or a mapping over its defaults; `resume=True` continues the run
    in `run.dir` from its checkpoint. `parts` (train.parts.WeightParts) replace the supernet, optimizer
    and schedule the config would build (benches and tests bring their own).
    """

    def __init__(self, config: "SupernetConfig | Mapping[str, Any]", resume: bool = False,
                 parts: WeightParts[SuperNet] | None = None):
        self.cfg = config if isinstance(config, SupernetConfig) else load_config(SupernetConfig, data=config)
        run, t = self.cfg.run, self.cfg.train
        self.set_up_run(run, resume, fixed_shapes=False)
        cuda = self.device.type == "cuda"

        self.data = build_datasets(self.cfg.data)
        self.space: SearchSpace = get_space(self.cfg.space)
        self.cost = CostModel(self.space, self.data.num_classes)
        rows = ResumableSampler(self.data.train, t.batch_size, run.seed, self.info.rank, self.info.world_size)
        self.loader = ResumableLoader(self.data.train, rows, run.seed, t.batch_size, t.workers, pin_memory=cuda)
        self.steps_per_epoch = rows.batches_per_epoch
        self.total_steps, self.stop_step = run_length(t.epochs, self.steps_per_epoch, t.max_steps)
        self.lr = scaled_lr(t.lr, t.batch_size * self.info.world_size)
        parts = parts or weight_parts(t, self.space, self.data.num_classes, self.device, self.channels_last, self.lr,
                                      self.total_steps, self.steps_per_epoch)
        self.net, self.optimizer, self.scheduler = parts.net, parts.optimizer, parts.scheduler
        self.net.set_drop_path_scope(t.drop_path_scope)
        self.arch_sampler = build_sampler(self.cfg.sampler, SamplerContext(self.space, self.cost, run.seed,
                                                                           self.minibatch_losses))
        self.step = 0
        self.seconds = 0.0
        self.last_archs: list[Arch] = []
        self._ahead: Prefetcher | None = None
        self._sampler_state: dict[str, Any] | None = None
        self._batch_for_scoring: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        # the passes of the step: the largest and smallest Archs' from CUDA graphs with train.cuda_graphs
        self.passes = FixedArchGraphs(t.cuda_graphs, self.amp_dtype, {self.space.largest(), self.space.smallest()})

    # ------------------------------------------------------------------ the step
    def train_step(self, x: torch.Tensor, y: torch.Tensor,
                   middle: Sequence[Arch | Callable[[], Arch]] | None = None) -> dict[str, torch.Tensor]:
        """One sandwich step on a batch; `middle` are the sampled Archs (or thunks choosing them once
        the largest's predictions exist, for attentive sampling), drawn from the run's sampler when
        None. Returns the losses as device scalars (the loop reads them when it logs)."""
        t = self.cfg.train
        if middle is None:
            middle = self._draw_middle()
        net = self.net
        net.train()
        largest, smallest = self.space.largest(), self.space.smallest()
        logits = self.passes(net, x, largest, dropout=t.dropout, drop_path=t.drop_path)
        with self._autocast():
            loss = label_smoothing_ce(logits, y, t.label_smoothing)
        loss.backward()
        teacher = torch.softmax(logits.detach().float(), dim=-1)
        self._batch_for_scoring = (x, y, teacher)
        del logits
        archs = [m() if callable(m) else m for m in middle] + [smallest]
        distill = torch.zeros((), device=x.device)
        for arch in archs:
            logits = self.passes(net, x, arch)
            with self._autocast():
                student = soft_target_ce(logits, teacher)
            student.backward()
            distill += student.detach()
        self._batch_for_scoring = None
        step_accumulated(net, self.optimizer, self.scheduler, t.grad_clip)
        if self._ahead is not None:
            self._sampler_state = self._ahead.state_dict()
        self.last_archs = [largest] + archs
        return {"loss": loss.detach(), "loss_distill": distill / len(archs)}

    def minibatch_losses(self, archs: Sequence[Arch]) -> list[float]:
        """The attentive sampler's scores: each candidate's loss on the current batch against the
        labels (`sampler.loss_against: labels`, the reference's criterion: cross-entropy with the
        training's label smoothing) or against the largest Arch's predictions (`teacher`: the
        distillation loss the candidate will train on), without gradients or moving BN statistics,
        averaged over ranks (one all-reduce for all candidates) so that all ranks choose alike."""
        assert self._batch_for_scoring is not None, "scoring happens inside a training step"
        x, y, teacher = self._batch_for_scoring
        against_labels = self.cfg.sampler.loss_against == "labels"
        smoothing = self.cfg.train.label_smoothing
        with torch.no_grad(), frozen_bn_stats(self.net), self._autocast():
            logits = [self.net(x, a) for a in archs]
            losses = torch.stack([(label_smoothing_ce(z, y, smoothing) if against_labels
                                   else soft_target_ce(z, teacher)).float() for z in logits])
        return ddp.all_reduce_mean_(losses).tolist()  # the one host read a step may make: the choice needs it

    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def _draw_middle(self) -> list[Arch | Callable[[], Arch]]:
        """The step's sampled Archs, drawn ahead on a thread (started at the first step, after a
        resume has restored the sampler); an attentive draw is a thunk that scores its candidates
        on the batch."""
        per_step = self.cfg.train.num_arch_training - 2
        if not per_step:
            return []
        if self._ahead is None:
            s = self.arch_sampler
            draw = s.propose if isinstance(s, AttentiveSampler) else s.sample
            self._ahead = Prefetcher(draw, depth=max(1, self.cfg.sampler.prefetch) * per_step,
                                     state_fn=s.state_dict)
        drawn = [self._ahead.get() for _ in range(per_step)]
        if isinstance(self.arch_sampler, AttentiveSampler):
            # the default c=c binds each candidate set; the thunk is called with no argument
            return [cast("Callable[[], Arch]", lambda c=c: self.arch_sampler.choose(c)) if isinstance(c, Candidates)
                    else c for c in drawn]
        return drawn

    # ------------------------------------------------------------------ the task of the loop
    def fit(self) -> Path:
        return self.loop().run(self.resume)

    def loop(self) -> Loop:
        """The loop that runs this training (`fit`, or `runtime.dry_run` for an estimate)."""
        c = self.cfg
        schedule = Schedule(self.steps_per_epoch, self.stop_step, c.log.every_steps, c.checkpoint.every_steps,
                            c.eval.every_epochs, validate_at_end=True, lr_key="train.lr")
        return Loop(self, self.run_dir, c, self.loader, self.device, schedule, self.channels_last)

    def header(self) -> str:
        return (f"supernet on {self.space.name} ({self.data.describe()}); {self.info.world_size} process(es) on "
                f"{self.device.type}, {self.steps_per_epoch} steps per epoch, {self.total_steps} in all, "
                f"lr {self.lr:g}, sampler {self.cfg.sampler.kind}")

    def log_extra(self, epoch: int) -> dict[str, Any]:
        return {"lr": self.optimizer.param_groups[0]["lr"],
                "mflops": [round(float(m), 1) for m in self.cost.mflops(self.last_archs)]}

    def _validator(self) -> Evaluator:
        e = self.cfg.eval
        return Evaluator(self.net, self.data, self.device, bn_batches=e.bn_batches, batch_size=e.batch_size,
                         split="val", max_batches=e.max_batches, amp_dtype=self.amp_dtype,
                         channels_last=self.channels_last)

    def validation_plan(self) -> tuple[str, int]:
        evaluator = self._validator()
        bn, scoring = evaluator.batches_per_arch()
        return (f"the smallest and largest Archs, each after BatchNorm re-calibration on {bn} batches"
                f"{evaluator.calibration_note()}: top-1 on {evaluator.images_per_arch()} val images",
                2 * (bn + scoring))

    def validate(self) -> dict[str, float]:
        """Top-1 on val of the smallest and largest Archs after BN re-calibration (by the stage-2
        Evaluator, which leaves the supernet's statistics and the random streams as they were)."""
        smallest, largest = self._validator().evaluate_many([self.space.smallest(), self.space.largest()])
        self.net.train()
        return {"top1_smallest": smallest["top1"], "top1_largest": largest["top1"]}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "sampler": self._sampler_state or self.arch_sampler.state_dict(),
                "space": self.cfg.space, "space_definition": self.space.definition,
                "num_classes": self.data.num_classes}

    def load_state_dict(self, ck: Mapping[str, Any]) -> None:
        if "optimizer" not in ck:
            raise SupernasError(f"'{self.run_dir}' holds imported weights, not an interrupted training run, so there "
                                "is nothing to resume; run stage 2 on it (search, predictor, export)")
        if "sampler" not in ck:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' is not from `supernas train`; point run.dir at "
                                "a supernet run")
        require_same_space(ck, self.space, self.run_dir)
        self.net.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.arch_sampler.load_state_dict(ck["sampler"])

    def finish(self, log: RunLogger) -> Path:
        return self.run_dir

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
