"""Systematic-flow models: vol control, risk parity, CTA trend, leveraged ETFs, dealer hedging.

Every parameter lives in one documented config, ``streamer/config/flows.toml`` (``FlowConfig``).
One object, :class:`FlowBook`, owns all models for one underlying (SPX) and is driven the same way
live and offline:

* ``on_daily_close(date, spx_close, vix_close, bond)`` once per session (O(1) estimator updates plus
  a bounded projection: horizon x scenarios x families steps, ~300 for the default config);
* ``on_spot(ts_ns, spx)`` / ``on_vol_index(ts_ns, vix)`` intraday (O(1); the VIX rank is
  O(log n) with a sorted bounded history); ``on_spot`` also re-runs the vol-control projection
  with the live spot as the session's provisional close, on the first print after a daily close
  and then at most once per ``vol_control.reproject_interval_s`` of event time (deterministic);
* ``on_exposures(ts_ns, gex, vanna, charm)`` when the chain's dealer exposures change;
* ``signals()`` -> named signals with units in the names; ``to_state``/``from_state``.

Conventions. Flows are signed US dollars of S&P 500 exposure bought (+) or sold (-). Model
exposures are fractions of AUM (``*_ratio``). Realized vols come from ``streamer.core.realized``
estimators (zero-mean, 252 days); projections copy the estimators through their state and feed them
a synthetic path, so the big days leaving the windows are accounted for by the estimators
themselves. A flow is AUM x the change of exposure (the passive drift of the position with the
market is not counted), as strategists quote them.
"""
from __future__ import annotations

import bisect
import math
import tomllib
from collections import deque
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path
from typing import Any, Mapping, Sequence

from streamer.core import realized

__all__ = [
    "DEFAULT_CONFIG_PATH", "FlowConfig", "VolFamily", "PathScenario", "VolControlConfig",
    "RiskParityConfig", "CTAConfig", "LevFund", "LevETFConfig", "DealerConfig", "ConfigError",
    "RankHistory", "VolControl", "RiskParity", "CTATrend", "LeveragedETFs", "DealerHedging",
    "FlowBook", "leveraged_etf_flow", "vol_control_exposure", "SIGNAL_UNITS",
]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[1] / "config" / "flows.toml"
_NAN = math.nan


class ConfigError(ValueError):
    """An invalid flows config; ``where`` names the section and field."""

    retriable = False

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


def _f(x: Any) -> float:
    """State value -> float (None means NaN: JSON has no NaN)."""
    return _NAN if x is None else float(x)


def _n(x: float) -> float | None:
    """float -> state value (NaN -> None)."""
    return None if x != x else float(x)


# ============================================================================ config


@dataclass(slots=True, frozen=True)
class VolFamily:
    """One vol-control methodology: exposure = min(cap, target_vol / max over windows of vol)."""

    name: str
    method: str                  # "ewma" | "simple"
    windows_days: tuple[int, ...]
    target_vol: float            # annualized decimal
    cap: float                   # max exposure (1.5 = 150%)
    lag_days: int
    aum_usd: float


@dataclass(slots=True, frozen=True)
class PathScenario:
    """A projection path: ``daily_returns`` (log returns) repeated day after day.

    With ``implied_vol_scale`` set, the path is instead +-a alternating with
    a = scale x VIX / 100 / sqrt(252): the tape realizes the vol the options market prices (the
    VIX at projection time, live during the session), ``daily_returns`` is then unused.
    """

    name: str
    daily_returns: tuple[float, ...]
    implied_vol_scale: float | None = None

    def returns(self, vix: float) -> tuple[float, ...]:
        """The daily log returns of the path (NaN for an implied path without a VIX level)."""
        if self.implied_vol_scale is None:
            return self.daily_returns
        a = self.implied_vol_scale * vix / 100.0 / math.sqrt(realized.TRADING_DAYS_PER_YEAR) if vix > 0 else _NAN
        return (a, -a)


@dataclass(slots=True, frozen=True)
class VolControlConfig:
    families: tuple[VolFamily, ...]
    scenarios: tuple[PathScenario, ...]
    horizons_days: tuple[tuple[str, int], ...]
    base_scenario: str
    reproject_interval_s: float = 300.0   # live re-projection throttle, seconds of event time

    @property
    def lag_days(self) -> int:
        """Execution lag of the projection: the largest family lag (flows this many closes ahead are set)."""
        return max(f.lag_days for f in self.families)


@dataclass(slots=True, frozen=True)
class RiskParityConfig:
    aum_usd: float
    target_vol: float
    max_leverage: float
    vol_window_days: int
    lag_days: int
    bond_input: str              # "price" | "yield_pct"
    bond_duration_years: float


@dataclass(slots=True, frozen=True)
class CTAConfig:
    aum_usd: float
    target_vol: float
    max_position: float
    vol_window_days: int
    vol_method: str
    ma_fast_days: int
    ma_slow_days: int
    momentum_days: tuple[tuple[str, int], ...]
    weights: tuple[tuple[str, float], ...]   # "ma" and each momentum label


@dataclass(slots=True, frozen=True)
class LevFund:
    ticker: str
    index: str
    leverage: float
    aum_usd: float


@dataclass(slots=True, frozen=True)
class LevETFConfig:
    funds: tuple[LevFund, ...]
    beta_to_spx: tuple[tuple[str, float], ...]
    aum_asof: str
    aum_source: str


@dataclass(slots=True, frozen=True)
class DealerConfig:
    charm_horizon_days: float


@dataclass(slots=True, frozen=True)
class FlowConfig:
    """All flow-model parameters (see ``streamer/config/flows.toml`` for each value's source)."""

    vol_control: VolControlConfig
    risk_parity: RiskParityConfig
    cta: CTAConfig
    leveraged_etf: LevETFConfig
    dealer: DealerConfig
    vix_rank_window_days: int
    vix_min_history_days: int

    @classmethod
    def default(cls) -> FlowConfig:
        """The packaged ``streamer/config/flows.toml``."""
        return cls.from_toml(DEFAULT_CONFIG_PATH)

    @classmethod
    def from_toml(cls, text_or_path: str | Path) -> FlowConfig:
        """Parse a flows TOML (a path or the TOML text); raises ConfigError naming the field."""
        if isinstance(text_or_path, Path) or ("\n" not in str(text_or_path)
                                               and str(text_or_path).endswith(".toml")):
            p = Path(text_or_path)
            try:
                text = p.read_text()
            except OSError as exc:
                raise ConfigError(str(p), f"cannot read: {exc}") from None
        else:
            text = str(text_or_path)
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("flows config", f"invalid TOML: {exc}") from None
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FlowConfig:
        """Build from a parsed TOML mapping, strictly (unknown or missing keys are errors)."""
        r = _Reader(d, "")
        vh = r.section("vix_history")
        vc = r.section("vol_control")
        fams = tuple(
            VolFamily(f.str("name"), f.choice("method", ("ewma", "simple")),
                      tuple(f.int_list("windows_days")), f.pos("target_vol"), f.pos("cap"),
                      f.nonneg_int("lag_days"), f.nonneg("aum_usd"))
            for f in vc.table_list("families"))
        scens = []
        for sr in vc.table_list("scenarios"):
            if "implied_vol_scale" in sr.d:
                scens.append(PathScenario(sr.str("name"), (), sr.pos("implied_vol_scale")))
            else:
                scens.append(PathScenario(sr.str("name"), tuple(sr.float_list("daily_returns"))))
            sr.done()
        scens = tuple(scens)
        hz = vc.section("horizons_days")
        horizons = tuple((k, hz.pos_int(k)) for k in hz.keys())
        base = vc.str("base_scenario")
        if base not in {s.name for s in scens}:
            raise ConfigError("vol_control.base_scenario", f"{base!r} is not a scenario name")
        reproject_s = vc.pos("reproject_interval_s")
        vc.done(), hz.done()
        rp = r.section("risk_parity")
        rpc = RiskParityConfig(rp.nonneg("aum_usd"), rp.pos("target_vol"), rp.pos("max_leverage"),
                               rp.pos_int("vol_window_days"), rp.nonneg_int("lag_days"),
                               rp.choice("bond_input", ("price", "yield_pct")),
                               rp.pos("bond_duration_years"))
        rp.done()
        ct = r.section("cta")
        mom = ct.section("momentum_days")
        moms = tuple((k, mom.pos_int(k)) for k in mom.keys())
        w = ct.section("weights")
        weights = tuple((k, w.num(k)) for k in w.keys())
        labels = {"ma"} | {k for k, _ in moms}
        if set(k for k, _ in weights) != labels:
            raise ConfigError("cta.weights", f"needs exactly the keys {sorted(labels)}")
        ctc = CTAConfig(ct.nonneg("aum_usd"), ct.pos("target_vol"), ct.pos("max_position"),
                        ct.pos_int("vol_window_days"), ct.choice("vol_method", ("ewma", "simple")),
                        ct.pos_int("ma_fast_days"), ct.pos_int("ma_slow_days"), moms, weights)
        mom.done(), w.done(), ct.done()
        le = r.section("leveraged_etf")
        betas_r = le.section("beta_to_spx")
        betas = tuple((k, betas_r.num(k)) for k in betas_r.keys())
        funds = tuple(LevFund(f.str("ticker"), f.str("index"), f.num("leverage"), f.nonneg("aum_usd"))
                      for f in le.table_list("funds"))
        for fd in funds:
            if fd.index not in dict(betas):
                raise ConfigError("leveraged_etf.funds", f"{fd.ticker}: index {fd.index!r} has no beta_to_spx")
        lec = LevETFConfig(funds, betas, le.str("aum_asof"), le.str("aum_source"))
        betas_r.done(), le.done()
        de = r.section("dealer")
        dc = DealerConfig(de.nonneg("charm_horizon_days"))
        de.done()
        cfg = cls(VolControlConfig(fams, scens, horizons, base, reproject_s), rpc, ctc, lec, dc,
                  vh.pos_int("rank_window_days"), vh.pos_int("min_history_days"))
        vh.done(), r.done()
        return cfg


class _Reader:
    """Strict typed access to a TOML table; ``done()`` rejects keys nobody read."""

    def __init__(self, d: Any, where: str) -> None:
        if not isinstance(d, Mapping):
            raise ConfigError(where or "flows config", f"expected a table, got {type(d).__name__}")
        self.d, self.where, self.seen = d, where, set()

    def _at(self, k: str) -> str:
        return f"{self.where}.{k}" if self.where else k

    def _get(self, k: str) -> Any:
        if k not in self.d:
            raise ConfigError(self._at(k), "missing")
        self.seen.add(k)
        return self.d[k]

    def keys(self) -> list[str]:
        return list(self.d.keys())

    def section(self, k: str) -> _Reader:
        return _Reader(self._get(k), self._at(k))

    def table_list(self, k: str) -> list[_Reader]:
        v = self._get(k)
        if not isinstance(v, list) or not v:
            raise ConfigError(self._at(k), "expected a non-empty array of tables")
        out = [_Reader(x, f"{self._at(k)}[{i}]") for i, x in enumerate(v)]
        return out

    def str(self, k: str) -> str:
        v = self._get(k)
        if not isinstance(v, str) or not v:
            raise ConfigError(self._at(k), f"expected a non-empty string, got {v!r}")
        return v

    def choice(self, k: str, options: Sequence[str]) -> str:
        v = self.str(k)
        if v not in options:
            raise ConfigError(self._at(k), f"expected one of {list(options)}, got {v!r}")
        return v

    def num(self, k: str) -> float:
        v = self._get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(self._at(k), f"expected a finite number, got {v!r}")
        return float(v)

    def pos(self, k: str) -> float:
        v = self.num(k)
        if v <= 0:
            raise ConfigError(self._at(k), f"must be > 0, got {v}")
        return v

    def nonneg(self, k: str) -> float:
        v = self.num(k)
        if v < 0:
            raise ConfigError(self._at(k), f"must be >= 0, got {v}")
        return v

    def _int(self, k: str, lo: int) -> int:
        v = self._get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(self._at(k), f"expected an integer >= {lo}, got {v!r}")
        return v

    def pos_int(self, k: str) -> int:
        return self._int(k, 1)

    def nonneg_int(self, k: str) -> int:
        return self._int(k, 0)

    def int_list(self, k: str) -> list[int]:
        v = self._get(k)
        if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in v):
            raise ConfigError(self._at(k), f"expected a non-empty list of positive integers, got {v!r}")
        return v

    def float_list(self, k: str) -> list[float]:
        v = self._get(k)
        if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
            raise ConfigError(self._at(k), f"expected a non-empty list of numbers, got {v!r}")
        return [float(x) for x in v]

    def done(self) -> None:
        extra = [k for k in self.d if k not in self.seen]
        if extra:
            raise ConfigError(self._at(extra[0]), "unknown key")


# ============================================================================ pure formulas


def vol_control_exposure(target_vol: float, realized_vol: float, cap: float) -> float:
    """Vol-control exposure (fraction of AUM) = min(cap, target / realized); NaN if vol unknown.

    >>> vol_control_exposure(0.10, 0.20, 1.5), vol_control_exposure(0.10, 0.05, 1.5)
    (0.5, 1.5)
    """
    if not realized_vol > 0.0:
        return _NAN
    return min(cap, target_vol / realized_vol)


def leveraged_etf_flow(aum_usd: float, leverage: float, index_return: float) -> float:
    """Daily-reset rebalance at the close, $: A x L x (L - 1) x r (same sign as r for bull and bear).

    >>> leveraged_etf_flow(1e9, 3.0, 0.01), leveraged_etf_flow(1e9, -3.0, 0.01)
    (60000000.0, 120000000.0)
    """
    return aum_usd * leverage * (leverage - 1.0) * index_return


# ============================================================================ VIX change rank


@dataclass(slots=True)
class RankHistory:
    """Bounded trailing window of values with O(log n) rank queries (sorted copy + FIFO).

    ``pct_rank(x)`` = fraction of the window's values <= x; ``low_rank(x)`` = 1 + number of values
    strictly below x (1 = lower than everything in the window: e.g. the largest drop).
    Insertion/removal is one bisect and a list memmove per day.

    >>> h = RankHistory(window=4)
    >>> for x in (0.05, -0.10, 0.02, -0.03, 0.01):   # 0.05 leaves
    ...     h.push(x)
    >>> h.pct_rank(-0.2), h.low_rank(-0.2), h.pct_rank(0.015), h.low_rank(0.015)
    (0.0, 1, 0.75, 4)
    """

    window: int
    fifo: deque[float] = field(default_factory=deque)
    ordered: list[float] = field(default_factory=list)

    def push(self, x: float) -> None:
        """Append x (finite); the oldest value leaves once the window is full."""
        if not math.isfinite(x):
            return
        if len(self.fifo) == self.window:
            old = self.fifo.popleft()
            del self.ordered[bisect.bisect_left(self.ordered, old)]
        self.fifo.append(x)
        bisect.insort(self.ordered, x)

    def __len__(self) -> int:
        return len(self.fifo)

    def pct_rank(self, x: float) -> float:
        """Fraction of stored values <= x (NaN if empty or x is NaN)."""
        n = len(self.ordered)
        if n == 0 or x != x:
            return _NAN
        return bisect.bisect_right(self.ordered, x) / n

    def low_rank(self, x: float) -> float:
        """1 + count of stored values < x (1 = new low of the window); NaN if empty or x NaN."""
        if not self.ordered or x != x:
            return _NAN
        return bisect.bisect_left(self.ordered, x) + 1

    def to_state(self) -> dict[str, Any]:
        return {"window": self.window, "fifo": list(self.fifo)}

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> RankHistory:
        fifo = deque(float(x) for x in d["fifo"])
        return cls(int(d["window"]), fifo, sorted(fifo))


# ============================================================================ vol control


def _lagged(targets: deque[float], lag: int) -> float:
    """Exposure applied today = target set ``lag`` closes ago (NaN until known)."""
    return targets[0] if len(targets) == lag + 1 else _NAN


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
        return _lagged(self.targets, self.cfg.lag_days)

    def applied(self) -> float:
        return _lagged(self.targets, self.cfg.lag_days)

    def copy(self) -> _VCFamilyState:
        """Independent copy through the estimators' own state (projection scratch)."""
        return _VCFamilyState(self.cfg, realized.MaxOf.from_state(self.vol.to_state()),
                              deque(self.targets, maxlen=self.cfg.lag_days + 1))

    def to_state(self) -> dict[str, Any]:
        return {"vol": self.vol.to_state(), "targets": [_n(x) for x in self.targets]}

    @classmethod
    def from_state(cls, cfg: VolFamily, d: Mapping[str, Any]) -> _VCFamilyState:
        return cls(cfg, realized.MaxOf.from_state(d["vol"]),
                   deque((_f(x) for x in d["targets"]), maxlen=cfg.lag_days + 1))


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
    last_close: float = _NAN
    prev_exposure_usd: float = _NAN
    exposure_usd: float = _NAN

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
        return self.exposure_usd / a if a > 0 else _NAN

    def family_values(self) -> list[tuple[str, float, float]]:
        """(name, realized vol annualized, applied exposure ratio) per family."""
        return [(f.cfg.name, f.vol.get(), f.applied()) for f in self.families]

    def flow_today_usd(self) -> float:
        """$ traded at the last close = AUM x change of the applied exposure."""
        return self.exposure_usd - self.prev_exposure_usd

    def project(self, scenario: PathScenario | str, days: int, first_close: float | None = None,
                vix: float = _NAN) -> list[float]:
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
            return [_NAN] * days
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

    def projection_signals(self, first_close: float | None = None, vix: float = _NAN) -> dict[str, float]:
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
        return {"families": [f.to_state() for f in self.families], "last_close": _n(self.last_close),
                "prev_exposure_usd": _n(self.prev_exposure_usd), "exposure_usd": _n(self.exposure_usd)}

    @classmethod
    def from_state(cls, cfg: VolControlConfig, d: Mapping[str, Any]) -> VolControl:
        fams = [_VCFamilyState.from_state(c, s) for c, s in zip(cfg.families, d["families"], strict=True)]
        return cls(cfg, fams, _f(d["last_close"]), _f(d["prev_exposure_usd"]), _f(d["exposure_usd"]))


# ============================================================================ risk parity


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
    prev_equity: float = _NAN
    prev_bond: float = _NAN
    alloc: float = _NAN
    prev_alloc: float = _NAN
    leverage: float = _NAN

    @classmethod
    def new(cls, cfg: RiskParityConfig) -> RiskParity:
        w = cfg.vol_window_days
        return cls(cfg, *(realized.RollingMeanSquare(w) for _ in range(4)), deque(maxlen=cfg.lag_days + 1))

    def _bond_return(self, bond: float) -> float:
        prev = self.prev_bond
        if self.cfg.bond_input == "price":
            return math.log(bond / prev) if bond > 0 and prev > 0 else _NAN
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
        self.alloc = _lagged(self.targets, self.cfg.lag_days)

    def vols(self) -> tuple[float, float]:
        """(equity, bond) annualized zero-mean vols."""
        ve, vb = self.ms_e.get(), self.ms_b.get()
        k = realized.TRADING_DAYS_PER_YEAR
        return (math.sqrt(ve * k) if ve == ve else _NAN, math.sqrt(vb * k) if vb == vb else _NAN)

    def corr(self) -> float:
        ve, vb = self.ms_e.get(), self.ms_b.get()
        if not (ve > 0 and vb > 0):
            return _NAN
        c = (self.ms_sum.get() - self.ms_diff.get()) / 4.0 / math.sqrt(ve * vb)
        return max(-1.0, min(1.0, c))

    def equity_weight(self) -> float:
        """Unlevered inverse-vol equity weight w_e = (1/σ_e) / (1/σ_e + 1/σ_b)."""
        se, sb = self.vols()
        if not (se > 0 and sb > 0):
            return _NAN
        return (1 / se) / (1 / se + 1 / sb)

    def _target(self) -> float:
        se, sb = self.vols()
        rho = self.corr()
        if not (se > 0 and sb > 0) or rho != rho:
            self.leverage = _NAN
            return _NAN
        we = (1 / se) / (1 / se + 1 / sb)
        wb = 1 - we
        pv = math.sqrt(max(we * we * se * se + wb * wb * sb * sb + 2 * we * wb * rho * se * sb, 1e-12))
        self.leverage = min(self.cfg.max_leverage, self.cfg.target_vol / pv)
        return self.leverage * we

    def flow_today_usd(self) -> float:
        return self.cfg.aum_usd * (self.alloc - self.prev_alloc)

    def to_state(self) -> dict[str, Any]:
        return {"ms": [m.to_state() for m in (self.ms_e, self.ms_b, self.ms_sum, self.ms_diff)],
                "targets": [_n(x) for x in self.targets], "prev_equity": _n(self.prev_equity),
                "prev_bond": _n(self.prev_bond), "alloc": _n(self.alloc),
                "prev_alloc": _n(self.prev_alloc), "leverage": _n(self.leverage)}

    @classmethod
    def from_state(cls, cfg: RiskParityConfig, d: Mapping[str, Any]) -> RiskParity:
        ms = [realized.RollingMeanSquare.from_state(x) for x in d["ms"]]
        return cls(cfg, *ms, deque((_f(x) for x in d["targets"]), maxlen=cfg.lag_days + 1),
                   _f(d["prev_equity"]), _f(d["prev_bond"]), _f(d["alloc"]), _f(d["prev_alloc"]),
                   _f(d["leverage"]))


# ============================================================================ CTA trend


def _sign(x: float) -> float:
    return _NAN if x != x else (1.0 if x > 0 else (-1.0 if x < 0 else 0.0))


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
    pos: float = _NAN
    prev_pos: float = _NAN
    prev_score: float = _NAN
    last_score: float = _NAN

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
               if self.ma_slow.n == self.cfg.ma_slow_days else _NAN}
        c = self.closes
        for lab, d in self.cfg.momentum_days:
            out[lab] = _sign(math.log(c[-1] / c[-1 - d])) if len(c) > d else _NAN
        return out

    def score(self) -> float:
        """Weighted sum of component signs in [-1, 1]; NaN while any component warms up."""
        comp = self.components()
        return sum(w * comp[k] for k, w in self.cfg.weights)

    def position(self) -> float:
        """Position as a fraction of AUM: clip(score x target / vol, +-max_position)."""
        s, v = self.score(), self.vol.get()
        if s != s or not v > 0:
            return _NAN
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
            out["ma"] = _NAN
        c = self.closes
        for lab, d in self.cfg.momentum_days:
            out[lab] = c[-d] if len(c) >= d else _NAN
        return out

    def to_state(self) -> dict[str, Any]:
        return {"ma_fast": self.ma_fast.to_state(), "ma_slow": self.ma_slow.to_state(),
                "vol": self.vol.to_state(), "closes": list(self.closes), "pos": _n(self.pos),
                "prev_pos": _n(self.prev_pos), "prev_score": _n(self.prev_score),
                "last_score": _n(self.last_score)}

    @classmethod
    def from_state(cls, cfg: CTAConfig, d: Mapping[str, Any]) -> CTATrend:
        c = cls.new(cfg)
        c.ma_fast = realized.RollingVar.from_state(d["ma_fast"])
        c.ma_slow = realized.RollingVar.from_state(d["ma_slow"])
        c.vol = realized.CloseToCloseVol.from_state(d["vol"])
        c.closes.extend(float(x) for x in d["closes"])
        c.pos, c.prev_pos = _f(d["pos"]), _f(d["prev_pos"])
        c.prev_score, c.last_score = _f(d["prev_score"]), _f(d["last_score"])
        return c


# ============================================================================ leveraged ETFs


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


# ============================================================================ dealers


@dataclass(slots=True)
class DealerHedging:
    """Dealer hedge flows from chain exposures, $ (hedge = minus the dealers' delta change).

    >>> d = DealerHedging(DealerConfig(1.0), gex_usd_per_pct=-2e9, vanna_usd_per_vol_pt=1e9,
    ...                   charm_usd_per_day=3e8)
    >>> round(d.gamma_flow(101.0, 100.0)), d.vanna_flow(16.0, 20.0), d.charm_flow()  # short gamma buys a rally
    (2000000000, 4000000000.0, -300000000.0)
    """

    cfg: DealerConfig
    gex_usd_per_pct: float = _NAN
    vanna_usd_per_vol_pt: float = _NAN
    charm_usd_per_day: float = _NAN
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
        return {"gex": _n(self.gex_usd_per_pct), "vanna": _n(self.vanna_usd_per_vol_pt),
                "charm": _n(self.charm_usd_per_day), "ts_ns": self.exposures_ts_ns}


# ============================================================================ the book

#: unit of each signal family, by name suffix (documentation and the backtest summary)
SIGNAL_UNITS = {"_usd": "US dollars", "_ratio": "decimal fraction", "_annual": "annualized decimal vol",
                "_spx": "S&P 500 index points", "_pts": "vol points", "_rank": "rank (1 = lowest)",
                "_pct_rank": "fraction of window <= value"}

_STATE_VERSION = 1


class FlowBook:
    """All flow models of one underlying, updated daily and intraday; named signals out.

    Live use (the engine owns one per underlying): ``on_daily_close`` once per session with the
    official closes, then ``on_spot``/``on_vol_index`` on every tick and ``on_exposures`` when the
    chain's totals change; read ``signals()``. Offline, the backtest calls the same methods.

    >>> fb = FlowBook()
    >>> fb.on_daily_close("2024-11-05", 5782.76, 20.49, 87.85)
    True
    >>> fb.on_vol_index(0, 16.27); fb.on_spot(0, 5929.04)
    >>> s = fb.signals()
    >>> round(s["vix_change_ratio"], 3), round(s["flow_leveraged_etf_close_usd"] / 1e9, 1)
    (-0.206, 12.3)
    """

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = cfg = config or FlowConfig.default()
        self.vol_control = VolControl.new(cfg.vol_control)
        self.risk_parity = RiskParity.new(cfg.risk_parity)
        self.cta = CTATrend.new(cfg.cta)
        self.lev = LeveragedETFs(cfg.leveraged_etf)
        self.dealer = DealerHedging(cfg.dealer)
        self.vix_changes = RankHistory(cfg.vix_rank_window_days)
        self.last_date = ""
        self.n_days = 0
        self.spx_prev_close = _NAN
        self.vix_prev_close = _NAN
        self.spx_last = _NAN
        self.vix_last = _NAN
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

    def on_exposures(self, ts_ns: int, gex_usd_per_pct: float, vanna_usd_per_vol_pt: float,
                     charm_usd_per_day: float) -> None:
        """Dealer exposures from the chain (chain.py units: $/1%, $/vol pt, $/day, dealer-signed)."""
        d = self.dealer
        d.gex_usd_per_pct, d.vanna_usd_per_vol_pt = float(gex_usd_per_pct), float(vanna_usd_per_vol_pt)
        d.charm_usd_per_day, d.exposures_ts_ns = float(charm_usd_per_day), ts_ns

    def on_daily_close(self, date: str | _date, spx_close: float, vix_close: float,
                       bond_close_or_yield: float = _NAN) -> bool:
        """Official session close; False (ignored) if ``date`` (ISO) is not after the last one.

        ``bond_close_or_yield`` is a TLT close or a DGS10 yield in percent, as the config's
        ``risk_parity.bond_input`` says; NaN (missing) skips the risk-parity update that day.
        """
        ds = date.isoformat() if isinstance(date, _date) else str(date)
        if ds <= self.last_date:
            return False
        self.last_date = ds
        self.n_days += 1
        self._set_spot(self.spx_ts_ns, spx_close)
        self.on_vol_index(self.vix_ts_ns, vix_close)
        self._vc_live, self._vc_live_ts_ns = {}, None   # the official close's projection replaces it
        # today's close as the "live" view (change, rank vs history before today, close flows)
        live = self._live()
        vc = self.vol_control
        vc.on_close(spx_close)
        self.risk_parity.on_close(spx_close, bond_close_or_yield)
        self.cta.on_close(spx_close)
        daily = dict(live)
        daily.update(self._daily_values())
        daily["flow_systematic_today_usd"] = _nansum(
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
        r = spx / ps - 1.0 if ps > 0 and spx == spx else _NAN
        dv = vix / pv - 1.0 if pv > 0 and vix == vix else _NAN
        h = self.vix_changes
        enough = len(h) >= self.config.vix_min_history_days
        out = {"spx_last": spx, "spx_prev_close": ps, "spx_change_ratio": r,
               "vix_last": vix, "vix_prev_close": pv, "vix_change_ratio": dv,
               "vix_change_pts": vix - pv if pv > 0 else _NAN,
               "vix_change_pct_rank": h.pct_rank(dv) if enough else _NAN,
               "vix_change_low_rank": h.low_rank(dv) if enough else _NAN,
               "vix_change_history_days": float(len(h))}
        by = self.lev.by_index(r)
        out["flow_leveraged_etf_close_usd"] = sum(by.values())
        for k, v in by.items():
            out[f"flow_leveraged_etf_{k.lower()}_usd"] = v
        d = self.dealer
        g = d.gamma_flow(spx, ps) if ps > 0 else _NAN
        v = d.vanna_flow(vix, pv) if pv > 0 else _NAN
        c = d.charm_flow()
        out.update({"flow_dealer_gamma_usd": g, "flow_dealer_vanna_usd": v, "flow_dealer_charm_usd": c,
                    "flow_dealer_total_usd": _nansum(g, v),
                    "dealer_gex_usd_per_pct": d.gex_usd_per_pct,
                    "dealer_vanna_usd_per_vol_pt": d.vanna_usd_per_vol_pt,
                    "dealer_charm_usd_per_day": d.charm_usd_per_day})
        return out

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
                    "cta_ma_fast_spx": cta.ma_fast.mean if cta.ma_fast.n else _NAN,
                    "cta_ma_slow_spx": cta.ma_slow.mean if cta.ma_slow.n else _NAN})
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
                "spx_prev_close": _n(self.spx_prev_close), "vix_prev_close": _n(self.vix_prev_close),
                "spx_last": _n(self.spx_last), "vix_last": _n(self.vix_last),
                "spx_ts_ns": self.spx_ts_ns, "vix_ts_ns": self.vix_ts_ns, "at_close": self._at_close,
                "vol_control": self.vol_control.to_state(), "risk_parity": self.risk_parity.to_state(),
                "cta": self.cta.to_state(), "dealer": self.dealer.to_state(),
                "vix_changes": self.vix_changes.to_state(),
                "daily": {k: _n(v) for k, v in self._daily.items()},
                "vc_live": {k: _n(v) for k, v in self._vc_live.items()}, "vc_live_ts_ns": self._vc_live_ts_ns}

    @classmethod
    def from_state(cls, d: Mapping[str, Any], config: FlowConfig | None = None) -> FlowBook:
        if d.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported FlowBook state version {d.get('v')!r}")
        fb = cls(config)
        cfg = fb.config
        fb.last_date, fb.n_days = str(d["last_date"]), int(d["n_days"])
        fb.spx_prev_close, fb.vix_prev_close = _f(d["spx_prev_close"]), _f(d["vix_prev_close"])
        fb.spx_last, fb.vix_last = _f(d["spx_last"]), _f(d["vix_last"])
        fb.spx_ts_ns, fb.vix_ts_ns = int(d["spx_ts_ns"]), int(d["vix_ts_ns"])
        fb.vol_control = VolControl.from_state(cfg.vol_control, d["vol_control"])
        fb.risk_parity = RiskParity.from_state(cfg.risk_parity, d["risk_parity"])
        fb.cta = CTATrend.from_state(cfg.cta, d["cta"])
        dd = d["dealer"]
        fb.dealer = DealerHedging(cfg.dealer, _f(dd["gex"]), _f(dd["vanna"]), _f(dd["charm"]), int(dd["ts_ns"]))
        fb.vix_changes = RankHistory.from_state(d["vix_changes"])
        fb._daily = {k: _f(v) for k, v in d["daily"].items()}
        fb._at_close = bool(d["at_close"])
        fb._vc_live = {k: _f(v) for k, v in d.get("vc_live", {}).items()}
        ts = d.get("vc_live_ts_ns")
        fb._vc_live_ts_ns = None if ts is None else int(ts)
        return fb


def _nansum(*xs: float) -> float:
    """Sum of the non-NaN terms (NaN if all are NaN)."""
    vals = [x for x in xs if x == x]
    return sum(vals) if vals else _NAN
