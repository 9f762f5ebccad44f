"""FP-NAS / PARSEC search: train the supernet on Archs drawn from a learnable distribution and
move the distribution towards Archs that explain held-out data well (and cost little).

One step: K Archs are drawn from the distribution (one torch.Generator, seeded and advanced
alike on every rank, so all ranks draw the same Archs). (a) Weight step on a train batch: each
Arch runs forward and backward in turn (only one Arch's activations live at a time), their
gradients combined by `search.weight_step` (the mean, or weighted by the Archs' normalised
likelihoods: see weight_step.py), averaged over ranks, one SGD step. (b) After the warm-up
(alpha frozen, so the Archs are uniform: Section E of the supplement), an architecture step on a
batch of the search split with the *same* K Archs (PARSEC's one-draw-per-iteration; it also
makes the samples count K per step):
their losses without gradient, averaged over ranks, become log-likelihoods, their MFLOPs the
costs, and `arch_loss` (Eqn (2)) is minimised by Adam on alpha.

FP-NAS: K follows the entropy (`adaptive_num_samples`) and the factorized distribution becomes
the equal joint one at `switch_epoch`. PARSEC: the joint distribution from the start, fixed K.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..config import FpnasConfig, load_config
from ..data import build_datasets
from ..errors import SupernasError
from ..evaluation import Evaluator
from ..evaluation.latency import LatencyTable, build_latency_table
from ..nn import SuperNet
from ..nn.calibrate import frozen_bn_stats
from ..runtime import distributed as ddp
from ..runtime.checkpoint import require_same_space
from ..runtime.data_order import ResumableLoader, ResumableSampler
from ..runtime.logging import RunLogger
from ..runtime.loop import Loop, Schedule
from ..runtime.losses import label_smoothing_ce
from ..runtime.optim import run_length, scaled_lr, step_accumulated
from ..runtime.precision import autocast
from ..runtime.task import Task
from ..search import ParetoEntry, SearchResult, write_pareto
from ..search.runner import score_source
from ..spaces import CostModel, SearchSpace, get_space
from ..train.parts import WeightParts, weight_parts
from ..utils.file_names import LATENCY_TABLE, RESULT
from ..utils.io import atomic_torch_save, atomic_write_text
from .distribution import ArchDistribution, FactorizedDistribution, JointDistribution
from .estimator import arch_loss, loglik_from_losses
from .num_samples import adaptive_num_samples
from .weight_step import ImportanceWeightedGrads


class ProbabilisticSearch(Task):
    """FP-NAS or PARSEC as an object: `ProbabilisticSearch(config).fit()` searches and returns the
    run directory (metrics.jsonl, dist_epoch{N}.pt, checkpoint.pt, result.json, plots).

    `config` is an `FpnasConfig` or a mapping over its defaults; `resume=True` continues the run in
    `run.dir` exactly where its checkpoint left it. `parts` (train.parts.WeightParts) replace the
    supernet, optimizer and schedule the config would build.
    """

    def __init__(self, config: "FpnasConfig | Mapping[str, Any]", resume: bool = False,
                 parts: WeightParts[SuperNet] | None = None):
        self.cfg = config if isinstance(config, FpnasConfig) else load_config(FpnasConfig, data=config)
        s, t, run = self.cfg.search, self.cfg.train, self.cfg.run
        self.set_up_run(run, resume, fixed_shapes=False)
        cuda = self.device.type == "cuda"
        self.channels_last = False  # the Split-Attention gathers and the changing shapes gain nothing from NHWC

        self.data = build_datasets(self.cfg.data)
        if self.data.search is None:
            raise SupernasError("the search needs a held-out split for its architecture steps; set "
                                "data.search_size (e.g. 0.2 of train, or a count)")
        self.space: SearchSpace = get_space(self.cfg.space)
        self.cost = CostModel(self.space, self.data.num_classes)
        self.latency = self._latency_table()

        rank, world = self.info.rank, self.info.world_size
        train_rows = ResumableSampler(self.data.train, t.batch_size, self.seed, rank, world)
        # its own shuffle seed, so the search batches do not mirror the train order
        self.search_rows = ResumableSampler(self.data.search, t.batch_size, self.seed + 1, rank, world)
        self.train_loader = ResumableLoader(self.data.train, train_rows, self.seed, t.batch_size, t.workers, cuda)
        self.search_loader = ResumableLoader(self.data.search, self.search_rows, self.seed, t.batch_size, t.workers,
                                             cuda)
        self.steps_per_epoch = train_rows.batches_per_epoch
        self.total_steps, self.stop_step = run_length(t.epochs, self.steps_per_epoch, t.max_steps)
        self.lr = scaled_lr(t.lr, t.batch_size * world)
        parts = parts or weight_parts(t, self.space, self.data.num_classes, self.device, self.channels_last, self.lr,
                                      self.total_steps, self.steps_per_epoch)
        self.net, self.optimizer, self.scheduler = parts.net, parts.optimizer, parts.scheduler
        # alpha lives on the CPU: it is tiny, and a CPU generator must draw from CPU probabilities
        self.distribution: ArchDistribution = (JointDistribution(self.space) if s.mode == "parsec"
                                               else FactorizedDistribution(self.space))
        self.arch_opt = self._new_arch_optimizer()
        self.gen = torch.Generator().manual_seed(self.seed)
        self.step = 0
        self.arch_steps = 0
        self.samples_total = 0
        self.samples_warmup = 0  # of samples_total, drawn while alpha was frozen
        self.seconds = 0.0
        self.last_weights: torch.Tensor | None = None  # weight_step importance: the last step's m_k
        self._search_it: Iterator | None = None
        self._last: dict[str, Any] = {}  # the last step's K, Archs and architecture-step figures

    # ------------------------------------------------------------------ cost
    @property
    def latency_path(self) -> Path:
        return self.run_dir / LATENCY_TABLE

    def _latency_table(self) -> LatencyTable | None:
        """With cost: latency, the main process's per-layer table (kept in the run directory, so a
        resumed search reuses what it measured); the other ranks receive its figures."""
        s = self.cfg.search
        if s.cost != "latency" or not self.info.is_main:
            return None
        lat = s.latency
        table = LatencyTable(self.space, self.data.num_classes, lat.batch_size, lat.warmup, lat.repeats,
                             lat.device or self.device, window_s=lat.window_s)
        return table.load(self.latency_path) if self.latency_path.exists() else build_latency_table(table, self.seed)

    def sample_costs(self, idx: torch.Tensor) -> np.ndarray:
        """Cost of each sampled Arch in the unit of search.cost, equal on every rank."""
        if self.cfg.search.cost == "mflops":
            return self.cost.mflops_indices(idx.numpy())
        ms = self.latency.latency_indices(idx.numpy()) if self.latency is not None else None
        return np.asarray(ddp.broadcast_object(ms), dtype=np.float64)

    # ------------------------------------------------------------------ distribution
    @property
    def distribution_kind(self) -> str:
        return "joint" if isinstance(self.distribution, JointDistribution) else "factorized"

    def _new_arch_optimizer(self) -> torch.optim.Adam:
        s = self.cfg.search
        betas = cast("tuple[float, float]", tuple(s.arch_betas))  # Adam's two betas, as the setting lists them
        return torch.optim.Adam(self.distribution.parameters(), lr=s.arch_lr, betas=betas)

    def switch_to_joint(self) -> None:
        """Coarse-to-fine: the equal joint distribution, with a fresh Adam for its new parameters."""
        if isinstance(self.distribution, FactorizedDistribution):
            self.distribution = JointDistribution.from_factorized(self.distribution)
            self.arch_opt = self._new_arch_optimizer()

    def num_samples(self) -> int:
        s = self.cfg.search
        if s.mode == "parsec":
            return s.k_fixed
        with torch.no_grad():
            h = float(self.distribution.entropy())
        return adaptive_num_samples(h, self.distribution.max_entropy(), s.k_min, s.k_max, s.k_rule, s.k_per_nat)

    def expected_mflops(self) -> float:
        """Monte-Carlo mean MFLOPs under the distribution, from a generator of its own (seeded by
        the step) so that logging never changes which Archs the search draws."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        idx = self.distribution.sample(self.cfg.search.mc_samples, g)
        return float(np.mean(self.cost.mflops_indices(idx.numpy())))

    # ------------------------------------------------------------------ the two steps
    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step of the search: K Archs drawn, a weight step on the batch and, after the warm-up,
        an architecture step on the next search batch with the same Archs."""
        epoch = self.step // self.steps_per_epoch
        k = self.num_samples()
        idx = self.distribution.sample(k, self.gen)
        self.samples_total += k
        warmup = epoch < self.cfg.search.arch_warmup_epochs
        if warmup:
            self.samples_warmup += k
        loss = self.weight_step(x, y, idx)
        record = {} if warmup else self.arch_step(*self._search_batch(), idx)
        self._last = {"K": k, "idx": idx, "record": record}
        return {"loss": loss}

    def weight_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Weight step: each of the K Archs backpropagated on its own, their gradients averaged
        (`weight_step: uniform`) or weighted by their normalised likelihoods (`importance`);
        returns the mean loss of the K Archs either way (a device tensor: the loop reads it when
        it logs)."""
        s, t = self.cfg.search, self.cfg.train
        self.net.train()
        archs = self.distribution.archs(idx)
        weighted = ImportanceWeightedGrads(list(self.net.parameters())) if s.weight_step == "importance" else None
        # the likelihood of the batch over all ranks (as the architecture step's): a sum over its examples
        n = int(x.shape[0]) * self.info.world_size
        total = torch.zeros((), device=x.device)
        for arch in archs:
            with self._autocast():
                logits = self.net(x, arch).float()
            loss = label_smoothing_ce(logits, y, t.label_smoothing)
            if weighted is None:
                (loss / len(archs)).backward()
            else:
                nll = F.cross_entropy(logits.detach(), y) if t.label_smoothing else loss.detach()
                weighted.add(loss, -ddp.all_reduce_mean_(nll.clone()) * n / s.temperature)
            total += loss.detach() / len(archs)
        if weighted is not None:
            self.last_weights = weighted.finish()
        step_accumulated(self.net, self.optimizer, self.scheduler, t.grad_clip)
        return total

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> dict[str, float]:
        """Architecture step (Eqn (2)) on a search batch; returns what is worth logging."""
        s = self.cfg.search
        losses = torch.zeros(idx.shape[0], device=self.device)
        # batch statistics as in training, but the running ones must not drift towards search data
        with torch.no_grad(), frozen_bn_stats(self.net), self._autocast():
            for k, arch in enumerate(self.distribution.archs(idx)):
                losses[k] = F.cross_entropy(self.net(x, arch).float(), y)
        # equal on all ranks, so alpha moves alike; alpha lives on the CPU, so this is the step's one host read
        losses = ddp.all_reduce_mean_(losses).cpu()
        n = int(x.shape[0]) * self.info.world_size
        loglik = loglik_from_losses(losses, n)
        costs = self.sample_costs(idx)
        loss = arch_loss(self.distribution, idx, loglik, costs, s.beta, s.cost_target, s.cost_mode, s.cost_norm,
                         s.temperature)
        self.arch_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.arch_opt.step()
        self.arch_steps += 1
        record = {"val_loss": float(losses.mean()), "val_loss_best": float(losses.min())}
        if s.cost == "latency":
            record["latency_ms_samples"] = float(costs.mean())
        return record

    def _weight_stats(self) -> dict[str, float]:
        """weight_step importance: the effective number of Archs the last weight step trained,
        1 / sum m_k^2 (K when the weights are equal, 1 when one Arch took the whole step)."""
        if self.last_weights is None:
            return {}
        return {"weight_ess": float(1.0 / (self.last_weights.double() ** 2).sum())}

    # ------------------------------------------------------------------ data
    def _search_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next search batch; its position follows from `arch_steps`, so resume needs no more."""
        epoch, b = divmod(self.arch_steps, self.search_rows.batches_per_epoch)
        if self._search_it is None or b == 0:
            self._search_it = self.search_loader.epoch(epoch, b)
        x, y = next(self._search_it)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    # ------------------------------------------------------------------ the task of the loop
    def fit(self) -> Path:
        return self.loop().run(self.resume)

    def loop(self) -> Loop:
        """The loop that runs this search (`fit`, or `runtime.dry_run` for an estimate)."""
        c = self.cfg
        schedule = Schedule(self.steps_per_epoch, self.stop_step, c.log.every_steps, c.checkpoint.every_steps,
                            eval_every_epochs=0, validate_at_end=False, lr_key="train.lr")
        return Loop(self, self.run_dir, c, self.train_loader, self.device, schedule)

    def step_phases(self, stop_step: int) -> list[tuple[str, int, int]]:
        """Steps of different cost, for a dry run's estimate: (what, first step, stop step)."""
        warm = min(self.stop_step, self.cfg.search.arch_warmup_epochs * self.steps_per_epoch)
        return [("weight steps (alpha frozen)", 0, warm),
                (f"weight and architecture steps (K up to {self.num_samples()})", warm, self.stop_step)]

    def header(self) -> str:
        return (f"{self.cfg.search.mode} search on {self.space.name} ({self.data.describe()}); "
                f"{self.info.world_size} process(es) on {self.device.type}, {self.steps_per_epoch} steps per epoch, "
                f"{self.stop_step} steps, {self.distribution_kind} distribution with "
                f"{self.distribution.num_parameters()} parameters")

    def on_epoch_start(self, epoch: int, log: RunLogger) -> None:
        s = self.cfg.search
        if s.mode == "fpnas" and s.switch_epoch is not None and epoch >= s.switch_epoch \
                and self.distribution_kind == "factorized":
            self.switch_to_joint()
            log.info(f"epoch {epoch}: switched to the joint distribution "
                     f"({self.distribution.num_parameters()} parameters)")

    def on_epoch_end(self, epoch: int) -> None:
        self._snapshot(epoch + 1)

    def log_extra(self, epoch: int) -> dict[str, Any]:
        last = self._last
        with torch.no_grad():
            h = float(self.distribution.entropy())
        return {"K": last["K"], "entropy": h, "max_entropy": self.distribution.max_entropy(),
                "distribution": self.distribution_kind, **last["record"],
                "mflops_samples": float(np.mean(self.cost.mflops_indices(last["idx"].numpy()))),
                "expected_mflops": self.expected_mflops(), "samples_total": self.samples_total,
                "lr": self.optimizer.param_groups[0]["lr"], "arch_step": bool(last["record"]), **self._weight_stats()}

    def validate(self) -> dict[str, float] | None:
        """The top-N Archs scored as `finish` scores them (the loop validates nothing on the way;
        a dry run times this), or None with search.score_images 0."""
        if self.cfg.search.score_images == 0:
            return None
        result, _ = self.search_result()
        return {"top1_most_likely": result.evaluated[0].accuracy}

    def validation_plan(self) -> tuple[str, int] | None:
        s = self.cfg.search
        if s.score_images == 0:
            return None
        evaluator = self._scorer()
        bn, scoring = evaluator.batches_per_arch()
        return (f"the top {s.top_n} Archs, each after BatchNorm re-calibration on {bn} batches"
                f"{evaluator.calibration_note()}: top-1 on {evaluator.images_per_arch()} search images",
                s.top_n * (bn + scoring))

    def finish(self, log: RunLogger) -> Path:
        ddp.barrier()
        plan = self.validation_plan()
        log.info(f"{f'scoring {plan[0]}; then ' if plan else ''}writing {self.run_dir}/result.json (the top "
                 f"{self.cfg.search.top_n} Archs), distribution.pt and the plots")
        scored = self.search_result() if plan else None  # every rank: Archs split
        if self.info.is_main:
            self._write_results(scored)
        ddp.barrier()  # every rank returns a run directory that already holds result.json
        return self.run_dir

    def close(self) -> None:
        self._search_it = None
        self.search_loader.close()

    # ------------------------------------------------------------------ outputs
    def _snapshot(self, epoch: int) -> None:
        """The distribution after `epoch` epochs, with its marginals for plots without the space."""
        if not self.info.is_main:
            return
        marginals = {d.name: self.distribution.probs_of_dim(d.name).tolist() for d in self.space.dims}
        atomic_torch_save({"epoch": epoch, "step": self.step, "kind": self.distribution_kind,
                           "state": self.distribution.state_dict(), "marginals": marginals,
                           "entropy": float(self.distribution.entropy().detach())},
                          self.run_dir / f"dist_epoch{epoch}.pt")

    def _top(self) -> list[dict[str, Any]]:
        """The top-N distinct most likely Archs, most likely first, with their costs and log-probabilities."""
        idx = self.distribution.most_likely(self.cfg.search.top_n)
        with torch.no_grad():
            lp = self.distribution.log_prob(idx).tolist()
        archs = self.distribution.archs(idx)
        rows = self.space.to_indices(archs)
        mflops, params = self.cost.costs_indices(rows)
        ms = self.latency.latency_indices(rows) if self.latency is not None else [None] * len(archs)
        top, seen = [], set()
        for arch, m, p, logp, t in zip(archs, mflops, params, lp, ms):
            if arch in seen:  # raw rows differing only in switched-off blocks are one network
                continue
            seen.add(arch)
            top.append({"arch": arch, "mflops": float(m), "params": int(p), "log_prob": float(logp),
                        **({"latency_ms": float(t)} if t is not None else {})})
        return top

    def _scorer(self) -> Evaluator:
        """The Evaluator of the end's scoring: search.score_images of the search split."""
        s, batch = self.cfg.search, self.cfg.train.batch_size
        max_batches = None if s.score_images is None else -(-s.score_images // batch)
        return Evaluator(self.net, self.data, self.device, bn_batches=s.score_bn_batches, batch_size=batch,
                         split="search", max_batches=max_batches, amp_dtype=self.amp_dtype)

    def search_result(self) -> tuple[SearchResult, Evaluator]:
        """The top-N Archs scored as stage 2 scores them (top-1 on the search split with the
        supernet's weights, BatchNorm re-calibrated per Arch), as the `SearchResult` evolution and
        random search return: its best entry is the most likely Arch, whatever its score. Every
        rank must call it (the Archs are split over ranks)."""
        s = self.cfg.search
        evaluator = self._scorer()
        top = self._top()
        scores = evaluator.evaluate_many([t["arch"] for t in top])
        entries = [ParetoEntry(t["arch"], t["mflops"], t["params"], r["top1"],
                               {"top5": r["top5"], "log_prob": t["log_prob"]}, t.get("latency_ms"))
                   for t, r in zip(top, scores)]
        cost = "latency_ms" if s.cost == "latency" else "mflops"
        budgets = [s.cost_target] if s.cost_target is not None else []
        return SearchResult(budgets, [entries[0]] * len(budgets), entries, cost), evaluator

    def results(self) -> dict[str, Any]:
        """The most likely Arch and the top-N distinct ones, with their costs and log-probabilities."""
        top = [{**t, "arch": t["arch"].to_dict()} for t in self._top()]
        return {"mode": self.cfg.search.mode, "cost": self.cfg.search.cost, "space": self.space.name,
                "space_definition": self.space.definition, "data": self.data.describe(),
                "distribution": self.distribution_kind,
                "most_likely": top[0], "top": top, "samples_total": self.samples_total,
                "samples_warmup": self.samples_warmup, "samples_search": self.samples_total - self.samples_warmup,
                "search_seconds": round(self.seconds, 3), "steps": self.step,
                "entropy": float(self.distribution.entropy().detach()),
                "max_entropy": self.distribution.max_entropy(),
                "expected_mflops": self.expected_mflops()}

    def _write_results(self, scored: "tuple[SearchResult, Evaluator] | None") -> None:
        res = self.results()
        self._save_latency()
        atomic_write_text(self.run_dir / RESULT, json.dumps(res, indent=2) + "\n")
        if scored is not None:  # the files stage 2's search writes, for the tools that read them
            result, evaluator = scored
            meta = {"run": str(self.run_dir), "data": self.data.describe(), "cost": result.cost,
                    "budgets": result.budgets, "score": score_source(evaluator, None),
                    "search": {"strategy": self.cfg.search.mode, "top_n": self.cfg.search.top_n}}
            write_pareto(self.run_dir, result.pareto(), self.space, meta=meta)
            write_pareto(self.run_dir, result.evaluated, self.space, name="evaluated", meta=meta)
        atomic_torch_save({"kind": self.distribution_kind, "state": self.distribution.state_dict(),
                           "space": self.cfg.space}, self.run_dir / "distribution.pt")
        try:
            from .figures import draw_arch, plot_search

            plot_search(self.run_dir)
            draw_arch(self.space, self.space.arch(res["most_likely"]["arch"]), self.run_dir / "arch.png",
                      title=f"most likely Arch of {self.run_dir.name}", num_classes=self.data.num_classes)
        except ImportError:  # plots are a convenience; the search result stands without them
            print("plots skipped: `pip install matplotlib` to get search.png and arch.png")

    # ------------------------------------------------------------------ checkpoints
    def _save_latency(self) -> None:
        if self.latency is not None and self.latency.measured:
            self.latency.save(self.latency_path)

    def state_dict(self) -> dict[str, Any]:
        self._save_latency()  # before the checkpoint: a resumed run then finds every layer it measured
        return {"arch_steps": self.arch_steps, "samples_total": self.samples_total,
                "samples_warmup": self.samples_warmup, "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "dist_kind": self.distribution_kind, "dist": self.distribution.state_dict(),
                "arch_optimizer": self.arch_opt.state_dict(), "generator": self.gen.get_state(),
                "space": self.cfg.space, "space_definition": self.space.definition,
                "num_classes": self.data.num_classes}

    def load_state_dict(self, ck: Mapping[str, Any]) -> None:
        if "dist_kind" not in ck:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' is not from an FP-NAS/PARSEC search; "
                                "point run.dir at a search run")
        require_same_space(ck, self.space, self.run_dir)
        if ck["dist_kind"] == "joint" and self.distribution_kind == "factorized":
            self.switch_to_joint()
        self.net.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.distribution.load_state_dict(ck["dist"])
        self.arch_opt.load_state_dict(ck["arch_optimizer"])
        self.gen.set_state(ck["generator"])
        self.arch_steps, self.samples_total = ck["arch_steps"], ck["samples_total"]
        self.samples_warmup = ck.get("samples_warmup", 0)
