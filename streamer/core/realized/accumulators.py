"""Unbounded accumulators with ``revert``: a compensated sum and Welford's mean/variance.

The building blocks of the rolling windows: a window adds the new value and reverts the one leaving,
so a sum or variance never drifts and never uses "E[x^2] - E[x]^2".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np  # noqa: F401  (doctests)

from streamer.core.realized.state import check_type, header, register

__all__ = ["CompensatedSum", "Var", "window_mean"]


@register
@dataclass(slots=True)
class CompensatedSum:
    """Running sum with Neumaier compensation; ``revert`` subtracts, so rolling sums do not drift.

    >>> s = CompensatedSum()
    >>> for x in (1e16, 1.0, -1e16):
    ...     s.update(x)
    >>> s.get()
    1.0
    """

    s: float = 0.0
    c: float = 0.0

    def update(self, x: float) -> None:
        """Add x."""
        s = self.s
        t = s + x
        if abs(s) >= abs(x):
            self.c += (s - t) + x
        else:
            self.c += (x - t) + s
        self.s = t

    def revert(self, x: float) -> None:
        """Subtract x (which must have been added before)."""
        self.update(-x)

    def get(self) -> float:
        """Compensated sum."""
        return self.s + self.c

    def to_state(self) -> dict[str, Any]:
        return {**header("CompensatedSum"), "s": self.s, "c": self.c}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> CompensatedSum:
        check_type(d, "CompensatedSum")
        return cls(float(d["s"]), float(d["c"]))


@register
@dataclass(slots=True)
class Var:
    """Running mean and variance (Welford), with ``revert`` of any value added before.

    ``get()`` is the variance with ``ddof`` (1 = sample variance), NaN while n <= ddof.
    Precision: relative to numpy's two-pass ~1e-9 on a 100,000 window of 1e4 +- 1e-3 values; after
    reverting a value of magnitude M the absolute error is of order eps * M^2 (any update/revert
    scheme has this; "sum of squares minus mean squared" is far worse).

    >>> v = Var()
    >>> for x in (2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0):
    ...     v.update(x)
    >>> v.mean, round(v.get(), 6)
    (5.0, 4.571429)
    >>> v.revert(9.0); round(v.get(), 6) == round(float(np.var([2, 4, 4, 4, 5, 5, 7], ddof=1)), 6)
    True
    """

    ddof: int = 1
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, x: float) -> None:
        """Fold in x."""
        n = self.n + 1
        self.n = n
        delta = x - self.mean
        self.mean += delta / n
        self.m2 += delta * (x - self.mean)

    def revert(self, x: float) -> None:
        """Take out x (must be a value added before; otherwise the result is meaningless)."""
        n = self.n - 1
        if n <= 0:
            self.n = 0
            self.mean = 0.0
            self.m2 = 0.0
            return
        self.n = n
        delta = x - self.mean
        self.mean -= delta / n
        m2 = self.m2 - delta * (x - self.mean)
        # m2 is a sum of squares: rounding can only push it below zero when it should be ~0.
        self.m2 = m2 if (m2 > 0.0 and n > 1) else 0.0

    def get(self) -> float:
        """Variance with ``ddof`` (units of x squared); NaN while n <= ddof."""
        if self.n <= self.ddof:
            return math.nan
        return self.m2 / (self.n - self.ddof)

    def to_state(self) -> dict[str, Any]:
        return {**header("Var"), "ddof": self.ddof, "n": self.n,
                "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Var:
        check_type(d, "Var")
        return cls(int(d["ddof"]), int(d["n"]), float(d["mean"]), float(d["m2"]))


def window_mean(total: CompensatedSum, n: int, min_periods: int, divisor: float | None = None) -> float:
    """Mean of a window's compensated sum of non-negative terms: total / ``divisor`` (default n).

    NaN while the window holds fewer than ``min_periods`` (or no) terms. Reverting terms can leave the
    sum a rounding error below zero when the true value is ~0; it is read as 0.

    >>> s = CompensatedSum(); s.update(3.0); s.update(1.0)
    >>> window_mean(s, 2, 2), window_mean(s, 2, 3), window_mean(s, 2, 1, divisor=4)
    (2.0, nan, 1.0)
    """
    if n == 0 or n < min_periods:
        return math.nan
    s = total.get()
    return (s if s > 0.0 else 0.0) / (n if divisor is None else divisor)
