"""Accuracy predictors: fit on evaluated Archs, rank many more without evaluating them."""
from .forest import (
    AccuracyPredictor,
    fit_from_evaluations,
    held_out_predictions,
    import_attentivenas_predictor,
    load_predictor,
    run_predictor_path,
)
from .metrics import kendall_tau, pearson_r

__all__ = ["AccuracyPredictor", "fit_from_evaluations", "held_out_predictions", "import_attentivenas_predictor",
           "kendall_tau", "load_predictor", "pearson_r", "run_predictor_path"]
