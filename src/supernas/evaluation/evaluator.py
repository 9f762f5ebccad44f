"""Accuracy of Archs inherited from a trained supernet: re-calibrate BN, then top-1/top-5.

Every Arch is calibrated on the same images (a fixed-seed order and augmentation) and scored on the
same split, so the batches are read, augmented and moved to the device once and kept there for the
next Archs when they fit in `keep_bytes` (by default a quarter of a GPU's free memory, 2 GiB on a
CPU); otherwise they are read again for each Arch. Either way an Arch gets the same batches.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..errors import SupernasError
from ..nn.calibrate import preserved_bn_stats, recalibrate_bn
from ..runtime.precision import autocast
from ..spaces import Arch

if TYPE_CHECKING:
    from ..nn import SuperNet

CACHE_VERSION = 1
KEEP_FRACTION = 0.25  # of a GPU's free memory that the batches every Arch reuses may hold
CPU_KEEP_BYTES = 2 << 30


class Evaluator:
    """Scores Archs of `supernet` on `data` (a :class:`~supernas.data.Datasets`).

    Each Arch's BN statistics are re-estimated from `bn_batches` calibration batches (a fixed-seed
    order, so every Arch sees the same images) inside `preserved_bn_stats`, leaving the supernet as
    it was. `split='search'` falls back to val when the data has no search split; `fallback` then
    says so, for the caller to warn. Results are cached per Arch.
    """

    def __init__(self, supernet: SuperNet, data: Any, device: "str | torch.device" = "cpu",
                 bn_batches: int = 64, batch_size: int = 256, split: str = "search", max_batches: int | None = None,
                 amp_dtype: torch.dtype | None = None, calib_seed: int = 0, channels_last: bool = False,
                 keep_bytes: int | None = None):
        if split not in ("search", "val"):
            raise SupernasError(f"split must be 'search' or 'val', got {split!r}")
        for name, v in (("bn_batches", bn_batches), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SupernasError(f"{name} must be a positive integer, got {v!r}")
        if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
            raise SupernasError(f"max_batches must be a positive integer or None, got {max_batches!r}")
        self.net, self.data = supernet, data
        self.device = torch.device(device)
        self.bn_batches, self.batch_size, self.max_batches = bn_batches, batch_size, max_batches
        self.amp_dtype, self.calib_seed, self.channels_last = amp_dtype, calib_seed, channels_last
        self.fallback: str | None = None
        view = data.search if split == "search" else data.val
        if view is None:
            self.fallback = "the data has no search split (set data.search_size); evaluating on val instead"
            view, split = data.val, "val"
        self.split, self.view = split, view
        if len(view) == 0:
            raise SupernasError(f"the {split} split is empty; nothing to evaluate on")
        self.cache: dict[Arch, dict[str, float]] = {}
        self.keep_bytes = keep_bytes  # None: KEEP_FRACTION of a GPU's free memory, CPU_KEEP_BYTES on a CPU
        self._kept: tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        self._keeping: bool | None = None  # decided at the first Arch

    def batches_per_arch(self) -> tuple[int, int]:
        """(BatchNorm re-calibration batches, scoring batches) that one Arch's evaluation runs."""
        calibration = len(self.data.calibration)
        bn = min(self.bn_batches, max(1, calibration // min(self.batch_size, calibration)))
        images = len(self.view)
        if self.max_batches is not None:
            images = min(images, self.max_batches * self.batch_size)
        return bn, -(-images // self.batch_size)

    def calibration_note(self) -> str:
        """'' when every asked BN re-calibration batch runs, else why fewer do ('(bn_batches 64: the
        training split holds 4 batches of 256)'), for lines that say how many ran."""
        bn = self.batches_per_arch()[0]
        if bn == self.bn_batches:
            return ""
        calibration = len(self.data.calibration)
        return (f" (bn_batches {self.bn_batches}: the training split holds {bn} batch{'es' if bn > 1 else ''} "
                f"of {min(self.batch_size, calibration)})")

    def images_per_arch(self) -> int:
        """The images of the split that one Arch's evaluation scores."""
        return min(len(self.view), self.batches_per_arch()[1] * self.batch_size)

    # ------------------------------------------------------------------ one Arch
    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _calibration_batches(self) -> Iterator[torch.Tensor]:
        """The calibration batches on the device, read afresh: call under a generator seeded with
        `calib_seed` (augmentations draw from it)."""
        n = len(self.data.calibration)
        # Full batches only when there are enough images; a tiny calibration split still gives one.
        loader = DataLoader(self.data.calibration, batch_size=min(self.batch_size, n), shuffle=True,
                            num_workers=0, drop_last=True, generator=torch.Generator().manual_seed(self.calib_seed))
        return (self._to_device(x) for x, _ in loader)

    def _scoring_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The split's batches (at most `max_batches`) on the device, read afresh."""
        loader = DataLoader(self.view, batch_size=self.batch_size, shuffle=False, num_workers=0)
        for x, y in itertools.islice(loader, self.max_batches):
            yield self._to_device(x), y.to(self.device, non_blocking=True)

    def _keep_budget(self) -> int:
        if self.keep_bytes is not None:
            return self.keep_bytes
        if self.device.type == "cuda":
            return int(KEEP_FRACTION * torch.cuda.mem_get_info(self.device)[0])
        return CPU_KEEP_BYTES

    def _batches(self) -> tuple[Iterable[torch.Tensor], Iterable[tuple[torch.Tensor, torch.Tensor]]]:
        """(calibration batches, scoring batches) for one Arch: the kept ones, or read afresh."""
        if self._keeping is None:
            bn, scoring = self.batches_per_arch()
            image = self.view[0][0]
            self._keeping = (bn + scoring) * self.batch_size * image.numel() * image.element_size() \
                <= self._keep_budget()
        if not self._keeping:
            return self._seeded_calibration(), self._scoring_batches()
        if self._kept is None:
            self._kept = (list(self._seeded_calibration()), list(self._scoring_batches()))
        return self._kept

    def _seeded_calibration(self) -> Iterator[torch.Tensor]:
        """The first `bn_batches` calibration batches, their augmentations drawn from `calib_seed` on a
        fork of torch's generator (the caller's random stream is left where it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.calib_seed)
            yield from itertools.islice(self._calibration_batches(), self.bn_batches)

    @torch.no_grad()
    def _measure(self, arch: Arch) -> dict[str, float]:
        was_training = self.net.training
        try:
            return self._measure_in(arch)
        finally:
            self.net.train(was_training)

    def _measure_in(self, arch: Arch) -> dict[str, float]:
        calibration, scoring = self._batches()
        with preserved_bn_stats(self.net):
            with self._autocast():
                recalibrate_bn(self.net, calibration, lambda x: self.net(x, arch), self.bn_batches)
            self.net.eval()
            sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, top-1, top-5 hits
            count = 0
            for x, y in scoring:
                with self._autocast():
                    logits = self.net(x, arch)
                logits = logits.float()
                k = min(5, logits.shape[-1])
                hit = logits.topk(k, dim=-1).indices == y[:, None]
                # summed on the device and read once per Arch: no host wait between batches
                sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), hit[:, 0].sum().double(),
                                     hit.any(-1).sum().double()])
                count += y.numel()
        loss, top1, top5 = sums.tolist()
        return {"top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count, "loss": loss / count}

    def evaluate(self, arch: Arch) -> dict[str, float]:
        """{"top1", "top5" (percent), "loss" (mean cross-entropy)} of `arch`, from the cache if seen."""
        if not isinstance(arch, Arch):
            arch = self.net.space.arch(arch)
        if arch not in self.cache:
            self.cache[arch] = self._measure(arch)
        return dict(self.cache[arch])

    # ------------------------------------------------------------------ many Archs
    def evaluate_many(self, archs: Sequence[Arch], progress: bool = False) -> list[dict[str, float]]:
        """Results for `archs` in order (a progress bar on the main rank with `progress`). Under
        torch.distributed every rank must call this with the same list: the uncached Archs are split
        over ranks and the results gathered, so all ranks get all."""
        import torch.distributed as dist

        from ..runtime.logging import progress_bar

        archs = [a if isinstance(a, Arch) else self.net.space.arch(a) for a in archs]
        todo = list(dict.fromkeys(a for a in archs if a not in self.cache))
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        mine = todo[rank::world]
        bar = progress_bar(len(mine), "evaluating", "Archs", enabled=progress and rank == 0 and bool(mine))
        measured = {}
        for a in mine:
            measured[a.to_json()] = self._measure(a)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        gathered: list[Any] = [measured]
        if distributed:
            gathered = [None] * world
            dist.all_gather_object(gathered, measured)
        lookup = {a.to_json(): a for a in todo}
        for part in gathered:
            for key, res in part.items():
                self.cache[lookup[key]] = res
        return [self.evaluate(a) for a in archs]

    def score_fn(self, archs: Sequence[Arch]) -> list[float]:
        """Top-1 of each Arch: the `score_fn` an EvolutionSearch takes."""
        return [r["top1"] for r in self.evaluate_many(archs)]

    # ------------------------------------------------------------------ resume
    def _settings(self) -> dict[str, Any]:
        return {"space": self.net.space.name, "split": self.split, "bn_batches": self.bn_batches,
                "batch_size": self.batch_size, "max_batches": self.max_batches}

    def cache_state(self) -> dict[str, Any]:
        """JSON-able cache with the settings it was measured under."""
        return {"version": CACHE_VERSION, "settings": self._settings(),
                "results": [{"arch": a.to_dict(), **r} for a, r in self.cache.items()]}

    def load_cache(self, state: Mapping[str, Any]) -> int:
        """Add the results of `cache_state()`; returns how many. Refuses results measured differently."""
        if not isinstance(state, Mapping) or state.get("version") != CACHE_VERSION:
            raise SupernasError("not an evaluation cache of this supernas version; delete it to re-evaluate")
        saved, mine = state.get("settings", {}), self._settings()
        diff = [k for k in mine if saved.get(k) != mine[k]]
        if diff:
            k = diff[0]
            raise SupernasError(f"the evaluation cache was measured with {k}={saved.get(k)!r}, this run uses "
                                f"{mine[k]!r}; use the same settings or delete the cache")
        for r in state["results"]:
            self.cache[self.net.space.arch(r["arch"])] = {k: float(v) for k, v in r.items() if k != "arch"}
        return len(state["results"])
