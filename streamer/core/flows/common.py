"""Helpers shared by the flow models: the execution lag of a target exposure, NaN-skipping sums."""
from __future__ import annotations

import math
from collections import deque

__all__ = ["NAN", "lagged", "nansum"]

NAN = math.nan


def lagged(targets: deque[float], lag: int) -> float:
    """Exposure applied today = target set ``lag`` closes ago (NaN until known)."""
    return targets[0] if len(targets) == lag + 1 else NAN



def nansum(*xs: float) -> float:
    """Sum of the non-NaN terms (NaN if all are NaN)."""
    vals = [x for x in xs if x == x]
    return sum(vals) if vals else NAN
