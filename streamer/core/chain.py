"""Option-chain state and dealer exposures per underlying, O(1) per quote/OI update.

Units (per contract, ``m = dealer_sign × OI × multiplier``):

* GEX ``gex_usd_per_pct``       = gamma × m × S² × 0.01   ($ of delta per 1% move of S)
* delta exposure ``dex_usd``    = delta × m × S           ($ delta)
* vanna ``vanna_usd_per_vol_pt`` = vanna × m × S × 0.01    ($ delta per 1 vol point of IV)
* charm ``charm_usd_per_day``   = charm × m × S / 365     ($ delta per calendar day)

Exposures are the dealers' own position greeks (before hedging); the hedge flow is the negative.
Default positioning (DOMAIN.md, SqueezeMetrics "naive" convention): customers sell calls and buy
puts, so dealers are long calls (sign +1) and short puts (sign −1). A ``positioning`` mapping or
callback ``key -> sign`` overrides it per contract; the sign is stored in the contract state.

Evaluation point. All per-contract contributions are evaluated at one chain-wide point
``(eval_spot, eval_ts_ns)``, so that they add up to exactly what :func:`exposures_batch` computes
from scratch at that point. A quote or OI update re-evaluates only its own contract there
(revert old contribution, add new: O(1) in chain size, O(grid) for the gamma profile).

Spot-tick policy (``on_spot``): O(1). It records the live spot; readers get

* ``live_totals()``: GEX = exact value at eval_spot + change of the linearly interpolated grid
  profile (grid step ≈ 0.68% of S by default), delta exposure corrected to first order with the
  aggregate gamma (error O(dS²·speed)), vanna and charm rescaled by S/eval_spot (error
  O(dS·∂vanna/∂S)). Measured at a +0.2% move (benchmarks/bench_chain.py, 20k contracts, 1 d–2 y
  expiries): error / |net| GEX 2.6%, DEX 2e-6, vanna 2.8%, charm 8%; error / gross 1e-4, 2e-6,
  1e-4, 2e-3. Nets are small differences of large call and put sums, hence the larger ratios;
  charm is the least reliable between reprices;
* a full re-evaluation (``reprice``: O(N) vectorized for a spot move, O(N·grid) when the clock
  moved because the grid depends on T) only when the spot has moved more than
  ``reprice_rel_move`` (0.25%) from ``eval_spot`` or ``reprice_max_age_ns`` (60 s) has passed
  since ``eval_ts_ns``; ``auto_reprice=False`` leaves that to the caller (e.g. a throttled timer).

Rounding: revert-then-add leaves an absolute error of order eps × the largest magnitude that
passed through a sum since the last full recompute (``reprice``/``recentre``/``rebuild`` resum
from scratch); buckets whose last live contract leaves are reset to exactly 0.0.

Time passing: T = (expiry_ts_ns − eval_ts_ns)/(365 days) (Act/365 calendar time, as the Cboe
method's minutes/525,600); charm/T decay is picked up at the next reprice. Contracts with T ≤ 0
(at/after settlement) carry no exposure. 0DTE = expiry on the same New York calendar date as
``eval_ts_ns``.

Rates: one constant ``rate`` and ``div_yield`` for every expiry (DOMAIN.md: a constant is a fair
approximation). The per-expiry parity forward is maintained and reported (``forward``) but not
fed back into the greeks: doing so would make every forward change an O(expiry) re-evaluation.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core import bs
from streamer.core import iv as ivsolve

NS_PER_DAY = 86_400 * 10**9
NS_PER_YEAR = 365 * NS_PER_DAY
_NY = ZoneInfo("America/New_York")
_NAN = float("nan")

Key = tuple[int, float, str]
"""Contract key: (expiry_ts_ns UTC ns, strike in index points, right 'C' or 'P')."""

Positioning = Callable[[Key], float] | Mapping[Key, float]


def default_dealer_sign(key: Key) -> float:
    """Dealer sign under "customers long puts, short calls": +1 for calls, −1 for puts.

    >>> default_dealer_sign((0, 100.0, "C")), default_dealer_sign((0, 100.0, "P"))
    (1.0, -1.0)
    """
    return 1.0 if key[2] == "C" else -1.0


@lru_cache(maxsize=4096)
def ny_date_ordinal(ts_ns: int) -> int:
    """New York calendar date of a UTC ns instant, as a proleptic ordinal.

    >>> ny_date_ordinal(1704488400 * 10**9) == datetime(2024, 1, 5).toordinal()  # 16:00 ET
    True
    """
    return datetime.fromtimestamp(ts_ns // 10**9, tz=timezone.utc).astimezone(_NY).toordinal()


@dataclass(slots=True)
class ExposureTotals:
    """Four dealer exposures: $ per 1% move, $ delta, $ delta per vol point, $ delta per day."""

    gex_usd_per_pct: float = 0.0
    dex_usd: float = 0.0
    vanna_usd_per_vol_pt: float = 0.0
    charm_usd_per_day: float = 0.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(gex, dex, vanna, charm) in the units of the field names."""
        return (self.gex_usd_per_pct, self.dex_usd, self.vanna_usd_per_vol_pt,
                self.charm_usd_per_day)


@dataclass(slots=True)
class Forward:
    """Parity forward of one expiry: F (index points), K* (points), discount e^{−rT}, T (years)."""

    forward: float
    strike: float
    discount: float
    t_years: float


@dataclass(slots=True)
class Exposures:
    """Full exposure report at one evaluation point (same layout for incremental and batch)."""

    spot: float
    now_ts_ns: int
    total: ExposureTotals
    zero_dte: ExposureTotals
    strikes: np.ndarray            # sorted unique strikes (points)
    strike_gex: np.ndarray         # $ per 1%, dealer-signed
    strike_dex: np.ndarray         # $ delta
    strike_vanna: np.ndarray       # $ delta per vol point
    strike_charm: np.ndarray       # $ delta per day
    strike_call_gamma: np.ndarray  # $ per 1%, unsigned call gamma (walls)
    strike_put_gamma: np.ndarray   # $ per 1%, unsigned put gamma (walls)
    expiries: np.ndarray           # sorted unique expiry_ts_ns
    expiry_gex: np.ndarray
    expiry_dex: np.ndarray
    expiry_vanna: np.ndarray
    expiry_charm: np.ndarray
    grid_spots: np.ndarray         # spot grid (points)
    grid_gex: np.ndarray           # total GEX ($ per 1%) if spot were at each grid level
    gamma_flip: float              # zero-gamma level from the grid profile (nan: none)
    call_wall: float
    put_wall: float
    abs_gamma_strike: float
    strike_flip: float = _NAN      # alternative per-strike zero-gamma level (nan: none)


# ----------------------------------------------------------------------------- pure helpers

def make_grid(centre: float, points: int = 60, half_width: float = 0.20) -> np.ndarray:
    """Spot grid of ``points`` levels over centre × [1 − half_width, 1 + half_width] (points).

    >>> make_grid(100.0, 5, 0.2).tolist()
    [80.0, 90.0, 100.0, 110.0, 120.0]
    """
    return np.linspace(centre * (1.0 - half_width), centre * (1.0 + half_width), points)


def gamma_flip_from_profile(grid: np.ndarray, profile: np.ndarray,
                            gross: np.ndarray | None = None, rtol: float = 1e-9) -> float:
    """Zero-gamma level: first sign change of the GEX profile going up the grid, linearly interpolated.

    Values with |profile| ≤ rtol × gross (the sum of |contributions| at that grid level) are
    treated as zero (rounding residue of the incremental sums) and skipped; the crossing is
    interpolated between the last non-zero level below and the first non-zero level above it.
    Returns nan when the profile does not change sign on the grid (grid too narrow, or one-signed).

    >>> gamma_flip_from_profile(np.array([90.0, 100.0, 110.0]), np.array([-1.0, -1.0, 3.0]))
    102.5
    """
    p = np.asarray(profile, dtype=float)
    tol = rtol * (np.abs(p) if gross is None else np.asarray(gross, dtype=float))
    nz = np.flatnonzero(np.abs(p) > tol)
    if nz.size < 2:
        return _NAN
    s = np.sign(p[nz])
    ch = np.flatnonzero(s[:-1] != s[1:])
    if ch.size == 0:
        return _NAN
    a, b = nz[ch[0]], nz[ch[0] + 1]
    pa, pb = p[a], p[b]
    return float(grid[a] + (grid[b] - grid[a]) * pa / (pa - pb))


def per_strike_flip(strikes: np.ndarray, net_gex: np.ndarray, spot: float | None = None) -> float:
    """Alternative zero-gamma level: a sign change of per-strike net GEX across strikes, interpolated.

    Takes the crossing nearest to ``spot`` (the first going up when spot is None); strikes with
    exactly zero net GEX are skipped. Far-OTM strikes change sign too, hence "nearest to spot".

    >>> per_strike_flip(np.array([90.0, 100.0, 110.0]), np.array([-2.0, 2.0, 1.0]))
    95.0
    """
    g = np.asarray(net_gex, dtype=float)
    nz = np.flatnonzero(g != 0.0)
    if nz.size < 2:
        return _NAN
    v = g[nz]
    ch = np.flatnonzero(np.sign(v[:-1]) != np.sign(v[1:]))
    if ch.size == 0:
        return _NAN
    a, b = nz[ch], nz[ch + 1]
    lv = strikes[a] + (strikes[b] - strikes[a]) * g[a] / (g[a] - g[b])
    i = 0 if spot is None else int(np.argmin(np.abs(lv - spot)))
    return float(lv[i])


def _wall(strikes: np.ndarray, values: np.ndarray) -> float:
    """Strike of the largest positive value (lowest strike on ties), nan if none positive."""
    if values.size == 0:
        return _NAN
    i = int(np.argmax(values))
    return float(strikes[i]) if values[i] > 0.0 else _NAN


def valid_mid(bid: float, ask: float) -> float:
    """Mid price if the quote is usable (0 ≤ bid ≤ ask, ask > 0, finite), else nan.

    >>> valid_mid(1.0, 1.5), math.isnan(valid_mid(2.0, 1.0))
    (1.25, True)
    """
    if bid >= 0.0 and ask > 0.0 and ask >= bid and math.isfinite(ask):
        return 0.5 * (bid + ask)
    return _NAN


def forward_from_parity(strikes: np.ndarray, call_mid: np.ndarray, put_mid: np.ndarray,
                        t_years: float, rate: float) -> tuple[float, float]:
    """Batch parity forward: K* = argmin |C − P| over strikes with both mids, F = K* + e^{rT}(C − P).

    Ties go to the lowest strike. Returns (F, K*) in index points, (nan, nan) without any pair.

    >>> forward_from_parity(np.array([95.0, 100.0, 105.0]), np.array([7.0, 4.0, 2.0]),
    ...                     np.array([2.0, 3.9, 7.0]), 0.5, 0.0)
    (100.1, 100.0)
    """
    k = np.asarray(strikes, dtype=float)
    d = np.asarray(call_mid, dtype=float) - np.asarray(put_mid, dtype=float)
    ok = np.isfinite(d)
    if not ok.any():
        return _NAN, _NAN
    k, d = k[ok], d[ok]
    order = np.lexsort((k, np.abs(d)))
    i = order[0]
    return float(k[i] + math.exp(rate * t_years) * d[i]), float(k[i])


def _point_greeks(spot: float, strike: np.ndarray, t: np.ndarray, rate: float, q: float,
                  iv: np.ndarray, is_call: np.ndarray) -> tuple[np.ndarray, ...]:
    """Vectorized (gamma, delta, vanna, charm) at one spot; zeros where T ≤ 0 or iv invalid."""
    n = strike.shape[0]
    out = tuple(np.zeros(n) for _ in range(4))
    ok = (t > 0.0) & (iv > 0.0) & np.isfinite(iv)
    if ok.any():
        g = bs.greeks(spot, strike[ok], t[ok], rate, q, iv[ok], is_call[ok])
        for arr, src in zip(out, (g.gamma, g.delta, g.vanna, g.charm)):
            arr[ok] = src
    return out


def _grid_gamma(grid: np.ndarray, strike: np.ndarray, t: np.ndarray, rate: float, q: float,
                iv: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Gamma of each contract (rows) at each grid spot (columns), IV held fixed; 0 where invalid."""
    n = strike.shape[0]
    out = np.zeros((n, grid.shape[0]))
    ok = np.flatnonzero((t > 0.0) & (iv > 0.0) & np.isfinite(iv))
    for lo in range(0, ok.size, chunk):
        idx = ok[lo:lo + chunk]
        out[idx] = gamma_on_grid(grid[None, :], strike[idx, None], t[idx, None], rate, q,
                                 iv[idx, None])
    return out


def gamma_on_grid(grid: np.ndarray | float, strike: np.ndarray | float, t: np.ndarray | float,
                  rate: float, q: float, iv: np.ndarray | float) -> np.ndarray:
    """BSM gamma (per point of S) broadcast over spot levels; requires T > 0 and iv > 0.

    Same value as ``bs.greeks(...).gamma`` (gamma does not depend on the right); written out
    here because the per-update grid row is the hot path and needs gamma only.

    >>> round(float(gamma_on_grid(100.0, 100.0, 1.0, 0.0, 0.0, 0.2)), 6)
    0.019848
    """
    sq = np.sqrt(t)
    vs = iv * sq
    d1 = (np.log(grid / strike) + (rate - q + 0.5 * iv * iv) * t) / vs
    return np.exp(-q * t - 0.5 * d1 * d1) / (grid * vs * math.sqrt(2.0 * math.pi))


def exposures_batch(expiry_ts_ns: np.ndarray, strike: np.ndarray, is_call: np.ndarray,
                    iv: np.ndarray, open_interest: np.ndarray, spot: float, now_ts_ns: int,
                    rate: float, div_yield: float, *, dealer_sign: np.ndarray | None = None,
                    multiplier: float = 100.0, grid_spots: np.ndarray | None = None) -> Exposures:
    """Dealer exposures from scratch with vectorized greeks (reference and offline report).

    Arrays are per contract: expiry_ts_ns (UTC ns), strike (points), is_call (bool), iv (annual
    decimal; nan/≤0 → no exposure), open_interest (contracts). spot in points, now_ts_ns UTC ns,
    rate/div_yield continuous annual decimals, dealer_sign default +1 calls / −1 puts. The grid
    defaults to 60 levels over ±20% around spot.

    >>> e = exposures_batch(np.array([NS_PER_YEAR]), np.array([100.0]), np.array([True]),
    ...                     np.array([0.2]), np.array([10.0]), 100.0, 0, 0.0, 0.0)
    >>> round(e.total.gex_usd_per_pct, 2)  # 0.019848 gamma × 10 OI × 100 × 100² × 0.01
    1984.76
    """
    exp = np.asarray(expiry_ts_ns, dtype=np.int64)
    k = np.asarray(strike, dtype=float)
    call = np.asarray(is_call, dtype=bool)
    vol = np.asarray(iv, dtype=float)
    oi = np.asarray(open_interest, dtype=float)
    sign = (np.where(call, 1.0, -1.0) if dealer_sign is None
            else np.asarray(dealer_sign, dtype=float))
    grid = make_grid(spot) if grid_spots is None else np.asarray(grid_spots, dtype=float)
    t = (exp - now_ts_ns).astype(float) / NS_PER_YEAR
    gam, dlt, van, chm = _point_greeks(spot, k, t, rate, div_yield, vol, call)
    oi_pos = np.where(oi > 0.0, oi, 0.0)
    m = sign * oi_pos * multiplier
    gex = gam * m * spot * spot * 0.01
    dex = dlt * m * spot
    vex = van * m * spot * 0.01
    cex = chm * m * spot / 365.0
    gabs = gam * oi_pos * multiplier * spot * spot * 0.01
    rows = _grid_gamma(grid, k, t, rate, div_yield, vol) * (m[:, None] * (grid * grid * 0.01))
    today = ny_date_ordinal(int(now_ts_ns))
    zd = np.array([ny_date_ordinal(int(e)) == today for e in exp], dtype=bool) & (t > 0.0)

    strikes, si = np.unique(k, return_inverse=True)
    expiries, ei = np.unique(exp, return_inverse=True)
    ns, ne = strikes.size, expiries.size

    def by(idx: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
        return np.bincount(idx, weights=w, minlength=size)

    s_gex, s_call, s_put = by(si, gex, ns), by(si, gabs * call, ns), by(si, gabs * ~call, ns)
    profile = rows.sum(axis=0)
    return Exposures(
        spot=float(spot), now_ts_ns=int(now_ts_ns),
        total=ExposureTotals(float(gex.sum()), float(dex.sum()), float(vex.sum()),
                             float(cex.sum())),
        zero_dte=ExposureTotals(float(gex[zd].sum()), float(dex[zd].sum()),
                                float(vex[zd].sum()), float(cex[zd].sum())),
        strikes=strikes, strike_gex=s_gex, strike_dex=by(si, dex, ns),
        strike_vanna=by(si, vex, ns), strike_charm=by(si, cex, ns),
        strike_call_gamma=s_call, strike_put_gamma=s_put,
        expiries=expiries, expiry_gex=by(ei, gex, ne), expiry_dex=by(ei, dex, ne),
        expiry_vanna=by(ei, vex, ne), expiry_charm=by(ei, cex, ne),
        grid_spots=grid, grid_gex=profile,
        gamma_flip=gamma_flip_from_profile(grid, profile, np.abs(rows).sum(axis=0)),
        call_wall=_wall(strikes, s_call), put_wall=_wall(strikes, s_put),
        abs_gamma_strike=_wall(strikes, s_call + s_put),
        strike_flip=per_strike_flip(strikes, s_gex, spot),
    )


# ----------------------------------------------------------------------------- contract state

@dataclass(slots=True)
class Contract:
    """One contract's inputs (quote, IV, OI, dealer sign) and its current contributions at the eval point."""

    expiry_ts_ns: int
    strike: float
    right: str                     # 'C' or 'P'
    bid: float = _NAN              # points
    ask: float = _NAN              # points
    quote_ts_ns: int = -1          # UTC ns of the last accepted quote (−1: none)
    iv: float = _NAN               # annual decimal (mid IV or vendor IV)
    open_interest: float = 0.0     # contracts
    dealer_sign: float = 1.0       # dealer position per unit OI (+1 long, −1 short)
    # derived, not serialised: contributions at the chain's eval point
    gex: float = 0.0               # $ per 1%
    dex: float = 0.0               # $ delta
    vanna: float = 0.0             # $ delta per vol point
    charm: float = 0.0             # $ delta per day
    gamma_usd: float = 0.0         # unsigned gamma $ per 1% (walls)
    live: bool = False             # has an exposure (T > 0, iv > 0, OI > 0)
    row: int = -1                  # row in the chain's grid matrix

    @property
    def key(self) -> Key:
        """(expiry_ts_ns, strike, right)."""
        return (self.expiry_ts_ns, self.strike, self.right)

    @property
    def mid(self) -> float:
        """Quote mid in points, nan if the quote is unusable."""
        return valid_mid(self.bid, self.ask)

    def to_state(self) -> dict:
        """JSON-plain state (inputs only; contributions are rebuilt at the chain's eval point).

        >>> Contract(1, 100.0, "C", 1.0, 1.2, 5, 0.2, 10.0).to_state()["ask"]
        1.2
        """
        def f(x: float) -> float | None:
            return x if math.isfinite(x) else None
        return {"expiry_ts_ns": int(self.expiry_ts_ns), "strike": float(self.strike),
                "right": self.right, "bid": f(float(self.bid)), "ask": f(float(self.ask)),
                "quote_ts_ns": int(self.quote_ts_ns), "iv": f(float(self.iv)),
                "open_interest": float(self.open_interest),
                "dealer_sign": float(self.dealer_sign)}

    @classmethod
    def from_state(cls, state: Mapping) -> Contract:
        """Inverse of :meth:`to_state` (None → nan).

        >>> c = Contract(1, 100.0, "P", iv=0.3); Contract.from_state(c.to_state()).to_state() == c.to_state()
        True
        """
        def f(x: object) -> float:
            return _NAN if x is None else float(x)
        return cls(int(state["expiry_ts_ns"]), float(state["strike"]), str(state["right"]),
                   f(state.get("bid")), f(state.get("ask")), int(state.get("quote_ts_ns", -1)),
                   f(state.get("iv")), float(state.get("open_interest", 0.0)),
                   float(state.get("dealer_sign", 1.0)))


@dataclass(slots=True)
class ChainConfig:
    """Chain settings; defaults documented with their source."""

    rate: float = 0.05               # continuous annual; constant per DOMAIN.md (~T-bill 2023-24)
    div_yield: float = 0.013         # SPX dividend yield; SOURCES.md gamma check used q≈1.3%
    multiplier: float = 100.0        # SPX/SPY contract multiplier
    grid_points: int = 60            # DOMAIN.md: 60 points over ±20%
    grid_half_width: float = 0.20
    reprice_rel_move: float = 0.0025  # re-evaluate greeks after a 0.25% spot move
    reprice_max_age_ns: int = 60 * 10**9  # ... or after 60 s of clock
    auto_reprice: bool = True        # on_spot triggers reprice itself


class _ArgMax:
    """Lazily-invalidated argmax over per-strike values: O(1) per update, O(strikes) rescan on read after the leader dropped."""

    __slots__ = ("k", "v", "valid")

    def __init__(self) -> None:
        self.k: float = _NAN
        self.v: float = -math.inf
        self.valid = True

    def touch(self, k: float, v: float) -> None:
        """Value at strike k is now v (−inf: strike removed)."""
        if not self.valid:
            return
        if k == self.k:
            if v >= self.v:
                self.v = v
            else:
                self.valid = False
        elif v > self.v or (v == self.v and k < self.k):
            self.k, self.v = k, v


class _ExpiryBook:
    """Per-expiry aggregates, 0DTE flag and parity-forward book (lazy min-heap of |C − P|)."""

    __slots__ = ("agg", "count", "live", "zdte", "pairs", "seq", "heap", "n_valid")

    def __init__(self) -> None:
        self.agg = [0.0, 0.0, 0.0, 0.0]
        self.count = 0
        self.live = 0
        self.zdte = False
        self.pairs: dict[float, list[float]] = {}   # strike -> [call_mid, put_mid]
        self.seq: dict[float, int] = {}            # strike -> version of its live heap entry
        self.heap: list[tuple[float, float, int]] = []
        self.n_valid = 0

    def set_mid(self, strike: float, is_call: bool, mid: float, seq: int) -> None:
        """Record a new mid; push the strike's new |C − P| (O(log strikes), stale entries lazily dropped)."""
        pair = self.pairs.get(strike)
        if pair is None:
            pair = self.pairs[strike] = [_NAN, _NAN]
        old_ok = math.isfinite(pair[0] - pair[1])
        pair[0 if is_call else 1] = mid
        diff = pair[0] - pair[1]
        ok = math.isfinite(diff)
        self.n_valid += int(ok) - int(old_ok)
        self.seq[strike] = seq
        if ok:
            heapq.heappush(self.heap, (abs(diff), strike, seq))
        if len(self.heap) > 2 * self.n_valid + 32:      # compaction: amortized O(1)
            self.heap = [e for e in self.heap if self.seq.get(e[1]) == e[2]]
            heapq.heapify(self.heap)

    def best(self) -> tuple[float, float]:
        """(K*, C − P) at the strike minimizing |C − P| (lowest strike on ties), nan if none."""
        h = self.heap
        while h and self.seq.get(h[0][1]) != h[0][2]:
            heapq.heappop(h)
        if not h:
            return _NAN, _NAN
        k = h[0][1]
        pair = self.pairs[k]
        return k, pair[0] - pair[1]


# strike bucket layout: 4 signed sums, unsigned call/put gamma $, contracts, live calls, live puts.
# The live counters let a bucket return to exactly 0.0 when its last live contract leaves, so
# rounding residue of revert-then-add never shows up as a phantom wall or a phantom exposure.
_S_GEX, _S_DEX, _S_VAN, _S_CHM, _S_CALL, _S_PUT, _S_N, _S_LC, _S_LP = range(9)


class ChainState:
    """Live option chain of one underlying with O(1) revert-then-add dealer exposures.

    >>> ch = ChainState(spot=100.0, now_ts_ns=0, config=ChainConfig(rate=0.0, div_yield=0.0))
    >>> _ = ch.on_open_interest(NS_PER_YEAR, 100.0, "C", 10)
    >>> _ = ch.on_quote(NS_PER_YEAR, 100.0, "C", 7.9, 8.0, ts_ns=1, iv=0.2)
    >>> round(ch.totals().gex_usd_per_pct, 2)
    1984.76
    >>> _ = ch.on_open_interest(NS_PER_YEAR, 100.0, "C", 0)   # reverts the contribution
    >>> ch.totals().gex_usd_per_pct
    0.0
    """

    def __init__(self, spot: float, now_ts_ns: int, config: ChainConfig | None = None,
                 positioning: Positioning | None = None, grid_centre: float | None = None) -> None:
        self.config = config if config is not None else ChainConfig()
        if positioning is None:
            self._sign_of: Callable[[Key], float] = default_dealer_sign
        elif isinstance(positioning, Mapping):
            pos = positioning
            self._sign_of = lambda key: float(pos.get(key, default_dealer_sign(key)))
        else:
            self._sign_of = positioning
        self.spot = float(spot)                 # live spot (points)
        self.spot_ts_ns = int(now_ts_ns)
        self.eval_spot = float(spot)            # spot at which contributions are evaluated
        self.eval_ts_ns = int(now_ts_ns)        # clock at which contributions are evaluated
        cfg = self.config
        self.grid = make_grid(float(grid_centre if grid_centre is not None else spot),
                              cfg.grid_points, cfg.grid_half_width)
        self._grid_scale = self.grid * self.grid * 0.01
        self._rows = np.zeros((64, cfg.grid_points))
        self._order: list[Contract] = []
        self._contracts: dict[Key, Contract] = {}
        self._strikes: dict[float, list[float]] = {}
        self._expiries: dict[int, _ExpiryBook] = {}
        self._total = [0.0, 0.0, 0.0, 0.0]
        self._zdte = [0.0, 0.0, 0.0, 0.0]
        self._live = 0
        self._zdte_live = 0
        self._profile = np.zeros(cfg.grid_points)
        self._gross = np.zeros(cfg.grid_points)
        self._walls = (_ArgMax(), _ArgMax(), _ArgMax())  # call, put, abs
        self._flip_cache: float | None = None
        self._seq = 0
        self._today = ny_date_ordinal(self.eval_ts_ns)
        self.stale_quotes = 0                   # quotes ignored as older than the stored one
        self.reprices = 0

    # ------------------------------------------------------------------ inputs
    def __len__(self) -> int:
        return len(self._contracts)

    def get(self, key: Key) -> Contract | None:
        """Contract record for key, or None."""
        return self._contracts.get(key)

    def contracts(self) -> Iterable[Contract]:
        """All contract records (do not mutate)."""
        return iter(self._order)

    def _insert(self, key: Key) -> Contract:
        c = Contract(key[0], key[1], key[2], dealer_sign=float(self._sign_of(key)))
        c.row = len(self._order)
        if c.row >= self._rows.shape[0]:
            grown = np.zeros((2 * self._rows.shape[0], self._rows.shape[1]))
            grown[:c.row] = self._rows[:c.row]
            self._rows = grown
        self._rows[c.row] = 0.0
        self._order.append(c)
        self._contracts[key] = c
        b = self._strikes.get(key[1])
        if b is None:
            self._strikes[key[1]] = b = [0.0] * 6 + [0, 0, 0]
        b[_S_N] += 1
        e = self._expiries.get(key[0])
        if e is None:
            self._expiries[key[0]] = e = _ExpiryBook()
            e.zdte = ny_date_ordinal(key[0]) == self._today
        e.count += 1
        return c

    def on_quote(self, expiry_ts_ns: int, strike: float, right: str, bid: float, ask: float,
                 ts_ns: int, iv: float | None = None) -> Contract | None:
        """Apply a quote (points, UTC ns); iv is the mid IV if known (else solved when iv.py exists, else kept).

        Quotes older than the stored one are ignored (returns None, counts ``stale_quotes``);
        an equal timestamp replaces (last writer wins). Returns the updated contract, whose
        ``to_state()`` the caller writes back to its table.
        """
        key = (int(expiry_ts_ns), float(strike), right)
        c = self._contracts.get(key)
        if c is None:
            c = self._insert(key)
        elif ts_ns < c.quote_ts_ns:
            self.stale_quotes += 1
            return None
        c.bid, c.ask, c.quote_ts_ns = float(bid), float(ask), int(ts_ns)
        if iv is not None:
            c.iv = float(iv)
        else:
            c.iv = self._solve_iv(c)
        self._seq += 1
        self._expiries[key[0]].set_mid(key[1], right == "C", c.mid, self._seq)
        self._refresh(c)
        return c

    def _solve_iv(self, c: Contract) -> float:
        """Mid IV (annual decimal) at the live spot and the quote's time; nan if the quote has none."""
        mid = c.mid
        if not math.isfinite(mid):
            return _NAN
        t = (c.expiry_ts_ns - c.quote_ts_ns) / NS_PER_YEAR
        cfg = self.config
        v, _ = ivsolve.implied_vol(mid, self.spot, c.strike, t, cfg.rate, cfg.div_yield,
                                   c.right == "C")
        return v

    def on_open_interest(self, expiry_ts_ns: int, strike: float, right: str,
                         open_interest: float) -> Contract:
        """Set a contract's open interest (contracts) and re-evaluate its contribution."""
        key = (int(expiry_ts_ns), float(strike), right)
        c = self._contracts.get(key) or self._insert(key)
        c.open_interest = float(open_interest)
        self._refresh(c)
        return c

    def on_iv(self, expiry_ts_ns: int, strike: float, right: str, iv: float) -> Contract:
        """Set a contract's IV (annual decimal, e.g. vendor IV) and re-evaluate its contribution."""
        key = (int(expiry_ts_ns), float(strike), right)
        c = self._contracts.get(key) or self._insert(key)
        c.iv = float(iv)
        self._refresh(c)
        return c

    def set_dealer_sign(self, key: Key, sign: float) -> Contract:
        """Override one contract's dealer position per unit OI (+1 long, −1 short, any real)."""
        c = self._contracts.get(key) or self._insert(key)
        c.dealer_sign = float(sign)
        self._refresh(c)
        return c

    def _evaluate(self, c: Contract) -> tuple[float, float, float, float, float, np.ndarray | None]:
        """Contributions of c at the eval point: (gex, dex, vanna, charm, gamma_usd, grid row)."""
        t = (c.expiry_ts_ns - self.eval_ts_ns) / NS_PER_YEAR
        iv = c.iv
        if not (t > 0.0 and iv > 0.0 and c.open_interest > 0.0 and math.isfinite(iv)):
            return 0.0, 0.0, 0.0, 0.0, 0.0, None
        cfg = self.config
        s = self.eval_spot
        g = bs.greeks1(s, c.strike, t, cfg.rate, cfg.div_yield, iv, c.right == "C")
        unit = c.open_interest * cfg.multiplier
        m = c.dealer_sign * unit
        gam = float(g.gamma)
        row = gamma_on_grid(self.grid, c.strike, t, cfg.rate, cfg.div_yield, iv)
        row *= m * self._grid_scale
        return (gam * m * s * s * 0.01, float(g.delta) * m * s, float(g.vanna) * m * s * 0.01,
                float(g.charm) * m * s / 365.0, gam * unit * s * s * 0.01, row)

    def _refresh(self, c: Contract) -> None:
        """Revert c's old contribution from every aggregate and add its new one (O(1), O(grid))."""
        gex, dex, van, chm, gusd, row = self._evaluate(c)
        d = (gex - c.gex, dex - c.dex, van - c.vanna, chm - c.charm)
        live = row is not None
        dl = int(live) - int(c.live)
        is_call = c.right == "C"
        b = self._strikes[c.strike]
        e = self._expiries[c.expiry_ts_ns]
        slot, lslot = (_S_CALL, _S_LC) if is_call else (_S_PUT, _S_LP)
        self._live += dl
        e.live += dl
        b[lslot] += dl
        tot, agg = self._total, e.agg
        for i in range(4):
            tot[i] += d[i]
            b[i] += d[i]
            agg[i] += d[i]
        b[slot] += gusd - c.gamma_usd
        if b[lslot] == 0:                       # exact zeros once nothing live is left
            b[slot] = 0.0
            if b[_S_LC] + b[_S_LP] == 0:
                b[0] = b[1] = b[2] = b[3] = 0.0
        if e.live == 0:
            e.agg = [0.0, 0.0, 0.0, 0.0]
        if e.zdte:
            self._zdte_live += dl
            z = self._zdte
            for i in range(4):
                z[i] += d[i]
            if self._zdte_live == 0:
                self._zdte = [0.0, 0.0, 0.0, 0.0]
        c.gex, c.dex, c.vanna, c.charm, c.gamma_usd, c.live = gex, dex, van, chm, gusd, live
        old = self._rows[c.row]
        if self._live == 0:
            self._total = [0.0, 0.0, 0.0, 0.0]
            self._profile[:] = 0.0
            self._gross[:] = 0.0
            old[:] = 0.0
        elif row is None:
            if dl:
                self._profile -= old
                self._gross -= np.abs(old)
                old[:] = 0.0
        else:
            self._profile += row - old
            self._gross += np.abs(row) - np.abs(old)
            old[:] = row
        self._flip_cache = None
        cw, pw, aw = self._walls
        (cw if is_call else pw).touch(c.strike, b[slot])
        aw.touch(c.strike, b[_S_CALL] + b[_S_PUT])

    def remove(self, key: Key) -> Contract | None:
        """Drop a contract (e.g. delisted/expired): revert its contribution and free its row."""
        c = self._contracts.get(key)
        if c is None:
            return None
        c.open_interest = 0.0
        self._refresh(c)
        self._seq += 1
        self._expiries[c.expiry_ts_ns].set_mid(c.strike, c.right == "C", _NAN, self._seq)
        last = self._order.pop()
        if last is not c:                       # swap-remove keeps rows dense
            self._rows[c.row] = self._rows[last.row]
            last.row = c.row
            self._order[c.row] = last
        del self._contracts[key]
        b = self._strikes[c.strike]
        b[_S_N] -= 1
        if b[_S_N] == 0:
            del self._strikes[c.strike]
            for w in self._walls:
                w.touch(c.strike, -math.inf)
        e = self._expiries[c.expiry_ts_ns]
        e.count -= 1
        if e.count == 0:
            del self._expiries[c.expiry_ts_ns]
        return c

    def drop_expired(self, now_ts_ns: int) -> int:
        """Remove contracts settled at or before now_ts_ns (UTC ns); returns how many."""
        dead = [c.key for c in self._order if c.expiry_ts_ns <= now_ts_ns]
        for k in dead:
            self.remove(k)
        return len(dead)

    # ------------------------------------------------------------------ spot and clock
    def on_spot(self, spot: float, ts_ns: int) -> bool:
        """Record a spot tick (points, UTC ns): O(1); reprices when past the configured thresholds.

        Returns True when a reprice ran.
        """
        self.spot = float(spot)
        self.spot_ts_ns = int(ts_ns)
        cfg = self.config
        if cfg.auto_reprice and self.needs_reprice():
            self.reprice(spot, ts_ns)
            return True
        return False

    def needs_reprice(self) -> bool:
        """True if the live spot/clock moved past ``reprice_rel_move`` / ``reprice_max_age_ns``."""
        cfg = self.config
        return (abs(self.spot / self.eval_spot - 1.0) > cfg.reprice_rel_move
                or self.spot_ts_ns - self.eval_ts_ns > cfg.reprice_max_age_ns)

    def reprice(self, spot: float | None = None, now_ts_ns: int | None = None) -> None:
        """Move the eval point and recompute every contribution vectorized (O(N); O(N·grid) if the clock moved)."""
        spot = self.spot if spot is None else float(spot)
        now = self.spot_ts_ns if now_ts_ns is None else int(now_ts_ns)
        grid_too = now != self.eval_ts_ns
        self.eval_spot, self.eval_ts_ns = spot, now
        self.spot, self.spot_ts_ns = spot, max(self.spot_ts_ns, now)
        self._recompute_all(grid_too)
        self.reprices += 1

    def recentre(self, centre: float | None = None) -> None:
        """Re-centre the spot grid (default on the live spot) and recompute the profile: O(N·grid)."""
        cfg = self.config
        self.grid = make_grid(self.spot if centre is None else float(centre),
                              cfg.grid_points, cfg.grid_half_width)
        self._grid_scale = self.grid * self.grid * 0.01
        self._recompute_all(True)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        o = self._order
        n = len(o)
        exp = np.fromiter((c.expiry_ts_ns for c in o), np.int64, n)
        k = np.fromiter((c.strike for c in o), float, n)
        call = np.fromiter((c.right == "C" for c in o), bool, n)
        iv = np.fromiter((c.iv for c in o), float, n)
        oi = np.fromiter((c.open_interest for c in o), float, n)
        sign = np.fromiter((c.dealer_sign for c in o), float, n)
        return exp, k, call, iv, oi, sign

    def _recompute_all(self, grid_too: bool) -> None:
        """Vectorized re-evaluation of every contract and rebuild of all aggregates from scratch."""
        cfg = self.config
        self._today = ny_date_ordinal(self.eval_ts_ns)
        exp, k, call, iv, oi, sign = self._arrays()
        n = k.size
        s = self.eval_spot
        t = (exp - self.eval_ts_ns).astype(float) / NS_PER_YEAR
        oi_pos = np.where(oi > 0.0, oi, 0.0)
        unit = oi_pos * cfg.multiplier
        m = sign * unit
        vol = np.where(oi_pos > 0.0, iv, _NAN)
        gam, dlt, van, chm = _point_greeks(s, k, t, cfg.rate, cfg.div_yield, vol, call)
        gex = gam * m * s * s * 0.01
        dex = dlt * m * s
        vex = van * m * s * 0.01
        cex = chm * m * s / 365.0
        gusd = gam * unit * s * s * 0.01
        live = (t > 0.0) & (vol > 0.0) & np.isfinite(vol)
        for i, c in enumerate(self._order):
            c.gex, c.dex, c.vanna, c.charm, c.gamma_usd, c.live = (
                float(gex[i]), float(dex[i]), float(vex[i]), float(cex[i]), float(gusd[i]),
                bool(live[i]))
        self._live = int(live.sum())
        if grid_too:
            self._rows[:n] = _grid_gamma(self.grid, k, t, cfg.rate, cfg.div_yield, vol)
            self._rows[:n] *= m[:, None] * self._grid_scale
        rows = self._rows[:n]
        self._profile = rows.sum(axis=0)
        self._gross = np.abs(rows).sum(axis=0)
        self._flip_cache = None
        self._total = [float(gex.sum()), float(dex.sum()), float(vex.sum()), float(cex.sum())]
        # strike buckets
        strikes, si = np.unique(k, return_inverse=True)
        cols = [np.bincount(si, weights=w, minlength=strikes.size)
                for w in (gex, dex, vex, cex, gusd * call, gusd * ~call)]
        cnts = [np.bincount(si, weights=w, minlength=strikes.size)
                for w in (np.ones(n), live & call, live & ~call)]
        self._strikes = {float(strikes[j]): [float(col[j]) for col in cols]
                         + [int(col[j]) for col in cnts] for j in range(strikes.size)}
        # expiry buckets (forward books are kept: they do not depend on the eval point)
        expiries, ei = np.unique(exp, return_inverse=True)
        ecols = [np.bincount(ei, weights=w, minlength=expiries.size) for w in (gex, dex, vex, cex)]
        ecnt = np.bincount(ei, minlength=expiries.size)
        elive = np.bincount(ei, weights=live, minlength=expiries.size)
        z = [0.0, 0.0, 0.0, 0.0]
        for j, e_ts in enumerate(expiries.tolist()):
            e = self._expiries.get(e_ts)
            if e is None:
                self._expiries[e_ts] = e = _ExpiryBook()
            e.agg = [float(col[j]) for col in ecols]
            e.count = int(ecnt[j])
            e.live = int(elive[j])
            e.zdte = ny_date_ordinal(e_ts) == self._today
        zmask = np.array([self._expiries[int(x)].zdte for x in exp.tolist()], dtype=bool)
        self._zdte_live = int((zmask & live).sum())
        if zmask.any():
            z = [float(gex[zmask].sum()), float(dex[zmask].sum()), float(vex[zmask].sum()),
                 float(cex[zmask].sum())]
        self._zdte = z
        for w in self._walls:
            w.valid = False

    # ------------------------------------------------------------------ bulk load / recovery
    def load_arrays(self, expiry_ts_ns: np.ndarray, strike: np.ndarray, right: np.ndarray,
                    bid: np.ndarray, ask: np.ndarray, iv: np.ndarray, open_interest: np.ndarray,
                    quote_ts_ns: int | np.ndarray, solve_missing_iv: bool = True) -> None:
        """Initial load of many contracts (arrays as in ``cboe_csv.ChainSnapshot``) via the vectorized path.

        iv annual decimal; entries that are not > 0 (vendor "0 = not computed", nan) are solved
        from the mid with ``iv.implied_vol_batch`` at the live spot when ``solve_missing_iv``.
        """
        n = len(strike)
        qts = np.broadcast_to(np.asarray(quote_ts_ns, dtype=np.int64), (n,))
        vol = np.array(iv, dtype=float)
        if solve_missing_iv:
            b, a = np.asarray(bid, dtype=float), np.asarray(ask, dtype=float)
            with np.errstate(invalid="ignore"):
                ok = (b >= 0.0) & (a > 0.0) & (a >= b) & ~(vol > 0.0)
            if ok.any():
                cfg = self.config
                t = (np.asarray(expiry_ts_ns, dtype=np.int64)[ok] - qts[ok]) / NS_PER_YEAR
                vol[ok], _ = ivsolve.implied_vol_batch(
                    0.5 * (b[ok] + a[ok]), self.spot, np.asarray(strike, dtype=float)[ok], t,
                    cfg.rate, cfg.div_yield, np.asarray(right)[ok] == "C")
        for i in range(n):
            key = (int(expiry_ts_ns[i]), float(strike[i]), str(right[i]))
            c = self._contracts.get(key) or self._insert(key)
            c.bid, c.ask, c.quote_ts_ns = float(bid[i]), float(ask[i]), int(qts[i])
            c.iv, c.open_interest = float(vol[i]), float(open_interest[i])
            self._seq += 1
            self._expiries[key[0]].set_mid(key[1], key[2] == "C", c.mid, self._seq)
        self._recompute_all(True)

    def meta_state(self) -> dict:
        """JSON-plain chain-level state (spot, eval point, grid, config) stored next to the contracts."""
        cfg = self.config
        return {"spot": self.spot, "spot_ts_ns": self.spot_ts_ns, "eval_spot": self.eval_spot,
                "eval_ts_ns": self.eval_ts_ns, "grid": self.grid.tolist(),
                "config": {"rate": cfg.rate, "div_yield": cfg.div_yield,
                           "multiplier": cfg.multiplier, "grid_points": cfg.grid_points,
                           "grid_half_width": cfg.grid_half_width,
                           "reprice_rel_move": cfg.reprice_rel_move,
                           "reprice_max_age_ns": cfg.reprice_max_age_ns,
                           "auto_reprice": cfg.auto_reprice}}

    @classmethod
    def rebuild(cls, contract_states: Iterable[Mapping], meta: Mapping,
                positioning: Positioning | None = None) -> ChainState:
        """Recover a chain from per-contract states and :meth:`meta_state` (vectorized, O(N·grid))."""
        ch = cls(meta["eval_spot"], meta["eval_ts_ns"], ChainConfig(**meta["config"]), positioning)
        ch.grid = np.asarray(meta["grid"], dtype=float)
        ch._grid_scale = ch.grid * ch.grid * 0.01
        for st in contract_states:
            c0 = Contract.from_state(st)
            c = ch._contracts.get(c0.key) or ch._insert(c0.key)
            c.bid, c.ask, c.quote_ts_ns, c.iv = c0.bid, c0.ask, c0.quote_ts_ns, c0.iv
            c.open_interest, c.dealer_sign = c0.open_interest, c0.dealer_sign
            ch._seq += 1
            ch._expiries[c.expiry_ts_ns].set_mid(c.strike, c.right == "C", c.mid, ch._seq)
        ch._recompute_all(True)
        ch.spot, ch.spot_ts_ns = float(meta["spot"]), int(meta["spot_ts_ns"])
        return ch

    # ------------------------------------------------------------------ reads
    def totals(self) -> ExposureTotals:
        """Whole-chain exposures at the eval point."""
        return ExposureTotals(*self._total)

    def zero_dte(self) -> ExposureTotals:
        """Exposures of contracts expiring on the eval date (New York calendar)."""
        return ExposureTotals(*self._zdte)

    def by_expiry(self, expiry_ts_ns: int) -> ExposureTotals:
        """Exposures of one expiry (zeros if unknown)."""
        e = self._expiries.get(int(expiry_ts_ns))
        return ExposureTotals(*e.agg) if e is not None else ExposureTotals()

    def by_strike(self, strike: float) -> ExposureTotals:
        """Exposures at one strike summed over expiries (zeros if unknown)."""
        b = self._strikes.get(float(strike))
        return ExposureTotals(*b[:4]) if b is not None else ExposureTotals()

    def live_totals(self, spot: float | None = None) -> ExposureTotals:
        """Exposures at the live spot without re-evaluating greeks (see module docstring for errors).

        GEX: exact value at eval_spot plus the change of the interpolated grid profile from
        eval_spot to spot (S² scaling outside the grid); DEX: first-order
        gamma correction; vanna/charm: scaled by S/eval_spot.
        """
        s = self.spot if spot is None else float(spot)
        s0 = self.eval_spot
        gex0, dex0, van0, chm0 = self._total
        g = self.grid
        if g[0] <= s <= g[-1] and g[0] <= s0 <= g[-1]:
            # anchored: exact at eval_spot, the profile only supplies the change
            gex = gex0 + float(np.interp(s, g, self._profile) - np.interp(s0, g, self._profile))
        else:
            gex = gex0 * (s / s0) ** 2
        sum_m_gamma = gex0 / (0.01 * s0 * s0)
        dex = s * (dex0 / s0 + sum_m_gamma * (s - s0))
        r = s / s0
        return ExposureTotals(gex, dex, van0 * r, chm0 * r)

    @property
    def grid_gex(self) -> np.ndarray:
        """GEX profile ($ per 1%) at each grid level (copy)."""
        return self._profile.copy()

    def gamma_flip(self) -> float:
        """Zero-gamma level (points) from the grid profile; O(grid), cached until the next update.

        Definition: re-price every contract's gamma at each grid spot with its IV held fixed,
        sum to total GEX(S), and take the first sign change going up the grid, linearly
        interpolated (nan if none on the grid). The cheaper alternative — first sign change of
        per-strike net GEX across strikes (``per_strike_flip``, in ``exposures().strike_flip``) —
        measures where the book changes sign by strike, not the spot level where dealers' net
        gamma changes sign, and generally gives a different level.
        """
        if self._flip_cache is None:
            self._flip_cache = gamma_flip_from_profile(self.grid, self._profile, self._gross)
        return self._flip_cache

    def _wall_of(self, which: int) -> float:
        w = self._walls[which]
        if not w.valid:                         # O(strikes) rescan, only after the leader dropped
            w.k, w.v = _NAN, -math.inf
            for k in sorted(self._strikes):
                b = self._strikes[k]
                v = (b[_S_CALL], b[_S_PUT], b[_S_CALL] + b[_S_PUT])[which]
                if v > w.v:
                    w.k, w.v = k, v
            w.valid = True
        return w.k if w.v > 0.0 else _NAN

    def call_wall(self) -> float:
        """Strike with the largest unsigned call gamma $ (amortized O(1); O(strikes) after the leader fell)."""
        return self._wall_of(0)

    def put_wall(self) -> float:
        """Strike with the largest unsigned put gamma $ (same cost as call_wall)."""
        return self._wall_of(1)

    def abs_gamma_strike(self) -> float:
        """Strike with the largest call + put gamma $, not netted (same cost as call_wall)."""
        return self._wall_of(2)

    def forward(self, expiry_ts_ns: int, now_ts_ns: int | None = None) -> Forward | None:
        """Parity forward of an expiry: K* = argmin |C − P| over mids, F = K* + e^{rT}(C − P).

        O(log strikes) amortized: each quote pushes its strike's |C − P| on a per-expiry
        min-heap; stale entries are dropped on read and the heap is compacted when half stale, so
        no whole-chain rescan is needed and any rebuild stays local to that expiry.
        """
        e = self._expiries.get(int(expiry_ts_ns))
        if e is None:
            return None
        k, d = e.best()
        if not math.isfinite(k):
            return None
        now = self.eval_ts_ns if now_ts_ns is None else int(now_ts_ns)
        t = (int(expiry_ts_ns) - now) / NS_PER_YEAR
        r = self.config.rate
        return Forward(k + math.exp(r * t) * d, k, math.exp(-r * t), t)

    def exposures(self) -> Exposures:
        """Full report at the eval point (O(strikes + expiries)); same layout as exposures_batch."""
        ks = sorted(self._strikes)
        sb = [self._strikes[k] for k in ks]
        cols = [np.array([b[i] for b in sb], dtype=float) for i in range(6)]
        es = sorted(self._expiries)
        eb = [self._expiries[e].agg for e in es]
        ecols = [np.array([a[i] for a in eb], dtype=float) for i in range(4)]
        strikes = np.array(ks, dtype=float)
        return Exposures(
            spot=self.eval_spot, now_ts_ns=self.eval_ts_ns, total=self.totals(),
            zero_dte=self.zero_dte(), strikes=strikes, strike_gex=cols[0], strike_dex=cols[1],
            strike_vanna=cols[2], strike_charm=cols[3], strike_call_gamma=cols[4],
            strike_put_gamma=cols[5], expiries=np.array(es, dtype=np.int64),
            expiry_gex=ecols[0], expiry_dex=ecols[1], expiry_vanna=ecols[2],
            expiry_charm=ecols[3], grid_spots=self.grid.copy(), grid_gex=self.grid_gex,
            gamma_flip=self.gamma_flip(), call_wall=self.call_wall(), put_wall=self.put_wall(),
            abs_gamma_strike=self.abs_gamma_strike(),
            strike_flip=per_strike_flip(strikes, cols[0], self.eval_spot))

    def batch(self) -> Exposures:
        """Recompute everything from the stored contract states with :func:`exposures_batch`."""
        exp, k, call, iv, oi, sign = self._arrays()
        cfg = self.config
        return exposures_batch(exp, k, call, iv, oi, self.eval_spot, self.eval_ts_ns, cfg.rate,
                               cfg.div_yield, dealer_sign=sign, multiplier=cfg.multiplier,
                               grid_spots=self.grid)
