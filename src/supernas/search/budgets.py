"""Parsing budgets (MFLOPs, or ms of latency) given on the command line."""
from __future__ import annotations

import math

from ..errors import SupernasError
from ..utils.numbers import parse_real

_HELP = "give budgets in {unit} as one number (300), a comma list (200,400,600) or start:stop:step (200:800:100)"
# Each budget is searched on its own: more than this many is a typo (a step too small), and a
# range's count is checked against it before any list is built.
MAX_BUDGETS = 1000


def _num(text: str, unit: str, what: str | None = None) -> float:
    """A positive, finite number; `what` names it in the error (default: 'budget TEXT')."""
    try:
        v = parse_real(text, what or "a budget")
    except SupernasError as e:
        raise SupernasError(f"{e}; {_HELP.format(unit=unit)}") from None
    if v <= 0:
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
        steps = (stop - start) / step  # inf when it overflows: refused below, never turned into an int
        if not steps + 1 <= MAX_BUDGETS:
            raise SupernasError(f"budget range '{s}' holds {steps + 1:.3g} budgets; at most {MAX_BUDGETS} are "
                                "searched at once (raise the step)")
        count = int(math.floor(steps + 1e-9)) + 1
        out = [round(start + i * step, 9) for i in range(count)]
    else:
        items = s.split(",")
        if any(not p.strip() for p in items):
            raise SupernasError(f"budget list '{s}' has an empty item; {help_}")
        if len(items) > MAX_BUDGETS:
            raise SupernasError(f"budget list '{s[:40]}...' holds {len(items)} budgets; at most {MAX_BUDGETS} are "
                                "searched at once")
        out = [_num(p.strip(), unit) for p in items]
    return sorted(set(out))
