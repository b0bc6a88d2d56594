"""ChainBook: IVs against the parity forward, exact zeros, expiry roll-off, slot reuse, ATM IV."""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core import bs
from streamer.core import iv as ivsolve
from streamer.core.chain import NS_PER_DAY, NS_PER_YEAR, ChainBook, ChainConfig

NY = ZoneInfo("America/New_York")
CFG = ChainConfig(rate=0.05, div_yield=0.013)
R, Q = CFG.rate, CFG.div_yield


def ny(*a) -> int:
    return int(dt.datetime(*a, tzinfo=NY).timestamp()) * 10**9


T0 = ny(2024, 1, 5, 10, 0)
ZDTE, NEXT_DAY, MONTH = ny(2024, 1, 5, 16, 0), ny(2024, 1, 8, 16, 0), ny(2024, 2, 16, 9, 30)
STRIKES = np.arange(90.0, 111.0, 2.5)


def priced(expiry: int, spot: float, vol, ts: int = T0, calls=(True, False)):
    """Columns (ts, expiry, strike, is_call, bid, ask) of BSM mids ± 0.01 at ``spot``."""
    k, c = (a.ravel() for a in np.meshgrid(STRIKES, np.array(calls, dtype=bool), indexing="ij"))
    t = (expiry - ts) / NS_PER_YEAR
    p = bs.price(spot, k, t, R, Q, vol, c)
    n = k.size
    return (np.full(n, ts, dtype=np.int64), np.full(n, expiry, dtype=np.int64), k, c, p - 0.01,
            p + 0.01)


def with_oi(book: ChainBook, cols, oi: float = 1000.0) -> None:
    book.apply_open_interest(cols[1], cols[2], cols[3], np.full(cols[1].size, oi))


def test_ivs_use_parity_forward_not_a_stale_spot():
    book = ChainBook(90.0, T0, CFG)           # last spot print 90, quotes are at 100
    cols = priced(MONTH, 100.0, 0.2)
    assert book.apply_quotes(*cols) == cols[1].size
    for k, c in zip(cols[2].tolist(), cols[3].tolist()):
        assert abs(book.iv_of((MONTH, k, c)) - 0.2) < 2e-4   # ±0.01 quote around the model price
    # a batch of calls only: the expiry's stored forward is used
    calls = priced(MONTH, 100.0, 0.3, ts=T0 + 10**9, calls=(True,))
    book.apply_quotes(*calls)
    for k in STRIKES.tolist():
        assert abs(book.iv_of((MONTH, k, True)) - 0.3) < 2e-4
    # an expiry with no call/put pair anywhere falls back to the live spot
    lone = priced(NEXT_DAY, 100.0, 0.25, calls=(True,))
    book.apply_quotes(*lone)
    t = (NEXT_DAY - T0) / NS_PER_YEAR
    mid = np.where(lone[4] > 0.0, 0.5 * (lone[4] + lone[5]), np.nan)   # no bid: no mid
    ref, _ = ivsolve.implied_vol_batch(mid, 90.0, lone[2], t, R, Q, True)
    assert np.isnan(ref).sum() < ref.size
    got = np.array([book.iv_of((NEXT_DAY, k, True)) for k in lone[2].tolist()])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got[~np.isnan(got)], ref[~np.isnan(ref)], rtol=1e-12)


def test_forward_and_atm_iv_follow_the_documented_definitions():
    book = ChainBook(100.0, T0, CFG)
    for e, vol in ((NEXT_DAY, 0.4), (MONTH, 0.2)):
        book.apply_quotes(*priced(e, 100.0, vol))
    t = (MONTH - T0) / NS_PER_YEAR
    f = book.forward(MONTH, T0)
    assert f.strike == 100.0 and math.isclose(f.forward, 100.0 * math.exp((R - Q) * t), rel_tol=1e-9)
    # NEXT_DAY is under 7 days out: ATM IV is the month's, mean of call and put IV at K*
    want = 0.5 * (book.iv_of((MONTH, 100.0, True)) + book.iv_of((MONTH, 100.0, False)))
    assert book.atm_iv(T0) == want and abs(want - 0.2) < 1e-4
    assert math.isnan(ChainBook(100.0, T0, CFG).atm_iv(T0))


def test_buckets_return_to_exact_zero_when_their_exposure_leaves():
    book = ChainBook(100.0, T0, CFG)
    rng = np.random.default_rng(3)
    cols = priced(MONTH, 100.0, 0.2)
    book.apply_quotes(*cols)
    n = cols[1].size
    for _ in range(5):                          # many revert-then-add updates of mixed size
        idx = rng.permutation(n)[: n // 2]
        book.apply_open_interest(cols[1][idx], cols[2][idx], cols[3][idx],
                                 rng.integers(1, 10**6, idx.size).astype(float))
    for half in (slice(0, n // 2), slice(n // 2, n)):   # OI to zero in two batches
        book.apply_open_interest(cols[1][half], cols[2][half], cols[3][half],
                                 np.zeros(cols[1][half].size))
    assert book.totals().as_tuple() == (0.0, 0.0, 0.0, 0.0)
    assert book.by_expiry(MONTH).as_tuple() == (0.0, 0.0, 0.0, 0.0)
    for k in STRIKES.tolist():
        assert book.by_strike(k).as_tuple() == (0.0, 0.0, 0.0, 0.0)
    assert book.walls() == (book.walls()[0],) * 3 and math.isnan(book.walls()[0])


def test_expiry_rolls_off_and_zero_dte_becomes_the_next_days():
    book = ChainBook(100.0, T0, CFG)
    for e in (ZDTE, NEXT_DAY, MONTH):
        cols = priced(e, 100.0, 0.2)
        book.apply_quotes(*cols)
        with_oi(book, cols)
    n0, size0 = len(book), int(book.to_state()["slot.used"].sum())
    zd = book.by_expiry(ZDTE)
    assert book.zero_dte() == zd and zd.gex_usd_per_pct != 0.0 and zd.charm_usd_per_day != 0.0
    assert book.next_rolloff() == (ZDTE, zd)
    before = book.totals()
    # 16:01 ET: the 0DTE settled; its exposure (still evaluated at 10:00) leaves every sum
    roll = book.expire(ZDTE + 60 * 10**9)
    assert roll.expiries == (ZDTE,) and roll.contracts == 2 * STRIKES.size
    assert roll.exposure == zd
    after = book.totals()
    rest = [book.by_expiry(e) for e in (NEXT_DAY, MONTH)]
    for j in range(4):
        gross = abs(before.as_tuple()[j]) + abs(zd.as_tuple()[j])
        assert abs(after.as_tuple()[j] - (before.as_tuple()[j] - zd.as_tuple()[j])) <= 1e-12 * gross
        assert abs(after.as_tuple()[j] - sum(r.as_tuple()[j] for r in rest)) <= 1e-12 * gross
    assert book.by_expiry(ZDTE).as_tuple() == (0.0,) * 4
    assert book.zero_dte().as_tuple() == (0.0,) * 4
    assert len(book) == n0 - roll.contracts and int(book.to_state()["slot.used"].sum()) < size0
    assert ZDTE not in book.expiries() and book.expire(ZDTE + 1).contracts == 0
    # next morning: after the reprice the Jan 8 expiry is the 0DTE
    book.reprice(100.0, ny(2024, 1, 8, 10, 0))
    assert book.zero_dte() == book.by_expiry(NEXT_DAY) and book.zero_dte().gex_usd_per_pct != 0.0
    assert book.next_rolloff()[0] == NEXT_DAY
    # freed slots are reused before the arrays grow
    hw = book.to_state()["hw"]
    book.apply_quotes(*priced(ny(2024, 1, 12, 16, 0), 100.0, 0.2, ts=ny(2024, 1, 8, 10, 0)))
    assert book.to_state()["hw"] == hw


def test_same_calls_give_identical_bits():
    def make() -> ChainBook:
        book = ChainBook(100.0, T0, CFG)
        rng = np.random.default_rng(5)
        for j in range(6):
            e = (NEXT_DAY, MONTH)[j % 2]
            cols = priced(e, 100.0 + j * 0.1, 0.2 + 0.01 * j, ts=T0 + j)
            book.apply_quotes(*cols)
            book.apply_open_interest(cols[1], cols[2], cols[3],
                                     rng.integers(0, 3000, cols[1].size).astype(float))
            book.on_spot(100.0 + 0.3 * j, T0 + j * 30 * 10**9)
        return book
    a, b = make().to_state(), make().to_state()
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].tobytes() == b[k].tobytes(), k
        else:
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k


def test_capacity_doubles_and_keys_survive_growth():
    book = ChainBook(100.0, T0, CFG, capacity=4)
    cols = []
    for d in (30, 60, 90):
        c = priced(T0 + d * NS_PER_DAY, 100.0, 0.2)
        book.apply_quotes(*c)
        cols.append(c)
    assert len(book) == 3 * 2 * STRIKES.size
    assert book.to_state()["slot.exp"].size == 64           # 4 → 8 → … → 64 ≥ 54
    for c in cols:
        assert not math.isnan(book.iv_of((int(c[1][0]), 100.0, True)))
