"""The flows config: every model parameter, read strictly from ``streamer/config/flows.toml``.

``FlowConfig.default()`` is the packaged file; each value's source is documented beside it there.
"""
from __future__ import annotations

import bisect
import math
import tomllib
from dataclasses import dataclass, replace
from datetime import date as _date
from pathlib import Path
from typing import Any, Mapping, Sequence

from streamer.core.flows.common import NAN
from streamer.core.realized import TRADING_DAYS_PER_YEAR

__all__ = ["DEFAULT_CONFIG_PATH", "ConfigError", "VolFamily", "PathScenario", "VolControlConfig",
           "RiskParityConfig", "CTAConfig", "LevFund", "LevETFConfig", "DealerConfig", "FlowConfig"]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "flows.toml"


class ConfigError(ValueError):
    """An invalid flows config; ``where`` names the section and field."""

    retriable = False

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail



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
        a = self.implied_vol_scale * vix / 100.0 / math.sqrt(TRADING_DAYS_PER_YEAR) if vix > 0 else NAN
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
    """One daily-reset leveraged or inverse fund on its own underlying.

    ``index`` is the fund's group (signal ``flow_leveraged_etf_<group>_usd``: SPX, NDX, SOX, SINGLE).
    ``underlyings`` are the price symbols of its benchmark, preferred first (e.g. NDX then QQQ): the
    first one with a price drives the fund; without any, its return is proxied as beta x SPX.
    ``aum_history`` holds (ISO date, AUM $, source key) anchors: AUM is interpolated linearly between
    anchors and held flat outside them; 0 before ``inception``. ``aum_usd`` is the AUM at the config's
    ``aum_asof`` date (the reference size).
    """

    ticker: str
    index: str
    leverage: float
    aum_usd: float
    underlyings: tuple[str, ...] = ("SPX",)
    aum_history: tuple[tuple[str, float, str], ...] = ()
    inception: str = ""

    def aum_on(self, date: str | None) -> float:
        """AUM ($) on ISO ``date`` (None: the reference ``aum_usd``).

        >>> f = LevFund("X", "NDX", 3.0, 2e9, ("NDX",), (("2020-01-01", 1e9, "a"), ("2020-01-11", 2e9, "b")),
        ...             "2019-06-01")
        >>> f.aum_on("2019-01-01"), f.aum_on("2019-07-01"), f.aum_on("2020-01-06"), f.aum_on("2021-01-01")
        (0.0, 1000000000.0, 1500000000.0, 2000000000.0)
        """
        if date is None:
            return self.aum_usd
        if self.inception and date < self.inception:
            return 0.0
        h = self.aum_history
        if not h:
            return self.aum_usd
        if date <= h[0][0]:
            return h[0][1]
        if date >= h[-1][0]:
            return h[-1][1]
        i = bisect.bisect_right([a[0] for a in h], date)
        (d0, a0, _), (d1, a1, _) = h[i - 1], h[i]
        x0, x1, x = (_date.fromisoformat(d).toordinal() for d in (d0, d1, date))
        return a0 + (a1 - a0) * (x - x0) / (x1 - x0)


@dataclass(slots=True, frozen=True)
class LevETFConfig:
    funds: tuple[LevFund, ...]
    beta_to_spx: tuple[tuple[str, float], ...]     # proxy beta per underlying symbol (first of each fund)
    aum_asof: str
    aum_source: str
    aum_sources: tuple[tuple[str, str], ...] = ()  # source key -> description of each AUM anchor

    def proxy_beta(self, fund: LevFund) -> float:
        """Beta to SPX used when none of the fund's underlyings has a price (its first underlying's)."""
        return dict(self.beta_to_spx)[fund.underlyings[0]]

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every underlying price symbol the funds read besides SPX (the stream inputs to subscribe)."""
        return tuple(dict.fromkeys(s for f in self.funds for s in f.underlyings if s != "SPX"))


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
        lec = _leveraged_etf_config(r.section("leveraged_etf"))
        de = r.section("dealer")
        dc = DealerConfig(de.nonneg("charm_horizon_days"))
        de.done()
        cfg = cls(VolControlConfig(fams, scens, horizons, base, reproject_s), rpc, ctc, lec, dc,
                  vh.pos_int("rank_window_days"), vh.pos_int("min_history_days"))
        vh.done(), r.done()
        return cfg


def _leveraged_etf_config(le: _Reader) -> LevETFConfig:
    """[leveraged_etf]: funds with their underlyings and dated AUM anchors, proxy betas, AUM sources."""
    betas_r = le.section("beta_to_spx")
    betas = tuple((k, betas_r.num(k)) for k in betas_r.keys())
    src_r = le.section("aum_sources")
    sources = tuple((k, src_r.str(k)) for k in src_r.keys())
    asof = le.str("aum_asof")
    funds = []
    for f in le.table_list("funds"):
        where = f"leveraged_etf.funds.{f.d.get('ticker', '?')}"
        unds = tuple(f.str_list("underlying"))
        if unds[0] not in dict(betas):
            raise ConfigError(where, f"underlying {unds[0]!r} has no beta_to_spx (the proxy without its price)")
        hist = []
        for row in (f.array("aum_history") if "aum_history" in f.d else []):
            if (not isinstance(row, list) or len(row) != 3 or not isinstance(row[0], str)
                    or isinstance(row[1], bool) or not isinstance(row[1], (int, float)) or not row[1] >= 0
                    or row[2] not in dict(sources)):
                raise ConfigError(where + ".aum_history",
                                  f"expected [ISO date, AUM >= 0, a key of aum_sources], got {row!r}")
            _iso(where + ".aum_history", row[0])
            hist.append((row[0], float(row[1]), row[2]))
        hist.sort()
        inception = _iso(where + ".inception", f.str("inception")) if "inception" in f.d else ""
        fund = LevFund(f.str("ticker"), f.str("index"), f.num("leverage"), 0.0, unds, tuple(hist), inception)
        funds.append(replace(fund, aum_usd=fund.aum_on(asof)) if hist else replace(fund, aum_usd=f.nonneg("aum_usd")))
        f.done()
    cfg = LevETFConfig(tuple(funds), betas, asof, le.str("aum_source"), sources)
    betas_r.done(), src_r.done(), le.done()
    return cfg


def _iso(where: str, s: str) -> str:
    try:
        _date.fromisoformat(s)
    except ValueError:
        raise ConfigError(where, f"expected an ISO date, got {s!r}") from None
    return s


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

    def array(self, k: str) -> list[Any]:
        v = self._get(k)
        if not isinstance(v, list) or not v:
            raise ConfigError(self._at(k), f"expected a non-empty array, got {v!r}")
        return v

    def str_list(self, k: str) -> list[str]:
        v = self._get(k)
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v or any(not isinstance(x, str) or not x for x in v):
            raise ConfigError(self._at(k), f"expected a string or a non-empty list of strings, got {v!r}")
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
