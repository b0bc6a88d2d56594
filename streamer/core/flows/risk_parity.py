"""Two-asset (equity/bond) risk parity: inverse-vol weights levered to a target vol; $ flows."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from streamer.core import realized
from streamer.core.flows.common import NAN, lagged
from streamer.core.flows.config import FlowConfig, RiskParityConfig
from streamer.core.realized.state import dump_float, load_float

__all__ = ["RiskParity"]


@dataclass(slots=True)
class RiskParity:
    """Two-asset risk parity: w ∝ 1/vol, levered to target vol with the realized covariance.

    Vols and covariance are zero-mean over ``vol_window_days`` (``realized.RollingMeanSquare`` on
    r_e, r_b, r_e + r_b and r_e - r_b; cov = (MS(e+b) - MS(e-b)) / 4). Equity allocation
    a_e = min(max_leverage, target / portfolio vol) x w_e, applied with ``lag_days``;
    flow = AUM x change of a_e.

    >>> rp = RiskParity.new(FlowConfig.default().risk_parity)
    >>> for i in range(62):
    ...     rp.on_close(100 * math.exp(0.01 * (-1) ** i), 50 * math.exp(0.005 * (-1) ** (i + 1)))
    >>> round(rp.corr(), 6), round(rp.equity_weight(), 4)   # perfectly anti-correlated, bond half as volatile
    (-1.0, 0.3333)
    """

    cfg: RiskParityConfig
    ms_e: realized.RollingMeanSquare
    ms_b: realized.RollingMeanSquare
    ms_sum: realized.RollingMeanSquare
    ms_diff: realized.RollingMeanSquare
    targets: deque[float]
    prev_equity: float = NAN
    prev_bond: float = NAN
    alloc: float = NAN
    prev_alloc: float = NAN
    leverage: float = NAN

    @classmethod
    def new(cls, cfg: RiskParityConfig) -> RiskParity:
        w = cfg.vol_window_days
        return cls(cfg, *(realized.RollingMeanSquare(w) for _ in range(4)), deque(maxlen=cfg.lag_days + 1))

    def _bond_return(self, bond: float) -> float:
        prev = self.prev_bond
        if self.cfg.bond_input == "price":
            return math.log(bond / prev) if bond > 0 and prev > 0 else NAN
        return -self.cfg.bond_duration_years * (bond - prev) / 100.0

    def on_close(self, equity_close: float, bond: float) -> None:
        """One daily close: equity index level and the bond input (price or yield in %)."""
        if not (equity_close > 0 and math.isfinite(bond)):
            return
        if self.prev_equity == self.prev_equity and self.prev_bond == self.prev_bond:
            re = math.log(equity_close / self.prev_equity)
            rb = self._bond_return(bond)
            if rb == rb:
                self.ms_e.update(re)
                self.ms_b.update(rb)
                self.ms_sum.update(re + rb)
                self.ms_diff.update(re - rb)
        self.prev_equity, self.prev_bond = equity_close, bond
        self.targets.append(self._target())
        self.prev_alloc = self.alloc
        self.alloc = lagged(self.targets, self.cfg.lag_days)

    def vols(self) -> tuple[float, float]:
        """(equity, bond) annualized zero-mean vols."""
        ve, vb = self.ms_e.get(), self.ms_b.get()
        k = realized.TRADING_DAYS_PER_YEAR
        return (math.sqrt(ve * k) if ve == ve else NAN, math.sqrt(vb * k) if vb == vb else NAN)

    def corr(self) -> float:
        ve, vb = self.ms_e.get(), self.ms_b.get()
        if not (ve > 0 and vb > 0):
            return NAN
        c = (self.ms_sum.get() - self.ms_diff.get()) / 4.0 / math.sqrt(ve * vb)
        return max(-1.0, min(1.0, c))

    def equity_weight(self) -> float:
        """Unlevered inverse-vol equity weight w_e = (1/σ_e) / (1/σ_e + 1/σ_b)."""
        se, sb = self.vols()
        if not (se > 0 and sb > 0):
            return NAN
        return (1 / se) / (1 / se + 1 / sb)

    def _target(self) -> float:
        se, sb = self.vols()
        rho = self.corr()
        if not (se > 0 and sb > 0) or rho != rho:
            self.leverage = NAN
            return NAN
        we = (1 / se) / (1 / se + 1 / sb)
        wb = 1 - we
        pv = math.sqrt(max(we * we * se * se + wb * wb * sb * sb + 2 * we * wb * rho * se * sb, 1e-12))
        self.leverage = min(self.cfg.max_leverage, self.cfg.target_vol / pv)
        return self.leverage * we

    def flow_today_usd(self) -> float:
        return self.cfg.aum_usd * (self.alloc - self.prev_alloc)

    def to_state(self) -> dict[str, Any]:
        return {"ms": [m.to_state() for m in (self.ms_e, self.ms_b, self.ms_sum, self.ms_diff)],
                "targets": [dump_float(x) for x in self.targets], "prev_equity": dump_float(self.prev_equity),
                "prev_bond": dump_float(self.prev_bond), "alloc": dump_float(self.alloc),
                "prev_alloc": dump_float(self.prev_alloc), "leverage": dump_float(self.leverage)}

    @classmethod
    def from_state(cls, cfg: RiskParityConfig, d: Mapping[str, Any]) -> RiskParity:
        ms = [realized.RollingMeanSquare.from_state(x) for x in d["ms"]]
        return cls(cfg, *ms, deque((load_float(x) for x in d["targets"]), maxlen=cfg.lag_days + 1),
                   load_float(d["prev_equity"]), load_float(d["prev_bond"]), load_float(d["alloc"]), load_float(d["prev_alloc"]),
                   load_float(d["leverage"]))
