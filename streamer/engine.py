"""The engine: decoded messages in, analytics snapshots and trigger events out.

No Kafka here: the Faust worker (streamer/app) decodes, calls an engine, encodes; offline tools and
tests drive the very same engine objects. One ``UnderlyingEngine`` holds everything derived from one
underlying (SPX and the indices keyed to it, like VIX) and serializes to plain data for a table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from streamer.core import realized
from streamer.core.rules import ThresholdRule
from streamer.schemas import AnalyticsSnapshot, IndexTick, TriggerEvent, event_id
from streamer.settings import Settings

ET = ZoneInfo("America/New_York")
NS = 1_000_000_000


def session_bounds(ts_ns: int) -> tuple[int, int, int]:
    """(ordinal of the New York calendar date, its start, next day's start) in UTC ns.

    >>> d, start, end = session_bounds(1730906400 * NS)   # 2024-11-06 15:20 UTC = 10:20 ET
    >>> datetime.fromordinal(d).date().isoformat(), (end - start) // (3600 * NS)
    ('2024-11-06', 24)
    """
    local = datetime.fromtimestamp(ts_ns / NS, ET)
    day = local.date()
    start = datetime(day.year, day.month, day.day, tzinfo=ET)
    nxt = start + timedelta(days=1)
    nxt = datetime(nxt.year, nxt.month, nxt.day, tzinfo=ET)  # re-anchor across DST changes
    return day.toordinal(), int(start.timestamp()) * NS, int(nxt.timestamp()) * NS


@dataclass(slots=True)
class SeriesState:
    """One index series (SPX, VIX, ...): last print, session closes and realized-vol estimators."""

    symbol: str
    day: int = 0                 # New York date ordinal of the current session
    day_end_ns: int = 0          # start of the next calendar day, UTC ns
    last: float = math.nan
    last_ts_ns: int = 0
    prev_close: float = math.nan
    open: float = math.nan
    rv_ewma: realized.EWMAVar = field(default=None)          # type: ignore[assignment]
    rv_intraday: realized.IntradayRV = field(default=None)   # type: ignore[assignment]
    rv_close: realized.CloseToCloseVol = field(default=None)  # type: ignore[assignment]

    @classmethod
    def new(cls, symbol: str, ewma_lambda: float) -> SeriesState:
        return cls(
            symbol,
            rv_ewma=realized.EWMAVar(lam=ewma_lambda),
            # 1-minute returns, one session's worth; overnight gaps excluded (max gap 1 h)
            rv_intraday=realized.IntradayRV(bucket_ns=realized.NS_PER_MINUTE, window=390,
                                            max_gap_ns=realized.NS_PER_HOUR, min_periods=10),
            rv_close=realized.CloseToCloseVol(window=20),
        )

    def to_state(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "day": self.day, "day_end_ns": self.day_end_ns, "last": self.last,
                "last_ts_ns": self.last_ts_ns, "prev_close": self.prev_close, "open": self.open,
                "rv_ewma": self.rv_ewma.to_state(), "rv_intraday": self.rv_intraday.to_state(),
                "rv_close": self.rv_close.to_state()}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SeriesState:
        return cls(d["symbol"], d["day"], d["day_end_ns"], _f(d["last"]), d["last_ts_ns"],
                   _f(d["prev_close"]), _f(d["open"]),
                   realized.EWMAVar.from_state(d["rv_ewma"]), realized.IntradayRV.from_state(d["rv_intraday"]),
                   realized.CloseToCloseVol.from_state(d["rv_close"]))


def _f(x: float | None) -> float:
    """JSON has no NaN: ``None`` in a stored state means NaN."""
    return math.nan if x is None else float(x)


def _minute_vol_annual(var_per_minute: float) -> float:
    return math.sqrt(var_per_minute * realized.buckets_per_year(realized.NS_PER_MINUTE)) \
        if var_per_minute == var_per_minute else math.nan


class UnderlyingEngine:
    """Everything streamer derives from one underlying's input streams.

    >>> from streamer.settings import Settings
    >>> e = UnderlyingEngine("SPX", Settings())
    >>> t0 = 1730817000 * NS   # 2024-11-05 09:30 ET
    >>> _ = e.on_tick(IndexTick("VIX", "SPX", t0, 21.0)); _ = e.on_tick(IndexTick("VIX", "SPX", t0 + 23_400 * NS, 20.49))
    >>> fired = e.on_tick(IndexTick("VIX", "SPX", t0 + 86_400 * NS, 16.27))   # next session
    >>> [(ev.rule, round(ev.inputs["vix_change_ratio"], 3)) for ev in fired]
    [('vol_collapse', -0.206)]
    """

    def __init__(self, underlying: str, settings: Settings, state: dict[str, Any] | None = None) -> None:
        self.underlying = underlying
        self.settings = settings
        self.series: dict[str, SeriesState] = {}
        self.rules: dict[str, ThresholdRule] = {
            sym: ThresholdRule("vol_collapse", "<=", settings.vol_collapse_change_max,
                               rearm=settings.vol_collapse_rearm)
            for sym in settings.vol_indices
        }
        self.last_snapshot_ns = 0
        self.last_ts_ns = 0
        if state:
            self._load(state)

    # -- state -----------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain-data state for a changelogged table (write back after every batch)."""
        return {"underlying": self.underlying, "last_snapshot_ns": self.last_snapshot_ns,
                "last_ts_ns": self.last_ts_ns,
                "series": {k: s.to_state() for k, s in self.series.items()},
                "rules": {k: r.to_state() for k, r in self.rules.items()}}

    def _load(self, d: dict[str, Any]) -> None:
        self.last_snapshot_ns = d["last_snapshot_ns"]
        self.last_ts_ns = d["last_ts_ns"]
        self.series = {k: SeriesState.from_state(v) for k, v in d["series"].items()}
        for k, v in d["rules"].items():
            if k in self.rules:
                self.rules[k].load_state(v)

    # -- inputs ----------------------------------------------------------------------------------

    def on_tick(self, tick: IndexTick) -> list[TriggerEvent]:
        """Fold one index tick in; returns the trigger events it fired (usually none)."""
        s = self.series.get(tick.symbol)
        if s is None:
            s = self.series[tick.symbol] = SeriesState.new(tick.symbol, self.settings.ewma_lambda)
        ts, px = tick.ts_ns, tick.price
        if ts < s.last_ts_ns:
            return []  # late tick of an older time: the analytics are event-time ordered
        if ts >= s.day_end_ns:
            self._roll_session(s, ts)
        sr = s.rv_intraday.update(ts, px)  # one 1-minute return per completed minute
        if sr is not None:
            s.rv_ewma.update(sr.log_return)
        s.last, s.last_ts_ns = px, ts
        if s.open != s.open:
            s.open = px
        self.last_ts_ns = max(self.last_ts_ns, ts)
        rule = self.rules.get(tick.symbol)
        if rule is not None and s.prev_close == s.prev_close:
            change = px / s.prev_close - 1.0
            if rule.check(change, ts):
                return [self._vol_collapse_event(s, change, rule, ts)]
        return []

    def _roll_session(self, s: SeriesState, ts: int) -> None:
        if s.last == s.last:  # the last print of the previous session is its close
            s.prev_close = s.last
            s.rv_close.update(s.last)
        s.day, _, s.day_end_ns = session_bounds(ts)
        s.open = math.nan
        rule = self.rules.get(s.symbol)
        if rule is not None:
            rule.reset()

    def _vol_collapse_event(self, s: SeriesState, change: float, rule: ThresholdRule, ts: int) -> TriggerEvent:
        inputs: dict[str, float | None] = {
            f"{s.symbol.lower()}": s.last, f"{s.symbol.lower()}_prev_close": s.prev_close,
            f"{s.symbol.lower()}_change_ratio": change,
        }
        spot = self.series.get(self.underlying)
        if spot is not None and spot.prev_close == spot.prev_close:
            inputs[f"{self.underlying.lower()}"] = spot.last
            inputs[f"{self.underlying.lower()}_change_ratio"] = spot.last / spot.prev_close - 1.0
        severity = "critical" if change <= 1.33 * rule.threshold else "warning"
        thresholds = {f"{s.symbol.lower()}_change_ratio_max": rule.threshold, "rearm_above": rule.rearm}
        reason = (f"{s.symbol} {s.last:.2f} is {change:+.1%} vs previous close {s.prev_close:.2f} "
                  f"(threshold {rule.threshold:+.0%}): implied-vol collapse, expect systematic buying "
                  f"of {self.underlying} (vol-control re-leveraging, dealer vanna hedge removal)")
        return TriggerEvent(event_id(rule.name, self.underlying, ts, inputs), rule.name, self.underlying, ts,
                            "buy", severity, inputs, thresholds, reason)

    # -- outputs ---------------------------------------------------------------------------------

    def rv_value(self, name: str) -> float:
        """Annualized realized vol of the underlying by estimator: rv_ewma, rv_intraday or rv_close."""
        s = self.series.get(self.underlying)
        if s is None:
            return math.nan
        if name == "rv_ewma":
            return _minute_vol_annual(s.rv_ewma.get())
        return getattr(s, name).get()

    def values(self) -> dict[str, float | None]:
        """Every named signal, units in the names; NaN (null on the wire) where not computable."""
        out: dict[str, float | None] = {}
        for sym, s in self.series.items():
            p = sym.lower()
            out[f"{p}_last"] = s.last
            out[f"{p}_prev_close"] = s.prev_close
            out[f"{p}_change_ratio"] = s.last / s.prev_close - 1.0 if s.prev_close == s.prev_close else math.nan
            if sym == self.underlying:
                out["spot"] = s.last
                out["rv_1m_ewma_annual"] = self.rv_value("rv_ewma")
                out["rv_1m_session_annual"] = self.rv_value("rv_intraday")
                out["rv_cc_20d_annual"] = self.rv_value("rv_close")
        return {k: (None if v != v else v) for k, v in out.items()}

    def snapshot_due(self, interval_s: float) -> bool:
        return self.last_ts_ns - self.last_snapshot_ns >= interval_s * NS

    def snapshot(self) -> AnalyticsSnapshot:
        self.last_snapshot_ns = self.last_ts_ns
        return AnalyticsSnapshot(self.underlying, self.last_ts_ns, self.values())
