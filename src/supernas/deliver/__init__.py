"""Taking a found Arch home: calibrated static models exported as PyTorch, TorchScript or ONNX."""
from .evaluate_model import evaluate_model, load_exported, measure_latency
from .export import export_arch

__all__ = ["evaluate_model", "export_arch", "load_exported", "measure_latency"]
