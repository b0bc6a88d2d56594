"""core.dealer_reval invariants on random chains (hypothesis): every flow is linear in the dealer position
(doubling OI doubles it, flipping every sign negates it, the models' contracts add up: ``naive`` =
``otm_only`` + its in-the-money part), contract order does not matter, no vol move means no vanna, and
the per-expiry arrays sum to the totals of each expiry's contracts revalued alone."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.chain import NS_PER_DAY
from streamer.core.dealer_reval import dealer_signs, reval_flows

NOW = 1_700_000_000 * 10**9
R, Q = 0.045, 0.013
FLOWS = ("vanna_usd", "charm_usd", "settle_usd", "gamma_usd", "joint_usd",
         "vanna_first_order_usd", "charm_first_order_usd")

contract = st.tuples(
    st.sampled_from([0.1, 0.9, 1.5, 3.0, 10.0, 35.0, 120.0, 500.0]),   # days to expiry
    st.floats(0.6, 1.5),                                                 # strike / spot
    st.booleans(),
    st.floats(0.05, 1.2),                                                # IV
    st.floats(0.0, 1e4),                                                 # OI
)
moves = st.tuples(st.floats(-30.0, 30.0), st.floats(-20.0, 20.0), st.floats(-10.0, 10.0),
                  st.floats(-0.12, 0.12), st.floats(0.0, 3.0))


def _arrays(rows, spot=5000.0):
    d, m, c, v, oi = (np.array(x) for x in zip(*rows))
    return dict(exp=NOW + (d * NS_PER_DAY).astype(np.int64), k=np.round(m * spot, 1), call=c.astype(bool),
                iv=v.astype(float), oi=oi.astype(float), spot=spot)


def _run(a, sign, mv, **kw):
    d9, d30, d93, ret, h = mv
    return reval_flows(a["exp"], a["k"], a["call"], a["iv"], a["oi"], sign, a["spot"], NOW, R, Q,
                       term_change_pts=(d9, d30, d93), new_spot=a["spot"] * (1 + ret), horizon_days=h,
                       net_of_smile_roll=kw.pop("net", False), **kw)


def _close(x, y, scale):
    return np.all(np.abs(np.asarray(x) - np.asarray(y)) <= 1e-9 * (scale + 1.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(contract, min_size=1, max_size=40), moves, st.booleans())
def test_flows_are_linear_in_the_position(rows, mv, net):
    a = _arrays(rows)
    naive = dealer_signs("naive", a["exp"], a["k"], a["call"], a["spot"], NOW)
    otm = dealer_signs("otm_only", a["exp"], a["k"], a["call"], a["spot"], NOW)
    f = _run(a, naive, mv, net=net)
    neg = _run(a, -naive, mv, net=net)
    parts = (_run(a, otm, mv, net=net), _run(a, naive - otm, mv, net=net))
    a2 = dict(a, oi=2 * a["oi"])
    dbl = _run(a2, naive, mv, net=net)
    for n in FLOWS:
        x = getattr(f, n)
        sc = float(np.abs(x).sum())
        assert _close(getattr(neg, n), -x, sc), n
        assert _close(getattr(parts[0], n) + getattr(parts[1], n), x, sc), n
        assert _close(getattr(dbl, n), 2 * x, sc), n
    assert f.vanna_parallel_vix_usd == -neg.vanna_parallel_vix_usd


@settings(max_examples=60, deadline=None)
@given(st.lists(contract, min_size=1, max_size=40), moves, st.randoms(use_true_random=False))
def test_order_free_and_per_expiry_sums(rows, mv, rnd):
    a = _arrays(rows)
    sign = dealer_signs("naive", a["exp"], a["k"], a["call"], a["spot"], NOW)
    f = _run(a, sign, mv)
    p = list(range(len(rows)))
    rnd.shuffle(p)
    g = _run({k: (v[p] if isinstance(v, np.ndarray) else v) for k, v in a.items()}, sign[p], mv)
    for n in FLOWS:
        sc = float(np.abs(getattr(f, n)).sum())
        assert _close(getattr(g, n), getattr(f, n), sc), n
        for j, e in enumerate(f.expiries.tolist()):
            sel = a["exp"] == e
            one = _run({k: (v[sel] if isinstance(v, np.ndarray) else v) for k, v in a.items()}, sign[sel], mv)
            assert _close(one.total(n), getattr(f, n)[j], sc), n


@settings(max_examples=40, deadline=None)
@given(st.lists(contract, min_size=1, max_size=40))
def test_no_vol_move_no_vanna(rows):
    a = _arrays(rows)
    sign = dealer_signs("naive", a["exp"], a["k"], a["call"], a["spot"], NOW)
    f = _run(a, sign, (0.0, 0.0, 0.0, 0.0, 0.0))
    assert not f.vanna_usd.any() and not f.gamma_usd.any() and not f.joint_usd.any()
    assert not f.charm_usd.any() and not f.settle_usd.any()


@settings(max_examples=40, deadline=None)
@given(st.lists(contract, min_size=1, max_size=40), moves, st.integers(1, 45))
def test_sliced_revaluation_is_the_whole_one(rows, mv, n):
    """RevalJob (the live engine's revaluation a slice at a time) = reval_flows' vanna/charm totals, bit for bit."""
    from streamer.core.dealer_reval import RevalJob

    a = _arrays(rows)
    sign = dealer_signs("naive", a["exp"], a["k"], a["call"], a["spot"], NOW)
    d9, d30, d93, _, h = mv
    f = reval_flows(a["exp"], a["k"], a["call"], a["iv"], a["oi"], sign, a["spot"], NOW, R, Q,
                    term_change_pts=(d9, d30, d93), horizon_days=h)
    j = RevalJob.capture(a["exp"], a["k"], a["call"], a["iv"], a["oi"], sign, a["spot"], NOW, R, Q,
                         term_change_pts=(d9, d30, d93), horizon_days=h)
    while not j.step(n):
        pass
    assert j.totals() == (f.total("vanna_usd"), f.total("charm_usd"))
