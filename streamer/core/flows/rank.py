"""Bounded trailing window with O(log n) rank queries (the VIX one-day change rank)."""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

from streamer.core.flows.common import NAN

__all__ = ["RankHistory"]


@dataclass(slots=True)
class RankHistory:
    """Bounded trailing window of values with O(log n) rank queries (sorted copy + FIFO).

    ``pct_rank(x)`` = fraction of the window's values <= x; ``low_rank(x)`` = 1 + number of values
    strictly below x (1 = lower than everything in the window: e.g. the largest drop).
    Insertion/removal is one bisect and a list memmove per day.

    >>> h = RankHistory(window=4)
    >>> for x in (0.05, -0.10, 0.02, -0.03, 0.01):   # 0.05 leaves
    ...     h.push(x)
    >>> h.pct_rank(-0.2), h.low_rank(-0.2), h.pct_rank(0.015), h.low_rank(0.015)
    (0.0, 1, 0.75, 4)
    """

    window: int
    fifo: deque[float] = field(default_factory=deque)
    ordered: list[float] = field(default_factory=list)

    def push(self, x: float) -> None:
        """Append x (finite); the oldest value leaves once the window is full."""
        if not math.isfinite(x):
            return
        if len(self.fifo) == self.window:
            old = self.fifo.popleft()
            del self.ordered[bisect.bisect_left(self.ordered, old)]
        self.fifo.append(x)
        bisect.insort(self.ordered, x)

    def __len__(self) -> int:
        return len(self.fifo)

    def pct_rank(self, x: float) -> float:
        """Fraction of stored values <= x (NaN if empty or x is NaN)."""
        n = len(self.ordered)
        if n == 0 or x != x:
            return NAN
        return bisect.bisect_right(self.ordered, x) / n

    def low_rank(self, x: float) -> float:
        """1 + count of stored values < x (1 = new low of the window); NaN if empty or x NaN."""
        if not self.ordered or x != x:
            return NAN
        return bisect.bisect_left(self.ordered, x) + 1

    def to_state(self) -> dict[str, Any]:
        return {"window": self.window, "fifo": list(self.fifo)}

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> RankHistory:
        fifo = deque(float(x) for x in d["fifo"])
        return cls(int(d["window"]), fifo, sorted(fifo))
