"""Deterministic (seeded) market-scenario simulator: SPX/VIX index ticks, the leveraged funds'
underlyings (NDX, QQQ, SOXX, SMH, NVDA, TSLA, MSTR, COIN), SPX option quotes and open interest, as the
time-ordered input messages of the topic contract (pure Python + numpy, no Kafka).

Model, step by step (each choice documented where it is made):

* **Calendar**: real NYSE session dates, 09:30-16:00 America/New_York (zoneinfo). Expiries listed on
  a session date: the next ``n_dailies`` trading days (PM-settled SPXW, 0DTE included), every Friday
  out to ``weekly_days`` (SPXW, PM), and the third-Friday standard monthlies out to ``monthly_days``
  (root SPX, AM-settled at 09:30 ET). On a third Friday inside the weekly window both the AM SPX and
  the PM SPXW series are listed, as on the exchange. Settlement instants come from
  :func:`streamer.cboe_csv.settlement_ts_ns` (PM series settle at 13:00 on early-close days).
* **Spot**: a Brownian bridge in log space from the session's open to its close (both scenario
  parameters, so closes are exact and independent of the seed), sampled on a 1-second grid.
* **Variance term structure**: at every instant the scenario gives three published index levels
  (VIX9D, VIX, VIX3M), interpolated open→close in log space plus seeded noise anticorrelated with the
  spot bridge (spot-vol beta). They fix the model's *variance-swap* total variance V(T) at 9, 30 and 93
  calendar days; V is piecewise linear in T through those anchors after removing scheduled event
  jumps (election night, FOMC), which are added back as a step at the event instant. The index ticks
  published are exactly these anchor levels, so they are what a Cboe-method computation on the chain
  should give (up to strike discreteness, two-zero-bid truncation and bid/ask rounding).
* **Leveraged funds' underlyings** (:data:`FUND_UNDERLYINGS`, the fund table's benchmarks in
  streamer/config/flows.toml): each session specifies their real open and close
  (``SessionSpec.underlyings``, from ../shared/data/equities: 2024-11-06 TSLA +14.75%, COIN +31.11%,
  NVDA +4.07%, QQQ +2.72%, NDX +2.74%, SOXX +2.92%), so the overnight gap and the day's return are
  the market's. Intraday each is a log Brownian bridge from its open to its close whose noise is
  ``beta`` x the SPX bridge's plus its own (:data:`UNDERLYING_MODELS`, measured on 2021-2025 daily
  returns; QQQ follows NDX and SMH follows SOXX with a small tracking noise). Published as index
  ticks keyed and addressed like VIX: ``IndexTick(symbol="NDX", underlying="SPX")`` with Kafka key
  "SPX", because their consumer is the SPX engine's flow book (the leveraged-ETF close flow), and a
  key routes a message to one partition, hence one engine.
* **Smile**: SSVI (Gatheral & Jacquier 2014, "Arbitrage-free SVI volatility surfaces", eq. 4.1)
  with power-law φ(θ) = η θ^-γ (1+θ)^(γ-1): total variance w(k) = θ/2 (1 + ρφk + sqrt((φk+ρ)² + 1-ρ²)),
  k = ln(K/F). With γ = 1/2 the skew scales like 1/sqrt(T) and the surface has no static arbitrage
  when η(1+|ρ|) ≤ 2 and θ(T) increases. The ATM total variance θ of each expiry is the one whose SSVI
  slice has variance-swap value V(T) (a one-dimensional monotone inversion through a cached table,
  since the slice's var-swap value depends on θ only).
* **Quotes**: Black-Scholes-Merton model prices (:func:`streamer.core.bs.price`, constant r and q),
  spread = min(0.05 + 0.025 p, 0.5 + 0.004 p) index points around the model price p, bid rounded
  down and ask up to the SPX tick (0.05 below 3.00, 0.10 from 3.00). Far-OTM options worth less
  than ~0.075 get a zero bid and a 0.05 ask, so the Cboe two-zero-bid cut-off is met in both wings.
  Sizes are seeded, larger near the money; a zero bid has size 0.
* **Open interest**: one OpenInterest per listed contract at each session open: more puts than calls,
  concentrated at round strikes (100s ≫ 50s ≫ 25s), puts skewed below spot, monthlies largest; a
  per-contract seeded lognormal factor that persists from one session to the next.
* **Warm-up history** (:func:`history`, :class:`HistoryModel`): before the sessions, one official
  close (a ``DailyClose``) per index symbol on each of the ``history_days`` (default 800) NYSE trading days before
  day 1, at 16:00 ET (13:00 on early-close days), so live flow models start with their daily
  windows full (vol-control 20-60 days, CTA 120-day MA and 12-month momentum, the 756-change VIX
  rank). Synthetic and seeded: skewed mean-reverting log-VIX with spikes and a leverage
  correlation, SPX with VIX-driven stochastic vol, VIX9D/VIX3M from a level-dependent term
  structure; pinned so the last close equals day 1's open levels. The funds' underlyings get
  closes too (:func:`underlying_history`: ``beta`` x the prelude's SPX return plus their own daily
  noise, pinned to day 1's open), published *before* that day's SPX and VIX closes, so that a driver
  that hands the flow book a session's closes when SPX and VIX are both in already has them.
  Prelude events carry ``SimEvent.history`` (:func:`is_history`); the sessions do not depend on it.

Every message is a :mod:`streamer.schemas` dataclass; events are yielded in non-decreasing
``msg.ts_ns`` (at equal times: open interest, then index ticks — SPX and the vol indices, then the
funds' underlyings —, then quotes; the prelude first, each day's underlyings before its SPX and VIX).

>>> evs = list(generate("calm", seed=1, preset="fast"))
>>> len(evs) == count("calm", preset="fast")
True
>>> all(a.msg.ts_ns <= b.msg.ts_ns for a, b in zip(evs, evs[1:]))
True
>>> {e.kind for e in evs} == {"daily_close", "index_tick", "option_quote", "open_interest"}
True
>>> sorted({e.msg.symbol for e in evs if e.kind == "index_tick"}) == sorted(INDEX_SYMBOLS + FUND_UNDERLYINGS)
True
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from streamer import schemas
from streamer.cboe_csv import settlement_ts_ns
from streamer.codecs import dumps
from streamer.core import bs
from streamer.core.calendar import is_early_close, is_trading_day, nth_weekday, utc_ns
from streamer.schemas import DailyClose, IndexTick, OpenInterest, OptionQuote

NY = ZoneInfo("America/New_York")
NS = 1_000_000_000
YEAR_NS = 365 * 86_400 * NS  # calendar-year convention, as the Cboe VIX (525,600 minutes)
SESSION_S = 6 * 3600 + 1800  # 09:30-16:00 ET
UNDERLYING = "SPX"
INDEX_SYMBOLS = ("SPX", "VIX", "VIX9D", "VIX3M")
# horizons (calendar days) of the published vol indices
HORIZON_DAYS = {"VIX9D": 9.0, "VIX": 30.0, "VIX3M": 93.0}
#: the leveraged funds' underlyings the scenarios publish: every symbol of the fund table
#: (FlowConfig.default().leveraged_etf.symbols; a unit test keeps the two equal)
FUND_UNDERLYINGS = ("NDX", "QQQ", "SOXX", "SMH", "NVDA", "TSLA", "MSTR", "COIN")


@dataclass(slots=True, frozen=True)
class UnderlyingModel:
    """How a fund's underlying moves around SPX (log returns): ``beta`` x SPX's plus its own noise of
    ``idio_day_vol`` (1-day sd, decimal), or, with ``follows``, that symbol's whole move plus
    ``idio_day_vol`` of tracking noise (an ETF and its index, two ETFs on one sector)."""

    beta: float
    idio_day_vol: float
    follows: str = ""


#: OLS beta of daily log returns on SPX's and the residual sd, 2021-01-04..2025-12-31 (COIN from its
#: 2021-04-14 listing), ../shared/data/equities/<symbol>_daily.csv vs the SPX file; QQQ - NDX and
#: SMH - SOXX: sd of the daily return difference (corr 0.9994 and 0.988). Used for the intraday
#: noise (on top of each session's real open and close) and the warm-up closes.
UNDERLYING_MODELS: dict[str, UnderlyingModel] = {
    "NDX": UnderlyingModel(1.28, 0.0046),
    "QQQ": UnderlyingModel(1.0, 0.0005, follows="NDX"),
    "SOXX": UnderlyingModel(1.74, 0.0126),
    "SMH": UnderlyingModel(1.0, 0.0035, follows="SOXX"),
    "NVDA": UnderlyingModel(2.16, 0.0231),
    "TSLA": UnderlyingModel(2.04, 0.0312),
    "MSTR": UnderlyingModel(2.65, 0.0522),
    "COIN": UnderlyingModel(2.67, 0.0455),
}

# ------------------------------------------------------------------------------------------ types


@dataclass(slots=True, frozen=True)
class SessionSpec:
    """One trading session's anchors: open and close levels (index points / vol points).

    ``spx_day_vol`` is the scale of the intraday spot bridge as a fraction of spot over the whole
    session (a 1-day standard deviation; ~0.008 is a normal day). ``underlyings``: (symbol, open,
    close) of the leveraged funds' underlyings that session (prices; split-adjusted).
    """

    date: dt.date
    spx: tuple[float, float]
    vix9d: tuple[float, float]
    vix: tuple[float, float]
    vix3m: tuple[float, float]
    spx_day_vol: float = 0.007
    underlyings: tuple[tuple[str, float, float], ...] = ()

    def underlying(self, symbol: str) -> tuple[float, float] | None:
        """(open, close) of a fund underlying that session, None if the scenario has none."""
        return next(((o, c) for s, o, c in self.underlyings if s == symbol), None)


@dataclass(slots=True, frozen=True)
class VolEvent:
    """A scheduled jump in total variance (decimal², e.g. 0.00045 ≈ a 2.1% one-sd move) at ``when``."""

    when: dt.datetime
    variance: float
    label: str

    @property
    def ts_ns(self) -> int:
        """The event instant in UTC ns."""
        return utc_ns(self.when)


@dataclass(slots=True, frozen=True)
class Scenario:
    """A named market scenario: sessions, scheduled events and surface/dynamics parameters.

    ``rate``/``div_yield``: continuous annual decimals (r ≈ 3M T-bill, q ≈ SPX dividend yield).
    ``rho``, ``eta``, ``gamma``: SSVI skew parameters. ``spot_vol_beta``: d ln(vol index) per
    d ln(SPX) on the intraday noise (negative correlation), ``vol_of_vol``: 1-day sd of the
    independent log-noise of the vol indices.
    """

    name: str
    description: str
    sessions: tuple[SessionSpec, ...]
    events: tuple[VolEvent, ...] = ()
    rate: float = 0.045
    div_yield: float = 0.013
    rho: float = -0.7
    eta: float = 0.85
    gamma: float = 0.5
    spot_vol_beta: float = 4.0
    vol_of_vol: float = 0.03


@dataclass(slots=True, frozen=True)
class SimConfig:
    """Size/speed controls. Times in seconds from the session open; days are calendar days.

    ``max_strikes``: per expiry, 0 = every listed strike, else thin to about this many (denser near
    the money, both wings kept). ``n_dailies``: daily SPXW expiries listed (0DTE counts as one).
    ``history_days``: trading days of warm-up daily closes emitted before the sessions (0 = none;
    see :func:`history`). ``underlyings``: the funds' underlyings to publish (ticks and warm-up
    closes) among those the scenario specifies; () = none.
    """

    tick_every_s: float = 10.0
    chain_every_s: float = 1800.0
    max_strikes: int = 0
    n_dailies: int = 3
    weekly_days: int = 45
    monthly_days: int = 100
    symbols: tuple[str, ...] = INDEX_SYMBOLS
    # > 756 one-day VIX changes (the 3-year rank window) + the 252-day CTA momentum, with margin
    history_days: int = 800
    underlyings: tuple[str, ...] = FUND_UNDERLYINGS


PRESETS: dict[str, SimConfig] = {
    # ~83k messages for the two-session scenarios (see count(); 52k without the funds' underlyings)
    "demo": SimConfig(tick_every_s=15.0, chain_every_s=1800.0, max_strikes=50),
    # a few thousand messages, for unit tests
    "fast": SimConfig(tick_every_s=120.0, chain_every_s=7200.0, max_strikes=24, n_dailies=2,
                      monthly_days=60),
    # every listed strike, a chain snapshot every 5 minutes: large (~10^6 messages)
    "full": SimConfig(tick_every_s=1.0, chain_every_s=300.0, max_strikes=0),
}


@dataclass(slots=True)
class SimEvent:
    """One simulated input message: ``kind`` ∈ {"index_tick", "daily_close", "option_quote",
    "open_interest"}, ``key`` the Kafka key (the underlying, "SPX", also for VIX and the funds'
    underlyings), ``msg`` the :mod:`streamer.schemas` dataclass, ``history`` True for the warm-up
    prelude's daily closes (not part of the message itself)."""

    kind: str
    key: str
    msg: IndexTick | DailyClose | OptionQuote | OpenInterest
    history: bool = False


def _et(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY)


# The funds' underlyings per session: (symbol, open, close), the real prints of that date, rounded to
# the cent, from ../shared/data/equities: NDX, QQQ, SOXX, SMH from the raw (not dividend-adjusted)
# *_daily_ohlc.csv files, NVDA, TSLA, COIN from the split/dividend-adjusted OHLC files (within 0.04% of
# the traded prints; no ex-date inside a scenario, so returns are exact). MSTR has no OHLC there: its
# close is mstr_daily.csv's (split-adjusted: MSTR split 10:1 on 2024-08-08) and its open is ASSUMED at
# the fraction of the day's close-to-close log move that COIN, the other bitcoin-driven name, gapped
# at its open. Close-to-close returns of day 2: election 2024-11-06 NDX +2.74%, QQQ +2.72%, SOXX
# +2.92%, SMH +2.62%, NVDA +4.07%, TSLA +14.75%, MSTR +13.17%, COIN +31.11%; calm 2024-12-04 NDX
# +1.24%, SOXX +1.32%, NVDA +3.48%, TSLA +1.85%, MSTR +8.72%, COIN +6.98% (ordinary days for those
# names: the calm scenario's leveraged-ETF close flow stays far below the trigger, a test checks);
# selloff 2024-08-05 NDX -2.96%, NVDA -6.36%, MSTR -9.60%, COIN -7.32%.
_ELECTION_UNDERLYINGS = (
    (("NDX", 20042.93, 20227.46), ("QQQ", 487.61, 492.21), ("SOXX", 219.41, 221.87), ("SMH", 245.25, 248.31),
     ("NVDA", 137.40, 139.86), ("TSLA", 247.34, 251.44), ("MSTR", 222.56, 227.80), ("COIN", 185.59, 193.96)),
    (("NDX", 20571.29, 20781.33), ("QQQ", 500.56, 505.58), ("SOXX", 226.36, 228.34), ("SMH", 252.29, 254.81),
     ("NVDA", 142.91, 145.56), ("TSLA", 284.67, 288.53), ("MSTR", 242.03, 257.81), ("COIN", 221.48, 254.31)),
)
_CALM_UNDERLYINGS = (
    (("NDX", 21106.51, 21229.32), ("QQQ", 513.95, 516.87), ("SOXX", 219.65, 219.81), ("SMH", 246.93, 248.42),
     ("NVDA", 138.21, 140.21), ("TSLA", 351.80, 351.42), ("MSTR", 386.07, 373.43), ("COIN", 296.78, 309.35)),
    (("NDX", 21361.81, 21492.36), ("QQQ", 520.32, 523.26), ("SOXX", 224.15, 222.72), ("SMH", 252.23, 252.63),
     ("NVDA", 141.95, 145.09), ("TSLA", 353.00, 357.93), ("MSTR", 377.40, 406.00), ("COIN", 312.00, 330.94)),
)
_SELLOFF_UNDERLYINGS = (
    (("NDX", 18494.24, 18440.85), ("QQQ", 450.89, 448.75), ("SOXX", 209.06, 206.81), ("SMH", 219.92, 218.43),
     ("NVDA", 103.72, 107.22), ("TSLA", 214.88, 207.67), ("MSTR", 151.56, 144.80), ("COIN", 213.12, 204.44)),
    (("NDX", 17444.40, 17895.16), ("QQQ", 424.71, 435.37), ("SOXX", 193.09, 203.16), ("SMH", 200.98, 213.31),
     ("NVDA", 92.02, 100.41), ("TSLA", 185.22, 198.88), ("MSTR", 106.34, 130.90), ("COIN", 162.01, 189.47)),
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (
        Scenario(
            name="election-2024",
            description=(
                "US election 2024-11-05/06: elevated pre-event surface with an election-night "
                "premium in short expiries (VIX9D 24.7 > VIX 20.5 > VIX3M 20.2 at the close, SPX "
                "5722 → 5782.76); overnight gap to ~5865, day 2 drifts to 5929.04 (+2.53%) while the "
                "surface collapses (VIX 16.27, VIX9D 15.85, VIX3M 17.67): a systematic-buy set-up."),
            sessions=(
                SessionSpec(dt.date(2024, 11, 5), spx=(5722.43, 5782.76), vix9d=(25.6, 24.70),
                            vix=(21.6, 20.49), vix3m=(20.6, 20.19), spx_day_vol=0.007,
                            underlyings=_ELECTION_UNDERLYINGS[0]),
                SessionSpec(dt.date(2024, 11, 6), spx=(5864.89, 5929.04), vix9d=(16.9, 15.85),
                            vix=(17.1, 16.27), vix3m=(18.2, 17.67), spx_day_vol=0.006,
                            underlyings=_ELECTION_UNDERLYINGS[1]),
            ),
            events=(
                VolEvent(_et(2024, 11, 6, 0, 0), 0.00045, "election night"),
                VolEvent(_et(2024, 11, 7, 14, 0), 0.00006, "FOMC"),
            ),
        ),
        Scenario(
            name="calm",
            description=(
                "Two ordinary sessions on 2024-12-03/04 (levels near the real ones, VIX nudged up to "
                "~14.5): mild contango, SPX within ±0.5%, one-day VIX change well inside ±5%: "
                "must not trigger."),
            sessions=(
                SessionSpec(dt.date(2024, 12, 3), spx=(6042.0, 6049.88), vix9d=(13.3, 13.4),
                            vix=(14.5, 14.6), vix3m=(16.4, 16.45), spx_day_vol=0.005,
                            underlyings=_CALM_UNDERLYINGS[0]),
                SessionSpec(dt.date(2024, 12, 4), spx=(6055.0, 6074.0), vix9d=(13.6, 13.8),
                            vix=(14.7, 14.85), vix3m=(16.5, 16.6), spx_day_vol=0.005,
                            underlyings=_CALM_UNDERLYINGS[1]),
            ),
        ),
        Scenario(
            name="selloff",
            description=(
                "Vol spike 2024-08-02 → 2024-08-05 (approximate levels): SPX 5376 → 5346.56, gap down "
                "to ~5151, close 5186.33 (-3.0%); VIX 23.39 → 38.57 with a steeply inverted term "
                "structure. The opposite of a buy trigger."),
            sessions=(
                SessionSpec(dt.date(2024, 8, 2), spx=(5376.63, 5346.56), vix9d=(22.5, 26.9),
                            vix=(20.0, 23.39), vix3m=(19.5, 20.9), spx_day_vol=0.010,
                            underlyings=_SELLOFF_UNDERLYINGS[0]),
                SessionSpec(dt.date(2024, 8, 5), spx=(5151.14, 5186.33), vix9d=(52.0, 41.0),
                            vix=(45.0, 38.57), vix3m=(30.0, 28.0), spx_day_vol=0.014,
                            underlyings=_SELLOFF_UNDERLYINGS[1]),
            ),
        ),
    )
}

# ------------------------------------------------------------------------------------------ calendar



def session_bounds_ns(day: dt.date) -> tuple[int, int]:
    """(open, close) of the regular session on ``day``: 09:30 and 16:00 ET, in UTC ns.

    >>> o, c = session_bounds_ns(dt.date(2024, 11, 6))
    >>> (c - o) // NS, dt.datetime.fromtimestamp(o // NS, tz=dt.timezone.utc).hour
    (23400, 14)
    """
    return (utc_ns(dt.datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY)),
            utc_ns(dt.datetime(day.year, day.month, day.day, 16, 0, tzinfo=NY)))


@dataclass(slots=True, frozen=True)
class Expiry:
    """A listed expiration: settlement date, root ("SPX" AM-settled, "SPXW" PM) and instant (UTC ns)."""

    date: dt.date
    root: str
    ts_ns: int


def list_expiries(day: dt.date, cfg: SimConfig) -> list[Expiry]:
    """Expirations listed on session ``day`` (see the module docstring), sorted by settlement instant.

    Friday holidays move the weekly/monthly expiry to the Thursday before.

    >>> [(e.date.isoformat(), e.root) for e in list_expiries(dt.date(2024, 11, 5), PRESETS["fast"])][:4]
    [('2024-11-05', 'SPXW'), ('2024-11-06', 'SPXW'), ('2024-11-08', 'SPXW'), ('2024-11-15', 'SPX')]
    """
    out: set[tuple[dt.date, str]] = set()
    d, n = day, 0
    while n < cfg.n_dailies:
        if is_trading_day(d):
            out.add((d, "SPXW"))
            n += 1
        d += dt.timedelta(days=1)

    def prev_trading(x: dt.date) -> dt.date:
        while not is_trading_day(x):
            x -= dt.timedelta(days=1)
        return x

    end = day + dt.timedelta(days=max(cfg.weekly_days, cfg.monthly_days))
    fri = day + dt.timedelta(days=(4 - day.weekday()) % 7)
    while fri <= end:
        third = nth_weekday(fri.year, fri.month, 4, 3) == fri
        x = prev_trading(fri)
        if x >= day:
            if (fri - day).days <= cfg.weekly_days:
                out.add((x, "SPXW"))
            if third and (fri - day).days <= cfg.monthly_days:
                out.add((x, "SPX"))
        fri += dt.timedelta(days=7)
    exps = [Expiry(d_, r, settlement_ts_ns(d_, r)) for d_, r in out]
    o, _ = session_bounds_ns(day)
    return sorted((e for e in exps if e.ts_ns > o), key=lambda e: (e.ts_ns, e.root))


# ------------------------------------------------------------------------------------------ strikes

_TIERS = ((0.05, 5.0), (0.12, 25.0), (0.25, 50.0), (math.inf, 100.0))
PUT_WING = 0.80  # deepest put strike listed, fraction below spot
CALL_WING = 0.35  # highest call strike listed, fraction above spot
WORTHLESS = 0.01  # model price (index points) beyond which a wing is worthless
WING_MARGIN = 0.06  # strikes listed beyond the worthless point, fraction of spot


def strike_grid(spot: float, lo: float, hi: float) -> np.ndarray:
    """Exchange-style strikes in [lo, hi], index points, sorted: 5-point spacing within ±5% of
    spot, 25 within ±12%, 50 within ±25%, 100 beyond.

    >>> k = strike_grid(5800.0, 4000.0, 7000.0)
    >>> float(np.diff(k[(k > 5700) & (k < 5900)]).max()), float(np.diff(k[k < 4500]).max())
    (5.0, 100.0)
    """
    ks: set[float] = set()
    inner = 0.0
    for band, step in _TIERS:
        a = max(lo, spot * (1.0 - band))
        b = min(hi, spot * (1.0 + band))
        grid = np.arange(math.ceil(a / step) * step, b + 1e-9, step)
        m = np.abs(grid / spot - 1.0)
        ks.update(grid[m >= inner - 1e-12].tolist())
        inner = band
    return np.array(sorted(ks))


def thin_strikes(k: np.ndarray, spot: float, scale: float, max_strikes: int) -> np.ndarray:
    """About ``max_strikes`` of the sorted strikes ``k``, uniform in asinh(z/1.5) with
    z = ln(K/spot)/scale: dense near the money, sparse in the wings. The two outermost strikes of
    each wing are always kept (so a listing that reaches zero bids still shows two of them), so
    the result may have up to ``max_strikes + 2``. 0 = keep all.

    >>> len(thin_strikes(strike_grid(5800.0, 4000.0, 7000.0), 5800.0, 0.06, 40)) <= 42
    True
    """
    if not max_strikes or len(k) <= max_strikes:
        return k
    u = np.arcsinh(np.log(k / spot) / scale / 1.5)
    targets = np.linspace(u[0], u[-1], max_strikes)
    pick = np.abs(u[:, None] - targets[None, :]).argmin(axis=0)
    return k[np.unique(np.concatenate([pick, [0, 1, len(k) - 2, len(k) - 1]]))]


# ------------------------------------------------------------------------------------------ surface


def ssvi_total_variance(k: np.ndarray, theta: np.ndarray | float, rho: float, eta: float,
                        gamma: float) -> np.ndarray:
    """SSVI total implied variance w(k) (decimal², i.e. σ²T) at log-moneyness k = ln(K/F).

    >>> float(ssvi_total_variance(np.array(0.0), 0.04, -0.7, 1.0, 0.5))  # ATM: w = θ
    0.04
    """
    theta = np.asarray(theta, dtype=np.float64)
    phi = eta * theta ** (-gamma) * (1.0 + theta) ** (gamma - 1.0)
    x = phi * k
    return 0.5 * theta * (1.0 + rho * x + np.sqrt((x + rho) ** 2 + 1.0 - rho * rho))


@lru_cache(maxsize=16)
def _varswap_table(rho: float, eta: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(ln θ, ln V) on a grid: V = the variance-swap total variance of the SSVI slice with ATM θ.

    V = 2 ∫ Q(K)/K² dK with Q the undiscounted OTM price for a unit forward (the Cboe integrand).
    """
    thetas = np.geomspace(1e-9, 3.0, 200)
    u = np.linspace(-30.0, 20.0, 4001)
    out = np.empty_like(thetas)
    for i, th in enumerate(thetas):
        k = math.sqrt(th) * u
        w = ssvi_total_variance(k, th, rho, eta, gamma)
        q = bs.price(1.0, np.exp(k), 1.0, 0.0, 0.0, np.sqrt(w), k >= 0.0)
        f = q * np.exp(-k)
        out[i] = 2.0 * float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(k)))
    return np.log(thetas), np.log(out)


def atm_theta(v: np.ndarray, sc: Scenario) -> np.ndarray:
    """ATM total variance θ whose SSVI slice has variance-swap total variance ``v`` (decimal²).

    >>> sc = SCENARIOS["calm"]
    >>> th = atm_theta(np.array([0.2 ** 2 * 30 / 365]), sc)
    >>> round(float(th[0] / (0.2 ** 2 * 30 / 365)), 2)  # var swap above ATM variance (skew): VIX ≈ 1.14 ATM vol
    0.77
    """
    lt, lv = _varswap_table(sc.rho, sc.eta, sc.gamma)
    return np.exp(np.interp(np.log(np.maximum(v, 1e-12)), lv, lt))


def variance_curve(now_ns: int, levels: dict[str, float], sc: Scenario
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """V(T): variance-swap total variance (decimal²) for T in years, as a vectorized function.

    ``levels``: published index levels in vol points for VIX9D, VIX and VIX3M at ``now_ns``.
    Piecewise linear through the ex-event anchors, flat forward variance beyond 93 days, plus the
    scheduled event jumps after ``now_ns``.
    """
    ev = [((e.ts_ns - now_ns) / YEAR_NS, e.variance) for e in sc.events if e.ts_ns > now_ns]

    def jumps(t: np.ndarray) -> np.ndarray:
        out = np.zeros_like(t)
        for te, var in ev:
            out += np.where(t >= te, var, 0.0)
        return out

    ts = np.array([HORIZON_DAYS[s] / 365.0 for s in ("VIX9D", "VIX", "VIX3M")])
    tot = np.array([(levels[s] / 100.0) ** 2 * HORIZON_DAYS[s] / 365.0 for s in ("VIX9D", "VIX", "VIX3M")])
    x = tot - jumps(ts)
    xs = np.concatenate([[0.0], x])
    tt = np.concatenate([[0.0], ts])
    if np.any(np.diff(xs) <= 0.0):
        raise ValueError(f"negative forward variance at {now_ns}: levels {levels}, events {ev}")
    slope = (xs[-1] - xs[-2]) / (tt[-1] - tt[-2])

    def v(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        base = np.where(t <= tt[-1], np.interp(t, tt, xs), xs[-1] + slope * (t - tt[-1]))
        return base + jumps(t)

    return v


# ------------------------------------------------------------------------------------------ quotes


def quote_from_price(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bid/ask (index points) around model prices ``p``: see the module docstring.

    >>> b, a = quote_from_price(np.array([0.01, 0.5, 2.98, 12.0, 150.0]))
    >>> b.tolist(), a.tolist()
    ([0.0, 0.45, 2.9, 11.8, 149.4], [0.05, 0.55, 3.1, 12.2, 150.6])
    """
    p = np.maximum(np.asarray(p, dtype=np.float64), 0.0)
    half = 0.5 * np.minimum(0.05 + 0.025 * p, 0.5 + 0.004 * p)
    rb, ra = p - half, p + half
    tb = np.where(rb < 3.0, 0.05, 0.10)
    ta = np.where(ra < 3.0, 0.05, 0.10)
    bid = np.maximum(np.floor(rb / tb + 1e-9) * tb, 0.0)
    ask = np.maximum(np.ceil(ra / ta - 1e-9) * ta, 0.05)
    ask = np.where(ask <= bid, bid + ta, ask)
    return np.round(bid, 2), np.round(ask, 2)


# ------------------------------------------------------------------------------------------ paths


def _rng(seed: int, name: str, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(name.encode()), *key])


def _bridge(rng: np.random.Generator, n: int) -> np.ndarray:
    """Standard Brownian bridge on n+1 points of [0, 1] (variance f(1-f))."""
    w = np.concatenate([[0.0], np.cumsum(rng.standard_normal(n))]) / math.sqrt(n)
    return w - np.linspace(0.0, 1.0, n + 1) * w[-1]


@dataclass(slots=True)
class _Paths:
    spx: np.ndarray
    idx: dict[str, np.ndarray]   # the vol indices and the funds' underlyings


def _ordered(symbols: tuple[str, ...] | list[str]) -> list[str]:
    """``symbols`` with every ``follows`` leader before its follower (paths are built in this order)."""
    lead = [s for s in symbols if not UNDERLYING_MODELS[s].follows]
    return lead + [s for s in symbols if UNDERLYING_MODELS[s].follows]


def _underlying_paths(sc: Scenario, si: int, seed: int, b_spot: np.ndarray) -> dict[str, np.ndarray]:
    """Intraday paths of the session's fund underlyings on the 1-second grid: a log bridge from the
    real open to the real close, noise ``beta`` x the SPX bridge's (``b_spot``) plus its own bridge of
    ``idio_day_vol`` (a follower: its leader's noise plus its own). Each symbol draws from its own
    seeded stream, so the SPX/VIX paths and the other symbols do not depend on which are published."""
    ss = sc.sessions[si]
    f = np.linspace(0.0, 1.0, SESSION_S + 1)
    noise: dict[str, np.ndarray] = {}
    out = {}
    for sym in _ordered([s for s, _, _ in ss.underlyings]):
        m = UNDERLYING_MODELS[sym]
        own = _bridge(_rng(seed, f"{sc.name}/{sym}", si, 3), SESSION_S) * m.idio_day_vol
        lead = noise.get(m.follows) if m.follows else None
        noise[sym] = (lead if lead is not None else m.beta * b_spot) + own
        o, c = ss.underlying(sym)  # type: ignore[misc]
        lo, lc = math.log(o), math.log(c)
        out[sym] = np.exp(lo + f * (lc - lo) + noise[sym])
    return out


def _session_paths(sc: Scenario, si: int, seed: int) -> _Paths:
    ss = sc.sessions[si]
    rng = _rng(seed, sc.name, si, 1)
    f = np.linspace(0.0, 1.0, SESSION_S + 1)
    b_spot = _bridge(rng, SESSION_S) * ss.spx_day_vol
    lo, lc = math.log(ss.spx[0]), math.log(ss.spx[1])
    spx = np.exp(lo + f * (lc - lo) + b_spot)
    common = _bridge(rng, SESSION_S) * sc.vol_of_vol
    idx = {}
    betas = {"VIX9D": 1.4, "VIX": 1.0, "VIX3M": 0.6}
    for s in ("VIX9D", "VIX", "VIX3M"):
        o, c = getattr(ss, s.lower())
        own = _bridge(rng, SESSION_S) * sc.vol_of_vol * 0.3
        lv = math.log(o) + f * (math.log(c) - math.log(o))
        idx[s] = np.exp(lv + betas[s] * (-sc.spot_vol_beta * b_spot + common) + own)
    idx.update(_underlying_paths(sc, si, seed, b_spot))
    return _Paths(spx, idx)


# ------------------------------------------------------------------------------------------ history


@dataclass(slots=True, frozen=True)
class HistoryModel:
    """Parameters of the daily warm-up history (see :func:`history`). Daily units, log space.

    VIX: ``x = ln VIX`` follows a skewed, mean-reverting AR(1) with upward jumps,
    ``x_t = clip(x_{t-1} + kappa (ln vix_median - x_{t-1}) + s(xi_t) xi_t + J_t - c)``:

    * ``kappa`` 0.045/day: half-life ln 2 / kappa ≈ 15 trading days (VIX spikes fade in weeks).
    * ``xi = rho_spx_vix · z + sqrt(1 - rho²) · eta`` with ``z`` the Gaussian core of the same
      day's SPX shock: the leverage effect. ``rho_spx_vix`` −0.85 gives a realized daily
      corr(Δln VIX, SPX log return) of −0.5 to −0.78 (median −0.71) after the skew, jumps
      and SPX fat tails dilute it (2015-2024 closes: −0.72; 2021-08..2024-11: −0.73).
    * ``s(xi)`` = ``vol_up`` 0.065 for xi > 0, ``vol_down`` 0.042 for xi ≤ 0: VIX changes are
      right-skewed (it spikes up and bleeds down). A −10% day then happens ~3 times a year, a −15%
      day needs a ~3.5 sd shock at the median level and a −20% day (2024-11-06) beyond 5 sd.
      That is deliberately calmer on the downside than the data (2021-08..2024-11: 30 days
      ≤ −10%, 3 ≤ −15%, 1 ≤ −20%, 2024-08-06), so that the scenario's collapse is the outlier of
      its 3-year window, as the task asks.
      Realized sd of Δln VIX ≈ 0.05-0.08 a day (2021-08..2024-11 data: 0.069).
    * ``J_t``: a spike with probability ``jump_prob`` per day (3 a year), size exponential with
      mean ``jump_mean`` (+16% in VIX); ``c`` = (vol_up − vol_down)/sqrt(2π) + jump_prob · jump_mean
      compensates the skew and the jumps, so ln VIX reverts to ln ``vix_median`` (17; the 2015-2024
      median close was 16.3, 2021-08..2024-11 18.7; draws have a prelude median of 15-19).
    * clip to [``vix_floor``, ``vix_cap``] = [10, 55] (59 closes below 10 since 2009, all in
      2017-2018; the cap keeps a spike inside the unit tests' [9, 60] envelope).

    SPX: log return ``r_t = mu/252 - sigma_t²/2 + sigma_t eps_t`` with
    ``sigma_t = realized_over_implied · VIX_{t-1}/100/sqrt(252)``: stochastic vol tied to
    yesterday's VIX, 0.8 being the usual ratio of realized to implied vol (the variance risk
    premium). ``eps = z·w`` is Student-t with ``t_df`` 5 (a normal variance mixture scaled to unit
    variance): fat-tailed SPX days, while the VIX sees only the Gaussian ``z``. ``mu`` 7% a year.
    Realized SPX vol over an 800-day prelude comes out at 11.5-17.5% (median 14%; the data's
    2021-08..2024-11, with the 2022 bear market, 17.3%; realized/VIX there 0.80); the level 800
    days back is wherever the walk started (5%-95% of draws: 0.55-1.23 × the anchor).

    Term structure, regressions fitted on 2011-2024 Cboe closes (VIX9D, VIX, VIX3M; d = ln VIX
    minus its ``ts_ema_days`` 20-day EMA, the spike part; the level part is ``x - ln vix_median``):

    * ``ln(VIX9D/VIX) = ln 0.945 + 0.077 (x - ln 17) + 0.378 d + u9``, u9 AR(1) 0.835, innovation
      sd 0.044;
    * ``ln(VIX3M/VIX) = ln 1.124 - 0.122 (x - ln 17) - 0.315 d + u3m``, u3m AR(1) 0.962,
      innovation sd 0.013.

    So the curve is in contango when calm (VIX3M above VIX on ~99.6% of days with VIX < 16, data
    99.9%; VIX9D below on 85%, data 86%) and inverts in spikes rather than at any high level (days
    with d > 0.2: VIX9D above VIX 77%, data 90%; VIX3M below 54%, data 65%). Ratios are clipped to
    ``ratio9_range``/``ratio3m_range`` (the 2011-2024 extremes), inside which the 9/30/93-day
    total variances increase (no negative forward variance, the condition
    :func:`variance_curve` enforces).
    """

    vix_median: float = 17.0
    kappa: float = 0.045
    vol_up: float = 0.065
    vol_down: float = 0.042
    rho_spx_vix: float = -0.85
    jump_prob: float = 3.0 / 252.0
    jump_mean: float = 0.15
    vix_floor: float = 10.0
    vix_cap: float = 55.0
    realized_over_implied: float = 0.8
    mu: float = 0.07
    t_df: float = 5.0
    ts_ema_days: int = 20
    ratio9_at_median: float = 0.945
    beta9: float = 0.077
    dev9: float = 0.378
    phi9: float = 0.835
    sd9: float = 0.044
    ratio3m_at_median: float = 1.124
    beta3m: float = -0.122
    dev3m: float = -0.315
    phi3m: float = 0.962
    sd3m: float = 0.013
    ratio9_range: tuple[float, float] = (0.65, 1.60)
    ratio3m_range: tuple[float, float] = (0.72, 1.42)


HISTORY_MODEL = HistoryModel()

# acceptance envelope of a prelude draw (see history()): the calibration the unit tests check
HISTORY_VIX_RANGE = (9.0, 60.0)
HISTORY_MAX_VIX_DROP = -0.20      # no one-day VIX change at or below this
HISTORY_BIG_VIX_DROP = -0.15      # ... and at most HISTORY_MAX_BIG_DROPS changes at or below this
HISTORY_MAX_BIG_DROPS = 3
HISTORY_SPX_VOL_RANGE = (0.10, 0.25)  # annualized realized vol of SPX over the prelude
# ... and no prelude day meets the VIX/SPX leaves of the default "election_vol_collapse" rule
# (streamer/rules/default.toml): change ≤ −15% ranking ≤ 0.005 (fraction of the prior ≤ 756
# changes at or below it, FlowBook's convention, once 252 exist) on an SPX up day. The warm-up
# must not fire the trigger the scenarios are about.
HISTORY_RANK_WINDOW, HISTORY_RANK_MIN, HISTORY_RANK_MAX = 756, 252, 0.005
HISTORY_MAX_DRAWS = 64


@dataclass(slots=True, frozen=True)
class History:
    """A warm-up prelude: one close per trading day, oldest first, rounded as published (2 dp).

    ``close_ts_ns``: the close instant (16:00 ET, 13:00 on early-close days) in UTC ns;
    ``draws``: how many seeded draws were made before one passed the acceptance envelope.
    """

    dates: tuple[dt.date, ...]
    close_ts_ns: np.ndarray
    spx: np.ndarray
    vix: np.ndarray
    vix9d: np.ndarray
    vix3m: np.ndarray
    draws: int

    def levels(self, symbol: str) -> np.ndarray:
        """Closes of an index symbol ("SPX", "VIX", "VIX9D", "VIX3M")."""
        return {"SPX": self.spx, "VIX": self.vix, "VIX9D": self.vix9d, "VIX3M": self.vix3m}[symbol]


def close_ts_ns(day: dt.date) -> int:
    """The regular close of ``day`` in UTC ns: 16:00 ET, or 13:00 ET on NYSE early-close days.

    >>> close_ts_ns(dt.date(2024, 11, 29)) == utc_ns(_et(2024, 11, 29, 13, 0))
    True
    """
    hh = 13 if is_early_close(day) else 16
    return utc_ns(dt.datetime(day.year, day.month, day.day, hh, 0, tzinfo=NY))


def history_dates(first_session: dt.date, days: int) -> list[dt.date]:
    """The ``days`` NYSE trading days before ``first_session`` (simulator calendar), oldest first.

    >>> history_dates(dt.date(2024, 11, 5), 3)
    [datetime.date(2024, 10, 31), datetime.date(2024, 11, 1), datetime.date(2024, 11, 4)]
    """
    if days < 0:
        raise ValueError("history_days must be >= 0")
    out: list[dt.date] = []
    d = first_session
    while len(out) < days:
        d -= dt.timedelta(days=1)
        if is_trading_day(d):
            out.append(d)
    return out[::-1]


def _bridge_weights(n: int, phi: float) -> np.ndarray:
    """Weights w_0..w_{n-1} (w_0 = 0, w_{n-1} = 1) that pin an AR(1) with coefficient ``phi`` to its
    end value: E[x_t | x_{n-1}] moves by w_t × the end's move, w_t = sinh(k t)/sinh(k T),
    k = -ln phi, T = n - 1 (written with exponentials, no overflow)."""
    if n == 1:
        return np.ones(1)
    k = -math.log(phi)
    t = np.arange(n, dtype=np.float64)
    big_t = n - 1
    return np.exp(k * (t - big_t)) * (-np.expm1(-2.0 * k * t)) / (-math.expm1(-2.0 * k * big_t))


def _history_draw(rng: np.random.Generator, n: int, anchor: dict[str, float],
                  m: HistoryModel) -> dict[str, np.ndarray]:
    """One unrounded prelude path of ``n`` closes ending exactly at ``anchor`` (see HistoryModel)."""
    z = rng.standard_normal(n)
    # Student-t SPX shock as a normal variance mixture z·w (unit variance); the VIX couples to z,
    # so SPX gets fat tails without giving the VIX fat-tailed down days
    eps = z * np.sqrt((m.t_df - 2.0) / rng.chisquare(m.t_df, n))
    eta = rng.standard_normal(n)
    jumps = np.where(rng.random(n) < m.jump_prob, rng.exponential(m.jump_mean, n), 0.0)
    z9 = rng.standard_normal(n)
    z3 = rng.standard_normal(n)
    xi = m.rho_spx_vix * z + math.sqrt(1.0 - m.rho_spx_vix ** 2) * eta
    shock = np.where(xi > 0.0, m.vol_up, m.vol_down) * xi
    # compensator: E[s(xi) xi] = (vol_up - vol_down) E[xi+] (xi ~ unit normal), plus E[J]
    comp = (m.vol_up - m.vol_down) / math.sqrt(2.0 * math.pi) + m.jump_prob * m.jump_mean
    lm, lo, hi = math.log(m.vix_median), math.log(m.vix_floor), math.log(m.vix_cap)
    x = np.empty(n)
    x[0] = lm + rng.standard_normal() * m.vol_down / math.sqrt(2.0 * m.kappa)
    for t in range(1, n):
        x[t] = min(max(x[t - 1] + m.kappa * (lm - x[t - 1]) + shock[t] + jumps[t] - comp, lo), hi)
    x += (math.log(anchor["VIX"]) - x[-1]) * _bridge_weights(n, 1.0 - m.kappa)
    vix = np.exp(x)
    # SPX: stochastic vol from yesterday's VIX; first return unused (the level is rescaled anyway)
    sig = m.realized_over_implied * vix / 100.0 / math.sqrt(252.0)
    r = np.zeros(n)
    r[1:] = m.mu / 252.0 - 0.5 * sig[:-1] ** 2 + sig[:-1] * eps[1:]
    ls = np.cumsum(r)
    spx = anchor["SPX"] * np.exp(ls - ls[-1])
    # term structure: ratios from the level and the spike (x above its EMA) plus AR(1) noise,
    # pinned to the anchor's ratios
    a = 2.0 / (m.ts_ema_days + 1.0)
    ema = np.empty(n)
    ema[0] = x[0]
    for t in range(1, n):
        ema[t] = ema[t - 1] + a * (x[t] - ema[t - 1])
    out = {"SPX": spx, "VIX": vix}
    for sym, ratio, beta, dev, phi, sd, z, rng_ in (
            ("VIX9D", m.ratio9_at_median, m.beta9, m.dev9, m.phi9, m.sd9, z9, m.ratio9_range),
            ("VIX3M", m.ratio3m_at_median, m.beta3m, m.dev3m, m.phi3m, m.sd3m, z3, m.ratio3m_range)):
        u = np.empty(n)
        u[0] = z[0] * sd / math.sqrt(1.0 - phi ** 2)
        for t in range(1, n):
            u[t] = phi * u[t - 1] + sd * z[t]
        s = math.log(ratio) + beta * (x - lm) + dev * (x - ema) + u
        s += (math.log(anchor[sym] / anchor["VIX"]) - s[-1]) * _bridge_weights(n, phi)
        s[:-1] = np.clip(s[:-1], math.log(rng_[0]), math.log(rng_[1]))
        out[sym] = vix * np.exp(s)
    return out


def _history_ok(p: dict[str, np.ndarray]) -> bool:
    """The acceptance envelope (HISTORY_* constants) on the rounded closes."""
    v = np.round(p["VIX"], 2)
    s = np.round(p["SPX"], 2)
    if len(v) < 2:
        return True
    ch = v[1:] / v[:-1] - 1.0
    up = s[1:] >= s[:-1]
    for i in np.flatnonzero((ch <= HISTORY_BIG_VIX_DROP) & up):
        prior = ch[max(0, i - HISTORY_RANK_WINDOW):i]
        if len(prior) >= HISTORY_RANK_MIN and np.mean(prior <= ch[i]) <= HISTORY_RANK_MAX:
            return False
    vol = float(np.std(np.diff(np.log(s))) * math.sqrt(252.0))
    return bool(HISTORY_VIX_RANGE[0] <= v.min() and v.max() <= HISTORY_VIX_RANGE[1]
                and ch.min() > HISTORY_MAX_VIX_DROP
                and int((ch <= HISTORY_BIG_VIX_DROP).sum()) <= HISTORY_MAX_BIG_DROPS
                and (len(v) < 60 or HISTORY_SPX_VOL_RANGE[0] <= vol <= HISTORY_SPX_VOL_RANGE[1]))


def history(name: str, seed: int = 0, days: int = 800, model: HistoryModel = HISTORY_MODEL) -> History:
    """The scenario's warm-up prelude: ``days`` daily closes of SPX, VIX, VIX9D and VIX3M on the
    NYSE trading days before its first session, the last one equal to that session's open levels
    (a zero overnight gap into day 1: the open is the only level the scenario specifies).

    Synthetic but seeded (see :class:`HistoryModel`): the free path is simulated forward, then the
    VIX and the term-structure ratios are pinned to the anchor with AR(1)-bridge weights
    (the gap is spread over the last few half-lives, no jump at the end) and SPX is rescaled so its
    last close is the anchor (returns unchanged). A draw whose rounded closes leave the acceptance
    envelope (VIX within [9, 60]; no one-day VIX change ≤ −20%, at most 3 ≤ −15%; SPX realized vol
    10-25% a year) is replaced by the next seeded draw (up to ``HISTORY_MAX_DRAWS``; the last one
    is kept if none passes, which only extreme anchors could cause). Draws of the default model
    pass almost always: the envelope only rules out rare tails, so that the scenario's own day
    (e.g. the −20.6% VIX collapse of 2024-11-06) stays the outlier it was.

    >>> h = history("election-2024", seed=0)
    >>> len(h.dates), h.dates[-1], float(h.spx[-1]), float(h.vix[-1])
    (800, datetime.date(2024, 11, 4), 5722.43, 21.6)
    """
    sc = _scenario(name)
    first = sc.sessions[0]
    dates = history_dates(first.date, days)
    ts = np.array([close_ts_ns(d) for d in dates], dtype=np.int64)
    anchor = {"SPX": first.spx[0], "VIX": first.vix[0], "VIX9D": first.vix9d[0], "VIX3M": first.vix3m[0]}
    if not dates:
        empty = np.zeros(0)
        return History((), ts, empty, empty, empty, empty, 0)
    for draw in range(1, HISTORY_MAX_DRAWS + 1):
        p = _history_draw(_rng(seed, sc.name, 1_000, draw), len(dates), anchor, model)
        if _history_ok(p):
            break
    r = {k: np.round(v, 2) for k, v in p.items()}
    return History(tuple(dates), ts, r["SPX"], r["VIX"], r["VIX9D"], r["VIX3M"], draw)


def underlying_history(name: str, seed: int = 0, days: int = 800,
                       symbols: tuple[str, ...] = FUND_UNDERLYINGS) -> dict[str, np.ndarray]:
    """Warm-up closes of the funds' underlyings, aligned with :func:`history` (same dates): daily log
    return ``beta`` x the prelude's SPX log return plus Gaussian noise of ``idio_day_vol`` (a
    follower: its leader's return plus its own), rescaled so the last close is day 1's open (returns
    unchanged), rounded to the cent. Only ``symbols`` the scenario specifies; each from its own
    seeded stream.

    >>> u = underlying_history("election-2024", seed=0)
    >>> len(u["TSLA"]), float(u["TSLA"][-1]), float(u["NDX"][-1])
    (800, 247.34, 20042.93)
    """
    sc = _scenario(name)
    first = sc.sessions[0]
    h = history(name, seed, days)
    r_spx = np.diff(np.log(h.spx)) if len(h.spx) else np.zeros(0)
    rets: dict[str, np.ndarray] = {}
    out = {}
    for sym in _ordered([s for s in symbols if first.underlying(s) is not None]):
        m = UNDERLYING_MODELS[sym]
        own = _rng(seed, f"{sc.name}/{sym}", 2_000).standard_normal(len(r_spx)) * m.idio_day_vol
        rets[sym] = (rets[m.follows] if m.follows else m.beta * r_spx) + own
        lvl = np.exp(np.concatenate([[0.0], np.cumsum(rets[sym])]))[: len(h.spx)]
        anchor = first.underlying(sym)[0]  # type: ignore[index]
        out[sym] = np.round(anchor * lvl / lvl[-1], 2) if len(lvl) else lvl
    return {s: out[s] for s in symbols if s in out}


def _history_events(sc: Scenario, seed: int, cfg: SimConfig) -> Iterator[SimEvent]:
    h = history(sc.name, seed, cfg.history_days)
    und = underlying_history(sc.name, seed, cfg.history_days, cfg.underlyings) if cfg.underlyings else {}
    # each day's underlyings before its SPX and VIX closes (see the module docstring)
    cols = [(sym, v.tolist()) for sym, v in und.items()] + [(sym, h.levels(sym).tolist()) for sym in cfg.symbols]
    days = [d.isoformat() for d in h.dates]
    for i, ts in enumerate(h.close_ts_ns.tolist()):
        for sym, px in cols:
            # official closes (an end-of-day feed), not ticks: the engine warms its flow models
            # up on them and runs no trigger rule, so the backfill never fires a trigger
            yield SimEvent("daily_close", UNDERLYING, DailyClose(sym, UNDERLYING, days[i], ts, px[i]),
                           history=True)


def is_history(event: SimEvent) -> bool:
    """True for a warm-up prelude event (a DailyClose before the scenario's sessions)."""
    return event.history


# ------------------------------------------------------------------------------------------ schedule


def _config(preset: str, overrides: dict[str, Any]) -> SimConfig:
    try:
        base = PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}") from None
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _published(sc: Scenario, si: int, cfg: SimConfig) -> list[str]:
    """The funds' underlyings published in session ``si``: those of ``cfg`` the session specifies."""
    unknown = set(cfg.underlyings) - set(UNDERLYING_MODELS)
    if unknown:
        raise ValueError(f"no model for underlyings {sorted(unknown)}; known: {sorted(UNDERLYING_MODELS)}")
    return [s for s in cfg.underlyings if sc.sessions[si].underlying(s) is not None]


def _scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}") from None


def _offsets(every_s: float, include_close: bool) -> list[int]:
    """Offsets from the open in ns: 0, every, 2·every, … (< close; the close itself if asked)."""
    if every_s <= 0:
        raise ValueError("intervals must be > 0 s")
    step = round(every_s * NS)
    end = SESSION_S * NS
    out = list(range(0, end, step))
    if include_close:
        out.append(end)
    return out


@dataclass(slots=True)
class _Listing:
    expiries: list[Expiry]
    strikes: list[np.ndarray]


MIN_LIFE_NS = 60 * NS  # a contract is quoted until one minute before settlement


def _listing(sc: Scenario, si: int, cfg: SimConfig) -> _Listing:
    """Strikes listed per expiry for the session: the exchange grid from the put wing to the call
    wing, each wing ending ``WING_MARGIN`` beyond the strike where the model price at the open
    (seed-independent) drops below ``WORTHLESS``, so both wings show zero bids all day."""
    ss = sc.sessions[si]
    o, _ = session_bounds_ns(ss.date)
    spot = ss.spx[0]
    levels = {"VIX9D": ss.vix9d[0], "VIX": ss.vix[0], "VIX3M": ss.vix3m[0]}
    exps = list_expiries(ss.date, cfg)
    cand = strike_grid(spot, spot * (1.0 - PUT_WING), spot * (1.0 + CALL_WING))
    out = []
    for e in exps:
        t = (e.ts_ns - o) / YEAR_NS
        ex = np.full(len(cand), e.ts_ns)
        is_call = cand >= spot
        p, _ = chain_prices(sc, o, spot, levels, ex, cand, is_call)
        live = cand[p >= WORTHLESS]
        lo = max(min(live.min(initial=spot), spot) - WING_MARGIN * spot, spot * (1.0 - PUT_WING))
        hi = min(max(live.max(initial=spot), spot) + WING_MARGIN * spot, spot * (1.0 + CALL_WING))
        k = cand[(cand >= lo) & (cand <= hi)]
        out.append(thin_strikes(k, spot, ss.vix[0] / 100.0 * math.sqrt(max(t, 2.0 / 365.0)),
                                cfg.max_strikes))
    return _Listing(exps, out)


def count(name: str, *, preset: str = "demo", tick_every_s: float | None = None,
          chain_every_s: float | None = None, max_strikes: int | None = None,
          history_days: int | None = None, **kw: Any) -> int:
    """Number of events ``generate`` yields with the same arguments (no pricing: cheap).

    >>> 20_000 <= count("election-2024") <= 90_000
    True
    >>> count("calm", preset="fast") - count("calm", preset="fast", history_days=0)  # 800 days x 12 symbols
    9600
    """
    sc = _scenario(name)
    cfg = _config(preset, dict(tick_every_s=tick_every_s, chain_every_s=chain_every_s,
                               max_strikes=max_strikes, history_days=history_days, **kw))
    n = cfg.history_days * (len(cfg.symbols) + len(_published(sc, 0, cfg)))
    for si, ss in enumerate(sc.sessions):
        o, _ = session_bounds_ns(ss.date)
        lst = _listing(sc, si, cfg)
        n += len(_offsets(cfg.tick_every_s, True)) * (len(cfg.symbols) + len(_published(sc, si, cfg)))
        n += sum(2 * len(k) for k in lst.strikes)
        for off in _offsets(cfg.chain_every_s, False):
            ts = o + off
            n += sum(2 * len(k) for e, k in zip(lst.expiries, lst.strikes) if e.ts_ns - ts >= MIN_LIFE_NS)
    return n


# ------------------------------------------------------------------------------------------ OI

_OI_SCALE = {"daily": 1_500.0, "weekly": 3_500.0, "monthly": 14_000.0}


def _open_interest(sc: Scenario, si: int, seed: int, spot: float, atm_vol: float, open_ns: int,
                   exp: Expiry, strikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(call OI, put OI) in contracts for one expiry at a session open."""
    t = max((exp.ts_ns - open_ns) / YEAR_NS, 7.0 / 365.0)
    s = atm_vol * math.sqrt(t)
    z = np.log(strikes / spot) / s
    kind = "monthly" if exp.root == "SPX" else ("weekly" if exp.date.weekday() == 4 else "daily")
    scale = _OI_SCALE[kind] * (1.5 if exp.root == "SPX" and exp.date.month % 3 == 0 else 1.0)
    kk = np.round(strikes).astype(np.int64)
    round_ = np.where(kk % 100 == 0, 4.0, np.where(kk % 50 == 0, 2.2, np.where(kk % 25 == 0, 1.4, 1.0)))
    put = scale * round_ * np.exp(-0.5 * ((z + 0.9) / 1.4) ** 2)
    call = 0.6 * scale * round_ * np.exp(-0.5 * ((z - 0.4) / 0.9) ** 2)
    # persistent per-contract factor (same for every session), plus a small daily change
    grid = kk // 5
    prng = _rng(seed, sc.name, exp.ts_ns // NS % 2**31, 7)
    base_noise = prng.standard_normal((2, 4_000))  # strike grid 0..20,000 in 5-point steps
    gi = np.clip(grid, 0, 3_999)
    drng = _rng(seed, sc.name, exp.ts_ns // NS % 2**31, 8 + si)
    daily = drng.standard_normal((2, len(strikes)))
    call *= np.exp(0.45 * base_noise[0, gi] + 0.05 * daily[0] - 0.1)
    put *= np.exp(0.45 * base_noise[1, gi] + 0.05 * daily[1] - 0.1)
    return np.round(call).astype(np.int64), np.round(put).astype(np.int64)


# ------------------------------------------------------------------------------------------ generate


def chain_prices(sc: Scenario, now_ns: int, spot: float, levels: dict[str, float],
                 expiry_ts_ns: np.ndarray, strike: np.ndarray, is_call: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Model (price, implied vol) of contracts at ``now_ns`` on the scenario's surface.

    ``levels``: the published VIX9D/VIX/VIX3M at that instant (vol points). Arrays are flat and
    aligned; T = (expiry − now)/365 days must be > 0.
    """
    t = (expiry_ts_ns - now_ns) / YEAR_NS
    v = variance_curve(now_ns, levels, sc)(t)
    theta = atm_theta(v, sc)
    fwd = spot * np.exp((sc.rate - sc.div_yield) * t)
    w = ssvi_total_variance(np.log(strike / fwd), theta, sc.rho, sc.eta, sc.gamma)
    sigma = np.sqrt(w / t)
    return bs.price(spot, strike, t, sc.rate, sc.div_yield, sigma, is_call), sigma


def generate(name: str, seed: int = 0, *, preset: str = "demo", tick_every_s: float | None = None,
             chain_every_s: float | None = None, max_strikes: int | None = None,
             history_days: int | None = None, **kw: Any) -> Iterator[SimEvent]:
    """Yield the scenario's input messages in non-decreasing ``msg.ts_ns``.

    ``preset``: a key of :data:`PRESETS` ("demo" ≈ 80k messages, "fast" a few thousand plus
    the prelude, "full"); ``tick_every_s`` (seconds between index ticks of each symbol),
    ``chain_every_s`` (seconds between full option-chain snapshots, from the open),
    ``max_strikes`` (per expiry; 0 = all listed), ``history_days`` (warm-up daily closes first,
    0 = none) and any other :class:`SimConfig` field override the preset. The same
    (name, seed, config) always gives the same events.

    First come ``history_days`` warm-up days (:func:`history`): on each, one DailyClose per symbol
    at that day's close, flagged ``SimEvent.history``; then the scenario's sessions, which do not
    depend on the prelude (same messages with ``history_days=0``).
    """
    sc = _scenario(name)
    cfg = _config(preset, dict(tick_every_s=tick_every_s, chain_every_s=chain_every_s,
                               max_strikes=max_strikes, history_days=history_days, **kw))
    if cfg.history_days < 0:
        raise ValueError("history_days must be >= 0")
    _published(sc, 0, cfg)  # unknown underlyings fail before the first message
    yield from _history_events(sc, seed, cfg)
    for si, ss in enumerate(sc.sessions):
        yield from _session_events(sc, si, seed, cfg)


def _session_events(sc: Scenario, si: int, seed: int, cfg: SimConfig) -> Iterator[SimEvent]:
    ss = sc.sessions[si]
    o, _ = session_bounds_ns(ss.date)
    paths = _session_paths(sc, si, seed)
    lst = _listing(sc, si, cfg)
    size_rng = _rng(seed, sc.name, si, 2)
    key = UNDERLYING

    # open interest, once, at the open
    for e, ks in zip(lst.expiries, lst.strikes):
        # OI is sticky: its shape is centred on the scenario's first open, not today's spot
        ref = sc.sessions[0]
        c_oi, p_oi = _open_interest(sc, si, seed, ref.spx[0], ref.vix[0] / 100.0,
                                    session_bounds_ns(ref.date)[0], e, ks)
        for k, c, p in zip(ks.tolist(), c_oi.tolist(), p_oi.tolist()):
            yield SimEvent("open_interest", key, OpenInterest(key, o, e.ts_ns, k, "C", c))
            yield SimEvent("open_interest", key, OpenInterest(key, o, e.ts_ns, k, "P", p))

    ticks = _offsets(cfg.tick_every_s, True)
    chains = set(_offsets(cfg.chain_every_s, False))
    und = [(sym, paths.idx[sym]) for sym in _published(sc, si, cfg)]
    exp_ts = np.array([e.ts_ns for e in lst.expiries], dtype=np.int64)
    for off in sorted(set(ticks) | chains):
        ts = o + off
        i = min(off // NS, SESSION_S)
        levels = {s: float(paths.idx[s][i]) for s in ("VIX9D", "VIX", "VIX3M")}
        spot = float(paths.spx[i])
        if off in ticks:
            for sym in cfg.symbols:
                px = spot if sym == "SPX" else levels[sym]
                yield SimEvent("index_tick", key, IndexTick(sym, key, ts, round(px, 2)))
            for sym, path in und:  # keyed (and addressed) SPX, like VIX: the SPX engine's flow book reads them
                yield SimEvent("index_tick", key, IndexTick(sym, key, ts, round(float(path[i]), 2)))
        if off in chains:
            alive = [j for j in range(len(exp_ts)) if exp_ts[j] - ts >= MIN_LIFE_NS]
            if not alive:
                continue
            e_arr = np.concatenate([np.full(len(lst.strikes[j]), exp_ts[j]) for j in alive])
            k_arr = np.concatenate([lst.strikes[j] for j in alive])
            e2 = np.concatenate([e_arr, e_arr])
            k2 = np.concatenate([k_arr, k_arr])
            c2 = np.concatenate([np.ones(len(k_arr), bool), np.zeros(len(k_arr), bool)])
            p, sig = chain_prices(sc, ts, spot, levels, e2, k2, c2)
            bid, ask = quote_from_price(p)
            t = (e2 - ts) / YEAR_NS
            z = np.log(k2 / spot) / (sig * np.sqrt(t))
            lam = 8.0 + 150.0 * np.exp(-0.5 * z * z)
            bsz = np.where(bid > 0.0, 1 + size_rng.poisson(lam), 0)
            asz = 1 + size_rng.poisson(lam)
            rows = list(zip(e2.tolist(), k2.tolist(), bid.tolist(), ask.tolist(), bsz.tolist(),
                            asz.tolist()))
            n = len(k_arr)
            for j in range(n):  # call then put of each strike line
                for right, (ex, k, b, a, b_sz, a_sz) in (("C", rows[j]), ("P", rows[n + j])):
                    yield SimEvent("option_quote", key,
                                   OptionQuote(key, ts, int(ex), k, right, b, a, int(b_sz), int(a_sz)))


# ------------------------------------------------------------------------------------------ malformed

_DROP = object()



def malformed(seed: int = 0, n: int = 32) -> list[tuple[str, bytes, str]]:
    """``n`` invalid input messages as (kind, raw bytes, expected DLQ reason), cycling through every
    reason the edge parsers in :mod:`streamer.schemas` can give for bytes, and absurd values that are
    well-formed JSON (1e308 prices, 1e12 and 1e-9 strikes, 1e18 open interest, year-9999 timestamps,
    messages above the size limit, 60 kB strings in wrong-typed fields, duplicate keys).

    ``non_finite`` is not reachable from bytes (orjson rejects NaN/Infinity literals and overflowing
    numbers as malformed JSON), so it is not produced; nor is ``key_mismatch`` (a key, not bytes).

    >>> reasons = {r for _, _, r in malformed(0, 40)}
    >>> {"malformed_json", "crossed_quote", "unknown_right", "bad_expiry"} <= reasons
    True
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 99])
    cases = _malformed_cases(rng).cases
    order = rng.permutation(len(cases))
    return [cases[int(order[i % len(cases)])] for i in range(n)]


@dataclass
class _Bases:
    """The valid messages the hostile cases are made from, and the cases of :func:`malformed`."""

    ts: int
    exp: int
    tick: dict
    quote: dict
    oi: dict
    cases: list[tuple[str, bytes, str]]


def _mut(d: dict, **ch: Any) -> bytes:
    """``d`` as JSON with fields changed (``_DROP``: removed)."""
    x = dict(d)
    for k, v in ch.items():
        if v is _DROP:
            x.pop(k)
        else:
            x[k] = v
    return dumps(x)


def _literal(d: dict, name: str, text: bytes) -> bytes:
    """``d`` with field ``name`` spelled as ``text`` (what orjson cannot write: > 64-bit integers, NaN, ...)."""
    return _mut(d, **{name: "\x00"}).replace(b'"\\u0000"', text)


def _malformed_cases(rng: np.random.Generator) -> _Bases:
    o, _ = session_bounds_ns(dt.date(2024, 11, 6))
    ts = o + int(rng.integers(0, SESSION_S)) * NS
    exp = settlement_ts_ns(dt.date(2024, 11, 15), "SPX")
    strike = float(5900 + 5 * int(rng.integers(-20, 20)))
    tick = schemas.to_dict(IndexTick("VIX", UNDERLYING, ts, round(16.0 + float(rng.random()), 2)))
    quote = schemas.to_dict(OptionQuote(UNDERLYING, ts, exp, strike, "C", 10.1, 10.5, 5, 7))
    oi = schemas.to_dict(OpenInterest(UNDERLYING, ts, exp, strike, "P", 1234))

    mut, literal = _mut, _literal
    year_9999_ns = b"253402300799000000000"  # 9999-12-31T23:59:59Z in ns: beyond 64 bits
    long = "9" * 60_000  # a wrong-typed field 60 kB long: the detail must quote an excerpt only

    cases: list[tuple[str, bytes, str]] = [
        ("index_tick", dumps(tick)[:-7], "malformed_json"),
        ("option_quote", b"\xff\xfe not json", "malformed_json"),
        ("option_quote", b'{"underlying":"SPX","bid":NaN}', "malformed_json"),
        ("index_tick", b'[1, 2, 3]', "not_an_object"),
        ("open_interest", mut(oi, schema_version=2), "unknown_schema_version"),
        ("index_tick", mut(tick, price=_DROP), "missing_field"),
        ("option_quote", mut(quote, right=_DROP), "missing_field"),
        ("open_interest", mut(oi, open_interest=_DROP), "missing_field"),
        ("index_tick", mut(tick, symbol=""), "bad_symbol"),
        ("option_quote", mut(quote, underlying=" SPX"), "bad_symbol"),
        ("index_tick", mut(tick, ts_ns=str(ts)), "wrong_type"),
        ("option_quote", mut(quote, bid="10.1"), "wrong_type"),
        ("open_interest", mut(oi, open_interest=12.5), "wrong_type"),
        ("option_quote", mut(quote, ts_ns=float(ts)), "wrong_type"),
        ("index_tick", mut(tick, ts_ns=ts // NS), "bad_timestamp"),
        ("option_quote", mut(quote, expiry_ts_ns=4_200_000_000 * NS), "bad_timestamp"),
        ("index_tick", mut(tick, price=0.0), "non_positive_price"),
        ("option_quote", mut(quote, bid=0.0, ask=0.0), "non_positive_price"),
        ("option_quote", mut(quote, strike=-5.0), "non_positive_price"),
        ("option_quote", mut(quote, bid=-0.05), "negative_price"),
        ("option_quote", mut(quote, bid=10.6, ask=10.5), "crossed_quote"),
        ("option_quote", mut(quote, right="X"), "unknown_right"),
        ("open_interest", mut(oi, right="call"), "unknown_right"),
        ("option_quote", mut(quote, expiry_ts_ns=ts - 3 * 86_400 * NS), "bad_expiry"),
        ("open_interest", mut(oi, expiry_ts_ns=ts + 13 * 366 * 86_400 * NS), "bad_expiry"),
        ("open_interest", mut(oi, open_interest=-3), "negative_count"),
        ("option_quote", mut(quote, ask_size=-1), "negative_count"),
        # absurd but well-formed values: plausibility at the edge
        ("index_tick", mut(tick, price=1e308), "out_of_range"),
        ("index_tick", mut(tick, price=1e-9), "out_of_range"),
        ("option_quote", mut(quote, bid=1e308, ask=1e308), "out_of_range"),
        ("option_quote", mut(quote, ask=2e6), "out_of_range"),
        ("option_quote", mut(quote, strike=1e12), "out_of_range"),
        ("open_interest", mut(oi, strike=1e-9), "out_of_range"),
        ("open_interest", mut(oi, open_interest=10**18), "out_of_range"),
        ("option_quote", mut(quote, bid_size=1e18), "out_of_range"),
        ("index_tick", literal(tick, "ts_ns", year_9999_ns), "bad_timestamp"),
        ("option_quote", literal(quote, "expiry_ts_ns", year_9999_ns), "bad_timestamp"),
        ("open_interest", literal(oi, "ts_ns", b"-" + year_9999_ns), "bad_timestamp"),
        ("option_quote", mut(quote, padding="x" * schemas.MAX_MESSAGE_BYTES), "too_large"),
        ("option_quote", mut(quote, bid=long), "wrong_type"),
        ("index_tick", mut(tick, symbol=long), "bad_symbol"),
        ("open_interest", mut(oi, right=long), "unknown_right"),
        ("option_quote", mut(quote, bid_size=True), "wrong_type"),
        ("option_quote", dumps(quote)[:-1] + b',"bid":-1.0}', "negative_price"),  # duplicate key: last wins
    ]
    return _Bases(ts, exp, tick, quote, oi, cases)


@dataclass(frozen=True)
class Hostile:
    """One message of :func:`hostile`: its kind, Kafka key, raw value and the dead-letter reason it must get
    (None: a value at a documented bound, which must be *accepted*)."""

    kind: str
    key: str
    raw: bytes
    reason: str | None
    what: str


#: input sizes the hostile suite sends (all above schemas.MAX_MESSAGE_BYTES: rejected unparsed); the
#: last two need an input topic whose max.message.bytes allows them
HOSTILE_SIZES = (900_000, 2_000_000, 10_000_000)


def hostile(seed: int = 0, *, sizes: tuple[int, ...] = HOSTILE_SIZES, edge_underlying: str = "XSP") -> list[Hostile]:
    """Every case of :func:`malformed` once, and more: every input reason code (``key_mismatch`` through a
    wrong key, ``bad_date`` through a daily close), messages of ``sizes`` bytes, non-UTF-8 bytes, deep
    nesting, duplicate keys, NaN/Infinity spellings, each documented bound just beyond (rejected) and exactly
    at it (accepted). Rejected cases carry ``SPX`` data with key ``SPX`` (except the key cases); accepted ones
    belong to ``edge_underlying`` (key and underlying), with increasing timestamps within one session, so
    they can be fed to a worker beside the scenario without touching its SPX analytics.

    ``non_finite`` is the one input reason bytes cannot produce: the JSON parsers reject NaN/Infinity and
    numbers beyond a double as malformed JSON (``_num`` keeps the check for dict inputs).

    >>> cases = hostile(0, sizes=(100_000,))
    >>> sorted({c.reason for c in cases if c.reason})[:4]
    ['bad_date', 'bad_expiry', 'bad_symbol', 'bad_timestamp']
    >>> any(c.reason is None for c in cases)
    True
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 99])
    b = _malformed_cases(rng)
    ts, exp, tick, quote, oi = b.ts, b.exp, b.tick, b.quote, b.oi
    out = [Hostile(kind, UNDERLYING, raw, reason, f"malformed #{i}") for i, (kind, raw, reason) in enumerate(b.cases)]

    def bad(kind: str, raw: bytes, reason: str, what: str, key: str = UNDERLYING) -> None:
        out.append(Hostile(kind, key, raw, reason, what))

    base = {"index_tick": tick, "option_quote": quote, "open_interest": oi}
    # sizes: a valid quote padded with an unknown field to exactly n bytes
    for n in sizes:
        pad = n - len(_mut(quote, padding=""))
        bad("option_quote", _mut(quote, padding="p" * pad), "too_large", f"{n:,} bytes")
    pad = schemas.MAX_MESSAGE_BYTES + 1 - len(_mut(tick, padding=""))
    bad("index_tick", _mut(tick, padding="p" * pad), "too_large", "one byte above the limit")
    # NaN/Infinity in every spelling, and numbers beyond a double: not JSON
    for spelling in (b"NaN", b"-NaN", b"nan", b"Infinity", b"-Infinity", b"inf", b"1e400", b"-1e999"):
        bad("index_tick", _literal(tick, "price", spelling), "malformed_json", f"price {spelling.decode()}")
        bad("option_quote", _literal(quote, "ask", spelling), "malformed_json", f"ask {spelling.decode()}")
    for spelling in ("NaN", "Infinity", "-inf"):
        bad("option_quote", _mut(quote, bid=spelling), "wrong_type", f"bid {spelling!r} as a string")
    # non-UTF-8: in a string, a whole UTF-16 document, an overlong encoding, a lone surrogate escape
    bad("index_tick", dumps(tick).replace(b'"VIX"', b'"VI\xffX"'), "malformed_json", "invalid UTF-8 in a string")
    bad("option_quote", dumps(quote).decode().encode("utf-16"), "malformed_json", "UTF-16")
    bad("open_interest", dumps(oi).replace(b'"P"', b'"\xc0\xaf"'), "malformed_json", "overlong UTF-8")
    bad("open_interest", b"\x00" * 64, "malformed_json", "NUL bytes")
    bad("index_tick", b"", "malformed_json", "empty value")
    # deep nesting: past the parser's depth limit, a nested array as the document, nested values in fields
    bad("index_tick", b"[" * 5000 + b"]" * 5000, "malformed_json", "depth 5000")
    bad("option_quote", b'{"a":' * 2000 + b"1" + b"}" * 2000, "malformed_json", "object depth 2000")
    bad("index_tick", b"[" * 500 + b"]" * 500, "not_an_object", "array depth 500")
    bad("option_quote", dumps(quote)[:-1] + b',"bid":' + b"[" * 500 + b"]" * 500 + b"}", "wrong_type",
        "bid nested 500 deep (duplicate key)")
    bad("open_interest", _mut(oi, open_interest={"a": {"b": {"c": [1]}}}), "wrong_type", "nested object as a count")
    # duplicate keys: the last one wins, valid first or not
    bad("index_tick", dumps(tick)[:-1] + b',"price":0}', "non_positive_price", "duplicate price, last 0")
    bad("option_quote", dumps(quote)[:-1] + b',"right":"X"}', "unknown_right", "duplicate right, last X")
    bad("open_interest", dumps(oi)[:-1] + b',"schema_version":2}', "unknown_schema_version", "duplicate version")
    # the key contract (the worker's check after the message itself is valid)
    bad("option_quote", dumps(quote), "key_mismatch", "key NDX", key="NDX")
    bad("index_tick", dumps(tick), "key_mismatch", "key in lower case", key="spx")
    bad("open_interest", dumps(oi), "key_mismatch", "a 5,000-byte key", key="K" * 5000)
    # daily closes: bad dates and an out-of-range close
    close = schemas.to_dict(DailyClose("VIX", UNDERLYING, "2024-11-05", close_ts_ns(dt.date(2024, 11, 5)), 20.49))
    for day in ("2024-13-01", "20241105", "2024-02-30", 20241105, None):
        bad("daily_close", _mut(close, date=day), "bad_date", f"date {day!r}")
    bad("daily_close", _mut(close, close=1e308), "out_of_range", "close 1e308")
    # just beyond every documented bound
    up = 1 + 1e-9
    for kind, field_, x in (("index_tick", "price", schemas.MAX_INDEX_LEVEL * up),
                            ("index_tick", "price", schemas.MIN_INDEX_LEVEL / 2),
                            ("option_quote", "strike", schemas.MAX_STRIKE * up),
                            ("open_interest", "strike", schemas.MIN_STRIKE / 2),
                            ("option_quote", "ask", schemas.MAX_OPTION_PRICE * up),
                            ("option_quote", "ask", 1.7976931348623157e308),
                            ("option_quote", "bid_size", schemas.MAX_CONTRACTS + 1),
                            ("option_quote", "ask_size", schemas.MAX_CONTRACTS + 1),
                            ("open_interest", "open_interest", schemas.MAX_CONTRACTS + 1)):
        bad(kind, _mut(base[kind], **{field_: x}), "out_of_range", f"{field_} {x!r}")
    bad("option_quote", _mut(quote, bid=schemas.MAX_OPTION_PRICE * up, ask=schemas.MAX_OPTION_PRICE * up),
        "out_of_range", "bid and ask above the bound")
    for kind in base:
        bad(kind, _mut(base[kind], ts_ns=schemas.MIN_TS_NS - 1), "bad_timestamp", "ts 1 ns before 2000")
        bad(kind, _mut(base[kind], ts_ns=schemas.MAX_TS_NS + 1), "bad_timestamp", "ts 1 ns after 2100")
    for kind in ("option_quote", "open_interest"):
        bad(kind, _mut(base[kind], expiry_ts_ns=ts - schemas.EXPIRY_GRACE_NS - 1), "bad_expiry", "expired 1 day + 1 ns")
        bad(kind, _mut(base[kind], expiry_ts_ns=ts + schemas.MAX_EXPIRY_AHEAD_NS + 1), "bad_expiry",
            "expiry 12 years + 1 ns ahead")
    bad("index_tick", _mut(tick, symbol="X" * (schemas.MAX_SYMBOL_LEN + 1)), "bad_symbol", "33-character symbol")
    bad("option_quote", _mut(quote, underlying="SPX\n"), "bad_symbol", "symbol with a newline")

    # exactly at every bound (and other odd but valid spellings): accepted, for edge_underlying
    u = edge_underlying
    o, _ = session_bounds_ns(dt.date(2024, 11, 6))
    t0 = o + 600 * NS
    e_exp = settlement_ts_ns(dt.date(2024, 11, 15), "SPX")
    step = iter(range(1, 10_000))

    def ok(kind: str, what: str, raw: Callable[[int], bytes]) -> None:
        out.append(Hostile(kind, u, raw(t0 + next(step) * NS), None, what))

    def tk(t: int, **ch: Any) -> bytes:
        return _mut(schemas.to_dict(IndexTick(u, u, t, 580.0)), **ch)

    def qt(t: int, **ch: Any) -> bytes:
        return _mut(schemas.to_dict(OptionQuote(u, t, e_exp, 580.0, "C", 10.1, 10.5, 5, 7)), **ch)

    def oi_(t: int, **ch: Any) -> bytes:
        return _mut(schemas.to_dict(OpenInterest(u, t, e_exp, 580.0, "P", 1234)), **ch)

    ok("index_tick", "a plain first print", lambda t: tk(t))
    ok("index_tick", "price at the upper bound (an implausible jump: held as suspect)",
       lambda t: tk(t, price=schemas.MAX_INDEX_LEVEL))
    ok("index_tick", "price at the lower bound", lambda t: tk(t, price=schemas.MIN_INDEX_LEVEL))
    ok("index_tick", "back to normal", lambda t: tk(t))
    ok("index_tick", "a 32-character symbol", lambda t: tk(t, symbol="Y" * schemas.MAX_SYMBOL_LEN))
    ok("index_tick", "duplicate price, the last one valid", lambda t: tk(t)[:-1] + b',"price":581.5}')
    ok("index_tick", f"exactly {schemas.MAX_MESSAGE_BYTES} bytes",
       lambda t: tk(t, padding="p" * (schemas.MAX_MESSAGE_BYTES - len(tk(t, padding="")))))
    ok("index_tick", "an unknown field nested 1,000 deep",
       lambda t: tk(t)[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}")
    ok("option_quote", "strike at the upper bound", lambda t: qt(t, strike=schemas.MAX_STRIKE))
    ok("option_quote", "strike at the lower bound", lambda t: qt(t, strike=schemas.MIN_STRIKE))
    ok("option_quote", "bid 0, ask at the bound", lambda t: qt(t, bid=0.0, ask=schemas.MAX_OPTION_PRICE))
    ok("option_quote", "sizes at the bound", lambda t: qt(t, bid_size=schemas.MAX_CONTRACTS,
                                                              ask_size=schemas.MAX_CONTRACTS))
    ok("option_quote", "sizes as whole floats, version 1.0", lambda t: qt(t, bid_size=5.0, schema_version=1.0))
    ok("option_quote", "expired exactly one day ago", lambda t: qt(t, expiry_ts_ns=t - schemas.EXPIRY_GRACE_NS))
    ok("option_quote", "expiry exactly 12 years ahead", lambda t: qt(t, expiry_ts_ns=t + schemas.MAX_EXPIRY_AHEAD_NS))
    ok("open_interest", "open interest at the bound", lambda t: oi_(t, open_interest=schemas.MAX_CONTRACTS))
    ok("open_interest", "open interest 0", lambda t: oi_(t, open_interest=0))
    ok("open_interest", "strike at the lower bound", lambda t: oi_(t, strike=schemas.MIN_STRIKE))
    return out
