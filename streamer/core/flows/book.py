"""FlowBook: every flow model of one underlying, driven the same way live and offline; named signals."""
from __future__ import annotations

import math
import struct
from datetime import date as _date
from typing import Any, Mapping, Sequence

from streamer.core.flows.common import NAN, nansum
from streamer.core.flows.config import FlowConfig
from streamer.core.flows.cta import CTATrend
from streamer.core.flows.dealer import DealerHedging
from streamer.core.flows.leveraged_etfs import FundFlow, LeveragedETFs, UnderlyingPrices
from streamer.core.flows.rank import RankHistory
from streamer.core.flows.risk_parity import RiskParity
from streamer.core.flows.vol_control import VolControl
from streamer.core.realized.state import dump_float, load_float

__all__ = ["SIGNAL_UNITS", "FlowBook"]


SIGNAL_UNITS = {"_usd": "US dollars", "_ratio": "decimal fraction", "_annual": "annualized decimal vol",
                "_spx": "S&P 500 index points", "_pts": "vol points", "_rank": "rank (1 = lowest)",
                "_pct_rank": "fraction of window <= value"}

_STATE_VERSION = 1

#: per leveraged-fund group: its signal name, made once
_LEV_KEYS: dict[str, str] = {}


def _lev_key(index: str) -> str:
    k = _LEV_KEYS[index] = f"flow_leveraged_etf_{index.lower()}_usd"
    return k


class FlowBook:
    """All flow models of one underlying, updated daily and intraday; named signals out.

    Live use (the engine owns one per underlying): ``on_daily_close`` once per session with the
    official closes, then ``on_spot``/``on_vol_index``/``on_underlying`` on every tick and
    ``on_exposures`` when the chain's totals change; read ``signals()``. Offline, the backtest calls
    the same methods.

    >>> fb = FlowBook()
    >>> fb.on_daily_close("2024-11-05", 5782.76, 20.49, 87.85, underlying_closes={"QQQ": 487.79, "TSLA": 251.44})
    True
    >>> fb.on_vol_index(0, 16.27); fb.on_spot(0, 5929.04)
    >>> fb.on_underlying(0, "QQQ", 501.04); fb.on_underlying(0, "TSLA", 288.53)
    >>> s = fb.signals()
    >>> round(s["vix_change_ratio"], 3), round(s["flow_leveraged_etf_ndx_usd"] / 1e9, 2)   # TQQQ/SQQQ/QLD on QQQ
    (-0.206, 5.84)
    >>> sorted({row.source for row in fb.leveraged_etf_breakdown()})   # SOXX, NVDA, ... unpriced: proxy
    ['QQQ', 'SPX', 'SPX-beta', 'TSLA']
    """

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = cfg = config or FlowConfig.default()
        self.vol_control = VolControl.new(cfg.vol_control)
        self.risk_parity = RiskParity.new(cfg.risk_parity)
        self.cta = CTATrend.new(cfg.cta)
        self.lev = LeveragedETFs(cfg.leveraged_etf)
        self.underlyings = UnderlyingPrices(cfg.leveraged_etf.symbols)
        self._lev_close: list[FundFlow] = []   # per-fund rows of the last close
        self._lev_by: tuple[tuple, dict[str, float]] = ((), {})   # live flow per fund group, by its inputs
        self.dealer = DealerHedging(cfg.dealer)
        self.vix_changes = RankHistory(cfg.vix_rank_window_days)
        self.last_date = ""
        self.n_days = 0
        self.spx_prev_close = NAN
        self.vix_prev_close = NAN
        self.spx_last = NAN
        self.vix_last = NAN
        self.spx_ts_ns = 0
        self.vix_ts_ns = 0
        self._daily: dict[str, float] = {}
        self._at_close = False     # True from on_daily_close until the next intraday print
        # live vol-control projection (provisional close = live spot); None = none since the close
        self._vc_live: dict[str, float] = {}
        self._vc_live_ts_ns: int | None = None
        self._reproject_ns = int(round(cfg.vol_control.reproject_interval_s * 1e9))

    # ------------------------------------------------------------------ inputs

    def on_spot(self, ts_ns: int, spx: float) -> None:
        """Intraday SPX print (points): live leveraged-ETF and dealer-gamma flows, O(1); and the
        vol-control projection re-run with this print as the session's provisional close, on the
        first print after a daily close and then at most once per ``reproject_interval_s`` of
        event time (deterministic: the print times decide, not the wall clock)."""
        if self._set_spot(ts_ns, spx):
            self._at_close = False
            self._maybe_reproject(ts_ns)

    def _set_spot(self, ts_ns: int, spx: float) -> bool:
        if spx > 0 and math.isfinite(spx) and ts_ns >= self.spx_ts_ns:
            self.spx_last, self.spx_ts_ns = float(spx), ts_ns
            return True
        return False

    def _maybe_reproject(self, ts_ns: int) -> None:
        last = self._vc_live_ts_ns
        if last is not None and ts_ns - last < self._reproject_ns:
            return
        if self.vol_control.exposure_usd != self.vol_control.exposure_usd:
            return   # no exposure yet (warm-up): nothing to project
        self._vc_live = self.vol_control.projection_signals(self.spx_last, self.vix_last)
        self._vc_live_ts_ns = ts_ns

    def on_vol_index(self, ts_ns: int, vix: float) -> None:
        """Intraday VIX print (vol points): live change, its rank and dealer-vanna flow, O(1)."""
        if vix > 0 and math.isfinite(vix) and ts_ns >= self.vix_ts_ns:
            self.vix_last, self.vix_ts_ns = float(vix), ts_ns
            self._at_close = False

    def on_underlying(self, ts_ns: int, symbol: str, price: float) -> None:
        """Intraday print of a leveraged fund's underlying (QQQ, NDX, SOXX, TSLA, ... as in the fund
        table, ``FlowConfig.leveraged_etf.symbols``): its funds' live flow uses its own return, O(1).
        Other symbols are ignored."""
        if self.underlyings.on_print(ts_ns, symbol, price):
            self._at_close = False

    def on_exposures(self, ts_ns: int, gex_usd_per_pct: float, vanna_usd_per_vol_pt: float,
                     charm_usd_per_day: float) -> None:
        """Dealer exposures from the chain (chain.py units: $/1%, $/vol pt, $/day, dealer-signed)."""
        d = self.dealer
        d.gex_usd_per_pct, d.vanna_usd_per_vol_pt = float(gex_usd_per_pct), float(vanna_usd_per_vol_pt)
        d.charm_usd_per_day, d.exposures_ts_ns = float(charm_usd_per_day), ts_ns

    def on_dealer_flows(self, ts_ns: int, vanna_usd: float, charm_usd: float, basis: float) -> None:
        """Dealer vanna and charm hedge flows by full revaluation of the chain (``core.dealer_reval
        .reval_flows``: vanna of the implied-vol move since the previous close, charm over
        ``dealer.charm_horizon_days``; $, + = dealers buy), with the same positioning as the GEX of
        :meth:`on_exposures`. They replace the first-order figures (vanna × ΔVIX, charm × horizon)
        until the next daily close. ``basis``: ``dealer.BASIS_CHAIN`` (0: the live chain or one dated
        the previous session) or ``dealer.BASIS_PROXY`` (1: a chain of another date standing in)."""
        self.dealer.set_flows(ts_ns, vanna_usd, charm_usd, basis)

    def on_daily_close(self, date: str | _date, spx_close: float, vix_close: float,
                       bond_close_or_yield: float = NAN, *,
                       underlying_closes: Mapping[str, float] | None = None) -> bool:
        """Official session close; False (ignored) if ``date`` (ISO) is not after the last one.

        ``bond_close_or_yield`` is a TLT close or a DGS10 yield in percent, as the config's
        ``risk_parity.bond_input`` says; NaN (missing) skips the risk-parity update that day.
        ``underlying_closes``: the session's closes of the leveraged funds' underlyings (symbol ->
        price); a symbol without one uses its last ``on_underlying`` print of the session, and with
        neither its funds use the SPX-beta proxy for this session's flow.
        """
        ds = date.isoformat() if isinstance(date, _date) else str(date)
        if ds <= self.last_date:
            return False
        self.last_date = ds
        self.n_days += 1
        self._set_spot(self.spx_ts_ns, spx_close)
        self.on_vol_index(self.vix_ts_ns, vix_close)
        self._vc_live, self._vc_live_ts_ns = {}, None   # the official close's projection replaces it
        self.underlyings.set_closes(underlying_closes or {})
        # today's close as the "live" view (change, rank vs history before today, close flows)
        live = self._live()
        vc = self.vol_control
        vc.on_close(spx_close)
        self.risk_parity.on_close(spx_close, bond_close_or_yield)
        self.cta.on_close(spx_close)
        daily = dict(live)
        daily.update(self._daily_values())
        daily["flow_systematic_today_usd"] = nansum(
            daily["flow_vol_control_today_usd"], daily["flow_risk_parity_today_usd"],
            daily["flow_cta_today_usd"], daily["flow_leveraged_etf_close_usd"],
            daily["flow_dealer_total_usd"])
        self._daily = daily
        self._at_close = True
        # roll: today's change joins the history; today's closes become the references
        if self.vix_prev_close > 0 and vix_close > 0:
            self.vix_changes.push(vix_close / self.vix_prev_close - 1.0)
        if vix_close > 0:
            self.vix_prev_close = float(vix_close)
        if spx_close > 0:
            self.spx_prev_close = float(spx_close)
        self._lev_close = self._lev_rows(live["spx_change_ratio"])
        self.underlyings.roll()
        self.dealer.clear_flows()   # they measured the move to this close; the next one starts from it
        return True

    def seed_vix_history(self, vix_closes: Sequence[float]) -> int:
        """Pre-load VIX closes that precede the first ``on_daily_close`` (e.g. a longer VIX file).

        Their one-day % changes fill the rank window and the last one becomes the previous close.
        Returns the number of changes added. Only before the first daily close.
        """
        if self.n_days:
            raise ValueError("seed_vix_history must come before the first on_daily_close")
        n, prev = 0, self.vix_prev_close
        for v in vix_closes:
            if not (v > 0 and math.isfinite(v)):
                continue
            if prev > 0:
                self.vix_changes.push(v / prev - 1.0)
                n += 1
            prev = float(v)
        self.vix_prev_close = prev
        return n

    # ------------------------------------------------------------------ outputs

    def _live(self) -> dict[str, float]:
        spx, vix, ps, pv = self.spx_last, self.vix_last, self.spx_prev_close, self.vix_prev_close
        r = spx / ps - 1.0 if ps > 0 and spx == spx else NAN
        dv = vix / pv - 1.0 if pv > 0 and vix == vix else NAN
        h = self.vix_changes
        enough = len(h) >= self.config.vix_min_history_days
        out = {"spx_last": spx, "spx_prev_close": ps, "spx_change_ratio": r,
               "vix_last": vix, "vix_prev_close": pv, "vix_change_ratio": dv,
               "vix_change_pts": vix - pv if pv > 0 else NAN,
               "vix_change_pct_rank": h.pct_rank(dv) if enough else NAN,
               "vix_change_low_rank": h.low_rank(dv) if enough else NAN,
               "vix_change_history_days": float(len(h))}
        by = self._lev_by_index(r)
        out["flow_leveraged_etf_close_usd"] = sum(by.values())
        for k, v in by.items():
            out[_LEV_KEYS.get(k) or _lev_key(k)] = v
        d = self.dealer
        g = d.gamma_flow(spx, ps) if ps > 0 else NAN
        v = d.vanna_flow(vix, pv) if pv > 0 else NAN
        c = d.charm_flow()
        out.update({"flow_dealer_gamma_usd": g, "flow_dealer_vanna_usd": v, "flow_dealer_charm_usd": c,
                    "flow_dealer_total_usd": nansum(g, v),
                    "dealer_gex_usd_per_pct": d.gex_usd_per_pct,
                    "dealer_vanna_usd_per_vol_pt": d.vanna_usd_per_vol_pt,
                    "dealer_charm_usd_per_day": d.charm_usd_per_day, "dealer_basis": d.basis})
        return out

    def _lev_by_index(self, spx_return: float) -> dict[str, float]:
        """Live leveraged-ETF flow per fund group: the per-fund rows (~50 µs, every evaluation) summed,
        kept until an input moves (the SPX return, the underlyings' returns, the date; floats keyed by
        their bits, so a -0.0 never reuses a 0.0)."""
        rets = self.underlyings.returns()
        key = (struct.pack(f"{len(rets) + 1}d", spx_return, *rets.values()), tuple(rets), self.last_date)
        if self._lev_by[0] != key:
            by: dict[str, float] = {}
            for row in self.lev.per_fund(spx_return, rets, self.last_date or None):
                by[row.fund.index] = by.get(row.fund.index, 0.0) + row.flow_usd
            self._lev_by = (key, by)
        return self._lev_by[1]

    def _lev_rows(self, spx_return: float) -> list[FundFlow]:
        """Per-fund close flows at the current prices (each fund on its own underlying when priced)."""
        return self.lev.per_fund(spx_return, self.underlyings.returns(), self.last_date or None)

    def leveraged_etf_breakdown(self) -> list[FundFlow]:
        """Per-fund leveraged-ETF flows behind ``flow_leveraged_etf_*``: AUM, the return used and its
        source (the underlying's symbol, or ``SPX-beta`` for the proxy). At a close: that close's rows
        (empty after a restore until the next print); intraday: the live prints'."""
        if self._at_close:
            return list(self._lev_close)
        ps = self.spx_prev_close
        return self._lev_rows(self.spx_last / ps - 1.0 if ps > 0 and self.spx_last == self.spx_last else NAN)

    def _daily_values(self) -> dict[str, float]:
        vc, rp, cta = self.vol_control, self.risk_parity, self.cta
        out: dict[str, float] = {}
        for name, vol, e in vc.family_values():
            out[f"vol_control_{name}_vol_annual"] = vol
            out[f"vol_control_{name}_exposure_ratio"] = e
        out["vol_control_exposure_ratio"] = vc.exposure_ratio()
        out["vol_control_exposure_usd"] = vc.exposure_usd
        out["flow_vol_control_today_usd"] = vc.flow_today_usd()
        out.update(vc.projection_signals(None, self.vix_last))
        se, sb = rp.vols()
        out.update({"risk_parity_equity_vol_annual": se, "risk_parity_bond_vol_annual": sb,
                    "risk_parity_corr_ratio": rp.corr(), "risk_parity_leverage_ratio": rp.leverage,
                    "risk_parity_equity_alloc_ratio": rp.alloc,
                    "flow_risk_parity_today_usd": rp.flow_today_usd()})
        comp = cta.components()
        for k, v in comp.items():
            out[f"cta_signal_{k}_ratio"] = v
        out.update({"cta_signal_score_ratio": cta.last_score,
                    "cta_signal_score_change_ratio": cta.last_score - cta.prev_score,
                    "cta_position_ratio": cta.pos, "cta_position_usd": cta.cfg.aum_usd * cta.pos,
                    "flow_cta_today_usd": cta.flow_today_usd(),
                    "cta_ma_fast_spx": cta.ma_fast.mean if cta.ma_fast.n else NAN,
                    "cta_ma_slow_spx": cta.ma_slow.mean if cta.ma_slow.n else NAN})
        for k, v in cta.flip_levels().items():
            out[f"cta_flip_{k}_spx"] = v
        return out

    def signals(self) -> dict[str, float]:
        """Every named signal (units in the names; NaN = not computable yet).

        Daily-model values are those of the last ``on_daily_close``. Right after it, the live keys
        (SPX/VIX change, VIX change rank, leveraged-ETF and dealer flows) show that close against
        the previous one; from the next ``on_spot``/``on_vol_index`` print on, they follow the
        live prints against the new close. ``flow_dealer_total_usd`` = gamma + vanna (event
        flows); charm is reported alone (it accrues every day). The vol-control projection keys
        (``VolControl.projection_signals``) come from the official close until the first print
        after it, then from the last throttled re-projection on the live spot
        (``vol_control_projection_spx`` says which close the projection starts from).
        """
        out = dict(self._daily)
        if not self._at_close:
            out.update(self._live())
        out.update(self._vc_live)
        return out

    def signal_names(self) -> list[str]:
        """Every signal name ``signals()`` can return (for validating rule files).

        >>> "vix_change_pct_rank" in FlowBook().signal_names()
        True
        """
        return sorted(set(self._daily_values()) | set(self._live()) | {"flow_systematic_today_usd"})

    def project_vol_control(self, scenario: str, days: int) -> list[float]:
        """Cumulative vol-control $ flow after each of the next ``days`` closes along ``scenario``
        (from the last official close; an implied-vol scenario uses the last VIX)."""
        return self.vol_control.project(scenario, days, None, self.vix_last)

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Plain-JSON state (NaN as None); ``FlowBook.from_state(d, config)`` continues identically."""
        return {"v": _STATE_VERSION, "last_date": self.last_date, "n_days": self.n_days,
                "spx_prev_close": dump_float(self.spx_prev_close), "vix_prev_close": dump_float(self.vix_prev_close),
                "spx_last": dump_float(self.spx_last), "vix_last": dump_float(self.vix_last),
                "spx_ts_ns": self.spx_ts_ns, "vix_ts_ns": self.vix_ts_ns, "at_close": self._at_close,
                "vol_control": self.vol_control.to_state(), "risk_parity": self.risk_parity.to_state(),
                "cta": self.cta.to_state(), "dealer": self.dealer.to_state(),
                "vix_changes": self.vix_changes.to_state(), "underlyings": self.underlyings.to_state(),
                "daily": {k: dump_float(v) for k, v in self._daily.items()},
                "vc_live": {k: dump_float(v) for k, v in self._vc_live.items()}, "vc_live_ts_ns": self._vc_live_ts_ns}

    @classmethod
    def from_state(cls, d: Mapping[str, Any], config: FlowConfig | None = None) -> FlowBook:
        if d.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported FlowBook state version {d.get('v')!r}")
        fb = cls(config)
        cfg = fb.config
        fb.last_date, fb.n_days = str(d["last_date"]), int(d["n_days"])
        fb.spx_prev_close, fb.vix_prev_close = load_float(d["spx_prev_close"]), load_float(d["vix_prev_close"])
        fb.spx_last, fb.vix_last = load_float(d["spx_last"]), load_float(d["vix_last"])
        fb.spx_ts_ns, fb.vix_ts_ns = int(d["spx_ts_ns"]), int(d["vix_ts_ns"])
        fb.vol_control = VolControl.from_state(cfg.vol_control, d["vol_control"])
        fb.risk_parity = RiskParity.from_state(cfg.risk_parity, d["risk_parity"])
        fb.cta = CTATrend.from_state(cfg.cta, d["cta"])
        fb.dealer = DealerHedging.from_state(cfg.dealer, d["dealer"])
        fb.vix_changes = RankHistory.from_state(d["vix_changes"])
        if "underlyings" in d:   # states written before per-underlying prices have none
            fb.underlyings = UnderlyingPrices.from_state(cfg.leveraged_etf.symbols, d["underlyings"])
        fb._daily = {k: load_float(v) for k, v in d["daily"].items()}
        fb._at_close = bool(d["at_close"])
        fb._vc_live = {k: load_float(v) for k, v in d.get("vc_live", {}).items()}
        ts = d.get("vc_live_ts_ns")
        fb._vc_live_ts_ns = None if ts is None else int(ts)
        return fb
