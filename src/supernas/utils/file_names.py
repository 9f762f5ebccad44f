"""The names of the files supernas commands write, in one place.

A run directory (`train`, `fpnas`, `retrain`, `finetune`, `import`) holds CONFIG, CHECKPOINT,
METRICS, LOG and, once finished, RESULT; a search folder (RUN/search) PARETO, EVALUATED, their
.csv twins, SEARCH_STATE and, with --cost latency, LATENCY_TABLE; an export ARCH, WEIGHTS,
MANIFEST and the model files; a run's predictor is PREDICTOR; a folder being written holds LOCK.
"""
from __future__ import annotations

CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
LOG = "log.txt"
RESULT = "result.json"
ARCH = "arch.json"
WEIGHTS = "state_dict.pt"
MANIFEST = "manifest.json"
REFERENCE_SUPERNET = "supernet.pth.tar"
PARETO = "pareto.json"
EVALUATED = "evaluated.json"
SEARCH_STATE = "search_state.json"
LATENCY_TABLE = "latency_table.json"
PREDICTOR = "predictor.npz"
LOCK = ".supernas.lock"

# What supernas commands write into runs, searches and exports, by name and by what it is: a
# file of these is never replaced by another command's output, --force or not.
OWNED = {
    CHECKPOINT: "the run's checkpoint", CONFIG: "the run's config", METRICS: "the run's metrics",
    LOG: "the run's log", RESULT: "the run's result", ARCH: "an export's Arch",
    WEIGHTS: "an export's weights", MANIFEST: "an export's manifest",
    "model.pt": "an exported model", "model.onnx": "an exported model", "model.torchscript.pt": "an exported model",
    REFERENCE_SUPERNET: "an exported supernet", PARETO: "a search's Pareto set",
    "pareto.csv": "a search's Pareto set", EVALUATED: "a search's scored Archs",
    "evaluated.csv": "a search's scored Archs", SEARCH_STATE: "a search's saved state",
    LATENCY_TABLE: "a search's latency table", LOCK: "a run's lock",
}
