"""OHLC bar estimators: Parkinson, Garman-Klass, Rogers-Satchell (rolling mean of a per-bar term)
and Yang-Zhang."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # noqa: F401  (doctests)

from streamer.core.realized.accumulators import CompensatedSum, Var, window_mean
from streamer.core.realized.conventions import TRADING_DAYS_PER_YEAR, finite_pos
from streamer.core.realized.state import check_type, header, load_opt_float, register

__all__ = ["Parkinson", "GarmanKlass", "RogersSatchell", "YangZhang", "valid_bar"]

_LN2 = math.log(2.0)
_PARKINSON_K = 1.0 / (4.0 * _LN2)
_GK_K = 2.0 * _LN2 - 1.0


def valid_bar(o: float, h: float, l: float, c: float) -> bool:
    """Finite positive prices with low <= min(open, close) and high >= max(open, close)."""
    return (finite_pos(o) and finite_pos(h) and finite_pos(l) and finite_pos(c)
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
        if not valid_bar(open, high, low, close):
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
        return window_mean(self.total, len(self.terms), self.min_periods)  # type: ignore[arg-type]

    def get(self) -> float:
        """Annualised vol (decimal) = sqrt(per-bar variance x periods_per_year)."""
        v = self.variance()
        return math.sqrt(v * self.periods_per_year) if v == v else math.nan

    def to_state(self) -> dict[str, Any]:
        return {**header(self._NAME), "window": self.window,
                "periods_per_year": self.periods_per_year, "min_periods": self.min_periods,
                "total": self.total.to_state(), "terms": list(self.terms),
                "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Any:
        check_type(d, cls._NAME)
        return cls(int(d["window"]), float(d["periods_per_year"]), int(d["min_periods"]),
                   CompensatedSum.from_state(d["total"]), deque(float(x) for x in d["terms"]),
                   int(d["n_rejected"]))


@register
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


@register
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


@register
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


@register
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
        if not valid_bar(open, high, low, close):
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
        return {**header("YangZhang"), "window": self.window,
                "periods_per_year": self.periods_per_year, "min_periods": self.min_periods,
                "vo": self.vo.to_state(), "vc": self.vc.to_state(), "rs": self.rs.to_state(),
                "bars": [list(b) for b in self.bars], "prev_close": self.prev_close,
                "n_rejected": self.n_rejected}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> YangZhang:
        check_type(d, "YangZhang")
        return cls(int(d["window"]), float(d["periods_per_year"]), int(d["min_periods"]),
                   Var.from_state(d["vo"]), Var.from_state(d["vc"]),
                   CompensatedSum.from_state(d["rs"]),
                   deque((float(a), float(b), float(c)) for a, b, c in d["bars"]),
                   load_opt_float(d["prev_close"]), int(d["n_rejected"]))
