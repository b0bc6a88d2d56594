"""Dealer hedge flows from the option chain: gamma from the exposure, vanna and charm by full revaluation
(``core.dealer_reval``, handed in with :meth:`DealerHedging.set_flows`) or, without one, from the
exposures (vanna × ΔVIX, charm × horizon)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from streamer.core.flows.common import NAN
from streamer.core.flows.config import DealerConfig
from streamer.core.realized.state import dump_float, load_float

__all__ = ["DealerHedging", "BASIS_CHAIN", "BASIS_PROXY"]

#: ``dealer_basis`` values: flows from the live chain or a chain dated the previous session ...
BASIS_CHAIN = 0.0
#: ... or from a chain of another date standing in for it (the backtest's static proxy)
BASIS_PROXY = 1.0


@dataclass(slots=True)
class DealerHedging:
    """Dealer hedge flows from chain exposures, $ (hedge = minus the dealers' delta change).

    ``vanna_flow_usd`` / ``charm_flow_usd``: the last full revaluation of the chain (NaN = none since
    the last close); when set they replace the first-order figures.

    >>> d = DealerHedging(DealerConfig(1.0), gex_usd_per_pct=-2e9, vanna_usd_per_vol_pt=1e9,
    ...                   charm_usd_per_day=3e8)
    >>> round(d.gamma_flow(101.0, 100.0)), d.vanna_flow(16.0, 20.0), d.charm_flow()  # short gamma buys a rally
    (2000000000, 4000000000.0, -300000000.0)
    >>> d.set_flows(5, 2.5e9, -1e8, BASIS_CHAIN); d.vanna_flow(16.0, 20.0), d.charm_flow()
    (2500000000.0, -100000000.0)
    """

    cfg: DealerConfig
    gex_usd_per_pct: float = NAN
    vanna_usd_per_vol_pt: float = NAN
    charm_usd_per_day: float = NAN
    exposures_ts_ns: int = 0
    vanna_flow_usd: float = NAN
    charm_flow_usd: float = NAN
    basis: float = NAN
    flows_ts_ns: int = -1          # event time of the last revaluation; -1 = none since the close

    def gamma_flow(self, spot: float, ref_spot: float) -> float:
        """-GEX x (% move from the reference), $."""
        return -self.gex_usd_per_pct * (spot / ref_spot - 1.0) * 100.0

    def vanna_flow(self, vix: float, ref_vix: float) -> float:
        """The revaluation's vanna flow when set; else -vanna x (VIX change in vol points), $ (a parallel
        implied-vol shift, first order)."""
        if self.vanna_flow_usd == self.vanna_flow_usd:
            return self.vanna_flow_usd
        return -self.vanna_usd_per_vol_pt * (vix - ref_vix)

    def charm_flow(self) -> float:
        """The revaluation's charm flow when set; else -charm x horizon (days), $."""
        if self.charm_flow_usd == self.charm_flow_usd:
            return self.charm_flow_usd
        return -self.charm_usd_per_day * self.cfg.charm_horizon_days

    def set_flows(self, ts_ns: int, vanna_usd: float, charm_usd: float, basis: float) -> None:
        self.vanna_flow_usd, self.charm_flow_usd = float(vanna_usd), float(charm_usd)
        self.basis, self.flows_ts_ns = float(basis), int(ts_ns)

    def clear_flows(self) -> None:
        """The reference closes rolled: the last revaluation measured a move that is no longer 'today's'."""
        self.vanna_flow_usd = self.charm_flow_usd = self.basis = NAN
        self.flows_ts_ns = -1

    def to_state(self) -> dict[str, Any]:
        return {"gex": dump_float(self.gex_usd_per_pct), "vanna": dump_float(self.vanna_usd_per_vol_pt),
                "charm": dump_float(self.charm_usd_per_day), "ts_ns": self.exposures_ts_ns,
                "vanna_flow": dump_float(self.vanna_flow_usd), "charm_flow": dump_float(self.charm_flow_usd),
                "basis": dump_float(self.basis), "flows_ts_ns": self.flows_ts_ns}

    @classmethod
    def from_state(cls, cfg: DealerConfig, d: Mapping[str, Any]) -> DealerHedging:
        # states written before the revaluation flows have none
        return cls(cfg, load_float(d["gex"]), load_float(d["vanna"]), load_float(d["charm"]), int(d["ts_ns"]),
                   load_float(d.get("vanna_flow")), load_float(d.get("charm_flow")), load_float(d.get("basis")),
                   int(d.get("flows_ts_ns", -1)))
