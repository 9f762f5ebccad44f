"""Taking a found Arch home: calibrated static models exported as PyTorch, TorchScript or ONNX, and
supernets in the AttentiveNAS reference layout."""
from .export import export_arch

__all__ = ["export_arch"]
