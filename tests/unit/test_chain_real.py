"""ChainBook on real Cboe chains (/work/shared/data): exposures vs exposures_batch, GEX vs
SqueezeMetrics' published figure and the vendor's gamma column, VIX vs vix_batch.

The chain is replayed as a feed would deliver it: open interest, then quotes in batches of 1,000
rows in file order, all stamped at the snapshot time; the book solves its own IVs. Tolerances:
aggregates within 1e-9 of the gross (revert-then-add rounding, see test_chain_book_props.py);
VIX within 1e-12 relative (same arithmetic, both sum the strip with math.fsum).
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from conftest import SHARED_DATA, require_shared_data

from streamer.cboe_csv import combine, ny_ts_ns, read_quotedata
from streamer.core.chain import ChainBook, ChainConfig
from streamer.core.vix import VIX, VIX9D, vix_batch

CHAINS = require_shared_data(SHARED_DATA / "option_chains")
# date -> (files, 1-month T-bill rate of that day, as tests/unit/test_vix.py)
CASES = {
    "2023-09-14": (["spx_quotedata_2023-09-14_close.csv"], 0.0555),
    "2024-01-05": (["spx_quotedata_2024-01-05_close.csv"], 0.0550),
    "2025-01-06": (["spx_quotedata_2025-01-06_close_janexp.csv",
                    "spx_quotedata_2025-01-06_close_febexp.csv"], 0.0430),
}


def _squeeze() -> dict[str, float]:
    with open(SHARED_DATA / "squeezemetrics_dix_gex_2011-2026.csv", newline="") as fh:
        return {r["date"]: float(r["gex"]) for r in csv.DictReader(fh)}


def _load(day: str) -> tuple[ChainBook, object, float]:
    files, rate = CASES[day]
    y, m, d = map(int, day.split("-"))
    snap = combine([read_quotedata(CHAINS / f) for f in files], asof_ts_ns=ny_ts_ns(y, m, d, 16, 15))
    book = ChainBook(snap.spot, snap.asof_ts_ns, ChainConfig(rate=rate, div_yield=0.013))
    call = snap.right == "C"
    book.apply_open_interest(snap.expiry_ts_ns, snap.strike, call, np.nan_to_num(snap.open_interest))
    for lo in range(0, len(snap), 1000):
        s = slice(lo, lo + 1000)
        book.apply_quotes(snap.asof_ts_ns, snap.expiry_ts_ns[s], snap.strike[s], call[s],
                          snap.bid[s], snap.ask[s])
    return book, snap, rate


@pytest.mark.parametrize("day", sorted(CASES))
def test_real_chain_book_equals_batch(day: str) -> None:
    book, snap, _ = _load(day)
    assert len(book) == len({(e, k, r) for e, k, r in zip(snap.expiry_ts_ns.tolist(),
                                                         snap.strike.tolist(), snap.right.tolist())})
    exp, k, call, bid, ask, iv, oi, sign = book.contract_arrays()
    assert np.isfinite(iv).sum() > 0.5 * iv.size        # most contracts got an IV
    a, b = book.exposures(), book.batch()
    live = np.isfinite(iv) & (iv > 0) & (oi > 0) & (exp > book.eval_ts_ns)
    gross = np.abs(b.strike_gex).sum() + np.abs(b.expiry_gex).sum()
    assert live.any() and gross > 0
    assert abs(a.total.gex_usd_per_pct - b.total.gex_usd_per_pct) <= 1e-9 * gross
    dgross = np.abs(b.strike_dex).sum()
    assert abs(a.total.dex_usd - b.total.dex_usd) <= 1e-9 * dgross
    np.testing.assert_allclose(a.strike_gex, b.strike_gex, rtol=0, atol=1e-9 * gross)
    np.testing.assert_allclose(a.expiry_charm, b.expiry_charm, rtol=0,
                               atol=1e-9 * np.abs(b.expiry_charm).sum())
    assert (a.call_wall, a.put_wall, a.abs_gamma_strike) == (b.call_wall, b.put_wall,
                                                             b.abs_gamma_strike)
    assert a.gamma_flip == pytest.approx(b.gamma_flip, rel=1e-9, nan_ok=True)


@pytest.mark.parametrize("day", sorted(CASES))
@pytest.mark.parametrize("spec", [VIX, VIX9D], ids=["VIX", "VIX9D"])
def test_real_chain_book_vix_equals_vix_batch(day: str, spec) -> None:
    book, snap, rate = _load(day)
    ref = vix_batch(snap.expiry_ts_ns, snap.strike, snap.right, snap.bid, snap.ask,
                    snap.asof_ts_ns, rate, spec)
    got = book.vix(snap.asof_ts_ns, spec)
    assert got.ok and ref.ok, (got.reason, ref.reason)
    assert math.isclose(got.value, ref.value, rel_tol=1e-12)
    for x, y in ((got.near, ref.near), (got.next, ref.next)):
        assert (x.expiry_ts_ns, x.k_star, x.k0, x.n_strikes) == (y.expiry_ts_ns, y.k_star, y.k0,
                                                                 y.n_strikes)


@pytest.mark.parametrize("day", sorted(CASES))
def test_real_chain_gex_vs_squeezemetrics_and_vendor_gamma(day: str, record_property) -> None:
    """Naive GEX ($ per 1%, calls +, puts −) vs SqueezeMetrics' published GEX and the vendor's gamma.

    Units agree ($ per 1% move) but SqueezeMetrics uses its own positioning model over all
    SPX/SPXW series, so only the order of magnitude is asserted (within 10×) and the sign recorded.
    The vendor's gamma column (its own IVs, r, q, T and time of day) gives the unsigned call and
    put gamma $ within 10% (measured ≤ 3.6%). The net is a difference of two sums of ~1e11 and
    only ~1e9–2e10 in size (on 2025-01-06 ours −1.5e9, vendor +1.0e9), so it is compared relative
    to the gross: within 5% of it (measured ≤ 1.6%). Walls are real strikes near spot and the
    flip lies on the grid.
    """
    book, snap, _ = _load(day)
    ex = book.exposures()
    ours = ex.total.gex_usd_per_pct
    theirs = _squeeze()[day]
    record_property("gex_ours", ours)
    record_property("gex_squeezemetrics", theirs)
    record_property("sign_agrees", (ours > 0) == (theirs > 0))
    assert 0.1 < abs(ours) / abs(theirs) < 10.0
    alive = snap.expiry_ts_ns > snap.asof_ts_ns
    call = snap.right == "C"
    vendor = np.nan_to_num(snap.gamma) * np.nan_to_num(snap.open_interest) * 100 * snap.spot**2 * 0.01
    v_call, v_put = float(vendor[alive & call].sum()), float(vendor[alive & ~call].sum())
    o_call, o_put = float(ex.strike_call_gamma.sum()), float(ex.strike_put_gamma.sum())
    record_property("gex_vendor_gamma", v_call - v_put)
    assert abs(o_call / v_call - 1) < 0.1 and abs(o_put / v_put - 1) < 0.1
    assert math.isclose(ours, o_call - o_put, rel_tol=1e-9)          # the naive signs
    assert abs(ours - (v_call - v_put)) < 0.05 * (v_call + v_put)
    grid, _, _ = book.profile()
    flip = book.gamma_flip()
    assert math.isnan(flip) or grid[0] < flip < grid[-1]
    for w in book.walls():
        assert abs(w / snap.spot - 1) < 0.1
