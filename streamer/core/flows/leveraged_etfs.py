"""Daily-reset leveraged and inverse ETFs: the close rebalancing flow A x L x (L - 1) x r."""
from __future__ import annotations

import math
from dataclasses import dataclass

from streamer.core.flows.config import FlowConfig, LevETFConfig, LevFund

__all__ = ["leveraged_etf_flow", "LeveragedETFs"]


def leveraged_etf_flow(aum_usd: float, leverage: float, index_return: float) -> float:
    """Daily-reset rebalance at the close, $: A x L x (L - 1) x r (same sign as r for bull and bear).

    >>> leveraged_etf_flow(1e9, 3.0, 0.01), leveraged_etf_flow(1e9, -3.0, 0.01)
    (60000000.0, 120000000.0)
    """
    return aum_usd * leverage * (leverage - 1.0) * index_return



@dataclass(slots=True)
class LeveragedETFs:
    """Close rebalancing of daily-reset leveraged/inverse ETFs, per fund and summed per index.

    Index returns other than SPX are approximated as beta x SPX return (config ``beta_to_spx``).

    >>> le = LeveragedETFs(FlowConfig.default().leveraged_etf)
    >>> by = le.by_index(0.0253)
    >>> aum_x_mult = sum(f.aum_usd * f.leverage * (f.leverage - 1) for f in le.cfg.funds if f.index == "SPX")
    >>> math.isclose(by["SPX"], aum_x_mult * 0.0253)   # SPX funds alone on 2024-11-06
    True
    """

    cfg: LevETFConfig

    def per_fund(self, spx_return: float) -> list[tuple[LevFund, float]]:
        """(fund, $ flow) for an SPX simple return (decimal)."""
        b = dict(self.cfg.beta_to_spx)
        return [(f, leveraged_etf_flow(f.aum_usd, f.leverage, b[f.index] * spx_return)) for f in self.cfg.funds]

    def by_index(self, spx_return: float) -> dict[str, float]:
        """$ flow summed per index."""
        out: dict[str, float] = {}
        for f, v in self.per_fund(spx_return):
            out[f.index] = out.get(f.index, 0.0) + v
        return out

    def total(self, spx_return: float) -> float:
        """Sum over all funds, $ (NaN if the return is NaN)."""
        return sum(v for _, v in self.per_fund(spx_return))

    def gamma_usd_per_unit_return(self) -> float:
        """d(flow)/d(SPX return) summed over funds: the flow is linear, this is its slope ($)."""
        b = dict(self.cfg.beta_to_spx)
        return sum(f.aum_usd * f.leverage * (f.leverage - 1) * b[f.index] for f in self.cfg.funds)
