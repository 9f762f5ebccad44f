"""Elastic layers, the weight-sharing SuperNet, and the static models it extracts."""
from .reference import reference_checkpoint
from .static import StaticNet
from .supernet import SuperNet

__all__ = ["StaticNet", "SuperNet", "reference_checkpoint"]
