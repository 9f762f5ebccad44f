"""Parsing FLOPs budgets given on the command line."""
from __future__ import annotations

import math

from ..errors import SupernasError

_HELP = "give budgets in MFLOPs as one number (300), a comma list (200,400,600) or start:stop:step (200:800:100)"


def _num(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise SupernasError(f"'{text}' is not a number; {_HELP}") from None
    if not math.isfinite(v) or v <= 0:
        raise SupernasError(f"budget {text} must be a positive MFLOPs value; {_HELP}")
    return v


def parse_budgets(text: "str | float | int") -> list[float]:
    """Budgets as increasing MFLOPs values; 'start:stop:step' includes stop when the steps reach it."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return [_num(str(text))]
    if not isinstance(text, str) or not text.strip():
        raise SupernasError(f"no budgets given; {_HELP}")
    s = text.strip()
    if ":" in s:
        parts = s.split(":")
        if len(parts) != 3:
            raise SupernasError(f"budget range '{s}' must be start:stop:step; {_HELP}")
        start, stop, step = (_num(p.strip()) for p in parts)
        if stop < start:
            raise SupernasError(f"budget range '{s}' stops below its start; write start:stop:step with start <= stop")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        out = [round(start + i * step, 9) for i in range(count)]
    else:
        out = [_num(p.strip()) for p in s.split(",") if p.strip()]
        if not out:
            raise SupernasError(f"no budgets in '{s}'; {_HELP}")
    return sorted(set(out))
