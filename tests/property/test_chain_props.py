"""ChainBook (struct-of-arrays, batch updates) against from-scratch references (hypothesis).

After every step of a random sequence of quote batches, OI batches, dealer-sign overrides, spot
ticks, reprices and expiries: the stored quotes, OI and signs equal an independent model that
applies the rows one by one (older rows ignored, equal timestamps replace); every aggregate equals
``exposures_batch`` on the book's own contracts, and the totals and 0DTE totals equal per-contract
contributions computed here straight from ``bs.greeks``; each expiry's parity forward equals
``forward_from_parity`` on the model's mids. Tolerance: revert-then-add leaves an absolute error
of order eps × the largest gross (sum of |contributions|) that passed through a sum since the last
from-scratch resum (a reprice), summed over the updates in between; 1e-9 of that running gross
covers it with margin. Buckets without a live contract must be exactly 0.0. The GEX profile
(kept by the batches in exact fixed-point sums) equals a from-scratch rebuild bit for bit, the
pre-incremental O(N·grid) computation (``profile_reference``) within 1e-10 of the gross, and so
does the flip (up to what that tolerance allows near a zero or in the interpolation).

Conflation and state are checked for bit-identity (``tobytes`` equality, not approx).
"""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from state_helpers import bytes_equal_states

from streamer.core import bs
from streamer.core.chain import (NS_PER_YEAR, ChainBook, ChainConfig, exposures_batch,
                                 forward_from_parity, gamma_flip_from_profile, gamma_on_grid,
                                 make_grid, profile_atol)

NY = ZoneInfo("America/New_York")


def ny(*a) -> int:
    return int(dt.datetime(*a, tzinfo=NY).timestamp()) * 10**9


NOW = ny(2024, 1, 5, 11, 0)
EXPIRIES = [ny(2024, 1, 5, 16, 0), ny(2024, 1, 8, 16, 0), ny(2024, 2, 16, 9, 30)]  # 0DTE first
STRIKES = [95.0, 100.0, 105.0]
KEYS = [(e, k, c) for e in EXPIRIES for k in STRIKES for c in (True, False)]
CFG = ChainConfig(rate=0.05, div_yield=0.013)
REL = 1e-9

key_i = st.integers(0, len(KEYS) - 1)
quote_row = st.tuples(key_i, st.floats(0.05, 1.2), st.floats(0.0, 0.4), st.integers(-3, 3),
                      st.one_of(st.none(), st.integers(1, 5000)))   # OI sent with the quote
op = st.one_of(
    st.tuples(st.just("quotes"), st.lists(quote_row, min_size=1, max_size=12)),
    st.tuples(st.just("oi"), st.lists(st.tuples(key_i, st.integers(0, 5000)), min_size=1,
                                      max_size=8)),
    st.tuples(st.just("sign"), st.integers(0, 99), st.floats(-2.0, 2.0)),  # i-th listed contract
    st.tuples(st.just("spot"), st.floats(97.0, 103.0), st.integers(0, 90)),
    st.tuples(st.just("reprice"),),
    st.tuples(st.just("expire"), st.integers(0, 6)),
)


def quote_columns(rows, clock):
    """Batch columns from (key, vol, spread, dts) rows: BSM prices at spot 100 ± half the spread."""
    e = np.array([KEYS[i][0] for i, *_ in rows], dtype=np.int64)
    k = np.array([KEYS[i][1] for i, *_ in rows])
    c = np.array([KEYS[i][2] for i, *_ in rows])
    vol = np.array([r[1] for r in rows])
    spread = np.array([r[2] for r in rows])
    ts = np.array([clock + 10**9 * (10 + r[3]) for r in rows], dtype=np.int64)
    t = np.maximum((e - ts) / NS_PER_YEAR, 1e-6)
    p = bs.price(100.0, k, t, CFG.rate, CFG.div_yield, vol, c)
    return ts, e, k, c, np.maximum(p - spread / 2, 0.0), p + spread / 2


class Model:
    """Stored quotes and OI per key, applying rows one at a time (the semantics batches must keep)."""

    def __init__(self) -> None:
        self.q: dict = {}
        self.oi: dict = {}
        self.sign: dict = {}     # overrides of the default +1 calls / −1 puts

    def quotes(self, ts, e, k, c, b, a) -> None:
        for j in range(len(ts)):
            key = (int(e[j]), float(k[j]), bool(c[j]))
            old = self.q.get(key)
            if old is None or ts[j] >= old[2]:
                self.q[key] = (float(b[j]), float(a[j]), int(ts[j]))

    def expire(self, now) -> None:
        for d in (self.q, self.oi, self.sign):
            for key in [x for x in d if x[0] <= now]:
                del d[key]


def ny_date(ts_ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts_ns // 10**9, NY).date()


def check(book: ChainBook, model: Model, hist: dict) -> None:
    # stored quotes and OI equal the one-row-at-a-time model
    exp, k, call, bid, ask, iv, oi, sign = book.contract_arrays()
    keys = list(zip(exp.tolist(), k.tolist(), call.tolist()))
    assert set(keys) == set(model.q) | set(model.oi)
    for j, key in enumerate(keys):
        if key in model.q:
            qb, qa, _ = model.q[key]
            assert (bid[j], ask[j]) == (qb, qa)
        else:
            assert math.isnan(bid[j])
        assert oi[j] == model.oi.get(key, 0.0)
        assert sign[j] == model.sign.get(key, 1.0 if key[2] else -1.0)
    inc, ref = book.exposures(), book.batch()
    t = (exp - book.eval_ts_ns) / NS_PER_YEAR
    contrib = np.zeros((4, exp.size))
    ok = (t > 0) & (iv > 0) & (oi > 0) & math.isfinite(book.eval_spot)
    if ok.any():
        s = book.eval_spot
        g = bs.greeks(s, k[ok], t[ok], CFG.rate, CFG.div_yield, iv[ok], call[ok])
        m = sign[ok] * oi[ok] * 100.0
        contrib[:, ok] = [g.gamma * m * s * s * 0.01, g.delta * m * s, g.vanna * m * s * 0.01,
                          g.charm * m * s / 365.0]
    gross = np.maximum(np.abs(contrib).sum(axis=1), hist.get("gross", 0.0))
    hist["gross"] = gross
    tol = REL * gross + 1e-300
    assert np.all(np.abs(np.subtract(inc.total.as_tuple(), ref.total.as_tuple())) <= tol)
    assert np.all(np.abs(np.subtract(inc.zero_dte.as_tuple(), ref.zero_dte.as_tuple())) <= tol)
    # the reference itself against per-contract contributions from bs.greeks (documented formulas)
    zd_now = np.array([ny_date(e) == ny_date(book.eval_ts_ns) for e in exp.tolist()], dtype=bool)
    assert np.all(np.abs(np.subtract(ref.total.as_tuple(), contrib.sum(axis=1))) <= tol)
    assert np.all(np.abs(np.subtract(inc.zero_dte.as_tuple(), contrib[:, zd_now].sum(axis=1))) <= tol)
    assert np.array_equal(inc.strikes, ref.strikes) and np.array_equal(inc.expiries, ref.expiries)
    for j, (a_, b_) in enumerate(((inc.strike_gex, ref.strike_gex), (inc.strike_dex, ref.strike_dex),
                                  (inc.strike_vanna, ref.strike_vanna),
                                  (inc.strike_charm, ref.strike_charm))):
        assert np.all(np.abs(a_ - b_) <= tol[j])
    for j, (a_, b_) in enumerate(((inc.expiry_gex, ref.expiry_gex), (inc.expiry_dex, ref.expiry_dex),
                                  (inc.expiry_vanna, ref.expiry_vanna),
                                  (inc.expiry_charm, ref.expiry_charm))):
        assert np.all(np.abs(a_ - b_) <= tol[j])
    # exact zeros where nothing is live
    live = ok
    for e in inc.expiries.tolist():
        if not live[exp == e].any():
            assert book.by_expiry(e).as_tuple() == (0.0, 0.0, 0.0, 0.0)
    if not live.any():
        assert book.totals().as_tuple() == (0.0, 0.0, 0.0, 0.0)
    zd = np.isin(exp, [e for e in EXPIRIES[:1]]) & (dt.datetime.fromtimestamp(
        book.eval_ts_ns / 1e9, NY).date() == dt.date(2024, 1, 5))
    if not (live & zd).any():
        assert book.zero_dte().as_tuple() == (0.0, 0.0, 0.0, 0.0)
    # profile from the same arrays: only summation order differs
    gg = exposures_batch(exp, k, call, iv, oi, book.eval_spot, book.eval_ts_ns, CFG.rate,
                         CFG.div_yield, dealer_sign=np.abs(sign), grid_spots=inc.grid_spots).grid_gex
    atol = profile_atol(int(ok.sum()))          # the fixed-point sums' resolution (2^-33 $ a cell)
    assert np.all(np.abs(inc.grid_gex - ref.grid_gex) <= 1e-12 * gg + atol + 1e-300)
    check_live_gex(book, ref, tol[0] + 1e-12 * float(gg.max(initial=0.0)) + 2 * atol)
    check_profile(book)
    # walls: the same strike, or an exact tie within rounding
    gabs = max(np.abs(ref.strike_call_gamma).sum() + np.abs(ref.strike_put_gamma).sum(),
               hist.get("gabs", 0.0))
    hist["gabs"] = gabs
    for w_inc, w_ref, vals in ((inc.call_wall, ref.call_wall, ref.strike_call_gamma),
                               (inc.put_wall, ref.put_wall, ref.strike_put_gamma),
                               (inc.abs_gamma_strike, ref.abs_gamma_strike,
                                ref.strike_call_gamma + ref.strike_put_gamma)):
        if w_inc == w_ref or (math.isnan(w_inc) and math.isnan(w_ref)):
            continue
        v_inc = 0.0 if math.isnan(w_inc) else vals[np.searchsorted(ref.strikes, w_inc)]
        v_ref = 0.0 if math.isnan(w_ref) else vals[np.searchsorted(ref.strikes, w_ref)]
        assert abs(v_inc - v_ref) <= REL * gabs, (w_inc, w_ref)
    # parity forward per expiry over the model's mids (mid rule: 0 < bid <= ask)
    for e in np.unique(exp).tolist():
        ks = sorted({key[1] for key in model.q if key[0] == e})
        mids = np.full((len(ks), 2), math.nan)
        for key, (qb, qa, _) in model.q.items():
            if key[0] == e and 0.0 < qb <= qa:
                mids[ks.index(key[1]), 0 if key[2] else 1] = 0.5 * (qb + qa)
        t = (e - book.eval_ts_ns) / NS_PER_YEAR
        f_ref, k_ref = forward_from_parity(np.array(ks), mids[:, 0], mids[:, 1], t, CFG.rate)
        fw = book.forward(e)
        if math.isnan(k_ref):
            assert fw is None
        else:
            assert fw is not None and fw.strike == k_ref
            assert math.isclose(fw.forward, f_ref, rel_tol=1e-12)


def profile_reference(book: ChainBook) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The profile as ChainBook computed it before it was kept incrementally: every live contract's
    ``gamma_on_grid`` at each grid spot × m × x² × 0.01, summed in float64 (slow: O(N·grid))."""
    cfg = book.config
    exp, k, call, _, _, iv, oi, sign = book.contract_arrays()
    grid = make_grid(book.eval_spot, cfg.grid_points, cfg.grid_half_width)
    t = (exp - book.eval_ts_ns) / NS_PER_YEAR
    live = (t > 0) & (iv > 0) & np.isfinite(iv) & (oi > 0)
    if not (book.eval_spot > 0 and math.isfinite(book.eval_spot)):
        live[:] = False
    m = sign[live] * oi[live] * cfg.multiplier
    rows = gamma_on_grid(grid[None, :], k[live, None], t[live, None], cfg.rate, cfg.div_yield,
                         iv[live, None]) * (m[:, None] * (grid * grid * 0.01))
    return grid, rows.sum(axis=0), np.abs(rows).sum(axis=0)


def check_profile(book: ChainBook) -> None:
    """Incremental profile vs a from-scratch rebuild (same bits) and vs ``profile_reference``."""
    g, prof, gross = book.profile()
    rebuilt = ChainBook.from_state(book.to_state()).profile()
    assert all(x.tobytes() == y.tobytes() for x, y in zip((g, prof, gross), rebuilt))
    rg, rprof, rgross = profile_reference(book)
    assert np.array_equal(g, rg) or not math.isfinite(book.eval_spot)
    atol = book._profile_atol()
    tol = 1e-10 * rgross + atol + 1e-300
    assert np.all(np.abs(prof - rprof) <= tol) and np.all(np.abs(gross - rgross) <= tol)
    flip, rflip = book.gamma_flip(), gamma_flip_from_profile(rg, rprof, rgross, atol=atol)
    if flip == rflip or (math.isnan(flip) and math.isnan(rflip)):
        return

    def cls(p, gr):   # the flip's view of each grid level: 0 (treated as zero) or the sign
        return np.where(np.abs(p) > 1e-9 * gr + atol, np.sign(p), 0.0)
    c, rc = cls(prof, gross), cls(rprof, rgross)
    if not np.array_equal(c, rc):      # differ only where the reference is zero within tolerance
        d = c != rc
        assert np.all(np.abs(rprof[d]) <= 1e-9 * rgross[d] + atol + 2 * tol[d]), (flip, rflip)
        return
    nz = np.flatnonzero(rc)            # same crossing: the interpolation moves by the tolerance
    a = nz[np.flatnonzero(rc[nz][:-1] != rc[nz][1:])[0]]
    b = nz[np.flatnonzero(nz == a)[0] + 1]
    bound = (rg[b] - rg[a]) * 2 * (tol[a] + tol[b]) / abs(rprof[a] - rprof[b])
    assert abs(flip - rflip) <= bound + 1e-12 * rg[b], (flip, rflip, bound)


def check_live_gex(book: ChainBook, ref, tol: float) -> None:
    """live_totals' GEX at spots around eval_spot equals the exact GEX plus the change of the
    from-scratch profile (``exposures_batch``'s grid_gex, interpolated), within the running
    rounding of the totals (``tol``) and 1e-12 of the gross profile."""
    s0 = book.eval_spot
    if not math.isfinite(s0):
        return
    g, prof = ref.grid_spots, ref.grid_gex
    for rel in (0.0, -0.0025, -0.001, 0.0007, 0.0025, 0.003, 0.02, -0.05):
        s = s0 * (1.0 + rel)
        want = ref.total.gex_usd_per_pct + float(np.interp(s, g, prof) - np.interp(s0, g, prof))
        assert abs(book.live_totals(s).gex_usd_per_pct - want) <= tol, (rel, want)


def _keys(book: ChainBook) -> set:
    exp, k, call, *_ = book.contract_arrays()
    return set(zip(exp.tolist(), k.tolist(), call.tolist()))


def run(book: ChainBook, model: Model | None, ops, clock: int, hist: dict | None = None) -> int:
    for o in ops:
        kind = o[0]
        before = book.reprices
        if kind == "quotes":
            cols = quote_columns(o[1], clock)
            book.apply_quotes(*cols)
            if model is not None:
                model.quotes(*cols)
            with_oi = [(i, r[4]) for i, r in enumerate(o[1]) if r[4] is not None]
            if with_oi:
                j = np.array([i for i, _ in with_oi])
                v = np.array([float(x) for _, x in with_oi])
                book.apply_open_interest(cols[1][j], cols[2][j], cols[3][j], v)
                if model is not None:
                    for jj, x in zip(j.tolist(), v.tolist()):
                        model.oi[(int(cols[1][jj]), float(cols[2][jj]), bool(cols[3][jj]))] = x
        elif kind == "oi":
            e = np.array([KEYS[i][0] for i, _ in o[1]], dtype=np.int64)
            k = np.array([KEYS[i][1] for i, _ in o[1]])
            c = np.array([KEYS[i][2] for i, _ in o[1]])
            v = np.array([float(x) for _, x in o[1]])
            book.apply_open_interest(e, k, c, v)
            if model is not None:
                for j in range(len(v)):
                    model.oi[(int(e[j]), float(k[j]), bool(c[j]))] = float(v[j])
        elif kind == "sign":
            listed = sorted(_keys(book))            # overrides apply to listed contracts only
            if listed:
                key = listed[o[1] % len(listed)]
                book.set_dealer_sign((key[0], key[1], "C" if key[2] else "P"), o[2])
                if model is not None:
                    model.sign[key] = o[2]
        elif kind == "spot":
            clock += 10**9 * o[2]
            book.on_spot(o[1], clock)
        elif kind == "reprice":
            book.reprice()
        else:
            clock += 3600 * 10**9 * o[1]
            book.expire(clock)
            if model is not None:
                model.expire(clock)
        if hist is not None:
            if book.reprices != before:
                hist.clear()
            check(book, model, hist)
    return clock


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=25))
def test_book_equals_from_scratch_after_every_step(ops):
    book = ChainBook(100.0, NOW, CFG)
    run(book, Model(), ops, NOW, {})
    live = book.to_state()["slot.live"].sum()
    target(float(live))             # steer hypothesis towards books with many live contracts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=2, max_size=25), st.integers(0, 24))
def test_restore_then_same_calls_is_bit_identical(ops, cut):
    cut = min(cut, len(ops) - 1)
    a = ChainBook(100.0, NOW, CFG)
    clock = run(a, None, ops[:cut], NOW)
    b = ChainBook.from_state(a.to_state())
    bytes_equal_states(a.to_state(), b.to_state())
    run(a, None, ops[cut:], clock)
    run(b, None, ops[cut:], clock)
    bytes_equal_states(a.to_state(), b.to_state())
    assert a.totals() == b.totals() and a.zero_dte() == b.zero_dte()
    ga, gb = a.exposures(), b.exposures()
    assert ga.grid_gex.tobytes() == gb.grid_gex.tobytes()
    assert (ga.gamma_flip == gb.gamma_flip or (math.isnan(ga.gamma_flip) and math.isnan(gb.gamma_flip)))
    for rel in (0.0, 0.002, -0.003, 0.05):       # the band is recomputed on restore: same bits
        sa = a.eval_spot * (1.0 + rel)
        assert a.live_totals(sa).as_tuple() == b.live_totals(sa).as_tuple() or math.isnan(sa)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=10), st.lists(quote_row, min_size=1, max_size=30))
def test_conflation_equals_applying_only_the_last_quote(prefix, rows):
    a = ChainBook(100.0, NOW, CFG)
    clock = run(a, None, prefix, NOW)
    b = ChainBook.from_state(a.to_state())
    ts, e, k, c, bid, ask = quote_columns(rows, clock)
    # independent winner selection: per key, the max timestamp, the later row on ties
    best: dict = {}
    for j in range(len(ts)):
        key = (int(e[j]), float(k[j]), bool(c[j]))
        if key not in best or ts[j] >= ts[best[key]]:
            best[key] = j
    keep = np.array(sorted(best.values()))
    a.apply_quotes(ts, e, k, c, bid, ask)
    b.apply_quotes(ts[keep], e[keep], k[keep], c[keep], bid[keep], ask[keep])
    assert a.conflated_quotes - b.conflated_quotes == len(ts) - len(keep)
    bytes_equal_states(a.to_state(), b.to_state(), skip=("conflated_quotes",))
