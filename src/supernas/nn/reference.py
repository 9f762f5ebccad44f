"""The AttentiveNAS reference implementation's checkpoint layout (facebookresearch/AttentiveNAS,
the published `attentive_nas_pretrained.pth.tar`): read it into a `SuperNet`, write one back.

The reference stores `{'state_dict': {'module.' + key: tensor}, ...}` with its own module names
(`first_conv.conv.conv.weight`, `blocks.N.mobile_inverted_conv.depth_conv.bn.bn.running_var`, ...),
1x1 layers of the squeeze-excitation and head as 4-d conv weights, and two extra BatchNorms per
BatchNorm (`bn_tracking.*`, statistics it kept for monitoring). The tensors themselves are the
same slices supernas uses, so a translation of names and shapes is all an import needs; the
`attentivenas` space computes exactly what the reference computes (tests/test_reference_checkpoint.py).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..errors import SupernasError
from ..spaces import SearchSpace

if TYPE_CHECKING:
    from .supernet import SuperNet

PREFIX = "module."  # the reference saves its DistributedDataParallel wrapper's state dict
TRACKING = ".bn_tracking."

# (supernas module path, reference module path); block paths follow `blocks.N.`.
_MODULES = (
    ("stem_conv", "first_conv.conv.conv"),
    ("stem_bn", "first_conv.bn.bn"),
    ("expand_conv", "mobile_inverted_conv.inverted_bottleneck.conv.conv"),
    ("expand_bn", "mobile_inverted_conv.inverted_bottleneck.bn.bn"),
    ("dw_conv", "mobile_inverted_conv.depth_conv.conv.conv"),
    ("dw_bn", "mobile_inverted_conv.depth_conv.bn.bn"),
    ("attention.reduce", "mobile_inverted_conv.depth_conv.se.fc.reduce"),
    ("attention.expand", "mobile_inverted_conv.depth_conv.se.fc.expand"),
    ("project_conv", "mobile_inverted_conv.point_linear.conv.conv"),
    ("project_bn", "mobile_inverted_conv.point_linear.bn.bn"),
    ("shortcut_conv", "shortcut.conv.conv"),
    ("head_conv", "last_conv.final_expand_layer.conv.conv"),
    ("head_bn", "last_conv.final_expand_layer.bn.bn"),
    ("head_mix", "last_conv.feature_mix_layer.conv.conv"),
    ("classifier", "classifier.linear.linear"),
)
_TO_REFERENCE = dict(_MODULES)
_KEY = re.compile(r"^(blocks\.\d+\.)?(.+)\.(\w+)$")
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def check_reference_layout(space: SearchSpace) -> None:
    """Raise unless the reference's network computes `space`'s Archs as supernas does: MBConv
    stages with one choice per stage, squeeze-excitation (hard sigmoid) on or off per stage, a
    projection shortcut on every block, the expanded pooled head. (The reference's own code
    builds that head at 6x only, as `attentivenas` has it; smaller spaces such as
    `attentivenas-tiny` round-trip through the layout but are read by supernas alone.)"""
    s = space.spec
    problems = []
    if s.shortcut != "projection":
        problems.append("identity shortcuts (the reference projects every block's shortcut)")
    if s.head_kind != "mbpool":
        problems.append("a convolutional head (the reference expands, pools, then mixes)")
    for st in s.stages:
        if st.per_block:
            problems.append(f"per-block choices in stage {st.name}")
        if len(st["attention"].choices) != 1 or st["attention"].choices[0] not in (0, 1):
            problems.append(f"attention other than squeeze-excitation on or off in stage {st.name}")
        elif st["attention"].choices[0] == 1 and s.gate != "hsigmoid":
            problems.append("a squeeze-excitation gate other than the hard sigmoid")
        if len(st["act"].choices) != 1:
            problems.append(f"a searched activation in stage {st.name}")
        expands = st["expand"].choices
        if 1 in expands and len(expands) > 1:
            # the reference runs the 1x1 expansion at ratio 1 when a larger ratio is possible; supernas skips it
            problems.append(f"expansion ratio 1 beside others in stage {st.name}")
    if problems:
        raise SupernasError(f"space '{space.name}' has {problems[0]}; the AttentiveNAS reference checkpoint layout "
                            "describes AttentiveNAS-style spaces only (such as attentivenas, attentivenas-tiny)")


def reference_key(name: str) -> str:
    """The reference's name (without 'module.') of a `SuperNet` state-dict entry."""
    m = _KEY.match(name)
    if m is None or m.group(2) not in _TO_REFERENCE:
        raise SupernasError(f"'{name}' has no place in the AttentiveNAS reference layout")
    return f"{m.group(1) or ''}{_TO_REFERENCE[m.group(2)]}.{m.group(3)}"


def _as_reference(name: str, t: torch.Tensor) -> torch.Tensor:
    """Linear layers that the reference runs as 1x1 convolutions get their two trailing unit dims."""
    if t.dim() == 2 and not name.startswith("classifier."):
        return t[:, :, None, None]
    return t


def reference_state_dict(net: SuperNet) -> "OrderedDict[str, torch.Tensor]":
    """`net`'s tensors under the reference's names and shapes, in the reference's order, with the
    'module.' prefix and fresh `bn_tracking` statistics (supernas keeps none), as the reference's
    `load_weights_from_pretrained_models` expects every key of its model."""
    check_reference_layout(net.space)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, t in net.state_dict().items():
        key = reference_key(name)
        out[PREFIX + key] = _as_reference(name, t.detach().cpu()).clone()
        if key.endswith(".bn.num_batches_tracked"):
            bn = key[: -len(".num_batches_tracked")]
            channels = out[PREFIX + bn + ".running_mean"].shape[0]
            for i in range(2):
                track = f"{PREFIX}{bn[: -len('.bn')]}{TRACKING[:-1]}.{i}"
                out[f"{track}.running_mean"] = torch.zeros(channels)
                out[f"{track}.running_var"] = torch.ones(channels)
                out[f"{track}.num_batches_tracked"] = torch.tensor(0)
    return out


def reference_checkpoint(net: SuperNet) -> dict[str, Any]:
    """The official checkpoint layout, `{'state_dict': {'module.' + key: tensor}}`."""
    return {"state_dict": reference_state_dict(net)}


# ------------------------------------------------------------------------------------------- reading
def _load_weights_only(path: Path) -> Any:
    """torch.load without executing code from the file. Objects of classes the file names but
    weights-only loading does not know (the reference saves its config, `args`, beside the weights)
    are read as plain mappings of their attributes: those classes are never imported or run."""
    unknown: list[str] = []
    for _ in range(32):
        try:
            if unknown:
                with torch.serialization.safe_globals([(OrderedDict, name) for name in unknown]):
                    return torch.load(path, map_location="cpu", weights_only=True)
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure to unpickle is the user's file
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
            if found is None or found.group(1) in unknown or not hasattr(torch.serialization, "safe_globals"):
                raise SupernasError(f"{_load_failure(path, e)}; give the checkpoint file (.pth.tar) of a "
                                    "supernet") from None
            unknown.append(found.group(1))
    raise SupernasError(f"cannot read '{path}': it names too many classes that are not weights")


def _load_failure(path: Path, e: Exception) -> str:
    """What the file at `path` is not, when torch.load failed on it with `e`: PyTorch's own text
    asks the user to file an issue and spans several lines."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):
        kind = "a zip archive as torch.save writes, but no readable checkpoint (damaged or cut short?)"
    elif head[:1] == b"\x80":
        kind = "a pickle, but not one of tensors and plain data"
    else:
        return (f"'{path}' is not a PyTorch checkpoint: neither the zip archive torch.save writes nor a pickle "
                f"({'it is empty' if not head else 'it starts with the bytes ' + head.hex(' ')})")
    text = str(e).split("WeightsUnpickler error:", 1)[-1]
    detail = next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
    return f"'{path}' is {kind}: {detail.split('. ')[0][:200]}"


def _shape(t: Any) -> str:
    return str(list(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def read_reference_checkpoint(source: "str | Path | Mapping[str, Any]") -> "OrderedDict[str, torch.Tensor]":
    """The state dict of a reference checkpoint (a path, a loaded checkpoint or a bare state dict),
    keys without 'module.', `bn_tracking` entries dropped."""
    where = "the checkpoint"
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise SupernasError(f"no checkpoint at '{source}'; give the path of the .pth.tar file")
        where = f"'{source}'"
        source = _load_weights_only(path)
    if not isinstance(source, Mapping):
        raise SupernasError(f"{where} holds a {type(source).__name__}, not a state dict or {{'state_dict': ...}}")
    sd = source["state_dict"] if isinstance(source.get("state_dict"), Mapping) else source
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, t in sd.items():
        if not isinstance(key, str) or not isinstance(t, torch.Tensor):
            raise SupernasError(f"{where} is not a state dict: its entry {key!r} holds a {_shape(t)}, not a tensor")
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        if TRACKING in f".{name}":
            continue
        if name in out:
            raise SupernasError(f"{where} holds '{name}' twice, with and without the '{PREFIX}' prefix")
        out[name] = t
    if not out:
        raise SupernasError(f"{where} holds no tensors of a supernet")
    return out


def reference_num_classes(sd: Mapping[str, torch.Tensor]) -> int:
    w = sd.get("classifier.linear.linear.weight")
    if w is None or w.dim() != 2:
        raise SupernasError("the checkpoint lacks 'classifier.linear.linear.weight' (2-d): it is not an "
                            "AttentiveNAS supernet")
    return int(w.shape[0])


def load_reference_weights(net: SuperNet, sd: Mapping[str, torch.Tensor]) -> None:
    """Copy a reference state dict (from `read_reference_checkpoint`) into `net`, BN statistics
    included; the first missing, unexpected or mis-shaped tensor is an error naming it."""
    check_reference_layout(net.space)
    ours = net.state_dict()
    by_reference = {reference_key(name): name for name in ours}
    for key, name in by_reference.items():
        want = _as_reference(name, ours[name])
        if key not in sd:
            raise SupernasError(f"the checkpoint lacks '{key}' (shape {list(want.shape)}) of the {net.space.name} "
                                "supernet: it is a supernet of another space, or not a supernet")
        if tuple(sd[key].shape) != tuple(want.shape):
            raise SupernasError(f"'{key}' has shape {list(sd[key].shape)} in the checkpoint but {list(want.shape)} "
                                f"in the {net.space.name} supernet: the checkpoint is of another space")
    for key, t in sd.items():
        if key not in by_reference:
            raise SupernasError(f"the checkpoint holds '{key}' (shape {list(t.shape)}), which the {net.space.name} "
                                "supernet has no place for: it is a supernet of another space")
    with torch.no_grad():
        for key, name in by_reference.items():
            ours[name].copy_(sd[key].reshape(ours[name].shape))
