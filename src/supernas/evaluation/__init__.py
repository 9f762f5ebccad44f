"""Measuring Archs and models, below both stage 1 and stage 2: accuracy of Archs inherited from a
supernet after BN re-calibration (`Evaluator`), per-layer latency tables (`LatencyTable`),
accuracy and latency of exported static models, and trained run directories read back."""
from .evaluator import Evaluator
from .latency import WINDOW_S, LatencyTable, build_latency_table, compare_latency, measure_end_to_end
from .runs import load_run, load_supernet
from .static_models import evaluate_model, load_exported, measure_latency, time_forward

__all__ = ["WINDOW_S", "Evaluator", "LatencyTable", "build_latency_table", "compare_latency", "evaluate_model",
           "load_exported", "load_run", "load_supernet", "measure_end_to_end", "measure_latency", "time_forward"]
