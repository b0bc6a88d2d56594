"""Property tests: the live chain book's VIX equals the from-scratch ``vix_batch`` after every batch.

``ChainBook.vix`` reads the near and next terms from the book's arrays (vectorized); ``vix_batch``
loops over flat rows. The rows fed to ``vix_batch`` come from an independent dict model that applies
the quotes one at a time (the later row of a contract wins), not from the book.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.cboe_csv import ny_ts_ns
from streamer.core.chain import ChainBook, ChainConfig
from streamer.core.vix import (VIX, VIX9D, eligible_expiries, is_friday_holiday, local_minutes,
                               select_terms, selection_day, vix_batch)

# Friday expiries around a Fri 2024-01-05 close: weeklies (PM), the Jan and Feb standard (AM)
# series and their PM twins, so that the three NOWS roll the VIX and VIX9D terms.
EXPIRIES = [ny_ts_ns(2024, 1, 12, 16), ny_ts_ns(2024, 1, 19, 9, 30), ny_ts_ns(2024, 1, 19, 16),
            ny_ts_ns(2024, 1, 26, 16), ny_ts_ns(2024, 2, 2, 16),
            ny_ts_ns(2024, 2, 9, 16), ny_ts_ns(2024, 2, 16, 9, 30), ny_ts_ns(2024, 2, 16, 16)]
NOWS = [ny_ts_ns(2024, 1, 5, 16, 15), ny_ts_ns(2024, 1, 8, 10, 0), ny_ts_ns(2024, 1, 12, 16, 0)]
STRIKES = [4500.0 + 25.0 * i for i in range(15)] + [4612.5, 4987.5]   # the last two: new strikes
RATE = 0.05


def _base_quotes() -> dict[tuple[int, float, bool], tuple[float, float]]:
    """A plausible chain (intrinsic + time value, zero bids in the far wings) to start from."""
    book = {}
    f = 4700.0
    for j, e in enumerate(EXPIRIES):
        for k in STRIKES[:15]:
            tv = max(0.0, 50.0 + 5 * j - 0.6 * abs(k - f))  # zero beyond ~110 points
            for c in (True, False):
                intrinsic = max(0.0, (f - k) if c else (k - f))
                mid = round((intrinsic + tv) * 20) / 20
                bid = max(0.0, mid - 0.5)
                book[(e, k, c)] = (bid, bid + 1.0)
    return book


def _apply(book: ChainBook, ts: int, rows: list[tuple[int, float, bool, float, float]]) -> None:
    book.apply_quotes(ts, np.array([r[0] for r in rows], dtype=np.int64),
                      np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                      np.array([r[3] for r in rows]), np.array([r[4] for r in rows]))


def _check(book: ChainBook, model: dict, now: int, spec) -> None:
    keys = list(model)
    ref = vix_batch([k[0] for k in keys], [k[1] for k in keys], ["C" if k[2] else "P" for k in keys],
                    [model[k][0] for k in keys], [model[k][1] for k in keys], now, RATE, spec)
    got = book.vix(now, spec)
    assert got.reason == ref.reason
    assert got.wing_truncated == ref.wing_truncated
    assert math.isclose(got.wing_bound, ref.wing_bound, rel_tol=1e-9, abs_tol=1e-12)
    if ref.ok:
        assert math.isclose(got.value, ref.value, rel_tol=1e-12, abs_tol=0.0)
        for a, b in ((got.near, ref.near), (got.next, ref.next)):
            assert a is not None and b is not None
            assert (a.expiry_ts_ns, a.k0, a.k_star, a.n_strikes, a.truncated) == \
                (b.expiry_ts_ns, b.k0, b.k_star, b.n_strikes, b.truncated)
            assert math.isclose(a.sigma2, b.sigma2, rel_tol=1e-12, abs_tol=1e-15)
            assert math.isclose(a.wing_bound, b.wing_bound, rel_tol=1e-12, abs_tol=0.0)


price = st.one_of(st.just(0.0), st.integers(1, 4000).map(lambda x: x * 0.05))
row = st.tuples(st.integers(0, len(EXPIRIES) - 1), st.sampled_from(STRIKES), st.booleans(), price,
                st.integers(0, 40).map(lambda x: x * 0.05))
batches = st.lists(st.tuples(st.lists(row, min_size=1, max_size=15), st.integers(0, len(NOWS) - 1)),
                   min_size=1, max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches, nine_day=st.booleans(), expire_at=st.integers(0, len(NOWS) - 1))
def test_book_vix_equals_vix_batch_after_every_batch(batches, nine_day, expire_at) -> None:
    spec = VIX9D if nine_day else VIX
    model = _base_quotes()
    book = ChainBook(4700.0, NOWS[0], ChainConfig(rate=RATE, div_yield=0.0))
    _apply(book, NOWS[0], [(*k, *v) for k, v in model.items()])
    _check(book, model, NOWS[0], spec)
    for j, (rows, now_i) in enumerate(batches):
        quotes = [(EXPIRIES[e], k, c, b, b + spread) for e, k, c, b, spread in rows]
        _apply(book, NOWS[0] + j + 1, quotes)        # one timestamp per batch: the later row wins
        for e, k, c, b, a in quotes:
            model[(e, k, c)] = (b, a)
        _check(book, model, NOWS[now_i], spec)
    # settled expiries leave the book; the index at a later time does not need them
    now = NOWS[expire_at]
    book.expire(now)
    model = {k: v for k, v in model.items() if k[0] > now}
    _check(book, model, now, spec)


# ----------------------------------------------------------------------------- the term rule


def _spx_listing(first: dt.date, last: dt.date) -> list[int]:
    """Every VIX-relevant SPX expiration between two dates: a PM weekly each Friday, the AM
    standard series (and its PM twin) on third Fridays, moved to the Thursday when the Friday is
    an exchange holiday."""
    out = []
    day = first + dt.timedelta(days=(4 - first.weekday()) % 7)
    while day <= last:
        d = day - dt.timedelta(days=1) if is_friday_holiday(day) else day
        out.append(ny_ts_ns(d.year, d.month, d.day, 16))
        if 15 <= day.day <= 21:
            out.append(ny_ts_ns(d.year, d.month, d.day, 9, 30))
        day += dt.timedelta(weeks=1)
    return out


LISTING = _spx_listing(dt.date(2016, 1, 1), dt.date(2027, 3, 1))
LISTING_MIN = {e: local_minutes(e) for e in LISTING}
LISTING_OK = eligible_expiries(LISTING)


@settings(max_examples=300, deadline=None)
@given(day=st.dates(dt.date(2016, 1, 1), dt.date(2026, 12, 31)),
       minute=st.integers(0, 24 * 60 - 1), nine_day=st.booleans())
def test_a_complete_listing_always_brackets_the_target(day, minute, nine_day) -> None:
    """With a full listing (holiday weeks included) every day and every time of day has a near
    and a next term a week apart, within the calendar-day windows (core/vix.py docstring)."""
    spec = VIX9D if nine_day else VIX
    now = local_minutes(ny_ts_ns(day.year, day.month, day.day, minute // 60, minute % 60))
    near, nxt = select_terms(LISTING_MIN, LISTING_OK, now, spec)
    assert near is not None and nxt is not None, (day, minute)
    today = math.floor(now / 1440)
    dn, dx = (selection_day(LISTING_MIN[e]) - today for e in (near, nxt))
    assert spec.min_days < dn <= spec.target_days < dx <= spec.max_days
    assert dx - dn == 7
    # the same date at another time of day selects the same terms (the roll is by day)
    assert select_terms(LISTING_MIN, LISTING_OK, today * 1440 + 1439.5, spec) == (near, nxt)


@settings(max_examples=100, deadline=None)
@given(start=st.dates(dt.date(2016, 1, 1), dt.date(2026, 12, 31)),
       steps=st.lists(st.floats(0.0, 3 * 1440.0), min_size=1, max_size=40), nine_day=st.booleans())
def test_term_picks_kept_per_calendar_equal_a_fresh_selection(start, steps, nine_day) -> None:
    """``select_terms`` keeps its picks per calendar (by the first expiry after now and the day):
    along a clock that moves by up to three days at a time (through settlements, across days), the
    calendar read again and again selects what a fresh copy of it selects."""
    spec = VIX9D if nine_day else VIX
    now = local_minutes(ny_ts_ns(start.year, start.month, start.day, 9, 30))
    for dm in steps:
        now += dm
        fresh = select_terms(dict(LISTING_MIN), dict(LISTING_OK), now, spec)
        assert select_terms(LISTING_MIN, LISTING_OK, now, spec) == fresh, now
