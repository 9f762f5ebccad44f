"""supernas: neural architecture search of efficient image classifiers (AttentiveNAS, FP-NAS)."""
from .errors import SupernasError
from .spaces import Arch, CostModel, SearchSpace, get_space, list_spaces, load_arch

__version__ = "0.1.0"

__all__ = ["Arch", "CostModel", "SearchSpace", "SupernasError", "get_space", "list_spaces", "load_arch", "__version__"]
