"""Rolling windows over values: count-based and event-time sample variance, zero-mean mean square.

A window keeps a deque and reverts the value that leaves (river's ``Rolling``), so the cost per
update does not depend on the window length. ``RollingVar`` and ``TimeRollingVar`` share the Welford
statistic and its read-outs (``_WelfordWindow``); they differ only in what leaves and when.
"""
from __future__ import annotations

import math  # noqa: F401  (doctests)
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # noqa: F401  (doctests)

from streamer.core.realized.accumulators import CompensatedSum, Var, window_mean
from streamer.core.realized.state import check_type, header, load_opt_int, register

__all__ = ["RollingVar", "TimeRollingVar", "RollingMeanSquare"]


class _WelfordWindow:
    """Read-outs of a window whose values live in a Welford ``stat`` (sample variance, ddof)."""

    __slots__ = ()
    stat: Var
    ddof: int

    def _init_stat(self, size: int, what: str) -> None:
        if size < 1:
            raise ValueError(f"{what} must be >= 1, got {size}")
        if self.stat is None:
            self.stat = Var(self.ddof)

    @property
    def n(self) -> int:
        return self.stat.n

    @property
    def mean(self) -> float:
        return self.stat.mean

    def get(self) -> float:
        """Sample variance of the window (units of x squared); NaN while n <= ddof."""
        return self.stat.get()


@register
@dataclass(slots=True)
class RollingVar(_WelfordWindow):
    """Sample variance over the last ``window`` values (Welford + deque revert), O(1) per update.

    >>> rv = RollingVar(window=3)
    >>> for x in (1.0, 2.0, 4.0, 8.0):
    ...     rv.update(x)
    >>> rv.get() == float(np.var([2.0, 4.0, 8.0], ddof=1))
    True
    """

    window: int
    ddof: int = 1
    stat: Var = field(default=None)  # type: ignore[assignment]
    buf: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._init_stat(self.window, "window")

    def update(self, x: float) -> None:
        """Append x; the oldest value leaves once the window is full."""
        buf = self.buf
        if len(buf) == self.window:
            self.stat.revert(buf.popleft())
        buf.append(x)
        self.stat.update(x)

    def to_state(self) -> dict[str, Any]:
        return {**header("RollingVar"), "window": self.window,
                "stat": self.stat.to_state(), "buf": list(self.buf)}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> RollingVar:
        check_type(d, "RollingVar")
        stat = Var.from_state(d["stat"])
        return cls(int(d["window"]), stat.ddof, stat, deque(float(x) for x in d["buf"]))


@register
@dataclass(slots=True)
class TimeRollingVar(_WelfordWindow):
    """Sample variance of values whose ts_ns lies in (watermark - window_ns, watermark].

    The watermark is the largest ts_ns seen (event time; ``advance_to`` moves it without a value).
    Out-of-order ticks: a tick with ts_ns <= watermark - window_ns is already outside the window;
    it is ignored (``update`` returns False, ``n_late`` counts it). A late tick still inside the
    window is inserted in ts order, so it leaves on time: O(1) in order, O(k) for a tick k
    positions late. Equal timestamps are kept in arrival order and leave together.

    >>> tv = TimeRollingVar(window_ns=10)
    >>> for ts, x in ((0, 1.0), (5, 2.0), (12, 4.0)):   # at 12, ts 0 has left (0 <= 12 - 10)
    ...     tv.update(ts, x)
    True
    True
    True
    >>> math.isclose(tv.get(), np.var([2.0, 4.0], ddof=1)), tv.update(1, 9.0)   # 1: too late
    (True, False)
    """

    window_ns: int
    ddof: int = 1
    stat: Var = field(default=None)  # type: ignore[assignment]
    ts: deque[int] = field(default_factory=deque)
    xs: deque[float] = field(default_factory=deque)
    watermark_ns: int | None = None
    n_late: int = 0

    def __post_init__(self) -> None:
        self._init_stat(self.window_ns, "window_ns")

    def _evict(self, cutoff: int) -> None:
        ts, xs, stat = self.ts, self.xs, self.stat
        while ts and ts[0] <= cutoff:
            ts.popleft()
            stat.revert(xs.popleft())

    def advance_to(self, ts_ns: int) -> None:
        """Move the watermark to ts_ns (if later) and drop values that left the window."""
        wm = self.watermark_ns
        if wm is None or ts_ns > wm:
            self.watermark_ns = ts_ns
            self._evict(ts_ns - self.window_ns)

    def update(self, ts_ns: int, x: float) -> bool:
        """Add x stamped ts_ns; False (and ``n_late`` += 1) if it is older than the window."""
        wm = self.watermark_ns
        if wm is None or ts_ns >= wm:
            self.ts.append(ts_ns)
            self.xs.append(x)
            self.stat.update(x)
            if wm is None or ts_ns > wm:
                self.watermark_ns = ts_ns
                self._evict(ts_ns - self.window_ns)
            return True
        if ts_ns <= wm - self.window_ns:
            self.n_late += 1
            return False
        # late but inside the window: insert after the last entry with ts <= ts_ns
        k = 0
        for t in reversed(self.ts):
            if t <= ts_ns:
                break
            k += 1
        i = len(self.ts) - k
        self.ts.insert(i, ts_ns)
        self.xs.insert(i, x)
        self.stat.update(x)
        return True

    def to_state(self) -> dict[str, Any]:
        return {**header("TimeRollingVar"), "window_ns": self.window_ns,
                "stat": self.stat.to_state(), "ts": list(self.ts), "xs": list(self.xs),
                "watermark_ns": self.watermark_ns, "n_late": self.n_late}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> TimeRollingVar:
        check_type(d, "TimeRollingVar")
        stat = Var.from_state(d["stat"])
        return cls(int(d["window_ns"]), stat.ddof, stat, deque(int(t) for t in d["ts"]),
                   deque(float(x) for x in d["xs"]), load_opt_int(d["watermark_ns"]),
                   int(d["n_late"]))


@register
@dataclass(slots=True)
class RollingMeanSquare:
    """Zero-mean variance per period: mean of r^2 over the last ``window`` returns (divisor n).

    ``get()`` is NaN until ``min_periods`` returns (default: the full window) are in.

    >>> m = RollingMeanSquare(window=2)
    >>> for r in (0.01, -0.02, 0.03):
    ...     m.update(r)
    >>> round(m.get(), 10)   # (0.02^2 + 0.03^2) / 2
    0.00065
    """

    window: int
    min_periods: int | None = None
    sumsq: CompensatedSum = field(default_factory=CompensatedSum)
    buf: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.min_periods is None:
            self.min_periods = self.window

    @property
    def n(self) -> int:
        return len(self.buf)

    def update(self, r: float) -> None:
        """Append one return; the oldest leaves once the window is full."""
        buf = self.buf
        if len(buf) == self.window:
            old = buf.popleft()
            self.sumsq.update(-(old * old))
        buf.append(r)
        self.sumsq.update(r * r)

    def get(self) -> float:
        """Mean of squared returns in the window (per-period variance); NaN before min_periods."""
        return window_mean(self.sumsq, len(self.buf), self.min_periods)  # type: ignore[arg-type]

    def to_state(self) -> dict[str, Any]:
        return {**header("RollingMeanSquare"), "window": self.window,
                "min_periods": self.min_periods, "sumsq": self.sumsq.to_state(),
                "buf": list(self.buf)}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> RollingMeanSquare:
        check_type(d, "RollingMeanSquare")
        return cls(int(d["window"]), int(d["min_periods"]), CompensatedSum.from_state(d["sumsq"]),
                   deque(float(x) for x in d["buf"]))

