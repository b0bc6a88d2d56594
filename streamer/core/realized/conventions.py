"""Units and conventions shared by every estimator: periods per year, nanoseconds, EWMA decay, max-of.

* Returns are log returns ``ln(p_t / p_{t-1})``.
* Annualised vol = sqrt(per-period variance x periods per year); daily periods: 252
  (``TRADING_DAYS_PER_YEAR``). Intraday buckets: 252 days x 6.5 h x buckets per hour.
"""
from __future__ import annotations

import math

__all__ = ["TRADING_DAYS_PER_YEAR", "RTH_HOURS_PER_DAY", "NS_PER_SECOND", "NS_PER_MINUTE", "NS_PER_HOUR",
           "NS_PER_DAY", "buckets_per_year", "ewma_lambda_from_window", "max_of", "finite_pos"]

TRADING_DAYS_PER_YEAR = 252
"""Trading days per year used to annualise daily variance (S&P and RiskMetrics convention)."""
RTH_HOURS_PER_DAY = 6.5
"""Regular US equity session 09:30-16:00 ET, hours per trading day."""
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR


def buckets_per_year(
    bucket_ns: int,
    trading_days: float = TRADING_DAYS_PER_YEAR,
    hours_per_day: float = RTH_HOURS_PER_DAY,
) -> float:
    """Clock buckets per trading year: trading_days x hours_per_day x (buckets per hour).

    >>> buckets_per_year(5 * NS_PER_MINUTE)   # 252 x 6.5 x 12
    19656.0
    """
    return float(trading_days) * float(hours_per_day) * (NS_PER_HOUR / float(bucket_ns))


def ewma_lambda_from_window(window: float) -> float:
    """Decay lambda for an EW average with the same centre of mass as a ``window``-long simple one.

    Span convention (pandas ``span``): alpha = 2 / (N + 1), lambda = 1 - alpha; an N-day simple
    average and this EW average both have centre of mass (N - 1) / 2 days back.

    >>> round(ewma_lambda_from_window(20), 6)
    0.904762
    """
    if not window >= 1:
        raise ValueError(f"window must be >= 1, got {window!r}")
    return 1.0 - 2.0 / (float(window) + 1.0)


def max_of(*vols: float) -> float:
    """Largest of several vols (e.g. max(20d, 60d)); NaN if any input is NaN (not warmed up).

    >>> max_of(0.12, 0.15)
    0.15
    >>> max_of(0.12, float("nan"))
    nan
    """
    if not vols:
        return math.nan
    out = -math.inf
    for v in vols:
        if v != v:  # NaN
            return math.nan
        if v > out:
            out = v
    return float(out)


def finite_pos(x: float) -> bool:
    """x is a finite positive number (False for NaN too)."""
    return x > 0.0 and x < math.inf
