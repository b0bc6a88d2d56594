"""Property tests (hypothesis) for streamer.core.realized: random update/revert/late-tick sequences
checked against batch numpy recomputation after every single operation."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.core.realized import (
    ClockSampler,
    CloseToCloseVol,
    EWMAVar,
    GarmanKlass,
    IntradayRV,
    Parkinson,
    RogersSatchell,
    RollingVar,
    TimeRollingVar,
    Var,
    YangZhang,
    bar_vol_batch,
    clock_sample_batch,
    close_to_close_vol_batch,
    estimator_from_state,
    ewma_var_batch,
    intraday_rv_batch,
)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
small_returns = st.floats(min_value=-0.2, max_value=0.2, allow_nan=False)


def _var_close(got: float, xs: list[float], ddof: int = 1, seen: float = 0.0) -> bool:
    """Incremental variance vs numpy two-pass.

    Tolerance: relative 1e-7 plus an absolute term scaled by the largest |x| that has *ever* been
    in the estimator (``seen``): after reverting a big value, Welford's absolute rounding error is
    of order eps * (that magnitude)^2, which is inherent to any update/revert scheme.
    """
    if len(xs) <= ddof:
        return math.isnan(got)
    ref = float(np.var(xs, ddof=ddof))
    scale = max([abs(x) for x in xs] + [seen]) ** 2 + 1e-300
    return abs(got - ref) <= 1e-7 * ref + 1e-12 * scale


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), values, st.integers(0, 10**6)), max_size=150))
def test_var_random_updates_and_reverts(ops: list[tuple[bool, float, int]]) -> None:
    """Revert any member (not only the oldest): Welford equals numpy on the remaining multiset."""
    v, alive, seen = Var(), [], 0.0
    for is_revert, x, pick in ops:
        if is_revert and alive:
            y = alive.pop(pick % len(alive))
            v.revert(y)
        else:
            alive.append(x)
            v.update(x)
            seen = max(seen, abs(x))
        assert v.n == len(alive)
        assert _var_close(v.get(), alive, seen=seen)


@SETTINGS
@given(st.lists(values, max_size=300), st.integers(1, 40), st.sampled_from([0, 1]))
def test_rolling_var_every_update(xs: list[float], window: int, ddof: int) -> None:
    rv = RollingVar(window, ddof=ddof)
    for i, x in enumerate(xs):
        rv.update(x)
        assert _var_close(rv.get(), xs[max(0, i + 1 - window): i + 1], ddof,
                          seen=max(abs(y) for y in xs[: i + 1]))


@SETTINGS
@given(st.floats(1.0, 1e5), st.floats(1e-6, 1e-2), st.integers(0, 2**32 - 1))
def test_rolling_var_long_window_around_a_level(level: float, rel_std: float, seed: int) -> None:
    """Window 5,000 over 12,000 values at a high level with a tiny spread: relative error <= 1e-6."""
    rng = np.random.default_rng(seed)
    x = level + level * rel_std * rng.standard_normal(12_000)
    rv = RollingVar(5_000)
    for xi in x.tolist():
        rv.update(xi)
    ref = float(np.var(x[-5_000:], ddof=1))
    assert abs(rv.get() / ref - 1.0) < 1e-6


# time window: dt may be negative (late/out-of-order) or zero (equal timestamps)
ticks = st.lists(st.tuples(st.integers(-30, 12), values), max_size=200)


@SETTINGS
@given(ticks, st.integers(1, 25), st.lists(st.integers(0, 40), max_size=5))
def test_time_rolling_var_out_of_order_and_equal_ts(
    steps: list[tuple[int, float]], window_ns: int, advances: list[int]
) -> None:
    """Rule: a tick with ts <= watermark - window_ns is ignored; a later-but-inside tick counts."""
    tv = TimeRollingVar(window_ns)
    accepted: list[tuple[int, float]] = []
    wm: int | None = None
    t = 0
    adv = set(advances)
    for i, (dt, x) in enumerate(steps):
        t += dt
        ok = tv.update(t, x)
        assert ok == (wm is None or t > wm - window_ns)
        if ok:
            accepted.append((t, x))
            wm = t if wm is None else max(wm, t)
        if i in adv and wm is not None:  # timer moves the watermark without a value
            wm += 3
            tv.advance_to(wm)
        assert tv.watermark_ns == wm
        inside = [x for ts, x in accepted if wm is not None and ts > wm - window_ns]
        assert tv.n == len(inside)
        assert _var_close(tv.get(), inside, seen=max([abs(x) for _, x in accepted] + [0.0]))
        assert list(tv.ts) == sorted(tv.ts)


@SETTINGS
@given(st.lists(small_returns, min_size=1, max_size=120), st.floats(0.5, 0.995),
       st.one_of(st.none(), st.floats(1e-8, 1e-2)))
def test_ewma_every_update(rets: list[float], lam: float, seed: float | None) -> None:
    e = EWMAVar(lam, seed)
    ref = ewma_var_batch(rets, lam, seed)
    for i, r in enumerate(rets):
        e.update(r)
        assert math.isclose(e.get(), float(ref[i]), rel_tol=1e-9, abs_tol=1e-300)


@SETTINGS
@given(st.lists(small_returns, min_size=2, max_size=150), st.integers(1, 30),
       st.sampled_from(["simple", "ewma"]))
def test_close_to_close_every_close(rets: list[float], window: int, method: str) -> None:
    closes = (100.0 * np.exp(np.cumsum([0.0] + rets))).tolist()
    v = CloseToCloseVol(window, method)
    ref = close_to_close_vol_batch(closes, window, method)
    for i, c in enumerate(closes):
        v.update(c)
        g, r = v.get(), float(ref[i])
        assert (math.isnan(g) and math.isnan(r)) or math.isclose(g, r, rel_tol=1e-9, abs_tol=1e-12)


# clock sampling: sorted ticks with equal timestamps and gaps, then shuffled (late) ticks
tick_steps = st.lists(
    st.tuples(st.sampled_from([0, 0, 1, 7, 20, 45, 59, 60, 61, 150, 700]),
              st.floats(-0.01, 0.01, allow_nan=False)),
    min_size=1, max_size=250)


def _prices(steps: list[tuple[int, float]], t0: int) -> tuple[list[int], list[float]]:
    ts = (t0 + np.cumsum([d for d, _ in steps])).tolist()
    px = (50.0 * np.exp(np.cumsum([r for _, r in steps]))).tolist()
    return ts, px


@SETTINGS
@given(tick_steps, st.integers(0, 10**6), st.sampled_from([None, 120, 300]),
       st.integers(1, 12))
def test_intraday_rv_every_sampled_return(steps, t0: int, max_gap: int | None, window: int) -> None:
    ts, px = _prices(steps, t0)
    rv = IntradayRV(bucket_ns=60, window=window, max_gap_ns=max_gap)
    got = []
    for t, p in zip(ts, px):
        if (sr := rv.update(t, p)) is not None:
            got.append(sr)
            g, r = rv.get(), intraday_rv_batch(got, 60, window)
            assert (math.isnan(g) and math.isnan(r)) or math.isclose(g, r, rel_tol=1e-9)
    ref = clock_sample_batch(ts, px, 60, max_gap)
    assert [(a.end_ts_ns, a.span_buckets) for a in got] == [(b.end_ts_ns, b.span_buckets) for b in ref]
    assert all(math.isclose(a.log_return, b.log_return, rel_tol=1e-12, abs_tol=1e-15)
               for a, b in zip(got, ref))


@SETTINGS
@given(tick_steps, st.lists(st.integers(0, 200), max_size=40), st.data())
def test_clock_sampler_late_ticks_are_ignored(steps, late_at: list[int], data) -> None:
    """Out-of-order ticks (ts below the max seen) are ignored: output == batch on in-order ticks."""
    ts, px = _prices(steps, 1000)
    stream = list(zip(ts, px))
    for k in sorted(set(late_at), reverse=True):
        if 0 < k < len(stream):
            back = data.draw(st.integers(1, 500))
            stream.insert(k, (stream[k - 1][0] - back, 1.0))  # a stray late tick at a bad price
    s = ClockSampler(60)
    got = [x for t, p in stream if (x := s.update(t, p)) is not None]
    kept, hi = [], None
    for t, p in stream:
        if hi is None or t >= hi:
            kept.append((t, p))
            hi = t
    assert s.n_late == len(stream) - len(kept)
    ref = clock_sample_batch([t for t, _ in kept], [p for _, p in kept], 60)
    assert [(a.end_ts_ns, a.span_buckets) for a in got] == [(b.end_ts_ns, b.span_buckets) for b in ref]
    assert all(math.isclose(a.log_return, b.log_return, rel_tol=1e-12, abs_tol=1e-15)
               for a, b in zip(got, ref))


bar = st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05), st.floats(0, 0.03),
                st.floats(0, 0.03), st.booleans())
BARS = {"parkinson": Parkinson, "garman_klass": GarmanKlass, "rogers_satchell": RogersSatchell,
        "yang_zhang": YangZhang}


@SETTINGS
@given(st.lists(bar, min_size=1, max_size=120), st.integers(2, 25), st.sampled_from(sorted(BARS)))
def test_bar_estimators_every_bar_with_invalid_bars_interleaved(bars, window: int, kind: str) -> None:
    est = BARS[kind](window)
    prev = 100.0
    O, H, L, C = [], [], [], []
    for gap, oc, up, dn, corrupt in bars:
        o = prev * math.exp(gap)
        c = o * math.exp(oc)
        h, lo = max(o, c) * math.exp(up), min(o, c) * math.exp(-dn)
        if corrupt:  # an invalid bar (high below the open/close) must be rejected and not count
            assert est.update(o, min(o, c) * 0.999, lo * 0.99, c) is False
            continue
        assert est.update(o, h, lo, c)
        O.append(o), H.append(h), L.append(lo), C.append(c)
        prev = c
        ref = float(bar_vol_batch(kind, O, H, L, C, window)[-1])
        g = est.get()
        assert (math.isnan(g) and math.isnan(ref)) or math.isclose(g, ref, rel_tol=1e-8, abs_tol=1e-10)


ESTIMATORS = {
    "RollingVar": lambda: RollingVar(9),
    "TimeRollingVar": lambda: TimeRollingVar(15),
    "CloseToCloseVol": lambda: CloseToCloseVol(5, "ewma"),
    "IntradayRV": lambda: IntradayRV(bucket_ns=10, window=4, max_gap_ns=40),
    "YangZhang": lambda: YangZhang(4),
    "GarmanKlass": lambda: GarmanKlass(3),
}


def _feed(name: str, e, step: tuple[int, float], t: int) -> None:
    dt, r = step
    p = 100.0 * math.exp(r)
    if name in ("RollingVar",):
        e.update(r)
    elif name == "TimeRollingVar":
        e.update(t, r)
    elif name == "CloseToCloseVol":
        e.update(p)
    elif name == "IntradayRV":
        e.update(t, p)
    else:
        e.update(p, p * math.exp(abs(r)), p * math.exp(-abs(r) / 2), p * math.exp(r / 3))


@SETTINGS
@given(st.sampled_from(sorted(ESTIMATORS)),
       st.lists(st.tuples(st.integers(-5, 20), small_returns), min_size=2, max_size=80),
       st.integers(0, 80))
def test_state_round_trip_at_random_cut(name: str, steps, cut: int) -> None:
    a = ESTIMATORS[name]()
    cut = min(cut, len(steps))
    t = 0
    for step in steps[:cut]:
        t += step[0]
        _feed(name, a, step, t)
    b = estimator_from_state(json.loads(json.dumps(a.to_state(), allow_nan=False)))
    for step in steps[cut:]:
        t += step[0]
        _feed(name, a, step, t)
        _feed(name, b, step, t)
        ga, gb = a.get(), b.get()
        assert ga == gb or (math.isnan(ga) and math.isnan(gb))
    assert a.to_state() == b.to_state()
