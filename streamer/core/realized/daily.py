"""Daily-close vol estimators as index methodologies compute them: EWMA, close-to-close, max-of.

Index-methodology vols are **zero-mean**: variance = mean of squared log returns (divisor n), as in
S&P Daily Risk Control and RiskMetrics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # noqa: F401  (doctests)

from streamer.core.realized.conventions import TRADING_DAYS_PER_YEAR, ewma_lambda_from_window, finite_pos, max_of
from streamer.core.realized.rolling import RollingMeanSquare
from streamer.core.realized.state import (check_type, estimator_from_state, header, load_opt_float,
                                          register)

__all__ = ["EWMAVar", "CloseToCloseVol", "MaxOf"]


@register
@dataclass(slots=True)
class EWMAVar:
    """RiskMetrics EWMA variance of returns: s2_t = lam * s2_{t-1} + (1 - lam) * r_t^2 (zero mean).

    Initialisation (documented choice):

    * ``seed`` given: s2_0 = seed and the recursion above applies from the first return
      (pure RiskMetrics; equals pandas ``ewm(alpha=1-lam, adjust=False)`` on [seed, r1^2, ...]).
    * ``seed=None`` (default): weight-normalised warm-up,
      s2_t = sum_i lam^i r_{t-i}^2 / sum_i lam^i over the returns seen so far
      (pandas ``ewm(alpha=1-lam, adjust=True)``). s2_1 = r_1^2, and it converges to the
      recursion above as the weights' sum approaches 1 / (1 - lam); no arbitrary seed bias.

    ``lam`` = 0.94 is the RiskMetrics (1996) daily decay. ``get()`` is NaN before ``min_periods``.

    >>> e = EWMAVar(lam=0.94, seed=0.0001)
    >>> e.update(0.02)
    >>> round(e.get(), 8)   # 0.94 * 1e-4 + 0.06 * 0.02^2
    0.000118
    """

    lam: float = 0.94
    seed: float | None = None
    min_periods: int = 1
    n: int = 0
    num: float = 0.0
    den: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lam < 1.0:  # lam = 0 (window 1): the last squared return
            raise ValueError(f"lam must be in [0, 1), got {self.lam}")
        if self.n == 0 and self.seed is not None:
            # seeded recursion = normalised form with a unit-weight prior of weight 1/(1-lam)
            self.den = 1.0 / (1.0 - self.lam)
            self.num = float(self.seed) * self.den

    @classmethod
    def from_window(cls, window: float, seed: float | None = None) -> EWMAVar:
        """EWMA with lam from an effective window (span convention), ready after ``window`` returns."""
        return cls(ewma_lambda_from_window(window), seed, int(math.ceil(window)))

    def update(self, r: float) -> None:
        """Fold in one return (decimal log return)."""
        lam = self.lam
        self.num = lam * self.num + r * r
        self.den = lam * self.den + 1.0
        self.n += 1

    def get(self) -> float:
        """Variance per period (return units squared); NaN before ``min_periods`` returns."""
        if self.n < self.min_periods or self.den <= 0.0:
            return math.nan
        return self.num / self.den

    def to_state(self) -> dict[str, Any]:
        return {**header("EWMAVar"), "lam": self.lam, "seed": self.seed,
                "min_periods": self.min_periods, "n": self.n, "num": self.num, "den": self.den}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> EWMAVar:
        check_type(d, "EWMAVar")
        return cls(float(d["lam"]), load_opt_float(d["seed"]), int(d["min_periods"]),
                   int(d["n"]), float(d["num"]), float(d["den"]))


@register
@dataclass(slots=True)
class CloseToCloseVol:
    """Annualised close-to-close vol from daily closes, as vol-control indices compute it.

    Zero-mean log returns. ``method="simple"``: sqrt(252/n * sum r^2) over the last ``window``
    returns (S&P Daily Risk Control). ``method="ewma"``: EWMA of r^2 with lam from ``window`` as
    effective window (span convention, see ``ewma_lambda_from_window``) unless ``lam`` is given,
    weight-normalised warm-up (Deutsche Bank-style exponentially weighted vol). ``get()`` is NaN
    until ``window`` returns are in. Non-positive or non-finite closes are rejected (False).

    >>> v = CloseToCloseVol(window=2)
    >>> for c in (100.0, 101.0, 99.0):
    ...     _ = v.update(c)
    >>> r = np.log([101 / 100, 99 / 101])
    >>> math.isclose(v.get(), math.sqrt(252 * np.mean(r**2)))
    True
    """

    window: int = 20
    method: str = "simple"
    lam: float | None = None
    periods_per_year: float = TRADING_DAYS_PER_YEAR
    est: RollingMeanSquare | EWMAVar = field(default=None)  # type: ignore[assignment]
    prev_close: float | None = None
    n_rejected: int = 0

    def __post_init__(self) -> None:
        self.periods_per_year = float(self.periods_per_year)
        if self.est is None:
            if self.method == "simple":
                self.est = RollingMeanSquare(self.window)
            elif self.method == "ewma":
                lam = self.lam if self.lam is not None else ewma_lambda_from_window(self.window)
                self.est = EWMAVar(lam, None, self.window)
            else:
                raise ValueError(f"method must be 'simple' or 'ewma', got {self.method!r}")

    def update(self, close: float) -> bool:
        """Feed one daily close (price units); False if it is rejected as invalid."""
        if not finite_pos(close):
            self.n_rejected += 1
            return False
        prev = self.prev_close
        self.prev_close = close
        if prev is not None:
            self.est.update(math.log(close / prev))
        return True

    def variance(self) -> float:
        """Per-day zero-mean variance; NaN until warmed up."""
        return self.est.get()

    def get(self) -> float:
        """Annualised vol (decimal, 0.15 = 15%); NaN until ``window`` returns are in."""
        v = self.est.get()
        return math.sqrt(v * self.periods_per_year) if v == v else math.nan

    def to_state(self) -> dict[str, Any]:
        return {**header("CloseToCloseVol"), "window": self.window,
                "method": self.method, "lam": self.lam, "periods_per_year": self.periods_per_year,
                "est": self.est.to_state(), "prev_close": self.prev_close,
                "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> CloseToCloseVol:
        check_type(d, "CloseToCloseVol")
        est_d = d["est"]
        est: RollingMeanSquare | EWMAVar = (RollingMeanSquare.from_state(est_d)
                                            if est_d["type"] == "RollingMeanSquare"
                                            else EWMAVar.from_state(est_d))
        return cls(int(d["window"]), str(d["method"]), load_opt_float(d["lam"]),
                   float(d["periods_per_year"]), est, load_opt_float(d["prev_close"]),
                   int(d["n_rejected"]))


@register
@dataclass(slots=True)
class MaxOf:
    """Feeds every input to each estimator; ``get()`` = max of their ``get()`` (NaN until all ready).

    >>> m = MaxOf([CloseToCloseVol(window=2), CloseToCloseVol(window=3)])
    >>> for c in (100.0, 102.0, 101.0, 101.5):
    ...     _ = m.update(c)
    >>> m.get() == max(e.get() for e in m.estimators)
    True
    """

    estimators: list[Any]

    def update(self, *args: Any) -> bool:
        """Forward the same observation to every estimator; True if all accepted it."""
        ok = True
        for e in self.estimators:
            if e.update(*args) is False:
                ok = False
        return ok

    def get(self) -> float:
        """max_of the estimators' values."""
        return max_of(*(e.get() for e in self.estimators))

    def to_state(self) -> dict[str, Any]:
        return {**header("MaxOf"), "estimators": [e.to_state() for e in self.estimators]}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> MaxOf:
        check_type(d, "MaxOf")
        return cls([estimator_from_state(s) for s in d["estimators"]])
