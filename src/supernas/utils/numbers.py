"""Numbers a user types: parsed strictly, checked against bounds before anything is allocated.

One place decides how the command line reads a number, so every flag reads them alike:

- plain decimal notation, optionally with an exponent (`1000`, `1e3`, `0.5`); an integer flag
  takes a float spelling only when it is a whole number (`1e3` is 1000, `2.5` is refused);
- no underscores (`1_000` is refused, not read as 1000: a digit group typed by mistake, e.g.
  `1_00`, would otherwise pass silently);
- finite values only (`1e309`, `inf` and `nan` are refused with "must be finite");
- a count has an upper bound that keeps what it sizes in memory (the bound is in the message).
"""
from __future__ import annotations

import math
import re

from ..errors import SupernasError

# Optional sign, digits with an optional fraction (or a fraction alone), an optional exponent.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

NUMBER_RULES = "plain decimal numbers (1000, 1e3, 0.5); no underscores"


def parse_real(text: "str | float | int", where: str) -> float:
    """A finite float from `text`; a SupernasError naming `where` otherwise."""
    if isinstance(text, bool):
        raise SupernasError(f"{where} must be a number, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text) if not isinstance(text, int) or abs(text) < 1 << 1023 else math.inf
    else:
        s = str(text).strip()
        if "_" in s:
            raise SupernasError(f"{where} must be written without underscores, got '{s}' (write {s.replace('_', '')})")
        if s.lower().lstrip("+-") in ("inf", "infinity", "nan"):
            raise SupernasError(f"{where} must be finite, got '{s}'")
        if not _NUMBER.fullmatch(s):
            raise SupernasError(f"{where} must be a number ({NUMBER_RULES}), got '{s}'")
        value = float(s)
    if not math.isfinite(value):
        raise SupernasError(f"{where} must be finite (at most about 1.8e308), got {text}")
    return value


def parse_int(text: "str | float | int", where: str, minimum: int | None = None,
              maximum: int | None = None, why_max: str = "") -> int:
    """An integer in [minimum, maximum] from `text` (`1e3` is 1000, `2.5` is refused); `why_max`
    says in the message why there is an upper bound."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        real = parse_real(text, where)
        if not real.is_integer():
            raise SupernasError(f"{where} must be a whole number, got {text}")
        value = int(real)
    if minimum is not None and value < minimum:
        raise SupernasError(f"{where} must be at least {minimum}, got {text}")
    if maximum is not None and value > maximum:
        raise SupernasError(f"{where} must be at most {maximum:,}, got {text}" + (f" ({why_max})" if why_max else ""))
    return value


def check_real(value: float, where: str, minimum: float | None = None, maximum: float | None = None,
               exclusive_min: bool = False) -> float:
    """`value` within bounds (a SupernasError naming `where` otherwise)."""
    value = parse_real(value, where)
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        raise SupernasError(f"{where}={value:g} is out of range: {'above' if exclusive_min else 'at least'} "
                            f"{minimum:g}")
    if maximum is not None and value > maximum:
        raise SupernasError(f"{where}={value:g} is out of range: at most {maximum:g}")
    return value
