"""What a resumed run may change: its config is compared with the one its checkpoint was written
under, and settings that would change what the run computes are refused with a diff.

A resumed run continues the same run: the same data order, schedule and model. Only settings of
where and how it computes, what it writes and how it is validated may change, and `train.epochs`
may grow (see `GROWS`). Everything else (seed, batch size, learning rate, space, sampler, data
splits and augmentation, search settings, ...) is refused, naming old and new values.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

from ..errors import SupernasError

# Settings a resumed run may change (a key, or a section ending in '.'): none of them changes the
# weights a run trains beyond floating-point rounding (device, precision, memory layout).
MAY_CHANGE = (
    "run.dir",  # the directory may have moved
    # where, on how many threads and in what precision it computes
    "run.device", "run.threads", "run.amp", "run.channels_last", "run.cudnn_benchmark",
    "train.recompute_bn_act",  # stores less for backward; the gradients are the same
    # which kernels compute the same convolutions, and replaying the same kernels from graphs
    "train.pointwise_kernel", "train.depthwise_kernel", "train.cuda_graphs",
    "train.workers",  # each image's augmentation is seeded by its index, not by the worker that loads it
    "train.max_steps",  # where it stops; the schedule spans train.epochs either way
    "log.", "checkpoint.",  # what it writes and how often
    "eval.", "ema.export",  # how it is validated and which weights an export takes; not the training
    "sampler.prefetch", "sampler.cache_dir",  # how far ahead Archs are drawn, where tables are cached
    # what result.json lists, how a logged figure is estimated, how the final Archs are scored
    "search.top_n", "search.mc_samples", "search.score_images", "search.score_bn_batches",
    "data.path",  # the same data moved elsewhere: the number of training images is compared instead
    "data.on_bad_image",  # skip: the fix for a run stopped by an unreadable image (the images it read are the same)
    "arch", "init",  # retrain / finetune compare the Arch they resolve to (and init's weights are replaced)
)

# Settings that may only grow. More epochs lengthen the learning-rate schedule: from the resumed
# step the rate follows the longer cosine (higher than the shorter one was), so the run ends
# where a run started with the new length would not have; that is logged. Fewer epochs would end
# the schedule before steps already taken: use train.max_steps to stop sooner.
GROWS = ("train.epochs",)


def _may_change(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in MAY_CHANGE)


def _leaves(settings: Any, saved: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(key, saved value, current value) of every setting both configs have; the structure comes
    from the current config's dataclasses, so a mapping-valued setting (space, arch) is one value.
    A setting the checkpoint lacks (added by a later version) is skipped."""
    current = settings.to_dict()
    for f in dataclasses.fields(settings):
        if f.name not in saved:
            continue
        key, value = f"{prefix}{f.name}", getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            if isinstance(saved[f.name], Mapping):
                yield from _leaves(value, saved[f.name], f"{key}.")
            continue
        yield key, saved[f.name], current[f.name]


def _same(key: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if key == "space" and old is not None and new is not None:  # a name and a file of the same space are one space
        from ..spaces import get_space

        try:
            return get_space(old).spec == get_space(new).spec
        except SupernasError:
            return False
    return False


def compare_resumed_config(saved: Mapping[str, Any], settings: Any, where: str) -> list[str]:
    """Refuse a resume whose config differs from the checkpoint's `saved` one in a setting that
    changes the run (one line naming every such key with its old and new value); return the
    allowed changes as 'key old -> new' lines for the log."""
    refused, allowed = [], []
    for key, old, new in _leaves(settings, saved):
        if _same(key, old, new):
            continue
        change = f"{key} {old!r} -> {new!r}"
        if _may_change(key):
            allowed.append(change)
        elif key in GROWS and isinstance(old, int) and isinstance(new, int) and new > old:
            allowed.append(f"{change} (the learning-rate schedule now spans {new} epochs from the resumed step on)")
        else:
            refused.append(change + (" (it may only grow; use train.max_steps to stop sooner)" if key in GROWS else ""))
    if refused:
        raise SupernasError(f"the run in '{where}' was started with other settings: {'; '.join(refused)}; resume "
                            "with the values it was started with, or start a new run in another run.dir")
    return allowed
