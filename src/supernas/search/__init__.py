"""AttentiveNAS stage 2: evolutionary search under FLOPs or latency budgets, Pareto sets, and the
`search` / `predictor` commands on a trained run (Archs are scored by `supernas.evaluation`)."""
from .budgets import parse_budgets
from .evolution import EvolutionSearch
from .guided import GuidedSearch
from .job import SearchJob
from .pareto import ParetoEntry, format_table, offline_pareto_sets, pareto_front, pareto_indices, write_pareto
from .plots import plot_pareto
from .runner import search_run
from .stepwise import SearchResult
from .strategies import OPTIONS, STRATEGIES, RandomSearch, SearchSettings

__all__ = ["EvolutionSearch", "GuidedSearch", "OPTIONS", "ParetoEntry", "RandomSearch", "STRATEGIES", "SearchJob",
           "SearchResult",
           "SearchSettings", "format_table", "offline_pareto_sets", "parse_budgets", "pareto_front", "pareto_indices",
           "plot_pareto", "search_run", "write_pareto"]
