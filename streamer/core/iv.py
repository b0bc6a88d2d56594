"""Black-Scholes-Merton implied volatility: scalar and batch solvers with reason codes.

Method (after P. Jaeckel, "Let's Be Rational", Wilmott 2015; implemented from the paper's
ideas, not from any library's code):

1. Normalize. With ``F = S e^{(r-q)T}``, ``D = e^{-rT}``, ``x = ln(F/K)``, the undiscounted
   price divided by ``sqrt(F K)`` is the *normalized Black price* ``b(x, s)`` of total vol
   ``s = sigma sqrt(T)``. In-the-money prices lose their normalized intrinsic
   ``2|sinh(x/2)|`` and, by put/call symmetry, every quote becomes an out-of-the-money call
   with ``x <= 0``: ``b(x, s) = e^{x/2} Phi(x/s + s/2) - e^{-x/2} Phi(x/s - s/2)``,
   ``0 <= b < e^{x/2}``.
2. Initial guess from a 2-D table of ``ln s`` built once (lazily, ~30 ms) by bisection on
   the exact ``b``, in coordinates where ``ln s`` is smooth and nearly linear:
   ``ln|x|`` and ``u = ln(-ln(b e^{-x/2}))`` (in the low-price wing
   ``ln s ~ ln|x| - ln(2)/2 - u/2``). Bilinear interpolation (linear extrapolation in the
   wings) gives ``ln s`` to ~1e-4.
3. Householder steps of order 3 (convergence order 4) on ``b - beta`` above the inflection
   point ``s_c = sqrt(2|x|)`` and on ``ln b - ln beta`` below it, using the closed forms
   ``b' = exp(-(x^2/s^2 + s^2/4)/2)/sqrt(2 pi)``, ``b''/b' = x^2/s^3 - s/4`` and
   ``b'''/b' = (b''/b')^2 - 3x^2/s^4 - 1/4``. Steps are safeguarded by a bracket
   (bisection if a step leaves it). An option is done when its last step was below
   ``1e-7 s`` (its error is then ~(1e-7)^4); only unconverged options are iterated again.
   Typically two steps.

Bad quotes never raise in the hot path: the result is NaN plus an ``IVReason`` code.

``implied_vols`` (the chain's entry point) gives ``implied_vol_batch``'s IVs bit for bit: up to
``SCALAR_BELOW`` options one by one through scalar mirrors of the vector code (numpy's per-call
overhead dominates small batches), more through the vector code without the reason codes.
``implied_vol`` is the independent scalar solver (``math.erfc``; not bit-identical to the batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from streamer.core.bs import (_HCAP, _INV_SQRT_PI, _STACKED_BELOW, _XBIG, SCALAR_MIRRORS_EXACT,
                              _horner_consts, _horner_vars, erfc, erfc1, norm_cdf)

__all__ = [
    "IVReason",
    "QuoteIVs",
    "implied_vol",
    "implied_vol_batch",
    "implied_vols",
    "quote_ivs",
    "normalized_black",
]

FloatArray = NDArray[np.float64]

_INV_SQRT_2PI = 0.39894228040143267794
_INV_SQRT2 = 0.70710678118654752440
_STEP_TOL = 1e-7  # relative step below which the next (4th-order) step is negligible
_MAX_ITER = 60
_TV_FLOOR = 4.0 * 2.220446049250313e-16  # time value below this x premium is rounding
_FLOOR = 8.0 * 2.220446049250313e-16  # |b - beta| below this x (larger term) is noise
# the constants of the vector kernels as 0-d arrays: numpy converts a Python float operand on
# every call (~0.4 us each, a few percent of a batch of hundreds); same values, same bits
(_ZERO, _QUARTER, _HALF, _MHALF, _ONE, _TWO, _THREE, _FOUR, _SIX, _SIXTEEN, _M2, _SMALL_Y,
 _XBIG_A, _NEG_INV_SQRT2, _INV_SQRT_PI_A, _INV_SQRT_2PI_A, _FLOOR_A, _TV_FLOOR_A, _TINY,
 _INF) = (np.array(v) for v in (
    0.0, 0.25, 0.5, -0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 16.0, -2.0, 0.46875,
    _XBIG, -_INV_SQRT2, _INV_SQRT_PI, _INV_SQRT_2PI, _FLOOR, _TV_FLOOR, 1e-300, math.inf))
_STEP_TOL_A, _COLLAPSE_A = np.array(_STEP_TOL), np.array(4e-16)  # multiples of s
_MERGE_INPLACE_BELOW = 300


def _merge(mask: NDArray[np.bool_], a: ArrayLike, b: FloatArray) -> FloatArray:
    """``np.where(mask, a, b)``, written into ``b`` (a scratch array) when it is small: numpy's
    masked copy is cheaper than ``np.where`` below a few hundred elements, dearer above."""
    if b.shape[0] < _MERGE_INPLACE_BELOW:
        np.copyto(b, a, where=mask)
        return b
    return np.where(mask, a, b)


class IVReason(IntEnum):
    """Outcome codes of the implied-vol solvers (NaN IV unless OK)."""

    OK = 0
    NONFINITE = 1  # an input is NaN or infinite
    BAD_INPUT = 2  # S <= 0 or K <= 0
    EXPIRED = 3  # T <= 0
    ZERO_PRICE = 4  # price == 0 (no information)
    BELOW_INTRINSIC = 5  # price <= discounted intrinsic (+ 4 ulp): no time value
    ABOVE_MAX = 6  # price at or above the no-arbitrage maximum (S e^{-qT} or K e^{-rT})
    NO_CONVERGENCE = 7  # solver did not converge (should not happen; kept for the DLQ)
    ZERO_BID = 8  # quote_ivs: bid <= 0
    CROSSED = 9  # quote_ivs: bid > ask


# --------------------------------------------------------------------------------------
# normalized Black


def normalized_black(x: ArrayLike, s: ArrayLike) -> FloatArray:
    """Normalized OTM Black call price b(x, s) for x <= 0 (x = ln F/K, s = sigma sqrt T > 0).

    Undiscounted price / sqrt(F K). ATM: b(0, s) = 2 Phi(s/2) - 1.

    >>> round(float(normalized_black(0.0, 0.2)), 12)
    0.079655674554
    """
    xa = np.asarray(x, dtype=np.float64)
    sa = np.asarray(s, dtype=np.float64)
    h = xa / sa
    t = 0.5 * sa
    return np.exp(0.5 * xa) * norm_cdf(h + t) - np.exp(-0.5 * xa) * norm_cdf(h - t)


class _KWork:
    """Scratch arrays of ``_bv`` for n options and their views (a solve's iterations share
    them: making a view costs about as much as a numpy call)."""

    __slots__ = ("n", "ht", "flat", "fa", "fb", "ab", "e", "e2", "ev", "hv")

    def __init__(self, n: int) -> None:
        n2 = 2 * n
        self.n = n
        self.ht = np.empty((2, n))                  # h, t (then h^2, t^2)
        self.flat = np.empty(n2)                    # -(h + t)/sqrt 2, -(h - t)/sqrt 2
        self.fa, self.fb = self.flat[:n], self.flat[n:]
        self.ab = np.empty((2, 2, n2))              # exp(-y^2)'s factors' factors
        self.e = np.empty(5 * n)                    # exp's arguments
        self.e2 = self.e[:2 * n2].reshape(2, n2)
        self.ev = self.e[2 * n2:]
        self.hv: list = [None, None]                # Horner variables of the 2-, 3-branch plan

    def horner_vars(self, three: bool) -> tuple:
        """``bs._horner_vars`` of the plan, their first 2n columns, and ``bs._horner``'s
        arrays and views for them (products, coefficients, step slices), made on first use."""
        hv = self.hv[three]
        if hv is None:
            v = _horner_vars(three, 2 * self.n)
            init, cos, last = _horner_consts(three, v.shape[-1])
            p = np.empty(v.shape)
            steps = [(p[:co.shape[0]], co, v[:co.shape[0]]) for co in cos]
            hv = self.hv[three] = (v, v[:, :, :2 * self.n], p, init, steps, last,
                                   p[:, :, :2 * self.n])
        return hv


def _b_and_vega(x: FloatArray, ex: FloatArray,
                s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """b(x, s), db/ds and the size of b's larger term (for the rounding floor); s > 0.
    See ``_bv``."""
    return _bv(x, ex, s, _KWork(x.shape[0]))


def _bv(x: FloatArray, ex: FloatArray, s: FloatArray,
        kw: _KWork) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``_b_and_vega`` with its scratch arrays ``kw``.

    ``norm_cdf`` written out for this use (below ``bs._STACKED_BELOW`` CDF arguments, its
    stacked erfc kernel), per element the same operations, in few numpy calls (their fixed
    cost dominates batches of hundreds): the two CDF arguments in one array, the Horner steps
    of all branches on whole arrays of one shape (``bs._horner``), exp(-y^2)'s two factors
    and the vega's exponential in one ``np.exp``, constants as 0-d arrays. Callers ignore
    floating-point errors. A NaN gives some NaN (``erfc`` makes it the default NaN; no output
    depends on which)."""
    n = kw.n
    ht = kw.ht
    h, t = ht
    np.divide(x, s, out=h)
    np.multiply(s, _HALF, out=t)
    flat = kw.flat
    np.add(h, t, out=kw.fa)
    np.subtract(h, t, out=kw.fb)
    flat *= _NEG_INV_SQRT2
    ht *= ht
    if 2 * n >= _STACKED_BELOW:   # bs.erfc's per-branch path (less arithmetic)
        out = erfc(flat)
        ev = np.add(h, t, out=h)
        ev *= _MHALF
        np.exp(ev, out=ev)
    else:
        # bs._erfc_stacked's operations; rows of v: the mid, [large,] small branches' variables
        # (twice each: numerator and denominator rows)
        v, vn, p, init, steps, last, pn = kw.horner_vars(False)
        yc = vn[0, 0]
        np.abs(flat, out=yc)
        large = yc > _FOUR
        three = np.count_nonzero(large) != 0
        if three:
            v, vn, p, init, steps, last, pn = kw.horner_vars(True)
            np.minimum(yc, _XBIG_A, out=vn[0, 0])  # the large branch's min(y, XBIG): y elsewhere
            yc = vn[0, 0]
            iy2 = vn[1, 0]
            np.divide(_ONE, np.multiply(yc, yc, out=iy2), out=iy2)
            np.copyto(vn[1, 1], iy2)
        np.copyto(vn[0, 1], yc)
        np.multiply(flat, flat, out=vn[-1, 0])
        np.copyto(vn[-1, 1], vn[-1, 0])
        np.multiply(init, v, out=p)                     # bs._horner, views made once
        for pm, co, vm in steps:
            pm += co
            pm *= vm
        p += last
        # exp(-y^2) = exp(-ysq ysq) exp(-(y - ysq)(y + ysq)) (bs._exp_minus_sq) and the vega's
        # exp(-(h^2 + t^2)/2) in one exp: [-ysq, ysq - y] * [ysq, y + ysq] (negating a
        # product or a difference is exact) and the vega's argument
        ab, e, ev = kw.ab, kw.e, kw.ev
        ysq = ab[1, 0]
        np.multiply(yc, _SIXTEEN, out=ysq)
        np.trunc(ysq, out=ysq)
        ysq /= _SIXTEEN
        np.negative(ysq, out=ab[0, 0])
        np.subtract(ysq, yc, out=ab[0, 1])
        np.add(yc, ysq, out=ab[1, 1])
        e2 = kw.e2
        np.multiply(ab[0], ab[1], out=e2)
        np.add(h, t, out=ev)
        ev *= _MHALF
        np.exp(e, out=e)
        em = e2[0] * e2[1]
        # Horner ratios: mid P/Q, [large (P/y^2)/Q,] small (x P)/Q
        if three:
            pn[1, 0] *= vn[1, 0]
        pn[-1, 0] *= flat
        out = np.divide(pn[0, 0], pn[0, 1])
        out *= em
        if three:
            lg = pn[1, 0] / pn[1, 1]
            np.subtract(_INV_SQRT_PI_A, lg, out=lg)
            lg /= yc
            lg *= em
            lg = _merge(yc >= _XBIG_A, _ZERO, lg)
            out = _merge(large, lg, out)
        # erfc(-y) = 2 - erfc(y) for the mid/large branches (the small branch is signed)
        np.copyto(out, _TWO - out, where=flat < _ZERO)
        small = pn[-1, 0] / pn[-1, 1]
        np.copyto(out, np.subtract(_ONE, small, out=small), where=yc <= _SMALL_Y)
    out *= _HALF                                         # Phi(h + t), Phi(h - t)
    big = ex * out[:n]
    b = big - out[n:] / ex
    ev *= _INV_SQRT_2PI_A
    return b, ev, big


# --------------------------------------------------------------------------------------
# initial-guess table: ln s on a uniform grid of (ln|x|, u = ln(-ln v)), v = b e^{-x/2}

_LX0, _LX1, _NX = -14.0, 2.5, 67  # |x| from 8e-7 to 12
_U0, _U1, _NU = -6.0, 6.0, 193  # v from exp(-e^-6)=0.9975 down to exp(-e^6)=1e-175
_HX = (_LX1 - _LX0) / (_NX - 1)
_HU = (_U1 - _U0) / (_NU - 1)


@dataclass(slots=True)
class _Table:
    flat: FloatArray  # ln s, row-major (NX, NU) flattened
    rows: list[list[float]]  # the same as Python lists for the scalar path
    # per node k = i NU + j (i < NX-1, j < NU-1): rows t00, t10, t01 - t00, t11 - t10 (the
    # differences _guess would take: same bits), so that one gather gives a cell's corners
    corners: FloatArray


_TABLE: _Table | None = None


def _build_table() -> _Table:
    """Invert b(x, s) at every grid node by bisection in ln s (vectorized, ~30 ms)."""
    lx = np.linspace(_LX0, _LX1, _NX)[:, None]
    u = np.linspace(_U0, _U1, _NU)[None, :]
    x = -np.exp(lx) * np.ones_like(u)
    ex = np.exp(0.5 * x)
    lnv = -np.exp(u) * np.ones_like(lx)
    lo = np.full(x.shape, math.log(1e-12))
    hi = np.full(x.shape, math.log(200.0))
    xf, exf, target_ln = x.ravel(), ex.ravel(), lnv.ravel()
    lo, hi = lo.ravel(), hi.ravel()
    with np.errstate(all="ignore"):
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            b, _v, _big = _b_and_vega(xf, exf, np.exp(mid))
            below = np.log(np.maximum(b, 1e-320) / exf) < target_ln
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
    flat = 0.5 * (lo + hi)
    grid = flat.reshape(_NX, _NU)
    corners = np.zeros((4, _NX, _NU))
    corners[0, :-1, :-1] = grid[:-1, :-1]
    corners[1, :-1, :-1] = grid[1:, :-1]
    corners[2, :-1, :-1] = grid[:-1, 1:] - grid[:-1, :-1]
    corners[3, :-1, :-1] = grid[1:, 1:] - grid[1:, :-1]
    return _Table(flat=flat, rows=grid.tolist(), corners=corners.reshape(4, -1))


def _table() -> _Table:
    global _TABLE
    if _TABLE is None:
        _TABLE = _build_table()
    return _TABLE


_G_OFF = np.array([[_LX0], [_U0]])
_G_SCALE = np.array([[1.0 / _HX], [1.0 / _HU]])
_G_LO = np.array([[0.0], [-8.0]])
_G_HI = np.array([[_NX - 1.0 + 2.0], [_NU - 1.0 + 400.0]])  # flat below, short extrapolation above
_G_IHI = np.array([[_NX - 2.0], [_NU - 2.0]])
_NU_A = np.array(float(_NU))
_GCONST: dict[int, tuple] = {}


def _guess_consts(cap: int) -> tuple:
    """_G_OFF, _G_SCALE, _G_LO, _G_HI, _G_IHI repeated along rows of ``cap`` (a contiguous
    operand of the same shape costs a numpy call a fraction of a broadcast column's); the
    columns themselves above ``bs._STACKED_BELOW`` (a bounded cache; per-call cost no matter)."""
    if cap > _STACKED_BELOW:
        return _G_OFF, _G_SCALE, _G_LO, _G_HI, _G_IHI
    c = _GCONST.get(cap)
    if c is None:
        c = _GCONST[cap] = tuple(np.repeat(a, cap, axis=1)
                                 for a in (_G_OFF, _G_SCALE, _G_LO, _G_HI, _G_IHI))
        for a in c:
            a.flags.writeable = False
    return c


def _guess(x: FloatArray, lnbeta: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """Initial total vol s from the table (x <= 0, ln beta < x/2).

    Both grid coordinates in one (2, cap) array, cap = n rounded up to ``bs._HCAP`` (padded
    with 1.0, a harmless cell) for ``_guess_consts`` (numpy's per-call cost dominates batches of
    hundreds); per element the operations of ``_guess_mirror1`` (floor = int() for fi >= 0; the
    cell indices stay floats, exact, until the gather)."""
    n = x.shape[0]
    cap = -(-n // _HCAP) * _HCAP
    off, scale, glo, ghi, gihi = _guess_consts(cap)
    f = np.empty((2, cap))
    f0, f1 = f
    if cap != n:
        f[:, n:] = 1.0
    np.maximum(-x, _TINY, out=f0[:n])
    np.subtract(_HALF * x, lnbeta, out=f1[:n])
    np.log(f, out=f)
    f -= off
    f *= scale
    np.maximum(f, glo, out=f)
    np.minimum(f, ghi, out=f)                               # fi, fj
    ij = np.floor(f)
    np.maximum(ij, _ZERO, out=ij)
    np.minimum(ij, gihi, out=ij)                            # i, j
    w0, w1 = np.subtract(f, ij, out=f)                      # wi, wj
    k = ij[0] * _NU_A
    k += ij[1]
    k = k.astype(np.intp)
    q = _table().corners.take(k, axis=1)                    # t00, t10, t01-t00, t11-t10
    q2, q3 = q[2:]
    q2 *= w1
    q3 *= w1
    ac = q[:2]
    ac += q[2:]                                             # a, c
    a, c = ac
    c -= a
    c *= w0
    c += a                                                  # a + wi (c - a)
    return np.exp(c[:n], out=out)


def _guess1(x: float, lnbeta: float) -> float:
    """Scalar version of ``_guess``."""
    rows = _table().rows
    fi = (math.log(max(-x, 1e-300)) - _LX0) * (1.0 / _HX)
    fi = 0.0 if fi < 0.0 else (_NX + 1.0 if fi > _NX + 1.0 else fi)
    i = int(fi)
    if i > _NX - 2:
        i = _NX - 2
    wi = fi - i
    fj = (math.log(0.5 * x - lnbeta) - _U0) * (1.0 / _HU)
    j = math.floor(fj) if fj > 0.0 else 0
    if j > _NU - 2:
        j = _NU - 2
    fj = -8.0 if fj < -8.0 else (_NU + 399.0 if fj > _NU + 399.0 else fj)
    wj = fj - j
    r0, r1 = rows[i], rows[i + 1]
    a = r0[j] + wj * (r0[j + 1] - r0[j])
    c = r1[j] + wj * (r1[j + 1] - r1[j])
    return math.exp(a + wi * (c - a))


# --------------------------------------------------------------------------------------
# Householder iteration on the normalized OTM price


def _solve_normalized(x: FloatArray, beta: FloatArray, ex: FloatArray | None = None,
                      want_ok: bool = True) -> tuple[FloatArray, NDArray[np.bool_] | None]:
    """Total vol s with b(x, s) = beta for x <= 0, 0 < beta < e^{x/2}; returns (s, ok), s NaN
    where not ok (ok may be None unless ``want_ok``).

    ``ex`` is e^{x/2} if the caller has it. Written for few numpy calls (their fixed cost
    dominates batches of hundreds): loop invariants hoisted, in-place updates, the branches of
    the step computed only where some option takes them, the full convergence test only when
    the step test alone does not settle every option, and no compaction when every remaining
    option converges at once (the usual second step). Per element the operations of
    ``_solve_mirror1``. Callers ignore floating-point errors (``np.errstate``)."""
    n = x.shape[0]
    cnz = np.count_nonzero
    if ex is None:
        ex = np.exp(_HALF * x)
    lnbeta = np.log(beta)
    ss = np.empty((2, n))  # the iterate s and s^2
    _guess(x, lnbeta, out=ss[0])
    lo = np.zeros(n)
    hi = None  # inf until the first bracket update
    idx = None  # positions of the remaining options once some have converged
    x2 = np.empty((2, n))  # x^2, 3 x^2
    np.multiply(x, x, out=x2[0])
    np.multiply(_THREE, x2[0], out=x2[1])
    m2x = _M2 * x
    kw = _KWork(n)
    for _ in range(_MAX_ITER):
        s, s2 = ss
        m = s.shape[0]
        b, vega, big = _bv(x, ex, s, kw)
        below = b < beta
        if hi is None:  # lo = 0, hi = inf and the guess s >= 0 (not NaN): max(lo, s) = s,
            lo = _merge(below, s, lo)  # min(hi, s) = s
            hi = np.where(below, _INF, s)
        else:
            lo = _merge(below, np.maximum(lo, s), lo)
            hi = _merge(below, hi, np.minimum(hi, s))
        np.multiply(s, s, out=s2)
        h23 = ss * s2
        np.divide(x2, h23, out=h23)  # x^2 / (s^2 s), 3 x^2 / (s^2 s^2)
        # z: hal, hh3 and nu of the linear (column 0) and the log (column 1) branch
        z = np.empty((3, 2, m))
        h2, h3 = z[0, 0], z[1, 0]
        np.multiply(s, _QUARTER, out=h2)
        np.subtract(h23[0], h2, out=h2)
        np.multiply(h2, h2, out=h3)
        h3 -= h23[1]
        h3 -= _QUARTER
        use_log = s2 < m2x  # below the inflection point s_c = sqrt(2|x|)
        nlog = cnz(use_log)
        if nlog != m:
            nu = np.subtract(beta, b, out=z[2, 0])
            nu /= vega
        if nlog:
            w = vega / b
            lnu = np.log(b, out=z[2, 1])
            np.subtract(lnbeta, lnu, out=lnu)
            lnu /= w
            np.subtract(h2, w, out=z[0, 1])
            hh3 = _THREE * w
            hh3 *= h2
            hh3 = np.subtract(h3, hh3, out=z[1, 1])
            w2 = _TWO * w
            w2 *= w
            hh3 += w2
        # step = nu (1 + hal nu / 2) / (1 + nu (hal + hh3 nu / 6)), of both branches when some
        # options take each (rows of one array), then one masked copy
        mixed = 0 < nlog < m
        hal, hh3, nu = z if mixed else z[:, 0 if nlog == 0 else 1]
        nd = np.empty((2,) + hal.shape)
        nd0, nd1 = nd
        np.multiply(_HALF, hal, out=nd0)
        nd0 *= nu
        np.multiply(hh3, nu, out=nd1)
        nd1 /= _SIX
        nd1 += hal
        nd1 *= nu
        nd += _ONE
        step = nd0 * nu
        step /= nd1
        if mixed:
            np.copyto(step[0], step[1], where=use_log)
            step = step[0]
        ssn = np.empty((2, m))
        new = np.add(s, step, out=ssn[0])
        inside = new >= lo
        inside &= new <= hi  # False for NaN
        all_in = cnz(inside) == m
        if not all_in:
            bis = np.where(np.isfinite(hi), np.where(lo > 0.0, np.sqrt(lo * hi), 0.5 * hi),
                           2.0 * s)
            np.copyto(new, bis, where=~inside)
        # done: tiny last step, or the residual is at b's rounding floor (then the
        # price cannot pin s any better), or the bracket has collapsed
        conv = np.abs(step) <= np.multiply(s, _STEP_TOL_A)
        nc = cnz(conv) if all_in else -1
        if nc != m:
            conv |= np.abs(b - beta) <= _FLOOR_A * big
            if not all_in:
                conv &= inside
            conv |= hi - lo <= np.multiply(s, _COLLAPSE_A)
            nc = cnz(conv)
        if nc == m:
            if idx is None:
                return new, np.ones(n, dtype=bool) if want_ok else None
            out[idx] = new
            ok[idx] = True
            break
        if nc:
            if idx is None:
                out = np.full(n, np.nan)
                ok = np.zeros(n, dtype=bool)
                idx = np.arange(n)
            out[idx[conv]] = new[conv]
            ok[idx[conv]] = True
            keep = ~conv
            idx = idx[keep]
            x, ex, beta, lnbeta = x[keep], ex[keep], beta[keep], lnbeta[keep]
            x2, m2x = x2.compress(keep, axis=1), m2x[keep]
            lo, hi, ss = lo[keep], hi[keep], ssn.compress(keep, axis=1)
            kw = _KWork(ss.shape[1])
        else:
            ss = ssn
    if idx is None:  # nothing converged in _MAX_ITER steps
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    return out, ok


def _solve1(x: float, beta: float) -> float:
    """Scalar ``_solve_normalized``; NaN if not converged."""
    ex = math.exp(0.5 * x)
    lnbeta = math.log(beta)
    s = _guess1(x, lnbeta)
    lo, hi = 0.0, math.inf
    x2 = x * x
    for _ in range(_MAX_ITER):
        h = x / s
        t = 0.5 * s
        big = ex * 0.5 * math.erfc(-(h + t) * _INV_SQRT2)
        b = big - 0.5 * math.erfc(-(h - t) * _INV_SQRT2) / ex
        vega = _INV_SQRT_2PI * math.exp(-0.5 * (h * h + t * t))
        if b < beta:
            if s > lo:
                lo = s
        elif s < hi:
            hi = s
        s2 = s * s
        h2 = x2 / (s2 * s) - 0.25 * s
        h3 = h2 * h2 - 3.0 * x2 / (s2 * s2) - 0.25
        step = math.nan
        if s2 < -2.0 * x:
            if b > 0.0:
                w = vega / b
                nu = (lnbeta - math.log(b)) / w
                hal = h2 - w
                hh3 = h3 - 3.0 * w * h2 + 2.0 * w * w
                step = nu * (1.0 + 0.5 * hal * nu) / (1.0 + nu * (hal + hh3 * nu / 6.0))
        elif vega > 0.0:
            nu = (beta - b) / vega
            step = nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0))
        new = s + step
        if not (lo <= new <= hi):
            if hi < math.inf:
                new = math.sqrt(lo * hi) if lo > 0.0 else 0.5 * hi
            else:
                new = 2.0 * s
            if hi - lo <= 4e-16 * s:
                return new
        elif abs(step) <= _STEP_TOL * s or abs(b - beta) <= _FLOOR * big:
            return new
        s = new
    return math.nan


def _guess_mirror1(x: float, lnbeta: float) -> float:
    """Scalar mirror of ``_guess`` (same operations in the same order)."""
    rows = _table().rows
    fi = (math.log(max(-x, 1e-300)) - _LX0) * (1.0 / _HX)
    fi = 0.0 if fi < 0.0 else (_NX - 1.0 + 2.0 if fi > _NX - 1.0 + 2.0 else fi)
    i = min(int(fi), _NX - 2)
    wi = fi - i
    fj = (math.log(0.5 * x - lnbeta) - _U0) * (1.0 / _HU)
    fj = -8.0 if fj < -8.0 else (_NU - 1.0 + 400.0 if fj > _NU - 1.0 + 400.0 else fj)
    j = min(max(math.floor(fj), 0), _NU - 2)
    wj = fj - j
    r0, r1 = rows[i], rows[i + 1]
    a = r0[j] + wj * (r0[j + 1] - r0[j])
    c = r1[j] + wj * (r1[j + 1] - r1[j])
    return math.exp(a + wi * (c - a))


def _solve_mirror1(x: float, beta: float) -> float:
    """Scalar mirror of one element of ``_solve_normalized`` (NaN if not converged).

    Raises (ZeroDivisionError, ValueError, OverflowError) where the vector code would go
    through inf/NaN: the caller then solves that element with the vector code."""
    exp, log = math.exp, math.log
    ex = exp(0.5 * x)
    lnbeta = log(beta)
    s = _guess_mirror1(x, lnbeta)
    lo, hi = 0.0, math.inf
    x2 = x * x
    x2_3 = 3.0 * x2
    m2x = -2.0 * x
    c = -_INV_SQRT2  # norm_cdf1(z) = 0.5 erfc1(-z / sqrt 2), written out
    for _ in range(_MAX_ITER):
        if s != s:
            raise ValueError("NaN iterate")
        h = x / s
        t = 0.5 * s
        big = ex * (0.5 * erfc1(c * (h + t)))
        b = big - 0.5 * erfc1(c * (h - t)) / ex
        vega = _INV_SQRT_2PI * exp(-0.5 * (h * h + t * t))
        if b < beta:
            if s > lo:  # lo = max(lo, s)
                lo = s
        elif s < hi:  # hi = min(hi, s)
            hi = s
        s2 = s * s
        h2 = x2 / (s2 * s) - 0.25 * s
        h3 = h2 * h2 - x2_3 / (s2 * s2) - 0.25
        if s2 < m2x:
            w = vega / b
            nu = (lnbeta - log(b)) / w
            hal = h2 - w
            hh3 = h3 - 3.0 * w * h2 + 2.0 * w * w
        else:
            nu = (beta - b) / vega
            hal = h2
            hh3 = h3
        step = nu * (1.0 + 0.5 * hal * nu) / (1.0 + nu * (hal + hh3 * nu / 6.0))
        new = s + step
        bad = not (new >= lo and new <= hi)
        if bad:
            if hi < math.inf:  # isfinite: hi is never NaN
                new = math.sqrt(lo * hi) if lo > 0.0 else 0.5 * hi
            else:
                new = 2.0 * s
        if ((not bad and (abs(step) <= _STEP_TOL * s or abs(b - beta) <= _FLOOR * big))
                or hi - lo <= 4e-16 * s):
            return new
        s = new
    return math.nan


def _iv_mirror1(P: float, S: float, K: float, T: float, r: float, q: float,
                is_call: bool) -> float:
    """Scalar mirror of one element of ``implied_vol_batch``'s IV (NaN for every reason code)."""
    if not (math.isfinite(P) and math.isfinite(S) and math.isfinite(K) and math.isfinite(T)
            and math.isfinite(r) and math.isfinite(q)):
        return math.nan
    if S <= 0.0 or K <= 0.0 or T <= 0.0 or P == 0.0:
        return math.nan
    x = math.log(S / K) + (r - q) * T
    sqrt_fk = math.sqrt(S * K) * math.exp((r - q) * (0.5 * T))
    beta = P * math.exp(r * T) / sqrt_fk
    theta_x = x if is_call else -x
    intrinsic = 2.0 * math.sinh(0.5 * abs(x)) if theta_x > 0.0 else 0.0
    beta_otm = beta - intrinsic
    xn = -abs(x)
    if not (beta_otm > _TV_FLOOR * beta) or not (beta_otm < math.exp(0.5 * xn)):
        return math.nan
    return _solve_mirror1(xn, beta_otm) / math.sqrt(T)


def _ivs_vector(P: FloatArray, S: FloatArray, K: FloatArray, T: FloatArray, r: float, q: float,
                is_call: NDArray[np.bool_]) -> FloatArray:
    """``implied_vol_batch``'s IVs (same operations) without broadcasting or reason codes."""
    n = P.shape[0]
    if not (math.isfinite(r) and math.isfinite(q)):
        return np.full(n, np.nan)
    with np.errstate(all="ignore"):
        # rows: r T, (r - q) T/2, x_n/2 = -|x|/2 (then their exps), x_n, beta_otm: the
        # solver's inputs e^{x_n/2}, x_n, beta_otm in consecutive rows (one gather)
        buf = np.empty((5, n))
        np.multiply(T, r, out=buf[0])
        np.multiply(_HALF, T, out=buf[1])
        buf[1] *= r - q
        x = np.log(S / K)
        x += (r - q) * T
        ax = np.abs(x)
        np.multiply(ax, _MHALF, out=buf[2])
        np.exp(buf[:3], out=buf[:3])
        beta = P * buf[0]
        beta /= np.sqrt(S * K) * buf[1]
        # in the money: lose the intrinsic 2 sinh(|x|/2) (0 at x = 0, so x = 0 may count as
        # either; a NaN x fails the S, K, T test below)
        intr = _HALF * ax
        np.sinh(intr, out=intr)
        intr *= _TWO
        intr = _merge((x > _ZERO) != is_call, _ZERO, intr)
        ex, xn, beta_otm = buf[2:]  # e^{x_n/2} is the maximum
        np.subtract(beta, intr, out=beta_otm)
        np.negative(ax, out=xn)
        # no test on P, and none of S, K, T being finite: a zero, NaN or infinite premium makes
        # beta 0, NaN or infinite, and so does an infinite S, K or T with the others > 0 (as in
        # implied_vol_batch, whose own tests come first); such a beta fails the first beta test
        # (beta_otm <= beta)
        good = np.minimum(np.minimum(S, K), T) > _ZERO
        good &= beta_otm > _TV_FLOOR_A * beta
        good &= beta_otm < ex
        ng = np.count_nonzero(good)
        if ng == n:
            return _solve_normalized(xn, beta_otm, ex, want_ok=False)[0] / np.sqrt(T)
        iv = np.empty(n)
        iv.fill(np.nan)
        if ng:
            good = good.nonzero()[0]
            ex, xn, beta_otm = buf[2:].take(good, axis=1)
            iv[good] = _solve_normalized(xn, beta_otm, ex, want_ok=False)[0] / np.sqrt(T[good])
    return iv


SCALAR_BELOW = 28
"""Batches of at most this many options go through the scalar mirrors (``implied_vols``).
Measured on chain-like batches (leading rows of the recorded 5k/s calls, interleaved, load ~3):
the mirrors cost ~9-10 us per option, the vector path ~255-290 us flat up to ~50 options: 263
vs 270 us at 28 options, 287 vs 267 at 32."""


def implied_vols(P: FloatArray, S: FloatArray, K: FloatArray, T: FloatArray, r: float,
                 q: float, is_call: NDArray[np.bool_]) -> FloatArray:
    """``implied_vol_batch(...)[0]`` for 1-D arrays and scalar r, q, bit for bit, faster on
    small batches: up to ``SCALAR_BELOW`` options are solved one by one with the scalar mirrors
    of the vector code (when ``bs.SCALAR_MIRRORS_EXACT``), so an option's IV does not depend on
    the size of the batch that carried it.

    >>> from streamer.core.bs import price
    >>> K = np.array([90.0, 100.0, 120.0]); c = np.array([False, True, True])
    >>> p = price(100.0, K, 0.25, 0.03, 0.01, 0.2, c)
    >>> S, T = np.full(3, 100.0), np.full(3, 0.25)
    >>> implied_vols(p, S, K, T, 0.03, 0.01, c).tolist() == implied_vol_batch(
    ...     p, S, K, T, 0.03, 0.01, c)[0].tolist()
    True
    """
    n = P.shape[0]
    if n > SCALAR_BELOW or not SCALAR_MIRRORS_EXACT:
        return _ivs_vector(P, S, K, T, r, q, is_call)
    out = np.empty(n)
    redo = []
    for j, (p, s, k, t, c) in enumerate(zip(P.tolist(), S.tolist(), K.tolist(), T.tolist(),
                                          is_call.tolist())):
        try:
            out[j] = _iv_mirror1(p, s, k, t, r, q, c)
        except (ArithmeticError, ValueError):
            redo.append(j)
    if redo:
        i = np.array(redo)
        out[i] = implied_vol_batch(P[i], S[i], K[i], T[i], r, q, is_call[i])[0]
    return out


# --------------------------------------------------------------------------------------
# public API


def implied_vol_batch(prices: ArrayLike, S: ArrayLike, K: ArrayLike, T: ArrayLike,
                      r: ArrayLike, q: ArrayLike,
                      is_call: ArrayLike) -> tuple[FloatArray, NDArray[np.int8]]:
    """BSM implied vols (annual decimal) and ``IVReason`` codes, numpy-broadcast.

    prices option premiums (currency of S), S spot, K strike, T years, r and q continuous
    annual decimals, is_call bool or bool array. Bad quotes give NaN and a reason code.

    >>> from streamer.core.bs import price
    >>> p = price(42.0, [40.0, 40.0], 0.5, 0.1, 0.0, 0.2, [True, False])
    >>> iv, why = implied_vol_batch(p, 42.0, 40.0, 0.5, 0.1, 0.0, [True, False])
    >>> iv.round(12).tolist(), why.tolist()
    ([0.2, 0.2], [0, 0])
    >>> iv, why = implied_vol_batch([0.0, 1.0, 50.0], 42.0, 40.0, 0.5, 0.1, 0.0, True)
    >>> [IVReason(w).name for w in why]
    ['ZERO_PRICE', 'BELOW_INTRINSIC', 'ABOVE_MAX']
    """
    arrs = np.broadcast_arrays(
        np.asarray(prices, dtype=np.float64), np.asarray(S, dtype=np.float64),
        np.asarray(K, dtype=np.float64), np.asarray(T, dtype=np.float64),
        np.asarray(r, dtype=np.float64), np.asarray(q, dtype=np.float64),
        np.asarray(is_call, dtype=bool))
    shape = arrs[0].shape
    P, S_, K_, T_, r_, q_, c_ = (a.reshape(-1) for a in arrs)
    n = P.shape[0]
    iv = np.full(n, np.nan)
    reason = np.zeros(n, dtype=np.int8)
    with np.errstate(all="ignore"):
        x = np.log(S_ / K_) + (r_ - q_) * T_
        # normalized price: P / (D sqrt(F K)) = P e^{rT} / sqrt(F K)
        sqrt_fk = np.sqrt(S_ * K_) * np.exp((r_ - q_) * (0.5 * T_))
        beta = P * np.exp(r_ * T_) / sqrt_fk
        theta_x = np.where(c_, x, -x)
        intrinsic = np.where(theta_x > 0.0, 2.0 * np.sinh(0.5 * np.abs(x)), 0.0)
        beta_otm = beta - intrinsic
        xn = -np.abs(x)
        bmax = np.exp(0.5 * xn)
    finite = (np.isfinite(P) & np.isfinite(S_) & np.isfinite(K_) & np.isfinite(T_)
              & np.isfinite(r_) & np.isfinite(q_))
    # precedence: the first matching reason wins
    reason[~finite] = IVReason.NONFINITE
    m = reason == 0
    reason[m & ((S_ <= 0.0) | (K_ <= 0.0))] = IVReason.BAD_INPUT
    m = reason == 0
    reason[m & (T_ <= 0.0)] = IVReason.EXPIRED
    m = reason == 0
    reason[m & (P == 0.0)] = IVReason.ZERO_PRICE
    m = reason == 0
    # time value within rounding of the premium counts as none
    reason[m & ~(beta_otm > _TV_FLOOR * beta)] = IVReason.BELOW_INTRINSIC
    m = reason == 0
    reason[m & ~(beta_otm < bmax)] = IVReason.ABOVE_MAX
    good = np.flatnonzero(reason == 0)
    if good.size:
        with np.errstate(all="ignore"):
            s, ok = _solve_normalized(xn[good], beta_otm[good], bmax[good])
        iv[good] = s / np.sqrt(T_[good])
        reason[good[~ok]] = IVReason.NO_CONVERGENCE
    return iv.reshape(shape), reason.reshape(shape)


def implied_vol(price: float, S: float, K: float, T: float, r: float, q: float,
                is_call: bool) -> tuple[float, IVReason]:
    """Scalar BSM implied vol (annual decimal) and ``IVReason``; ``math`` only, no numpy.

    Hull Example 21.x-style check: a call with S=K=100, T=0.5, r=1%, sigma=20%:

    >>> from streamer.core.bs import price1
    >>> p = price1(100.0, 100.0, 0.5, 0.01, 0.0, 0.2, True)
    >>> iv, why = implied_vol(p, 100.0, 100.0, 0.5, 0.01, 0.0, True)
    >>> round(iv, 12), why.name
    (0.2, 'OK')
    >>> implied_vol(0.0, 100.0, 100.0, 0.5, 0.01, 0.0, True)[1].name
    'ZERO_PRICE'
    """
    nan = math.nan
    if not math.isfinite(price + S + K + T + r + q):  # NaN/inf (or overflow) anywhere
        return nan, IVReason.NONFINITE
    if S <= 0.0 or K <= 0.0:
        return nan, IVReason.BAD_INPUT
    if T <= 0.0:
        return nan, IVReason.EXPIRED
    if price == 0.0:
        return nan, IVReason.ZERO_PRICE
    x = math.log(S / K) + (r - q) * T
    sqrt_fk = math.sqrt(S * K) * math.exp((r - q) * 0.5 * T)
    beta = price * math.exp(r * T) / sqrt_fk
    if (x > 0.0) == bool(is_call) and x != 0.0:
        beta -= 2.0 * math.sinh(0.5 * abs(x))
        if not beta > _TV_FLOOR * (beta + 2.0 * math.sinh(0.5 * abs(x))):
            return nan, IVReason.BELOW_INTRINSIC
    if not beta > 0.0:
        return nan, IVReason.BELOW_INTRINSIC
    xn = -abs(x)
    if not beta < math.exp(0.5 * xn):
        return nan, IVReason.ABOVE_MAX
    s = _solve1(xn, beta)
    if s != s:
        return nan, IVReason.NO_CONVERGENCE
    return s / math.sqrt(T), IVReason.OK


@dataclass(slots=True)
class QuoteIVs:
    """Bid, ask and mid implied vols (annual decimal, NaN if unavailable) with reason codes."""

    bid_iv: FloatArray
    ask_iv: FloatArray
    mid_iv: FloatArray
    bid_reason: NDArray[np.int8]
    ask_reason: NDArray[np.int8]
    mid_reason: NDArray[np.int8]


def quote_ivs(bid: ArrayLike, ask: ArrayLike, S: ArrayLike, K: ArrayLike, T: ArrayLike,
              r: ArrayLike, q: ArrayLike, is_call: ArrayLike) -> QuoteIVs:
    """Implied vols of bid, ask and mid = (bid + ask)/2 in one batch, with reasons.

    A bid <= 0 gives bid IV NaN with ZERO_BID (mid is still solved from ask/2); a crossed
    quote (bid > ask) gives NaN and CROSSED for all three.

    >>> from streamer.core.bs import price
    >>> bid, ask = price(100.0, 100.0, 0.25, 0.02, 0.0, [0.19, 0.21], True)
    >>> out = quote_ivs([bid, 0.0], [ask, ask], 100.0, 100.0, 0.25, 0.02, 0.0, True)
    >>> out.bid_iv.round(10).tolist(), out.ask_iv.round(10).tolist()
    ([0.19, nan], [0.21, 0.21])
    >>> [IVReason(w).name for w in out.bid_reason]
    ['OK', 'ZERO_BID']
    >>> out = quote_ivs(2.1, 2.0, 100.0, 100.0, 0.25, 0.02, 0.0, True)
    >>> IVReason(int(out.mid_reason)).name
    'CROSSED'
    """
    arrs = np.broadcast_arrays(
        np.asarray(bid, dtype=np.float64), np.asarray(ask, dtype=np.float64),
        np.asarray(S, dtype=np.float64), np.asarray(K, dtype=np.float64),
        np.asarray(T, dtype=np.float64), np.asarray(r, dtype=np.float64),
        np.asarray(q, dtype=np.float64), np.asarray(is_call, dtype=bool))
    shape = arrs[0].shape
    bd, ak, S_, K_, T_, r_, q_, c_ = (a.reshape(-1) for a in arrs)
    mid = 0.5 * (np.maximum(bd, 0.0) + ak)
    iv, why = implied_vol_batch(np.concatenate([bd, ak, mid]), np.tile(S_, 3),
                                np.tile(K_, 3), np.tile(T_, 3), np.tile(r_, 3),
                                np.tile(q_, 3), np.tile(c_, 3))
    n = bd.shape[0]
    ivs = [iv[:n].copy(), iv[n:2 * n].copy(), iv[2 * n:].copy()]
    whys = [why[:n].copy(), why[n:2 * n].copy(), why[2 * n:].copy()]
    zb = (bd <= 0.0) & (whys[0] != IVReason.NONFINITE)
    ivs[0][zb] = np.nan
    whys[0][zb] = IVReason.ZERO_BID
    crossed = bd > ak
    for a, w in zip(ivs, whys):
        a[crossed] = np.nan
        w[crossed] = IVReason.CROSSED
    return QuoteIVs(bid_iv=ivs[0].reshape(shape), ask_iv=ivs[1].reshape(shape),
                    mid_iv=ivs[2].reshape(shape), bid_reason=whys[0].reshape(shape),
                    ask_reason=whys[1].reshape(shape), mid_reason=whys[2].reshape(shape))
