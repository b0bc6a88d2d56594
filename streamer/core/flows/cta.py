"""CTA trend followers: MA crossover and time-series momentum signs, vol-scaled position; $ flows
and the closes at which each signal flips."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from streamer.core import realized
from streamer.core.flows.common import NAN
from streamer.core.flows.config import CTAConfig, FlowConfig
from streamer.core.realized.state import dump_float, load_float

__all__ = ["CTATrend"]


def _sign(x: float) -> float:
    return NAN if x != x else (1.0 if x > 0 else (-1.0 if x < 0 else 0.0))


@dataclass(slots=True)
class CTATrend:
    """Trend followers: MA crossover + time-series momentum signs, vol-scaled position, $ flows.

    Moving averages are ``realized.RollingVar(...).mean`` of closes (Welford, O(1)); momentum
    lookbacks read a bounded deque of the last max(lookback) + 1 closes. ``flip_levels()`` gives,
    per component, the close tomorrow at which its sign would change.

    >>> c = CTATrend.new(FlowConfig.default().cta)
    >>> for i in range(260):
    ...     c.on_close(100.0 * math.exp(0.001 * i + 0.01 * (-1) ** i))
    >>> c.score(), round(c.position(), 3) > 0
    (1.0, True)
    """

    cfg: CTAConfig
    ma_fast: realized.RollingVar
    ma_slow: realized.RollingVar
    vol: realized.CloseToCloseVol
    closes: deque[float]
    pos: float = NAN
    prev_pos: float = NAN
    prev_score: float = NAN
    last_score: float = NAN

    @classmethod
    def new(cls, cfg: CTAConfig) -> CTATrend:
        n = max([d for _, d in cfg.momentum_days] + [cfg.ma_slow_days]) + 1
        return cls(cfg, realized.RollingVar(cfg.ma_fast_days, ddof=0),
                   realized.RollingVar(cfg.ma_slow_days, ddof=0),
                   realized.CloseToCloseVol(window=cfg.vol_window_days, method=cfg.vol_method),
                   deque(maxlen=n))

    def on_close(self, close: float) -> None:
        """One daily close (index points)."""
        if not (close > 0 and math.isfinite(close)):
            return
        self.ma_fast.update(close)
        self.ma_slow.update(close)
        self.vol.update(close)
        self.closes.append(close)
        self.prev_score, self.last_score = self.last_score, self.score()
        self.prev_pos = self.pos
        self.pos = self.position()

    def components(self) -> dict[str, float]:
        """Sign (+1/-1/0, NaN while warming up) of each component: "ma" and each momentum label."""
        out = {"ma": _sign(self.ma_fast.mean - self.ma_slow.mean)
               if self.ma_slow.n == self.cfg.ma_slow_days else NAN}
        c = self.closes
        for lab, d in self.cfg.momentum_days:
            out[lab] = _sign(math.log(c[-1] / c[-1 - d])) if len(c) > d else NAN
        return out

    def score(self) -> float:
        """Weighted sum of component signs in [-1, 1]; NaN while any component warms up."""
        comp = self.components()
        return sum(w * comp[k] for k, w in self.cfg.weights)

    def position(self) -> float:
        """Position as a fraction of AUM: clip(score x target / vol, +-max_position)."""
        s, v = self.score(), self.vol.get()
        if s != s or not v > 0:
            return NAN
        m = self.cfg.max_position
        return max(-m, min(m, s * self.cfg.target_vol / v))

    def flow_today_usd(self) -> float:
        return self.cfg.aum_usd * (self.pos - self.prev_pos)

    def flip_levels(self) -> dict[str, float]:
        """Tomorrow's close (points) at which each component's sign flips (NaN while warming up).

        MA crossover: MA_f(P) = MA_s(P) with P entering both windows and each window's oldest close
        leaving: P = (S_s'/n_s - S_f'/n_f) / (1/n_f - 1/n_s), S' = window sum without its oldest.
        Momentum over d days: tomorrow's return runs from the close d - 1 days before today.
        """
        out: dict[str, float] = {}
        nf, ns = self.cfg.ma_fast_days, self.cfg.ma_slow_days
        if self.ma_slow.n == ns and self.ma_fast.n == nf and nf != ns:
            sf = self.ma_fast.mean * nf - self.ma_fast.buf[0]
            ss = self.ma_slow.mean * ns - self.ma_slow.buf[0]
            out["ma"] = (ss / ns - sf / nf) / (1 / nf - 1 / ns)
        else:
            out["ma"] = NAN
        c = self.closes
        for lab, d in self.cfg.momentum_days:
            out[lab] = c[-d] if len(c) >= d else NAN
        return out

    def to_state(self) -> dict[str, Any]:
        return {"ma_fast": self.ma_fast.to_state(), "ma_slow": self.ma_slow.to_state(),
                "vol": self.vol.to_state(), "closes": list(self.closes), "pos": dump_float(self.pos),
                "prev_pos": dump_float(self.prev_pos), "prev_score": dump_float(self.prev_score),
                "last_score": dump_float(self.last_score)}

    @classmethod
    def from_state(cls, cfg: CTAConfig, d: Mapping[str, Any]) -> CTATrend:
        c = cls.new(cfg)
        c.ma_fast = realized.RollingVar.from_state(d["ma_fast"])
        c.ma_slow = realized.RollingVar.from_state(d["ma_slow"])
        c.vol = realized.CloseToCloseVol.from_state(d["vol"])
        c.closes.extend(float(x) for x in d["closes"])
        c.pos, c.prev_pos = load_float(d["pos"]), load_float(d["prev_pos"])
        c.prev_score, c.last_score = load_float(d["prev_score"]), load_float(d["last_score"])
        return c
