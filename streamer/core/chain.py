"""Option-chain state and dealer exposures per underlying.

:class:`ChainBook` is the live chain of one underlying: a struct of arrays (one slot per contract)
updated by vectorized batches of quotes and open interest, with running exposure sums by strike,
by expiry, in total and for 0DTE, the VIX from the same quotes, and a state that restores bit for
bit (layout and costs in its docstring). :func:`exposures_batch` is the from-scratch reference it is
tested against and the one-shot report's engine (``streamer.chain_report``); the other pure helpers
(``forward_from_parity``, ``gamma_flip_from_profile``, ``per_strike_flip``, ``make_grid``) are the
definitions both use.

Units (per contract, ``m = dealer_sign × OI × multiplier``; S in index points):

* GEX ``gex_usd_per_pct``       = gamma × m × S² × 0.01   ($ of delta per 1% move of S)
* delta exposure ``dex_usd``    = delta × m × S           ($ delta)
* vanna ``vanna_usd_per_vol_pt`` = vanna × m × S × 0.01    ($ delta per 1 vol point of IV)
* charm ``charm_usd_per_day``   = charm × m × S / 365     ($ delta per calendar day)

Exposures are the dealers' own position greeks (before hedging); the hedge flow is the negative.
Default positioning (DOMAIN.md, SqueezeMetrics "naive" convention): customers sell calls and buy
puts, so dealers are long calls (sign +1) and short puts (sign −1). A ``positioning`` mapping or
callback ``(expiry_ts_ns, strike, 'C' | 'P') -> sign`` overrides it per contract when the contract
is first seen (``set_dealer_sign`` later); the sign is part of the book's state. A model that depends
on spot or clock (``dealer_reval``'s ``otm_only``, ``naive_ex0dte``) is a vectorized
``positioning_signs(expiry_ts_ns, strike, is_call, spot, now_ts_ns) -> signs`` instead: every contract
is signed at the evaluation point, when it is first seen and again at each reprice, except those
given a sign by ``set_dealer_sign``.

Evaluation point. Every contribution is evaluated at one chain-wide point ``(eval_spot,
eval_ts_ns)``, so that the running sums add up to what :func:`exposures_batch` computes from
scratch on the book's contracts at that point (``ChainBook.batch``). A batch re-evaluates only the
contracts it changes there (revert their old contributions, add the new ones: O(batch)).

Live reads between re-evaluations. ``on_spot`` is O(1): it records the live spot and clock and, past
``reprice_rel_move`` (0.25%) from ``eval_spot`` or ``reprice_max_age_ns`` (60 s by default; the
engine uses 5 min) since ``eval_ts_ns``, re-evaluates everything (``reprice``: O(N) vectorized;
``auto_reprice=False`` leaves that to the caller). In between, ``live_totals()`` reads the
exposures at the live spot without new greeks: GEX = exact value at eval_spot + the change of the
linearly interpolated grid profile (60 points over ±20% around eval_spot, step ≈ 0.68% of S; an
O(grid) read, see "GEX profile" below), delta exposure corrected to first order with the aggregate gamma (error O(dS²·speed)), vanna and charm rescaled by
S/eval_spot (error O(dS·∂vanna/∂S)). Measured at a +0.2% move (benchmarks/bench_chain.py, 20,000
contracts, 1 day–2 years, IVs solved from BSM prices on a smile; BENCHMARKS.md): error / |net| GEX
3.3%, DEX 5e-6, vanna 4.1%, charm 1.0%; error / gross by strike 2.6e-3, 4.8e-6, 3.6e-3, 4.5e-3.
Nets are small differences of large call and put sums, hence the larger ratios. A 1-day expiry
is the hard case (tests/unit/test_chain.py, toy chain at +0.2%: error / gross GEX 7e-3, vanna
2e-2, charm 0.15): its gamma is about one grid step wide and its charm moves fast with S, so
charm is the least reliable read between reprices. ``totals()`` and
the sums by strike/expiry are the exact values at the eval point.

Rounding. Revert-then-add leaves an absolute error of order eps × the largest magnitude that passed
through a sum since the last from-scratch resum (``reprice``), summed over the batches in between
(tests hold it to 1e-9 of that running gross); a bucket whose last live contract leaves (OI to 0,
no IV, expiry) is reset to exactly 0.0, so rounding residue never shows up as a phantom wall or
exposure.

GEX profile. Each live contract's GEX $ at every grid spot (a *cell*; N × 60 float64, 9.6 MB at
20k contracts) is computed when the contract is re-evaluated (O(batch × grid), vectorized even
when the rest of a small batch goes row by row) and kept, with running sums over contracts
updated by revert-then-add, so ``profile()`` and ``gamma_flip()`` are O(grid) reads; ``reprice``
and restore rebuild them (O(N·grid)). The cells are rounded to 2^-32 $ and summed exactly in
fixed point (two int64 limbs), so the profile is the same bits whatever the batch history
(restore, batch splits) and never accumulates rounding residue; the flip treats levels within
the resolution (live contracts × 2^-33 $, ``profile_atol``) as zero. The cells are derived data,
not in the state.

Time. T = (expiry_ts_ns − eval_ts_ns)/(365 days) (Act/365 calendar time, as the Cboe method's
minutes/525,600); charm/T decay is picked up at the next reprice. Contracts with T ≤ 0 (at/after
settlement) carry no exposure, and ``expire(now)`` removes them from the book. 0DTE = expiry on the
same New York calendar date as ``eval_ts_ns``. An IV is solved at the quote's own timestamp.

Rates. One constant ``rate`` and ``div_yield`` for every expiry (DOMAIN.md: a constant is a fair
approximation), used for the greeks and the IV solve. The per-expiry put–call-parity forward sets
the underlying price each IV is solved against (S = F e^{−(r−q)T}, the spot the quotes imply) and
is reported (``forward``); the greeks are all evaluated at the one ``eval_spot``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core import bs
from streamer.core import iv as ivsolve
from streamer.core.vix import (VIX, VixSpec, VixValue, eligible_expiries, local_minutes,
                               term_from_quotes, vix_from_terms)

NS_PER_DAY = 86_400 * 10**9
NS_PER_YEAR = 365 * NS_PER_DAY
_NY = ZoneInfo("America/New_York")
_NAN = float("nan")

_EVAL_SCALAR_BELOW = 40   # re-evaluations of at most this many live contracts go row by row
# (``bs.live_greeks1``, ~2 us a row, vs ~0.1 ms of numpy calls whatever the size; re-measured
# interleaved on the 20k chain: scalar/vector time 0.6 at 24 rows, 0.85-1.0 at 40, 0.9-1.03 at
# 48, 1.2-1.4 at 64)

Key = tuple[int, float, str]
"""Key of a contract for positioning: (expiry_ts_ns UTC ns, strike in index points, right 'C' or 'P')."""

Positioning = Callable[[Key], float] | Mapping[Key, float]
PositioningSigns = Callable[[np.ndarray, np.ndarray, np.ndarray, float, int], np.ndarray]
"""Dealer signs of contracts (expiry_ts_ns, strike, is_call arrays) at an evaluation point (spot, now_ts_ns):
``functools.partial(dealer_reval.dealer_signs, model)``."""


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
                            gross: np.ndarray | None = None, rtol: float = 1e-9,
                            atol: float = 0.0) -> float:
    """Zero-gamma level: first sign change of the GEX profile going up the grid, linearly interpolated.

    Values with |profile| ≤ rtol × gross (the sum of |contributions| at that grid level) + atol
    are treated as zero (rounding residue of float sums; below the resolution of the book's
    fixed-point sums: ``profile_atol``) and skipped; the crossing is interpolated between the
    last non-zero level below and the first non-zero level above it.
    Returns nan when the profile does not change sign on the grid (grid too narrow, or one-signed).

    >>> gamma_flip_from_profile(np.array([90.0, 100.0, 110.0]), np.array([-1.0, -1.0, 3.0]))
    102.5
    """
    p = np.asarray(profile, dtype=float)
    tol = rtol * (np.abs(p) if gross is None else np.asarray(gross, dtype=float)) + atol
    nz = (np.abs(p) > tol).nonzero()[0]
    if nz.size < 2:
        return _NAN
    s = np.sign(p[nz])
    ch = (s[:-1] != s[1:]).nonzero()[0]
    if ch.size == 0:
        return _NAN
    a, b = nz[ch[0]], nz[ch[0] + 1]
    pa, pb = p[a], p[b]
    return float(grid[a] + (grid[b] - grid[a]) * pa / (pa - pb))


def profile_atol(live_contracts: int) -> float:
    """Resolution of a GEX profile level ($ per 1%) summed from ``live_contracts`` rows of cells
    rounded to 2^-32 $ (``ChainBook.profile``): at most half a unit per cell. Levels within it of
    zero are zero for the flip, in the book and in ``exposures_batch`` alike.

    >>> profile_atol(2) == 2.0 ** -32
    True
    """
    return live_contracts * 2.0 ** -33


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
    ad = np.abs(d)
    ad[~(ad < np.inf)] = np.inf              # no pair (NaN) or not finite: never K*
    if k.shape[0] == 0:
        return _NAN, _NAN
    i = int(ad.argmin())                     # the first minimum: the lowest strike if strikes ascend
    if not ad[i] < np.inf:
        return _NAN, _NAN
    tie = (ad == ad[i]).nonzero()[0]
    if tie.shape[0] > 1:                     # strikes in any order: the lowest strike among ties
        i = int(tie[k[tie].argmin()])
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


def gex_rows(log_grid: np.ndarray, grid_pct: np.ndarray, strike: np.ndarray, t: np.ndarray,
             rate: float, q: float, iv: np.ndarray, m: np.ndarray,
             out: np.ndarray | None = None) -> np.ndarray:
    """Signed GEX $ per 1% (rows: contracts, columns: grid spots) with IV held fixed:
    gamma_on_grid(x) × m × x² × 0.01, written as exp(−u²) × f_row × (x × 0.01) with
    u = (ln x − ln K + (r − q + σ²/2)T) / (σ√(2T)) and f_row = e^{−qT} m / (σ√T √(2π)): one exp
    per cell and no log of grid/K (log_grid = ln x, grid_pct = x × 0.01, per grid spot; written
    into ``out`` if given, rows × grid). Equals
    ``gamma_on_grid``'s product to ~1e-14 relative (ln x − ln K rounds differently from
    ln(x/K); ~1e-12 of a 1-hour contract's peak). Requires T > 0, iv > 0 (the live contracts).

    >>> x = np.array([95.0, 100.0]); m = np.array([1000.0])
    >>> want = gamma_on_grid(x, 100.0, 0.5, 0.0, 0.0, 0.2) * 1000.0 * x * x * 0.01
    >>> bool(np.allclose(gex_rows(np.log(x), x * 0.01, np.array([100.0]), np.array([0.5]),
    ...                           0.0, 0.0, np.array([0.2]), m), want, rtol=1e-13))
    True
    """
    vs = iv * np.sqrt(t)
    c = (rate - q + 0.5 * iv * iv) * t - np.log(strike)
    w = math.sqrt(0.5) / vs
    f = np.exp(-q * t) * m / (vs * math.sqrt(2.0 * math.pi))
    u = np.add(log_grid, c[:, None], out=out)
    u *= w[:, None]
    np.square(u, out=u)
    np.negative(u, out=u)
    np.exp(u, out=u)
    u *= f[:, None]
    u *= grid_pct
    return u


def gamma_on_grid(grid: np.ndarray | float, strike: np.ndarray | float, t: np.ndarray | float,
                  rate: float, q: float, iv: np.ndarray | float) -> np.ndarray:
    """BSM gamma (per point of S) broadcast over spot levels; requires T > 0 and iv > 0.

    Same value as ``bs.greeks(...).gamma`` (gamma does not depend on the right); the definition
    the GEX profile's rows (``gex_rows``, an algebraically equal form) are tested against.

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
    rows = np.zeros((k.shape[0], grid.shape[0]))
    ok = np.flatnonzero((t > 0.0) & (vol > 0.0) & np.isfinite(vol) & (oi_pos > 0.0))
    lg, gp = np.log(grid), grid * 0.01
    for lo in range(0, ok.size, _CHUNK):
        i = ok[lo:lo + _CHUNK]
        rows[i] = gex_rows(lg, gp, k[i], t[i], rate, div_yield, vol[i], m[i])
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
        gamma_flip=gamma_flip_from_profile(grid, profile, np.abs(rows).sum(axis=0),
                                           atol=profile_atol(ok.size)),
        call_wall=_wall(strikes, s_call), put_wall=_wall(strikes, s_put),
        abs_gamma_strike=_wall(strikes, s_call + s_put),
        strike_flip=per_strike_flip(strikes, s_gex, spot),
    )


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


# ============================================================================= struct-of-arrays book

# Per-contract contribution columns, also the columns of every aggregate table: the four signed
# exposures and the unsigned gamma $ of calls and of puts (walls).
_GEX, _DEX, _VAN, _CHM, _CALLG, _PUTG = range(6)
_NCOL = 6
_COLS = np.arange(_NCOL)
_COLS_TILE = np.tile(_COLS, 4096)          # flat indices of bucket 0's sums, rows after rows
_NO_QUOTE = np.iinfo(np.int64).min        # quote ts of a contract never quoted
_CHUNK = 4096                              # rows per block of O(N·grid) work
# GEX profile sums in fixed point: a cell (GEX $ of one contract at one grid spot) is held as
# rint(|x| × 2^32) split into hi = floor(·/2^40) and lo < 2^40; per-batch sums of up to
# _PROFILE_CHUNK rows of either limb are exact in float64 (< 2^53) and go into int64 running sums,
# so the profile is an exact function of the current cells, whatever the history of batches.
_QUANTA = 2.0 ** 32
_LIMB = 2.0 ** 40
_CELL_MAX = 2.0 ** 80          # cells from |x| ≥ 2^48 $ (or NaN/inf) are not summed: profile NaN
_PROFILE_CHUNK = 2048


def _limbs(cells: np.ndarray) -> np.ndarray:
    """[hi, lo] limbs (2 × rows × grid) of cells (integers in float64 below 2^80): hi =
    floor(c / 2^40), lo = c − hi × 2^40 (exact: the bits of c below 2^40). Two contiguous blocks:
    half the time of strided [hi | lo] rows."""
    limbs = np.empty((2,) + cells.shape)
    hi, low = limbs[0], limbs[1]
    np.multiply(cells, 1.0 / _LIMB, out=hi)
    np.floor(hi, out=hi)
    np.multiply(hi, -_LIMB, out=low)
    low += cells
    return limbs


def _flat_quotes(term) -> np.ndarray | bool:
    """Flat view of a VIX term's (n, 4) quote block if its four quote arrays are the block's
    columns (call bid, put bid, call ask, put ask: ``vix.term_from_quotes``), else False."""
    q = term.quotes
    if q is None or q.ndim != 2 or q.shape[1] != 4 or not q.flags.c_contiguous:
        return False
    base, n = q.ctypes.data, q.shape[0]
    for j, col in enumerate((term.call_bid, term.put_bid, term.call_ask, term.put_ask)):
        if (col.base is not q or col.shape != (n,) or col.strides != (32,)
                or col.ctypes.data != base + 8 * j):
            return False
    return q.reshape(-1)


class _Buckets:
    """Aggregate table keyed by strike or expiry: six sums, contracts, live calls/puts; ids reused.

    ``add_sums``/``add_counts`` are revert-then-add for a batch (``np.add.at``, in batch order:
    O(batch)); a bucket whose live calls (puts) drop to zero gets its call (put) gamma set to
    exactly 0.0, and its signed sums too once nothing live is left, so rounding residue never
    shows up as a phantom wall or exposure. ``rebuild`` resums from scratch (``np.bincount``,
    slot order).
    """

    def __init__(self, key_dtype: type, cap: int = 16) -> None:
        self.key = np.zeros(cap, dtype=key_dtype)
        self.sums = np.zeros((cap, _NCOL))
        self.count = np.zeros(cap, dtype=np.int64)
        self.lc = np.zeros(cap, dtype=np.int64)
        self.lp = np.zeros(cap, dtype=np.int64)
        self.used = np.zeros(cap, dtype=bool)
        self.fwd = np.full(cap, _NAN)              # expiries: last parity forward (points)
        self.zdte = np.zeros(cap, dtype=bool)      # expiries: same NY date as the eval point
        self.free: list[int] = []
        self.hw = 0                                 # high-water mark of ids ever used
        self.index: dict = {}
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None   # (keys ascending, their ids)
        self._probe: tuple[np.ndarray, np.ndarray] = self._sorted  # type: ignore[assignment]

    _ARRAYS = ("key", "sums", "count", "lc", "lp", "used", "fwd", "zdte")

    def get_or_add(self, key: int | float) -> int:
        i = self.index.get(key)
        if i is not None:
            return i
        if self.free:
            i = self.free.pop()
        else:
            i = self.hw
            if i >= self.key.shape[0]:
                for name in self._ARRAYS:
                    a = getattr(self, name)
                    grown = np.zeros((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
                    grown[:a.shape[0]] = a
                    setattr(self, name, grown)
            self.hw += 1
        self.index[key] = i
        self._sorted = None
        self.key[i] = key
        self.used[i] = True
        self.fwd[i] = _NAN
        return i

    def release(self, i: int) -> None:
        del self.index[self.key[i].item()]
        self._sorted = None
        self.used[i] = False
        self.sums[i] = 0.0
        self.count[i] = self.lc[i] = self.lp[i] = 0
        self.fwd[i] = _NAN
        self.zdte[i] = False
        self.free.append(i)

    def ids_of(self, keys: np.ndarray) -> np.ndarray:
        """Ids of keys (−1: unknown), vectorized: a binary search of the sorted keys (kept until a
        key is added or released)."""
        if self._sorted is None:
            self.sorted()
        ks, ids = self._probe                   # sorted keys and ids + a sentinel (id −1)
        p = np.searchsorted(ks, keys)
        return np.where(ks[p] == keys, ids[p], -1)

    def add_sums(self, ids: np.ndarray, delta: np.ndarray) -> None:
        """Add rows of ``delta`` to the sums of buckets ``ids``, in batch order."""
        # on the flat sums: numpy's 1-d add.at fast path; the same additions in the same order
        np.add.at(self.sums.reshape(-1), (ids[:, None] * _NCOL + _COLS).ravel(), delta.ravel())

    def add_counts(self, ids: np.ndarray, dlc: np.ndarray, dlp: np.ndarray) -> None:
        """Change the live call/put counts of buckets ``ids`` (after ``add_sums``) and reset the
        emptied ones' sums to exactly 0.0."""
        np.add.at(self.lc, ids, dlc)
        np.add.at(self.lp, ids, dlp)
        self._zero_empty(ids)

    def add_one(self, delta: np.ndarray) -> None:
        """``add_sums`` with every row into bucket 0 (the totals): the same sequential sums."""
        n = delta.shape[0] * _NCOL
        idx = _COLS_TILE[:n] if n <= _COLS_TILE.shape[0] else np.tile(_COLS, delta.shape[0])
        np.add.at(self.sums.reshape(-1), idx, delta.ravel())

    def add_counts_one(self, dlc: np.ndarray, dlp: np.ndarray) -> None:
        """``add_counts`` into bucket 0 (``_zero_empty`` on scalars)."""
        lc = self.lc[0] = self.lc[0] + int(dlc.sum())
        lp = self.lp[0] = self.lp[0] + int(dlp.sum())
        if lc == 0:
            self.sums[0, _CALLG] = 0.0
        if lp == 0:
            self.sums[0, _PUTG] = 0.0
            if lc == 0:
                self.sums[0, :4] = 0.0

    def _zero_empty(self, ids: np.ndarray) -> None:
        lc, lp = self.lc[ids], self.lp[ids]
        if lc.min() > 0 and lp.min() > 0:          # counts are ≥ 0: no bucket emptied
            return
        nc, np_ = lc == 0, lp == 0
        if nc.any():
            self.sums[ids[nc], _CALLG] = 0.0
        if np_.any():
            self.sums[ids[np_], _PUTG] = 0.0
            both = nc & np_
            if both.any():
                self.sums[ids[both], :4] = 0.0

    def rebuild(self, ids: np.ndarray, contrib: np.ndarray, lc: np.ndarray, lp: np.ndarray) -> None:
        n = self.key.shape[0]
        for j in range(_NCOL):
            self.sums[:, j] = np.bincount(ids, weights=contrib[:, j], minlength=n)
        self.lc[:] = np.bincount(ids, weights=lc, minlength=n).astype(np.int64)
        self.lp[:] = np.bincount(ids, weights=lp, minlength=n).astype(np.int64)

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys in use ascending, their ids), kept until a key is added or released (read-only)."""
        if self._sorted is None:
            u = np.flatnonzero(self.used[:self.hw])
            o = np.argsort(self.key[u], kind="stable")
            self._sorted = (self.key[u][o], u[o])
            for x in self._sorted:
                x.flags.writeable = False
            top = np.nan if self.key.dtype.kind == "f" else np.iinfo(self.key.dtype).max
            self._probe = (np.append(self._sorted[0], top), np.append(self._sorted[1], -1))
        return self._sorted

    def active(self) -> np.ndarray:
        """Ids in use, sorted by key (read-only)."""
        return self.sorted()[1]

    def to_state(self, prefix: str) -> dict:
        d = {f"{prefix}.{n}": getattr(self, n).copy() for n in self._ARRAYS}
        d[f"{prefix}.free"] = np.array(self.free, dtype=np.int64)
        d[f"{prefix}.hw"] = int(self.hw)
        return d

    @classmethod
    def from_state(cls, d: Mapping, prefix: str, cast: Callable) -> _Buckets:
        b = cls(np.float64)
        for n in cls._ARRAYS:
            setattr(b, n, np.array(d[f"{prefix}.{n}"], copy=True, order="C"))
        b.free = [int(x) for x in d[f"{prefix}.free"]]
        b.hw = int(d[f"{prefix}.hw"])
        b.index = {cast(b.key[i].item()): int(i) for i in np.flatnonzero(b.used[:b.hw])}
        return b


@dataclass(slots=True, frozen=True)
class Rolloff:
    """What ``ChainBook.expire`` removed: expiries (UTC ns), contracts, and their exposure at the eval point."""

    expiries: tuple[int, ...]
    contracts: int
    exposure: ExposureTotals


class ChainBook:
    """Live option chain of one underlying as a struct of arrays, updated by vectorized batches.

    Layout. One *slot* per contract holds its inputs (expiry, strike, right, bid/ask/mid, IV, OI,
    dealer sign, last quote ts) and its contributions at the chain-wide evaluation point
    ``(eval_spot, eval_ts_ns)`` (GEX, DEX, vanna, charm and the unsigned call/put gamma $, units as
    in the module docstring). A dict maps the contract key ``(expiry_ts_ns, strike, is_call)`` to
    its slot; freed slots are reused (LIFO) and capacity doubles. Aggregate tables by strike and
    by expiry, the totals and the 0DTE totals (expiry on the New York date of ``eval_ts_ns``) are
    kept by vectorized revert-then-add: a batch costs O(batch), not O(chain).

    Batches (``apply_quotes``, ``apply_open_interest``) are **conflated**: only the latest quote of
    each contract in the batch changes state (max timestamp, the later row on ties; a winner older
    than the stored quote is ignored), which is exactly what applying the rows one by one would
    leave. IVs of the applied quotes are solved in one ``implied_vol_batch`` call against each
    expiry's put–call-parity forward: from this batch's call/put pairs where it has any (then
    stored for the expiry), else the expiry's stored forward, else the book's parity forward over
    all its mids; the live spot only when an expiry has no pair at all. Quotes and index ticks
    travel on different topics, so the spot seen last may be older than the quotes. A mid is
    (bid + ask)/2 when 0 < bid ≤ ask (the Cboe forward rule), else NaN (no IV, no exposure).

    Spot and clock (``on_spot`` O(1), ``reprice`` O(N) vectorized, thresholds as ``ChainConfig``):
    between reprices ``live_totals`` reads the exposures at the live spot with the first-order
    corrections of the module docstring (errors measured in benchmarks/bench_chain.py).

    Reads: the GEX profile over the 60-point ±20% grid around ``eval_spot`` and the gamma flip
    (O(grid) from the running sums; module docstring). Computed on demand and cached until the
    next change: the walls and
    abs-gamma strike (O(strikes log strikes)), ``forward`` / ``atm_iv`` (O(strikes of an expiry)),
    ``vix`` (O(strikes of the two selected expiries), Cboe method of ``core.vix``).

    Expiry lifecycle: ``expire(now)`` removes the contracts settled at or before ``now``; their
    exposure leaves every aggregate and emptied buckets are exactly 0.0. ``zero_dte`` and
    ``next_rolloff`` read what expires today / at the next settlement.

    State: ``to_state()`` is a flat dict of scalars and numpy arrays (every slot array, table and
    running sum, the free lists; not the GEX profile cells and sums, a pure function of the slots
    and the eval point that ``from_state`` recomputes, same bits); ``from_state`` restores it bit for bit, so restore + the same
    later calls gives results identical to an uninterrupted run. The same calls give the same bits.

    >>> bk = ChainBook(100.0, 0, ChainConfig(rate=0.0, div_yield=0.0))
    >>> bk.apply_open_interest([NS_PER_YEAR], [100.0], [True], [10.0])
    1
    >>> bk.apply_quotes(1, [NS_PER_YEAR, NS_PER_YEAR], [100.0, 100.0], [True, False],
    ...                 [7.9, 7.9], [8.0, 8.0])
    2
    >>> ref, _ = ivsolve.implied_vol(7.95, 100.0, 100.0, (NS_PER_YEAR - 1) / NS_PER_YEAR, 0.0, 0.0, True)
    >>> abs(bk.iv_of((NS_PER_YEAR, 100.0, True)) - ref) < 1e-12   # forward 100 from the C/P pair
    True
    >>> bk.apply_open_interest([NS_PER_YEAR], [100.0], [True], [0.0])
    1
    >>> bk.totals().gex_usd_per_pct
    0.0
    """

    _SLOT_ARRAYS = {"exp": np.int64, "strike": np.float64, "call": bool, "bid": np.float64,
                    "ask": np.float64, "mid": np.float64, "iv": np.float64, "oi": np.float64,
                    "sign": np.float64, "qts": np.int64, "used": bool, "sb": np.int64,
                    "eb": np.int64, "live": bool, "ovr": bool}

    def __init__(self, spot: float = _NAN, now_ts_ns: int = 0, config: ChainConfig | None = None,
                 positioning: Positioning | None = None, capacity: int = 64, *,
                 positioning_signs: PositioningSigns | None = None) -> None:
        self.config = config if config is not None else ChainConfig()
        # a model of spot/clock: signed vectorized at the eval point (_allocate, _recompute_all)
        self._signs_at = positioning_signs
        if positioning_signs is not None:
            if positioning is not None:
                raise ValueError("give positioning or positioning_signs, not both")
            self._sign_of = lambda key: 0.0          # placeholder, replaced after the allocation
        elif positioning is None:
            self._sign_of: Callable[[Key], float] = default_dealer_sign
        elif isinstance(positioning, Mapping):
            pos = positioning
            self._sign_of = lambda key: float(pos.get(key, default_dealer_sign(key)))
        else:
            self._sign_of = positioning
        self.spot = float(spot)
        self.spot_ts_ns = int(now_ts_ns)
        self.eval_spot = float(spot)
        self.eval_ts_ns = int(now_ts_ns)
        self._today = ny_date_ordinal(self.eval_ts_ns)
        self._a = {n: np.zeros(capacity, dtype=t) for n, t in self._SLOT_ARRAYS.items()}
        self._a["qts"][:] = _NO_QUOTE
        self._contrib = np.zeros((capacity, _NCOL))
        # GEX profile, derived (not in the state): each slot's cells on the grid around eval_spot
        # (rint(|GEX $| × 2^32), 0 unless live) and their sign, and the running limb sums
        self._grid_of: tuple | None = None      # (eval_spot, grid, ln grid, grid × 0.01)
        self._rows = np.zeros((capacity, self.config.grid_points))
        self._rsign = np.zeros(capacity)
        self._rbad = np.zeros(capacity, dtype=bool)
        self._psum = np.zeros((2, 2, self.config.grid_points), dtype=np.int64)  # [hi, lo] × [signed, gross]
        self._nbad = 0
        self._free: list[int] = []
        self._hw = 0
        self._index: dict[tuple[int, float, bool], int] = {}
        # [expiry id, strike id, is_call]; one more row and column than the bucket tables hold,
        # never written: an unknown key's id −1 reads −1 there
        self._slot_of = np.full((17, 17, 2), -1, dtype=np.int64)
        self._eslots: dict[int, list[int]] = {}
        self._strikes = _Buckets(np.float64)
        self._expiries = _Buckets(np.int64)
        self._total = _Buckets(np.int64, 1)
        self._zdte = _Buckets(np.int64, 1)
        self._total.get_or_add(0)
        self._zdte.get_or_add(0)
        self.conflated_quotes = 0   # quotes superseded by a later quote of the same contract in a batch
        self.stale_quotes = 0       # batch winners older than the stored quote (ignored)
        self.reprices = 0
        self._version = 0           # bumps on every change; keys the on-demand caches
        self._profile_cache: tuple | None = None
        self._calendar: tuple[dict[int, float], dict[int, bool]] | None = None
        # per expiry, what its quotes alone determine: the VIX term and the parity mids (quotes
        # applied since the last read written into them at the next read: _expiry_cache);
        # dropped when a contract is added to the expiry or it expires
        self._per_expiry: dict[int, dict[str, object]] = {}
        self._qdirty = np.zeros(capacity, dtype=bool)   # quoted since its expiry's cache was synced
        self._mark = np.empty(0, dtype=np.int64)        # scratch: row of each slot (_conflate)

    # ------------------------------------------------------------------ slots
    def __len__(self) -> int:
        return len(self._index)

    def _grow(self, need: int) -> None:
        cap = self._contrib.shape[0]
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for n, a in self._a.items():
            g = np.zeros(cap, dtype=a.dtype)
            g[:a.shape[0]] = a
            if n == "qts":
                g[a.shape[0]:] = _NO_QUOTE
            self._a[n] = g
        c = np.zeros((cap, _NCOL))
        c[:self._contrib.shape[0]] = self._contrib
        self._contrib = c
        for n in ("_rows", "_rsign", "_rbad", "_qdirty"):
            a = getattr(self, n)
            g = np.zeros((cap,) + a.shape[1:], dtype=a.dtype)
            g[:a.shape[0]] = a
            setattr(self, n, g)

    def _allocate(self, keys: list[tuple[int, float, bool]]) -> np.ndarray:
        """Slots for new contract keys, in the given order (O(len(keys)) Python: new contracts only)."""
        self._grow(self._hw + max(0, len(keys) - len(self._free)))
        a = self._a
        out = np.empty(len(keys), dtype=np.int64)
        for j, key in enumerate(keys):
            s = self._free.pop() if self._free else self._hw
            if s == self._hw:
                self._hw += 1
            e, k, c = key
            a["exp"][s], a["strike"][s], a["call"][s] = e, k, c
            a["bid"][s] = a["ask"][s] = a["mid"][s] = a["iv"][s] = _NAN
            a["oi"][s] = 0.0
            a["sign"][s] = float(self._sign_of((e, k, "C" if c else "P")))
            a["qts"][s] = _NO_QUOTE
            a["used"][s], a["live"][s] = True, False
            self._contrib[s] = 0.0
            sb = self._strikes.get_or_add(k)
            self._strikes.count[sb] += 1
            if e not in self._expiries.index:
                self._calendar = None
            self._per_expiry.pop(e, None)
            eb = self._expiries.get_or_add(e)
            if self._expiries.count[eb] == 0:
                self._expiries.zdte[eb] = ny_date_ordinal(e) == self._today
            self._expiries.count[eb] += 1
            a["sb"][s], a["eb"][s] = sb, eb
            self._fit_slot_table()
            self._slot_of[eb, sb, int(c)] = s
            self._index[key] = s
            self._eslots.setdefault(e, []).append(s)
            out[j] = s
        if self._signs_at is not None:
            self._sign_slots(out)
        return out

    def _sign_slots(self, slots: np.ndarray) -> None:
        """Sign ``slots`` by ``positioning_signs`` at the eval point, except ``set_dealer_sign``'s."""
        a = self._a
        sg = np.asarray(self._signs_at(a["exp"][slots], a["strike"][slots], a["call"][slots],
                                       self.eval_spot, self.eval_ts_ns), dtype=np.float64)
        keep = a["ovr"][slots]
        a["sign"][slots] = np.where(keep, a["sign"][slots], sg) if keep.any() else sg

    def _lookup(self, exp: np.ndarray, strike: np.ndarray, call: np.ndarray) -> np.ndarray:
        """Slots of contract keys (−1: unknown) through the dense (expiry id, strike id, right)
        table, expiry and strike ids by binary search of the tables' sorted keys: vectorized."""
        eb = self._expiries.ids_of(exp)
        sb = self._strikes.ids_of(strike)
        return self._slot_of[eb, sb, call.view(np.int8)]   # id −1: the last row/column, all −1

    def _fit_slot_table(self) -> None:
        """Grow the dense slot table to the bucket tables' capacities + 1 (the row and column of
        unknown keys)."""
        ne, nk = self._expiries.key.shape[0] + 1, self._strikes.key.shape[0] + 1
        t = self._slot_of
        if t.shape[0] < ne or t.shape[1] < nk:
            g = np.full((max(ne, t.shape[0]), max(nk, t.shape[1]), 2), -1, dtype=np.int64)
            g[:t.shape[0] - 1, :t.shape[1] - 1] = t[:-1, :-1]
            self._slot_of = g

    def _conflate(self, exp: np.ndarray, strike: np.ndarray, call: np.ndarray,
                  ts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(winning row positions ascending, their slots): the latest row per contract; new
        contracts get slots in the order of their winning rows."""
        n = exp.shape[0]
        gid = self._lookup(exp, strike, call)
        new_keys: dict = {}
        base = self._contrib.shape[0]        # provisional ids of new contracts: base + j
        keys: list = []
        if gid.min() < 0:
            miss = np.flatnonzero(gid < 0)
            keys = list(zip(exp.tolist(), strike.tolist(), call.tolist()))
            for i in miss.tolist():
                gid[i] = base + new_keys.setdefault(keys[i], len(new_keys))
        else:   # every row wins if no contract repeats (usual for a segment): no sort
            if self._mark.shape[0] < base:
                self._mark = np.empty(base, dtype=np.int64)
            pos = np.arange(n)
            self._mark[gid] = pos           # a repeated slot cannot read back both its rows
            if np.count_nonzero(self._mark[gid] == pos) == n:
                return pos, gid
        order = np.lexsort((gid,) if ts is None else (ts, gid))   # stable: later row last on ties
        g = gid[order]
        last = np.ones(n, dtype=bool)
        last[:-1] = g[1:] != g[:-1]
        win = np.sort(order[last])
        slots = gid[win]
        if new_keys:
            fresh = np.flatnonzero(slots >= base)
            slots[fresh] = self._allocate([keys[i] for i in win[fresh].tolist()])
        return win, slots

    # ------------------------------------------------------------------ batches
    def apply_quotes(self, ts_ns: np.ndarray | int, expiry_ts_ns: np.ndarray, strike: np.ndarray,
                     is_call: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> int:
        """Apply a batch of quotes (columns in event-time order; UTC ns, points); returns how many
        contracts changed. Counts superseded rows in ``conflated_quotes``, ignored ones in
        ``stale_quotes``. O(batch) plus one IV solve and one greeks call over the changed contracts."""
        exp = np.asarray(expiry_ts_ns, dtype=np.int64).ravel()
        n = exp.shape[0]
        if n == 0:
            return 0
        ts = np.asarray(ts_ns, dtype=np.int64)
        if ts.shape != (n,):
            ts = np.broadcast_to(ts, (n,))
        k = np.asarray(strike, dtype=np.float64).ravel()
        call = np.asarray(is_call, dtype=bool).ravel()
        win, slots = self._conflate(exp, k, call, ts)
        nw = win.shape[0]
        self.conflated_quotes += n - nw
        a = self._a
        b = np.asarray(bid, dtype=np.float64).ravel()
        q = np.asarray(ask, dtype=np.float64).ravel()
        wts = ts if nw == n else ts[win]     # every row wins (win is 0..n-1): no gathers
        fresh = wts >= a["qts"][slots]
        nf = int(np.count_nonzero(fresh))
        self.stale_quotes += nw - nf
        if nf == 0:
            return 0
        if nf < nw:
            win, slots, wts = win[fresh], slots[fresh], wts[fresh]
        if nf < n:
            b, q = b[win], q[win]
        with np.errstate(invalid="ignore"):
            mid = np.where((b > 0.0) & (q >= b) & np.isfinite(q), 0.5 * (b + q), _NAN)
        a["bid"][slots], a["ask"][slots], a["mid"][slots], a["qts"][slots] = b, q, mid, wts
        self._qdirty[slots] = True            # written into the expiries' cached tables when read
        a["iv"][slots] = self._solve_ivs(slots, mid, wts)
        self._reevaluate(slots)
        return int(slots.shape[0])

    def _expiry_cache(self, e: int) -> dict:
        """The per-expiry cache entry of ``e`` (its sorted slots; VIX term and parity mids once
        read) with the quotes applied since the last read written into its tables (the strike set
        is unchanged: a new contract drops its expiry's entry), so that they stay cached under a
        steady flow of quotes: O(strikes of e) per read, nothing per batch."""
        c = self._per_expiry.get(e)
        if c is None:
            sl = np.sort(np.array(self._eslots.get(e, ()), dtype=np.int64))
            c = self._per_expiry[e] = {"slots": sl}
            self._qdirty[sl] = False
            return c
        sl = c["slots"]
        d = self._qdirty[sl].nonzero()[0]
        if d.shape[0] == 0:
            return c
        si = sl[d]
        term, mids = c.get("term"), c.get("mids")
        if term is not None or mids is not None:
            a = self._a
            pos = c.get("pos")
            if pos is None:                  # where each slot's strike sits in the sorted strikes
                ks = term.strikes if term is not None else mids[0]
                pos = c["pos"] = np.searchsorted(ks, a["strike"][sl])
                c["put"] = (~a["call"][sl]).astype(np.intp)
            if term is not None:
                qf = c.get("qflat")
                if qf is None:
                    qf = c["qflat"] = _flat_quotes(term)
                if qf is not False:          # one scatter per side into the (n, 4) quote block
                    fi = c.get("qidx")
                    if fi is None:           # call/put bid at [strike, 0/1], ask at [strike, 2/3]
                        fi = c["qidx"] = pos * 4 + c["put"]
                    f = fi[d]
                    qf[f] = a["bid"][si]
                    qf[f + 2] = a["ask"][si]
                else:
                    call = a["call"][si]
                    put = ~call
                    p = pos[d]
                    pc, pp = p[call], p[put]
                    b_, q_ = a["bid"][si], a["ask"][si]
                    term.call_bid[pc], term.call_ask[pc] = b_[call], q_[call]
                    term.put_bid[pp], term.put_ask[pp] = b_[put], q_[put]
            if mids is not None:             # call mids, put mids: rows of one block
                mi = c.get("midx")
                if mi is None:
                    mi = c["midx"] = pos + c["put"] * mids[0].shape[0]
                c["mflat"][mi[d]] = a["mid"][si]
        self._qdirty[si] = False
        return c

    def _solve_ivs(self, slots: np.ndarray, mid: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Mid IVs of the applied quotes against their expiries' parity forwards (see class doc)."""
        a, cfg = self._a, self.config
        r, q = cfg.rate, cfg.div_yield
        eb, k, call = a["eb"][slots], a["strike"][slots], a["call"][slots]
        t = (a["exp"][slots] - ts) / NS_PER_YEAR
        # sorted by (expiry, strike, put before call): the expiries' groups and the call/put pairs
        o = np.lexsort((call, k, eb))
        se = eb[o]
        same = se[1:] == se[:-1]
        starts = np.concatenate(([True], ~same)).nonzero()[0]
        ue = se[starts]                          # the batch's expiry ids, ascending
        t_e = t[np.minimum.reduceat(o, starts)]  # an expiry's T: at its first applied quote
        emap = np.empty(self._expiries.key.shape[0], dtype=np.int64)
        emap[ue] = np.arange(ue.shape[0])
        inv = emap[eb]
        fwd = self._expiries.fwd[ue]             # stored forwards, replaced by this batch's pairs
        ko = k[o]
        pair = same & (ko[1:] == ko[:-1])
        ci, pi = o[1:][pair], o[:-1][pair]
        d = mid[ci] - mid[pi]
        ok = np.isfinite(d)
        if np.count_nonzero(ok):
            ci, d = ci[ok], d[ok]
            ec = eb[ci]
            if ci.shape[0] > 1:
                best = np.lexsort((k[ci], np.abs(d), ec))   # min |C − P|, lowest strike on ties
                e_sorted = ec[best]
                head = np.ones(best.shape[0], dtype=bool)
                head[1:] = e_sorted[1:] != e_sorted[:-1]
                sel = best[head]
            else:
                sel = np.zeros(1, dtype=np.intp)
            j = emap[ec[sel]]
            fwd[j] = k[ci][sel] + np.exp(r * t_e[j]) * d[sel]
            self._expiries.fwd[ue[j]] = fwd[j]
        nan = np.isnan(fwd)
        if np.count_nonzero(nan):
            for j in np.flatnonzero(nan).tolist():   # no forward yet: from the book
                f = self._parity(int(self._expiries.key[ue[j]]), float(t_e[j]))
                if f is not None:
                    fwd[j] = self._expiries.fwd[ue[j]] = f[0]
        spot_eq = fwd[inv] * np.exp(-(r - q) * t)      # S = F e^{-(r-q)T}
        nan = np.isnan(spot_eq)
        if np.count_nonzero(nan):
            spot_eq[nan] = self.spot
        ok = np.isfinite(spot_eq) & np.isfinite(mid)
        nok = np.count_nonzero(ok)
        if nok == ok.shape[0]:
            return ivsolve.implied_vols(mid, spot_eq, k, t, r, q, call)
        vols = np.full(slots.shape[0], _NAN)
        if nok:
            vols[ok] = ivsolve.implied_vols(mid[ok], spot_eq[ok], k[ok], t[ok], r, q, call[ok])
        return vols

    def apply_open_interest(self, expiry_ts_ns: np.ndarray, strike: np.ndarray,
                            is_call: np.ndarray, open_interest: np.ndarray) -> int:
        """Set open interest (contracts) for a batch; the last row per contract wins. Returns how
        many contracts were set. O(batch)."""
        exp = np.asarray(expiry_ts_ns, dtype=np.int64).ravel()
        if exp.shape[0] == 0:
            return 0
        k = np.asarray(strike, dtype=np.float64).ravel()
        call = np.asarray(is_call, dtype=bool).ravel()
        win, slots = self._conflate(exp, k, call, None)
        self._a["oi"][slots] = np.asarray(open_interest, dtype=np.float64).ravel()[win]
        self._reevaluate(slots)
        return int(slots.shape[0])

    def set_dealer_sign(self, key: Key, sign: float) -> None:
        """Override one existing contract's dealer position per unit OI (+1 long, −1 short, any real),
        until it expires (a ``positioning_signs`` model's reprices keep it: flag ``ovr``, in the state)."""
        s = self._index[(int(key[0]), float(key[1]), key[2] == "C")]
        self._a["sign"][s] = float(sign)
        self._a["ovr"][s] = True     # kept by a positioning_signs model's re-signing
        self._reevaluate(np.array([s]))

    # ------------------------------------------------------------------ evaluation
    def _grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(grid, ln grid, grid × 0.01): the profile grid around ``eval_spot`` (cached per eval_spot)."""
        g = self._grid_of
        if g is not None and (g[0] == self.eval_spot or (g[0] != g[0] and self.eval_spot != self.eval_spot)):
            return g[1], g[2], g[3]
        cfg = self.config
        grid = make_grid(self.eval_spot, cfg.grid_points, cfg.grid_half_width)
        with np.errstate(invalid="ignore", divide="ignore"):
            self._grid_of = (self.eval_spot, grid, np.log(grid), grid * 0.01)
        for x in self._grid_of[1:]:
            x.flags.writeable = False            # handed out by profile()
        return grid, self._grid_of[2], self._grid_of[3]

    def _evaluate(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple | None]:
        """Contributions (rows × 6) and live flags of slots at the eval point, vectorized, and the
        live rows' (slots, strike, T, IV, m) for their profile cells (None if no row is live).

        Same per-contract formulas, in the same operation order, as ``exposures_batch``."""
        a = self._a
        s = self.eval_spot
        t = (a["exp"][slots] - self.eval_ts_ns) / NS_PER_YEAR
        iv, oi = a["iv"][slots], a["oi"][slots]
        live = (t > 0.0) & (iv > 0.0) & np.isfinite(iv) & (oi > 0.0)
        if not (s > 0.0 and math.isfinite(s)):
            live[:] = False
        i = live.nonzero()[0]
        n = slots.shape[0]
        if i.size == 0:
            return np.zeros((n, _NCOL)), live, None
        if i.size < n:
            si, t, iv, oi = slots[i], t[i], iv[i], oi[i]
        else:                                   # every row live (the usual batch): no gathers
            si = slots
        k, call = a["strike"][si], a["call"][si]
        m = a["sign"][si] * oi * self.config.multiplier
        if i.size <= _EVAL_SCALAR_BELOW and bs.SCALAR_MIRRORS_EXACT:
            out = np.zeros((n, _NCOL))
            self._evaluate_small(i, k, call, m, t, iv, oi, out)
        elif i.size < n:
            out = np.zeros((n, _NCOL))
            out[i] = self._evaluate_rows(k, call, m, t, iv, oi)
        else:
            out = self._evaluate_rows(k, call, m, t, iv, oi)
        return out, live, (si, k, t, iv, m)

    def _evaluate_rows(self, k: np.ndarray, call: np.ndarray, m: np.ndarray, t: np.ndarray,
                       iv: np.ndarray, oi: np.ndarray) -> np.ndarray:
        """Contributions (rows × 6) of live contracts (strike, right, m = sign × OI × multiplier,
        T, IV, OI), vectorized."""
        cfg = self.config
        s = self.eval_spot
        out = np.empty((k.shape[0], _NCOL))
        gam, dlt, van, chm = bs.live_greeks(s, k, t, cfg.rate, cfg.div_yield, iv, call)
        out[:, _GEX] = gam * m * s * s * 0.01
        out[:, _DEX] = dlt * m * s
        out[:, _VAN] = van * m * s * 0.01
        out[:, _CHM] = chm * m * s / 365.0
        gabs = gam * oi * cfg.multiplier * s * s * 0.01
        out[:, _CALLG] = np.where(call, gabs, 0.0)
        out[:, _PUTG] = np.where(call, 0.0, gabs)
        return out

    def _evaluate_small(self, i: np.ndarray, k: np.ndarray, call: np.ndarray, m: np.ndarray,
                        t: np.ndarray, iv: np.ndarray, oi: np.ndarray, out: np.ndarray) -> None:
        """``_evaluate``'s live rows ``i`` one by one with ``bs.live_greeks1`` (the scalar mirror of
        ``bs.greeks``): the same operations in the same order, so the same bits as the vector
        branch; numpy's per-call cost dominates small batches. A row whose arithmetic raises
        (where numpy would go through inf/NaN) is redone by the vector branch."""
        cfg = self.config
        s, r, q, mult = self.eval_spot, cfg.rate, cfg.div_yield, cfg.multiplier
        rows = zip(i.tolist(), k.tolist(), t.tolist(), iv.tolist(), call.tolist(), m.tolist(),
                   oi.tolist())
        redo = []
        for j, kj, tj, v, c, mj, o in rows:
            try:
                gam, dlt, van, chm = bs.live_greeks1(s, kj, tj, r, q, v, 1.0 if c else -1.0)
                gabs = gam * o * mult * s * s * 0.01
                out[j] = (gam * mj * s * s * 0.01, dlt * mj * s, van * mj * s * 0.01,
                          chm * mj * s / 365.0, gabs if c else 0.0, 0.0 if c else gabs)
            except (ArithmeticError, ValueError):
                redo.append(j)
        if redo:
            p = np.searchsorted(i, np.array(redo, dtype=np.int64))
            out[i[p]] = self._evaluate_rows(k[p], call[p], m[p], t[p], iv[p], oi[p])

    def _profile_cells(self, si: np.ndarray, ev: tuple | None = None,
                       out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(cells, sign, bad) of live slots ``si``: rint(|GEX $| × 2^32) at each grid spot
        (``gex_rows`` with |m| × 2^32: exactly 2^32 × its |value|), the sign of m, and rows that
        cannot be held (non-finite or ≥ 2^48 $: zero cells, flagged; None if none). ``ev``: the slots' (strike,
        T, IV, m) as ``_evaluate`` gathered them (same values); ``out``: where to write the cells."""
        a, cfg = self._a, self.config
        _, lg, gp = self._grid()
        if ev is None:
            t = (a["exp"][si] - self.eval_ts_ns) / NS_PER_YEAR
            ev = (a["strike"][si], t, a["iv"][si], a["sign"][si] * a["oi"][si] * cfg.multiplier)
        k, t, iv, m = ev
        with np.errstate(all="ignore"):
            cells = gex_rows(lg, gp, k, t, cfg.rate, cfg.div_yield, iv, np.abs(m) * _QUANTA, out)
            np.rint(cells, out=cells)
        sign = np.sign(m)
        if cells.max() < _CELL_MAX:                  # no row to drop (NaN fails the test too)
            return cells, sign, None
        bad = ~(cells.max(axis=1) < _CELL_MAX)
        if not bad.any():
            return cells, sign, None
        cells[bad] = 0.0
        sign[bad] = 0.0
        return cells, sign, bad

    def _profile_add(self, cells: np.ndarray, sign: np.ndarray, weight: float) -> None:
        """Add rows of cells × ``weight`` (±1) to the running limb sums, exactly: the signed sums
        with each row's ``sign`` (±1, or 0 for a row of zeros), the gross with 1."""
        for lo in range(0, cells.shape[0], _PROFILE_CHUNK):
            c = cells[lo:lo + _PROFILE_CHUNK]
            neg = sign[lo:lo + _PROFILE_CHUNK] < 0.0
            if c.shape[0] <= 256:
                w = np.full((2, c.shape[0]), weight)
                w[0, neg] = -weight
                self._profile_sum(c, w)
                continue
            # large blocks by reductions (a large matrix product may go multi-threaded in BLAS)
            limbs = _limbs(c)
            gross = limbs.sum(axis=1)
            signed = gross - 2.0 * limbs[:, neg].sum(axis=1) if neg.any() else gross
            r = np.stack([signed, gross], axis=1).astype(np.int64)
            if weight < 0.0:
                r = -r
            self._psum += r

    def _profile_sum(self, cells: np.ndarray, w: np.ndarray) -> None:
        """Add w[0] @ limbs to the signed, w[1] @ limbs to the gross limb sums (w: ±1 or 0 per
        row, at most _PROFILE_CHUNK rows): sums of integers < 2^53, exact in any order, so one
        product of revert and add rows leaves the bits of two."""
        self._psum += np.matmul(w, _limbs(cells)).astype(np.int64)   # [hi, lo] × [signed, gross]

    def _set_contrib(self, slots: np.ndarray, new: np.ndarray, live: np.ndarray,
                     ev: tuple | None = None) -> None:
        """Revert the slots' old contributions and add the new ones in every table and in the
        GEX profile sums (O(len(slots)), O(len(slots) × grid) for the profile). ``ev``: the live
        rows' inputs from ``_evaluate``."""
        a = self._a
        old_live = a["live"][slots]
        delta = new - self._contrib.take(slots, axis=0)
        eb = a["eb"][slots]
        z = self._expiries.zdte[eb]
        zany = np.count_nonzero(z) > 0
        self._strikes.add_sums(a["sb"][slots], delta)
        self._expiries.add_sums(eb, delta)
        self._total.add_one(delta)
        if zany:
            self._zdte.add_one(delta[z])
        mv = (live != old_live).nonzero()[0]
        if mv.shape[0]:
            # the rows whose live flag changed: live counts, and the reset to exactly 0.0 of a
            # bucket left without live calls (puts). For the other buckets the reset is a no-op:
            # one without live calls (puts) was reset when it lost them and since then gets only
            # deltas 0.0 − 0.0 in those columns (a contract that is not live contributes zeros)
            sm = slots[mv]
            call, lv = a["call"][sm], live[mv]
            dl = np.where(lv, 1, -1)               # +1: became live, −1: left
            dlc = np.where(call, dl, 0)
            dlp = dl - dlc
            self._strikes.add_counts(a["sb"][sm], dlc, dlp)
            self._expiries.add_counts(eb[mv], dlc, dlp)
            self._total.add_counts_one(dlc, dlp)
            zm = z[mv]
            if np.count_nonzero(zm):
                self._zdte.add_counts_one(dlc[zm], dlp[zm])
            a["live"][sm] = lv
        self._contrib[slots] = new
        # profile: revert every slot's old cells (a slot without any has a row of zeros and sign
        # 0) and add the live rows' new ones, in one exact product up to _PROFILE_CHUNK rows
        if self._nbad:
            rbad = self._rbad[slots]
            if rbad.any():
                self._nbad -= int(rbad.sum())
                self._rbad[slots] = False
        sn = ev[0] if ev is not None else (slots[live] if live.any() else None)
        nn = 0 if sn is None else sn.shape[0]
        n = slots.shape[0]
        bad = None
        if n + nn <= _PROFILE_CHUNK:
            cells_all = np.empty((n + nn, self._rows.shape[1]))
            self._rows.take(slots, axis=0, out=cells_all[:n], mode="clip")   # "raise" buffers out
            w = np.empty((2, n + nn))
            np.negative(self._rsign.take(slots), out=w[0, :n])
            w[1, :n] = -1.0
            w[1, n:] = 1.0
            if nn:
                cells, sign, bad = self._profile_cells(sn, None if ev is None else ev[1:],
                                                       out=cells_all[n:])
                w[0, n:] = sign
            self._profile_sum(cells_all, w)
        else:
            self._profile_add(self._rows.take(slots, axis=0), self._rsign.take(slots), -1.0)
            if nn:
                cells, sign, bad = self._profile_cells(sn, None if ev is None else ev[1:])
                self._profile_add(cells, sign, 1.0)
        if nn == n:            # every slot live (sn is slots)
            self._rows[slots] = cells
            self._rsign[slots] = sign
        else:
            dead = slots[~live]
            self._rows[dead] = 0.0
            self._rsign[dead] = 0.0
            if nn:
                self._rows[sn] = cells
                self._rsign[sn] = sign
        if bad is not None:
            self._rbad[sn] = bad
            self._nbad += int(bad.sum())
        self._version += 1

    def _reevaluate(self, slots: np.ndarray) -> None:
        self._set_contrib(slots, *self._evaluate(slots))

    def _used(self) -> np.ndarray:
        return np.flatnonzero(self._a["used"][:self._hw])

    def _rebuild_profile(self) -> None:
        """Every live slot's cells and the profile sums from scratch (O(N·grid): reprice, restore)."""
        self._rows = np.zeros(self._rows.shape)      # fresh zeros: pages touched only where written
        self._rsign = np.zeros(self._rsign.shape)
        self._rbad[:] = False
        self._psum[:] = 0
        self._nbad = 0
        live = np.flatnonzero(self._a["live"][:self._hw])
        for lo in range(0, live.shape[0], _CHUNK):
            si = live[lo:lo + _CHUNK]
            cells, sign, bad = self._profile_cells(si)
            self._profile_add(cells, sign, 1.0)
            self._rows[si], self._rsign[si] = cells, sign
            if bad is not None:
                self._rbad[si] = bad
                self._nbad += int(bad.sum())

    def _recompute_all(self) -> None:
        """Re-evaluate every contract and resum every table from scratch (O(N), vectorized; the
        profile O(N·grid))."""
        a = self._a
        self._today = ny_date_ordinal(self.eval_ts_ns)
        ex = self._expiries
        for e, i in ex.index.items():
            ex.zdte[i] = ny_date_ordinal(e) == self._today
        u = self._used()
        if self._signs_at is not None:
            self._sign_slots(u)
        new, live, _ = self._evaluate(u)
        self._contrib[:] = 0.0
        self._contrib[u] = new
        a["live"][:] = False
        a["live"][u] = live
        call = a["call"][u]
        lc, lp = (live & call).astype(float), (live & ~call).astype(float)
        self._strikes.rebuild(a["sb"][u], new, lc, lp)
        ex.rebuild(a["eb"][u], new, lc, lp)
        self._total.rebuild(np.zeros(u.shape[0], dtype=np.int64), new, lc, lp)
        z = ex.zdte[a["eb"][u]]
        self._zdte.rebuild(np.zeros(int(z.sum()), dtype=np.int64), new[z], lc[z], lp[z])
        self._rebuild_profile()
        self._version += 1

    # ------------------------------------------------------------------ spot and clock
    def on_spot(self, spot: float, ts_ns: int) -> bool:
        """Record a spot tick (points, UTC ns): O(1); reprices past the thresholds (True if it did)."""
        self.spot = float(spot)
        self.spot_ts_ns = max(self.spot_ts_ns, int(ts_ns))
        if self.config.auto_reprice and self.needs_reprice():
            self.reprice()
            return True
        return False

    def needs_reprice(self) -> bool:
        """True if the live spot/clock moved past ``reprice_rel_move`` / ``reprice_max_age_ns``
        (or the book has a spot but was never evaluated at one)."""
        cfg = self.config
        if not math.isfinite(self.spot):
            return False
        if not math.isfinite(self.eval_spot):
            return True
        return (abs(self.spot / self.eval_spot - 1.0) > cfg.reprice_rel_move
                or self.spot_ts_ns - self.eval_ts_ns > cfg.reprice_max_age_ns)

    def reprice(self, spot: float | None = None, now_ts_ns: int | None = None) -> None:
        """Move the eval point (default: live spot and clock) and re-evaluate everything: O(N)."""
        self.eval_spot = self.spot if spot is None else float(spot)
        self.eval_ts_ns = self.spot_ts_ns if now_ts_ns is None else int(now_ts_ns)
        self.spot = self.eval_spot
        self.spot_ts_ns = max(self.spot_ts_ns, self.eval_ts_ns)
        self._recompute_all()
        self.reprices += 1

    # ------------------------------------------------------------------ expiry lifecycle
    def expire(self, now_ts_ns: int) -> Rolloff:
        """Remove every contract settled at or before ``now_ts_ns`` (UTC ns): O(expiries + removed).

        Their exposure (at the eval point) leaves the totals, 0DTE and strike sums; the expiry
        buckets and emptied strike buckets are released (exactly 0.0); slots go to the free list."""
        ks = self._expiries.sorted()[0]
        if ks.shape[0] == 0 or ks[0] > now_ts_ns:
            return Rolloff((), 0, ExposureTotals())
        gone = sorted(e for e in self._expiries.index if e <= now_ts_ns)
        slots = np.sort(np.array([s for e in gone for s in self._eslots[e]], dtype=np.int64))
        removed = ExposureTotals(*(float(x) for x in self._contrib[slots, :4].sum(axis=0)))
        self._set_contrib(slots, np.zeros((slots.shape[0], _NCOL)), np.zeros(slots.shape[0], bool))
        a = self._a
        for s in slots.tolist():
            del self._index[(int(a["exp"][s]), float(a["strike"][s]), bool(a["call"][s]))]
            sb = int(a["sb"][s])
            self._slot_of[a["eb"][s], sb, int(a["call"][s])] = -1
            self._strikes.count[sb] -= 1
            if self._strikes.count[sb] == 0:
                self._strikes.release(sb)
            a["used"][s] = False
            a["qts"][s] = _NO_QUOTE
            for n in ("bid", "ask", "mid", "iv"):
                a[n][s] = _NAN
            a["oi"][s] = 0.0
            a["ovr"][s] = False
            self._free.append(s)
        for e in gone:
            self._expiries.release(self._expiries.index[e])
            del self._eslots[e]
            self._per_expiry.pop(e, None)
        self._calendar = None
        self._version += 1
        return Rolloff(tuple(gone), int(slots.shape[0]), removed)

    def next_rolloff(self, now_ts_ns: int | None = None) -> tuple[int, ExposureTotals] | None:
        """(expiry, its exposure) of the nearest expiry settling after ``now`` (default eval time):
        the gamma and charm that roll off at the next settlement. O(expiries)."""
        now = self.eval_ts_ns if now_ts_ns is None else int(now_ts_ns)
        ks, ids = self._expiries.sorted()
        p = int(np.searchsorted(ks, now, side="right"))
        if p == ks.shape[0]:
            return None
        return int(ks[p]), self._totals_of(self._expiries, int(ids[p]))

    # ------------------------------------------------------------------ O(1) reads
    @staticmethod
    def _totals_of(b: _Buckets, i: int) -> ExposureTotals:
        return ExposureTotals(*b.sums[i, :4].tolist())

    def totals(self) -> ExposureTotals:
        """Whole-chain exposures at the eval point."""
        return self._totals_of(self._total, 0)

    def zero_dte(self) -> ExposureTotals:
        """Exposures of the contracts expiring on the eval date (New York calendar): what expires today."""
        return self._totals_of(self._zdte, 0)

    def by_expiry(self, expiry_ts_ns: int) -> ExposureTotals:
        """Exposures of one expiry (zeros if unknown)."""
        i = self._expiries.index.get(int(expiry_ts_ns))
        return ExposureTotals() if i is None else self._totals_of(self._expiries, i)

    def by_strike(self, strike: float) -> ExposureTotals:
        """Exposures at one strike summed over expiries (zeros if unknown)."""
        i = self._strikes.index.get(float(strike))
        return ExposureTotals() if i is None else self._totals_of(self._strikes, i)

    def iv_of(self, key: tuple[int, float, bool]) -> float:
        """Stored IV of a contract ``(expiry_ts_ns, strike, is_call)``; NaN if unknown."""
        s = self._index.get((int(key[0]), float(key[1]), bool(key[2])))
        return _NAN if s is None else float(self._a["iv"][s])

    def expiries(self) -> list[int]:
        """Listed expiries (UTC ns), ascending."""
        return self._expiries.sorted()[0].tolist()

    # ------------------------------------------------------------------ snapshot-cadence reads
    def profile(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(grid, GEX profile, gross) over the 60-point ±20% grid around eval_spot: the total
        and the sum of |contributions| of every live contract's GEX $ per 1% if spot were at each
        grid level (gamma re-priced there, IV held fixed; read-only arrays).

        O(grid): read from the running fixed-point sums that every batch keeps (revert-then-add
        of the changed contracts' cells; rebuilt by ``reprice`` and on restore). Each cell is
        rounded to 2^-32 $ and the sums are exact, so the profile is the correctly rounded sum of
        the current cells whatever the order of the batches (restore and batch splits give the
        same bits); it differs from a float64 sum by at most (live contracts) × 2^-33 $. NaN
        while a live contract's cells cannot be held (non-finite or ≥ 2^48 $).

        Centred on eval_spot, not the live spot: the cells are the contracts' GEX at the eval
        point's clock and grid, so between reprices (live spot within 0.25% of eval_spot) the
        grid stays put and the profile changes only with quotes/OI/signs."""
        c = self._profile_cache
        if c is not None and c[0] == self._version:
            return c[1], c[2], c[3]
        grid = self._grid()[0]
        p = self._psum
        hi = p[0] + (p[1] >> 40)               # lo limbs into [0, 2^40): both parts exact in float64
        lo = p[1] & ((1 << 40) - 1)
        val = hi.astype(np.float64) * (_LIMB / _QUANTA) + lo.astype(np.float64) * (1.0 / _QUANTA)
        if self._nbad:
            val[:] = _NAN
        prof, gross = val[0], val[1]
        prof.flags.writeable = gross.flags.writeable = False
        self._profile_cache = (self._version, grid, prof, gross)
        return grid, prof, gross

    def gamma_flip(self) -> float:
        """Zero-gamma level (points) from the grid profile, O(grid) (``profile``).

        Definition: re-price every live contract's gamma at each grid spot with its IV held fixed,
        sum to total GEX(S), and take the first sign change going up the grid, linearly
        interpolated (nan if none on the grid). The cheaper alternative, the sign change of
        per-strike net GEX across strikes (``per_strike_flip``, ``exposures().strike_flip``),
        says where the book changes sign by strike, not the spot level where the dealers' net
        gamma changes sign, and generally gives a different level."""
        grid, prof, gross = self.profile()
        return gamma_flip_from_profile(grid, prof, gross, atol=self._profile_atol())

    def _profile_atol(self) -> float:
        return profile_atol(int(self._total.lc[0] + self._total.lp[0]))

    def _strike_columns(self) -> tuple[np.ndarray, np.ndarray]:
        ids = self._strikes.active()
        return self._strikes.key[ids].copy(), self._strikes.sums[ids]

    def walls(self) -> tuple[float, float, float]:
        """(call wall, put wall, abs-gamma strike): strikes of the largest unsigned call, put and
        call + put gamma $ (lowest strike on ties; nan if none). O(strikes log strikes)."""
        ks, ids = self._strikes.sorted()
        cols = self._strikes.sums.take(ids, axis=0)
        c, p = cols[:, _CALLG], cols[:, _PUTG]
        return _wall(ks, c), _wall(ks, p), _wall(ks, c + p)

    def live_totals(self, spot: float | None = None) -> ExposureTotals:
        """Exposures at the live spot without re-evaluating greeks (between reprices).

        Corrections (module docstring): GEX = exact value at eval_spot + the
        change of the interpolated grid profile (S² scaling off the grid), DEX to first order
        with the aggregate gamma, vanna/charm scaled by S/eval_spot. Errors at a +0.2% move are
        measured in benchmarks/bench_chain.py. The profile is an O(grid) read (``profile``)."""
        s = self.spot if spot is None else float(spot)
        s0 = self.eval_spot
        gex0, dex0, van0, chm0 = self.totals().as_tuple()
        if not (math.isfinite(s) and math.isfinite(s0)):
            return ExposureTotals(gex0, dex0, van0, chm0)
        g, prof, _ = self.profile()
        if g[0] <= s <= g[-1] and g[0] <= s0 <= g[-1]:
            at = np.interp((s, s0), g, prof)
            gex = gex0 + float(at[0] - at[1])
        else:
            gex = gex0 * (s / s0) ** 2
        sum_m_gamma = gex0 / (0.01 * s0 * s0)
        dex = s * (dex0 / s0 + sum_m_gamma * (s - s0))
        r = s / s0
        return ExposureTotals(gex, dex, van0 * r, chm0 * r)

    def _expiry_mids(self, expiry_ts_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted strikes, call mids, put mids) of one expiry: O(its strikes) once, then the
        quotes applied since the last read written in (read-only arrays for callers)."""
        c = self._expiry_cache(int(expiry_ts_ns))
        got = c.get("mids")
        if got is None:
            got = c["mids"] = self._expiry_mids_uncached(int(expiry_ts_ns))
            c["mflat"] = got[1].base.reshape(-1)   # (call, put) × strikes
        return got  # type: ignore[return-value]

    def _expiry_mids_uncached(self, expiry_ts_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = np.sort(np.array(self._eslots.get(int(expiry_ts_ns), ()), dtype=np.int64))
        a = self._a
        k, call, mid = a["strike"][s], a["call"][s], a["mid"][s]
        ks = np.unique(k)
        cm, pm = np.full((2, ks.shape[0]), _NAN)
        cm[np.searchsorted(ks, k[call])] = mid[call]
        pm[np.searchsorted(ks, k[~call])] = mid[~call]
        return ks, cm, pm

    def _parity(self, expiry_ts_ns: int, t_years: float) -> tuple[float, float] | None:
        ks, cm, pm = self._expiry_mids(expiry_ts_ns)
        f, k = forward_from_parity(ks, cm, pm, t_years, self.config.rate)
        return None if math.isnan(k) else (f, k)

    def forward(self, expiry_ts_ns: int, now_ts_ns: int | None = None) -> Forward | None:
        """Parity forward of an expiry over the book's mids: K* = argmin |C − P| (lowest strike
        on ties), F = K* + e^{rT}(C − P); None without a call/put pair. O(strikes of the expiry)."""
        now = self.eval_ts_ns if now_ts_ns is None else int(now_ts_ns)
        t = (int(expiry_ts_ns) - now) / NS_PER_YEAR
        fk = self._parity(int(expiry_ts_ns), t)
        if fk is None:
            return None
        r = self.config.rate
        return Forward(fk[0], fk[1], math.exp(-r * t), t)

    def atm_iv(self, now_ts_ns: int) -> float:
        """Mean of the call and put IVs (those that exist) at the parity strike K* of the first
        expiry at least 7 days after ``now_ts_ns`` that has a forward; NaN if none."""
        for e in self.expiries():
            if e - now_ts_ns < 7 * NS_PER_DAY:
                continue
            f = self.forward(e, now_ts_ns)
            if f is None:
                continue
            ivs = [v for c in (True, False) if (v := self.iv_of((e, f.strike, c))) == v]
            return sum(ivs) / len(ivs) if ivs else _NAN
        return _NAN

    def vix(self, now_ts_ns: int, spec: VixSpec = VIX, rate: float | None = None,
            require_wings: bool = True) -> VixValue:
        """Cboe-method index (``core.vix``) from the book's quotes at ``now_ts_ns``: the expiry
        calendar is cached per expiry set, and only the near and next terms' strikes are read
        (O(their strikes), snapshot cadence); a term's quote table is cached and the quotes applied
        since the last read are written into it when read; the now-dependent variance is recomputed every call. Equals
        ``vix_batch`` on the book's contracts."""
        if self._calendar is None:
            exps = list(self._expiries.index)
            self._calendar = ({e: local_minutes(e) for e in exps}, eligible_expiries(exps))
        minutes, eligible = self._calendar
        if not spec.friday_only:
            eligible = {e: True for e in minutes}
        a = self._a

        def term_of(e: int):
            c = self._expiry_cache(e)
            term = c.get("term")
            if term is None:   # first read since the expiry's strike set changed
                s = c["slots"]
                term = c["term"] = term_from_quotes(e, a["strike"][s], a["call"][s], a["bid"][s],
                                                    a["ask"][s])
            return term

        r = self.config.rate if rate is None else rate
        return vix_from_terms(minutes, eligible, term_of, now_ts_ns, r, spec, require_wings)

    def contract_arrays(self) -> tuple[np.ndarray, ...]:
        """(expiry_ts_ns, strike, is_call, bid, ask, iv, oi, dealer_sign) of every contract, slot order."""
        u = self._used()
        a = self._a
        return tuple(a[n][u].copy() for n in ("exp", "strike", "call", "bid", "ask", "iv", "oi",
                                               "sign"))

    def exposures(self) -> Exposures:
        """Full report at the eval point, same layout as ``exposures_batch`` (profile: O(grid), kept by the batches)."""
        ks, sc = self._strike_columns()
        ex = self._expiries
        eids = ex.active()
        grid, prof, gross = self.profile()
        cw, pw, aw = self.walls()
        return Exposures(
            spot=self.eval_spot, now_ts_ns=self.eval_ts_ns, total=self.totals(),
            zero_dte=self.zero_dte(), strikes=ks, strike_gex=sc[:, _GEX].copy(),
            strike_dex=sc[:, _DEX].copy(), strike_vanna=sc[:, _VAN].copy(),
            strike_charm=sc[:, _CHM].copy(), strike_call_gamma=sc[:, _CALLG].copy(),
            strike_put_gamma=sc[:, _PUTG].copy(), expiries=ex.key[eids].copy(),
            expiry_gex=ex.sums[eids, _GEX].copy(), expiry_dex=ex.sums[eids, _DEX].copy(),
            expiry_vanna=ex.sums[eids, _VAN].copy(), expiry_charm=ex.sums[eids, _CHM].copy(),
            grid_spots=grid.copy(), grid_gex=prof.copy(),
            gamma_flip=gamma_flip_from_profile(grid, prof, gross, atol=self._profile_atol()),
            call_wall=cw, put_wall=pw,
            abs_gamma_strike=aw, strike_flip=per_strike_flip(ks, sc[:, _GEX], self.eval_spot))

    def batch(self) -> Exposures:
        """The slow reference: ``exposures_batch`` from scratch on the stored contracts."""
        exp, k, call, _, _, iv, oi, sign = self.contract_arrays()
        cfg = self.config
        return exposures_batch(exp, k, call, iv, oi, self.eval_spot, self.eval_ts_ns, cfg.rate,
                               cfg.div_yield, dealer_sign=sign, multiplier=cfg.multiplier,
                               grid_spots=make_grid(self.eval_spot, cfg.grid_points,
                                                    cfg.grid_half_width))

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        """Flat dict of plain scalars and numpy arrays (copies); ``from_state`` restores it bit for bit."""
        cfg = self.config
        d: dict = {f"config.{n}": getattr(cfg, n) for n in ChainConfig.__dataclass_fields__}
        d.update({"spot": self.spot, "spot_ts_ns": self.spot_ts_ns, "eval_spot": self.eval_spot,
                  "eval_ts_ns": self.eval_ts_ns, "hw": self._hw,
                  "conflated_quotes": self.conflated_quotes, "stale_quotes": self.stale_quotes,
                  "reprices": self.reprices, "free": np.array(self._free, dtype=np.int64),
                  "contrib": self._contrib.copy()})
        d.update({f"slot.{n}": a.copy() for n, a in self._a.items()})
        for name, b in (("strikes", self._strikes), ("expiries", self._expiries),
                        ("total", self._total), ("zdte", self._zdte)):
            d.update(b.to_state(name))
        return d

    @classmethod
    def from_state(cls, d: Mapping, positioning: Positioning | None = None, *,
                   positioning_signs: PositioningSigns | None = None) -> ChainBook:
        """Inverse of :meth:`to_state` (the positioning callbacks, if any, are not part of the state: the
        signs are, as evaluated when they were set)."""
        cfg = ChainConfig(**{n: d[f"config.{n}"] for n in ChainConfig.__dataclass_fields__})
        bk = cls(float(d["eval_spot"]), int(d["eval_ts_ns"]), cfg, positioning,
                 positioning_signs=positioning_signs)
        bk.spot, bk.spot_ts_ns = float(d["spot"]), int(d["spot_ts_ns"])
        bk.conflated_quotes = int(d["conflated_quotes"])
        bk.stale_quotes = int(d["stale_quotes"])
        bk.reprices = int(d["reprices"])
        bk._hw = int(d["hw"])
        bk._free = [int(x) for x in d["free"]]
        bk._contrib = np.array(d["contrib"], dtype=np.float64, copy=True)
        if "slot.ovr" not in d:   # states before the override flags: no contract-only model reads them
            d = {**d, "slot.ovr": np.zeros(np.asarray(d["slot.used"]).shape[0], dtype=bool)}
        bk._a = {n: np.array(d[f"slot.{n}"], dtype=t, copy=True)
                 for n, t in cls._SLOT_ARRAYS.items()}
        bk._strikes = _Buckets.from_state(d, "strikes", float)
        bk._expiries = _Buckets.from_state(d, "expiries", int)
        bk._total = _Buckets.from_state(d, "total", int)
        bk._zdte = _Buckets.from_state(d, "zdte", int)
        a = bk._a
        for s in np.flatnonzero(a["used"][:bk._hw]).tolist():
            e = int(a["exp"][s])
            bk._index[(e, float(a["strike"][s]), bool(a["call"][s]))] = s
            bk._eslots.setdefault(e, []).append(s)
        bk._fit_slot_table()
        u = np.flatnonzero(a["used"][:bk._hw])
        bk._slot_of[a["eb"][u], a["sb"][u], a["call"][u].astype(np.intp)] = u
        # the profile cells are a pure function of each slot's inputs and the eval point, and
        # their sums are exact: recomputed, not stored, with the same bits
        cap, g = bk._contrib.shape[0], cfg.grid_points
        bk._rows, bk._rsign, bk._rbad = np.zeros((cap, g)), np.zeros(cap), np.zeros(cap, dtype=bool)
        bk._qdirty = np.zeros(cap, dtype=bool)
        bk._rebuild_profile()
        return bk
