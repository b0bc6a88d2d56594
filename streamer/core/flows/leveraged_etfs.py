"""Daily-reset leveraged and inverse ETFs: the close rebalancing flow A x L x (L - 1) x r, each fund on
its own underlying's return.

A fund's return r is its benchmark's (``LevFund.underlyings``: NDX or QQQ for TQQQ, SOXX for SOXL,
TSLA for TSLL, ...), read from the prices the book is given for those symbols. Without a price for
any of them the return is proxied as beta x SPX return (``beta_to_spx`` of its first underlying) and
the fund's row says ``proxy``. AUM is the fund's dated AUM (``LevFund.aum_on``) on the session date.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

from streamer.core.flows.config import FlowConfig, LevETFConfig, LevFund

__all__ = ["leveraged_etf_flow", "FundFlow", "LeveragedETFs", "UnderlyingPrices"]


def leveraged_etf_flow(aum_usd: float, leverage: float, index_return: float) -> float:
    """Daily-reset rebalance at the close, $: A x L x (L - 1) x r (same sign as r for bull and bear).

    >>> leveraged_etf_flow(1e9, 3.0, 0.01), leveraged_etf_flow(1e9, -3.0, 0.01)
    (60000000.0, 120000000.0)
    """
    return aum_usd * leverage * (leverage - 1.0) * index_return


class FundFlow(NamedTuple):
    """One fund's close flow: the return that drove it and where that return came from."""

    fund: LevFund
    aum_usd: float
    source: str          # the underlying symbol whose return was used, or "SPX-beta" (proxy)
    index_return: float  # simple return of the benchmark (decimal)
    flow_usd: float

    @property
    def proxy(self) -> bool:
        return self.source == "SPX-beta"


@dataclass(slots=True)
class LeveragedETFs:
    """Close rebalancing of daily-reset leveraged/inverse ETFs, per fund and summed per group.

    >>> le = LeveragedETFs(FlowConfig.default().leveraged_etf)
    >>> rows = le.per_fund(0.0253, {"QQQ": 0.0272}, "2024-11-06")
    >>> tqqq = next(r for r in rows if r.fund.ticker == "TQQQ")
    >>> tqqq.source, tqqq.index_return, math.isclose(tqqq.flow_usd, tqqq.aum_usd * 6 * 0.0272)
    ('QQQ', 0.0272, True)
    >>> next(r for r in rows if r.fund.ticker == "TSLL").source    # no TSLA price: beta x SPX
    'SPX-beta'
    """

    cfg: LevETFConfig
    _aum_date: str | None = field(default=None, init=False)
    _aums: tuple[float, ...] = field(default=(), init=False)

    def aums(self, date: str | None) -> tuple[float, ...]:
        """Each fund's AUM on ISO ``date`` (None: the reference AUMs), cached per date."""
        if date != self._aum_date or not self._aums:
            self._aums = tuple(f.aum_on(date) for f in self.cfg.funds)
            self._aum_date = date
        return self._aums

    def per_fund(self, spx_return: float, returns: Mapping[str, float] | None = None,
                 date: str | None = None) -> list[FundFlow]:
        """Each fund's flow for an SPX simple return and the underlyings' returns (symbol -> decimal)."""
        rets = returns or {}
        out = []
        for f, aum in zip(self.cfg.funds, self.aums(date)):
            src, r = "SPX-beta", math.nan
            for sym in f.underlyings:
                x = spx_return if sym == "SPX" else rets.get(sym, math.nan)
                if x == x:
                    src, r = sym, x
                    break
            if src == "SPX-beta":
                r = self.cfg.proxy_beta(f) * spx_return
            out.append(FundFlow(f, aum, src, r, leveraged_etf_flow(aum, f.leverage, r)))
        return out

    def by_index(self, spx_return: float, returns: Mapping[str, float] | None = None,
                 date: str | None = None) -> dict[str, float]:
        """$ flow summed per fund group."""
        out: dict[str, float] = {}
        for row in self.per_fund(spx_return, returns, date):
            g = row.fund.index
            out[g] = out.get(g, 0.0) + row.flow_usd
        return out

    def total(self, spx_return: float, returns: Mapping[str, float] | None = None,
              date: str | None = None) -> float:
        """Sum over all funds, $ (NaN if a return is NaN)."""
        return sum(row.flow_usd for row in self.per_fund(spx_return, returns, date))

    def gamma_usd_per_unit_return(self, date: str | None = None) -> float:
        """d(flow)/d(SPX return) with every fund on its beta proxy: the flow is linear, this is its slope ($)."""
        return sum(a * f.leverage * (f.leverage - 1) * self.cfg.proxy_beta(f)
                   for f, a in zip(self.cfg.funds, self.aums(date)))


@dataclass(slots=True)
class UnderlyingPrices:
    """Prices of the funds' underlyings (other than SPX): the previous session close and the session's
    last price per symbol; ``returns()`` = last / previous close - 1 where both are known.

    A session's price is its official close when given (``set_closes``), else its last print
    (``on_print``). ``roll()`` at the daily close makes today's price the reference and clears it, so
    a symbol with no price today has no return tomorrow (its funds fall back to the SPX-beta proxy)
    instead of a return spanning two sessions.

    >>> u = UnderlyingPrices(("QQQ",))
    >>> u.set_closes({"QQQ": 487.79}); u.roll(); u.on_print(1, "QQQ", 501.04), u.on_print(2, "XYZ", 1.0)
    (True, False)
    >>> round(u.returns()["QQQ"], 4)
    0.0272
    """

    symbols: tuple[str, ...]
    prev_close: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    ts_ns: dict[str, int] = field(default_factory=dict)

    def on_print(self, ts_ns: int, symbol: str, price: float) -> bool:
        """Intraday print; False (ignored) for an unknown symbol, a bad price or an older timestamp."""
        if symbol not in self.symbols or not (price > 0 and math.isfinite(price)):
            return False
        if ts_ns < self.ts_ns.get(symbol, ts_ns):
            return False
        self.last[symbol], self.ts_ns[symbol] = float(price), ts_ns
        return True

    def set_closes(self, closes: Mapping[str, float]) -> None:
        """Official closes of the session (symbol -> price); unknown symbols and bad prices ignored."""
        for s, c in closes.items():
            if s in self.symbols and c > 0 and math.isfinite(c):
                self.last[s] = float(c)

    def returns(self) -> dict[str, float]:
        """Session return per symbol with both a previous close and a price today."""
        p = self.prev_close
        return {s: x / p[s] - 1.0 for s, x in self.last.items() if s in p}

    def roll(self) -> None:
        """End of session: today's prices become the previous closes; symbols without one drop out."""
        self.prev_close, self.last = self.last, {}

    def to_state(self) -> dict[str, Any]:
        return {"prev_close": dict(self.prev_close), "last": dict(self.last), "ts_ns": dict(self.ts_ns)}

    @classmethod
    def from_state(cls, symbols: tuple[str, ...], d: Mapping[str, Any]) -> UnderlyingPrices:
        return cls(symbols, {k: float(v) for k, v in d["prev_close"].items()},
                   {k: float(v) for k, v in d["last"].items()}, {k: int(v) for k, v in d["ts_ns"].items()})
