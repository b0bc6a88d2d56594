"""The engine: event-time batches of decoded columns in, trigger events and analytics snapshots out.

No Kafka here. :meth:`UnderlyingEngine.ingest` is the one entry point: the worker (streamer/app), the
offline driver :func:`run_offline` (tests, benchmarks) and every other tool hand it
:class:`~streamer.pipeline.Batch` es — the inputs of one underlying in one closed event-time segment
(streamer/pipeline.py) — and get :class:`Effects` back. One ``UnderlyingEngine`` holds everything derived
from one underlying (SPX, the indices keyed to it such as VIX, and its option chain):

* per index series: last print, session closes, realized vol (EWMA and session RV of 1-minute
  returns, 20-day close-to-close);
* the option chain (core/chain.py): per-contract IV and dealer exposures, GEX profile, flip, walls;
* a Cboe-method VIX and VIX9D computed from the chain (core/vix.py);
* the systematic-flow models (core/flows.py), fed the session closes, live prints and exposures;
* the trigger rules (core/rules.py), evaluated at the end of every segment that carried a live input
  (tick, quote or open interest; official closes never fire rules), and a snapshot at the same instants.

Determinism: a batch is applied whole (index messages in event-time order, then the quotes conflated to
the latest per contract, then open interest), so the result depends only on the segment's contents, never
on how the consumer happened to fetch them. A trigger's ``event_id`` is a function of the rule, the
underlying, the event time and the input position (how many inputs of this underlying were applied), not
of float digits.

State: :meth:`UnderlyingEngine.checkpoint` is the whole engine as bytes (written to the compacted state
topic at an interval with the input offsets it reflects); :meth:`UnderlyingEngine.from_checkpoint` rebuilds it.
"""
from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from datetime import date as _date
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core import iv as ivsolve
from streamer.core import realized
from streamer.core.chain import ChainConfig, ChainState, Contract, forward_from_parity
from streamer.core.flows import FlowBook
from streamer.core.rules import RuleSet
from streamer.core.vix import VIX, VIX9D, VixEngine
from streamer.pipeline import Batch, Table, size
from streamer.schemas import AnalyticsSnapshot, TriggerEvent, event_id
from streamer.settings import Settings

ET = ZoneInfo("America/New_York")
NS = 1_000_000_000
NS_PER_YEAR = 365 * 86_400 * NS


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


def _f(x: float | None) -> float:
    """JSON has no NaN: ``None`` in a stored state means NaN."""
    return math.nan if x is None else float(x)


def _minute_vol_annual(var_per_minute: float) -> float:
    return math.sqrt(var_per_minute * realized.buckets_per_year(realized.NS_PER_MINUTE)) \
        if var_per_minute == var_per_minute else math.nan


def contract_key(underlying: str, expiry_ts_ns: int, strike: float, right: str) -> str:
    """Table key of one contract's state: ``SPX|c|<expiry ns>|<strike>|<C/P>``."""
    return f"{underlying}|c|{expiry_ts_ns}|{strike!r}|{right}"


@dataclass(slots=True)
class SeriesState:
    """One index series (SPX, VIX, ...): last print, session closes and realized-vol estimators."""

    symbol: str
    day: int = 0                 # New York date ordinal of the current session
    day_end_ns: int = 0          # start of the next calendar day, UTC ns
    closed_day: int = 0          # date ordinal of the last session whose close is recorded
    last: float = math.nan
    last_ts_ns: int = 0
    prev_close: float = math.nan
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
        return {"symbol": self.symbol, "day": self.day, "day_end_ns": self.day_end_ns,
                "closed_day": self.closed_day, "last": self.last,
                "last_ts_ns": self.last_ts_ns, "prev_close": self.prev_close,
                "rv_ewma": self.rv_ewma.to_state(), "rv_intraday": self.rv_intraday.to_state(),
                "rv_close": self.rv_close.to_state()}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SeriesState:
        return cls(d["symbol"], d["day"], d["day_end_ns"], d["closed_day"], _f(d["last"]), d["last_ts_ns"],
                   _f(d["prev_close"]),
                   realized.EWMAVar.from_state(d["rv_ewma"]), realized.IntradayRV.from_state(d["rv_intraday"]),
                   realized.CloseToCloseVol.from_state(d["rv_close"]))

    @property
    def change_ratio(self) -> float:
        return self.last / self.prev_close - 1.0 if self.prev_close == self.prev_close else math.nan


@dataclass(slots=True)
class Effects:
    """What one :meth:`UnderlyingEngine.ingest` produced."""

    triggers: list[TriggerEvent] = field(default_factory=list)
    snapshot: AnalyticsSnapshot | None = None
    n_inputs: int = 0       # rows applied (every row counts, conflated or not)
    n_conflated: int = 0    # quotes superseded within the batch by a later quote of the same contract


def conflate(expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray) -> np.ndarray:
    """Indices of the last row of each contract (rows in event-time order), in that order.

    >>> conflate(np.array([1, 1, 2, 1]), np.array([5.0, 5.0, 5.0, 6.0]), np.array([1, 1, 1, 0], bool)).tolist()
    [1, 2, 3]
    """
    n = len(expiry)
    if n < 2:
        return np.arange(n)
    order = np.lexsort((np.arange(n), is_call, strike, expiry))
    e, k, c = expiry[order], strike[order], is_call[order]
    last = np.ones(n, bool)
    last[:-1] = (e[1:] != e[:-1]) | (k[1:] != k[:-1]) | (c[1:] != c[:-1])
    return np.sort(order[last])


class UnderlyingEngine:
    """Everything streamer derives from one underlying's input streams.

    >>> from streamer.pipeline import Batch
    >>> e = UnderlyingEngine("SPX", Settings())
    >>> t0 = 1730817000 * NS   # 2024-11-05 09:30 ET
    >>> for ts, px in ((t0, 5722.4), (t0 + 23_400 * NS, 5782.76), (t0 + 86_400 * NS, 5864.9)):
    ...     _ = e.ingest(Batch("SPX", ts + NS, index=index_table([("SPX", ts, px)])))
    >>> round(e.values()["spx_change_ratio"], 4)
    0.0142
    """

    def __init__(self, underlying: str, settings: Settings, rules: RuleSet | None = None) -> None:
        self.underlying = underlying
        self.settings = settings
        self.series: dict[str, SeriesState] = {}
        self.flows = FlowBook()
        self.rules = rules if rules is not None else load_rules(settings)
        self.chain: ChainState | None = None
        self.vix = VixEngine(settings.rate, VIX)
        self.vix9d = VixEngine(settings.rate, VIX9D)
        self.last_snapshot_ns = 0
        self.last_eval_ns = 0
        self.last_ts_ns = 0
        self.n_evaluations = 0  # rule evaluations since the worker last counted them (not state)
        self.n_inputs = 0  # input rows applied: the position in a trigger's event_id
        self._signals_at: tuple[int, dict[str, float]] = (-1, {})

    # -- state -----------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain-data state of everything (the chain's contracts as columns)."""
        ch = self.chain
        return {"underlying": self.underlying, "last_snapshot_ns": self.last_snapshot_ns,
                "last_eval_ns": self.last_eval_ns, "last_ts_ns": self.last_ts_ns, "n_inputs": self.n_inputs,
                "series": {k: s.to_state() for k, s in self.series.items()},
                "flows": self.flows.to_state(), "rules": self.rules.to_state(),
                "chain": ch.meta_state() if ch is not None else None,
                "contracts": [c.to_state() for c in ch.contracts()] if ch is not None else []}

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: Settings, rules: RuleSet | None = None) -> UnderlyingEngine:
        """Rebuild an engine from :meth:`to_state` (the chain's aggregates vectorized over the contracts)."""
        eng = cls(state["underlying"], settings, rules)
        eng.last_snapshot_ns = state["last_snapshot_ns"]
        eng.last_eval_ns = state["last_eval_ns"]
        eng.last_ts_ns = state["last_ts_ns"]
        eng.n_inputs = state["n_inputs"]
        eng.series = {k: SeriesState.from_state(v) for k, v in state["series"].items()}
        eng.flows = FlowBook.from_state(state["flows"])
        eng.rules.load_state(state["rules"])
        contracts = state["contracts"]
        if state.get("chain") is not None:
            eng.chain = ChainState.rebuild(contracts, state["chain"])
            cs = [Contract.from_state(c) for c in contracts]
            if cs:
                arr = dict(expiry_ts_ns=np.array([c.expiry_ts_ns for c in cs], dtype=np.int64),
                           strike=np.array([c.strike for c in cs]), right=np.array([c.right for c in cs]),
                           bid=np.array([c.bid for c in cs]), ask=np.array([c.ask for c in cs]))
                eng.vix = VixEngine.from_arrays(**arr, rate=settings.rate, spec=VIX)
                eng.vix9d = VixEngine.from_arrays(**arr, rate=settings.rate, spec=VIX9D)
        return eng

    def checkpoint(self) -> bytes:
        """The whole engine as bytes (stdlib JSON keeps NaN, the estimators' "not yet"; zlib-compressed)."""
        return zlib.compress(json.dumps(self.to_state(), separators=(",", ":")).encode(), 1)

    @classmethod
    def from_checkpoint(cls, data: bytes, settings: Settings, rules: RuleSet | None = None) -> UnderlyingEngine:
        return cls.from_state(json.loads(zlib.decompress(data)), settings, rules)

    # -- the one entry point ---------------------------------------------------------------------

    def ingest(self, batch: Batch, *, snapshot: bool | None = None) -> Effects:
        """Apply one closed event-time segment of this underlying; evaluate the rules and snapshot at its end.

        ``snapshot``: None = at most once per ``analytics_interval_s`` of event time; True = always
        (e.g. latency measurements); False = never. Official closes alone evaluate nothing.
        """
        fx = Effects(n_inputs=len(batch))
        live = False
        idx = batch.index
        if size(idx):
            kind, sym, ts, px, day = (idx["kind"].tolist(), idx["symbol"].tolist(), idx["ts_ns"].tolist(),
                                      idx["price"].tolist(), idx["date"].tolist())
            for i in range(len(kind)):
                if kind[i]:
                    self._fold_close(sym[i], day[i], ts[i], px[i])
                else:
                    self._fold_tick(sym[i], ts[i], px[i])
                    live = True
        if size(batch.quotes):
            fx.n_conflated = self._fold_quotes(batch.quotes)
            live = True
        if size(batch.open_interest):
            self._fold_open_interest(batch.open_interest)
            live = True
        self.n_inputs += fx.n_inputs
        if live:
            fx.triggers = self.evaluate()
            if snapshot or (snapshot is None and self.snapshot_due(self.settings.analytics_interval_s)):
                fx.snapshot = self.snapshot()
        return fx

    # -- inputs ----------------------------------------------------------------------------------

    def _series(self, symbol: str) -> SeriesState:
        s = self.series.get(symbol)
        if s is None:
            s = self.series[symbol] = SeriesState.new(symbol, self.settings.ewma_lambda)
        return s

    def _fold_tick(self, symbol: str, ts: int, px: float) -> None:
        s = self._series(symbol)
        if ts < s.last_ts_ns:
            return  # late tick of an older time: the analytics are event-time ordered
        if ts >= s.day_end_ns:
            self._roll_session(s, ts)
        sr = s.rv_intraday.update(ts, px)  # one 1-minute return per completed minute
        if sr is not None:
            s.rv_ewma.update(sr.log_return)
        s.last, s.last_ts_ns = px, ts
        self.last_ts_ns = max(self.last_ts_ns, ts)
        if symbol == self.underlying:
            self.flows.on_spot(ts, px)
            ch = self.chain
            if ch is not None:
                first = ch.eval_spot != ch.eval_spot  # chain created before any spot print
                ch.on_spot(px, ts)                   # O(1); reprices past its move/age thresholds
                if first:
                    ch.reprice(px, ts)
                    ch.recentre(px)
        elif symbol == "VIX":
            self.flows.on_vol_index(ts, px)

    def _roll_session(self, s: SeriesState, ts: int) -> None:
        """First print of a new New York date: the previous session's close is its official close if
        one arrived (``_fold_close``), else its last print."""
        prev_day = s.day
        if s.last == s.last:
            s.prev_close = s.last
            if prev_day and s.closed_day < prev_day:  # no official close: the last print stands in
                s.rv_close.update(s.last)
                s.closed_day = prev_day
                self._closes_to_flows(prev_day)
        s.day, _, s.day_end_ns = session_bounds(ts)

    def _fold_close(self, symbol: str, date: str, ts: int, close: float) -> None:
        """An official close (end-of-day feed or history backfill): closes, vol windows, flow models.

        Trigger rules do not run on closes, so replaying years of closes to warm the models up never
        fires a trigger. The close replaces the series' last print as that session's close.
        """
        s = self._series(symbol)
        day = _date.fromisoformat(date).toordinal()
        if day < s.day or day <= s.closed_day:
            return  # an older or repeated close (at-least-once redelivery)
        if day > s.day:  # a session we saw no ticks of: it opens and closes here
            if s.last == s.last and s.day:
                s.prev_close = s.last
            s.day, _, s.day_end_ns = session_bounds(ts)
        s.last, s.last_ts_ns = close, max(s.last_ts_ns, ts)
        s.rv_close.update(close)
        s.closed_day = day
        self.last_ts_ns = max(self.last_ts_ns, ts)
        self._closes_to_flows(day)

    def _closes_to_flows(self, day: int) -> None:
        """Give the flow models session ``day``'s SPX and VIX closes once both are known."""
        spx, vix = self.series.get(self.underlying), self.series.get("VIX")
        if spx is not None and vix is not None and spx.closed_day == vix.closed_day == day:
            # a series that has already rolled into the next session holds that close as prev_close
            close = [x.prev_close if x.day > day else x.last for x in (spx, vix)]
            self.flows.on_daily_close(_date.fromordinal(day), *close)

    def _fold_quotes(self, q: Table) -> int:
        """A batch of quotes, conflated to the latest per contract: one vectorized IV solve, then the chain.

        IVs are solved against each expiry's put–call-parity forward (from this batch where it
        quotes both sides of a strike, else from the chain's state), not against the last spot
        print: quotes and index ticks travel on different topics, so the spot may be older than the
        quotes (e.g. across an overnight gap). Returns how many quotes were conflated away.
        """
        keep = conflate(q["expiry_ts_ns"], q["strike"], q["is_call"])
        n_all = size(q)
        if len(keep) < n_all:
            q = {k: v[keep] for k, v in q.items()}
        ts_all = q["ts_ns"]
        ch = self._chain(int(ts_all[0]))
        n = len(ts_all)
        r, q_div = self.settings.rate, self.settings.div_yield
        bid, ask = q["bid"], q["ask"]
        mids = np.where(bid > 0, (bid + ask) * 0.5, math.nan)
        strikes = q["strike"].astype(float)
        expiry = q["expiry_ts_ns"]
        t = (expiry - ts_all) / NS_PER_YEAR
        calls = q["is_call"].astype(bool)
        spot_eq = np.full(n, ch.spot)
        for e in np.unique(expiry).tolist():
            idx = np.flatnonzero(expiry == e)
            fwd = self._batch_forward(strikes[idx], mids[idx], calls[idx], float(t[idx[0]]))
            if fwd != fwd:
                known = ch.forward(e, int(ts_all[idx[0]]))
                fwd = known.forward if known is not None else math.nan
            if fwd == fwd:  # spot equivalent of the forward: S = F e^{-(r-q)T}
                spot_eq[idx] = fwd * np.exp(-(r - q_div) * t[idx])
        ok = np.isfinite(spot_eq)
        vols = np.full(n, math.nan)  # no forward and no spot yet: no IV until re-quoted
        if ok.any():
            vols[ok], _ = ivsolve.implied_vol_batch(mids[ok], spot_eq[ok], strikes[ok], t[ok], r, q_div, calls[ok])
        right = np.where(calls, "C", "P")
        for e, k, rt, b, a, ts, v in zip(expiry.tolist(), strikes.tolist(), right.tolist(), bid.tolist(),
                                         ask.tolist(), ts_all.tolist(), vols.tolist()):
            c = ch.on_quote(e, k, rt, b, a, ts, iv=v)
            if c is not None:
                self.vix.update_quote(e, k, rt, b, a)
                self.vix9d.update_quote(e, k, rt, b, a)
        self.last_ts_ns = max(self.last_ts_ns, int(ts_all.max()))
        return n_all - n

    def _batch_forward(self, strikes: np.ndarray, mids: np.ndarray, calls: np.ndarray, t: float) -> float:
        """Parity forward of one expiry from the call/put pairs quoted in this batch (NaN if none)."""
        cm = dict(zip(strikes[calls].tolist(), mids[calls].tolist()))
        pairs = [(k, cm[k], p) for k, p in zip(strikes[~calls].tolist(), mids[~calls].tolist()) if k in cm]
        if not pairs:
            return math.nan
        k, c, p = (np.array(x) for x in zip(*pairs))
        return forward_from_parity(k, c, p, t, self.settings.rate)[0]

    def _fold_open_interest(self, o: Table) -> None:
        ch = self._chain(int(o["ts_ns"][0]))
        for e, k, c, n in zip(o["expiry_ts_ns"].tolist(), o["strike"].tolist(), o["is_call"].tolist(),
                              o["open_interest"].tolist()):
            ch.on_open_interest(e, float(k), "C" if c else "P", n)
        self.last_ts_ns = max(self.last_ts_ns, int(o["ts_ns"].max()))

    def _chain(self, ts_ns: int) -> ChainState:
        """The chain, created at the first quote or OI record (spot NaN until the first print)."""
        if self.chain is None:
            s = self.series.get(self.underlying)
            # full re-evaluation after a 0.25% move or 5 minutes of event time (chain.py documents
            # the error of the O(1) live reads in between)
            self.chain = ChainState(s.last if s is not None else math.nan, ts_ns,
                                    ChainConfig(rate=self.settings.rate, div_yield=self.settings.div_yield,
                                                reprice_max_age_ns=300 * NS))
        return self.chain

    # -- outputs ---------------------------------------------------------------------------------

    def evaluate(self) -> list[TriggerEvent]:
        """Evaluate the rules on the current signals; returns the trigger events that fired."""
        ts = self.last_ts_ns
        self.last_eval_ns = ts
        self.n_evaluations += 1
        sig = self.signals()
        self._signals_at = (self.n_inputs, sig)
        events = []
        for f in self.rules.evaluate(sig, ts):
            events.append(TriggerEvent(event_id(f.rule, self.underlying, f.ts_ns, self.n_inputs), f.rule,
                                       self.underlying, f.ts_ns, f.direction, f.severity, f.inputs, f.thresholds,
                                       f.reason, f.estimated_notional_usd, input_seq=self.n_inputs))
        return events

    def rv_value(self, name: str) -> float:
        """Annualized realized vol of the underlying by estimator: rv_ewma, rv_intraday or rv_close."""
        s = self.series.get(self.underlying)
        if s is None:
            return math.nan
        if name == "rv_ewma":
            return _minute_vol_annual(s.rv_ewma.get())
        return getattr(s, name).get()

    def chain_values(self) -> dict[str, float]:
        """Dealer exposures and our volatility indices from the chain (NaN before any quote)."""
        ch = self.chain
        out = {k: math.nan for k in ("gex_usd_per_pct", "delta_exposure_usd", "vanna_usd_per_vol_pt",
                                     "charm_usd_per_day", "gex_0dte_usd_per_pct", "gamma_flip", "call_wall",
                                     "put_wall", "abs_gamma_strike", "atm_iv", "vix_calc", "vix9d_calc")}
        if ch is None:
            return out
        ts = self.last_ts_ns
        if ch.needs_reprice():
            ch.reprice()
        tot = ch.live_totals()
        out.update(gex_usd_per_pct=tot.gex_usd_per_pct, delta_exposure_usd=tot.dex_usd,
                   vanna_usd_per_vol_pt=tot.vanna_usd_per_vol_pt, charm_usd_per_day=tot.charm_usd_per_day,
                   gex_0dte_usd_per_pct=ch.zero_dte().gex_usd_per_pct, gamma_flip=ch.gamma_flip(),
                   call_wall=ch.call_wall(), put_wall=ch.put_wall(), abs_gamma_strike=ch.abs_gamma_strike(),
                   atm_iv=self._atm_iv(ts))
        self.flows.on_exposures(ts, tot.gex_usd_per_pct, tot.vanna_usd_per_vol_pt, tot.charm_usd_per_day)
        out["vix_calc"] = self.vix.value(ts).value
        out["vix9d_calc"] = self.vix9d.value(ts).value
        return out

    def _atm_iv(self, ts: int) -> float:
        """Mean call/put IV at the parity strike of the first expiry at least 7 days out."""
        ch = self.chain
        for c_exp in sorted(self.vix.terms):
            if c_exp - ts < 7 * 86_400 * NS:
                continue
            fwd = ch.forward(c_exp, ts)
            if fwd is None:
                continue
            ivs = [c.iv for r in "CP" if (c := ch.get((c_exp, fwd.strike, r))) is not None and c.iv == c.iv]
            return sum(ivs) / len(ivs) if ivs else math.nan
        return math.nan

    def signals(self) -> dict[str, float]:
        """Every named signal (units in the names); NaN where not computable.

        The flow models keep their own copies of the SPX/VIX last/previous close; the engine's
        series (which see every index, not only SPX and VIX) take precedence for those names.
        """
        out: dict[str, float] = self.flows.signals()
        out.update(self.chain_values())
        for sym, s in self.series.items():
            p = sym.lower()
            out[f"{p}_last"] = s.last
            out[f"{p}_prev_close"] = s.prev_close
            out[f"{p}_change_ratio"] = s.change_ratio
        if self.underlying in self.series:
            out["spot"] = self.series[self.underlying].last
            out["rv_1m_ewma_annual"] = self.rv_value("rv_ewma")
            out["rv_1m_session_annual"] = self.rv_value("rv_intraday")
            out["rv_cc_20d_annual"] = self.rv_value("rv_close")
        return out

    def values(self) -> dict[str, float | None]:
        """The signals as they go on the wire (NaN → null); reuses the rules' evaluation when no
        input arrived since (the chain reads and our VIX are the costly part)."""
        n, sig = self._signals_at
        if n != self.n_inputs:
            sig = self.signals()
        return {k: (None if v != v else v) for k, v in sig.items()}

    def snapshot_due(self, interval_s: float) -> bool:
        return self.last_ts_ns - self.last_snapshot_ns >= interval_s * NS

    def snapshot(self) -> AnalyticsSnapshot:
        self.last_snapshot_ns = self.last_ts_ns
        return AnalyticsSnapshot(self.underlying, self.last_ts_ns, self.values(), input_seq=self.n_inputs)


def index_table(rows: Sequence[tuple], underlying: str = "SPX") -> Table:
    """Index columns from (symbol, ts_ns, price) ticks or (symbol, ts_ns, close, date) closes (tests, docs)."""
    return {"ts_ns": np.array([r[1] for r in rows], np.int64), "offset": np.arange(len(rows), dtype=np.int64),
            "kind": np.array([len(r) > 3 for r in rows], np.int8),
            "symbol": np.array([r[0] for r in rows], object), "underlying": np.array([underlying] * len(rows), object),
            "price": np.array([r[2] for r in rows], float),
            "date": np.array([r[3] if len(r) > 3 else "" for r in rows], object)}


def run_offline(records: Iterable[tuple[int, bytes | None, bytes]], settings: Settings, *, chunk: int = 5000,
                engines: dict[str, UnderlyingEngine] | None = None, snapshot: bool | None = None
                ) -> tuple[list[TriggerEvent], list[AnalyticsSnapshot], dict[str, UnderlyingEngine]]:
    """Drive the engines exactly as the worker does, without Kafka: one partition's raw records
    ``(kind, key, value)`` (kind: ``pipeline.INDEX/QUOTES/OPEN_INTEREST``) in publication order, decoded in
    chunks of ``chunk`` records per topic, merged into event-time segments as from a backlog, ingested.

    Returns the triggers, the snapshots and the engines. The result does not depend on ``chunk``.
    """
    from streamer.pipeline import KINDS, PartitionMerger, decode_chunk

    records = list(records)
    total = [0] * len(KINDS)
    for kind, _, _ in records:
        total[kind] += 1
    merger = PartitionMerger(int(settings.analytics_interval_s * NS), idle_ns=0)
    engines = {} if engines is None else engines
    buf: list[list[tuple[bytes | None, bytes]]] = [[] for _ in KINDS]
    fed = [0] * len(KINDS)
    triggers: list[TriggerEvent] = []
    snaps: list[AnalyticsSnapshot] = []

    def feed(kind: int) -> None:
        if not buf[kind]:
            return
        keys, values = zip(*buf[kind])
        offsets = np.arange(fed[kind], fed[kind] + len(values), dtype=np.int64)
        table, _ = decode_chunk(kind, list(values), list(keys), offsets)
        fed[kind] += len(values)
        merger.add(kind, table, next_offset=fed[kind], highwater=total[kind], now_ns=0)
        buf[kind].clear()

    def drain(flush: bool) -> None:
        for b in merger.pop_ready(0, flush=flush):
            eng = engines.get(b.underlying)
            if eng is None:
                eng = engines[b.underlying] = UnderlyingEngine(b.underlying, settings)
            fx = eng.ingest(b, snapshot=snapshot)
            triggers.extend(fx.triggers)
            if fx.snapshot is not None:
                snaps.append(fx.snapshot)

    for kind, key, value in records:
        buf[kind].append((key, value))
        if len(buf[kind]) >= chunk:
            feed(kind)
            drain(False)
    for kind in range(len(KINDS)):
        feed(kind)
    drain(True)
    return triggers, snaps, engines


def load_rules(settings: Settings) -> RuleSet:
    """The rule set of ``settings.rules_file`` (the packaged default when empty)."""
    return RuleSet.from_toml(settings.rules_file) if settings.rules_file else RuleSet.default()
