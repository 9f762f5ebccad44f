"""Parsing budgets (MFLOPs, or ms of latency) given on the command line."""
from __future__ import annotations

import math

from ..errors import SupernasError

_HELP = "give budgets in {unit} as one number (300), a comma list (200,400,600) or start:stop:step (200:800:100)"


def _num(text: str, unit: str, what: str | None = None) -> float:
    """A positive, finite number; `what` names it in the error (default: 'budget TEXT')."""
    try:
        v = float(text)
    except ValueError:
        raise SupernasError(f"'{text}' is not a number; {_HELP.format(unit=unit)}") from None
    if not math.isfinite(v) or v <= 0:
        raise SupernasError(f"{what or f'budget {text}'} must be a positive {unit} value; {_HELP.format(unit=unit)}")
    return v


def parse_budgets(text: "str | float | int", unit: str = "MFLOPs") -> list[float]:
    """Budgets as increasing values (in `unit`, for messages); 'start:stop:step' includes stop when
    the steps reach it."""
    help_ = _HELP.format(unit=unit)
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return [_num(str(text), unit)]
    if not isinstance(text, str) or not text.strip():
        raise SupernasError(f"no budgets given; {help_}")
    s = text.strip()
    if ":" in s:
        parts = s.split(":")
        if len(parts) != 3:
            raise SupernasError(f"budget range '{s}' must be start:stop:step; {help_}")
        start, stop = (_num(p.strip(), unit) for p in parts[:2])
        step = _num(parts[2].strip(), unit, f"the step {parts[2].strip()} of budget range '{s}'")
        if stop < start:
            raise SupernasError(f"budget range '{s}' stops below its start; write start:stop:step with start <= stop")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        out = [round(start + i * step, 9) for i in range(count)]
    else:
        out = [_num(p.strip(), unit) for p in s.split(",") if p.strip()]
        if not out:
            raise SupernasError(f"no budgets in '{s}'; {help_}")
    return sorted(set(out))
