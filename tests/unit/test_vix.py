"""VIX on real SPX chains vs Cboe's published closes; term selection; calendar rules.

Snapshot time: 16:15 ET on the trade date (SPX options stop trading at 16:15 and Cboe's VIX close
is the value at that time). Rate: a constant per date, the 1-month T-bill yield of that day rounded
(documented in VALIDATION.md (section c)); the index moves by ~0.01 point per 1% of rate here.

Tolerance: 0.10 vol point for the two files holding the regular-session closing quotes (taken
16:31 ET and on the Sunday after): what is left is Cboe's quote filtering and rate spline, worth a
few hundredths. 0.50 point for 2025-01-06, whose files were taken at 20:48/21:26 ET, inside the
Global Trading Hours session (opens 20:15 ET), so they hold overnight quotes, not the 16:15 ones.
Measured differences are printed (run pytest with -s) and tabulated in VALIDATION.md (section c).
The live path (``ChainBook.vix``) is compared with ``vix_batch`` in tests/unit/test_chain_real.py
and tests/property/test_vix_props.py.

Below the real-chain tests: the one term-selection rule (calendar days, 23/30/37) at its edges and
in holiday weeks, and the open-wing flag, bound and refusal, on synthetic Black-Scholes chains run
through both paths. The same on the real chains, with zero-bid strikes removed, is in
tests/unit/test_vix_real.py.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from conftest import SHARED_DATA, require_shared_data

from streamer.cboe_csv import combine, ny_ts_ns, read_quotedata
from streamer.core import bs
from streamer.core.chain import ChainBook, ChainConfig
from streamer.core.vix import (VIX, VIX9D, eligible_expiries, is_friday_holiday, local_minutes,
                               selection_day, vix_batch)
from streamer.history import read_daily

DATA = SHARED_DATA
CHAINS = require_shared_data(DATA / "option_chains")

# date -> (files, 1-month T-bill rate used, tolerance in vol points)
CASES = {
    "2023-09-14": (["spx_quotedata_2023-09-14_close.csv"], 0.0555, 0.10),
    "2024-01-05": (["spx_quotedata_2024-01-05_close.csv"], 0.0550, 0.10),
    "2025-01-06": (["spx_quotedata_2025-01-06_close_janexp.csv",
                    "spx_quotedata_2025-01-06_close_febexp.csv"], 0.0430, 0.50),
}


def _snapshot(day: str):
    files, rate, _ = CASES[day]
    y, m, d = map(int, day.split("-"))
    snap = combine([read_quotedata(CHAINS / f) for f in files], asof_ts_ns=ny_ts_ns(y, m, d, 16, 15))
    return snap, rate


@pytest.mark.parametrize("day", sorted(CASES))
@pytest.mark.parametrize("spec,file", [(VIX, "vix_daily_ohlc_1990-2026.csv"),
                                       (VIX9D, "cboe_VIX9D_History.csv")], ids=["VIX", "VIX9D"])
def test_reproduces_cboe_close(day: str, spec, file: str) -> None:
    snap, rate = _snapshot(day)
    official = read_daily(DATA / file).as_dict()[day]
    got = vix_batch(snap.expiry_ts_ns, snap.strike, snap.right, snap.bid, snap.ask,
                    snap.asof_ts_ns, rate, spec)
    assert got.ok, got.reason
    print(f"\n{spec.name} {day}: ours {got.value:.4f} Cboe {official:.2f} "
          f"diff {got.value - official:+.4f} (near {got.near.n_strikes} / next "
          f"{got.next.n_strikes} strikes, F {got.near.forward:.2f} / {got.next.forward:.2f})")
    assert abs(got.value - official) <= CASES[day][2]


def test_terms_selected_per_white_paper() -> None:
    snap, rate = _snapshot("2023-09-14")
    v = vix_batch(snap.expiry_ts_ns, snap.strike, snap.right, snap.bid, snap.ask,
                  snap.asof_ts_ns, rate)
    # Near: weekly Fri 2023-10-13 16:00 (29 days); next: the *standard* AM series of Fri
    # 2023-10-20 at 09:30 (35.7 days), not the SPXW PM series of the same date.
    assert v.near.expiry_ts_ns == ny_ts_ns(2023, 10, 13, 16, 0)
    assert v.next.expiry_ts_ns == ny_ts_ns(2023, 10, 20, 9, 30)
    assert v.near.minutes == 29 * 1440 - 15
    assert 23 < v.near.minutes / 1440 <= 30 < v.next.minutes / 1440 < 37


def test_near_atm_subset_gives_nan_with_reason() -> None:
    snap = read_quotedata(CHAINS / "spx_quotedata_2024-11-08_close_nearATM_novexp.csv")
    now = ny_ts_ns(2024, 11, 8, 16, 15)
    args = (snap.expiry_ts_ns, snap.strike, snap.right, snap.bid, snap.ask)
    v = vix_batch(*args, now, 0.046)
    assert math.isnan(v.value) and v.reason == "no_bracketing_expiries"  # last expiry Nov 29
    v9 = vix_batch(*args, now, 0.046, VIX9D)
    assert math.isnan(v9.value) and v9.reason == "strip_truncated"  # strikes 5950-6060 only
    assert vix_batch(*args, now, 0.046, VIX9D, require_wings=False).ok   # truncated but computable


def test_calendar_rules() -> None:
    assert is_friday_holiday(dt.date(2024, 3, 29)) and not is_friday_holiday(dt.date(2024, 3, 22))
    thu = ny_ts_ns(2024, 3, 28, 16)  # Thursday before Good Friday: eligible weekly
    wed = ny_ts_ns(2024, 3, 27, 16)
    am = ny_ts_ns(2024, 4, 19, 9, 30)
    pm_same_day = ny_ts_ns(2024, 4, 19, 16)
    el = eligible_expiries([thu, wed, am, pm_same_day])
    assert el == {thu: True, wed: False, am: True, pm_same_day: False}


# ----------------------------------------------------------------------------- one term rule, both paths
# Synthetic chains (Black-Scholes at a skewed vol, 0.05 ticks, zero bids below 0.10) are enough to
# pin the term selection and the wing logic; the real chains are in tests/unit/test_vix_real.py.

SPOT, RATE = 4700.0, 0.05
STRIKES = np.arange(3000.0, 6000.0 + 1, 25.0)


def _chain(expiries: list[int], now: int) -> tuple[list, ...]:
    """Flat rows (expiry, strike, right, bid, ask) of a plausible SPX chain at ``now``."""
    rows: list[tuple] = []
    for e in expiries:
        t = (e - now) / 1e9 / 86400 / 365
        f = SPOT * math.exp(RATE * t)
        vol = 0.15 + 0.25 * np.maximum(0.0, np.log(f / STRIKES))        # put skew
        for right in ("C", "P"):
            p = bs.price(SPOT, STRIKES, t, RATE, 0.0, vol, right == "C")
            bid = np.where(p >= 0.10, np.floor((p - 0.05) / 0.05) * 0.05, 0.0)
            ask = np.maximum(bid + 0.10, 0.05)
            rows += [(e, k, right, b, a) for k, b, a in zip(STRIKES, bid, ask)]
    return tuple(list(c) for c in zip(*rows))


def _both(rows: tuple[list, ...], now: int, spec=VIX, require_wings: bool = True):
    """vix_batch and ChainBook.vix on the same rows: they must agree (one rule, one strip)."""
    ref = vix_batch(*rows, now, RATE, spec, require_wings)
    book = ChainBook(SPOT, now, ChainConfig(rate=RATE))
    e, k, r, b, a = rows
    book.apply_quotes(now, np.array(e, dtype=np.int64), np.array(k), np.array(r) == "C",
                      np.array(b), np.array(a))
    got = book.vix(now, spec, require_wings=require_wings)
    assert (got.reason, got.wing_truncated) == (ref.reason, ref.wing_truncated)
    assert math.isclose(got.wing_bound, ref.wing_bound, rel_tol=1e-12, abs_tol=0.0)
    if ref.ok:
        assert math.isclose(got.value, ref.value, rel_tol=1e-12)
        assert (got.near.expiry_ts_ns, got.next.expiry_ts_ns) == (ref.near.expiry_ts_ns,
                                                                  ref.next.expiry_ts_ns)
    return ref


def _fridays(first: dt.date, n: int) -> list[dt.date]:
    return [first + dt.timedelta(weeks=i) for i in range(n)]


def _listing(days: list[dt.date], standard: set[dt.date]) -> list[int]:
    """PM weeklies on ``days``; on a standard date also the AM series (the PM twin is kept: the
    rule must drop it)."""
    out = [ny_ts_ns(d.year, d.month, d.day, 16) for d in days]
    out += [ny_ts_ns(d.year, d.month, d.day, 9, 30) for d in standard]
    return sorted(out)


JAN_FEB_2024 = _listing(_fridays(dt.date(2024, 1, 12), 10),
                        {dt.date(2024, 1, 19), dt.date(2024, 2, 16), dt.date(2024, 3, 15)})


@pytest.mark.parametrize("now,near,nxt", [
    # Tuesday: 24 and 31 calendar days
    ((2024, 1, 9, 16, 15), (2024, 2, 2, 16), (2024, 2, 9, 16)),
    # Wednesday at 16:00 (the known divergence): 30 and 37; the Friday at 23 days is out
    ((2024, 1, 10, 16, 0), (2024, 2, 9, 16), (2024, 2, 16, 9, 30)),
    # Wednesday morning: the same terms (the roll is by day), both beyond 30 days in minutes
    ((2024, 1, 10, 9, 0), (2024, 2, 9, 16), (2024, 2, 16, 9, 30)),
    # Wednesday 16:00 with PM Fridays at exactly 23.0, 30.0 and 37.0 days of minutes
    ((2024, 1, 24, 16, 0), (2024, 2, 23, 16), (2024, 3, 1, 16)),
    # Wednesday 16:00 with the standard AM series at 30 calendar days (29.73 days of minutes)
    ((2024, 1, 17, 16, 0), (2024, 2, 16, 9, 30), (2024, 2, 23, 16)),
    # Thursday: 29 and 36; the Friday at 22 days is out
    ((2024, 1, 11, 16, 15), (2024, 2, 9, 16), (2024, 2, 16, 9, 30)),
    # Friday after the close: 28 and 35
    ((2024, 1, 12, 16, 15), (2024, 2, 9, 16), (2024, 2, 16, 9, 30)),
])
def test_terms_at_the_23_and_37_day_edges(now, near, nxt) -> None:
    now_ns = ny_ts_ns(*now)
    v = _both(_chain(JAN_FEB_2024, now_ns), now_ns)
    assert v.ok, v.reason
    assert (v.near.expiry_ts_ns, v.next.expiry_ts_ns) == (ny_ts_ns(*near), ny_ts_ns(*nxt))
    assert not v.wing_truncated and v.wing_bound == 0.0
    assert 12.0 < v.value < 25.0          # a 15% ATM vol with skew; extrapolated on Wed 09:00


def test_no_bracket_without_a_next_term_in_37_days() -> None:
    now = ny_ts_ns(2024, 1, 10, 16)
    gone = {ny_ts_ns(2024, 2, 16, 9, 30), ny_ts_ns(2024, 2, 16, 16)}     # the 37-day Friday
    listing = [e for e in JAN_FEB_2024 if e not in gone]
    assert _both(_chain(listing, now), now).reason == "no_bracketing_expiries"  # 44 days is too far
    # without its AM series the PM weekly of a standard date is used
    listing = [e for e in JAN_FEB_2024 if e != ny_ts_ns(2024, 2, 16, 9, 30)]
    assert _both(_chain(listing, now), now).next.expiry_ts_ns == ny_ts_ns(2024, 2, 16, 16)


GOOD_FRIDAY_2024 = _listing([dt.date(2024, 3, 22), dt.date(2024, 3, 28)]
                            + _fridays(dt.date(2024, 4, 5), 3), {dt.date(2024, 4, 19)})
# 2025: Good Friday is the third Friday of April; the standard AM series settles Thu 04-17 09:30
GOOD_FRIDAY_2025 = sorted(_listing(_fridays(dt.date(2025, 4, 4), 2) + [dt.date(2025, 4, 17)]
                                   + _fridays(dt.date(2025, 4, 25), 2), set())
                          + [ny_ts_ns(2025, 4, 17, 9, 30)])


@pytest.mark.parametrize("listing,now,near,nxt", [
    # Tue 23 calendar days before the holiday Thursday: it stands for its Friday (24) -> near term
    (GOOD_FRIDAY_2024, (2024, 3, 5, 16, 15), (2024, 3, 28, 16), (2024, 4, 5, 16)),
    # Wednesday: the roll, 30 and 37
    (GOOD_FRIDAY_2024, (2024, 3, 6, 16, 15), (2024, 4, 5, 16), (2024, 4, 12, 16)),
    # Monday: 24 (25 as a Friday) and 32
    (GOOD_FRIDAY_2024, (2024, 3, 4, 16, 15), (2024, 3, 28, 16), (2024, 4, 5, 16)),
    # Wednesday 30 days before the moved standard series (AM Thursday; the PM daily is not used)
    (GOOD_FRIDAY_2025, (2025, 3, 19, 16, 15), (2025, 4, 17, 9, 30), (2025, 4, 25, 16)),
    # Tuesday: Fri 04-11 at 24 days, the Thursday counts 31
    (GOOD_FRIDAY_2025, (2025, 3, 18, 16, 15), (2025, 4, 11, 16), (2025, 4, 17, 9, 30)),
])
def test_terms_in_holiday_weeks(listing, now, near, nxt) -> None:
    now_ns = ny_ts_ns(*now)
    v = _both(_chain(listing, now_ns), now_ns)
    assert v.ok, v.reason
    assert (v.near.expiry_ts_ns, v.next.expiry_ts_ns) == (ny_ts_ns(*near), ny_ts_ns(*nxt))


def test_holiday_thursdays_in_the_calendar() -> None:
    thu_juneteenth = ny_ts_ns(2026, 6, 18, 16)      # Fri 2026-06-19 is Juneteenth
    thu_july3 = ny_ts_ns(2026, 7, 2, 16)            # Sat Jul 4 observed on Fri Jul 3
    thu_plain = ny_ts_ns(2026, 6, 25, 16)
    assert eligible_expiries([thu_juneteenth, thu_july3, thu_plain]) == {
        thu_juneteenth: True, thu_july3: True, thu_plain: False}
    assert selection_day(local_minutes(thu_juneteenth)) == dt.date(2026, 6, 19).toordinal() \
        - dt.date(1970, 1, 1).toordinal()


# ----------------------------------------------------------------------------- open wings

NOW = ny_ts_ns(2024, 1, 5, 16, 15)


def _drop(rows: tuple[list, ...], keep) -> tuple[list, ...]:
    m = [keep(e, k, r, b) for e, k, r, b in zip(*rows[:4])]
    return tuple([x for x, ok in zip(c, m) if ok] for c in rows)


def _zero_bid_strikes_removed(rows: tuple[list, ...]) -> tuple[list, ...]:
    """The vendor view: an (expiry, strike) row is not published when either side bids zero."""
    zero = {(e, k) for e, k, b in zip(rows[0], rows[1], rows[3]) if not b > 0}
    return _drop(rows, lambda e, k, r, b: (e, k) not in zero)


def test_zero_bid_strikes_removed_gives_the_same_index_flagged_with_its_bound() -> None:
    rows = _chain(JAN_FEB_2024, NOW)
    full = _both(rows, NOW)
    assert full.ok and not full.wing_truncated and full.wing_bound == 0.0
    cut = _both(_zero_bid_strikes_removed(rows), NOW)
    assert cut.ok and cut.wing_truncated and cut.near.truncated and cut.next.truncated
    # Cboe skips zero bids and stops at two of them: nothing it used was removed
    assert cut.value == pytest.approx(full.value, rel=1e-12)
    assert 0.0 < cut.wing_bound < VIX.max_wing_share * cut.value
    # the bound from the strip's end quotes, by hand: (2/T) e^{RT} (P_lo/K_lo + C_hi/K_hi)
    for term in (cut.near, cut.next):
        e, k, r, b, a = _drop(_zero_bid_strikes_removed(rows),
                              lambda e, k, r, b: e == term.expiry_ts_ns)
        puts = [(kk, (bb + aa) / 2) for kk, rr, bb, aa in zip(k, r, b, a) if rr == "P" and kk < term.k0]
        calls = [(kk, (bb + aa) / 2) for kk, rr, bb, aa in zip(k, r, b, a) if rr == "C" and kk > term.k0]
        (kp, pp), (kc, cc) = min(puts), max(calls)
        want = 2 / term.t_years * math.exp(term.rate * term.t_years) * (pp / kp + cc / kc)
        assert term.wing_bound == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("half_width", [0.15, 0.10, 0.06, 0.03])
def test_range_cut_chain_error_stays_inside_the_bound_and_is_refused_when_material(
        half_width: float) -> None:
    rows = _chain(JAN_FEB_2024, NOW)
    full = _both(rows, NOW)
    sub = _drop(rows, lambda e, k, r, b: abs(k / SPOT - 1.0) <= half_width)
    free = _both(sub, NOW, require_wings=False)
    assert free.ok and free.wing_truncated
    assert 0.0 <= full.value - free.value <= free.wing_bound     # the missing wing only adds
    strict = _both(sub, NOW)
    material = free.wing_bound > VIX.max_wing_share * free.value
    assert strict.reason == ("strip_truncated" if material else "ok")
    if half_width <= 0.03:
        assert material                                          # a near-the-money subset


def _fields(d) -> tuple:
    """A TermDetail (or reason code) as comparable bits: floats by their IEEE pattern."""
    if isinstance(d, str):
        return (d,)
    return tuple(np.float64(v).view(np.int64).item() if isinstance(v, float) else v
                 for v in (getattr(d, f) for f in d.__slots__))


def test_term_read_after_in_place_quote_updates_equals_a_fresh_term_bit_for_bit() -> None:
    """``ChainBook`` writes quotes into a cached :class:`Term` and reads it every segment;
    ``term_detail`` then updates only the strikes that changed (``_StripMemo``) unless a bid
    crossed zero, K0 moved or many quotes changed. After every random step (a few price moves;
    bids to zero and back; NaN, negative and infinite asks; forward shifts that move K* and K0;
    the clock) the live term must give the same bits as a term built from scratch, and a term
    built from separate arrays (no quote block) the same again; both paths must have run, the
    update also after a bid crossed zero (away from the strip's strikes and cuts)."""
    from streamer.core.vix import Term, term_detail, term_from_quotes

    rng = np.random.default_rng(7)
    expiry = ny_ts_ns(2024, 2, 16, 9, 30)
    now_min = local_minutes(NOW)
    e, k, r, b, a = (np.array(c) for c in _chain([expiry], NOW))
    call = r == "C"
    live = term_from_quotes(expiry, k, call, b, a)
    quotes = [live.call_bid, live.call_ask, live.put_bid, live.put_ask]
    n = live.strikes.shape[0]
    updated = full = flipped = 0
    signs = np.stack(quotes[::2]) > 0                     # the bids
    for step in range(400):
        kind, j = rng.random(), rng.integers(0, n, int(rng.choice([1, 3, 8, 40])))
        side = 2 * int(rng.integers(0, 2))                  # 0: calls, 2: puts
        bid, ask = quotes[side], quotes[side + 1]
        if kind < 0.6:                                      # price moves, zero bids stay zero
            d = np.round(rng.uniform(-0.3, 0.3, j.shape[0]) * 20) / 20
            bid[j] = np.where(bid[j] > 0, np.maximum(bid[j] + d, 0.05), bid[j])
            ask[j] += d
        elif kind < 0.75:                                   # a bid to zero or back
            bid[j] = rng.choice([0.0, 0.05])
        elif kind < 0.8:                                    # bad asks
            ask[j[:1]] = rng.choice([np.nan, -1.0, np.inf])
        elif kind < 0.9:                                    # the forward moves
            dd = rng.uniform(-30.0, 30.0)
            for q, s in ((quotes[0], 1.0), (quotes[2], -1.0)):
                q[:] = np.where(q > 0, np.maximum(q + s * dd, 0.05), q)
            quotes[1][:] += dd
            quotes[3][:] -= dd
        now_min += float(rng.choice([0.0, 1 / 6000, 30.0]))
        before = live._memo
        got = _fields(term_detail(live, now_min, RATE))
        if live._memo is not None:                        # the kept exact sum is fsum's
            assert got[9] == np.float64(math.fsum(live._memo.x)).view(np.int64).item(), step
        now_signs = np.stack(quotes[::2]) > 0
        if before is not None and live._memo is before:
            updated += 1
            flipped += bool((now_signs != signs).any())
        elif live._memo is not None:
            full += 1
        signs = now_signs
        kk = np.concatenate((live.strikes, live.strikes))
        ref = term_from_quotes(expiry, kk, np.r_[np.ones(n, bool), np.zeros(n, bool)],
                               np.concatenate((quotes[0], quotes[2])),
                               np.concatenate((quotes[1], quotes[3])))
        assert got == _fields(term_detail(ref, now_min, RATE)), step
        loose = Term(expiry, live.minutes, live.strikes, *(q.copy() for q in quotes))
        assert loose.quotes is None and got == _fields(term_detail(loose, now_min, RATE)), step
    assert updated > 100 and full > 20 and flipped > 10


def _live_term():
    """One expiry of the test chain as a live term, with the strikes and rights of a from-scratch copy of it
    (calls then puts): (expiry, clock in local minutes, term, strikes, is_call)."""
    from streamer.core.vix import term_from_quotes

    expiry = ny_ts_ns(2024, 2, 16, 9, 30)
    e, k, r, b, a = (np.array(c) for c in _chain([expiry], NOW))
    live = term_from_quotes(expiry, k, r == "C", b, a)
    n = live.strikes.shape[0]
    return (expiry, local_minutes(NOW), live, np.concatenate((live.strikes, live.strikes)),
            np.r_[np.ones(n, bool), np.zeros(n, bool)])


def test_term_read_after_single_bid_flips_equals_a_fresh_term_bit_for_bit() -> None:
    """One bid at a time to 0, 0.05 or 0.10 anywhere on the chain (inside the strip, at its cut
    pairs, beyond them, at K0): an update where the strip cannot change, a full evaluation where
    it can; either way the bits of a term built from scratch."""
    from streamer.core.vix import term_detail, term_from_quotes

    rng = np.random.default_rng(11)
    expiry, now_min, live, kk, call = _live_term()
    n = live.strikes.shape[0]
    kept = 0
    for step in range(1500):
        bid = live.call_bid if rng.random() < 0.5 else live.put_bid
        bid[rng.integers(0, n)] = rng.choice([0.0, 0.05, 0.10])
        now_min += 1 / 6000
        before = live._memo
        got = _fields(term_detail(live, now_min, RATE))
        kept += before is not None and live._memo is before
        ref = term_from_quotes(expiry, kk, call, np.concatenate((live.call_bid, live.put_bid)),
                               np.concatenate((live.call_ask, live.put_ask)))
        assert got == _fields(term_detail(ref, now_min, RATE)), step
    assert 300 < kept < 1500


def test_term_reads_between_few_or_no_quote_changes_equal_a_fresh_term_bit_for_bit() -> None:
    """Reads every 10 ms of the clock with nothing changed, or one quote changed off K* (its mids
    are then reused) or outside the strip (the strip's sum is then reused), now and then a move of
    K*'s own quotes: the bits of a term built from scratch each time, and those reuse paths taken
    (the memo kept, its K* mids and its sum reused)."""
    from streamer.core.vix import term_detail, term_from_quotes

    rng = np.random.default_rng(5)
    expiry, now_min, live, kk, call = _live_term()
    n = live.strikes.shape[0]
    term_detail(live, now_min, RATE)
    same_sum = same_mids = 0
    for step in range(600):
        memo = live._memo
        kstar = memo.kmid[0]
        u = rng.random()
        if u < 0.3:                                      # nothing changed
            pass
        elif u < 0.55:                                   # a quote beyond the strip
            j = int(rng.choice([i for i in range(n) if not memo.lo <= i < memo.hi] or [0]))
            live.call_ask[j] += 0.05 if j > memo.k0 else 0.0
            live.put_ask[j] += 0.05 if j < memo.k0 else 0.0
        elif u < 0.9:                                    # a quote in the strip, off K*
            j = int(rng.integers(memo.lo, memo.hi))
            if j != kstar:
                q = live.call_ask if j > memo.k0 else live.put_ask
                q[j] = max(q[j] + rng.choice([-0.05, 0.05]), 0.05)
        else:                                            # K*'s own quotes
            live.call_ask[kstar] += 0.05
            live.put_ask[kstar] += 0.05
        now_min += 1 / 6000
        s_before = memo.s
        got = _fields(term_detail(live, now_min, RATE))
        if live._memo is memo:
            same_sum += s_before is not None and memo.s is s_before
            same_mids += memo.kmid[0] == kstar
        ref = term_from_quotes(expiry, kk, call, np.concatenate((live.call_bid, live.put_bid)),
                               np.concatenate((live.call_ask, live.put_ask)))
        assert got == _fields(term_detail(ref, now_min, RATE)), step
    assert same_sum > 200 and same_mids > 400


def test_a_refused_term_read_again_equals_a_fresh_term() -> None:
    """A term that cannot be evaluated (no forward, forward below the strikes, too few strikes)
    keeps its reason while its quotes stay and K0 does not move (``_Refusal``): on a five-strike
    term whose bids and asks jump among a few levels and whose clock moves by minutes to days
    under a steep rate curve (the forward, hence K0, moves with the clock alone), every read gives
    what a term built from scratch gives, and a kept refusal has answered many of them."""
    from streamer.core.vix import term_detail, term_from_quotes

    rng = np.random.default_rng(3)
    expiry = ny_ts_ns(2024, 2, 16, 9, 30)
    k = np.array([4690.0, 4695.0, 4700.0, 4705.0, 4710.0])
    kk, call = np.r_[k, k], np.r_[np.ones(5, bool), np.zeros(5, bool)]
    bid = rng.choice([0.0, 0.05, 1.0, 5.0], 10)
    ask = bid + 0.5
    live = term_from_quotes(expiry, kk, call, bid, ask)
    now_min = local_minutes(NOW)

    def rate(t: float) -> float:
        return 300.0 * t

    reasons: set[str] = set()
    kept = 0
    for step in range(1500):
        u = rng.random()
        if u < 0.02:                                      # no put bid at all
            live.put_bid[:] = 0.0
        elif u < 0.12:
            j = int(rng.integers(0, 5))
            q = live.call_bid if rng.random() < 0.5 else live.put_bid
            q[j] = rng.choice([0.0, 0.05, 1.0, 5.0, 30.0])
            (live.call_ask if q is live.call_bid else live.put_ask)[j] = q[j] + 0.5
        now_min += float(rng.choice([1 / 6000, 30.0, 1440.0]))
        before = live._refused
        got = _fields(term_detail(live, now_min, rate))
        if len(got) == 1:
            reasons.add(got[0])
            kept += before is not None and live._refused is before
        ref = term_from_quotes(expiry, kk, call, np.concatenate((live.call_bid, live.put_bid)),
                               np.concatenate((live.call_ask, live.put_ask)))
        assert got == _fields(term_detail(ref, now_min, rate)), step
        if now_min > local_minutes(expiry) - 2 * 1440:
            now_min = local_minutes(NOW)
    assert reasons == {"no_forward", "forward_below_strikes", "too_few_strikes"}, reasons
    assert kept > 100, kept
    # the clock alone moves K0 across a refusal: one call/put pair bid (K* = 4700, C - P = +-2) on
    # seven strikes; e^{RT} falls from ~9.5 as the days pass, so F = K* + e^{RT}(C - P) walks
    # from K0 = 4715 (too few strikes) to 4710 (a strip), or from below the strikes to 4690
    k = 4690.0 + 5.0 * np.arange(7)
    kk, call = np.r_[k, k], np.r_[np.ones(7, bool), np.zeros(7, bool)]

    def steep(t: float) -> float:
        return 170.0 * t

    for cp, first in ((2.0, "too_few_strikes"), (-2.0, "forward_below_strikes")):
        bid = np.zeros(14)
        bid[[2, 9]] = (5.0, 5.0 - cp)
        live = term_from_quotes(expiry, kk, call, bid, bid + 0.5)
        now_min = local_minutes(NOW)
        seen = []
        for step in range(40):
            got = _fields(term_detail(live, now_min, steep))
            ref = term_from_quotes(expiry, kk, call, bid, bid + 0.5)
            assert got == _fields(term_detail(ref, now_min, steep)), (cp, step)
            seen.append(got[0] if len(got) == 1 else "value")
            now_min += 360.0
        assert seen[0] == first and seen[-1] == "value", seen


def test_the_strip_sum_is_fsum_bit_for_bit() -> None:
    """``_strip_sum`` (an exact integer sum, made by binary exponent and then kept by differences)
    equals ``math.fsum``: random summands over many exponents, negative and zero ones, subnormal and
    huge ones, NaN and inf (fsum's own result), strips longer than the int64 grouping allows, and
    after replacing summands one at a time as an update does."""
    from streamer.core.vix import _fixed, _strip_sum

    class Memo:
        def __init__(self, x):
            self.x, self.exact, self.fsums = x, None, 1

    rng = np.random.default_rng(9)
    bits = lambda v: np.float64(v).view(np.int64).item()   # noqa: E731
    for trial in range(400):
        n = int(rng.choice([1, 2, 30, 300, 700]))
        x = (rng.standard_normal(n) * 10.0 ** rng.integers(-12, 6, n)).tolist()
        kind = rng.random()
        if kind < 0.1:
            x[int(rng.integers(0, n))] = float(rng.choice([5e-324, 1e-310, 0.0, -0.0, 1e300]))
        elif kind < 0.15:
            x[int(rng.integers(0, n))] = float(rng.choice([math.nan, math.inf]))
        memo = Memo(x)
        assert bits(_strip_sum(memo)) == bits(math.fsum(x)), trial
        for _ in range(5):                       # an update's replacements
            i, v = int(rng.integers(0, n)), float(rng.standard_normal() * 10.0 ** rng.integers(-12, 6))
            if memo.exact is not None:
                a, b = _fixed(x[i]), _fixed(v)
                memo.exact = None if a is None or b is None else memo.exact - a + b
            x[i] = v
            assert bits(_strip_sum(memo)) == bits(math.fsum(x)), trial
