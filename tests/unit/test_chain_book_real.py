"""ChainBook on real Cboe chains (/work/shared/data): exposures vs exposures_batch, VIX vs vix_batch.

The chain is replayed as a feed would deliver it: open interest, then quotes in batches of 1,000
rows in file order, all stamped at the snapshot time; the book solves its own IVs. Tolerances:
aggregates within 1e-9 of the gross (revert-then-add rounding, see test_chain_book_props.py);
VIX within 1e-12 relative (same arithmetic, both sum the strip with math.fsum).
"""
from __future__ import annotations

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
