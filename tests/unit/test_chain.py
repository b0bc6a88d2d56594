"""ChainBook, the live chain: units and signs, positioning, stale quotes, IVs against the parity
forward, forward/ATM IV definitions, exact zeros, expiry roll-off, live reads between reprices,
determinism, capacity. Aggregates against ``exposures_batch`` after random batches:
tests/property/test_chain_props.py; real chains: tests/unit/test_chain_real.py."""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from state_helpers import bytes_equal_states

from streamer.core import bs
from streamer.core import iv as ivsolve
from streamer.core.chain import (NS_PER_DAY, NS_PER_YEAR, ChainBook, ChainConfig,
                                 forward_from_parity, gamma_on_grid)

NY = ZoneInfo("America/New_York")
CFG = ChainConfig(rate=0.05, div_yield=0.013)
R, Q = CFG.rate, CFG.div_yield


def ny(*a) -> int:
    return int(dt.datetime(*a, tzinfo=NY).timestamp()) * 10**9


T0 = ny(2024, 1, 5, 10, 0)
ZDTE, NEXT_DAY, MONTH = ny(2024, 1, 5, 16, 0), ny(2024, 1, 8, 16, 0), ny(2024, 2, 16, 9, 30)
STRIKES = np.arange(90.0, 111.0, 2.5)


def priced(expiry: int, spot: float, vol, ts: int = T0, calls=(True, False), strikes=STRIKES):
    """Columns (ts, expiry, strike, is_call, bid, ask) of BSM mids ± 0.01 at ``spot``."""
    k, c = (a.ravel() for a in np.meshgrid(strikes, np.array(calls, dtype=bool), indexing="ij"))
    t = (expiry - ts) / NS_PER_YEAR
    p = bs.price(spot, k, t, R, Q, vol, c)
    n = k.size
    return (np.full(n, ts, dtype=np.int64), np.full(n, expiry, dtype=np.int64), k, c, p - 0.01,
            p + 0.01)


def with_oi(book: ChainBook, cols, oi: float = 1000.0) -> None:
    book.apply_open_interest(cols[1], cols[2], cols[3], np.full(cols[1].size, oi))


def test_gamma_on_grid_matches_bs():
    grid = np.linspace(80.0, 120.0, 60)
    g = gamma_on_grid(grid, 100.0, 0.1, 0.05, 0.013, 0.25)
    ref = bs.greeks(grid, 100.0, 0.1, 0.05, 0.013, 0.25, True).gamma
    np.testing.assert_allclose(g, ref, rtol=1e-12)


def test_single_contracts_units_and_default_signs():
    s = 4700.0
    book = ChainBook(s, T0, CFG)
    call = priced(MONTH, s, 0.15, calls=(True,), strikes=np.array([4700.0]))
    put = priced(MONTH, s, 0.18, calls=(False,), strikes=np.array([4600.0]))
    for cols, oi in ((call, 1000.0), (put, 2000.0)):
        book.apply_quotes(*cols)
        with_oi(book, cols, oi)
    t = (MONTH - T0) / NS_PER_YEAR
    ivc, ivp = book.iv_of((MONTH, 4700.0, True)), book.iv_of((MONTH, 4600.0, False))
    assert abs(ivc - 0.15) < 1e-3 and abs(ivp - 0.18) < 1e-3     # ±0.01 around the model price
    gc = bs.greeks1(s, 4700.0, t, R, Q, ivc, True)
    gp = bs.greeks1(s, 4600.0, t, R, Q, ivp, False)
    c, p = book.by_strike(4700.0), book.by_strike(4600.0)
    assert math.isclose(c.gex_usd_per_pct, gc.gamma * 1000 * 100 * s * s * 0.01, rel_tol=1e-12)
    assert math.isclose(p.gex_usd_per_pct, -gp.gamma * 2000 * 100 * s * s * 0.01, rel_tol=1e-12)
    assert math.isclose(c.dex_usd, gc.delta * 1000 * 100 * s, rel_tol=1e-12)
    assert p.dex_usd > 0            # dealers short puts: short negative delta = long delta
    assert math.isclose(c.vanna_usd_per_vol_pt, gc.vanna * 1000 * 100 * s * 0.01, rel_tol=1e-12)
    assert math.isclose(p.charm_usd_per_day, -gp.charm * 2000 * 100 * s / 365, rel_tol=1e-12)
    assert book.walls()[:2] == (4700.0, 4600.0)
    tot = book.totals()
    for j in range(4):
        assert math.isclose(tot.as_tuple()[j], c.as_tuple()[j] + p.as_tuple()[j], rel_tol=1e-12)
    assert book.by_expiry(MONTH) == tot and book.zero_dte().as_tuple() == (0.0,) * 4


def test_positioning_overrides_the_default_sign():
    key = (MONTH, 100.0, "P")
    cols = priced(MONTH, 100.0, 0.2, calls=(False,), strikes=np.array([100.0]))
    plain, long_puts = ChainBook(100.0, T0, CFG), ChainBook(100.0, T0, CFG, positioning={key: 1.0})
    for book in (plain, long_puts):
        book.apply_quotes(*cols)
        with_oi(book, cols, 10.0)
    g = plain.totals().gex_usd_per_pct
    assert g < 0 and long_puts.totals().gex_usd_per_pct == -g
    assert long_puts.contract_arrays()[7].tolist() == [1.0]
    # a callback too, and a later per-contract override
    cb = ChainBook(100.0, T0, CFG, positioning=lambda k: 0.5)
    cb.apply_quotes(*cols)
    with_oi(cb, cols, 10.0)
    assert math.isclose(cb.totals().gex_usd_per_pct, -0.5 * g, rel_tol=1e-12)
    cb.set_dealer_sign(key, -2.0)
    assert math.isclose(cb.totals().gex_usd_per_pct, 2.0 * g, rel_tol=1e-12)


def test_older_quotes_are_ignored_and_equal_timestamps_replace():
    book = ChainBook(100.0, T0, CFG)
    fresh = priced(MONTH, 100.0, 0.2, ts=T0 + 10)
    book.apply_quotes(*fresh)
    with_oi(book, fresh)
    before, arrays = book.totals(), book.contract_arrays()
    old = priced(MONTH, 100.0, 0.9, ts=T0 + 5)
    assert book.apply_quotes(*old) == 0
    assert book.stale_quotes == old[1].size and book.totals() == before
    for a, b in zip(arrays, book.contract_arrays()):
        np.testing.assert_array_equal(a, b)
    same_ts = priced(MONTH, 100.0, 0.3, ts=T0 + 10)             # equal timestamp: replaces
    assert book.apply_quotes(*same_ts) == same_ts[1].size
    assert abs(book.iv_of((MONTH, 100.0, True)) - 0.3) < 2e-4


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
    # a quote without a usable mid: no IV, and its exposure leaves the sums
    with_oi(book, cols)
    assert book.by_strike(100.0).gex_usd_per_pct != 0.0
    key = (MONTH, 100.0)
    for c in (True, False):
        book.apply_quotes(T0 + 2 * 10**9, [MONTH], [100.0], [c], [0.0], [0.0])
        assert math.isnan(book.iv_of((*key, c)))
    assert book.by_strike(100.0).as_tuple() == (0.0, 0.0, 0.0, 0.0)


def test_forward_and_atm_iv_follow_the_documented_definitions():
    book = ChainBook(100.0, T0, CFG)
    for e, vol in ((NEXT_DAY, 0.4), (MONTH, 0.2)):
        book.apply_quotes(*priced(e, 100.0, vol))
    t = (MONTH - T0) / NS_PER_YEAR
    f = book.forward(MONTH, T0)
    assert f.strike == 100.0 and math.isclose(f.forward, 100.0 * math.exp((R - Q) * t), rel_tol=1e-9)
    assert math.isclose(f.discount, math.exp(-R * t)) and f.t_years == t
    # NEXT_DAY is under 7 days out: ATM IV is the month's, mean of call and put IV at K*
    want = 0.5 * (book.iv_of((MONTH, 100.0, True)) + book.iv_of((MONTH, 100.0, False)))
    assert book.atm_iv(T0) == want and abs(want - 0.2) < 1e-4
    assert math.isnan(ChainBook(100.0, T0, CFG).atm_iv(T0))
    # the ATM put loses its mid: K* moves to the best remaining pair, as forward_from_parity says
    book.apply_quotes(T0 + 1, [MONTH], [100.0], [False], [0.0], [0.0])
    _, _, k, c, b, a = priced(MONTH, 100.0, 0.2)
    mid = 0.5 * (b + a)
    ks = STRIKES[STRIKES != 100.0]
    cm = np.array([mid[(k == x) & c][0] for x in ks])
    pm = np.array([mid[(k == x) & ~c][0] for x in ks])
    fb, kb = forward_from_parity(ks, cm, pm, t, R)
    f2 = book.forward(MONTH, T0)
    assert f2.strike == kb != 100.0 and math.isclose(f2.forward, fb, rel_tol=1e-12)


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
    # evaluated at the 16:00 settlement, the same-day options carry nothing (T <= 0)
    at_close = ChainBook.from_state(book.to_state())
    at_close.reprice(100.0, ZDTE)
    assert at_close.by_expiry(ZDTE).as_tuple() == (0.0,) * 4 == at_close.zero_dte().as_tuple()
    assert at_close.totals() != book.totals() and at_close.by_expiry(MONTH).gex_usd_per_pct != 0.0
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


def _toy_book(auto_reprice: bool) -> ChainBook:
    """1, 8, 30 and 90 days × 41 strikes 80–120 × C/P, BSM prices on a smile, random OI."""
    rng = np.random.default_rng(7)
    book = ChainBook(100.0, T0, ChainConfig(rate=R, div_yield=Q, auto_reprice=auto_reprice))
    ks = np.linspace(80.0, 120.0, 41)
    for d in (1, 8, 30, 90):
        e = T0 + d * NS_PER_DAY
        for c in (True, False):
            p = bs.price(100.0, ks, d / 365, R, Q, 0.15 + 0.3 * np.abs(ks - 100.0) / 100.0, c)
            book.apply_quotes(T0, np.full(ks.size, e), ks, np.full(ks.size, c), p - 0.01, p + 0.01)
            book.apply_open_interest(np.full(ks.size, e), ks, np.full(ks.size, c),
                                     rng.integers(0, 5000, ks.size).astype(float))
    return book


def test_live_reads_between_reprices_and_the_reprice_thresholds():
    book = _toy_book(auto_reprice=False)
    assert book.on_spot(100.2, T0) is False
    assert book.reprices == 0 and book.needs_reprice() is False     # 0.2% < 0.25%
    live = book.live_totals()
    assert book.totals().as_tuple() != live.as_tuple()              # the live read moved
    book.reprice()
    exact, ref = book.totals(), book.batch()
    gross = (np.abs(ref.strike_gex).sum(), np.abs(ref.strike_dex).sum(),
             np.abs(ref.strike_vanna).sum(), np.abs(ref.strike_charm).sum())
    err = [abs(a - b) / g for a, b, g in zip(live.as_tuple(), exact.as_tuple(), gross)]
    # error / gross by strike, measured on this chain at +0.2%: GEX 7.2e-3, DEX 6.9e-5, vanna
    # 1.9e-2, charm 0.15. The 1-day expiry is the hard case: its gamma is about one 0.68-point
    # grid step wide, and its charm changes fast with S, which the S/eval_spot scaling ignores.
    assert err[0] <= 0.02 and err[1] <= 1e-3 and err[2] <= 0.05 and err[3] <= 0.3
    assert book.live_totals() == exact                              # at the eval point: exact
    auto = _toy_book(auto_reprice=True)
    assert auto.on_spot(100.2, T0) is False
    assert auto.on_spot(101.0, T0) is True and auto.eval_spot == 101.0 and auto.reprices == 1
    assert auto.on_spot(101.01, T0 + 30 * 10**9) is False                # within 0.25% and 60 s
    assert auto.on_spot(101.01, T0 + 61 * 10**9) is True and auto.eval_ts_ns == T0 + 61 * 10**9


def test_profile_reads_are_sums_kept_by_the_batches(monkeypatch):
    """Every evaluation reads live_totals and the flip; both come from the GEX profile, which the
    batches keep (revert-then-add of the changed contracts' cells): reading computes no cell (the
    engine's flip at 20k contracts was a 41 ms O(N·grid) pass). The profile equals the from-scratch
    one (``batch()``, float sums of the same cells) and the reprice's rebuild, and live_totals'
    GEX is the exact GEX plus the interpolated profile change."""
    from streamer.core import chain
    book = _toy_book(auto_reprice=False)
    rng = np.random.default_rng(11)
    e = T0 + 8 * NS_PER_DAY
    for j, spot in enumerate((100.2, 99.8, 100.1)):
        ks = np.sort(rng.choice(np.linspace(80.0, 120.0, 41), 15, replace=False))
        p = bs.price(100.0, ks, 8 / 365, R, Q, 0.3 + 0.05 * j, True)
        book.apply_quotes(T0 + j + 1, np.full(ks.size, e), ks, np.full(ks.size, True), p - 0.01, p + 0.01)
        assert book.on_spot(spot, T0 + j + 1) is False and book.eval_spot == 100.0
        with monkeypatch.context() as mp:
            mp.setattr(chain, "gex_rows", None)                     # any cell computed would raise
            live = book.live_totals()
            g, prof, gross = book.profile()
            flip = book.gamma_flip()
        want = book.totals().gex_usd_per_pct + float(np.interp(spot, g, prof) - np.interp(100.0, g, prof))
        assert live.gex_usd_per_pct != book.totals().gex_usd_per_pct
        assert abs(live.gex_usd_per_pct - want) <= 1e-12 * gross.max()
        ref = book.batch()
        assert np.all(np.abs(prof - ref.grid_gex) <= 1e-12 * gross)
        assert flip == ref.gamma_flip or abs(flip - ref.gamma_flip) <= 1e-9 * spot
    g, prof, gross = (x.copy() for x in book.profile())
    book.reprice(book.eval_spot, book.eval_ts_ns)                   # same point: rebuilt from scratch
    assert all(x.tobytes() == y.tobytes() for x, y in zip((g, prof, gross), book.profile()))


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
    bytes_equal_states(make().to_state(), make().to_state())


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


def test_small_batches_scalar_path_gives_the_vector_paths_bits():
    """Batches up to ``SCALAR_BELOW`` contracts are solved and evaluated one by one with the
    scalar mirrors; the same requotes applied as one large (vector) batch leave the same bits.
    The requotes are calls only, then puts only (no call/put pair in a batch, so every batch
    solves against the same stored parity forward), each row at its own timestamp."""
    assert bs.SCALAR_MIRRORS_EXACT, "math.exp/log differ from numpy here: scalar path disabled"
    strikes = np.arange(80.0, 120.5, 0.5)
    cols = [priced(e, 100.0, 0.18 + 0.02 * j, ts=T0, strikes=strikes)
            for j, e in enumerate((ZDTE, NEXT_DAY, MONTH))]
    _, exp, k, call, bid, ask = (np.concatenate([c[i] for c in cols]) for i in range(6))
    rng = np.random.default_rng(11)
    oi = rng.integers(0, 3000, exp.size).astype(float)
    bid2 = bid * rng.uniform(0.9, 1.0, bid.size)
    bid2[::17] = 0.0                                  # no mid: no IV, no exposure
    ts2 = T0 + 1 + np.arange(exp.size)
    order = np.concatenate([np.flatnonzero(call), np.flatnonzero(~call)])
    n_calls = int(call.sum())
    assert n_calls > 3 * ivsolve.SCALAR_BELOW

    def book(sizes) -> ChainBook:
        b = ChainBook(100.0, T0, CFG)
        b.apply_open_interest(exp, k, call, oi)
        b.apply_quotes(T0, exp, k, call, bid, ask)
        for part in (order[:n_calls], order[n_calls:]):
            lo = 0
            for n in sizes:
                j = part[lo:lo + n]
                if j.size:
                    b.apply_quotes(ts2[j], exp[j], k[j], call[j], bid2[j], ask[j])
                lo += n
        b.on_spot(100.2, T0 + 10**9)
        b.apply_open_interest(exp[:5], k[:5], call[:5], oi[:5] + 1.0)   # small re-evaluation
        return b
    whole = book([exp.size]).to_state()
    small = book([1, 2, 7, ivsolve.SCALAR_BELOW, 90] * 5 + [exp.size]).to_state()
    assert np.isfinite(whole["slot.iv"]).sum() > exp.size // 4
    assert not np.array_equal(whole["slot.bid"], book([0]).to_state()["slot.bid"])
    for name in whole:
        if isinstance(whole[name], np.ndarray):
            assert whole[name].tobytes() == small[name].tobytes(), name
    pw, ps = book([exp.size]).profile(), book([1, 2, 7, 90] * 5 + [exp.size]).profile()
    assert all(x.tobytes() == y.tobytes() for x, y in zip(pw, ps))     # exact profile sums


@pytest.mark.parametrize("quote_block", [True, False])
def test_vix_with_cached_terms_equals_vix_batch_after_every_batch(monkeypatch, quote_block):
    """``vix`` keeps each term's quote table (``forward``/``atm_iv`` each expiry's mids) and
    applied quotes are written into them; after every batch (requotes of random contracts, a new
    strike, quotes cut to zero bids) VIX and VIX9D equal ``vix_batch`` from scratch on the book's
    contracts, and the forwards those of a restored book (no caches), value for value. Both ways
    of writing into a term: one scatter per side into its (n, 4) quote block, and per column
    (a term whose arrays are not that block)."""
    from streamer.core import chain
    from streamer.core.vix import VIX, VIX9D, vix_batch
    if not quote_block:
        monkeypatch.setattr(chain, "_flat_quotes", lambda term: False)
    exps = (ny(2024, 1, 12, 16, 0), ny(2024, 1, 19, 16, 0), ny(2024, 2, 2, 16, 0),
            ny(2024, 2, 9, 16, 0))
    strikes = np.arange(60.0, 140.5, 1.0)
    cols = [priced(e, 100.0, 0.2, strikes=strikes) for e in exps]
    _, exp, k, call, bid, ask = (np.concatenate([c[i] for c in cols]) for i in range(6))
    bid = np.maximum(bid, 0.0)
    book = ChainBook(100.0, T0, CFG)
    book.apply_quotes(T0, exp, k, call, bid, ask)
    rng = np.random.default_rng(4)
    seen_ok = 0
    for step in range(40):
        now = T0 + (step + 1) * 10**9
        if step == 20:   # a new strike in every expiry: the cached terms must be rebuilt
            exp = np.concatenate([exp, np.array(exps * 2, dtype=np.int64)])
            k = np.concatenate([k, np.full(8, 140.5)])
            call = np.concatenate([call, np.array([True] * 4 + [False] * 4)])
            bid = np.concatenate([bid, np.full(8, 0.0)])
            ask = np.concatenate([ask, np.full(8, 0.05)])
            j = np.arange(exp.size - 8, exp.size)
        else:
            j = rng.choice(exp.size, int(rng.integers(1, 120)), replace=False)
            f = rng.uniform(0.95, 1.05, j.size)
            bid[j] = np.where(rng.random(j.size) < 0.1, 0.0, bid[j] * f)
            ask[j] = ask[j] * f
        book.apply_quotes(now, exp[j], k[j], call[j], bid[j], ask[j])
        e_, k_, c_, b_, a_ = book.contract_arrays()[:5]
        right = np.where(c_, "C", "P")
        for spec in (VIX, VIX9D):
            got = book.vix(now, spec)
            ref = vix_batch(e_, k_, right, b_, a_, now, CFG.rate, spec)
            assert got.reason == ref.reason, (step, spec)
            assert got.value == ref.value or (got.value != got.value and ref.value != ref.value)
            seen_ok += got.ok
        fresh = ChainBook.from_state(book.to_state())    # no cached terms or mids
        for e in exps:
            assert book.forward(e, now) == fresh.forward(e, now), (step, e)
        assert book.atm_iv(now) == fresh.atm_iv(now)
    assert seen_ok > 40


def test_live_flag_flips_keep_counts_and_exact_zeros_of_a_rebuild():
    """Batches that mix requotes of live contracts with quotes that take contracts out of the
    book's exposure (zero bid: no mid, no IV) and back: the live call/put counts of every strike,
    expiry and total, and the exact-zero reset of a bucket left without live calls or puts, equal
    what a from-scratch rebuild (``reprice`` at the same point) gives; sums agree to rounding."""
    book = ChainBook(100.0, T0, CFG)
    cols = [priced(e, 100.0, 0.2) for e in (NEXT_DAY, MONTH)]
    _, exp, k, call, bid, ask = (np.concatenate([c[i] for c in cols]) for i in range(6))
    book.apply_open_interest(exp, k, call, np.full(exp.size, 500.0))
    book.apply_quotes(T0, exp, k, call, bid, ask)
    rng = np.random.default_rng(8)
    for step in range(30):
        j = rng.choice(exp.size, int(rng.integers(1, exp.size)), replace=False)
        cut = rng.random(j.size) < 0.3                  # these leave the exposure (or stay out)
        b = np.where(cut, 0.0, bid[j] * rng.uniform(0.98, 1.0, j.size))
        book.apply_quotes(T0 + step + 1, exp[j], k[j], call[j], b, ask[j])
        if step % 10 == 9:                              # every call of one strike out at once
            m = call & (k == STRIKES[step // 10 + 2])
            book.apply_quotes(T0 + step + 1, exp[m], k[m], call[m], np.zeros(m.sum()), ask[m])
            assert book.by_strike(float(STRIKES[step // 10 + 2])).as_tuple() != (0.0,) * 4
            assert book._strikes.sums[book._strikes.index[float(STRIKES[step // 10 + 2])], 4] == 0.0
        inc = book.to_state()
        ref = ChainBook.from_state(inc)
        ref.reprice(book.eval_spot, book.eval_ts_ns)    # every table resummed from scratch
        full = ref.to_state()
        for name in ("strikes", "expiries", "total", "zdte"):
            for part in ("lc", "lp"):
                assert np.array_equal(inc[f"{name}.{part}"], full[f"{name}.{part}"]), (step, name)
            a, r = inc[f"{name}.sums"], full[f"{name}.sums"]
            nc, np_ = inc[f"{name}.lc"] == 0, inc[f"{name}.lp"] == 0
            assert np.all(a[nc, 4] == 0.0) and np.all(a[np_, 5] == 0.0), (step, name)
            assert np.all(a[nc & np_, :4] == 0.0), (step, name)   # nothing live: exact zeros
            assert np.allclose(a, r, rtol=1e-9, atol=1e-6), (step, name)
        assert inc["slot.live"].tobytes() == full["slot.live"].tobytes()


def _agree(book: ChainBook, ref) -> None:
    """The book's exact reads equal ``exposures_batch`` (``ref``) to rounding of the gross by strike."""
    gross = [np.abs(getattr(ref, f"strike_{n}")).sum() + 1e-300 for n in ("gex", "dex", "vanna", "charm")]
    for got, want in ((book.totals(), ref.total), (book.zero_dte(), ref.zero_dte)):
        for j in range(4):
            assert abs(got.as_tuple()[j] - want.as_tuple()[j]) <= 1e-9 * gross[j], (j, got, want)
    for i, k in enumerate(ref.strikes.tolist()):
        assert abs(book.by_strike(k).gex_usd_per_pct - ref.strike_gex[i]) <= 1e-9 * gross[0]
    for i, e in enumerate(ref.expiries.tolist()):
        assert abs(book.by_expiry(e).gex_usd_per_pct - ref.expiry_gex[i]) <= 1e-9 * gross[0]
    g, prof, pg = book.profile()
    assert np.array_equal(g, ref.grid_spots) and np.all(np.abs(prof - ref.grid_gex) <= 1e-12 * pg.max())


@pytest.mark.parametrize("model", ["otm_only", "naive_ex0dte"])
def test_spot_and_clock_positioning_is_the_batch_reference_at_every_eval_point(model):
    """A spot/clock model (``positioning_signs``): after every batch, a reprice across strikes, new
    contracts and a 0DTE day boundary, the sign column is ``dealer_signs(model, ...)`` at the book's eval
    point (``set_dealer_sign``'s override kept) and the exposures are ``exposures_batch`` with those signs;
    a restored book (the callable passed again) goes on with the same bits."""
    from functools import partial

    from streamer.core.chain import exposures_batch
    from streamer.core.dealer_reval import dealer_signs

    signs_of = partial(dealer_signs, model)
    book = ChainBook(100.0, T0, CFG, positioning_signs=signs_of)
    rng = np.random.default_rng(3)
    for e in (ZDTE, NEXT_DAY, MONTH):
        cols = priced(e, 100.0, 0.2)
        book.apply_quotes(*cols)
        book.apply_open_interest(cols[1], cols[2], cols[3], rng.integers(1, 3000, cols[1].size).astype(float))
    key, ovr = (MONTH, 95.0, "C"), 0.5      # ITM call now, OTM after the fall below 95
    book.set_dealer_sign(key, ovr)
    seen = []

    def check() -> None:
        exp, k, call, _, _, iv, oi, sign = book.contract_arrays()
        want = dealer_signs(model, exp, k, call, book.eval_spot, book.eval_ts_ns)
        is_key = (exp == key[0]) & (k == key[1]) & call
        want[is_key] = ovr
        assert sign.tobytes() == want.tobytes()
        ref = exposures_batch(exp, k, call, iv, oi, book.eval_spot, book.eval_ts_ns, R, Q, dealer_sign=want,
                              multiplier=CFG.multiplier)
        _agree(book, ref)
        seen.append((exp.copy(), sign.copy()))

    check()
    naive = np.where(book.contract_arrays()[2], 1.0, -1.0)
    assert np.any(seen[-1][1] == 0.0) and np.any(seen[-1][1] == naive)    # the model drops some, not all
    book.apply_quotes(*priced(MONTH, 100.0, 0.22, ts=T0 + 1))            # requotes: signs unchanged
    check()
    assert seen[-1][1].tobytes() == seen[-2][1].tobytes()
    book.reprice(93.0, T0 + 3600 * 10**9)                                # down 7%: across strikes
    check()
    if model == "otm_only":
        assert not np.array_equal(seen[-1][1], seen[-2][1])
    # new strikes (signed when allocated, at the eval point), then a restore mid-way
    new = priced(NEXT_DAY, 93.0, 0.25, ts=T0 + 3600 * 10**9 + 1, strikes=np.array([92.5, 115.0]))
    book.apply_quotes(*new)
    with_oi(book, new, 700.0)
    check()
    restored = ChainBook.from_state(book.to_state(), positioning_signs=signs_of)
    # 16:01 New York: the Jan 5 expiry settled; the next morning Jan 8 is the 0DTE
    for bk in (book, restored):
        bk.expire(ZDTE + 60 * 10**9)
        bk.reprice(101.0, ny(2024, 1, 8, 10, 0))
        bk.apply_quotes(*priced(NEXT_DAY, 101.0, 0.2, ts=ny(2024, 1, 8, 10, 0) + 1))
    check()
    if model == "naive_ex0dte":
        (e1, s1), (e0, s0) = seen[-1], seen[-2]
        assert np.all(s1[e1 == NEXT_DAY] == 0.0) and np.all(s0[e0 == NEXT_DAY] != 0.0)
        assert book.zero_dte().as_tuple() == (0.0,) * 4        # today's expiry carries no dealer position
    bytes_equal_states(book.to_state(), restored.to_state())
    assert book.profile()[1].tobytes() == restored.profile()[1].tobytes()


def test_positioning_signs_excludes_a_key_positioning_and_old_states_restore():
    from functools import partial

    from streamer.core.dealer_reval import dealer_signs

    with pytest.raises(ValueError, match="not both"):
        ChainBook(100.0, T0, CFG, positioning=lambda k: 1.0, positioning_signs=partial(dealer_signs, "otm_only"))
    book = ChainBook(100.0, T0, CFG)
    cols = priced(MONTH, 100.0, 0.2)
    book.apply_quotes(*cols)
    with_oi(book, cols)
    book.set_dealer_sign((MONTH, 100.0, "P"), 2.0)
    st = book.to_state()
    old = {n: v for n, v in st.items() if n != "slot.ovr"}           # a state before the override flags
    back = ChainBook.from_state(old)
    assert back.contract_arrays()[7].tobytes() == book.contract_arrays()[7].tobytes()
    back.reprice(101.0, T0 + 1)
    book.reprice(101.0, T0 + 1)
    assert back.totals() == book.totals()


def test_profile_sums_of_large_small_and_unholdable_batches_equal_a_rebuild():
    """The profile's fixed-point sums after batches that take every path of the revert-then-add:
    more rows than one exact product holds (2048: reductions by blocks), small ones (revert and
    add in one product) that mix requotes with contracts leaving (no bid) and coming back, and a
    contract whose cells cannot be held (OI 1e30: the profile is NaN until it leaves). After each
    batch the profile has the bits of a from-scratch rebuild (``from_state``) and the rebuild's
    cells are the book's."""
    from streamer.core import chain
    strikes = np.arange(60.0, 140.01, 0.25)                          # 321 strikes
    cols = [priced(T0 + d * NS_PER_DAY, 100.0, 0.2 + d / 1000, strikes=strikes) for d in (3, 10, 40, 90)]
    _, exp, k, call, bid, ask = (np.concatenate([c[i] for c in cols]) for i in range(6))
    n = exp.size
    assert 2 * n > 2 * chain._PROFILE_CHUNK                           # 2568 contracts
    book = ChainBook(100.0, T0, CFG)
    book.apply_open_interest(exp, k, call, np.full(n, 700.0))
    book.apply_quotes(T0, exp, k, call, bid, ask)                     # 2568 reverts + 2568 adds

    def same_as_rebuild(step):
        got = [x.copy() for x in book.profile()]
        ref = ChainBook.from_state(book.to_state())
        assert all(x.tobytes() == y.tobytes() for x, y in zip(got, ref.profile())), step
        live = np.flatnonzero(book._a["live"][:book._hw])
        assert np.array_equal(book._rows[:book._hw], ref._rows[:ref._hw]), step
        assert np.array_equal(book._rsign[live], ref._rsign[live]), step
        return got

    g, prof, gross = same_as_rebuild("bulk")
    assert np.all(np.isfinite(prof)) and gross.max() > 0.0
    rng = np.random.default_rng(5)
    for step in range(12):
        j = rng.choice(n, int(rng.integers(1, 300)), replace=False)
        out = rng.random(j.size) < 0.25
        b = np.where(out, 0.0, bid[j] * rng.uniform(0.97, 1.0, j.size))
        book.apply_quotes(T0 + step + 1, exp[j], k[j], call[j], b, ask[j])
        same_as_rebuild(step)
    a = int(np.flatnonzero((exp == cols[2][1][0]) & (k == 100.0) & call)[0])   # ATM, 40 days
    assert book.iv_of((int(exp[a]), 100.0, True)) > 0.0
    book.apply_open_interest(exp[a:a + 1], k[a:a + 1], call[a:a + 1], [1e30])  # cells ≥ 2^80
    assert np.all(np.isnan(book.profile()[1]))
    assert np.all(np.isnan(ChainBook.from_state(book.to_state()).profile()[1]))
    book.apply_quotes(T0 + 20, exp[a - 20:a + 20], k[a - 20:a + 20], call[a - 20:a + 20],
                      bid[a - 20:a + 20], ask[a - 20:a + 20])          # requoted, still unholdable
    assert np.all(np.isnan(book.profile()[1]))
    book.apply_open_interest(exp[a:a + 1], k[a:a + 1], call[a:a + 1], [700.0])
    after = same_as_rebuild("back")
    assert np.all(np.isfinite(after[1]))
    book.apply_quotes(T0 + 30, exp, k, call, bid * 0.99, ask)          # the bulk path again
    same_as_rebuild("bulk again")
