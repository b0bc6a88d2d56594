"""Dealer hedge flows from the option chain's exposures (gamma, vanna, charm)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from streamer.core.flows.common import NAN
from streamer.core.flows.config import DealerConfig
from streamer.core.realized.state import dump_float, load_float

__all__ = ["DealerHedging"]


@dataclass(slots=True)
class DealerHedging:
    """Dealer hedge flows from chain exposures, $ (hedge = minus the dealers' delta change).

    >>> d = DealerHedging(DealerConfig(1.0), gex_usd_per_pct=-2e9, vanna_usd_per_vol_pt=1e9,
    ...                   charm_usd_per_day=3e8)
    >>> round(d.gamma_flow(101.0, 100.0)), d.vanna_flow(16.0, 20.0), d.charm_flow()  # short gamma buys a rally
    (2000000000, 4000000000.0, -300000000.0)
    """

    cfg: DealerConfig
    gex_usd_per_pct: float = NAN
    vanna_usd_per_vol_pt: float = NAN
    charm_usd_per_day: float = NAN
    exposures_ts_ns: int = 0

    def gamma_flow(self, spot: float, ref_spot: float) -> float:
        """-GEX x (% move from the reference), $."""
        return -self.gex_usd_per_pct * (spot / ref_spot - 1.0) * 100.0

    def vanna_flow(self, vix: float, ref_vix: float) -> float:
        """-vanna x (VIX change in vol points), $ (VIX move as a parallel implied-vol shift)."""
        return -self.vanna_usd_per_vol_pt * (vix - ref_vix)

    def charm_flow(self) -> float:
        """-charm x horizon (days), $."""
        return -self.charm_usd_per_day * self.cfg.charm_horizon_days

    def to_state(self) -> dict[str, Any]:
        return {"gex": dump_float(self.gex_usd_per_pct), "vanna": dump_float(self.vanna_usd_per_vol_pt),
                "charm": dump_float(self.charm_usd_per_day), "ts_ns": self.exposures_ts_ns}

    @classmethod
    def from_state(cls, cfg: DealerConfig, d: Mapping[str, Any]) -> DealerHedging:
        return cls(cfg, load_float(d["gex"]), load_float(d["vanna"]), load_float(d["charm"]), int(d["ts_ns"]))
