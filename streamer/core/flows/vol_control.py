"""Vol-control funds: exposure = min(cap, target / realized vol) per methodology family, lagged;
$ flows and their projection along synthetic or implied-vol paths."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from streamer.core import realized
from streamer.core.flows.common import NAN, lagged
from streamer.core.flows.config import FlowConfig, PathScenario, VolControlConfig, VolFamily
from streamer.core.realized.state import dump_float, load_float

__all__ = ["vol_control_exposure", "VolControl"]


def vol_control_exposure(target_vol: float, realized_vol: float, cap: float) -> float:
    """Vol-control exposure (fraction of AUM) = min(cap, target / realized); NaN if vol unknown.

    >>> vol_control_exposure(0.10, 0.20, 1.5), vol_control_exposure(0.10, 0.05, 1.5)
    (0.5, 1.5)
    """
    if not realized_vol > 0.0:
        return NAN
    return min(cap, target_vol / realized_vol)



@dataclass(slots=True)
class _VCFamilyState:
    cfg: VolFamily
    vol: realized.MaxOf
    targets: deque[float]        # last lag+1 target exposures, oldest first

    @classmethod
    def new(cls, cfg: VolFamily) -> _VCFamilyState:
        ests = [realized.CloseToCloseVol(window=w, method=cfg.method) for w in cfg.windows_days]
        return cls(cfg, realized.MaxOf(ests), deque(maxlen=cfg.lag_days + 1))

    def step(self, close: float) -> float:
        """Feed one close; returns the exposure applied at this close (NaN while warming up)."""
        self.vol.update(close)
        self.targets.append(vol_control_exposure(self.cfg.target_vol, self.vol.get(), self.cfg.cap))
        return lagged(self.targets, self.cfg.lag_days)

    def applied(self) -> float:
        return lagged(self.targets, self.cfg.lag_days)

    def copy(self) -> _VCFamilyState:
        """Independent copy through the estimators' own state (projection scratch)."""
        return _VCFamilyState(self.cfg, realized.MaxOf.from_state(self.vol.to_state()),
                              deque(self.targets, maxlen=self.cfg.lag_days + 1))

    def to_state(self) -> dict[str, Any]:
        return {"vol": self.vol.to_state(), "targets": [dump_float(x) for x in self.targets]}

    @classmethod
    def from_state(cls, cfg: VolFamily, d: Mapping[str, Any]) -> _VCFamilyState:
        return cls(cfg, realized.MaxOf.from_state(d["vol"]),
                   deque((load_float(x) for x in d["targets"]), maxlen=cfg.lag_days + 1))


@dataclass(slots=True)
class VolControl:
    """Vol-control funds: per family exposure = min(cap, target / realized vol), lagged; $ flows.

    ``project(scenario, days)`` returns the cumulative $ flow after each of the next ``days``
    closes if the SPX follows the scenario's path, computed on copies of the live estimators.

    >>> cfg = FlowConfig.default().vol_control
    >>> vc = VolControl.new(cfg)
    >>> for i in range(70):                  # log returns +-1% a day: vol 0.01 x sqrt(252)
    ...     vc.on_close(100.0 * math.exp(0.01 * (i % 2)))
    >>> round(vc.exposure_ratio(), 4) == round(0.10 / (0.01 * math.sqrt(252)), 4)
    True
    """

    cfg: VolControlConfig
    families: list[_VCFamilyState]
    last_close: float = NAN
    prev_exposure_usd: float = NAN
    exposure_usd: float = NAN

    @classmethod
    def new(cls, cfg: VolControlConfig) -> VolControl:
        return cls(cfg, [_VCFamilyState.new(f) for f in cfg.families])

    @property
    def aum_usd(self) -> float:
        return sum(f.cfg.aum_usd for f in self.families)

    def on_close(self, close: float) -> None:
        """One daily SPX close (index points)."""
        if not (close > 0.0 and math.isfinite(close)):
            return
        self.last_close = close
        self.prev_exposure_usd = self.exposure_usd
        self.exposure_usd = sum(f.cfg.aum_usd * f.step(close) for f in self.families)

    def exposure_ratio(self) -> float:
        """AUM-weighted exposure (fraction of AUM) applied at the last close."""
        a = self.aum_usd
        return self.exposure_usd / a if a > 0 else NAN

    def family_values(self) -> list[tuple[str, float, float]]:
        """(name, realized vol annualized, applied exposure ratio) per family."""
        return [(f.cfg.name, f.vol.get(), f.applied()) for f in self.families]

    def flow_today_usd(self) -> float:
        """$ traded at the last close = AUM x change of the applied exposure."""
        return self.exposure_usd - self.prev_exposure_usd

    def project(self, scenario: PathScenario | str, days: int, first_close: float | None = None,
                vix: float = NAN) -> list[float]:
        """Cumulative $ flow after each of the next ``days`` closes along ``scenario``'s path.

        Element k-1 is AUM x (exposure applied k closes ahead - exposure applied now). The first
        ``lag_days`` steps are already determined by realized closes (the lag). ``first_close``
        (e.g. the live spot during the session) replaces the first synthetic close: it is the
        provisional close of the session under way; the scenario's returns start after it.
        ``vix`` is the implied vol level of an implied-vol scenario (ignored by the others).
        """
        if isinstance(scenario, str):
            scenario = next(s for s in self.cfg.scenarios if s.name == scenario)
        base = self.exposure_usd
        if days <= 0:
            return []
        rets = scenario.returns(vix)
        if base != base or self.last_close != self.last_close or rets[0] != rets[0]:
            return [NAN] * days
        fams = [f.copy() for f in self.families]
        out = []
        p = self.last_close
        shift = 0
        for k in range(days):
            if k == 0 and first_close is not None:
                p, shift = first_close, 1
            else:
                p = p * math.exp(rets[(k - shift) % len(rets)])
            e = sum(f.cfg.aum_usd * f.step(p) for f in fams)
            out.append(e - base)
        return out

    def projection_signals(self, first_close: float | None = None, vix: float = NAN) -> dict[str, float]:
        """Every projection signal, from the official close or a provisional one (live spot).

        ``flow_vol_control_next_close_usd``: the flow at the next close. ``flow_vol_control_set_usd``:
        the cumulative flow over the next L = ``lag_days`` closes, already set by realized closes
        (executes whatever the path). ``flow_vol_control_<h>[_<scenario>]_usd``: cumulative over the
        next h closes. ``flow_vol_control_after_lag_<h>[_<scenario>]_usd``: cumulative over the h
        closes *after* the set ones, the part the projection (path assumption, provisional close)
        decides; set + after_lag_h counts no dollar twice with the set flow. Un-suffixed names are the
        base scenario.
        """
        cfg = self.cfg
        lag = cfg.lag_days
        hmax = max(d for _, d in cfg.horizons_days) + lag
        out: dict[str, float] = {"vol_control_projection_spx": self.last_close if first_close is None else first_close}
        for sc in cfg.scenarios:
            path = self.project(sc, hmax, first_close, vix)
            done = path[lag - 1] if lag > 0 else 0.0
            base = sc.name == cfg.base_scenario
            for lab, d in cfg.horizons_days:
                out[f"flow_vol_control_{lab}_{sc.name}_usd"] = path[d - 1]
                out[f"flow_vol_control_after_lag_{lab}_{sc.name}_usd"] = path[lag + d - 1] - done
                if base:
                    out[f"flow_vol_control_{lab}_usd"] = path[d - 1]
                    out[f"flow_vol_control_after_lag_{lab}_usd"] = path[lag + d - 1] - done
            if base:
                out["flow_vol_control_next_close_usd"] = path[0]
                out["flow_vol_control_set_usd"] = done
        return out

    def to_state(self) -> dict[str, Any]:
        return {"families": [f.to_state() for f in self.families], "last_close": dump_float(self.last_close),
                "prev_exposure_usd": dump_float(self.prev_exposure_usd), "exposure_usd": dump_float(self.exposure_usd)}

    @classmethod
    def from_state(cls, cfg: VolControlConfig, d: Mapping[str, Any]) -> VolControl:
        fams = [_VCFamilyState.from_state(c, s) for c, s in zip(cfg.families, d["families"], strict=True)]
        return cls(cfg, fams, load_float(d["last_close"]), load_float(d["prev_exposure_usd"]), load_float(d["exposure_usd"]))
