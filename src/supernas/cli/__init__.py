"""The `supernas` command.

Each command declares its arguments beside its handler (`@command` of `commands.py`), grouped by what
it is for: `inspection.py` (spaces, costs, configs, data, an export's accuracy, the report),
`training.py` (the four trainings and the quickstart) and `stage2.py` (search, predictor, export,
import); `arguments.py` holds the groups of arguments several commands share, `parser.py` assembles
the parser and reads numbers and paths, `main.py` turns what goes wrong into one line and an exit
status. Bad input raises `SupernasError`, which `main` prints as one line on stderr with exit
status 2 (never a traceback).
"""
from .commands import COMMANDS
from .main import main
from .parser import build_parser, parse_args

__all__ = ["COMMANDS", "build_parser", "main", "parse_args"]
