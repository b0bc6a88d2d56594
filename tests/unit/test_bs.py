"""Black-Scholes-Merton prices and greeks: vs math.erfc, vollib, finite differences, parity."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from vollib.black_scholes_merton import black_scholes_merton as vl_price
from vollib.black_scholes_merton.greeks import analytical as vl

from streamer.core import bs

GREEKS = ("delta", "gamma", "vega", "theta", "vanna", "charm", "vomma")


def _sample(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    S = rng.uniform(20.0, 500.0, n)
    K = S * np.exp(rng.uniform(-0.6, 0.6, n))
    T = np.exp(rng.uniform(math.log(2 / 365), math.log(3.0), n))
    r = rng.uniform(-0.01, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    v = rng.uniform(0.05, 1.5, n)
    c = rng.random(n) < 0.5
    return S, K, T, r, q, v, c


# --- normal distribution ------------------------------------------------------------


def test_erfc_matches_math_erfc_to_a_few_ulp() -> None:
    x = np.concatenate([np.linspace(-8.0, 27.2, 200_001), [0.0, 0.46875, -0.46875, 4.0, -4.0]])
    got = bs.erfc(x)
    ref = np.array([math.erfc(v) for v in x])
    m = ref > 1e-300  # below: subnormal results, no relative precision to compare
    rel = np.abs(got[m] - ref[m]) / ref[m]
    assert rel.max() < 2e-15


def test_erfc_edges() -> None:
    got = bs.erfc(np.array([np.nan, np.inf, -np.inf, 40.0, -40.0]))
    assert np.isnan(got[0])
    assert got[1:].tolist() == [0.0, 2.0, 0.0, 2.0]


def test_norm_cdf_pdf_vs_math() -> None:
    x = np.linspace(-37.0, 9.0, 100_001)
    cdf = bs.norm_cdf(x)
    ref = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    # the rounding of x/sqrt(2) (condition number ~x^2) limits both sides in the left tail
    assert np.all(np.abs(cdf - ref) <= ref * 4e-16 * (4.0 + x * x))
    pdf = bs.norm_pdf(x)
    # exp(-x^2/2) has relative condition number x^2/2: compare at that level
    refp = np.array([math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi) for v in x])
    assert np.all(np.abs(pdf - refp) <= refp * 4e-16 * (1.0 + x * x))


# --- prices ---------------------------------------------------------------------------


def test_price_vs_vollib() -> None:
    S, K, T, r, q, v, c = _sample(3000, 1)
    got = bs.price(S, K, T, r, q, v, c)
    ref = np.array([vl_price("c" if ci else "p", *a) for ci, *a in zip(c, S, K, T, r, v, q)])
    assert np.max(np.abs(got - ref) / S) < 1e-13


def test_put_call_parity() -> None:
    S, K, T, r, q, v, _ = _sample(5000, 2)
    call = bs.price(S, K, T, r, q, v, True)
    put = bs.price(S, K, T, r, q, v, False)
    fwd = S * np.exp(-q * T) - K * np.exp(-r * T)
    assert np.max(np.abs(call - put - fwd) / S) < 2e-14


def test_scalar_equals_vectorized() -> None:
    S, K, T, r, q, v, c = _sample(500, 3)
    vec = bs.price(S, K, T, r, q, v, c)
    g = bs.greeks(S, K, T, r, q, v, c)
    for i in range(len(S)):
        args = (float(S[i]), float(K[i]), float(T[i]), float(r[i]), float(q[i]), float(v[i]),
                bool(c[i]))
        assert bs.price1(*args) == pytest.approx(vec[i], rel=1e-13, abs=1e-14 * S[i])
        g1 = bs.greeks1(*args)
        for name in GREEKS:
            a, b = getattr(g1, name), getattr(g, name)[i]
            assert a == pytest.approx(b, rel=1e-12, abs=1e-13 * (1.0 + abs(b)))


def test_broadcasting_and_shapes() -> None:
    K = np.array([[90.0], [100.0], [110.0]])
    is_call = np.array([True, False])
    p = bs.price(100.0, K, 0.5, 0.01, 0.0, 0.2, is_call)
    assert p.shape == (3, 2)
    g = bs.greeks(100.0, K, 0.5, 0.01, 0.0, 0.2, is_call)
    assert all(getattr(g, n).shape == (3, 2) for n in GREEKS)
    assert bs.price(100.0, 100.0, 0.5, 0.01, 0.0, 0.2, True).shape == ()


# --- greeks -------------------------------------------------------------------------


def test_greeks_vs_vollib_analytical() -> None:
    S, K, T, r, q, v, c = _sample(1000, 4)
    g = bs.greeks(S, K, T, r, q, v, c)
    # vollib units: vega per 1% vol, theta per calendar day
    for name, fn, scale in (("delta", vl.delta, 1.0), ("gamma", vl.gamma, 1.0),
                            ("vega", vl.vega, 100.0), ("theta", vl.theta, 365.0)):
        ref = np.array([fn("c" if ci else "p", *a) for ci, *a in zip(c, S, K, T, r, v, q)])
        got = getattr(g, name)
        assert np.allclose(got, ref * scale, rtol=1e-10, atol=1e-12 * S), name


def _fd_greeks(S, K, T, r, q, v, c) -> dict[str, np.ndarray]:
    """Central finite differences of bs.price for every greek (slow, obviously correct)."""

    def P(S_=S, T_=T, v_=v):
        return bs.price(S_, K, T_, r, q, v_, c)

    hS, hv, hT = 1e-3 * S * v * np.sqrt(T), 1e-3 * v, 1e-4 * T

    def delta(T_=T, v_=v):
        return (P(S + hS, T_, v_) - P(S - hS, T_, v_)) / (2 * hS)

    return {
        "delta": delta(),
        "gamma": (P(S + hS) - 2 * P() + P(S - hS)) / hS**2,
        "vega": (P(v_=v + hv) - P(v_=v - hv)) / (2 * hv),
        "theta": -(P(T_=T + hT) - P(T_=T - hT)) / (2 * hT),
        "vanna": (delta(v_=v + hv) - delta(v_=v - hv)) / (2 * hv),
        "charm": -(delta(T_=T + hT) - delta(T_=T - hT)) / (2 * hT),
        "vomma": (P(v_=v + hv) - 2 * P() + P(v_=v - hv)) / hv**2,
    }


def test_greeks_vs_central_finite_differences() -> None:
    S, K, T, r, q, v, c = _sample(2000, 5)
    # keep T >= 2 weeks so O(h^2) truncation in T stays below the tolerance
    T = np.maximum(T, 14 / 365)
    g = bs.greeks(S, K, T, r, q, v, c)
    fd = _fd_greeks(S, K, T, r, q, v, c)
    # scale each greek by a natural size so the tolerance is relative to the option
    scale = {"delta": 1.0, "gamma": 1.0 / S, "vega": S * np.sqrt(T), "theta": S / T,
             "vanna": 1.0, "charm": 1.0 / T, "vomma": S * np.sqrt(T)}
    for name in GREEKS:
        err = np.abs(getattr(g, name) - fd[name]) / scale[name]
        assert err.max() < 2e-5, (name, err.max())


def test_charm_sign_convention_is_time_passing() -> None:
    # an OTM call loses delta as time passes (no carry): charm < 0
    g = bs.greeks1(100.0, 110.0, 0.25, 0.0, 0.0, 0.2, True)
    d_now = bs.greeks1(100.0, 110.0, 0.25, 0.0, 0.0, 0.2, True).delta
    d_later = bs.greeks1(100.0, 110.0, 0.25 - 1 / 365, 0.0, 0.0, 0.2, True).delta
    assert g.charm < 0.0
    assert (d_later - d_now) * 365 == pytest.approx(g.charm, rel=1e-2)


def test_vanna_matches_domain_formula() -> None:
    S, K, T, r, q, v, c = _sample(200, 6)
    g = bs.greeks(S, K, T, r, q, v, c)
    d1 = (np.log(S / K) + (r - q + 0.5 * v * v) * T) / (v * np.sqrt(T))
    d2 = d1 - v * np.sqrt(T)
    ref = -np.exp(-q * T) * np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * d2 / v
    assert np.allclose(g.vanna, ref, rtol=1e-12, atol=1e-14)


# --- dead options ---------------------------------------------------------------------


def test_dead_options_intrinsic_no_warnings() -> None:
    S = np.array([110.0, 90.0, 110.0, 90.0, 100.0, 110.0, 90.0])
    T = np.array([0.0, 0.0, -0.1, 0.0, 0.0, 0.5, 0.5])
    v = np.array([0.2, 0.2, 0.2, 0.0, 0.2, 0.0, -0.1])
    c = np.array([True, True, False, False, True, True, False])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = bs.price(S, 100.0, T, 0.05, 0.01, v, c)
        g = bs.greeks(S, 100.0, T, 0.05, 0.01, v, c)
    Tp = np.maximum(T, 0.0)
    F = S * np.exp(0.04 * Tp)
    th = np.where(c, 1.0, -1.0)
    assert np.allclose(p, np.exp(-0.05 * Tp) * np.maximum(th * (F - 100.0), 0.0), rtol=1e-15)
    assert g.delta[:5].tolist() == [1.0, 0.0, 0.0, -1.0, 0.0]
    for name in ("gamma", "vega", "vanna", "charm", "vomma"):
        assert np.all(getattr(g, name) == 0.0)
    assert np.all(np.isfinite(g.theta))
    for i in range(len(S)):
        args = (float(S[i]), 100.0, float(T[i]), 0.05, 0.01, float(v[i]), bool(c[i]))
        assert bs.price1(*args) == pytest.approx(p[i], rel=1e-15)
        assert bs.greeks1(*args).delta == pytest.approx(g.delta[i], rel=1e-15)
        assert bs.greeks1(*args).theta == pytest.approx(g.theta[i], rel=1e-15)


def test_zero_vol_is_the_limit_of_small_vol() -> None:
    # deterministic price and its theta are the sigma -> 0 limits (ITM put, ITM call)
    for S, c in ((90.0, False), (110.0, True)):
        g0 = bs.greeks1(S, 100.0, 0.5, 0.05, 0.01, 0.0, c)
        g1 = bs.greeks1(S, 100.0, 0.5, 0.05, 0.01, 1e-4, c)
        assert g0.theta == pytest.approx(g1.theta, rel=1e-9)
        assert g0.delta == pytest.approx(g1.delta, rel=1e-12)
        assert bs.price1(S, 100.0, 0.5, 0.05, 0.01, 0.0, c) == pytest.approx(
            bs.price1(S, 100.0, 0.5, 0.05, 0.01, 1e-4, c), rel=1e-12)


def test_scalar_mirrors_give_the_vector_bits():
    """erfc1 / norm_pdf1 / live_greeks1 (and the vector live_greeks) repeat the vector functions' operations: same bits
    (the small-batch path of ChainBook relies on it), branch edges and tails included."""
    assert bs.SCALAR_MIRRORS_EXACT, "math.exp/log differ from numpy here: mirrors disabled"
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-30.0, 30.0, 20000), rng.uniform(-1.0, 1.0, 5000),
                        [0.0, -0.0, 0.46875, -0.46875, 4.0, -4.0, 27.3, -27.3, 40.0, -40.0]])
    assert bs.erfc(x).tolist() == [bs.erfc1(v) for v in x.tolist()]
    assert bs.norm_cdf(x).tolist() == [bs.norm_cdf1(v) for v in x.tolist()]
    assert bs.norm_pdf(x).tolist() == [bs.norm_pdf1(v) for v in x.tolist()]
    n = 5000
    K = 100.0 * np.exp(rng.normal(0.0, 0.3, n))
    T = 10 ** rng.uniform(-4.0, 1.0, n)
    v = rng.uniform(0.02, 2.0, n)
    call = rng.random(n) < 0.5
    g = bs.greeks(100.0, K, T, 0.04, 0.01, v, call)
    vec = list(zip(g.gamma.tolist(), g.delta.tolist(), g.vanna.tolist(), g.charm.tolist()))
    sca = [bs.live_greeks1(100.0, k_, t_, 0.04, 0.01, v_, 1.0 if c_ else -1.0)
           for k_, t_, v_, c_ in zip(K.tolist(), T.tolist(), v.tolist(), call.tolist())]
    assert vec == sca
    lean = bs.live_greeks(100.0, K, T, 0.04, 0.01, v, call)   # the vector branch's lean form
    assert list(zip(*(a.tolist() for a in lean))) == vec


def test_live_greeks_fused_kernel_gives_the_greeks_bits_at_every_size():
    """Below ``bs._STACKED_BELOW`` rows live_greeks writes norm_cdf/norm_pdf out (one exp for
    erfc's and the density's factors, Horner rows padded to ``bs._HCAP``): bit for bit
    ``greeks``'s four, at sizes on both sides of the padding, with and without erfc's large
    branch (|d1| > 4 sqrt 2), NaN positions included."""
    rng = np.random.default_rng(17)
    n = 3000                                    # wild rows, then a chain's (no large branch)
    K = 100.0 * np.exp(np.concatenate([rng.normal(0.0, 0.4, n // 2),
                                       rng.normal(0.0, 0.05, n // 2)]))
    T = np.concatenate([10 ** rng.uniform(-5.0, 1.0, n // 2), rng.uniform(0.05, 1.0, n // 2)])
    v = np.concatenate([10 ** rng.uniform(-2.5, 0.5, n // 2), rng.uniform(0.1, 0.5, n // 2)])
    call = rng.random(n) < 0.5
    K[:n // 2:97], v[5:n // 2:89] = np.nan, np.inf
    with np.errstate(all="ignore"):
        g = bs.greeks(100.0, K, T, 0.04, 0.01, v, call)
        d1 = (np.log(100.0 / K) + 0.03 * T) / (v * np.sqrt(T)) + 0.5 * v * np.sqrt(T)
    ref = np.stack([g.gamma, g.delta, g.vanna, g.charm])
    large = np.abs(d1) > 4.0 * math.sqrt(2.0)
    seen = set()
    for size in (1, 7, 63, 64, 65, 200, bs._STACKED_BELOW - 1):
        for i in range(0, n, size):
            j = slice(i, i + size)
            seen.add((size, bool(large[j].any())))
            with np.errstate(all="ignore"):
                got = np.stack(bs.live_greeks(100.0, K[j], T[j], 0.04, 0.01, v[j], call[j]))
            want = ref[:, j]
            nan = np.isnan(want)   # a NaN's sign may depend on numpy's loop for the length
            assert np.array_equal(np.isnan(got), nan), (size, i)
            assert got[~nan].tobytes() == want[~nan].tobytes(), (size, i)
    assert {(63, True), (63, False), (200, True), (200, False)} <= seen


def test_erfc_small_arrays_give_the_large_array_bits():
    """Below ``bs._STACKED_BELOW`` elements erfc runs every branch on every element (stacked
    Horner steps), above it each branch on its own elements: the same bits either way, with and
    without large-branch elements, and equal to the scalar mirror."""
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(-30.0, 30.0, 20000), rng.uniform(-4.0, 4.0, 20000),
                        rng.uniform(-0.6, 0.6, 5000), np.ldexp(rng.uniform(-1, 1, 1000), -40),
                        [0.0, -0.0, 0.46875, -0.46875, 4.0, -4.0, 27.3, -27.3, 40.0, -40.0, 1e300,
                         -1e300, np.inf, -np.inf, 5e-324, np.nan]])
    ref = bs.erfc(x)
    assert x.shape[0] >= bs._STACKED_BELOW
    assert ref.tolist()[:-1] == [bs.erfc1(v) for v in x.tolist()[:-1]] and np.isnan(ref[-1])
    for size in (1, 2, 5, 64, 400, bs._STACKED_BELOW - 1):
        for part in (x, x[20000:45000]):            # with / without |x| > 4 in most chunks
            part = part[::23] if size < 64 else part
            got = np.concatenate([bs.erfc(part[i:i + size]) for i in range(0, part.shape[0], size)])
            assert got.tobytes() == bs.erfc(part).tobytes(), size
