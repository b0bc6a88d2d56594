"""Dealer hedge flows by full revaluation of the chain, from one positioning model.

Why. A dealer-vanna figure of "vanna exposure × VIX change" treats a VIX move as a parallel shift of
every expiry's implied vol and linearises the delta change. On 2024-11-06 VIX9D fell 8.85 points, VIX
4.22 and VIX3M 2.52: the front of the curve moved twice as much as the 30-day point and the back half
as much, and a 2-year option moves far less than either. Here each contract's dealer delta is
re-priced (Black–Scholes–Merton, ``core.bs``) after the move of *its own* expiry, and the dealer
position of every contract comes from one positioning model (:func:`dealer_signs`), the same array
that weights the gamma figures (``core.chain.exposures_batch(dealer_sign=...)``), so vanna, charm and
GEX are never two positioning models added together.

Flows (all $ of the underlying, ``m = dealer_sign × OI × multiplier``; hedge flow = minus the change
of the dealers' option delta, + = dealers buy the underlying):

* vanna: ``−S Σ m [Δ(S, σ + Δσ(expiry), T) − Δ(S, σ, T)]``
* charm: ``−S Σ m [Δ(S, σ, T − h) − Δ(S, σ, T)]`` over contracts alive after the horizon h;
* settlement: contracts that settle within h: their hedge is unwound (cash-settled SPX: the option
  delta goes to 0; physically settled (SPY): the delta of the delivered shares stays, ±1 if ITM);
* gamma (only with ``new_spot``): ``−S' Σ m [Δ(S', σ, T) − Δ(S, σ, T)]`` (traded at S');
* joint: all moves at once, ``Δ(S', σ + Δσ, T − h)`` (the sum of the parts plus cross terms).

Term-structure map (:func:`iv_shift_by_days`): the implied-vol change of an expiry d calendar days
away is the change of the Cboe index at the same constant maturity — VIX9D (9 days), VIX (30),
VIX3M (93; Cboe's VIX3M white paper) — linearly interpolated in days between nodes, flat below 9
days, and beyond 93 days ``ΔVIX3M × sqrt(93/d)`` (``long_end="sqrt"``: long-dated implied vol moves
less, roughly with 1/√T — the usual desk rule for term-structure shocks) or flat (``"flat"``).
Missing nodes (NaN) are skipped. Index points are vol points (VIX 16.27 = 16.27% a year). The same
shift applies to every strike of an expiry (sticky strike, no skew change) and a shifted IV is
floored at ``min_iv_ratio`` (0.2) × the old one, so a large fall never prices a wing at ≤ 0 vol.

Positioning models (``POSITIONINGS``; signs are the dealers' side, +1 long, −1 short, 0 none):

* ``naive``: customers sell calls and buy puts, so dealers are long every call and short every put
  (SqueezeMetrics 2017 white paper "Gamma Exposure"; DOMAIN.md; ``chain.default_dealer_sign``).
* ``naive_ex0dte``: ``naive`` except same-day expiries carry 0: Cboe's 0DTE studies (2023, H. Xu)
  find customer 0DTE SPX flow close to balanced between buying and selling, so dealers' net 0DTE
  gamma is small and the naive sign would count the whole open interest.
* ``otm_only``: ``naive`` on out-of-the-money contracts (calls with K ≥ S, puts with K ≤ S), 0 on
  in-the-money ones: deep ITM SPX open interest is largely box spreads and conversions (financing
  trades whose legs cancel), not customer hedges, yet ``naive`` counts each ITM call +1 and each
  ITM put −1 although their gamma is the same as the OTM contract's at that strike.
* ``customer_long``: customers are net long index calls and puts, dealers short both (Gârleanu,
  Pedersen & Poteshman 2009, "Demand-Based Option Pricing", RFS 22(10): end users' net SPX
  positions 1996–2001); the dealer-short-gamma bound.

``naive`` and ``customer_long`` depend on the contract alone (``KEY_POSITIONINGS``;
``key_positioning`` gives the ``chain.Positioning`` callback a ChainBook calls once per new contract);
``naive_ex0dte`` and ``otm_only`` depend on the clock and spot, so a live ChainBook takes
``functools.partial(dealer_signs, model)`` as its ``positioning_signs`` and re-signs every contract at
its evaluation point at each reprice (:func:`book_positioning` gives the ChainBook arguments of a model).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from streamer.core import bs
from streamer.core.chain import NS_PER_DAY, NS_PER_YEAR, Key, Positioning, PositioningSigns, ny_date_ordinal

__all__ = ["POSITIONINGS", "KEY_POSITIONINGS", "TERM_NODES_DAYS", "RevalFlows", "RevalJob", "dealer_signs",
           "key_positioning", "book_positioning", "iv_shift_by_days", "smile_roll_by_expiry", "reval_flows",
           "by_expiry"]

POSITIONINGS = ("naive", "naive_ex0dte", "otm_only", "customer_long")
KEY_POSITIONINGS = ("naive", "customer_long")   # the models that depend on the contract alone
TERM_NODES_DAYS = (9.0, 30.0, 93.0)   # VIX9D, VIX, VIX3M constant maturities, calendar days (Cboe)
LONG_ENDS = ("sqrt", "flat")


def dealer_signs(model: str, expiry_ts_ns: np.ndarray, strike: np.ndarray, is_call: np.ndarray,
                 spot: float, now_ts_ns: int) -> np.ndarray:
    """Dealer sign per contract (+1 long, −1 short, 0 not counted) under ``model`` (module doc).

    spot in index points and now_ts_ns UTC ns matter only to ``otm_only`` / ``naive_ex0dte``.

    >>> k = np.array([90.0, 110.0, 90.0, 110.0]); c = np.array([True, True, False, False])
    >>> e = np.full(4, 30 * NS_PER_DAY)
    >>> dealer_signs("naive", e, k, c, 100.0, 0).tolist(), dealer_signs("otm_only", e, k, c, 100.0, 0).tolist()
    ([1.0, 1.0, -1.0, -1.0], [0.0, 1.0, -1.0, 0.0])
    """
    exp = np.asarray(expiry_ts_ns, dtype=np.int64)
    k = np.asarray(strike, dtype=float)
    call = np.asarray(is_call, dtype=bool)
    naive = np.where(call, 1.0, -1.0)
    if model == "naive":
        return naive
    if model == "customer_long":
        return np.full(call.shape, -1.0)
    if model == "otm_only":
        otm = np.where(call, k >= spot, k <= spot)
        return np.where(otm, naive, 0.0)
    if model == "naive_ex0dte":
        today = ny_date_ordinal(int(now_ts_ns))
        u, inv = np.unique(exp, return_inverse=True)
        same_day = np.array([ny_date_ordinal(int(e)) == today for e in u.tolist()], dtype=bool)
        zd = same_day[inv].reshape(exp.shape) & (exp > now_ts_ns)
        return np.where(zd, 0.0, naive)
    raise ValueError(f"positioning must be one of {POSITIONINGS}, got {model!r}")


def key_positioning(model: str) -> Callable[[Key], float]:
    """``chain.Positioning`` callback of a model that depends on the contract alone.

    >>> key_positioning("customer_long")((0, 100.0, "C"))
    -1.0
    """
    if model == "naive":
        return lambda key: 1.0 if key[2] == "C" else -1.0
    if model == "customer_long":
        return lambda key: -1.0
    raise ValueError(f"{model!r} depends on spot or clock; evaluate it with dealer_signs at each reprice")


def book_positioning(model: str) -> dict[str, Positioning | PositioningSigns]:
    """The ``chain.ChainBook`` keyword argument of a model (constructor and ``from_state``): a contract-only
    model's ``positioning`` callback (one call per new contract, nothing per reprice), else
    ``positioning_signs`` = :func:`dealer_signs` of the model (every contract re-signed at each reprice).

    >>> sorted(book_positioning("naive")), sorted(book_positioning("otm_only"))
    (['positioning'], ['positioning_signs'])
    """
    if model in KEY_POSITIONINGS:
        return {"positioning": key_positioning(model)}
    if model in POSITIONINGS:
        return {"positioning_signs": partial(dealer_signs, model)}
    raise ValueError(f"positioning must be one of {POSITIONINGS}, got {model!r}")


def iv_shift_by_days(days: np.ndarray, d_vix9d: float, d_vix: float, d_vix3m: float,
                     long_end: str = "sqrt") -> np.ndarray:
    """Implied-vol change (annual decimal) of expiries ``days`` calendar days away, from the changes
    of VIX9D, VIX and VIX3M in index points (module doc; NaN = node missing; all NaN → NaN).

    >>> iv_shift_by_days(np.array([1.0, 9.0, 16.0, 30.0, 93.0, 372.0]), -8.85, -4.22, -2.52).round(4).tolist()
    [-0.0885, -0.0885, -0.0731, -0.0422, -0.0252, -0.0126]
    """
    if long_end not in LONG_ENDS:
        raise ValueError(f"long_end must be one of {LONG_ENDS}, got {long_end!r}")
    d = np.asarray(days, dtype=float)
    nodes = np.array(TERM_NODES_DAYS)
    chg = np.array([d_vix9d, d_vix, d_vix3m], dtype=float)
    ok = np.isfinite(chg)
    if not ok.any():
        return np.full(d.shape, np.nan)
    x, y = nodes[ok], chg[ok] / 100.0
    out = np.interp(d, x, y)
    if long_end == "sqrt":
        far = d > x[-1]
        out = np.where(far, y[-1] * np.sqrt(x[-1] / np.where(far, d, x[-1])), out)
    return out


def smile_roll_by_expiry(expiry_ts_ns: np.ndarray, strike: np.ndarray, is_call: np.ndarray, iv: np.ndarray,
                         spot: float, new_spot: float) -> tuple[np.ndarray, np.ndarray]:
    """(sorted expiries, σ_e(S') − σ_e(S)): how far each expiry's at-the-money IV moves along its own
    smile when spot goes from S to S' with fixed-strike IVs unchanged (annual decimal).

    σ_e(x) is linear interpolation in strike of the out-of-the-money IVs (puts with K < S, calls with
    K ≥ S; finite and > 0), flat beyond the quoted strikes; 0 for an expiry with fewer than two.
    Why: a volatility index is read at the moving at-the-money point, so on a +2.5% day part of its fall
    is this roll down the skew, not a fall of the fixed-strike IVs the dealers' options carry; the
    fixed-strike move is the index change minus the roll (the ``net_of_smile_roll`` option of
    :func:`reval_flows`).

    >>> e = np.zeros(4, dtype=np.int64); k = np.array([90.0, 95.0, 100.0, 110.0])
    >>> smile_roll_by_expiry(e, k, np.array([False, False, True, True]), np.array([0.3, 0.25, 0.2, 0.16]),
    ...                      100.0, 105.0)[1].round(4).tolist()
    [-0.02]
    """
    exp = np.asarray(expiry_ts_ns, dtype=np.int64)
    k = np.asarray(strike, dtype=float)
    call = np.asarray(is_call, dtype=bool)
    v = np.asarray(iv, dtype=float)
    u = np.unique(exp)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (v > 0.0) & np.where(call, k >= spot, k < spot)
    order = np.lexsort((k, exp))
    order = order[ok[order]]
    e_s, k_s, v_s = exp[order], k[order], v[order]
    lo = np.searchsorted(e_s, u, side="left")
    hi = np.searchsorted(e_s, u, side="right")
    roll = np.zeros(u.size)
    for j in range(u.size):   # one np.interp per expiry (tens of expiries)
        if hi[j] - lo[j] >= 2:
            kk, vv = k_s[lo[j]:hi[j]], v_s[lo[j]:hi[j]]
            roll[j] = float(np.interp(new_spot, kk, vv) - np.interp(spot, kk, vv))
    return u, roll


@dataclass(slots=True)
class RevalFlows:
    """Dealer hedge flows of one scenario, $ of the underlying (+ = dealers buy), in total and per
    expiry (``expiries`` sorted UTC ns; arrays aligned with it). ``*_first_order`` are the greek
    approximations of the same flows (vanna × Δσ per contract; charm × h) for comparison, and
    ``vanna_parallel_vix_usd`` the old "vanna exposure × ΔVIX" figure (every expiry shifted by ΔVIX)."""

    expiries: np.ndarray
    d_iv: np.ndarray               # per expiry, annual decimal
    vanna_usd: np.ndarray
    charm_usd: np.ndarray
    settle_usd: np.ndarray
    gamma_usd: np.ndarray          # 0 without a spot move
    joint_usd: np.ndarray
    vanna_first_order_usd: np.ndarray
    charm_first_order_usd: np.ndarray
    vanna_parallel_vix_usd: float
    contracts: int                 # contracts with a live exposure (T > 0, IV > 0, OI > 0, sign ≠ 0)

    def total(self, name: str) -> float:
        """Sum over expiries of one flow array, e.g. ``total("vanna_usd")``."""
        return float(np.sum(getattr(self, name)))


def by_expiry(expiry_ts_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique expiries, sum of ``values`` per expiry)."""
    u, inv = np.unique(np.asarray(expiry_ts_ns, dtype=np.int64), return_inverse=True)
    return u, np.bincount(inv.ravel(), weights=np.asarray(values, dtype=float).ravel(), minlength=u.size)


def _contracts(expiry_ts_ns, strike, is_call, iv, open_interest, dealer_sign, now_ts_ns: int) -> tuple:
    """The per-contract inputs of :func:`reval_flows` / :meth:`RevalJob.capture` as typed arrays, their
    T in years and the live mask: T > 0, IV > 0 and finite, OI > 0, a finite non-zero dealer sign."""
    exp = np.asarray(expiry_ts_ns, dtype=np.int64)
    k = np.asarray(strike, dtype=float)
    call = np.asarray(is_call, dtype=bool)
    vol = np.asarray(iv, dtype=float)
    oi = np.asarray(open_interest, dtype=float)
    sign = np.asarray(dealer_sign, dtype=float)
    t = (exp - int(now_ts_ns)).astype(float) / NS_PER_YEAR
    with np.errstate(invalid="ignore"):
        live = (t > 0.0) & (vol > 0.0) & np.isfinite(vol) & (oi > 0.0) & (sign != 0.0) & np.isfinite(sign)
    return exp, k, call, vol, oi, sign, t, live


def reval_flows(expiry_ts_ns: np.ndarray, strike: np.ndarray, is_call: np.ndarray, iv: np.ndarray,
                open_interest: np.ndarray, dealer_sign: np.ndarray, spot: float, now_ts_ns: int,
                rate: float, div_yield: float, *, term_change_pts: tuple[float, float, float] | None = None,
                d_iv: np.ndarray | None = None, horizon_days: float = 1.0, new_spot: float | None = None,
                long_end: str = "sqrt", min_iv_ratio: float = 0.2, cash_settled: bool = True,
                net_of_smile_roll: bool = False, multiplier: float = 100.0) -> RevalFlows:
    """Vanna, charm, settlement, gamma and joint hedge flows by full revaluation (module doc).

    Arrays per contract as ``chain.exposures_batch`` (expiry UTC ns, strike points, is_call, iv annual
    decimal with nan/≤0 = no exposure, OI contracts, dealer_sign from :func:`dealer_signs`). The vol
    move is ``term_change_pts`` = (ΔVIX9D, ΔVIX, ΔVIX3M) in index points mapped per expiry by
    :func:`iv_shift_by_days`, or ``d_iv`` given per contract (annual decimal). horizon_days: calendar
    days of time decay (charm, settlement). new_spot: spot after the move for the gamma/joint flows
    (default: unchanged). The ΔVIX of the parallel figure is ``term_change_pts[1]`` (0 with ``d_iv``).
    net_of_smile_roll: subtract each expiry's :func:`smile_roll_by_expiry` (S → new_spot) from the
    term-structure shift, so the fixed-strike IV move excludes the index's roll along the skew.

    >>> f = reval_flows(np.array([30 * NS_PER_DAY]), np.array([95.0]), np.array([False]),
    ...                 np.array([0.25]), np.array([1000.0]), np.array([-1.0]), 100.0, 0, 0.0, 0.0,
    ...                 term_change_pts=(-4.0, -4.0, -4.0))
    >>> f.total("vanna_usd") > 0   # dealers short an OTM put: IV falls, its |delta| falls, they buy
    True
    """
    exp, k, call, vol, oi, sign, t, live = _contracts(expiry_ts_ns, strike, is_call, iv, open_interest,
                                                      dealer_sign, now_ts_ns)
    s = float(spot)
    s1 = s if new_spot is None else float(new_spot)
    if d_iv is None:
        chg = (0.0, 0.0, 0.0) if term_change_pts is None else term_change_pts
        dv = iv_shift_by_days(t * 365.0, *chg, long_end=long_end)
        d_vix = float(chg[1])
        if net_of_smile_roll and s1 != s:
            u_r, roll = smile_roll_by_expiry(exp, k, call, vol, s, s1)
            dv = dv - roll[np.searchsorted(u_r, exp)]
    else:
        dv = np.broadcast_to(np.asarray(d_iv, dtype=float), t.shape)
        d_vix = 0.0
    i = np.flatnonzero(live)
    exp_l, k_l, c_l, v_l, t_l = exp[i], k[i], call[i], vol[i], t[i]
    m = sign[i] * oi[i] * multiplier
    dv_l = dv[i]
    v_new = np.maximum(v_l + dv_l, min_iv_ratio * v_l)
    h = float(horizon_days) / 365.0
    t_new = t_l - h
    alive = t_new > 0.0

    def delta(s_: float, v_: np.ndarray, t_: np.ndarray) -> np.ndarray:
        return bs.greeks(s_, k_l, t_, rate, div_yield, v_, c_l).delta

    g0 = bs.greeks(s, k_l, t_l, rate, div_yield, v_l, c_l)
    d0 = g0.delta

    def settled(dlt: np.ndarray) -> np.ndarray:
        # after settlement: cash-settled options leave no delta; delivered shares keep the exercise delta
        return np.where(alive, dlt, 0.0 if cash_settled else dlt)

    d_vol = delta(s, v_new, t_l)
    d_time = settled(delta(s, v_l, t_new))
    d_spot = delta(s1, v_l, t_l)
    d_all = settled(delta(s1, v_new, t_new))
    vanna = -s * m * (d_vol - d0)
    time_flow = -s * m * (d_time - d0)
    # the hedge trade is −m × (change of option delta) units of the underlying, bought at the new spot
    gamma = -s1 * m * (d_spot - d0)
    joint = -s1 * m * (d_all - d0)
    van1 = -s * m * g0.vanna * dv_l
    chm1 = np.where(alive, -s * m * g0.charm * h, 0.0)
    u, dv_e = _first_per_expiry(exp, dv)
    sum_e = lambda w: by_expiry(np.concatenate([exp_l, u]), np.concatenate([w, np.zeros(u.size)]))[1]
    return RevalFlows(
        expiries=u, d_iv=dv_e, vanna_usd=sum_e(vanna), charm_usd=sum_e(np.where(alive, time_flow, 0.0)),
        settle_usd=sum_e(np.where(alive, 0.0, time_flow)), gamma_usd=sum_e(gamma), joint_usd=sum_e(joint),
        vanna_first_order_usd=sum_e(van1), charm_first_order_usd=sum_e(chm1),
        vanna_parallel_vix_usd=float(np.sum(-s * m * g0.vanna * (d_vix / 100.0))),
        contracts=int(i.size))


def _first_per_expiry(exp: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique expiries, the value of each expiry's first contract): per-expiry constants."""
    u, first = np.unique(exp, return_index=True)
    return u, np.asarray(values, dtype=float)[first]


@dataclass(slots=True)
class RevalJob:
    """The live engine's revaluation spread over evaluations: :func:`reval_flows`' vanna and charm totals
    (term-structure move, unchanged spot) of a chain captured at one instant, computed ``step(n)``
    contracts at a time.

    Why: at 20k contracts the whole revaluation is tens of ms, a stall in one 10 ms segment; in slices of
    ~2k contracts no evaluation pays more than a few ms. Each slice's flows are added to per-expiry sums
    one contract at a time in slot order (``np.add.at``), the additions ``np.bincount`` makes in
    :func:`reval_flows`, so the totals are its totals bit for bit, whatever the slicing (elementwise numpy
    does not depend on where an array is cut). Plain state (:meth:`to_state`, arrays copied; the sums,
    not per-contract flows): a job in progress survives a checkpoint bit for bit.
    """

    ts_ns: int                     # the capture instant: the flows' event time
    tag: int                       # the caller's (the engine: the flow models' closes count at capture)
    spot: float
    now_ts_ns: int
    rate: float
    div_yield: float
    horizon_days: float
    min_iv_ratio: float
    expiries: np.ndarray           # every contract's unique expiry (the per-expiry sums' rows)
    exp: np.ndarray                # the live contracts (T > 0, IV > 0, OI > 0, sign ≠ 0), slot order
    strike: np.ndarray
    is_call: np.ndarray
    iv: np.ndarray
    m: np.ndarray                  # dealer_sign × OI × multiplier
    d_iv: np.ndarray               # the expiry's IV shift
    vanna: np.ndarray              # per expiry (rows of ``expiries``): the sums of the contracts before pos
    charm: np.ndarray
    pos: int = 0

    @classmethod
    def capture(cls, expiry_ts_ns: np.ndarray, strike: np.ndarray, is_call: np.ndarray, iv: np.ndarray,
                open_interest: np.ndarray, dealer_sign: np.ndarray, spot: float, now_ts_ns: int,
                rate: float, div_yield: float, *, term_change_pts: tuple[float, float, float],
                horizon_days: float = 1.0, long_end: str = "sqrt", min_iv_ratio: float = 0.2,
                multiplier: float = 100.0, ts_ns: int = 0, tag: int = 0) -> RevalJob:
        """Inputs as :func:`reval_flows` (arrays copied: the chain goes on). O(N), no pricing."""
        # (the arrays kept are fancy-indexed copies and np.unique's result: nothing shared with the chain)
        exp, k, call, vol, oi, sign, t, live = _contracts(expiry_ts_ns, strike, is_call, iv, open_interest,
                                                          dealer_sign, now_ts_ns)
        dv = iv_shift_by_days(t * 365.0, *term_change_pts, long_end=long_end)
        i = np.flatnonzero(live)
        u = np.unique(exp)
        return cls(int(ts_ns), int(tag), float(spot), int(now_ts_ns), float(rate), float(div_yield),
                   float(horizon_days), float(min_iv_ratio), u, exp[i], k[i], call[i], vol[i],
                   sign[i] * oi[i] * multiplier, dv[i], np.zeros(u.size), np.zeros(u.size))

    @property
    def done(self) -> bool:
        return self.pos >= self.exp.size

    def step(self, n: int) -> bool:
        """Revalue the next ``n`` contracts (reval_flows' operations on that slice); True once all are."""
        lo, hi = self.pos, min(self.pos + max(int(n), 1), self.exp.size)
        if hi > lo:
            s, r, q = self.spot, self.rate, self.div_yield
            k, c, v, m = self.strike[lo:hi], self.is_call[lo:hi], self.iv[lo:hi], self.m[lo:hi]
            t = (self.exp[lo:hi] - self.now_ts_ns).astype(float) / NS_PER_YEAR
            v_new = np.maximum(v + self.d_iv[lo:hi], self.min_iv_ratio * v)
            t_new = t - float(self.horizon_days) / 365.0
            alive = t_new > 0.0
            d0 = bs.live_delta(s, k, t, r, q, v, c)
            vanna = -s * m * (bs.live_delta(s, k, t, r, q, v_new, c) - d0)
            d_time = np.zeros(hi - lo)
            j = np.flatnonzero(alive)
            d_time[j] = bs.live_delta(s, k[j], t_new[j], r, q, v[j], c[j])
            # settled contracts (not alive) are reval_flows' settlement flow, not charm
            charm = np.where(alive, -s * m * (d_time - d0), 0.0)
            e = np.searchsorted(self.expiries, self.exp[lo:hi])
            np.add.at(self.vanna, e, vanna)
            np.add.at(self.charm, e, charm)
            self.pos = hi
        return self.done

    def totals(self) -> tuple[float, float]:
        """(vanna $, charm $) = ``reval_flows(...).total("vanna_usd"/"charm_usd")``, once :attr:`done`."""
        if not self.done:
            raise ValueError(f"revaluation in progress: {self.pos} of {self.exp.size} contracts")
        # reval_flows' bincount ends each expiry's sum with a 0.0 (its row of the expiry list)
        return float(np.sum(self.vanna + 0.0)), float(np.sum(self.charm + 0.0))

    _ARRAYS = ("expiries", "exp", "strike", "is_call", "iv", "m", "d_iv", "vanna", "charm")

    def to_state(self) -> dict:
        """Plain scalars and array copies."""
        d = {n: getattr(self, n) for n in ("ts_ns", "tag", "spot", "now_ts_ns", "rate", "div_yield",
                                            "horizon_days", "min_iv_ratio", "pos")}
        d.update({n: getattr(self, n).copy() for n in self._ARRAYS})
        return d

    @classmethod
    def from_state(cls, d: dict) -> RevalJob:
        return cls(int(d["ts_ns"]), int(d["tag"]), float(d["spot"]), int(d["now_ts_ns"]), float(d["rate"]),
                   float(d["div_yield"]), float(d["horizon_days"]), float(d["min_iv_ratio"]),
                   *(np.array(d[n], dtype=t, copy=True) for n, t in zip(
                       cls._ARRAYS, (np.int64, np.int64, float, bool, float, float, float, float, float))),
                   int(d["pos"]))
