"""Search: evaluating Archs from a supernet, evolutionary search under FLOPs budgets, Pareto sets."""
from .budgets import parse_budgets
from .evaluate import Evaluator
from .evolution import EvolutionSearch, SearchResult
from .pareto import (ParetoEntry, format_table, offline_pareto_sets, pareto_front, pareto_indices, plot_pareto,
                     write_pareto)

__all__ = ["Evaluator", "EvolutionSearch", "ParetoEntry", "SearchResult", "format_table", "offline_pareto_sets",
           "parse_budgets", "pareto_front", "pareto_indices", "plot_pareto", "write_pareto"]
