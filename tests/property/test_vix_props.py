"""Property tests: the incremental VixEngine equals the from-scratch vix_batch after every event."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.cboe_csv import ny_ts_ns
from streamer.core.vix import VIX, VIX9D, VixEngine, vix_batch

# Friday expiries around a Fri 2024-01-05 close: weeklies (PM), the Jan and Feb standard (AM)
# series and their PM twins, so that the three NOWS roll the VIX and VIX9D terms.
EXPIRIES = [ny_ts_ns(2024, 1, 12, 16), ny_ts_ns(2024, 1, 19, 9, 30), ny_ts_ns(2024, 1, 19, 16),
            ny_ts_ns(2024, 1, 26, 16), ny_ts_ns(2024, 2, 2, 16),
            ny_ts_ns(2024, 2, 9, 16), ny_ts_ns(2024, 2, 16, 9, 30), ny_ts_ns(2024, 2, 16, 16)]
NOWS = [ny_ts_ns(2024, 1, 5, 16, 15), ny_ts_ns(2024, 1, 8, 10, 0), ny_ts_ns(2024, 1, 12, 16, 0)]
STRIKES = [4500.0 + 25.0 * i for i in range(15)] + [4612.5, 4987.5]
RATE = 0.05


def _base_quotes() -> dict[tuple[int, float, str], tuple[float, float]]:
    """A plausible chain (intrinsic + time value, zero bids in the far wings) to start from."""
    book = {}
    f = 4700.0
    for j, e in enumerate(EXPIRIES):
        for k in STRIKES[:15]:
            tv = max(0.0, 50.0 + 5 * j - 0.6 * abs(k - f))  # zero beyond ~110 points
            for r in "CP":
                intrinsic = max(0.0, (f - k) if r == "C" else (k - f))
                mid = round((intrinsic + tv) * 20) / 20
                bid = max(0.0, mid - 0.5)
                book[(e, k, r)] = (bid, bid + 1.0)
    return book


price = st.one_of(st.just(0.0), st.integers(1, 4000).map(lambda x: x * 0.05))
update = st.tuples(st.just("q"), st.integers(0, len(EXPIRIES) - 1), st.sampled_from(STRIKES),
                   st.sampled_from("CP"), price, st.integers(0, 40).map(lambda x: x * 0.05))
removal = st.tuples(st.just("rm"), st.integers(0, len(EXPIRIES) - 1), st.sampled_from(STRIKES),
                    st.just("C"), st.just(0.0), st.just(0.0))
events = st.lists(st.one_of(update, update, update, update, update, update, removal),
                  min_size=1, max_size=40)


def _check(eng: VixEngine, book: dict, now: int, spec) -> None:
    keys = list(book)
    ref = vix_batch([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                    [book[k][0] for k in keys], [book[k][1] for k in keys], now, RATE, spec)
    got = eng.value(now)
    assert got.reason == ref.reason
    if ref.ok:
        assert math.isclose(got.value, ref.value, rel_tol=1e-12, abs_tol=0.0)
        for a, b in ((got.near, ref.near), (got.next, ref.next)):
            assert a is not None and b is not None
            assert (a.expiry_ts_ns, a.k0, a.k_star, a.n_strikes) == \
                (b.expiry_ts_ns, b.k0, b.k_star, b.n_strikes)
            assert math.isclose(a.sigma2, b.sigma2, rel_tol=1e-12, abs_tol=1e-15)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events, now_idx=st.lists(st.integers(0, len(NOWS) - 1), min_size=40, max_size=40),
       nine_day=st.booleans())
def test_incremental_equals_batch(events, now_idx, nine_day) -> None:
    spec = VIX9D if nine_day else VIX
    book = _base_quotes()
    keys = list(book)
    eng = VixEngine.from_arrays([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                                [book[k][0] for k in keys], [book[k][1] for k in keys], RATE, spec)
    _check(eng, book, NOWS[0], spec)
    for step, (kind, ei, k, r, b, spread) in enumerate(events):
        e = EXPIRIES[ei]
        if kind == "rm":
            eng.remove_strike(e, k)
            for rr in "CP":
                book.pop((e, k, rr), None)
        else:
            eng.update_quote(e, k, r, b, b + spread)
            book[(e, k, r)] = (b, b + spread)
        _check(eng, book, NOWS[now_idx[step]], spec)


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(list(range(40))), repeat=st.integers(1, 3))
def test_order_and_repetition_of_a_snapshot_do_not_matter(order, repeat) -> None:
    """Replaying one snapshot in any order, with repeats, lands on the batch value."""
    book = _base_quotes()
    keys = sorted(book)
    chosen = [keys[(i * 37) % len(keys)] for i in order]
    eng = VixEngine(RATE)
    for k in keys:  # first pass in file order, then the reordered, repeated subset
        eng.update_quote(k[0], k[1], k[2], *book[k])
    for _ in range(repeat):
        for k in chosen:
            eng.update_quote(k[0], k[1], k[2], *book[k])
    _check(eng, book, NOWS[0], VIX)
