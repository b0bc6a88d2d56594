"""Black-Scholes-Merton prices and greeks, vectorized (numpy) and scalar (math).

Conventions (all functions):

* ``S`` spot, ``K`` strike (same currency), ``T`` time to expiry in years,
  ``r`` risk-free rate and ``q`` dividend/borrow yield as continuously compounded
  annual decimals, ``sigma`` annualized volatility as a decimal (0.20 = 20%).
* Forward formulation: ``F = S e^{(r-q)T}``, discount factor ``D = e^{-rT}``,
  ``price = D * theta * (F N(theta d1) - K N(theta d2))`` with ``theta = +1`` for a
  call and ``-1`` for a put.
* Dead options (``T <= 0`` or ``sigma <= 0``) are priced at their deterministic value
  ``D max(theta (F - K), 0)`` with ``T`` clamped at 0 (spot intrinsic when expired);
  their gamma, vega, vanna, charm and vomma are 0 and delta is ``theta e^{-qT}`` if in the
  money else 0 (so +-1 or 0 at expiry). No NaN and no warnings are produced for them.

The normal CDF uses W. J. Cody's rational Chebyshev approximations of erfc (Cody 1969,
"Rational Chebyshev approximations for the error function", Math. Comp. 23; the same
coefficients as the netlib SPECFUN routine CALERF), vectorized, with the exp(-x^2)
splitting trick that keeps full relative precision in the tails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Greeks",
    "erfc",
    "norm_cdf",
    "norm_pdf",
    "price",
    "greeks",
    "price1",
    "greeks1",
]

FloatArray = NDArray[np.float64]

# --- Cody's erfc coefficients (Math. Comp. 23, 1969; SPECFUN CALERF) ------------------
# |x| <= 0.46875: erf(x) = x P(x^2) / Q(x^2)
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
# 0.46875 < |x| <= 4: erfc(x) = exp(-x^2) P(x) / Q(x)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
# |x| > 4: erfc(x) = exp(-x^2)/x (1/sqrt(pi) + 1/x^2 P(1/x^2) / Q(1/x^2))
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 0.56418958354775628695
_XBIG = 27.3  # erfc(x) underflows to 0 beyond this (26.543 in Cody: smallest normal)
_INV_SQRT2 = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794


def _exp_minus_sq(y: FloatArray) -> FloatArray:
    """exp(-y^2) with y^2 split as (trunc(16y)/16)^2 + rest to keep relative precision."""
    ysq = np.trunc(y * 16.0) / 16.0
    dl = (y - ysq) * (y + ysq)
    return np.exp(-ysq * ysq) * np.exp(-dl)


def _erfc_mid(y: FloatArray) -> FloatArray:
    """erfc on 0.46875 < y <= 4 (y >= 0)."""
    xnum = _C[8] * y
    xden = y
    for i in range(7):
        xnum = (xnum + _C[i]) * y
        xden = (xden + _D[i]) * y
    return (xnum + _C[7]) / (xden + _D[7]) * _exp_minus_sq(y)


def _erfc_small(x: FloatArray) -> FloatArray:
    """erfc on |x| <= 0.46875 (signed x)."""
    ysq = x * x
    xnum = _A[4] * ysq
    xden = ysq
    for i in range(3):
        xnum = (xnum + _A[i]) * ysq
        xden = (xden + _B[i]) * ysq
    return 1.0 - x * (xnum + _A[3]) / (xden + _B[3])


def _erfc_large(y: FloatArray) -> FloatArray:
    """erfc on y > 4 (y >= 0); 0 beyond _XBIG."""
    y = np.minimum(y, _XBIG)
    ysq = 1.0 / (y * y)
    xnum = _P[5] * ysq
    xden = ysq
    for i in range(4):
        xnum = (xnum + _P[i]) * ysq
        xden = (xden + _Q[i]) * ysq
    res = ysq * (xnum + _P[4]) / (xden + _Q[4])
    res = (_INV_SQRT_PI - res) / y * _exp_minus_sq(y)
    return res


def _erfc_branches(flat: FloatArray) -> FloatArray:
    """erfc of a 1-D array, each branch on its own elements (large arrays: least arithmetic)."""
    y = np.abs(flat)
    out = np.empty_like(flat)
    small = y <= 0.46875
    large = y > 4.0
    mid = ~(small | large)
    if mid.all():
        out = _erfc_mid(y)
    else:
        i = np.flatnonzero(mid)
        out[i] = _erfc_mid(y[i])
        if small.any():
            i = np.flatnonzero(small)
            out[i] = _erfc_small(flat[i])
        if large.any():
            i = np.flatnonzero(large)
            with np.errstate(under="ignore"):
                out[i] = _erfc_large(y[i])
            out[i[y[i] >= _XBIG]] = 0.0
    # erfc(-y) = 2 - erfc(y) for the mid/large branches (the small branch is signed)
    neg = (flat < 0.0) & ~small
    if neg.any():
        out[neg] = 2.0 - out[neg]
    return out


def _stack_plan(polys: list[tuple[tuple[float, ...], tuple[float, ...], int]]):
    """Horner plan of several branches' rational functions run side by side (``_erfc_stacked``).

    ``polys``: (numerator coefficients, denominator coefficients, steps s) by decreasing s; a
    branch's numerator starts at coefficient s+1 (its denominator at 1.0), step k of the plan
    adds coefficient k-7+s and multiplies by the branch's variable (from step 7-s on, so the
    active branches are a leading slice), and the ratio is taken after adding coefficient s."""
    init = np.array([[[p[s + 1]], [1.0]] for p, _q, s in polys])
    steps = []
    for k in range(7):
        rows = [(p[k - 7 + s], q[k - 7 + s]) for p, q, s in polys if k >= 7 - s]
        steps.append((len(rows), np.array([[[a], [b]] for a, b in rows])))
    last = np.array([[[p[s]], [q[s]]] for p, q, s in polys])
    return init, steps, last


_PLAN2 = _stack_plan([(_C, _D, 7), (_A, _B, 3)])              # rows: mid, small
_PLAN3 = _stack_plan([(_C, _D, 7), (_P, _Q, 4), (_A, _B, 3)])  # rows: mid, large, small
_STACKED_BELOW = 1024
_HCAP = 64  # the Horner arrays' lengths: the element count rounded up to a multiple of this
_HCONST: dict[tuple[bool, int], tuple] = {}


def _horner_consts(three: bool, cap: int) -> tuple:
    """``_PLAN2``/``_PLAN3`` (``three``) with each coefficient repeated along a row of ``cap``:
    the Horner steps are then numpy calls on contiguous arrays of one shape, a few times cheaper
    than broadcasting a column of coefficients. Built once per (plan, cap), read-only."""
    c = _HCONST.get((three, cap))
    if c is None:
        init, steps, last = _PLAN3 if three else _PLAN2

        def full(a: FloatArray) -> FloatArray:
            a = np.repeat(a, cap, axis=-1)
            a.flags.writeable = False
            return a
        c = _HCONST[(three, cap)] = (full(init), [full(co) for _m, co in steps], full(last))
    return c


def _horner_vars(three: bool, n: int) -> FloatArray:
    """Zeroed Horner variables for n elements: (branches, 2, n rounded up to ``_HCAP``), each
    branch's variable to be written twice (its numerator's and its denominator's row)."""
    return np.zeros((3 if three else 2, 2, -(-n // _HCAP) * _HCAP))


def _horner(v: FloatArray, three: bool) -> FloatArray:
    """The stacked Horner plan run on ``v`` (``_horner_vars``, filled): numerators and
    denominators (branches, 2, cap), per element the operations of the broadcast plan."""
    init, cos, last = _horner_consts(three, v.shape[-1])
    p = init * v
    k = v.shape[0]
    cut = {k: (p, v)}
    for co in cos:
        m = co.shape[0]
        pv = cut.get(m)
        if pv is None:
            pv = cut[m] = (p[:m], v[:m])
        pm, vm = pv
        pm += co
        pm *= vm
    p += last
    return p


def _horner_inputs(flat: FloatArray, y: FloatArray, three: bool, n: int, xbig, one):
    """The Horner variables of erfc(``flat``), ``y`` = |flat|, each branch's in its rows of ``_horner_vars``
    (the large branch's only when ``three``): (the padded block, its first ``n`` columns, min(y, xbig))."""
    v = _horner_vars(three, n)
    vn = v[:, :, :n]
    yc = np.minimum(y, xbig, out=vn[0, 0]) if three else y
    vn[0] = yc
    np.multiply(flat, flat, out=vn[-1, 0])
    np.copyto(vn[-1, 1], vn[-1, 0])
    if three:
        np.divide(one, np.multiply(yc, yc, out=vn[1, 0]), out=vn[1, 0])
        np.copyto(vn[1, 1], vn[1, 0])
    return v, vn, yc


def _erfc_stacked(flat: FloatArray) -> FloatArray:
    """erfc of a 1-D array with every branch evaluated on every element, the branches' Horner
    steps stacked (the large branch only when an element needs it; ``_horner``): fewer numpy
    calls, whose fixed cost dominates arrays of hundreds. Each element's floating-point
    operations are those of its own branch, so the bits are ``_erfc_branches``'s
    (min(y, _XBIG) = y off the large branch)."""
    n = flat.shape[0]
    y = np.abs(flat)
    large = y > 4.0
    three = bool(large.any())
    with np.errstate(all="ignore"):
        v, vn, yc = _horner_inputs(flat, y, three, n, _XBIG, 1.0)
        p = _horner(v, three)[:, :, :n]           # C8 y, 1.0 y, [P5/y^2, 1/y^2,] A4 x^2, x^2, ...
        e = _exp_minus_sq(yc)
        out = p[0, 0] / p[0, 1] * e
        if three:
            res = vn[1, 0] * p[1, 0] / p[1, 1]
            out = np.where(large, np.where(y >= _XBIG, 0.0, (_INV_SQRT_PI - res) / yc * e), out)
        # erfc(-y) = 2 - erfc(y) for the mid/large branches (the small branch is signed)
        out = np.where(flat < 0.0, 2.0 - out, out)
        return np.where(y <= 0.46875, 1.0 - flat * p[-1, 0] / p[-1, 1], out)


def erfc(x: ArrayLike) -> FloatArray:
    """Complementary error function, vectorized, ~1 ulp-level relative accuracy (Cody).

    Up to ``_STACKED_BELOW`` elements, ``_erfc_stacked`` (fewer numpy calls), above,
    ``_erfc_branches`` (less arithmetic): the same bits.

    >>> float(erfc(0.0)), round(float(erfc(1.0)), 15)
    (1.0, 0.157299207050285)
    """
    xa = np.asarray(x, dtype=np.float64)
    flat = xa.reshape(-1)
    out = _erfc_stacked(flat) if flat.shape[0] < _STACKED_BELOW else _erfc_branches(flat)
    # NaN propagates through the arithmetic; keep it explicit (one NaN whatever the input's)
    nan = np.isnan(flat)
    if nan.any():
        out[nan] = np.nan
    return out.reshape(xa.shape)


def norm_cdf(x: ArrayLike) -> FloatArray:
    """Standard normal CDF Phi(x) = erfc(-x/sqrt 2)/2, vectorized, full double precision.

    Relative accuracy is a few ulp; for x < -20 the rounding of x/sqrt(2) costs up to
    ~x^2 ulp of relative accuracy (3e-13 at x = -37), like every erfc-based Phi.

    >>> round(float(norm_cdf(1.96)), 12)
    0.975002104852
    >>> float(norm_cdf(0.0))
    0.5
    """
    return 0.5 * erfc(-_INV_SQRT2 * np.asarray(x, dtype=np.float64))


def norm_pdf(x: ArrayLike) -> FloatArray:
    """Standard normal density phi(x) = exp(-x^2/2)/sqrt(2 pi), vectorized.

    >>> round(float(norm_pdf(0.0)), 15)
    0.398942280401433
    """
    xa = np.abs(np.asarray(x, dtype=np.float64))
    xs = np.trunc(xa * 16.0) / 16.0  # exact split of x^2/2 keeps tail precision
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        return _INV_SQRT_2PI * np.exp(-0.5 * xs * xs) * np.exp(-0.5 * (xa - xs) * (xa + xs))


def _ncdf1(x: float) -> float:
    return 0.5 * math.erfc(-x * _INV_SQRT2)


def _npdf1(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@dataclass(slots=True)
class Greeks:
    """BSM sensitivities (arrays for ``greeks``, floats for ``greeks1``).

    delta: dV/dS. gamma: d2V/dS2 (per unit S). vega: dV/dsigma per 1.00 of vol (divide by
    100 for "per vol point"). theta: dV/dt per year of calendar time passing (= -dV/dT;
    divide by 365 for per day). vanna: d(delta)/dsigma = d(vega)/dS, per 1.00 vol.
    charm: d(delta)/dt per year *as time passes* (= -d(delta)/dT). vomma: d(vega)/dsigma.
    """

    delta: Any
    gamma: Any
    vega: Any
    theta: Any
    vanna: Any
    charm: Any
    vomma: Any


def _prep(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
          sigma: ArrayLike, is_call: ArrayLike) -> tuple[tuple[int, ...], FloatArray, ...]:
    """Broadcast the inputs and flatten them to 1-D float arrays; return (shape, ...)."""
    arrs = np.broadcast_arrays(
        np.asarray(S, dtype=np.float64), np.asarray(K, dtype=np.float64),
        np.asarray(T, dtype=np.float64), np.asarray(r, dtype=np.float64),
        np.asarray(q, dtype=np.float64), np.asarray(sigma, dtype=np.float64),
        np.asarray(is_call, dtype=bool))
    shape = arrs[0].shape
    S_, K_, T_, r_, q_, v_, c_ = (a.reshape(-1) for a in arrs)
    theta = np.where(c_, 1.0, -1.0)
    return shape, S_, K_, T_, r_, q_, v_, theta


def price(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
          sigma: ArrayLike, is_call: ArrayLike) -> FloatArray:
    """BSM option price (currency of S), numpy-broadcast over all arguments.

    S spot, K strike, T years, r and q continuous annual decimals, sigma annual decimal,
    is_call bool or bool array. Hull, Options Futures and Other Derivatives, Example 15.6:

    >>> round(float(price(42, 40, 0.5, 0.1, 0.0, 0.2, True)), 2)
    4.76
    >>> round(float(price(42, 40, 0.5, 0.1, 0.0, 0.2, False)), 2)
    0.81
    >>> price([42, 42], 40, [0.5, 0.0], 0.1, 0.0, 0.2, True).round(2).tolist()
    [4.76, 2.0]
    """
    shape, S_, K_, T_, r_, q_, v_, th = _prep(S, K, T, r, q, sigma, is_call)
    live = ~((T_ <= 0.0) | (v_ <= 0.0))  # NaN inputs stay "live" and give NaN
    allive = bool(live.all())
    Tp = T_ if allive else np.maximum(T_, 0.0)
    df = np.exp(-r_ * Tp)
    F = S_ * np.exp((r_ - q_) * Tp)
    if allive:
        sd = v_ * np.sqrt(T_)
        d1 = np.log(F / K_) / sd + 0.5 * sd
        d2 = d1 - sd
        return (df * th * (F * norm_cdf(th * d1) - K_ * norm_cdf(th * d2))).reshape(shape)
    out = df * np.maximum(th * (F - K_), 0.0)
    if live.any():
        i = np.nonzero(live)
        sd = v_[i] * np.sqrt(T_[i])
        t_ = th[i]
        d1 = np.log(F[i] / K_[i]) / sd + 0.5 * sd
        d2 = d1 - sd
        out[i] = df[i] * t_ * (F[i] * norm_cdf(t_ * d1) - K_[i] * norm_cdf(t_ * d2))
    return out.reshape(shape)


def greeks(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
           sigma: ArrayLike, is_call: ArrayLike) -> Greeks:
    """BSM greeks as a ``Greeks`` of arrays (units in ``Greeks``), from one d1/d2.

    Hull Example 19.1 (S=49, K=50, r=5%, sigma=20%, T=20 weeks): call delta 0.522.

    >>> g = greeks(49, 50, 0.3846, 0.05, 0.0, 0.2, True)
    >>> round(float(g.delta), 3), round(float(g.gamma), 3), round(float(g.vega), 1)
    (0.522, 0.066, 12.1)
    >>> round(float(g.theta), 2)
    -4.31
    """
    shape, S_, K_, T_, r_, q_, v_, th = _prep(S, K, T, r, q, sigma, is_call)
    live = ~((T_ <= 0.0) | (v_ <= 0.0))  # NaN inputs stay "live" and give NaN
    Tp = np.maximum(T_, 0.0)
    dq = np.exp(-q_ * Tp)
    dr = np.exp(-r_ * Tp)
    F = S_ * np.exp((r_ - q_) * Tp)
    # dead-option values: deterministic payoff D max(theta (F-K), 0)
    itm = (th * (F - K_) > 0.0).astype(np.float64)
    delta = th * dq * itm
    zero = np.zeros_like(S_)
    thet = np.where(T_ > 0.0, th * (q_ * S_ * dq - r_ * K_ * dr) * itm, 0.0)
    gamma, vega, vanna, charm, vomma = (zero.copy() for _ in range(5))
    if live.any():
        i = np.nonzero(live)
        s, k, t, rr, qq, v, tt = S_[i], K_[i], T_[i], r_[i], q_[i], v_[i], th[i]
        eq, er = dq[i], dr[i]
        sqt = np.sqrt(t)
        sd = v * sqt
        d1 = np.log(F[i] / k) / sd + 0.5 * sd
        d2 = d1 - sd
        n1 = norm_cdf(tt * d1)
        n2 = norm_cdf(tt * d2)
        pdf = norm_pdf(d1)
        epdf = eq * pdf
        delta[i] = tt * eq * n1
        gamma[i] = epdf / (s * sd)
        vg = s * epdf * sqt
        vega[i] = vg
        thet[i] = (-s * epdf * v / (2.0 * sqt) - tt * rr * k * er * n2
                   + tt * qq * s * eq * n1)
        vanna[i] = -epdf * d2 / v
        charm[i] = tt * qq * eq * n1 - epdf * (2.0 * (rr - qq) * t - d2 * sd) / (2.0 * t * sd)
        vomma[i] = vg * d1 * d2 / v
    return Greeks(delta=delta.reshape(shape), gamma=gamma.reshape(shape),
                  vega=vega.reshape(shape), theta=thet.reshape(shape),
                  vanna=vanna.reshape(shape), charm=charm.reshape(shape),
                  vomma=vomma.reshape(shape))


def price1(S: float, K: float, T: float, r: float, q: float, sigma: float,
           is_call: bool) -> float:
    """Scalar BSM price with ``math`` (hot path), same conventions as ``price``.

    >>> round(price1(42.0, 40.0, 0.5, 0.1, 0.0, 0.2, True), 2)
    4.76
    >>> round(price1(42.0, 40.0, 0.5, 0.1, 0.0, 0.2, False), 2)
    0.81
    """
    th = 1.0 if is_call else -1.0
    if not (T <= 0.0 or sigma <= 0.0):
        df = math.exp(-r * T)
        F = S * math.exp((r - q) * T)
        sd = sigma * math.sqrt(T)
        d1 = math.log(F / K) / sd + 0.5 * sd
        d2 = d1 - sd
        return df * th * (F * _ncdf1(th * d1) - K * _ncdf1(th * d2))
    Tp = max(T, 0.0)
    F = S * math.exp((r - q) * Tp)
    return math.exp(-r * Tp) * max(th * (F - K), 0.0)


def greeks1(S: float, K: float, T: float, r: float, q: float, sigma: float,
            is_call: bool) -> Greeks:
    """Scalar BSM greeks with ``math`` (hot path), same conventions as ``greeks``.

    >>> g = greeks1(49.0, 50.0, 0.3846, 0.05, 0.0, 0.2, True)
    >>> round(g.delta, 3), round(g.gamma, 3), round(g.vega, 1), round(g.theta, 2)
    (0.522, 0.066, 12.1, -4.31)
    """
    th = 1.0 if is_call else -1.0
    Tp = max(T, 0.0)
    eq = math.exp(-q * Tp)
    er = math.exp(-r * Tp)
    F = S * math.exp((r - q) * Tp)
    if T <= 0.0 or sigma <= 0.0:
        itm = 1.0 if th * (F - K) > 0.0 else 0.0
        thet = th * (q * S * eq - r * K * er) * itm if T > 0.0 else 0.0
        return Greeks(delta=th * eq * itm, gamma=0.0, vega=0.0, theta=thet, vanna=0.0,
                      charm=0.0, vomma=0.0)
    sqt = math.sqrt(T)
    sd = sigma * sqt
    d1 = math.log(F / K) / sd + 0.5 * sd
    d2 = d1 - sd
    n1 = _ncdf1(th * d1)
    n2 = _ncdf1(th * d2)
    epdf = eq * _npdf1(d1)
    vg = S * epdf * sqt
    return Greeks(
        delta=th * eq * n1,
        gamma=epdf / (S * sd),
        vega=vg,
        theta=-S * epdf * sigma / (2.0 * sqt) - th * r * K * er * n2 + th * q * S * eq * n1,
        vanna=-epdf * d2 / sigma,
        charm=th * q * eq * n1 - epdf * (2.0 * (r - q) * T - d2 * sd) / (2.0 * T * sd),
        vomma=vg * d1 * d2 / sigma,
    )


# --------------------------------------------------------------------------------------
# Scalar mirrors of the vector functions, for small batches (numpy's ~1-5 us per call
# dominates below a few dozen elements). Each performs the vector function's floating-point
# operations on one element in the same order, so its result is bit-identical *provided*
# ``math.exp``/``log``/``sinh`` round like numpy's loops; ``SCALAR_MIRRORS_EXACT`` checks that
# once at import (numpy's AVX-512 exp/log differ from libm; then callers must stay on the
# vector path). Python raises where numpy gives inf/NaN (x/0, log(0), exp overflow): callers
# then redo that element with the vector function, so edge cases follow the vector path too.


def _libm_matches_numpy() -> bool:
    """Whether math.exp/log/sinh/sqrt equal numpy's on a fixed sample of the hot-path ranges."""
    rng = np.random.default_rng(20261207)
    x = np.concatenate([rng.uniform(-745.0, 709.0, 4096), rng.uniform(-40.0, 40.0, 8192),
                        rng.uniform(-1.0, 1.0, 4096)])
    xp = np.abs(x) + 1e-300
    with np.errstate(all="ignore"):
        pairs = ((np.exp(x), x, math.exp), (np.log(xp), xp, math.log),
                 (np.sinh(x[4096:]), x[4096:], math.sinh), (np.sqrt(xp), xp, math.sqrt))
    return all(v.tolist() == [f(t) for t in a.tolist()] for v, a, f in pairs)


SCALAR_MIRRORS_EXACT: bool = _libm_matches_numpy()


_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8 = _C
_D0, _D1, _D2, _D3, _D4, _D5, _D6, _D7 = _D


def _exp_minus_sq1(y: float) -> float:
    ysq = math.trunc(y * 16.0) / 16.0
    dl = (y - ysq) * (y + ysq)
    return math.exp(-ysq * ysq) * math.exp(-dl)


def erfc1(x: float) -> float:
    """Scalar mirror of ``erfc`` (same operations, same bits when SCALAR_MIRRORS_EXACT).

    >>> erfc1(0.3) == float(erfc(0.3)), erfc1(-2.5) == float(erfc(-2.5))
    (True, True)
    """
    if x != x:
        return x
    y = abs(x)
    if y <= 0.46875:
        ysq = x * x
        xnum = _A[4] * ysq
        xden = ysq
        for i in range(3):
            xnum = (xnum + _A[i]) * ysq
            xden = (xden + _B[i]) * ysq
        return 1.0 - x * (xnum + _A[3]) / (xden + _B[3])
    if y <= 4.0:
        # _erfc_mid's Horner loops written out (same operations and order, no loop overhead)
        xnum = (((((((_C8 * y + _C0) * y + _C1) * y + _C2) * y + _C3) * y + _C4) * y + _C5) * y
                + _C6) * y
        xden = (((((((y + _D0) * y + _D1) * y + _D2) * y + _D3) * y + _D4) * y + _D5) * y
                + _D6) * y
        ysq = math.trunc(y * 16.0) / 16.0
        out = ((xnum + _C7) / (xden + _D7)
               * (math.exp(-ysq * ysq) * math.exp(-((y - ysq) * (y + ysq)))))
    elif y >= _XBIG:
        out = 0.0
    else:
        ysq = 1.0 / (y * y)
        xnum = _P[5] * ysq
        xden = ysq
        for i in range(4):
            xnum = (xnum + _P[i]) * ysq
            xden = (xden + _Q[i]) * ysq
        res = ysq * (xnum + _P[4]) / (xden + _Q[4])
        out = (_INV_SQRT_PI - res) / y * _exp_minus_sq1(y)
    return 2.0 - out if x < 0.0 else out


def norm_cdf1(x: float) -> float:
    """Scalar mirror of ``norm_cdf``."""
    return 0.5 * erfc1(-_INV_SQRT2 * x)


def norm_pdf1(x: float) -> float:
    """Scalar mirror of ``norm_pdf``."""
    xa = abs(x)
    xs = math.trunc(xa * 16.0) / 16.0
    return _INV_SQRT_2PI * math.exp(-0.5 * xs * xs) * math.exp(-0.5 * (xa - xs) * (xa + xs))


def live_greeks1(S: float, K: float, T: float, r: float, q: float, sigma: float,
                 th: float) -> tuple[float, float, float, float]:
    """(gamma, delta, vanna, charm) of a live option (T > 0, sigma > 0; th = +1 call, -1 put):
    scalar mirror of ``greeks`` (same bits when SCALAR_MIRRORS_EXACT).

    >>> g = greeks(49.0, 50.0, 0.3846, 0.05, 0.0, 0.2, True)
    >>> live_greeks1(49.0, 50.0, 0.3846, 0.05, 0.0, 0.2, 1.0) == (
    ...     float(g.gamma), float(g.delta), float(g.vanna), float(g.charm))
    True
    """
    eq = math.exp(-q * T)
    F = S * math.exp((r - q) * T)
    sqt = math.sqrt(T)
    sd = sigma * sqt
    d1 = math.log(F / K) / sd + 0.5 * sd
    d2 = d1 - sd
    n1 = norm_cdf1(th * d1)
    epdf = eq * norm_pdf1(d1)
    return (epdf / (S * sd), th * eq * n1, -epdf * d2 / sigma,
            th * q * eq * n1 - epdf * (2.0 * (r - q) * T - d2 * sd) / (2.0 * T * sd))


_M_INV_SQRT2 = np.array(-_INV_SQRT2)
_INV_SQRT_2PI_A = np.array(_INV_SQRT_2PI)
_XBIG_A = np.array(_XBIG)
(_ZERO_A, _HALF_A, _MHALF_A, _ONE_A, _TWO_A, _FOUR_A, _SIXTEEN_A, _SMALL_A) = (
    np.array(v) for v in (0.0, 0.5, -0.5, 1.0, 2.0, 4.0, 16.0, 0.46875))


def live_greeks(S: float, K: FloatArray, T: FloatArray, r: float, q: float, sigma: FloatArray,
                is_call: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(gamma, delta, vanna, charm) of live options (T > 0, sigma > 0) at one spot: ``greeks``'s
    operations for these four only (same bits), without broadcasting, theta, vega or vomma.

    ``norm_cdf`` and ``norm_pdf`` written out (below ``_STACKED_BELOW`` elements,
    ``_erfc_stacked``'s operations), in few numpy calls (their fixed cost dominates arrays of
    hundreds): the exponentials of erfc's exp(-y^2) split and of the density's in one ``np.exp``
    ([-ysq, ysq - y, -xs/2, (xs - xa)/2] * [ysq, y + ysq, xs, xa + xs]: negating or halving is
    exact), contiguous operands of one shape, constants as 0-d arrays.

    >>> g = greeks(49.0, np.array([50.0]), np.array([0.3846]), 0.05, 0.0, np.array([0.2]), True)
    >>> [a.tolist() for a in live_greeks(49.0, np.array([50.0]), np.array([0.3846]), 0.05, 0.0,
    ...                                  np.array([0.2]), np.array([True]))] == [
    ...     g.gamma.tolist(), g.delta.tolist(), g.vanna.tolist(), g.charm.tolist()]
    True
    """
    n = K.shape[0]
    if n >= _STACKED_BELOW:
        return _live_greeks_plain(S, K, T, r, q, sigma, is_call)
    th = np.where(is_call, 1.0, -1.0)
    eqf = np.empty((2, n))                              # e^{-qT}, e^{(r-q)T}
    np.multiply(T, -q, out=eqf[0])
    np.multiply(T, r - q, out=eqf[1])
    np.exp(eqf, out=eqf)
    eq = eqf[0]
    F = np.multiply(eqf[1], S, out=eqf[1])
    sqt = np.sqrt(T)
    sd = sigma * sqt
    d1 = np.divide(F, K)
    np.log(d1, out=d1)
    d1 /= sd
    d1 += np.multiply(sd, _HALF_A)
    d2 = d1 - sd
    flat = th * d1
    flat *= _M_INV_SQRT2                                # norm_cdf(th d1) = erfc(flat)/2
    with np.errstate(all="ignore"):
        # rows of yx, then lr[1:3]: y = |flat| and xa = |d1|; their trunc(16 .)/16
        lr = np.empty((2, 4, n))                        # [-ysq, -xs/2, ysq - y, (xs - xa)/2],
        yx = np.empty((2, n))                           # [ysq, xs, y + ysq, xa + xs]
        y = yx[0]
        np.abs(flat, out=y)
        np.abs(d1, out=yx[1])
        large = y > _FOUR_A
        three = np.count_nonzero(large) != 0
        v, vn, yc = _horner_inputs(flat, y, three, n, _XBIG_A, _ONE_A)
        if three:
            yx[0] = yc
        p = _horner(v, three)[:, :, :n]
        zs = lr[1, 0:2]
        np.multiply(yx, _SIXTEEN_A, out=zs)
        np.trunc(zs, out=zs)
        zs /= _SIXTEEN_A                                # ysq, xs
        np.add(yx, zs, out=lr[1, 2:])                   # yc + ysq, xa + xs
        np.negative(zs[0], out=lr[0, 0])
        np.multiply(zs[1], _MHALF_A, out=lr[0, 1])
        np.subtract(zs, yx, out=lr[0, 2:])              # ysq - yc, xs - xa
        lr[0, 3] *= _HALF_A
        ex = np.multiply(lr[0], lr[1], out=lr[0])
        np.exp(ex, out=ex)
        e = ex[0] * ex[2]                               # exp(-yc^2)
        out = p[0, 0] / p[0, 1]
        out *= e
        if three:
            res = vn[1, 0] * p[1, 0] / p[1, 1]
            out = np.where(large, np.where(y >= _XBIG_A, 0.0, (_INV_SQRT_PI - res) / yc * e), out)
        # erfc(-y) = 2 - erfc(y) for the mid/large branches (the small branch is signed)
        np.copyto(out, _TWO_A - out, where=flat < _ZERO_A)
        small = flat * p[-1, 0]
        small /= p[-1, 1]
        np.copyto(out, np.subtract(_ONE_A, small, out=small), where=y <= _SMALL_A)
        nan = np.isnan(flat)
        if np.count_nonzero(nan):                       # erfc's explicit NaN
            out[nan] = np.nan
        n1 = np.multiply(out, _HALF_A, out=out)
        pdf = np.multiply(ex[1], _INV_SQRT_2PI_A)
        pdf *= ex[3]
    epdf = np.multiply(eq, pdf, out=pdf)
    the = th * eq
    g = np.multiply(sd, S)
    np.divide(epdf, g, out=g)
    delta = the * n1
    vanna = np.negative(epdf)
    vanna *= d2
    vanna /= sigma
    # charm = th q eq n1 - epdf (2 (r - q) T - d2 sd) / (2 T sd); th q eq = th eq q (th = +-1)
    the *= q
    the *= n1
    c = np.multiply(T, 2.0 * (r - q))
    d2 *= sd
    c -= d2
    c *= epdf
    tsd = np.multiply(T, _TWO_A)
    tsd *= sd
    c /= tsd
    np.subtract(the, c, out=c)
    return g, delta, vanna, c


def _live_greeks_plain(S: float, K: FloatArray, T: FloatArray, r: float, q: float,
                       sigma: FloatArray, is_call: NDArray[np.bool_]) -> tuple[FloatArray, ...]:
    """``live_greeks`` through ``norm_cdf`` and ``norm_pdf`` (the reference formula)."""
    th = np.where(is_call, 1.0, -1.0)
    eq = np.exp(-q * T)
    F = S * np.exp((r - q) * T)
    sqt = np.sqrt(T)
    sd = sigma * sqt
    d1 = np.log(F / K) / sd + 0.5 * sd
    d2 = d1 - sd
    n1 = norm_cdf(th * d1)
    epdf = eq * norm_pdf(d1)
    return (epdf / (S * sd), th * eq * n1, -epdf * d2 / sigma,
            th * q * eq * n1 - epdf * (2.0 * (r - q) * T - d2 * sd) / (2.0 * T * sd))


def live_delta(S: float, K: FloatArray, T: FloatArray, r: float, q: float, sigma: FloatArray,
               is_call: NDArray[np.bool_]) -> FloatArray:
    """BSM delta of live options (T > 0, sigma > 0) at one spot: ``live_greeks``'s (and so ``greeks``'s)
    operations for the delta alone, same bits (the dealer revaluation needs nothing else).

    >>> k, t, v, c = np.array([95.0, 105.0]), np.array([0.1, 0.5]), np.array([0.2, 0.3]), np.array([True, False])
    >>> live_delta(100.0, k, t, 0.04, 0.01, v, c).tolist() == greeks(100.0, k, t, 0.04, 0.01, v, c).delta.tolist()
    True
    """
    th = np.where(is_call, 1.0, -1.0)
    eq = np.exp(-q * T)
    F = S * np.exp((r - q) * T)
    sd = sigma * np.sqrt(T)
    d1 = np.log(F / K) / sd + 0.5 * sd
    return th * eq * norm_cdf(th * d1)
