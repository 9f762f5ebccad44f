"""FP-NAS / PARSEC search: train the supernet on Archs drawn from a learnable distribution and
move the distribution towards Archs that explain held-out data well (and cost little).

One step: K Archs are drawn from the distribution (one torch.Generator, seeded and advanced
alike on every rank, so all ranks draw the same Archs). (a) Weight step on a train batch: each
Arch runs forward and backward in turn (only one Arch's activations live at a time), gradients
are averaged over ranks, one SGD step. (b) After the warm-up (alpha frozen, so the Archs are
uniform: Section E of the supplement), an architecture step on a batch of the search split with
the *same* K Archs (PARSEC's one-draw-per-iteration; it also makes the samples count K per step):
their losses without gradient, averaged over ranks, become log-likelihoods, their MFLOPs the
costs, and `arch_loss` (Eqn (2)) is minimised by Adam on alpha.

FP-NAS: K follows the entropy (`adaptive_num_samples`) and the factorized distribution becomes
the equal joint one at `switch_epoch`. PARSEC: the joint distribution from the start, fixed K.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..config import load_config
from ..errors import SupernasError, require_int
from ..nn import SuperNet
from ..nn.calibrate import frozen_bn_stats
from ..search.latency import LatencyTable
from ..spaces import CostModel, SearchSpace, get_space
from ..train import distributed as dist
from ..train.checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from ..train.device_metrics import DeviceMeans, require_finite
from ..train.losses import label_smoothing_ce
from ..train.engine import autocast, data_defaults, open_run, param_groups, precision
from ..train.resumable import ResumableLoader, ResumableSampler
from ..train.schedule import scaled_lr, warmup_cosine_scheduler
from ..utils.io import atomic_torch_save, atomic_write_text
from .distribution import ArchDistribution, FactorizedDistribution, JointDistribution
from .estimator import COST_MODES, COST_NORMS, arch_loss, loglik_from_losses
from .sampling import adaptive_num_samples

MODES = ("fpnas", "parsec")
COST_UNITS = {"mflops": "MFLOPs", "latency": "ms"}
COSTS = tuple(COST_UNITS)

DEFAULTS: dict[str, Any] = {
    "run": {"dir": "runs/fpnas", "seed": 0, "device": "auto", "amp": "auto", "cudnn_benchmark": "auto"},
    "space": "fpnas-l0",
    "data": None,  # DataConfig's fields, with a search split held out of train (filled below)
    "search": {
        "mode": "fpnas",  # fpnas (adaptive K, coarse-to-fine) | parsec (joint, fixed K)
        "epochs": 10,
        "warmup_epochs": 2,  # alpha frozen, uniform Archs: the supernet learns before alpha moves
        "max_steps": None,  # stop after this many steps (quick runs); the lr schedule still spans `epochs`
        "batch_size": 64,  # per process, for both the train and the search batches
        "lr": 0.1,  # per 256 images, scaled linearly with the global batch (as in stage 1)
        "lr_warmup_epochs": 0,
        "final_lr_ratio": 0.0,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 4.0e-5,
        "label_smoothing": 0.0,
        "grad_clip": None,  # clip each gradient value to [-c, c]; null: off
        "arch_lr": 0.01,  # Adam on alpha
        "arch_betas": [0.9, 0.999],
        "k_min": 2,  # fpnas: K in [k_min, k_max], following the entropy (2: one sample gives no contrast)
        "k_max": 16,
        "k_rule": "proportional",  # proportional | linear | perplexity | fixed (see supernas.fpnas.sampling)
        "k_per_nat": None,  # proportional: K = k_per_nat * entropy; null: k_max * entropy / max entropy
        "k_fixed": 16,  # parsec: K every step
        "switch_epoch": 5,  # fpnas: factorized -> joint at the start of this epoch; null: never
        "beta": 0.0,  # weight of the cost term (0: accuracy only)
        "cost": "mflops",  # mflops (analytic model) | latency (ms, per-layer table measured on latency.device)
        "cost_target": None,  # budget in MFLOPs, or ms with cost: latency (cost_mode hinge or cost_norm target)
        "latency": {"device": None, "batch_size": 1, "warmup": 10, "repeats": 30},  # device null: the search's
        "cost_mode": "linear",  # linear | hinge
        "cost_norm": "sum",  # sum | target
        "temperature": 1.0,  # divides the summed-loss log-likelihoods (1 = the paper)
        "mc_samples": 256,  # Archs drawn (off the search generator) to estimate the expected MFLOPs
        "top_n": 5,  # distinct most likely Archs in result.json
        "workers": 4,
    },
    "log": {"every_steps": 1, "tensorboard": True, "progress": True},
    "checkpoint": {"every_steps": 200},
}


# the architecture steps need held-out data: a fifth of train by default
DEFAULTS["data"] = data_defaults(search_size=0.2)


def _check_search_config(s: Mapping[str, Any]) -> None:
    """Fail early, naming the setting, instead of deep inside the first architecture step."""
    if s["mode"] not in MODES:
        raise SupernasError(f"search.mode must be one of {', '.join(MODES)}, got {s['mode']!r}")
    for name in ("epochs", "batch_size", "k_min", "k_max", "k_fixed", "mc_samples", "top_n"):
        require_int(f"search.{name}", s[name], 1)
    for name in ("warmup_epochs", "lr_warmup_epochs", "workers"):
        require_int(f"search.{name}", s[name], 0)
    if s["k_max"] < s["k_min"]:
        raise SupernasError(f"search.k_max ({s['k_max']}) must be >= search.k_min ({s['k_min']})")
    try:  # the sampling rule's own checks (rule name, k_per_nat), on a dry call
        adaptive_num_samples(1.0, 1.0, s["k_min"], s["k_max"], s["k_rule"], s["k_per_nat"])
    except SupernasError as e:
        raise SupernasError(f"search.k_rule / search.k_per_nat: {e}") from None
    require_int("search.switch_epoch", s["switch_epoch"], 0, optional=True)
    require_int("search.max_steps", s["max_steps"], 1, optional=True)
    if s["cost_mode"] not in COST_MODES:
        raise SupernasError(f"search.cost_mode must be one of {', '.join(COST_MODES)}, got {s['cost_mode']!r}")
    if s["cost_norm"] not in COST_NORMS:
        raise SupernasError(f"search.cost_norm must be one of {', '.join(COST_NORMS)}, got {s['cost_norm']!r}")
    if not isinstance(s["beta"], (int, float)) or s["beta"] < 0:
        raise SupernasError(f"search.beta must be a number >= 0, got {s['beta']!r}")
    if s["cost"] not in COSTS:
        raise SupernasError(f"search.cost must be one of {', '.join(COSTS)}, got {s['cost']!r}")
    lat = s["latency"]
    if not isinstance(lat, Mapping):
        raise SupernasError(f"search.latency must be a mapping of {', '.join(DEFAULTS['search']['latency'])}; "
                            f"got {lat!r}")
    require_int("search.latency.batch_size", lat["batch_size"], 1)
    require_int("search.latency.warmup", lat["warmup"], 0)
    require_int("search.latency.repeats", lat["repeats"], 1)
    needs_target = s["beta"] > 0 and (s["cost_mode"] == "hinge" or s["cost_norm"] == "target")
    if needs_target and not (isinstance(s["cost_target"], (int, float)) and s["cost_target"] > 0):
        raise SupernasError(f"search.cost_mode={s['cost_mode']} / cost_norm={s['cost_norm']} need "
                            f"search.cost_target, a positive budget in {COST_UNITS[s['cost']]}; "
                            f"got {s['cost_target']!r}")
    for name in ("lr", "arch_lr", "temperature"):
        if not isinstance(s[name], (int, float)) or not s[name] > 0:
            raise SupernasError(f"search.{name} must be a positive number, got {s[name]!r}")


class ProbabilisticSearch:
    """FP-NAS or PARSEC as an object: `ProbabilisticSearch(config).fit()` searches and returns the
    run directory (metrics.jsonl, dist_epoch{N}.pt, checkpoint.pt, result.json, plots).

    `config` is a mapping over `DEFAULTS`; `resume=True` continues the run in `run.dir` exactly
    where its checkpoint left it.
    """

    def __init__(self, config: Mapping[str, Any], resume: bool = False):
        self.cfg = load_config(DEFAULTS, data=config)
        s, run = self.cfg["search"], self.cfg["run"]
        _check_search_config(s)
        self.info, self.device = dist.setup_distributed(run["device"])
        self.run_dir = Path(run["dir"]).expanduser()
        self.resume = resume
        # NCHW always: the search's Split-Attention gathers and its changing shapes gain nothing from channels_last
        self.amp_dtype, _, self.cudnn_benchmark = precision({**run, "channels_last": False},
                                                            self.device.type == "cuda", fixed_shapes=False)
        self.seed = int(run["seed"])
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)

        from ..data import DataConfig, build_datasets

        self.data = build_datasets(DataConfig.from_dict(self.cfg["data"]))
        if self.data.search is None:
            raise SupernasError("the search needs a held-out split for its architecture steps; set "
                                "data.search_size (e.g. 0.2 of train, or a count)")
        self.space: SearchSpace = get_space(self.cfg["space"])
        self.cost = CostModel(self.space, self.data.num_classes)
        self.net = SuperNet(self.space, self.data.num_classes).to(self.device)
        self.latency = self._latency_table()

        rank, world = self.info.rank, self.info.world_size
        self.train_rows = ResumableSampler(self.data.train, s["batch_size"], self.seed, rank, world)
        # its own shuffle seed, so the search batches do not mirror the train order
        self.search_rows = ResumableSampler(self.data.search, s["batch_size"], self.seed + 1, rank, world)
        cuda = self.device.type == "cuda"
        self.train_loader = ResumableLoader(self.data.train, self.train_rows, self.seed, s["batch_size"],
                                            s["workers"], cuda)
        self.search_loader = ResumableLoader(self.data.search, self.search_rows, self.seed, s["batch_size"],
                                             s["workers"], cuda)
        self.steps_per_epoch = self.train_rows.batches_per_epoch
        self.total_steps = s["epochs"] * self.steps_per_epoch
        self.stop_step = self.total_steps if s["max_steps"] is None else min(self.total_steps, s["max_steps"])
        self.lr = scaled_lr(s["lr"], s["batch_size"] * world)
        self.optimizer = torch.optim.SGD(param_groups(self.net, s["weight_decay"]), lr=self.lr,
                                         momentum=s["momentum"], nesterov=s["nesterov"])
        self.scheduler = warmup_cosine_scheduler(self.optimizer, self.total_steps,
                                                 s["lr_warmup_epochs"] * self.steps_per_epoch, s["final_lr_ratio"])
        # alpha lives on the CPU: it is tiny, and a CPU generator must draw from CPU probabilities
        self.dist: ArchDistribution = (JointDistribution(self.space) if s["mode"] == "parsec"
                                       else FactorizedDistribution(self.space))
        self.arch_opt = self._new_arch_optimizer()
        self.gen = torch.Generator().manual_seed(self.seed)
        self.step = 0
        self.arch_steps = 0
        self.samples_total = 0
        self.samples_warmup = 0  # of samples_total, drawn while alpha was frozen
        self.search_seconds = 0.0
        self._search_it: Iterator | None = None

    # ------------------------------------------------------------------ cost
    @property
    def latency_path(self) -> Path:
        return self.run_dir / "latency_table.json"

    def _latency_table(self) -> LatencyTable | None:
        """With cost: latency, the main process's per-layer table (kept in the run directory, so a
        resumed search reuses what it measured); the other ranks receive its figures."""
        s = self.cfg["search"]
        if s["cost"] != "latency" or not self.info.is_main:
            return None
        lat = s["latency"]
        args = (self.space, self.data.num_classes, lat["batch_size"], lat["warmup"], lat["repeats"],
                lat["device"] or self.device)
        return LatencyTable.load(self.latency_path, *args) if self.latency_path.exists() else LatencyTable(*args)

    def sample_costs(self, idx: torch.Tensor) -> np.ndarray:
        """Cost of each sampled Arch in the unit of search.cost, equal on every rank."""
        if self.cfg["search"]["cost"] == "mflops":
            return self.cost.mflops_indices(idx.numpy())
        ms = self.latency.latency_indices(idx.numpy()) if self.latency is not None else None
        return np.asarray(dist.broadcast_object(ms), dtype=np.float64)

    # ------------------------------------------------------------------ distribution
    @property
    def dist_kind(self) -> str:
        return "joint" if isinstance(self.dist, JointDistribution) else "factorized"

    def _new_arch_optimizer(self) -> torch.optim.Adam:
        s = self.cfg["search"]
        return torch.optim.Adam(self.dist.parameters(), lr=s["arch_lr"], betas=tuple(s["arch_betas"]))

    def switch_to_joint(self) -> None:
        """Coarse-to-fine: the equal joint distribution, with a fresh Adam for its new parameters."""
        if isinstance(self.dist, FactorizedDistribution):
            self.dist = JointDistribution.from_factorized(self.dist)
            self.arch_opt = self._new_arch_optimizer()

    def num_samples(self) -> int:
        s = self.cfg["search"]
        if s["mode"] == "parsec":
            return s["k_fixed"]
        with torch.no_grad():
            h = float(self.dist.entropy())
        return adaptive_num_samples(h, self.dist.max_entropy(), s["k_min"], s["k_max"], s["k_rule"], s["k_per_nat"])

    def expected_mflops(self) -> float:
        """Monte-Carlo mean MFLOPs under the distribution, from a generator of its own (seeded by
        the step) so that logging never changes which Archs the search draws."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        idx = self.dist.sample(self.cfg["search"]["mc_samples"], g)
        return float(np.mean(self.cost.mflops_indices(idx.numpy())))

    # ------------------------------------------------------------------ the two steps
    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Weight step: the mean loss of the K Archs, each backpropagated on its own (a device
        tensor: the loop reads it when it logs)."""
        s = self.cfg["search"]
        self.net.train()
        archs = self.dist.archs(idx)
        total = torch.zeros((), device=x.device)
        for arch in archs:
            with self._autocast():
                loss = label_smoothing_ce(self.net(x, arch), y, s["label_smoothing"]) / len(archs)
            loss.backward()
            total += loss.detach()
        params = [p for p in self.net.parameters() if p.grad is not None]
        dist.all_reduce_grads(params)
        if s["grad_clip"]:
            torch.nn.utils.clip_grad_value_(params, s["grad_clip"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> dict[str, float]:
        """Architecture step (Eqn (2)) on a search batch; returns what is worth logging."""
        s = self.cfg["search"]
        losses = torch.zeros(idx.shape[0], device=self.device)
        # batch statistics as in training, but the running ones must not drift towards search data
        with torch.no_grad(), frozen_bn_stats(self.net), self._autocast():
            for k, arch in enumerate(self.dist.archs(idx)):
                losses[k] = F.cross_entropy(self.net(x, arch).float(), y)
        # equal on all ranks, so alpha moves alike; alpha lives on the CPU, so this is the step's one host read
        losses = dist.all_reduce_mean_(losses).cpu()
        n = int(x.shape[0]) * self.info.world_size
        loglik = loglik_from_losses(losses, n)
        costs = self.sample_costs(idx)
        loss = arch_loss(self.dist, idx, loglik, costs, float(s["beta"]), s["cost_target"], s["cost_mode"],
                         s["cost_norm"], float(s["temperature"]))
        self.arch_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.arch_opt.step()
        self.arch_steps += 1
        record = {"val_loss": float(losses.mean()), "val_loss_best": float(losses.min())}
        if s["cost"] == "latency":
            record["latency_ms_samples"] = float(costs.mean())
        return record

    # ------------------------------------------------------------------ data
    def _search_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next search batch; its position follows from `arch_steps`, so resume needs no more."""
        epoch, b = divmod(self.arch_steps, self.search_rows.batches_per_epoch)
        if self._search_it is None or b == 0:
            self._search_it = self.search_loader.epoch(epoch, b)
        x, y = next(self._search_it)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> Path:
        s = self.cfg["search"]
        if self.resume:
            self._load()
        log = open_run(self.run_dir, self.cfg, self.resume, total=self.stop_step, initial=self.step)
        log.info(f"{s['mode']} search on {self.space.name} ({self.data.describe()}); {self.info.world_size} "
                 f"process(es) on {self.device.type}, {self.steps_per_epoch} steps per epoch, {self.stop_step} "
                 f"steps, {self.dist_kind} distribution with {self.dist.num_parameters()} parameters")
        t0, seconds0 = time.perf_counter(), self.search_seconds
        every = self.cfg["log"]["every_steps"]
        means = DeviceMeans()
        try:
            while self.step < self.stop_step:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                if s["mode"] == "fpnas" and s["switch_epoch"] is not None and epoch >= s["switch_epoch"] \
                        and self.dist_kind == "factorized":
                    self.switch_to_joint()
                    log.info(f"epoch {epoch}: switched to the joint distribution "
                             f"({self.dist.num_parameters()} parameters)")
                for x, y in self.train_loader.epoch(epoch, start):
                    x = x.to(self.device, non_blocking=True)
                    y = y.to(self.device, non_blocking=True)
                    k = self.num_samples()
                    idx = self.dist.sample(k, self.gen)
                    self.samples_total += k
                    if epoch < s["warmup_epochs"]:
                        self.samples_warmup += k
                    means.add(loss=self.train_step(x, y, idx))
                    record: dict[str, Any] = {}
                    if epoch >= s["warmup_epochs"]:
                        record = self.arch_step(*self._search_batch(), idx)
                    self.step += 1
                    self.search_seconds = seconds0 + time.perf_counter() - t0
                    log_now = self.step % every == 0 or self.step == self.stop_step
                    save_now = self.step % self.cfg["checkpoint"]["every_steps"] == 0 or self.step == self.stop_step
                    if log_now or save_now:  # read before saving: a non-finite loss must not reach a checkpoint
                        loss = means.read(reset=log_now)["loss"]
                        require_finite({"loss": loss}, self.step, "search.lr")
                    log.progress(1, **({"loss": f"{loss:.3f}", "K": k} if log_now else {}))
                    if log_now:
                        with torch.no_grad():
                            h = float(self.dist.entropy())
                        log.metrics(self.step, {
                            "epoch": epoch, "K": k, "entropy": h, "max_entropy": self.dist.max_entropy(),
                            "distribution": self.dist_kind, "loss": loss, **record,
                            "mflops_samples": float(np.mean(self.cost.mflops_indices(idx.numpy()))),
                            "expected_mflops": self.expected_mflops(), "samples_total": self.samples_total,
                            "lr": self.optimizer.param_groups[0]["lr"], "arch_step": bool(record),
                            "seconds": round(self.search_seconds, 3)})
                    if self.step % self.steps_per_epoch == 0:
                        self._snapshot(self.step // self.steps_per_epoch)
                    if save_now:
                        self._save()
                    if self.step >= self.stop_step:
                        break
        finally:
            self._search_it = None
            self.train_loader.close()
            self.search_loader.close()
            log.close()
        dist.barrier()
        if self.info.is_main:
            self._finish()
        dist.barrier()  # every rank returns a run directory that already holds result.json
        return self.run_dir

    # ------------------------------------------------------------------ outputs
    def _snapshot(self, epoch: int) -> None:
        """The distribution after `epoch` epochs, with its marginals for plots without the space."""
        if not self.info.is_main:
            return
        marginals = {d.name: self.dist.probs_of_dim(d.name).tolist() for d in self.space.dims}
        atomic_torch_save({"epoch": epoch, "step": self.step, "kind": self.dist_kind,
                           "state": self.dist.state_dict(), "marginals": marginals,
                           "entropy": float(self.dist.entropy().detach())}, self.run_dir / f"dist_epoch{epoch}.pt")

    def results(self) -> dict[str, Any]:
        """The most likely Arch and the top-N distinct ones, with their costs and log-probabilities."""
        n = self.cfg["search"]["top_n"]
        idx = self.dist.most_likely(n)
        with torch.no_grad():
            lp = self.dist.log_prob(idx).tolist()
        archs = self.dist.archs(idx)
        rows = self.space.to_indices(archs)
        mflops, params = self.cost.costs_indices(rows)
        ms = self.latency.latency_indices(rows) if self.latency is not None else [None] * len(archs)
        top, seen = [], set()
        for arch, m, p, l, t in zip(archs, mflops, params, lp, ms):
            if arch in seen:  # raw rows differing only in switched-off blocks are one network
                continue
            seen.add(arch)
            top.append({"arch": arch.to_dict(), "mflops": float(m), "params": int(p), "log_prob": float(l),
                        **({"latency_ms": float(t)} if t is not None else {})})
        return {"mode": self.cfg["search"]["mode"], "cost": self.cfg["search"]["cost"], "space": self.space.name,
                "space_definition": self.space.definition, "data": self.data.describe(),
                "distribution": self.dist_kind,
                "most_likely": top[0], "top": top, "samples_total": self.samples_total,
                "samples_warmup": self.samples_warmup, "samples_search": self.samples_total - self.samples_warmup,
                "search_seconds": round(self.search_seconds, 3), "steps": self.step,
                "entropy": float(self.dist.entropy().detach()), "max_entropy": self.dist.max_entropy(),
                "expected_mflops": self.expected_mflops()}

    def _finish(self) -> None:
        res = self.results()
        self._save_latency()
        atomic_write_text(self.run_dir / "result.json", json.dumps(res, indent=2) + "\n")
        atomic_torch_save({"kind": self.dist_kind, "state": self.dist.state_dict(), "space": self.cfg["space"]},
                          self.run_dir / "distribution.pt")
        try:
            from .report import draw_arch, plot_search

            plot_search(self.run_dir)
            draw_arch(self.space, self.space.arch(res["most_likely"]["arch"]), self.run_dir / "arch.png",
                      title=f"most likely Arch of {self.run_dir.name}", num_classes=self.data.num_classes)
        except ImportError:  # plots are a convenience; the search result stands without them
            print("plots skipped: `pip install matplotlib` to get search.png and arch.png")

    # ------------------------------------------------------------------ checkpoints
    def _save_latency(self) -> None:
        if self.latency is not None and self.latency.measured:
            self.latency.save(self.latency_path)

    def _save(self) -> None:
        if not self.info.is_main:
            return
        self._save_latency()  # before the checkpoint: a resumed run then finds every layer it measured
        save_checkpoint(self.run_dir, {
            "step": self.step, "arch_steps": self.arch_steps, "samples_total": self.samples_total,
            "samples_warmup": self.samples_warmup,
            "search_seconds": self.search_seconds, "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "dist_kind": self.dist_kind, "dist": self.dist.state_dict(), "arch_optimizer": self.arch_opt.state_dict(),
            "generator": self.gen.get_state(), "rng": rng_states(), "config": self.cfg, "space": self.cfg["space"],
            "num_classes": self.data.num_classes, "world_size": self.info.world_size,
        })

    def _load(self) -> None:
        ck = load_checkpoint(self.run_dir)
        if "dist_kind" not in ck:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' is not from an FP-NAS/PARSEC search; "
                                "point run.dir at a search run")
        if ck.get("world_size", 1) != self.info.world_size:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' was written by {ck['world_size']} process(es); "
                                f"resume with the same number (now {self.info.world_size}) so the data order holds")
        if ck["dist_kind"] == "joint" and self.dist_kind == "factorized":
            self.switch_to_joint()
        self.net.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.dist.load_state_dict(ck["dist"])
        self.arch_opt.load_state_dict(ck["arch_optimizer"])
        self.gen.set_state(ck["generator"])
        set_rng_states(ck["rng"])
        self.step, self.arch_steps = ck["step"], ck["arch_steps"]
        self.samples_total, self.search_seconds = ck["samples_total"], ck["search_seconds"]
        self.samples_warmup = ck.get("samples_warmup", 0)
