"""The engine: event-time batches of decoded columns in, trigger events and analytics snapshots out.

No Kafka here. :meth:`UnderlyingEngine.ingest` is the one entry point: the worker (streamer/app), the
offline driver :func:`run_offline` (tests, benchmarks, ``streamer chain``), the daily backtest
(streamer/backtest.py: one batch of official closes per day) and every other tool hand it
:class:`~streamer.pipeline.Batch` es — the inputs of one underlying in one closed event-time segment
(streamer/pipeline.py) — and get :class:`Effects` back. One ``UnderlyingEngine`` holds everything derived
from one underlying (SPX, the indices keyed to it such as VIX, and its option chain):

* per index series: last print, session closes, realized vol (EWMA and session RV of 1-minute
  returns, 20-day close-to-close);
* the option chain (core/chain.py): per-contract IV and dealer exposures, GEX profile, flip, walls;
* a Cboe-method VIX and VIX9D computed from the chain (core/vix.py);
* the systematic-flow models (core/flows/), fed the session closes, live prints and exposures, and the
  dealer vanna/charm flows by full revaluation of the chain (core/dealer_reval.py) at most once per
  ``dealer_reval_interval_s`` of event time (captured at one evaluation, revalued a slice per evaluation),
  with the chain's own dealer positioning (``Settings.dealer_positioning``: GEX, vanna and charm from one
  sign per contract);
* the trigger rules (core/rules.py), evaluated at the end of every segment that carried a live input
  (tick, quote or open interest; official closes fire rules only when the driver asks, as the daily
  backtest does), and a snapshot at the same instants.

Every signal it emits is declared in the catalogue (core/signals.py; :meth:`UnderlyingEngine.catalogue`,
:func:`known_signals`); rule files are validated against it (:func:`load_rules`). Official closes of the
bond input (:func:`bond_symbol`: TLT or DGS10) reach risk parity with the day's SPX and VIX closes.

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
import pickle
import zlib
from dataclasses import dataclass, field
from datetime import date as _date
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core import realized
from streamer.core import signals as catalogue
from streamer.core.chain import ChainBook, ChainConfig
from streamer.core.dealer_reval import RevalJob, book_positioning
from streamer.core.flows.dealer import BASIS_CHAIN
from streamer.core.flows import FlowBook, FlowConfig
from streamer.core.rules import RuleSet
from streamer.core.vix import VIX, VIX9D
from streamer.pipeline import Batch, Table, size
from streamer.schemas import AnalyticsSnapshot, TriggerEvent, event_id
from streamer.settings import Settings, check_positioning

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
    suspect: tuple[int, float] | None = None  # (ts_ns, price) of a print held as an implausible jump

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
                "rv_close": self.rv_close.to_state(),
                "suspect": list(self.suspect) if self.suspect is not None else None}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SeriesState:
        return cls(d["symbol"], d["day"], d["day_end_ns"], d["closed_day"], _f(d["last"]), d["last_ts_ns"],
                   _f(d["prev_close"]),
                   realized.EWMAVar.from_state(d["rv_ewma"]), realized.IntradayRV.from_state(d["rv_intraday"]),
                   realized.CloseToCloseVol.from_state(d["rv_close"]),
                   (int(d["suspect"][0]), float(d["suspect"][1])) if d.get("suspect") else None)

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
    # index prints held as implausible jumps: (symbol, ts_ns, price, outcome) with outcome "held" (not fed
    # to the models), "confirmed" (a second print agreed: both taken) or "discarded" (the next print did not)
    suspect: list[tuple[str, int, float, str]] = field(default_factory=list)
    # trigger events withheld because a number in them is not finite: (rule, reason)
    withheld: list[tuple[str, str]] = field(default_factory=list)


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

    def __init__(self, underlying: str, settings: Settings, rules: RuleSet | None = None,
                 flow_config: FlowConfig | None = None) -> None:
        self.underlying = underlying
        self.settings = settings
        self.series: dict[str, SeriesState] = {}
        self.flows = FlowBook(flow_config)
        self._fund_underlyings = frozenset(self.flows.config.leveraged_etf.symbols)
        self.rules = rules if rules is not None else load_rules(settings)
        check_positioning(settings)   # a ConfigError naming the models
        # the chain's positioning argument: a per-contract callback, or the signs of a spot/clock model
        # that the chain re-evaluates at each reprice (not state: the signs themselves are)
        self._positioning = book_positioning(settings.dealer_positioning)
        self.chain: ChainBook | None = None
        self.last_snapshot_ns = 0
        self.last_eval_ns = 0
        self.last_ts_ns = 0
        self.n_evaluations = 0  # rule evaluations since the worker last counted them (not state)
        self.n_inputs = 0  # input rows applied: the position in a trigger's event_id
        self._signals_at: tuple[int, dict[str, float]] = (-1, {})
        self._catalogue: tuple[tuple[str, ...], dict[str, catalogue.Concrete]] = ((), {})
        self._reval: RevalJob | None = None   # a dealer revaluation in progress (``_dealer_reval``)

    # -- state -----------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain-data state of everything (the chain's contracts as columns), sharing no mutable object
        with the engine: the worker takes it at the checkpoint instant and packs it in a thread while the
        engine goes on. The chain's arrays are copies (``ChainBook.to_state``; a few MB of memcpy, the
        bulk of the ~2 ms this takes at 20k contracts); the rest is small and copied here whatever the
        models' ``to_state`` return."""
        ch, job = self.chain, self._reval
        return {**_detached({
                    "underlying": self.underlying, "last_snapshot_ns": self.last_snapshot_ns,
                    "last_eval_ns": self.last_eval_ns, "last_ts_ns": self.last_ts_ns, "n_inputs": self.n_inputs,
                    "series": {k: s.to_state() for k, s in self.series.items()},
                    "flows": self.flows.to_state(), "rules": self.rules.to_state()}),
                "chain": ch.to_state() if ch is not None else None,
                "dealer_reval": job.to_state() if job is not None else None}

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: Settings, rules: RuleSet | None = None,
                   flow_config: FlowConfig | None = None) -> UnderlyingEngine:
        """Rebuild an engine from :meth:`to_state` (the chain's aggregates vectorized over the contracts)."""
        eng = cls(state["underlying"], settings, rules, flow_config)
        eng.last_snapshot_ns = state["last_snapshot_ns"]
        eng.last_eval_ns = state["last_eval_ns"]
        eng.last_ts_ns = state["last_ts_ns"]
        eng.n_inputs = state["n_inputs"]
        # "flip" (checkpoints before the profile was kept incrementally: a throttled flip) is ignored
        eng.series = {k: SeriesState.from_state(v) for k, v in state["series"].items()}
        eng.flows = FlowBook.from_state(state["flows"], flow_config)
        eng._fund_underlyings = frozenset(eng.flows.config.leveraged_etf.symbols)
        eng.rules.load_state(state["rules"])
        if state.get("chain") is not None:
            eng.chain = ChainBook.from_state(state["chain"], **eng._positioning)
        if state.get("dealer_reval") is not None:
            eng._reval = RevalJob.from_state(state["dealer_reval"])
        return eng

    def checkpoint(self) -> bytes:
        """The whole engine as bytes, bit for bit (:func:`pack`)."""
        return pack(self.to_state())

    @classmethod
    def from_checkpoint(cls, data: bytes, settings: Settings, rules: RuleSet | None = None,
                        flow_config: FlowConfig | None = None) -> UnderlyingEngine:
        return cls.from_state(unpack(data), settings, rules, flow_config)

    # -- the one entry point ---------------------------------------------------------------------

    def ingest(self, batch: Batch, *, snapshot: bool | None = None, evaluate: bool | None = None,
               exposures: tuple[float, float, float] | None = None,
               dealer_flows: tuple[float, float, float] | None = None) -> Effects:
        """Apply one closed event-time segment of this underlying; evaluate the rules and snapshot at its end.

        ``snapshot``: None = at most once per ``analytics_interval_s`` of event time; True = always
        (e.g. latency measurements); False = never. ``evaluate``: None = after a segment with a live input
        (tick, quote, open interest; official closes alone evaluate nothing, so replaying years of closes
        to warm the models up fires nothing); True = also after closes (the daily backtest, whose inputs
        are closes); False = never. ``exposures``: dealer (GEX $/1%, vanna $/vol pt, charm $/day) from
        outside the chain, applied before the segment (the backtest's daily positioning proxies; the live
        engine takes them from its own chain at every evaluation). ``dealer_flows``: (vanna $, charm $,
        basis) by full revaluation of a chain outside the engine (the backtest's dated chain or its
        proxy; ``FlowBook.on_dealer_flows``), applied before the segment likewise.
        """
        fx = Effects(n_inputs=len(batch))
        live = False
        if exposures is not None:
            self.flows.on_exposures(batch.last_ts_ns or batch.end_ns, *exposures)
        if dealer_flows is not None:
            self.flows.on_dealer_flows(batch.last_ts_ns or batch.end_ns, *dealer_flows)
        idx = batch.index
        if size(idx):
            kind, sym, ts, px, day = (idx["kind"].tolist(), idx["symbol"].tolist(), idx["ts_ns"].tolist(),
                                      idx["price"].tolist(), idx["date"].tolist())
            for i in range(len(kind)):
                if kind[i]:
                    self._fold_close(sym[i], day[i], ts[i], px[i])
                else:
                    self._fold_tick(sym[i], ts[i], px[i], fx)
                    live = True
        if size(batch.quotes):
            fx.n_conflated = self._fold_quotes(batch.quotes)
            live = True
        if size(batch.open_interest):
            self._fold_open_interest(batch.open_interest)
            live = True
        self.n_inputs += fx.n_inputs
        if self.chain is not None and live:
            self.chain.expire(self.last_ts_ns)  # settled contracts leave the state and every aggregate
        if live if evaluate is None else evaluate:
            fx.triggers = self._finite(self.evaluate(), fx)
            if snapshot or (snapshot is None and self.snapshot_due(self.settings.analytics_interval_s)):
                fx.snapshot = self.snapshot()
        return fx

    @staticmethod
    def _finite(events: list[TriggerEvent], fx: Effects) -> list[TriggerEvent]:
        """Nothing non-finite reaches a trigger: an event whose notional or an input is ±inf or NaN
        (JSON would carry it as null) is withheld and reported instead of published."""
        out = []
        for ev in events:
            n = ev.estimated_notional_usd
            bad = [k for k, v in ev.inputs.items() if v is not None and not math.isfinite(v)]
            if n is not None and not math.isfinite(n):
                bad.append("estimated_notional_usd")
            if bad:
                fx.withheld.append((ev.rule, f"not finite: {', '.join(sorted(bad))}"))
            else:
                out.append(ev)
        return out

    # -- inputs ----------------------------------------------------------------------------------

    def _series(self, symbol: str) -> SeriesState:
        s = self.series.get(symbol)
        if s is None:
            s = self.series[symbol] = SeriesState.new(symbol, self.settings.ewma_lambda)
        return s

    def _jump_limit(self, symbol: str) -> float:
        """Largest plausible |log change| between two consecutive prints of one session."""
        st = self.settings
        return st.suspect_jump_vol_index if symbol in st.vol_indices else st.suspect_jump_index

    def _plausible(self, s: SeriesState, ts: int, px: float, fx: Effects) -> bool:
        """Hold a print that jumps implausibly against the last good one (a bad tick must not reach the
        models or a trigger). A real gap is accepted at the session open (first print of a new New York
        date) or when the next print confirms it (within a quarter of the limit of the held price): both
        are then taken, in order. A held print the next one does not confirm is discarded."""
        limit = self._jump_limit(s.symbol)
        if s.suspect is not None:
            sts, spx = s.suspect
            s.suspect = None
            if abs(math.log(px / spx)) <= limit / 4:
                fx.suspect.append((s.symbol, sts, spx, "confirmed"))
                self._fold_good_tick(s, sts, spx)
                return True
            fx.suspect.append((s.symbol, sts, spx, "discarded"))
        if s.last == s.last and ts < s.day_end_ns and abs(math.log(px / s.last)) > limit:
            s.suspect = (ts, px)
            fx.suspect.append((s.symbol, ts, px, "held"))
            return False
        return True

    def _fold_tick(self, symbol: str, ts: int, px: float, fx: Effects) -> None:
        s = self._series(symbol)
        if ts < s.last_ts_ns:
            return  # late tick of an older time: the analytics are event-time ordered
        if not self._plausible(s, ts, px, fx):
            return
        self._fold_good_tick(s, ts, px)

    def _fold_good_tick(self, s: SeriesState, ts: int, px: float) -> None:
        symbol = s.symbol
        if ts >= s.day_end_ns:
            self._roll_session(s, ts)
        sr = s.rv_intraday.update(ts, px)  # one 1-minute return per completed minute
        if sr is not None:
            s.rv_ewma.update(sr.log_return)
        s.last, s.last_ts_ns = px, ts
        self.last_ts_ns = max(self.last_ts_ns, ts)
        if symbol == self.underlying:
            self.flows.on_spot(ts, px)
            if self.chain is not None:
                self.chain.on_spot(px, ts)  # O(1); reprices past its move/age thresholds
        elif symbol == "VIX":
            self.flows.on_vol_index(ts, px)
        elif symbol in self._fund_underlyings:
            self.flows.on_underlying(ts, symbol, px)   # a leveraged fund's own benchmark (NDX, SOXX, NVDA, ...)

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
        """Give the flow models session ``day``'s SPX and VIX closes once both are known, with the closes
        of that day that came first of the bond input (:func:`bond_symbol`; NaN otherwise: risk parity then
        skips the day) and of the leveraged funds' underlyings (without one a fund uses its last print of
        the session, else the SPX-beta proxy)."""
        spx, vix = self.series.get(self.underlying), self.series.get("VIX")
        if spx is not None and vix is not None and spx.closed_day == vix.closed_day == day:
            # a series that has already rolled into the next session holds that close as prev_close
            close = [x.prev_close if x.day > day else x.last for x in (spx, vix)]
            b = self._close_of(bond_symbol(self.flows.config), day)
            funds = {sym: x for sym in self._fund_underlyings if (x := self._close_of(sym, day)) == x}
            self.flows.on_daily_close(_date.fromordinal(day), *close, b, underlying_closes=funds)

    def _close_of(self, symbol: str, day: int) -> float:
        """Official close of ``symbol`` for session ``day`` if it arrived (and no later print), else NaN."""
        s = self.series.get(symbol)
        return s.last if s is not None and s.closed_day == day and s.day == day else math.nan

    def _fold_quotes(self, q: Table) -> int:
        """A batch of quotes into the chain (core/chain.py ``ChainBook.apply_quotes``: conflated to the
        latest per contract, IVs solved vectorized against each expiry's put–call-parity forward, since
        the last spot print may be older than the quotes). Returns how many quotes were conflated away."""
        ch = self._chain(int(q["ts_ns"][0]))
        before = ch.conflated_quotes
        ch.apply_quotes(q["ts_ns"], q["expiry_ts_ns"], q["strike"], q["is_call"], q["bid"], q["ask"])
        self.last_ts_ns = max(self.last_ts_ns, int(q["ts_ns"].max()))
        return ch.conflated_quotes - before

    def _fold_open_interest(self, o: Table) -> None:
        self._chain(int(o["ts_ns"][0])).apply_open_interest(o["expiry_ts_ns"], o["strike"], o["is_call"],
                                                            o["open_interest"])
        self.last_ts_ns = max(self.last_ts_ns, int(o["ts_ns"].max()))

    def _chain(self, ts_ns: int) -> ChainBook:
        """The chain, created at the first quote or OI record (spot NaN until the first print)."""
        if self.chain is None:
            s = self.series.get(self.underlying)
            # full re-evaluation after a 0.25% move or 5 minutes of event time (chain.py documents
            # the error of the O(1) live reads in between)
            self.chain = ChainBook(s.last if s is not None else math.nan, ts_ns,
                                   ChainConfig(rate=self.settings.rate, div_yield=self.settings.div_yield,
                                               reprice_max_age_ns=300 * NS), **self._positioning)
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
        """Dealer exposures and our volatility indices from the chain (NaN before any quote).

        Read at every evaluation: the flip from the chain's incrementally kept GEX profile (O(grid)), the
        walls and our VIX from the chain's arrays, not per quote. ``*_0dte_*`` is what settles today;
        ``*_next_rolloff_*`` what leaves the aggregates at the next settlement (``next_rolloff_hours`` from
        now)."""
        ch = self.chain
        out = dict.fromkeys(CHAIN_SIGNALS, math.nan)
        if ch is None:
            return out
        ts = self.last_ts_ns
        if ch.needs_reprice():
            ch.reprice()
        tot = ch.live_totals()
        zd = ch.zero_dte()
        cw, pw, ag = ch.walls()
        out.update(gex_usd_per_pct=tot.gex_usd_per_pct, delta_exposure_usd=tot.dex_usd,
                   vanna_usd_per_vol_pt=tot.vanna_usd_per_vol_pt, charm_usd_per_day=tot.charm_usd_per_day,
                   gex_0dte_usd_per_pct=zd.gex_usd_per_pct, charm_0dte_usd_per_day=zd.charm_usd_per_day,
                   gamma_flip=ch.gamma_flip(), call_wall=cw, put_wall=pw, abs_gamma_strike=ag,
                   atm_iv=ch.atm_iv(ts), vix_calc=ch.vix(ts, VIX).value, vix9d_calc=ch.vix(ts, VIX9D).value)
        nxt = ch.next_rolloff(ts)
        if nxt is not None:
            out.update(gex_next_rolloff_usd_per_pct=nxt[1].gex_usd_per_pct,
                       charm_next_rolloff_usd_per_day=nxt[1].charm_usd_per_day,
                       next_rolloff_hours=(nxt[0] - ts) / (3600 * NS))
        self.flows.on_exposures(ts, tot.gex_usd_per_pct, tot.vanna_usd_per_vol_pt, tot.charm_usd_per_day)
        self._dealer_reval(ts)
        return out

    def term_change_pts(self) -> tuple[float, float, float]:
        """(ΔVIX9D, ΔVIX, ΔVIX3M) in index points since the previous close, NaN where a series is missing;
        0 once the session's official close is in (the flow models' reference has rolled to it)."""
        out = []
        for sym in ("VIX9D", "VIX", "VIX3M"):
            s = self.series.get(sym)
            if s is None or s.last != s.last:
                out.append(math.nan)
            elif s.day and s.closed_day >= s.day:
                out.append(0.0)
            else:
                out.append(s.last - s.prev_close)
        return out[0], out[1], out[2]

    def _dealer_reval(self, ts: int) -> None:
        """Dealer vanna/charm flows by full revaluation of the chain (core/dealer_reval.py) under the
        term-structure move since the previous close, at most once per ``dealer_reval_interval_s`` of event
        time after the first evaluation since the close; the flows keep the last one in between. The dealer
        signs are the chain's own (``contract_arrays``), those of its GEX.

        The whole revaluation is ~35-65 ms at 20k contracts: when one is due the chain is captured
        (``RevalJob``, ~1 ms) and revalued :data:`DEALER_REVAL_SLICE` contracts per evaluation, this one
        and the next ones; the flows, stamped with the capture instant, reach the flow models at the
        evaluation that finishes it (the capture's one for a chain up to one slice). The slices follow the
        evaluations, so the result depends on the segments alone. A job overtaken by a daily close (which
        clears the flows: they measured the move to it) is dropped and the next evaluation starts anew."""
        job, fl = self._reval, self.flows
        if job is None:
            d = fl.dealer
            if d.flows_ts_ns >= 0 and ts - d.flows_ts_ns < self.settings.dealer_reval_interval_s * NS:
                return
            chg = self.term_change_pts()
            ch = self.chain
            if not any(x == x for x in chg) or not (ch.eval_spot > 0):
                return
            exp, k, call, _, _, iv, oi, sign = ch.contract_arrays()
            job = self._reval = RevalJob.capture(
                exp, k, call, iv, oi, sign, ch.eval_spot, ch.eval_ts_ns, self.settings.rate,
                self.settings.div_yield, term_change_pts=chg, horizon_days=fl.config.dealer.charm_horizon_days,
                multiplier=ch.config.multiplier, ts_ns=ts, tag=fl.n_days)
        if job.step(DEALER_REVAL_SLICE):
            self._reval = None
            if job.tag == fl.n_days:
                fl.on_dealer_flows(job.ts_ns, *job.totals(), BASIS_CHAIN)

    def signals(self) -> dict[str, float]:
        """Every named signal (units in the names); NaN where not computable.

        The flow models keep their own copies of the SPX/VIX last/previous close; the engine's
        series (which see every index, not only SPX and VIX) take precedence for those names.
        """
        # the chain first: chain_values() hands the dealer exposures to the flow models, whose dealer
        # flows (and the notionals summing them) must reflect this evaluation's exposures, not the last one's
        chain = self.chain_values()
        out: dict[str, float] = self.flows.signals()
        out.update(chain)
        for sym, s in self.series.items():
            k = _SERIES_KEYS.get(sym) or _series_keys(sym)
            out[k[0]] = s.last
            out[k[1]] = s.prev_close
            out[k[2]] = s.change_ratio
        s = self.series.get(self.underlying)
        if s is not None:   # rv_value's three estimators
            out["spot"] = s.last
            out["rv_1m_ewma_annual"] = _minute_vol_annual(s.rv_ewma.get())
            out["rv_1m_session_annual"] = s.rv_intraday.get()
            out["rv_cc_20d_annual"] = s.rv_close.get()
        return out

    def values(self) -> dict[str, float | None]:
        """The signals as they go on the wire (NaN → null); reuses the rules' evaluation when no
        input arrived since (the chain reads and our VIX are the costly part)."""
        n, sig = self._signals_at
        if n != self.n_inputs:
            sig = self.signals()
        out = sig.copy()   # a copy and a few writes: cheaper than a new dict of every item
        for k, v in sig.items():
            if v != v:
                out[k] = None
        return out

    def catalogue(self, symbols: Iterable[str] = ()) -> dict[str, catalogue.Concrete]:
        """The signals this engine emits (:meth:`signals`' keys): the catalogue expanded for its series
        (and ``symbols``, e.g. the series a driver is about to feed) and its flow configuration."""
        syms = [self.underlying, *self.series, *symbols]
        key = tuple(syms)
        if self._catalogue[0] == key:   # the worker asks at every snapshot: expanded once per series set
            return self._catalogue[1]
        out = catalogue.expand(signal_values(self.settings, self.flows.config,
                                              [x for x in syms if x not in self.settings.vol_indices])
                                | {"vol_index": list(dict.fromkeys(
                                    ["VIX", *(x for x in syms if x in self.settings.vol_indices)]))})
        self._catalogue = (key, out)
        return out

    def snapshot_due(self, interval_s: float) -> bool:
        """One snapshot per ``interval_s`` bucket of event time: the merger's segments are those buckets, so
        every segment that moved the engine gets its snapshot (a "time since the last one" test skipped
        every other 10 ms segment when inputs arrive a few ms into a segment)."""
        step = max(int(interval_s * NS), 1)
        return self.last_ts_ns // step > self.last_snapshot_ns // step

    def snapshot(self) -> AnalyticsSnapshot:
        self.last_snapshot_ns = self.last_ts_ns
        return AnalyticsSnapshot(self.underlying, self.last_ts_ns, self.values(), input_seq=self.n_inputs)


#: per series symbol: its signal names ({p}_last, {p}_prev_close, {p}_change_ratio), made once
_SERIES_KEYS: dict[str, tuple[str, str, str]] = {}


def _series_keys(symbol: str) -> tuple[str, str, str]:
    p = symbol.lower()
    k = _SERIES_KEYS[symbol] = (f"{p}_last", f"{p}_prev_close", f"{p}_change_ratio")
    return k


#: the chain's signals, from the catalogue (NaN before the first quote)
CHAIN_SIGNALS = tuple(s.name for s in catalogue.SIGNALS if s.source == "chain")

#: contracts of a dealer revaluation per evaluation (``UnderlyingEngine._dealer_reval``): ~2-3 ms, a
#: 20k-contract chain in about nine evaluations
DEALER_REVAL_SLICE = 2048

#: index symbols rule files may name besides the volatility indices (``{index}_last`` etc.)
KNOWN_INDICES = ("SPX", "NDX")

#: the series whose official closes feed risk parity, by ``risk_parity.bond_input``
BOND_SYMBOLS = {"price": "TLT", "yield_pct": "DGS10"}


def bond_symbol(cfg: FlowConfig) -> str:
    """Index symbol of the bond input of the flow models (closes only): TLT prices or DGS10 yields."""
    return BOND_SYMBOLS[cfg.risk_parity.bond_input]


def signal_values(settings: Settings, flow_config: FlowConfig | None = None,
                  symbols: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Values of the catalogue's placeholders (streamer/core/signals.py): index series ``symbols`` (default:
    :data:`KNOWN_INDICES`, the bond input and the leveraged funds' underlyings; SPX always: the flow models
    name their SPX/VIX inputs), volatility indices from the settings (VIX always), the rest from the flow
    configuration."""
    cfg = flow_config or FlowConfig.default()
    if symbols is None:
        symbols = [*KNOWN_INDICES, bond_symbol(cfg), *cfg.leveraged_etf.symbols]
    vol = list(dict.fromkeys(["VIX", *settings.vol_indices]))
    idx = [x for x in dict.fromkeys(["SPX", *symbols]) if x not in vol]
    vc = cfg.vol_control
    return {"index": idx, "vol_index": vol, "family": [f.name for f in vc.families],
            "horizon": [lab for lab, _ in vc.horizons_days], "scenario": [sc.name for sc in vc.scenarios],
            "component": ["ma", *(lab for lab, _ in cfg.cta.momentum_days)],
            "group": sorted({f.index.lower() for f in cfg.leveraged_etf.funds})}


def known_signals(settings: Settings, flow_config: FlowConfig | None = None,
                  symbols: Iterable[str] | None = None) -> dict[str, catalogue.Concrete]:
    """The catalogue expanded for these settings: every signal name a rule may read."""
    return catalogue.expand(signal_values(settings, flow_config, symbols))


def _detached(x: Any) -> Any:
    """A deep copy of plain data sharing no container with ``x`` (a pickle round trip in memory of our own
    state: floats exact, NaN kept; ~2x faster than a recursive copy, ~0.15 ms for the models' state)."""
    return pickle.loads(pickle.dumps(x, pickle.HIGHEST_PROTOCOL))


def pack(state: dict[str, Any]) -> bytes:
    """Plain data with numpy arrays → bytes, bit for bit: a JSON header (stdlib json keeps NaN, the
    estimators' "not yet"; arrays replaced by references) and the arrays' raw bytes; zlib-compressed.

    Pure and thread-safe (reads ``state``, writes nothing shared): the worker packs a
    :meth:`UnderlyingEngine.to_state` in a thread while the engine keeps ingesting. Almost all of the time
    is deflate, which runs without the GIL: the arrays are fed to one compressor as buffers (no joined
    copy), and the header (the only JSON) is small, the chain being arrays."""
    arrays: list[np.ndarray] = []

    def walk(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            arrays.append(np.ascontiguousarray(x))
            return {"__nd__": len(arrays) - 1, "dtype": x.dtype.str, "shape": list(x.shape)}
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        return x

    head = json.dumps(walk(state), separators=(",", ":")).encode()
    # the same stream as zlib.compress(len + head + b"".join(tobytes)): deflate's output does not depend
    # on how its input is split without flushes, so unpack (and older checkpoints) read it unchanged
    z = zlib.compressobj(1)
    out = [z.compress(len(head).to_bytes(8, "little") + head)]
    out += [z.compress(a.reshape(-1).view(np.uint8)) for a in arrays if a.size]
    out.append(z.flush())
    return b"".join(out)


def unpack(data: bytes) -> dict[str, Any]:
    raw = zlib.decompress(data)
    n = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8:8 + n])
    pos = 8 + n
    refs: list[dict] = []

    def collect(x: Any) -> None:
        if isinstance(x, dict):
            if "__nd__" in x:
                refs.append(x)
            else:
                for v in x.values():
                    collect(v)
        elif isinstance(x, list):
            for v in x:
                collect(v)

    collect(head)
    arrays: dict[int, np.ndarray] = {}
    for ref in sorted(refs, key=lambda r: r["__nd__"]):
        dt = np.dtype(ref["dtype"])
        count = int(np.prod(ref["shape"], dtype=np.int64))
        arrays[ref["__nd__"]] = np.frombuffer(raw, dt, count, pos).reshape(ref["shape"]).copy()
        pos += count * dt.itemsize

    def build(x: Any) -> Any:
        if isinstance(x, dict):
            return arrays[x["__nd__"]] if "__nd__" in x else {k: build(v) for k, v in x.items()}
        if isinstance(x, list):
            return [build(v) for v in x]
        return x

    return build(head)


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


def load_rules(settings: Settings, flow_config: FlowConfig | None = None) -> RuleSet:
    """The rule set of ``settings.rules_file`` (the packaged default when empty); a rule reading a signal
    that is not in the catalogue (streamer/core/signals.py) is refused with a RuleError."""
    known = known_signals(settings, flow_config)
    return RuleSet.from_toml(settings.rules_file, known) if settings.rules_file else RuleSet.default(known)
