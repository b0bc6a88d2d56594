"""Tests for the Cboe quotedata reader against every file in the shared data folder."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, require_shared_data

from streamer.cboe_csv import (ChainSnapshot, combine, ny_ts_ns, read_quotedata, replay_quotes,
                               settlement_ts_ns)

DATA = SHARED_DATA
CHAINS = require_shared_data(DATA / "option_chains")

FILES = sorted(CHAINS.glob("*.csv"))

# SOURCES.md, "Open interest totals (calls / puts)", with the rounding unit of the table.
OI_TABLE = {
    "spx_quotedata_2024-01-05_close.csv": (6.14e6, 11.96e6, 0.005e6),
    "spx_quotedata_2023-09-14_close.csv": (6.66e6, 13.72e6, 0.005e6),
    "spy_quotedata_2023-09-14_close.csv": (6.91e6, 14.67e6, 0.005e6),
    "spx_quotedata_2025-01-06_close_janexp.csv": (1.75e6, 3.99e6, 0.005e6),
    "spx_quotedata_2024-11-08_close_nearATM_novexp.csv": (198e3, 110e3, 0.5e3),
}
# SOURCES.md table: rows (expiry x strike) and expiries per file.
ROWS_TABLE = {
    "spx_quotedata_2024-01-05_close.csv": (10519, 55),
    "spx_quotedata_2024-11-08_close_nearATM_novexp.csv": (280, 14),
    "spx_quotedata_2025-01-06_close_janexp.csv": (4242, 19),
    "spx_quotedata_2025-01-06_close_febexp.csv": (2172, 12),
    "spx_quotedata_2023-09-14_close.csv": (9960, 53),
    "spy_quotedata_2023-09-14_close.csv": (3646, 31),
    "spy_quotedata_2025-09-25_close.csv": (1858, 11),
}


def test_folder_has_the_seven_files() -> None:
    assert {f.name for f in FILES} == set(ROWS_TABLE)


@pytest.fixture(scope="module", params=FILES, ids=lambda p: p.name)
def parsed(request: pytest.FixtureRequest) -> tuple[Path, ChainSnapshot]:
    return request.param, read_quotedata(request.param)


def test_every_file_parses(parsed: tuple[Path, ChainSnapshot]) -> None:
    path, s = parsed
    n = len(s)
    rows, n_exp = ROWS_TABLE[path.name]
    assert n == 2 * rows
    for name in ("expiry_ts_ns", "strike", "right", "bid", "ask", "last", "volume", "iv", "delta",
                 "gamma", "open_interest", "root"):
        assert getattr(s, name).shape == (n,), name
    assert s.expiry_ts_ns.dtype == np.int64
    assert set(s.right.tolist()) == {"C", "P"}
    assert (s.right[0::2] == "C").all() and (s.right[1::2] == "P").all()
    assert np.isfinite(s.bid).all() and np.isfinite(s.ask).all()
    assert (s.ask >= s.bid).mean() > 0.99
    assert (s.strike > 0).all() and (s.open_interest >= 0).all()
    # Calendar expiries = unique dates; AM and PM series may share a date.
    dates = {dt.datetime.fromtimestamp(t / 1e9, tz=dt.timezone.utc).date() for t in s.expiry_ts_ns}
    assert len(dates) == n_exp
    assert s.underlying in ("SPX", "SPY")
    # The file's own time stamp parsed: within a few days after the option data's first expiry.
    assert s.asof_ts_ns <= s.expiry_ts_ns.min() + 3 * 86_400 * 10**9


def test_spot_equals_header_last(parsed: tuple[Path, ChainSnapshot]) -> None:
    path, s = parsed
    line2 = path.read_text().splitlines()[1]
    m = re.search(r"Last:\s*([0-9.]+)", line2)
    assert m is not None
    assert s.spot == float(m.group(1))


def test_spot_matches_daily_close_file() -> None:
    closes = {}
    for line in (DATA / "spx_daily_ohlc_2015-01-02_2026-02-27.csv").read_text().splitlines()[1:]:
        p = line.split(",")
        closes[p[0]] = float(p[4])
    for name, day in [("spx_quotedata_2023-09-14_close.csv", "2023-09-14"),
                      ("spx_quotedata_2024-01-05_close.csv", "2024-01-05"),
                      ("spx_quotedata_2025-01-06_close_janexp.csv", "2025-01-06")]:
        assert read_quotedata(CHAINS / name).spot == pytest.approx(closes[day], abs=0.01)


@pytest.mark.parametrize("name", sorted(OI_TABLE))
def test_open_interest_totals_match_sources_table(name: str) -> None:
    s = read_quotedata(CHAINS / name)
    call_oi, put_oi, unit = OI_TABLE[name]
    assert abs(s.open_interest[s.right == "C"].sum() - call_oi) <= unit
    assert abs(s.open_interest[s.right == "P"].sum() - put_oi) <= unit


def test_date_line_variants_and_override() -> None:
    s = read_quotedata(CHAINS / "spx_quotedata_2024-11-08_close_nearATM_novexp.csv")
    assert s.asof == dt.datetime(2024, 11, 11, 8, 2, tzinfo=s.asof.tzinfo)
    assert s.asof_ts_ns == ny_ts_ns(2024, 11, 11, 8, 2)
    s = read_quotedata(CHAINS / "spx_quotedata_2023-09-14_close.csv")
    assert s.asof_text.endswith("4:31 PM EDT") and s.asof_ts_ns == ny_ts_ns(2023, 9, 14, 16, 15)  # its close
    over = ny_ts_ns(2024, 1, 5, 16, 15)
    assert read_quotedata(CHAINS / "spx_quotedata_2024-01-05_close.csv", over).asof_ts_ns == over


def test_settlement_times_am_pm() -> None:
    s = read_quotedata(CHAINS / "spx_quotedata_2023-09-14_close.csv")
    # Fri 2023-10-20: standard SPX (AM, 09:30 EDT = 13:30Z) and SPXW (PM, 16:00 EDT = 20:00Z).
    oct20 = {(str(r), int(t)) for r, t in zip(s.root, s.expiry_ts_ns)
             if str(r).startswith("SPX") and int(t) // 86_400_000_000_000 == 19650}
    assert oct20 == {("SPX", ny_ts_ns(2023, 10, 20, 9, 30)), ("SPXW", ny_ts_ns(2023, 10, 20, 16, 0))}
    assert ny_ts_ns(2023, 10, 20, 9, 30) % 86_400_000_000_000 == 13 * 3600 * 10**9 + 30 * 60 * 10**9
    # Winter (EST): 16:00 ET = 21:00Z; Black Friday half day settles at 13:00 ET.
    assert settlement_ts_ns(dt.date(2024, 1, 12), "SPXW") == ny_ts_ns(2024, 1, 12, 16, 0)
    assert settlement_ts_ns(dt.date(2024, 11, 29), "SPXW") == ny_ts_ns(2024, 11, 29, 13, 0)
    spy = read_quotedata(CHAINS / "spy_quotedata_2025-09-25_close.csv")
    assert (spy.root == "SPY").all()
    assert set(((spy.expiry_ts_ns // 10**9) % 86_400).tolist()) == {20 * 3600}  # 16:00 EDT


def test_combine_jan_feb_2025() -> None:
    jan = read_quotedata(CHAINS / "spx_quotedata_2025-01-06_close_janexp.csv")
    feb = read_quotedata(CHAINS / "spx_quotedata_2025-01-06_close_febexp.csv")
    both = combine([jan, feb], asof_ts_ns=ny_ts_ns(2025, 1, 6, 16, 15))
    assert len(both) == len(jan) + len(feb)
    assert len(np.unique(both.symbol)) == len(both)
    assert both.asof_ts_ns == ny_ts_ns(2025, 1, 6, 16, 15)
    assert len(combine([jan, jan])) == len(jan)


def test_replay_quotes_messages() -> None:
    s = read_quotedata(CHAINS / "spx_quotedata_2024-11-08_close_nearATM_novexp.csv")
    msgs = list(replay_quotes(s))
    quotes = [m for k, m in msgs if k == "quote"]
    ois = [m for k, m in msgs if k == "open_interest"]
    assert len(quotes) == len(ois) == len(s)
    q = quotes[0]
    assert set(q) == {"underlying", "ts_ns", "expiry_ts_ns", "strike", "right", "bid", "ask",
                      "bid_size", "ask_size"}
    assert q["underlying"] == "SPX" and q["ts_ns"] == s.asof_ts_ns and q["right"] == "C"
    assert sum(m["open_interest"] for m in ois) == int(s.open_interest.sum())


def test_vix_options_settle_at_the_wednesday_open() -> None:
    """VIX and VIXW options are AM-settled (the special opening quotation), like the SPX monthlies."""
    from streamer.cboe_csv import settlement_ts_ns
    for root in ("VIX", "VIXW"):
        assert settlement_ts_ns(dt.date(2024, 11, 20), root) == ny_ts_ns(2024, 11, 20, 9, 30)
    assert settlement_ts_ns(dt.date(2024, 11, 20), "SPXW") == ny_ts_ns(2024, 11, 20, 16, 0)

