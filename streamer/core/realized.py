"""O(1) realized-volatility estimators: Welford, rolling windows, EWMA, clock-sampled RV, OHLC bars.

Every estimator is a small object in the river style: ``update(...)`` folds in one observation in
O(1), ``revert(x)`` (where meaningful) takes one out, ``get()`` returns the statistic. Rolling
windows keep a deque and revert the value that leaves, so the cost per tick does not depend on the
window length. Every estimator also has ``to_state() -> dict`` (plain JSON types, no NaN) and a
``from_state(d)`` classmethod so a stream worker can keep it in a changelogged table; a restored
estimator continues bit-for-bit identically.

Conventions (documented once, used everywhere):

* Returns are log returns ``ln(p_t / p_{t-1})``.
* Generic variance (``Var``, ``RollingVar``, ``TimeRollingVar``) is the mean-subtracted *sample*
  variance (ddof=1 by default), kept with Welford's update/revert, never "E[x^2] - E[x]^2".
* Index-methodology vols (``CloseToCloseVol``, ``EWMAVar``, ``IntradayRV``) are **zero-mean**:
  variance = mean of squared log returns (divisor n), as in S&P Daily Risk Control and RiskMetrics.
* Annualised vol = sqrt(per-period variance x periods per year); daily periods: 252
  (``TRADING_DAYS_PER_YEAR``). Intraday buckets: 252 days x 6.5 h x buckets per hour.
* Bad input never raises in the hot path: ``update`` returns ``False`` and counts the rejection
  (``n_rejected``); ``get()`` returns NaN until the estimator has ``min_periods`` observations.

The slow, obviously-correct numpy references (``*_batch``) live at the end of this module and are
what the tests compare the incremental estimators against.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np

__all__ = [
    "TRADING_DAYS_PER_YEAR",
    "RTH_HOURS_PER_DAY",
    "NS_PER_SECOND",
    "NS_PER_MINUTE",
    "NS_PER_HOUR",
    "NS_PER_DAY",
    "buckets_per_year",
    "ewma_lambda_from_window",
    "max_of",
    "CompensatedSum",
    "Var",
    "RollingVar",
    "TimeRollingVar",
    "RollingMeanSquare",
    "EWMAVar",
    "CloseToCloseVol",
    "MaxOf",
    "SampledReturn",
    "ClockSampler",
    "IntradayRV",
    "Parkinson",
    "GarmanKlass",
    "RogersSatchell",
    "YangZhang",
    "estimator_from_state",
    # slow references
    "ewma_var_batch",
    "close_to_close_vol_batch",
    "clock_sample_batch",
    "intraday_rv_batch",
    "bar_vol_batch",
]

TRADING_DAYS_PER_YEAR = 252
"""Trading days per year used to annualise daily variance (S&P and RiskMetrics convention)."""
RTH_HOURS_PER_DAY = 6.5
"""Regular US equity session 09:30-16:00 ET, hours per trading day."""
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR

_LN2 = math.log(2.0)
_PARKINSON_K = 1.0 / (4.0 * _LN2)
_GK_K = 2.0 * _LN2 - 1.0
_STATE_VERSION = 1


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


def _check_type(d: dict[str, Any], name: str) -> None:
    if d.get("type") != name:
        raise ValueError(f"state is for {d.get('type')!r}, not {name!r}")
    if d.get("v") != _STATE_VERSION:
        raise ValueError(f"unsupported state version {d.get('v')!r} for {name}")


def _finite_pos(x: float) -> bool:
    return x > 0.0 and x < math.inf  # False for NaN too


# --------------------------------------------------------------------------------------------
# Accumulators (unbounded, with revert)
# --------------------------------------------------------------------------------------------


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
        return {"type": "CompensatedSum", "v": _STATE_VERSION, "s": self.s, "c": self.c}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> CompensatedSum:
        _check_type(d, "CompensatedSum")
        return cls(float(d["s"]), float(d["c"]))


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
        return {"type": "Var", "v": _STATE_VERSION, "ddof": self.ddof, "n": self.n,
                "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Var:
        _check_type(d, "Var")
        return cls(int(d["ddof"]), int(d["n"]), float(d["mean"]), float(d["m2"]))


# --------------------------------------------------------------------------------------------
# Rolling windows
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RollingVar:
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
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.stat is None:
            self.stat = Var(self.ddof)

    @property
    def n(self) -> int:
        return self.stat.n

    @property
    def mean(self) -> float:
        return self.stat.mean

    def update(self, x: float) -> None:
        """Append x; the oldest value leaves once the window is full."""
        buf = self.buf
        if len(buf) == self.window:
            self.stat.revert(buf.popleft())
        buf.append(x)
        self.stat.update(x)

    def get(self) -> float:
        """Sample variance of the window (units of x squared); NaN while n <= ddof."""
        return self.stat.get()

    def to_state(self) -> dict[str, Any]:
        return {"type": "RollingVar", "v": _STATE_VERSION, "window": self.window,
                "stat": self.stat.to_state(), "buf": list(self.buf)}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> RollingVar:
        _check_type(d, "RollingVar")
        stat = Var.from_state(d["stat"])
        return cls(int(d["window"]), stat.ddof, stat, deque(float(x) for x in d["buf"]))


@dataclass(slots=True)
class TimeRollingVar:
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
        if self.window_ns < 1:
            raise ValueError(f"window_ns must be >= 1, got {self.window_ns}")
        if self.stat is None:
            self.stat = Var(self.ddof)

    @property
    def n(self) -> int:
        return self.stat.n

    @property
    def mean(self) -> float:
        return self.stat.mean

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

    def get(self) -> float:
        """Sample variance of the values in the window; NaN while n <= ddof."""
        return self.stat.get()

    def to_state(self) -> dict[str, Any]:
        return {"type": "TimeRollingVar", "v": _STATE_VERSION, "window_ns": self.window_ns,
                "stat": self.stat.to_state(), "ts": list(self.ts), "xs": list(self.xs),
                "watermark_ns": self.watermark_ns, "n_late": self.n_late}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> TimeRollingVar:
        _check_type(d, "TimeRollingVar")
        stat = Var.from_state(d["stat"])
        wm = d["watermark_ns"]
        return cls(int(d["window_ns"]), stat.ddof, stat, deque(int(t) for t in d["ts"]),
                   deque(float(x) for x in d["xs"]), None if wm is None else int(wm),
                   int(d["n_late"]))


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
        n = len(self.buf)
        if n == 0 or n < self.min_periods:  # type: ignore[operator]
            return math.nan
        s = self.sumsq.get()
        return (s if s > 0.0 else 0.0) / n

    def to_state(self) -> dict[str, Any]:
        return {"type": "RollingMeanSquare", "v": _STATE_VERSION, "window": self.window,
                "min_periods": self.min_periods, "sumsq": self.sumsq.to_state(),
                "buf": list(self.buf)}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> RollingMeanSquare:
        _check_type(d, "RollingMeanSquare")
        return cls(int(d["window"]), int(d["min_periods"]), CompensatedSum.from_state(d["sumsq"]),
                   deque(float(x) for x in d["buf"]))


# --------------------------------------------------------------------------------------------
# EWMA and daily close-to-close vol
# --------------------------------------------------------------------------------------------


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
        return {"type": "EWMAVar", "v": _STATE_VERSION, "lam": self.lam, "seed": self.seed,
                "min_periods": self.min_periods, "n": self.n, "num": self.num, "den": self.den}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> EWMAVar:
        _check_type(d, "EWMAVar")
        seed = d["seed"]
        return cls(float(d["lam"]), None if seed is None else float(seed), int(d["min_periods"]),
                   int(d["n"]), float(d["num"]), float(d["den"]))


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
        if not _finite_pos(close):
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
        return {"type": "CloseToCloseVol", "v": _STATE_VERSION, "window": self.window,
                "method": self.method, "lam": self.lam, "periods_per_year": self.periods_per_year,
                "est": self.est.to_state(), "prev_close": self.prev_close,
                "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> CloseToCloseVol:
        _check_type(d, "CloseToCloseVol")
        est_d = d["est"]
        est: RollingMeanSquare | EWMAVar = (RollingMeanSquare.from_state(est_d)
                                            if est_d["type"] == "RollingMeanSquare"
                                            else EWMAVar.from_state(est_d))
        lam, pc = d["lam"], d["prev_close"]
        return cls(int(d["window"]), str(d["method"]), None if lam is None else float(lam),
                   float(d["periods_per_year"]), est, None if pc is None else float(pc),
                   int(d["n_rejected"]))


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
        return {"type": "MaxOf", "v": _STATE_VERSION,
                "estimators": [e.to_state() for e in self.estimators]}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> MaxOf:
        _check_type(d, "MaxOf")
        return cls([estimator_from_state(s) for s in d["estimators"]])


# --------------------------------------------------------------------------------------------
# Intraday: clock sampling and realized variance
# --------------------------------------------------------------------------------------------


class SampledReturn(NamedTuple):
    """One clock-sampled log return: bucket end (ns), log return, buckets it spans (>= 1)."""

    end_ts_ns: int
    log_return: float
    span_buckets: int


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
        if not _finite_pos(price):
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
        return {"type": "ClockSampler", "v": _STATE_VERSION, "bucket_ns": self.bucket_ns,
                "max_gap_ns": self.max_gap_ns, "bucket": self.bucket,
                "last_ts_ns": self.last_ts_ns, "last_price": self.last_price,
                "ref_bucket": self.ref_bucket, "ref_price": self.ref_price,
                "n_late": self.n_late, "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> ClockSampler:
        _check_type(d, "ClockSampler")
        return cls(int(d["bucket_ns"]), d["max_gap_ns"], d["bucket"], int(d["last_ts_ns"]),
                   float(d["last_price"]), d["ref_bucket"], float(d["ref_price"]),
                   int(d["n_late"]), int(d["n_rejected"]))


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
        n = len(self.rets)
        if n == 0 or n < self.min_periods:  # type: ignore[operator]
            return math.nan
        s = self.sumsq.get()
        bpy = self.trading_days * self.hours_per_day * (NS_PER_HOUR / self.bucket_ns)
        return (s if s > 0.0 else 0.0) / self.span_total * bpy

    def get(self) -> float:
        """Annualised realized vol (decimal); NaN before ``min_periods`` returns."""
        v = self.variance_annual()
        return math.sqrt(v) if v == v else math.nan

    def to_state(self) -> dict[str, Any]:
        return {"type": "IntradayRV", "v": _STATE_VERSION, "bucket_ns": self.bucket_ns,
                "window": self.window, "max_gap_ns": self.max_gap_ns,
                "min_periods": self.min_periods, "trading_days": self.trading_days,
                "hours_per_day": self.hours_per_day, "sampler": self.sampler.to_state(),
                "sumsq": self.sumsq.to_state(), "rets": list(self.rets),
                "spans": list(self.spans), "span_total": self.span_total}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> IntradayRV:
        _check_type(d, "IntradayRV")
        return cls(int(d["bucket_ns"]), int(d["window"]), d["max_gap_ns"], int(d["min_periods"]),
                   float(d["trading_days"]), float(d["hours_per_day"]),
                   ClockSampler.from_state(d["sampler"]), CompensatedSum.from_state(d["sumsq"]),
                   deque(float(x) for x in d["rets"]), deque(int(x) for x in d["spans"]),
                   int(d["span_total"]))


# --------------------------------------------------------------------------------------------
# OHLC bar estimators
# --------------------------------------------------------------------------------------------


def _valid_bar(o: float, h: float, l: float, c: float) -> bool:
    """Finite positive prices with low <= min(open, close) and high >= max(open, close)."""
    return (_finite_pos(o) and _finite_pos(h) and _finite_pos(l) and _finite_pos(c)
            and l <= o <= h and l <= c <= h)


def _parkinson_term(o: float, h: float, l: float, c: float) -> float:
    u = math.log(h / l)
    return u * u * _PARKINSON_K


def _gk_term(o: float, h: float, l: float, c: float) -> float:
    u = math.log(h / l)
    cc = math.log(c / o)
    return 0.5 * u * u - _GK_K * cc * cc


def _rs_term(o: float, h: float, l: float, c: float) -> float:
    return math.log(h / c) * math.log(h / o) + math.log(l / c) * math.log(l / o)


@dataclass(slots=True)
class _BarMean:
    """Shared machinery: rolling mean of a per-bar variance term over ``window`` bars."""

    window: int = 20
    periods_per_year: float = TRADING_DAYS_PER_YEAR
    min_periods: int | None = None
    total: CompensatedSum = field(default_factory=CompensatedSum)
    terms: deque[float] = field(default_factory=deque)
    n_rejected: int = 0

    _NAME = "_BarMean"

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.min_periods is None:
            self.min_periods = self.window
        self.periods_per_year = float(self.periods_per_year)

    @staticmethod
    def _term(o: float, h: float, l: float, c: float) -> float:  # pragma: no cover
        raise NotImplementedError

    @property
    def n(self) -> int:
        return len(self.terms)

    def update(self, open: float, high: float, low: float, close: float) -> bool:
        """Fold in one OHLC bar (prices); False (``n_rejected`` += 1) for an invalid bar."""
        if not _valid_bar(open, high, low, close):
            self.n_rejected += 1
            return False
        terms = self.terms
        if len(terms) == self.window:
            self.total.update(-terms.popleft())
        t = self._term(open, high, low, close)
        terms.append(t)
        self.total.update(t)
        return True

    def variance(self) -> float:
        """Per-bar variance (mean of the per-bar terms); NaN before ``min_periods`` bars."""
        n = len(self.terms)
        if n == 0 or n < self.min_periods:  # type: ignore[operator]
            return math.nan
        s = self.total.get()
        return (s if s > 0.0 else 0.0) / n

    def get(self) -> float:
        """Annualised vol (decimal) = sqrt(per-bar variance x periods_per_year)."""
        v = self.variance()
        return math.sqrt(v * self.periods_per_year) if v == v else math.nan

    def to_state(self) -> dict[str, Any]:
        return {"type": self._NAME, "v": _STATE_VERSION, "window": self.window,
                "periods_per_year": self.periods_per_year, "min_periods": self.min_periods,
                "total": self.total.to_state(), "terms": list(self.terms),
                "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Any:
        _check_type(d, cls._NAME)
        return cls(int(d["window"]), float(d["periods_per_year"]), int(d["min_periods"]),
                   CompensatedSum.from_state(d["total"]), deque(float(x) for x in d["terms"]),
                   int(d["n_rejected"]))


class Parkinson(_BarMean):
    """Parkinson (1980) range vol: per-bar variance = mean of (ln H/L)^2 / (4 ln 2), annualised.

    >>> p = Parkinson(window=2)
    >>> _ = p.update(100, 102, 99, 101); _ = p.update(101, 103, 100, 102)
    >>> u = np.log([102 / 99, 103 / 100])
    >>> math.isclose(p.variance(), float(np.mean(u**2) / (4 * np.log(2))))
    True
    """

    __slots__ = ()
    _NAME = "Parkinson"
    _term = staticmethod(_parkinson_term)


class GarmanKlass(_BarMean):
    """Garman-Klass (1980): per-bar variance = mean of 0.5 (ln H/L)^2 - (2 ln 2 - 1)(ln C/O)^2.

    >>> g = GarmanKlass(window=1)
    >>> _ = g.update(100, 102, 99, 101)
    >>> math.isclose(g.variance(), 0.5 * math.log(102 / 99)**2 - (2 * math.log(2) - 1) * math.log(1.01)**2)
    True
    """

    __slots__ = ()
    _NAME = "GarmanKlass"
    _term = staticmethod(_gk_term)


class RogersSatchell(_BarMean):
    """Rogers-Satchell (1991), drift-robust: mean of ln(H/C) ln(H/O) + ln(L/C) ln(L/O).

    >>> rs = RogersSatchell(window=1)
    >>> _ = rs.update(100, 102, 99, 101)
    >>> x = math.log(102 / 101) * math.log(102 / 100) + math.log(99 / 101) * math.log(99 / 100)
    >>> math.isclose(rs.variance(), x)
    True
    """

    __slots__ = ()
    _NAME = "RogersSatchell"
    _term = staticmethod(_rs_term)


@dataclass(slots=True)
class YangZhang:
    """Yang-Zhang (2000) vol over ``window`` bars: V_o + k V_c + (1 - k) V_RS, annualised.

    V_o = sample variance (ddof=1) of overnight returns ln(O_t / C_{t-1}), V_c = sample variance
    of open-to-close returns ln(C_t / O_t), V_RS = mean Rogers-Satchell term,
    k = 0.34 / (1.34 + (n + 1) / (n - 1)) with n = bars in the window (>= 2). The first bar only
    supplies the previous close; a rejected bar is skipped (the next overnight return then runs
    from the last accepted close).

    >>> yz = YangZhang(window=2)
    >>> for bar in ((100, 101, 99, 100.5), (100.7, 102, 100, 101), (101.2, 101.5, 99.5, 100)):
    ...     _ = yz.update(*bar)
    >>> o = np.log([100.7 / 100.5, 101.2 / 101]); c = np.log([101 / 100.7, 100 / 101.2])
    >>> rs = [RogersSatchell._term(*b) for b in ((100.7, 102, 100, 101), (101.2, 101.5, 99.5, 100))]
    >>> k = 0.34 / (1.34 + 3 / 1)
    >>> math.isclose(yz.variance(), np.var(o, ddof=1) + k * np.var(c, ddof=1) + (1 - k) * np.mean(rs))
    True
    """

    window: int = 20
    periods_per_year: float = TRADING_DAYS_PER_YEAR
    min_periods: int | None = None
    vo: Var = field(default_factory=Var)
    vc: Var = field(default_factory=Var)
    rs: CompensatedSum = field(default_factory=CompensatedSum)
    bars: deque[tuple[float, float, float]] = field(default_factory=deque)
    prev_close: float | None = None
    n_rejected: int = 0

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be >= 2 for Yang-Zhang, got {self.window}")
        if self.min_periods is None:
            self.min_periods = self.window
        if self.min_periods < 2:
            raise ValueError("min_periods must be >= 2 for Yang-Zhang")
        self.periods_per_year = float(self.periods_per_year)

    @property
    def n(self) -> int:
        return len(self.bars)

    def update(self, open: float, high: float, low: float, close: float) -> bool:
        """Fold in one OHLC bar (prices); False (``n_rejected`` += 1) for an invalid bar."""
        if not _valid_bar(open, high, low, close):
            self.n_rejected += 1
            return False
        prev = self.prev_close
        self.prev_close = close
        if prev is None:
            return True
        bars = self.bars
        if len(bars) == self.window:
            o0, c0, rs0 = bars.popleft()
            self.vo.revert(o0)
            self.vc.revert(c0)
            self.rs.update(-rs0)
        o = math.log(open / prev)
        c = math.log(close / open)
        rs = _rs_term(open, high, low, close)
        bars.append((o, c, rs))
        self.vo.update(o)
        self.vc.update(c)
        self.rs.update(rs)
        return True

    def variance(self) -> float:
        """Per-bar Yang-Zhang variance; NaN before ``min_periods`` bars with an overnight return."""
        n = len(self.bars)
        if n < self.min_periods:  # type: ignore[operator]
            return math.nan
        k = 0.34 / (1.34 + (n + 1) / (n - 1))
        vrs = self.rs.get() / n
        v = self.vo.get() + k * self.vc.get() + (1.0 - k) * (vrs if vrs > 0.0 else 0.0)
        return v if v > 0.0 else 0.0

    def get(self) -> float:
        """Annualised vol (decimal) = sqrt(per-bar variance x periods_per_year)."""
        v = self.variance()
        return math.sqrt(v * self.periods_per_year) if v == v else math.nan

    def to_state(self) -> dict[str, Any]:
        return {"type": "YangZhang", "v": _STATE_VERSION, "window": self.window,
                "periods_per_year": self.periods_per_year, "min_periods": self.min_periods,
                "vo": self.vo.to_state(), "vc": self.vc.to_state(), "rs": self.rs.to_state(),
                "bars": [list(b) for b in self.bars], "prev_close": self.prev_close,
                "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> YangZhang:
        _check_type(d, "YangZhang")
        pc = d["prev_close"]
        return cls(int(d["window"]), float(d["periods_per_year"]), int(d["min_periods"]),
                   Var.from_state(d["vo"]), Var.from_state(d["vc"]),
                   CompensatedSum.from_state(d["rs"]),
                   deque((float(a), float(b), float(c)) for a, b, c in d["bars"]),
                   None if pc is None else float(pc), int(d["n_rejected"]))


_REGISTRY: dict[str, Any] = {
    c.__name__: c
    for c in (CompensatedSum, Var, RollingVar, TimeRollingVar, RollingMeanSquare, EWMAVar,
              CloseToCloseVol, MaxOf, ClockSampler, IntradayRV, Parkinson, GarmanKlass,
              RogersSatchell, YangZhang)
}


def estimator_from_state(d: dict[str, Any]) -> Any:
    """Rebuild any estimator of this module from its ``to_state()`` dict (dispatch on "type").

    >>> v = Var(); v.update(1.0); v.update(3.0)
    >>> estimator_from_state(v.to_state()).get()
    2.0
    """
    cls = _REGISTRY.get(d.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown estimator type {d.get('type')!r}")
    return cls.from_state(d)


# --------------------------------------------------------------------------------------------
# Slow references (plain numpy, obviously correct, O(n * window)); used by the tests
# --------------------------------------------------------------------------------------------


def ewma_var_batch(returns: Sequence[float], lam: float = 0.94,
                   seed: float | None = None) -> np.ndarray:
    """EWMA variance after each return by explicit weights (see ``EWMAVar`` for the definition).

    >>> ewma_var_batch([0.02], lam=0.94, seed=1e-4).round(8).tolist()
    [0.000118]
    """
    r2 = np.asarray(returns, dtype=float) ** 2
    out = np.empty(len(r2))
    for t in range(len(r2)):
        w = lam ** np.arange(t, -1, -1, dtype=float)  # weight lam^(t-i) on r_i
        if seed is None:
            out[t] = np.sum(w * r2[: t + 1]) / np.sum(w)
        else:
            out[t] = lam ** (t + 1) * seed + (1.0 - lam) * np.sum(w * r2[: t + 1])
    return out


def close_to_close_vol_batch(closes: Sequence[float], window: int, method: str = "simple",
                             lam: float | None = None,
                             periods_per_year: float = TRADING_DAYS_PER_YEAR) -> np.ndarray:
    """Annualised zero-mean close-to-close vol after each close (NaN until ``window`` returns).

    >>> close_to_close_vol_batch([100.0, 101.0], window=1).round(4).tolist()
    [nan, 0.158]
    """
    c = np.asarray(closes, dtype=float)
    r = np.log(c[1:] / c[:-1])
    out = np.full(len(c), np.nan)
    if method == "ewma":
        lam_ = lam if lam is not None else ewma_lambda_from_window(window)
        ev = ewma_var_batch(r, lam_, None)
    for t in range(window, len(c)):  # returns r[0..t-1] are known after close t
        if method == "simple":
            out[t] = np.sqrt(periods_per_year * np.mean(r[t - window: t] ** 2))
        else:
            out[t] = np.sqrt(periods_per_year * ev[t - 1])
    return out


def clock_sample_batch(ts_ns: Sequence[int], prices: Sequence[float], bucket_ns: int,
                       max_gap_ns: int | None = None,
                       until_ns: int | None = None) -> list[SampledReturn]:
    """Clock-sampled returns for time-sorted ticks: last price per bucket, completed buckets only.

    A bucket is complete if a later bucket has a tick, or ``until_ns`` >= its end.

    >>> clock_sample_batch([0, 30, 61, 130], [100.0, 101.0, 102.0, 100.0], 60)[0].span_buckets
    1
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    p = np.asarray(prices, dtype=float)
    if len(ts) == 0:
        return []
    b = ts // bucket_ns
    last = np.r_[b[1:] != b[:-1], True]  # last tick of each bucket
    kb, kp = b[last], p[last]
    if until_ns is None or until_ns < (kb[-1] + 1) * bucket_ns:
        kb, kp = kb[:-1], kp[:-1]  # the final bucket is not complete yet
    out = []
    for i in range(1, len(kb)):
        span = int(kb[i] - kb[i - 1])
        if max_gap_ns is not None and (span - 1) * bucket_ns > max_gap_ns:
            continue
        out.append(SampledReturn(int((kb[i] + 1) * bucket_ns), float(np.log(kp[i] / kp[i - 1])),
                                 span))
    return out


def intraday_rv_batch(returns: Sequence[SampledReturn], bucket_ns: int, window: int,
                      trading_days: float = TRADING_DAYS_PER_YEAR,
                      hours_per_day: float = RTH_HOURS_PER_DAY) -> float:
    """Annualised RV of the last ``window`` sampled returns (NaN if fewer), see ``IntradayRV``.

    >>> round(intraday_rv_batch([SampledReturn(60, 0.001, 1)], NS_PER_MINUTE, 1), 4)
    0.3135
    """
    if len(returns) < window:
        return math.nan
    last = returns[len(returns) - window:]
    r = np.array([x.log_return for x in last])
    span = np.sum([x.span_buckets for x in last])
    bpy = buckets_per_year(bucket_ns, trading_days, hours_per_day)
    return float(np.sqrt(np.sum(r**2) / span * bpy))


def bar_vol_batch(kind: str, o: Sequence[float], h: Sequence[float], l: Sequence[float],
                  c: Sequence[float], window: int,
                  periods_per_year: float = TRADING_DAYS_PER_YEAR) -> np.ndarray:
    """Annualised bar-estimator vol after each (valid) bar, recomputed from scratch per window.

    kind: "parkinson", "garman_klass", "rogers_satchell" or "yang_zhang". NaN until ready.

    >>> v = bar_vol_batch("parkinson", [100.0], [102.0], [99.0], [101.0], window=1, periods_per_year=1)
    >>> math.isclose(v[0], math.log(102 / 99) / math.sqrt(4 * math.log(2)))
    True
    """
    O, H, L, C = (np.asarray(a, dtype=float) for a in (o, h, l, c))
    m = len(O)
    out = np.full(m, np.nan)
    for t in range(m):
        if kind == "yang_zhang":
            if t < window:  # needs `window` overnight returns: bars 1..t with a previous close
                continue
            s = slice(t - window + 1, t + 1)
            ov = np.log(O[s] / C[t - window: t])
            oc = np.log(C[s] / O[s])
            rs = np.log(H[s] / C[s]) * np.log(H[s] / O[s]) + np.log(L[s] / C[s]) * np.log(L[s] / O[s])
            n = window
            k = 0.34 / (1.34 + (n + 1) / (n - 1))
            var = np.var(ov, ddof=1) + k * np.var(oc, ddof=1) + (1 - k) * np.mean(rs)
        else:
            if t + 1 < window:
                continue
            s = slice(t - window + 1, t + 1)
            hl = np.log(H[s] / L[s])
            co = np.log(C[s] / O[s])
            if kind == "parkinson":
                var = np.mean(hl**2) / (4 * np.log(2))
            elif kind == "garman_klass":
                var = np.mean(0.5 * hl**2 - (2 * np.log(2) - 1) * co**2)
            elif kind == "rogers_satchell":
                var = np.mean(np.log(H[s] / C[s]) * np.log(H[s] / O[s])
                              + np.log(L[s] / C[s]) * np.log(L[s] / O[s]))
            else:
                raise ValueError(f"unknown kind {kind!r}")
        out[t] = np.sqrt(max(var, 0.0) * periods_per_year)
    return out

