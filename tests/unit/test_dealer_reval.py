"""core.dealer_reval: full-revaluation dealer flows against a slow per-contract reference (scalar
``bs.greeks1`` in a Python loop, written from the module doc's formulas), against the first-order greeks
for small moves (error shrinking as the square of the move), the term-structure map and the positioning
models against ``chain.default_dealer_sign`` / ``chain.exposures_batch``."""
from __future__ import annotations

import math

import numpy as np
import pytest

from streamer.core import bs
from streamer.core import dealer_reval as dr
from streamer.core.chain import NS_PER_DAY, NS_PER_YEAR, default_dealer_sign, exposures_batch
from streamer.core.dealer_reval import (POSITIONINGS, dealer_signs, iv_shift_by_days, key_positioning,
                                        reval_flows)

NOW = 1_704_488_400 * 10**9 + 15 * 60 * 10**9   # 2024-01-05 16:15 New York (21:15 UTC)
R, Q = 0.05, 0.013


def _chain(n: int = 400, seed: int = 7, spot: float = 4700.0) -> dict:
    """Random chain: expiries from 2 hours to 2 years (some settling within a day), a smile, some
    contracts without IV or OI."""
    rng = np.random.default_rng(seed)
    days = rng.choice([0.08, 0.5, 1.0, 2.0, 3.0, 7.0, 14.0, 30.0, 45.0, 90.0, 180.0, 400.0, 730.0], n)
    exp = NOW + (days * NS_PER_DAY).astype(np.int64)
    k = np.round(spot * np.exp(rng.normal(0.0, 0.12, n)) / 5.0) * 5.0
    call = rng.random(n) < 0.5
    iv = 0.14 + 0.25 * np.maximum(0.0, np.log(spot / k)) + rng.uniform(0.0, 0.04, n)
    iv[rng.random(n) < 0.03] = np.nan
    oi = rng.integers(0, 5000, n).astype(float)
    return dict(expiry_ts_ns=exp, strike=k, is_call=call, iv=iv, open_interest=oi, spot=spot)


def _slow(c: dict, sign: np.ndarray, d_iv: np.ndarray, h_days: float, new_spot: float,
          min_ratio: float = 0.2, cash: bool = True, mult: float = 100.0) -> dict[str, dict[int, float]]:
    """Per-contract loop: each flow per expiry, straight from the module doc's definitions."""
    s = c["spot"]
    out: dict[str, dict[int, float]] = {n: {} for n in ("vanna", "charm", "settle", "gamma", "joint")}
    for e, k, call, v, oi, sg, dv in zip(c["expiry_ts_ns"].tolist(), c["strike"].tolist(),
                                         c["is_call"].tolist(), c["iv"].tolist(),
                                         c["open_interest"].tolist(), sign.tolist(), d_iv.tolist()):
        for n in out:
            out[n].setdefault(e, 0.0)
        t = (e - NOW) / NS_PER_YEAR
        if not (t > 0 and v > 0 and math.isfinite(v) and oi > 0 and sg != 0):
            continue
        m = sg * oi * mult
        v1 = max(v + dv, min_ratio * v)
        t1 = t - h_days / 365.0

        def d(s_, v_, t_):
            x = bs.greeks1(s_, k, t_, R, Q, v_, call).delta
            return (0.0 if cash else x) if t_ <= 0 else x

        d0 = d(s, v, t)
        out["vanna"][e] += -s * m * (d(s, v1, t) - d0)
        out["charm" if t1 > 0 else "settle"][e] += -s * m * (d(s, v, t1) - d0)
        out["gamma"][e] += -new_spot * m * (d(new_spot, v, t) - d0)
        out["joint"][e] += -new_spot * m * (d(new_spot, v1, t1) - d0)
    return out


@pytest.mark.parametrize("model", POSITIONINGS)
@pytest.mark.parametrize("cash", [True, False])
def test_fast_path_matches_per_contract_reference(model, cash):
    c = _chain()
    sign = dealer_signs(model, c["expiry_ts_ns"], c["strike"], c["is_call"], c["spot"], NOW)
    days = (c["expiry_ts_ns"] - NOW) / NS_PER_DAY
    move = (-8.85, -4.22, -2.52)
    f = reval_flows(c["expiry_ts_ns"], c["strike"], c["is_call"], c["iv"], c["open_interest"], sign,
                    c["spot"], NOW, R, Q, term_change_pts=move, horizon_days=1.0,
                    new_spot=c["spot"] * 1.0253, cash_settled=cash)
    ref = _slow(c, sign, iv_shift_by_days(days, *move), 1.0, c["spot"] * 1.0253, cash=cash)
    for name in ref:
        want = np.array([ref[name][e] for e in f.expiries.tolist()])
        got = getattr(f, f"{name}_usd")
        scale = np.abs(want).sum() + 1.0
        assert np.abs(got - want).max() <= 1e-9 * scale, name
    assert set(ref["vanna"]) == set(f.expiries.tolist())
    assert f.total("settle_usd") != 0.0 and f.total("charm_usd") != 0.0   # both kinds present


def test_vanna_matches_first_order_greek_and_error_is_second_order():
    c = _chain(seed=3)
    sign = dealer_signs("naive", c["expiry_ts_ns"], c["strike"], c["is_call"], c["spot"], NOW)
    # keep expiries ≥ 7 days: a 2-hour option's vanna is too curved for a clean second-order check
    keep = (c["expiry_ts_ns"] - NOW) >= 7 * NS_PER_DAY
    args = [c[n][keep] for n in ("expiry_ts_ns", "strike", "is_call", "iv", "open_interest")]
    errs = []
    for dv in (4e-3, 2e-3, 1e-3):
        f = reval_flows(*args, sign[keep], c["spot"], NOW, R, Q, d_iv=np.full(keep.sum(), dv))
        full, first = f.total("vanna_usd"), f.total("vanna_first_order_usd")
        gross = np.abs(f.vanna_first_order_usd).sum()
        assert abs(full - first) <= 0.02 * gross
        errs.append(abs(full - first))
    # halving the move quarters the error (second order): ratios near 4
    assert 3.0 < errs[0] / errs[1] < 5.0 and 3.0 < errs[1] / errs[2] < 5.0


def test_charm_matches_first_order_greek_for_short_horizon():
    c = _chain(seed=5)
    sign = dealer_signs("naive", c["expiry_ts_ns"], c["strike"], c["is_call"], c["spot"], NOW)
    keep = (c["expiry_ts_ns"] - NOW) >= 7 * NS_PER_DAY
    args = [c[n][keep] for n in ("expiry_ts_ns", "strike", "is_call", "iv", "open_interest")]
    errs = []
    for h in (0.04, 0.02, 0.01):  # about an hour, half, a quarter
        f = reval_flows(*args, sign[keep], c["spot"], NOW, R, Q, horizon_days=h)
        full, first = f.total("charm_usd"), f.total("charm_first_order_usd")
        assert abs(full - first) <= 1e-2 * np.abs(f.charm_first_order_usd).sum()
        assert f.total("settle_usd") == 0.0
        errs.append(abs(full - first))
    assert 3.0 < errs[0] / errs[1] < 5.0 and 3.0 < errs[1] / errs[2] < 5.0


def test_gamma_flow_uses_the_same_positioning_as_gex():
    """Small spot move: full-revaluation gamma flow ≈ −GEX($/1%) × move(%) with GEX from
    chain.exposures_batch weighted by the very same sign array."""
    c = _chain(seed=11)
    keep = (c["expiry_ts_ns"] - NOW) >= 7 * NS_PER_DAY
    cc = {n: (v[keep] if isinstance(v, np.ndarray) else v) for n, v in c.items()}
    for model in POSITIONINGS:
        sign = dealer_signs(model, cc["expiry_ts_ns"], cc["strike"], cc["is_call"], cc["spot"], NOW)
        gex = exposures_batch(cc["expiry_ts_ns"], cc["strike"], cc["is_call"], cc["iv"],
                              cc["open_interest"], cc["spot"], NOW, R, Q,
                              dealer_sign=sign).total.gex_usd_per_pct
        f = reval_flows(cc["expiry_ts_ns"], cc["strike"], cc["is_call"], cc["iv"], cc["open_interest"],
                        sign, cc["spot"], NOW, R, Q, new_spot=cc["spot"] * 1.0001)
        assert f.total("gamma_usd") == pytest.approx(-gex * 0.01, rel=2e-3), model


def test_joint_is_sum_of_parts_for_small_moves():
    c = _chain(seed=13)
    keep = (c["expiry_ts_ns"] - NOW) >= 7 * NS_PER_DAY
    args = [c[n][keep] for n in ("expiry_ts_ns", "strike", "is_call", "iv", "open_interest")]
    sign = dealer_signs("naive", *args[:3], c["spot"], NOW)
    f = reval_flows(*args, sign, c["spot"], NOW, R, Q, d_iv=np.full(keep.sum(), 1e-4),
                    horizon_days=0.01, new_spot=c["spot"] * 1.0001)
    parts = f.total("vanna_usd") + f.total("charm_usd") + f.total("gamma_usd")
    gross = sum(np.abs(getattr(f, n)).sum() for n in ("vanna_usd", "charm_usd", "gamma_usd"))
    assert abs(f.total("joint_usd") - parts) <= 1e-3 * gross


def test_settlement_cash_unwinds_the_hedge_physical_keeps_exercise_delta():
    # one ITM put (K 110 > S 100) expiring in 2 hours, dealers short 10 contracts
    a = (np.array([NOW + NS_PER_DAY // 12]), np.array([110.0]), np.array([False]), np.array([0.2]),
         np.array([10.0]), np.array([-1.0]), 100.0, NOW, 0.0, 0.0)
    d0 = float(bs.greeks(100.0, 110.0, 1 / 12 / 365, 0.0, 0.0, 0.2, False).delta)
    cash = reval_flows(*a, horizon_days=1.0, cash_settled=True)
    phys = reval_flows(*a, horizon_days=1.0, cash_settled=False)
    m = -1.0 * 10 * 100
    assert cash.total("settle_usd") == pytest.approx(-100.0 * m * (0.0 - d0), rel=1e-12)
    assert phys.total("settle_usd") == pytest.approx(-100.0 * m * (-1.0 - d0), rel=1e-12)
    assert cash.total("charm_usd") == 0.0 and cash.total("charm_first_order_usd") == 0.0


def test_large_iv_fall_is_floored_not_negative():
    a = (np.array([NOW + 30 * NS_PER_DAY]), np.array([5000.0]), np.array([True]), np.array([0.10]),
         np.array([100.0]), np.array([1.0]), 4700.0, NOW, R, Q)
    f = reval_flows(*a, d_iv=np.array([-0.5]), min_iv_ratio=0.2)
    floor = reval_flows(*a, d_iv=np.array([0.02 - 0.10]))   # exactly the floored IV, 2%
    assert np.isfinite(f.total("vanna_usd"))
    assert f.total("vanna_usd") == floor.total("vanna_usd")


def test_iv_shift_nodes_interpolation_and_ends():
    d9, d30, d93 = -8.85, -4.22, -2.52
    x = np.array([0.1, 9.0, 20.0, 30.0, 60.0, 93.0, 200.0, 730.0])
    got = iv_shift_by_days(x, d9, d30, d93)
    want = [d9, d9, d9 + (d30 - d9) * 11 / 21, d30, d30 + (d93 - d30) * 30 / 63, d93,
            d93 * math.sqrt(93 / 200), d93 * math.sqrt(93 / 730)]
    np.testing.assert_allclose(got, np.array(want) / 100, rtol=1e-12)
    flat = iv_shift_by_days(x, d9, d30, d93, long_end="flat")
    np.testing.assert_allclose(flat[-2:], [d93 / 100] * 2, rtol=1e-12)
    only_vix = iv_shift_by_days(x, math.nan, d30, math.nan, long_end="flat")
    np.testing.assert_allclose(only_vix, np.full(x.size, d30 / 100), rtol=1e-12)
    assert np.isnan(iv_shift_by_days(x, math.nan, math.nan, math.nan)).all()
    with pytest.raises(ValueError):
        iv_shift_by_days(x, d9, d30, d93, long_end="linear")


def test_positioning_models():
    ny_1600 = NOW - 15 * 60 * 10**9
    exp = np.array([ny_1600, ny_1600 + NS_PER_DAY, ny_1600 + 3 * NS_PER_DAY, ny_1600 - NS_PER_DAY])
    k = np.array([4600.0, 4800.0, 4700.0, 4600.0])
    before_close = ny_1600 - 3600 * 10**9   # 15:00 New York: the first expiry is 0DTE and live
    for call in (True, False):
        c = np.full(4, call)
        naive = dealer_signs("naive", exp, k, c, 4700.0, before_close)
        assert naive.tolist() == [default_dealer_sign((int(e), float(s), "C" if call else "P"))
                                  for e, s in zip(exp, k)]
        assert [key_positioning("naive")((int(e), float(s), "C" if call else "P")) for e, s in zip(exp, k)] \
            == naive.tolist()
        ex0 = dealer_signs("naive_ex0dte", exp, k, c, 4700.0, before_close)
        assert ex0.tolist() == [0.0] + naive[1:].tolist()   # only the live same-day expiry is dropped
        otm = dealer_signs("otm_only", exp, k, c, 4700.0, before_close)
        want_otm = [(1.0 if s >= 4700.0 else 0.0) if call else (-1.0 if s <= 4700.0 else 0.0) for s in k]
        assert otm.tolist() == want_otm
        assert dealer_signs("customer_long", exp, k, c, 4700.0, before_close).tolist() == [-1.0] * 4
    with pytest.raises(ValueError):
        dealer_signs("squeeze", exp, k, c, 4700.0, NOW)
    with pytest.raises(ValueError):
        key_positioning("otm_only")


def test_book_positioning_gives_every_model_to_a_chain_book():
    """Each model's ChainBook argument signs the book's contracts as ``dealer_signs`` at the eval point:
    the key-only ones through the per-contract callback, the spot/clock ones vectorized (and re-signed by
    a reprice that crosses strikes and the 0DTE's settlement)."""
    from streamer.core.chain import ChainBook, ChainConfig

    d = _chain(120, seed=3)
    for model in POSITIONINGS:
        kw = dr.book_positioning(model)
        assert list(kw) == (["positioning"] if model in dr.KEY_POSITIONINGS else ["positioning_signs"])
        book = ChainBook(4700.0, NOW - 3600 * 10**9, ChainConfig(rate=R, div_yield=Q), **kw)
        book.apply_open_interest(d["expiry_ts_ns"], d["strike"], d["is_call"], d["open_interest"])
        # then 06:39 New York the next day: the 2-hour expiries settled, the next day's are the 0DTE
        for spot, now in ((4700.0, NOW - 3600 * 10**9), (4500.0, NOW + int(0.6 * NS_PER_DAY))):
            book.reprice(spot, now)
            exp, k, call, *_, sign = book.contract_arrays()
            assert sign.tobytes() == dealer_signs(model, exp, k, call, spot, now).tobytes(), model
    with pytest.raises(ValueError):
        dr.book_positioning("squeeze")


def test_smile_roll_removes_the_index_roll_along_a_linear_skew():
    """Linear smile σ(K) = a + b K per expiry: the roll from S to S' is b (S' − S) exactly, and
    ``net_of_smile_roll`` equals passing d_iv = term shift − roll per contract."""
    spot, new = 4700.0, 4700.0 * 1.0253
    exp = np.repeat(NOW + np.array([5, 40, 200]) * NS_PER_DAY, 40)
    k = np.tile(np.linspace(4000.0, 5400.0, 20).repeat(2), 3)
    call = np.tile(np.array([True, False]), 60)
    b = np.repeat(np.array([-4e-4, -2e-4, -1e-4]), 40)
    iv = 0.18 + b * (k - spot)
    oi = np.full(k.size, 1000.0)
    u, roll = dr.smile_roll_by_expiry(exp, k, call, iv, spot, new)
    np.testing.assert_allclose(roll, np.array([-4e-4, -2e-4, -1e-4]) * (new - spot), rtol=1e-9)
    sign = dealer_signs("naive", exp, k, call, spot, NOW)
    move = (-8.85, -4.22, -2.52)
    net = reval_flows(exp, k, call, iv, oi, sign, spot, NOW, R, Q, term_change_pts=move, new_spot=new,
                      net_of_smile_roll=True)
    shift = iv_shift_by_days((exp - NOW) / NS_PER_DAY, *move) - roll[np.searchsorted(u, exp)]
    ref = reval_flows(exp, k, call, iv, oi, sign, spot, NOW, R, Q, d_iv=shift, new_spot=new)
    np.testing.assert_array_equal(net.vanna_usd, ref.vanna_usd)
    np.testing.assert_array_equal(net.joint_usd, ref.joint_usd)
    plain = reval_flows(exp, k, call, iv, oi, sign, spot, NOW, R, Q, term_change_pts=move, new_spot=new)
    # a rally rolls the at-the-money IV down the skew: the fixed-strike fall is smaller once it is removed
    assert abs(net.total("vanna_usd")) < abs(plain.total("vanna_usd"))


def test_live_book_gex_vanna_charm_are_the_same_positioning_and_units():
    """On a real chain through the engine (chain_report.run_engine: the worker's path), the book's
    signs are ``naive``, its GEX is exposures_batch with dealer_signs('naive'), and the revaluation's
    first-order vanna / charm equal −(the book's vanna $/vol pt × 1 pt) and −(charm $/day × h)."""
    from conftest import SHARED_DATA, require_shared_data

    from streamer.chain_report import load, run_engine

    d = require_shared_data(SHARED_DATA / "option_chains")
    snap = load([d / "spx_quotedata_2025-01-06_close_febexp.csv"])
    book = run_engine(snap, rate=0.043, div_yield=Q).engine.chain
    exp, k, call, _, _, iv, oi, sign = book.contract_arrays()
    s, now = book.eval_spot, book.eval_ts_ns
    mine = dealer_signs("naive", exp, k, call, s, now)
    np.testing.assert_array_equal(sign, mine)
    tot = book.totals()
    ref = exposures_batch(exp, k, call, iv, oi, s, now, 0.043, Q, dealer_sign=mine).total
    gross = np.abs(ref.gex_usd_per_pct) + 1.0
    assert abs(tot.gex_usd_per_pct - ref.gex_usd_per_pct) <= 1e-9 * max(gross, 1e9)
    h = 1e-3
    f = reval_flows(exp, k, call, iv, oi, mine, s, now, 0.043, Q, d_iv=np.full(exp.shape, 0.01), horizon_days=h)
    assert f.total("vanna_first_order_usd") == pytest.approx(-tot.vanna_usd_per_vol_pt, rel=1e-9)
    assert f.total("charm_first_order_usd") == pytest.approx(-tot.charm_usd_per_day * h, rel=1e-9)
    assert f.total("vanna_usd") == pytest.approx(f.total("vanna_first_order_usd"), rel=0.05)


def test_live_delta_is_the_greeks_delta_bit_for_bit():
    c = _chain(n=600, seed=11)
    ok = np.isfinite(c["iv"])
    k, call, iv = c["strike"][ok], c["is_call"][ok], c["iv"][ok]
    t = (c["expiry_ts_ns"][ok] - NOW).astype(float) / NS_PER_YEAR
    got = bs.live_delta(c["spot"], k, t, R, Q, iv, call)
    assert got.tolist() == bs.greeks(c["spot"], k, t, R, Q, iv, call).delta.tolist()


@pytest.mark.parametrize("model", ["naive", "customer_long", "otm_only"])
@pytest.mark.parametrize("horizon", [1.0, 3.0])
def test_sliced_job_totals_are_reval_flows_totals_bit_for_bit(model, horizon):
    """The engine's revaluation in slices (RevalJob) gives reval_flows' vanna and charm totals exactly,
    whatever the slice size, and a job checkpointed mid-way (to_state → from_state) finishes the same."""
    c = _chain(n=900, seed=5)
    exp, k, call, iv, oi = (c[n] for n in ("expiry_ts_ns", "strike", "is_call", "iv", "open_interest"))
    sign = dealer_signs(model, exp, k, call, c["spot"], NOW)
    chg = (-8.85, -4.22, -2.52)
    f = reval_flows(exp, k, call, iv, oi, sign, c["spot"], NOW, R, Q, term_change_pts=chg, horizon_days=horizon)
    want = (f.total("vanna_usd"), f.total("charm_usd"))
    assert want[0] != 0.0 and want[1] != 0.0

    def job():
        return dr.RevalJob.capture(exp, k, call, iv, oi, sign, c["spot"], NOW, R, Q, term_change_pts=chg,
                                   horizon_days=horizon, ts_ns=NOW + 5, tag=3)

    for n in (1, 37, 256, 10_000):
        j, steps = job(), 0
        with pytest.raises(ValueError, match="in progress"):
            j.totals()
        while not j.step(n):
            steps += 1
        assert steps == -(-f.contracts // n) - 1 and j.totals() == want
    j = job()
    j.step(300)
    back = dr.RevalJob.from_state(j.to_state())
    assert back.pos == 300 and (back.ts_ns, back.tag) == (NOW + 5, 3)
    j.step(10_000)
    back.step(10_000)
    assert back.totals() == j.totals() == want


def test_job_state_shares_nothing_with_the_job():
    c = _chain(n=200, seed=2)
    sign = dealer_signs("naive", c["expiry_ts_ns"], c["strike"], c["is_call"], c["spot"], NOW)
    j = dr.RevalJob.capture(c["expiry_ts_ns"], c["strike"], c["is_call"], c["iv"], c["open_interest"], sign,
                            c["spot"], NOW, R, Q, term_change_pts=(-1.0, -1.0, -1.0))
    j.step(50)
    st = j.to_state()
    before = {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in st.items()}
    j.step(1000)
    j.iv[:] = 0.0
    for n, v in st.items():
        assert np.array_equal(v, before[n]) if isinstance(v, np.ndarray) else v == before[n]
    assert st["pos"] == 50 and len(st["vanna"]) == len(np.unique(c["expiry_ts_ns"]))
