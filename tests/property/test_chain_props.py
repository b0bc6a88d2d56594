"""Incremental chain aggregates equal a from-scratch recomputation after every update (hypothesis).

The model below keeps the raw inputs independently of ChainState (same acceptance rules:
quotes with an older timestamp are ignored, equal timestamps replace). After every operation the
chain's aggregates are compared with (a) ``exposures_batch`` on the model's arrays and (b) a
per-contract reference computed here straight from ``bs.greeks``. Tolerance: 1e-9 relative to the
gross (sum of |per-contract contributions|), the scale at which revert-then-add rounding lives.
"""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from streamer.core import bs
from streamer.core.chain import (NS_PER_YEAR, ChainConfig, ChainState, exposures_batch,
                                 forward_from_parity, valid_mid)

NY = ZoneInfo("America/New_York")
NOW = int(dt.datetime(2024, 1, 5, 11, 0, tzinfo=NY).timestamp()) * 10**9
EXPIRIES = [int(dt.datetime(2024, 1, 5, 16, 0, tzinfo=NY).timestamp()) * 10**9,   # 0DTE
            int(dt.datetime(2024, 1, 8, 16, 0, tzinfo=NY).timestamp()) * 10**9,
            int(dt.datetime(2024, 2, 16, 9, 30, tzinfo=NY).timestamp()) * 10**9]
STRIKES = [95.0, 100.0, 105.0]
KEYS = [(e, k, r) for e in EXPIRIES for k in STRIKES for r in ("C", "P")]
CFG = ChainConfig(rate=0.05, div_yield=0.013)
REL = 1e-9

key_i = st.integers(0, len(KEYS) - 1)
op = st.one_of(
    st.tuples(st.just("quote"), key_i, st.floats(0.0, 15.0), st.floats(0.0, 3.0),
              st.integers(-3, 3), st.floats(0.03, 2.0),
              st.one_of(st.none(), st.integers(0, 5000))),
    st.tuples(st.just("oi"), key_i, st.integers(0, 5000)),
    st.tuples(st.just("sign"), key_i, st.floats(-2.0, 2.0)),
    st.tuples(st.just("remove"), key_i),
    st.tuples(st.just("spot"), st.floats(97.0, 103.0), st.integers(0, 90)),
    st.tuples(st.just("recentre"),),
)


class Model:
    """Raw per-contract inputs, kept independently of ChainState."""

    def __init__(self) -> None:
        self.c: dict = {}

    def entry(self, key):
        return self.c.setdefault(key, {"bid": math.nan, "ask": math.nan, "ts": -1,
                                       "iv": math.nan, "oi": 0.0,
                                       "sign": 1.0 if key[2] == "C" else -1.0})

    def arrays(self):
        ks = list(self.c)
        f = lambda n: np.array([self.c[k][n] for k in ks], dtype=float)  # noqa: E731
        return (np.array([k[0] for k in ks], dtype=np.int64), np.array([k[1] for k in ks]),
                np.array([k[2] == "C" for k in ks]), f("iv"), f("oi"), f("sign"))


def reference_contribs(exp, k, call, iv, oi, sign, spot, now):
    """Per-contract (gex, dex, vanna, charm) straight from bs.greeks and the documented formulas."""
    t = (exp - now) / NS_PER_YEAR
    ok = (t > 0) & (iv > 0) & (oi > 0)
    out = np.zeros((4, exp.size))
    if ok.any():
        g = bs.greeks(spot, k[ok], t[ok], CFG.rate, CFG.div_yield, iv[ok], call[ok])
        m = sign[ok] * oi[ok] * 100.0
        out[0, ok] = g.gamma * m * spot**2 * 0.01
        out[1, ok] = g.delta * m * spot
        out[2, ok] = g.vanna * m * spot * 0.01
        out[3, ok] = g.charm * m * spot / 365.0
    return out


def close(a, b, scale):
    """|a - b| within REL of the gross scale (elementwise)."""
    return np.all(np.abs(np.asarray(a) - np.asarray(b)) <= REL * np.asarray(scale) + 1e-300)


def ny_date(ts_ns):
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=NY).date()


def check(chain: ChainState, model: Model, hist: dict) -> None:
    exp, k, call, iv, oi, sign = model.arrays()
    spot, now = chain.eval_spot, chain.eval_ts_ns
    b = exposures_batch(exp, k, call, iv, oi, spot, now, CFG.rate, CFG.div_yield,
                        dealer_sign=sign, grid_spots=chain.grid)
    inc = chain.exposures()
    ref = reference_contribs(exp, k, call, iv, oi, sign, spot, now)
    # revert-then-add error model: |err| <~ eps x the largest gross that passed through the sums
    # since the last full recompute (reprice/recentre), so tolerances use that running maximum
    gross = np.maximum(np.abs(ref).sum(axis=1), hist.get("gross", 0.0))
    hist["gross"] = gross
    zd = np.array([ny_date(e) == ny_date(now) for e in exp], dtype=bool)
    # totals: incremental vs batch vs per-contract reference
    assert close(inc.total.as_tuple(), b.total.as_tuple(), gross)
    assert close(b.total.as_tuple(), ref.sum(axis=1), gross)
    assert close(inc.zero_dte.as_tuple(), ref[:, zd].sum(axis=1), gross)
    # by strike and by expiry
    assert np.array_equal(inc.strikes, b.strikes) and np.array_equal(inc.expiries, b.expiries)
    for a_, b_, row in ((inc.strike_gex, b.strike_gex, 0), (inc.strike_dex, b.strike_dex, 1),
                        (inc.strike_vanna, b.strike_vanna, 2),
                        (inc.strike_charm, b.strike_charm, 3)):
        assert close(a_, b_, gross[row])
    for a_, b_, row in ((inc.expiry_gex, b.expiry_gex, 0), (inc.expiry_dex, b.expiry_dex, 1),
                        (inc.expiry_vanna, b.expiry_vanna, 2),
                        (inc.expiry_charm, b.expiry_charm, 3)):
        assert close(a_, b_, gross[row])
    gabs = max(np.abs(ref[0] / np.where(sign == 0, 1.0, sign)).sum(), hist.get("gabs", 0.0))
    hist["gabs"] = gabs
    assert close(inc.strike_call_gamma, b.strike_call_gamma, gabs)
    assert close(inc.strike_put_gamma, b.strike_put_gamma, gabs)
    # grid profile: gross = same contracts with |sign| (gamma >= 0)
    g_gross = exposures_batch(exp, k, call, iv, oi, spot, now, CFG.rate, CFG.div_yield,
                              dealer_sign=np.abs(sign), grid_spots=chain.grid).grid_gex
    g_gross = np.maximum(g_gross, hist.get("grid", 0.0))
    hist["grid"] = g_gross
    assert close(inc.grid_gex, b.grid_gex, g_gross)
    # walls: same strike, or an exact tie within rounding
    for w_inc, w_b, vals in ((inc.call_wall, b.call_wall, b.strike_call_gamma),
                             (inc.put_wall, b.put_wall, b.strike_put_gamma),
                             (inc.abs_gamma_strike, b.abs_gamma_strike,
                              b.strike_call_gamma + b.strike_put_gamma)):
        if not (w_inc == w_b or (math.isnan(w_inc) and math.isnan(w_b))):
            vi = vals[np.searchsorted(b.strikes, w_inc)]
            vb = vals[np.searchsorted(b.strikes, w_b)]
            assert abs(vi - vb) <= REL * gabs, (w_inc, w_b)
    # flip: equal, unless the batch profile is within rounding of zero next to the crossing
    fi, fb = inc.gamma_flip, b.gamma_flip
    if not (math.isnan(fi) and math.isnan(fb)):
        if math.isnan(fi) or math.isnan(fb) or abs(fi - fb) > 1e-6 * (chain.grid[1] - chain.grid[0]):
            near = np.abs(b.grid_gex) <= 1e-6 * g_gross + 1e-300
            assert near.any(), (fi, fb)
    # parity forwards per expiry
    for e in np.unique(exp):
        mids = {}
        for key, v in model.c.items():
            if key[0] == e:
                mids.setdefault(key[1], [math.nan, math.nan])[0 if key[2] == "C" else 1] = \
                    valid_mid(v["bid"], v["ask"])
        ks = np.array(sorted(mids))
        cm = np.array([mids[x][0] for x in ks])
        pm = np.array([mids[x][1] for x in ks])
        t = (int(e) - now) / NS_PER_YEAR
        f_b, k_b = forward_from_parity(ks, cm, pm, t, CFG.rate)
        fw = chain.forward(int(e))
        if math.isnan(k_b):
            assert fw is None
        else:
            assert fw is not None and fw.strike == k_b and math.isclose(fw.forward, f_b,
                                                                        rel_tol=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=30))
def test_incremental_equals_batch_after_every_update(ops):
    chain = ChainState(100.0, NOW, CFG)
    model = Model()
    clock = NOW
    hist: dict = {}
    for o in ops:
        n_full = chain.reprices
        kind = o[0]
        if kind == "quote":
            _, i, bid, spread, dts, iv, oi = o
            key = KEYS[i]
            ts = NOW + 10**9 * (10 + dts)           # repeated and out-of-order timestamps
            e = model.c.get(key)
            accepted = chain.on_quote(*key, bid, bid + spread, ts, iv=iv)
            if e is not None and ts < e["ts"]:
                assert accepted is None
            else:
                assert accepted is not None
                e = model.entry(key)
                e.update(bid=bid, ask=bid + spread, ts=ts, iv=iv)
            if oi is not None:
                chain.on_open_interest(*key, oi)
                model.entry(key)["oi"] = float(oi)
        elif kind == "oi":
            _, i, oi = o
            chain.on_open_interest(*KEYS[i], oi)
            model.entry(KEYS[i])["oi"] = float(oi)
        elif kind == "sign":
            _, i, s = o
            chain.set_dealer_sign(KEYS[i], s)
            model.entry(KEYS[i])["sign"] = s
        elif kind == "remove":
            chain.remove(KEYS[o[1]])
            model.c.pop(KEYS[o[1]], None)
        elif kind == "spot":
            clock += 10**9 * o[2]
            chain.on_spot(o[1], clock)
        else:
            chain.recentre()
            n_full = -1
        if chain.reprices != n_full:
            hist = {}                   # everything was recomputed from scratch
        check(chain, model, hist)
    live = sum(1 for c in chain.contracts() if c.gex != 0.0)
    target(float(live))             # steer hypothesis towards chains with many live contracts


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(key_i, st.floats(0.0, 10.0), st.floats(0.0, 2.0),
                          st.floats(0.05, 1.0), st.integers(0, 3000)), min_size=1, max_size=40),
       st.floats(98.0, 102.0))
def test_rebuild_from_contract_states_equals_uninterrupted(updates, spot):
    import json
    chain = ChainState(100.0, NOW, CFG)
    gross = np.zeros(4)             # running max: the revert-then-add error scale (see check())
    for i, bid, spread, iv, oi in updates:
        chain.on_quote(*KEYS[i], bid, bid + spread, NOW + 1, iv=iv)
        chain.on_open_interest(*KEYS[i], oi)
        gross = np.maximum(gross, np.abs([[c.gex, c.dex, c.vanna, c.charm]
                                          for c in chain.contracts()]).sum(axis=0))
    if chain.on_spot(spot, NOW + 5 * 10**9):
        gross = np.zeros(4)
    states = [json.loads(json.dumps(c.to_state())) for c in chain.contracts()]
    meta = json.loads(json.dumps(chain.meta_state()))
    back = ChainState.rebuild(states[::-1], meta)
    a, b = chain.exposures(), back.exposures()
    gross = np.maximum(gross, np.abs([[c.gex, c.dex, c.vanna, c.charm]
                                      for c in chain.contracts()]).sum(axis=0))
    assert close(a.total.as_tuple(), b.total.as_tuple(), gross)
    assert close(a.strike_gex, b.strike_gex, gross[0])
    assert close(a.expiry_dex, b.expiry_dex, gross[1])
    assert np.array_equal(a.grid_spots, b.grid_spots)
    for wa, wb, vals in ((a.call_wall, b.call_wall, a.strike_call_gamma),
                         (a.put_wall, b.put_wall, a.strike_put_gamma)):
        if wa != wb and not (math.isnan(wa) and math.isnan(wb)):   # only an exact tie may differ
            va = 0.0 if math.isnan(wa) else vals[np.searchsorted(a.strikes, wa)]
            vb = 0.0 if math.isnan(wb) else vals[np.searchsorted(a.strikes, wb)]
            assert abs(va - vb) <= REL * np.abs(vals).sum() + 1e-300
    assert back.spot == chain.spot and back.eval_spot == chain.eval_spot
    for e in a.expiries:
        fa, fb = chain.forward(int(e)), back.forward(int(e))
        assert (fa is None) == (fb is None)
        if fa is not None:
            assert fa.strike == fb.strike and fa.forward == fb.forward
