"""Choosing what to export from a search's results (`supernas export --pick BUDGET`): the best
searched Arch within a budget, in the unit the search bounded, only for the weights that scored it."""
from __future__ import annotations

from pathlib import Path

from ..errors import SupernasError
from ..runtime.checkpoint import weights_fingerprint
from ..utils.file_names import PARETO
from ..utils.structured import read_json


def picked_entry(search_dir: str, budget: float) -> tuple[dict, str, dict]:
    """(the pareto.json entry of the best searched Arch within `budget`, the budget's unit, the
    file's header: where the accuracies came from, which run's weights scored them): MFLOPs, or ms
    when the search bounded latency (`--cost latency`, whose entries carry latency_ms)."""
    f = Path(search_dir).expanduser() / PARETO
    if not f.is_file():
        raise SupernasError(f"no search results at '{f}'; run `supernas search RUN --budgets ...` first, or give "
                            "the folder of a search written with --out as --search DIR")
    results = read_json(f, "the search results")  # empty, garbage or too deeply nested: one line
    entries = results.get("entries") if isinstance(results, dict) else None
    key, unit = (("latency_ms", "ms") if isinstance(entries, list) and entries
                 and all(isinstance(e, dict) and "latency_ms" in e for e in entries) else ("mflops", "MFLOPs"))
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and isinstance(e.get(key), (int, float)) and isinstance(e.get("accuracy"), (int, float))
            and isinstance(e.get("arch"), dict) for e in entries):
        raise SupernasError(f"'{f}' holds no searched Archs (a list of entries with arch, {key} and accuracy); "
                            "run the search again or give another --search")
    within = [e for e in entries if e[key] <= budget]
    if not within:
        raise SupernasError(f"no searched Arch costs at most {budget:g} {unit}; raise --pick")
    return max(within, key=lambda e: e["accuracy"]), unit, {k: v for k, v in results.items() if k != "entries"}


def require_same_weights(header: dict, net, search_dir: str, run: str) -> None:
    """A search's best Arch is the best for the weights that scored it: refuse another run's search
    (searches before the fingerprint was recorded are taken as they are)."""
    searched = header.get("weights")
    if isinstance(searched, str) and searched != weights_fingerprint(net.state_dict()):
        raise SupernasError(f"the search in '{search_dir}' scored its Archs with the weights of the run "
                            f"'{header.get('run', 'another run')}', not those of '{run}'; pick from a search of "
                            f"this run (supernas search {run} ...), or export from that run")


def describe_pick(entry: dict, unit: str, score: dict) -> str:
    """'the Arch of 287.3 MFLOPs (1.21 ms), 3.10 M params, top-1 71.23 (supernet, 5000 search images)'."""
    source = score.get("source")
    if source == "predictor":
        accuracy = f"predicted top-1 {entry['accuracy']:.2f} (predictor {score.get('predictor')})"
    elif source == "supernet":
        accuracy = f"top-1 {entry['accuracy']:.2f} (the supernet on {score.get('images')} {score.get('split')} images)"
    else:
        accuracy = f"accuracy {entry['accuracy']:.2f}"
    latency = f" ({entry['latency_ms']:.3g} ms)" if unit == "ms" else ""
    return (f"the best searched Arch within it: {entry['mflops']:.4g} MFLOPs{latency}, "
            f"{entry['params'] / 1e6:.3g} M params, {accuracy}")
