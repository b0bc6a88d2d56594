"""streamer.history's loader of the leveraged funds' underlyings (../shared/data/equities): every aligned
close equals the file's value for that date (read here with the plain csv module), NaN where the file has
none; NDX from the index file; load_history(underlyings=) aligned on the SPX sessions."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from conftest import require_shared_data

from streamer.core.flows.config import FlowConfig
from streamer.history import equity_file, load_equities, load_history

DATA = require_shared_data()
SYMBOLS = FlowConfig.default().leveraged_etf.symbols  # NDX, QQQ, SOXX, SMH, NVDA, TSLA, MSTR, COIN


def plain(path, column: str) -> dict[str, float]:
    """date -> value, the reference reading of one file."""
    with open(path, newline="") as fh:
        return {r["date"]: float(r[column]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def hist():
    return load_history(DATA, underlyings=SYMBOLS)


def test_every_fund_underlying_has_a_file():
    for sym in SYMBOLS:
        path, col = equity_file(sym, DATA)
        assert path.exists(), sym
        assert col == ("close" if sym == "NDX" else "adj_close")
    assert equity_file("NDX", DATA)[0].name == "ndx_index_daily_ohlc.csv"


def test_aligned_closes_equal_the_files_on_the_spx_dates(hist):
    assert list(hist.underlyings) == list(SYMBOLS)
    for sym in SYMBOLS:
        path, col = equity_file(sym, DATA)
        ref = plain(path, col)
        v = hist.underlyings[sym]
        assert len(v) == len(hist.dates)
        for d, x in zip(hist.dates, v.tolist()):
            if d in ref:
                assert x == ref[d], (sym, d)
            else:
                assert math.isnan(x), (sym, d)
        assert hist.sources[f"equities:{sym}"] == str(path)
    # listed later than the SPX file starts: NaN before the first print, a close on every session after
    coin = hist.underlyings["COIN"]
    first = hist.dates.index("2021-04-14")
    assert np.isnan(coin[:first]).all() and np.isfinite(coin[first:]).all()
    for sym in ("NDX", "QQQ", "SOXX", "NVDA", "TSLA"):
        assert np.isfinite(hist.underlyings[sym]).all(), sym  # every SPX session 2015-2026 has a close


def test_election_day_returns(hist):
    """SOURCES.md's 2024-11-06 changes: NDX +2.74% (index), QQQ +2.72%, SOXX +2.92%, SMH +2.62%,
    NVDA +4.07%, TSLA +14.75%, MSTR +13.17%, COIN +31.11%."""
    i = hist.dates.index("2024-11-06")
    want = {"NDX": 0.0274, "QQQ": 0.0272, "SOXX": 0.0292, "SMH": 0.0262, "NVDA": 0.0407, "TSLA": 0.1475,
            "MSTR": 0.1317, "COIN": 0.3111}
    for sym, r in want.items():
        v = hist.underlyings[sym]
        assert v[i] / v[i - 1] - 1 == pytest.approx(r, abs=6e-5), sym
    assert hist.underlyings["NDX"][i] == pytest.approx(20781.33, abs=0.01)


def test_load_equities_union_dates_on_and_returns(hist):
    eq = load_equities(["coin", "NDX"], DATA)  # case-insensitive symbols, union of the files' dates
    assert list(eq.closes) == ["COIN", "NDX"]
    assert eq.dates == sorted(set(plain(equity_file("COIN", DATA)[0], "adj_close"))
                              | set(plain(equity_file("NDX", DATA)[0], "close")))
    assert eq.dates[0] == "1985-10-01"                   # NDX's first day; COIN NaN there
    assert eq.on("1985-10-01") == {"NDX": pytest.approx(112.13999938964844)}
    assert set(eq.on("2024-11-06")) == {"COIN", "NDX"}
    assert eq.on("2024-11-09") == {}                     # a Saturday: no row
    r = eq.returns("COIN")
    i = eq.dates.index("2024-11-06")
    assert r[i] == pytest.approx(254.31 / 193.96 - 1, abs=1e-6)
    assert math.isnan(r[0])
    # aligned on given dates: the same values as load_history's
    on_spx = load_equities(SYMBOLS, DATA, dates=hist.dates)
    for sym in SYMBOLS:
        assert np.array_equal(on_spx.closes[sym], hist.underlyings[sym], equal_nan=True)


def test_missing_files_and_bad_dates():
    with pytest.raises(FileNotFoundError):
        load_equities(["NDX", "NOSUCHSYM"], DATA)
    eq = load_equities(["NDX", "NOSUCHSYM"], DATA, missing="skip")
    assert list(eq.closes) == ["NDX"]
    with pytest.raises(ValueError):
        load_equities(["NDX"], DATA, dates=["2024-11-06", "2024-11-05"])
    assert load_history(DATA).underlyings == {}  # nothing asked, nothing read
