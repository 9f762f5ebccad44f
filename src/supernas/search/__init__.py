"""Search: evaluating Archs from a supernet, evolutionary search under FLOPs or latency budgets, Pareto sets."""
from .budgets import parse_budgets
from .evaluate import Evaluator
from .evolution import EvolutionSearch, SearchResult
from .latency import LatencyTable, compare_latency, measure_end_to_end
from .pareto import ParetoEntry, format_table, offline_pareto_sets, pareto_front, pareto_indices, write_pareto
from .results import plot_pareto

__all__ = ["Evaluator", "EvolutionSearch", "LatencyTable", "ParetoEntry", "SearchResult", "compare_latency",
           "format_table", "measure_end_to_end", "offline_pareto_sets", "parse_budgets", "pareto_front",
           "pareto_indices", "plot_pareto", "write_pareto"]
