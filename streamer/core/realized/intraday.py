"""Intraday realized vol from ticks: clock sampling (previous tick per bucket) and rolling RV."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np  # noqa: F401  (doctests)

from streamer.core.realized.accumulators import CompensatedSum, window_mean
from streamer.core.realized.conventions import (NS_PER_MINUTE, RTH_HOURS_PER_DAY,
                                                TRADING_DAYS_PER_YEAR, buckets_per_year, finite_pos)
from streamer.core.realized.state import check_type, header, load_opt_int, register

__all__ = ["SampledReturn", "ClockSampler", "IntradayRV"]


class SampledReturn(NamedTuple):
    """One clock-sampled log return: bucket end (ns), log return, buckets it spans (>= 1)."""

    end_ts_ns: int
    log_return: float
    span_buckets: int


@register
@dataclass(slots=True)
class ClockSampler:
    """Turns (ts_ns, price) ticks into one log return per completed clock bucket (previous tick).

    Buckets are [k * bucket_ns, (k + 1) * bucket_ns). A bucket's sample is its last tick (the
    previous-tick price at the bucket end). A bucket is complete when a tick in a later bucket
    arrives or ``advance_to`` passes its end; the return is ln(sample / previous sample). Empty
    buckets are not emitted: the next return spans them (``span_buckets`` > 1), so a sum of squared
    returns still covers the whole time. If a gap between samples exceeds ``max_gap_ns``
    (overnight, halts) no return is emitted and the reference restarts. Ticks in an already
    completed bucket, or older than the last tick of the current bucket, are ignored
    (``n_late``); equal timestamps: the later arrival wins. Bad prices are rejected (``n_rejected``).

    >>> s = ClockSampler(bucket_ns=60)
    >>> [s.update(ts, p) for ts, p in ((0, 100.0), (30, 101.0), (61, 102.0), (130, 100.0))]  # doctest: +ELLIPSIS
    [None, None, None, SampledReturn(end_ts_ns=120, log_return=0.00985..., span_buckets=1)]
    """

    bucket_ns: int
    max_gap_ns: int | None = None
    bucket: int | None = None
    last_ts_ns: int = 0
    last_price: float = 0.0
    ref_bucket: int | None = None
    ref_price: float = 0.0
    n_late: int = 0
    n_rejected: int = 0

    def __post_init__(self) -> None:
        if self.bucket_ns < 1:
            raise ValueError(f"bucket_ns must be >= 1, got {self.bucket_ns}")

    def _complete(self) -> SampledReturn | None:
        """Close the current bucket and return its sampled return (None if no reference)."""
        b = self.bucket
        assert b is not None
        rb, rp = self.ref_bucket, self.ref_price
        p = self.last_price
        self.ref_bucket, self.ref_price = b, p
        self.bucket = None
        if rb is None:
            return None
        span = b - rb
        if self.max_gap_ns is not None and (span - 1) * self.bucket_ns > self.max_gap_ns:
            return None
        return SampledReturn((b + 1) * self.bucket_ns, math.log(p / rp), span)

    def advance_to(self, ts_ns: int) -> SampledReturn | None:
        """Complete the current bucket if ts_ns is at or past its end (timer-driven close)."""
        b = self.bucket
        if b is not None and ts_ns >= (b + 1) * self.bucket_ns:
            return self._complete()
        return None

    def update(self, ts_ns: int, price: float) -> SampledReturn | None:
        """Feed one tick; returns the return of the bucket this tick completed, if any."""
        if not finite_pos(price):
            self.n_rejected += 1
            return None
        k = ts_ns // self.bucket_ns
        b = self.bucket
        out = None
        if b is None:
            rb = self.ref_bucket
            if rb is not None and k <= rb:
                self.n_late += 1
                return None
        elif k > b:
            out = self._complete()
        elif k < b or ts_ns < self.last_ts_ns:
            self.n_late += 1
            return None
        self.bucket = k
        self.last_ts_ns = ts_ns
        self.last_price = price
        return out

    def to_state(self) -> dict[str, Any]:
        return {**header("ClockSampler"), "bucket_ns": self.bucket_ns,
                "max_gap_ns": self.max_gap_ns, "bucket": self.bucket,
                "last_ts_ns": self.last_ts_ns, "last_price": self.last_price,
                "ref_bucket": self.ref_bucket, "ref_price": self.ref_price,
                "n_late": self.n_late, "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> ClockSampler:
        check_type(d, "ClockSampler")
        return cls(int(d["bucket_ns"]), load_opt_int(d["max_gap_ns"]), load_opt_int(d["bucket"]),
                   int(d["last_ts_ns"]), float(d["last_price"]), load_opt_int(d["ref_bucket"]), float(d["ref_price"]),
                   int(d["n_late"]), int(d["n_rejected"]))


@register
@dataclass(slots=True)
class IntradayRV:
    """Annualised realized vol from ticks: clock-sampled returns feed a rolling sum of r^2.

    Window = the last ``window`` sampled returns. Annualised variance =
    sum(r^2) / sum(span_buckets) x buckets_per_year, with buckets_per_year = ``trading_days`` x
    ``hours_per_day`` x buckets per hour (252 x 6.5 x 60 = 98,280 for 1-minute buckets), so
    a return spanning empty buckets counts for the time it covers. ``get()`` is NaN before
    ``min_periods`` returns (default: the full window). See ``ClockSampler`` for sampling rules.

    >>> rv = IntradayRV(bucket_ns=NS_PER_MINUTE, window=2)
    >>> for i, p in enumerate((100.0, 100.1, 99.9, 100.0)):
    ...     _ = rv.update(i * NS_PER_MINUTE, p)
    >>> r = np.log([100.1 / 100.0, 99.9 / 100.1])   # the 100.0 bucket is not complete yet
    >>> math.isclose(rv.get(), math.sqrt(np.mean(r**2) * 252 * 6.5 * 60))
    True
    """

    bucket_ns: int = NS_PER_MINUTE
    window: int = 390
    max_gap_ns: int | None = None
    min_periods: int | None = None
    trading_days: float = TRADING_DAYS_PER_YEAR
    hours_per_day: float = RTH_HOURS_PER_DAY
    sampler: ClockSampler = field(default=None)  # type: ignore[assignment]
    sumsq: CompensatedSum = field(default_factory=CompensatedSum)
    rets: deque[float] = field(default_factory=deque)
    spans: deque[int] = field(default_factory=deque)
    span_total: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.min_periods is None:
            self.min_periods = self.window
        if self.sampler is None:
            self.sampler = ClockSampler(self.bucket_ns, self.max_gap_ns)
        self.trading_days = float(self.trading_days)
        self.hours_per_day = float(self.hours_per_day)

    @property
    def n(self) -> int:
        return len(self.rets)

    def add_return(self, r: float, span_buckets: int = 1) -> None:
        """Push one sampled return (already sampled elsewhere) into the rolling window."""
        rets = self.rets
        if len(rets) == self.window:
            old = rets.popleft()
            self.sumsq.update(-(old * old))
            self.span_total -= self.spans.popleft()
        rets.append(r)
        self.spans.append(span_buckets)
        self.sumsq.update(r * r)
        self.span_total += span_buckets

    def update(self, ts_ns: int, price: float) -> SampledReturn | None:
        """Feed one tick (ts_ns, price); returns the sampled return it completed, if any."""
        sr = self.sampler.update(ts_ns, price)
        if sr is not None:
            self.add_return(sr.log_return, sr.span_buckets)
        return sr

    def advance_to(self, ts_ns: int) -> SampledReturn | None:
        """Timer-driven close of the current bucket (see ``ClockSampler.advance_to``)."""
        sr = self.sampler.advance_to(ts_ns)
        if sr is not None:
            self.add_return(sr.log_return, sr.span_buckets)
        return sr

    def variance_annual(self) -> float:
        """Annualised realized variance; NaN before ``min_periods`` returns."""
        bpy = buckets_per_year(self.bucket_ns, self.trading_days, self.hours_per_day)
        n = len(self.rets)
        return window_mean(self.sumsq, n, self.min_periods, self.span_total) * bpy  # type: ignore[arg-type]

    def get(self) -> float:
        """Annualised realized vol (decimal); NaN before ``min_periods`` returns."""
        v = self.variance_annual()
        return math.sqrt(v) if v == v else math.nan

    def to_state(self) -> dict[str, Any]:
        return {**header("IntradayRV"), "bucket_ns": self.bucket_ns,
                "window": self.window, "max_gap_ns": self.max_gap_ns,
                "min_periods": self.min_periods, "trading_days": self.trading_days,
                "hours_per_day": self.hours_per_day, "sampler": self.sampler.to_state(),
                "sumsq": self.sumsq.to_state(), "rets": list(self.rets),
                "spans": list(self.spans), "span_total": self.span_total}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> IntradayRV:
        check_type(d, "IntradayRV")
        return cls(int(d["bucket_ns"]), int(d["window"]), load_opt_int(d["max_gap_ns"]),
                   int(d["min_periods"]),
                   float(d["trading_days"]), float(d["hours_per_day"]),
                   ClockSampler.from_state(d["sampler"]), CompensatedSum.from_state(d["sumsq"]),
                   deque(float(x) for x in d["rets"]), deque(int(x) for x in d["spans"]),
                   int(d["span_total"]))
