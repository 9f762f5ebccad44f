"""Taking a found Arch home: calibrated static models exported as PyTorch, TorchScript or ONNX."""
from .export import export_arch

__all__ = ["export_arch"]
