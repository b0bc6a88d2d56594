"""One-row-per-contract chains (``streamer.contract_rows_csv``) read back exactly what quotedata holds.

Every real Cboe quotedata chain in the shared data folder is re-written in tmp_path as (a) a Cboe
DataShop "Option EOD Summary" file, (b) a generic export with one OCC symbol column (plain, Polygon
``O:`` and padded 21-character forms mixed) and (c) a generic export with separate expiration (MM/DD/YYYY)
/ strike / put-call columns, IV in percent, "Call"/"put" spelled out and the rows shuffled. The reader
must give back the same arrays (after sorting both by symbol), spot and time, and ``chain_report.report``
must print the same report. Then the error paths: each names the file, the line and the column.
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import random
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, require_shared_data

from streamer import chain_report
from streamer.cboe_csv import NY, ChainSnapshot, ny_ts_ns, read_quotedata
from streamer.contract_rows_csv import looks_like_contract_rows, read_contract_rows
from streamer.core.calendar import options_close_ns, prices_time_ns

CHAINS = require_shared_data(SHARED_DATA / "option_chains")
FILES = sorted(p.name for p in CHAINS.glob("*.csv"))
SMALL = ["spy_quotedata_2025-09-25_close.csv", "spx_quotedata_2024-11-08_close_nearATM_novexp.csv"]
ARRAYS = ("symbol", "root", "expiry_ts_ns", "strike", "right", "bid", "ask", "last", "net", "volume",
          "iv", "delta", "gamma", "open_interest")
RATE, DIV = 0.05, 0.013

DATASHOP_EOD = ["underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type", "open",
                "high", "low", "close", "trade_volume", "bid_size_1545", "bid_1545", "ask_size_1545",
                "ask_1545", "underlying_bid_1545", "underlying_ask_1545", "implied_underlying_price_1545",
                "active_underlying_price_1545", "implied_volatility_1545", "delta_1545", "gamma_1545",
                "theta_1545", "vega_1545", "rho_1545", "bid_size_eod", "bid_eod", "ask_size_eod", "ask_eod",
                "underlying_bid_eod", "underlying_ask_eod", "vwap", "open_interest", "delivery_code"]


@pytest.fixture(scope="module")
def originals() -> dict[str, ChainSnapshot]:
    return {f: read_quotedata(CHAINS / f) for f in FILES}


def num(x: float) -> str:
    """Shortest text that reads back as the same float ('' for NaN)."""
    return "" if math.isnan(x) else repr(float(x))


def pct(x: float) -> str:
    """The fraction as exact percent text (0.1234 -> '12.34')."""
    return "" if math.isnan(x) else str(Decimal(repr(float(x))).scaleb(2).normalize())


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def ny(ts_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=NY)


def expiry_day(s: ChainSnapshot, j: int) -> dt.date:
    return ny(int(s.expiry_ts_ns[j])).date()


def to_datashop_eod(s: ChainSnapshot, path: Path, day: dt.date, *, eod: bool = True) -> Path:
    """The snapshot as a DataShop EOD file: EOD quotes = the snapshot's, the 15:45 ones deliberately off."""
    rows = []
    for j in range(len(s)):
        b, a = float(s.bid[j]), float(s.ask[j])
        d = {"underlying_symbol": "^" + s.underlying, "quote_date": day.isoformat(), "root": s.root[j],
             "expiration": expiry_day(s, j).isoformat(), "strike": num(s.strike[j]),
             "option_type": s.right[j], "open": "0", "high": "0", "low": "0", "close": num(s.last[j]),
             "trade_volume": num(s.volume[j]), "bid_size_1545": "10", "bid_1545": num(b + 1.0),
             "ask_size_1545": "10", "ask_1545": num(a + 1.0), "underlying_bid_1545": num(s.spot - 7),
             "underlying_ask_1545": num(s.spot - 5), "implied_underlying_price_1545": num(s.spot + 2),
             "active_underlying_price_1545": num(s.spot + 3), "implied_volatility_1545": num(s.iv[j]),
             "delta_1545": num(s.delta[j]), "gamma_1545": num(s.gamma[j]), "theta_1545": "0",
             "vega_1545": "0", "rho_1545": "0", "bid_size_eod": "5", "bid_eod": num(b), "ask_size_eod": "5",
             "ask_eod": num(a), "underlying_bid_eod": num(s.spot), "underlying_ask_eod": num(s.spot),
             "vwap": "0", "open_interest": num(s.open_interest[j]), "delivery_code": ""}
        if not eod:
            d["bid_1545"], d["ask_1545"] = num(b), num(a)
            d["underlying_bid_1545"] = d["underlying_ask_1545"] = num(s.spot)
        rows.append(d)
    header = DATASHOP_EOD if eod else [h for h in DATASHOP_EOD if not h.endswith("_eod")]
    return write(path, header, [[d[h] for h in header] for d in rows])


def to_osi(s: ChainSnapshot, path: Path, stamp: str) -> Path:
    """Generic export with one OCC symbol column in three spellings and a quote timestamp."""
    rows = []
    for j in range(len(s)):
        sym = str(s.symbol[j])
        if j % 3 == 1:
            sym = "O:" + sym
        elif j % 3 == 2:
            sym = f"{sym[:-15]:<6}{sym[-15:]}"     # padded OSI: root in 6 characters
        rows.append([sym, num(s.bid[j]), num(s.ask[j]), num(s.last[j]), num(s.net[j]), num(s.volume[j]),
                     num(s.open_interest[j]), num(s.iv[j]), num(s.delta[j]), num(s.gamma[j]),
                     num(s.spot), stamp])
    return write(path, ["symbol", "bid", "ask", "last", "change", "volume", "open_interest", "iv", "delta",
                        "gamma", "underlying_price", "timestamp"], rows)


def to_columns(s: ChainSnapshot, path: Path, stamp: str, *, root: bool = True, seed: int = 7) -> Path:
    """Generic export with separate columns, US dates, percent IVs, rights spelled out, rows shuffled."""
    rows = []
    for j in range(len(s)):
        right = ("Call" if j % 2 else "CALL") if s.right[j] == "C" else ("put" if j % 2 else "P")
        rows.append(([str(s.root[j])] if root else []) + [
            expiry_day(s, j).strftime("%m/%d/%Y"), num(s.strike[j]), right, num(s.bid[j]), num(s.ask[j]),
            num(s.last[j]), num(s.net[j]), num(s.volume[j]), num(s.open_interest[j]), pct(s.iv[j]),
            num(s.delta[j]), num(s.gamma[j]), num(s.spot), stamp])
    random.Random(seed).shuffle(rows)
    return write(path, (["Root"] if root else []) + [
        "Expiration Date", "Strike", "Put/Call", "Bid", "Ask", "Last Price", "Net Change", "Volume",
        "Open Int", "IV", "Delta", "Gamma", "Underlying Price", "Date"], rows)


def assert_same(got: ChainSnapshot, want: ChainSnapshot, skip: tuple[str, ...] = ()) -> None:
    og, ow = np.argsort(got.symbol, kind="stable"), np.argsort(want.symbol, kind="stable")
    assert len(got) == len(want)
    for n in ARRAYS:
        if n in skip:
            continue
        a, b = getattr(got, n)[og], getattr(want, n)[ow]
        assert a.dtype.kind == b.dtype.kind, n
        if a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), (n, a[a != b][:5], b[a != b][:5])
        else:
            assert np.array_equal(a, b), n
    assert got.underlying == want.underlying
    assert got.spot == want.spot


def stamp_of(s: ChainSnapshot) -> str:
    return ny(s.asof_ts_ns).isoformat()      # with its offset, e.g. 2023-09-14T16:15:00-04:00


def same_report(got: ChainSnapshot, want: ChainSnapshot) -> None:
    """Same report, with ``want``'s contracts taken in ``got``'s (file) order: the report's sums run in
    contract order, so a shuffled file differs in the last bits of a sum only by that order."""
    at = {x: i for i, x in enumerate(want.symbol.tolist())}
    want = want.select(np.array([at[x] for x in got.symbol.tolist()]))
    a = chain_report.report(got, RATE, DIV)
    b = chain_report.report(want, RATE, DIV)
    for d in (a, b):
        for k in ("files", "file_date_line", "asof_basis"):
            d.pop(k, None)
    assert a == b


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("name", FILES)
def test_datashop_eod_round_trip(name: str, originals: dict, tmp_path: Path) -> None:
    s = originals[name]
    day = ny(s.asof_ts_ns).date()
    got = read_contract_rows(to_datashop_eod(s, tmp_path / "eod.csv", day))
    assert_same(got, s, skip=("net",))
    assert np.isnan(got.net).all()                     # DataShop has no net change
    assert got.asof_ts_ns == options_close_ns(day, s.underlying)
    assert ny(got.asof_ts_ns).strftime("%H:%M") == "16:15"   # SPX and SPY options close at 16:15


@pytest.mark.parametrize("name", FILES)
def test_osi_symbol_round_trip(name: str, originals: dict, tmp_path: Path) -> None:
    s = originals[name]
    got = read_contract_rows(to_osi(s, tmp_path / "osi.csv", stamp_of(s)))
    assert_same(got, s)
    assert got.asof_ts_ns == prices_time_ns(s.asof_ts_ns, str(s.root[0]))


@pytest.mark.parametrize("name", FILES)
def test_separate_columns_round_trip(name: str, originals: dict, tmp_path: Path) -> None:
    s = originals[name]
    naive = ny(s.asof_ts_ns).strftime("%Y-%m-%d %H:%M")     # naive = New York wall clock
    got = read_contract_rows(to_columns(s, tmp_path / "cols.csv", naive))
    assert_same(got, s)
    assert got.asof_ts_ns == prices_time_ns(s.asof_ts_ns, str(s.root[0]))
    assert "percent" in got.description


@pytest.mark.parametrize("name", SMALL)
def test_reports_identical(name: str, originals: dict, tmp_path: Path) -> None:
    s = originals[name]
    t = prices_time_ns(s.asof_ts_ns, str(s.root[0]))
    want = replace(s, asof_ts_ns=t)
    same_report(read_contract_rows(to_osi(s, tmp_path / "osi.csv", stamp_of(s))), want)
    same_report(read_contract_rows(to_columns(s, tmp_path / "cols.csv", stamp_of(s))), want)
    day = ny(s.asof_ts_ns).date()
    eod = read_contract_rows(to_datashop_eod(s, tmp_path / "eod.csv", day))
    same_report(eod, replace(s, asof_ts_ns=options_close_ns(day, s.underlying)))


def test_report_through_load_with_asof(originals: dict, tmp_path: Path) -> None:
    """The full SPX 2023-09-14 chain as DataShop EOD: the report equals load(quotedata, asof=16:15)."""
    name = "spx_quotedata_2023-09-14_close.csv"
    s = originals[name]
    eod = read_contract_rows(to_datashop_eod(s, tmp_path / "eod.csv", dt.date(2023, 9, 14)))
    same_report(eod, chain_report.load([CHAINS / name], ny_ts_ns(2023, 9, 14, 16, 15)))


def test_datashop_1545_only(originals: dict, tmp_path: Path) -> None:
    s = originals["spy_quotedata_2025-09-25_close.csv"]
    got = read_contract_rows(to_datashop_eod(s, tmp_path / "q.csv", dt.date(2025, 9, 25), eod=False))
    assert_same(got, s, skip=("net",))
    assert got.asof_ts_ns == ny_ts_ns(2025, 9, 25, 15, 45)
    # on a half day the "1545" snapshot is taken at 12:45
    got = read_contract_rows(to_datashop_eod(s, tmp_path / "h.csv", dt.date(2024, 11, 29), eod=False))
    assert got.asof_ts_ns == ny_ts_ns(2024, 11, 29, 12, 45)
    got = read_contract_rows(to_datashop_eod(s, tmp_path / "o.csv", dt.date(2019, 11, 29), eod=False))
    assert got.asof_ts_ns == ny_ts_ns(2019, 11, 29, 13, 15)      # before 2020-02-05: the (SPY) close


def test_datashop_index_without_underlying_quotes(originals: dict, tmp_path: Path) -> None:
    """Indexes without a Cboe index licence have underlying bid/ask 0: spot = active_underlying_price."""
    s = originals["spx_quotedata_2024-11-08_close_nearATM_novexp.csv"]
    p = to_datashop_eod(s, tmp_path / "q.csv", dt.date(2024, 11, 8))
    text = p.read_text().splitlines()
    hdr = text[0].split(",")
    ib, ia = hdr.index("underlying_bid_eod"), hdr.index("underlying_ask_eod")
    rows = [r.split(",") for r in text[1:]]
    for r in rows:
        r[ib] = r[ia] = "0"
    write(p, hdr, rows)
    got = read_contract_rows(p)
    assert got.spot == s.spot + 3          # active_underlying_price_1545 as written by to_datashop_eod
    assert "active_underlying_price_1545" in got.description


def test_root_inferred_from_underlying(originals: dict, tmp_path: Path) -> None:
    """No root column: SPX third Fridays are the AM monthlies, other days the PM weeklies (SPXW)."""
    s = originals["spx_quotedata_2024-01-05_close.csv"]
    third = np.array([(d := expiry_day(s, j)).weekday() == 4 and 15 <= d.day <= 21 for j in range(len(s))])
    # the file lists both series on monthly dates: keep the AM one there (as a root-less vendor would)
    keep = ~third | (s.root == "SPX")
    sub = s.select(keep)
    assert set(sub.root.tolist()) == {"SPX", "SPXW"}
    got = read_contract_rows(to_columns(sub, tmp_path / "c.csv", stamp_of(s), root=False), underlying="SPX")
    assert_same(got, sub)
    # with both series on a monthly date and no root, the rows are refused, not merged
    with pytest.raises(ValueError, match=r"c2.csv: line \d+: contract SPX24\d{4}[CP]\d{8} already on line \d+"
                                         r" \(no root column"):
        read_contract_rows(to_columns(s, tmp_path / "c2.csv", stamp_of(s), root=False), underlying="SPX")


# --------------------------------------------------------------------------- detection

def test_looks_like_contract_rows(originals: dict, tmp_path: Path) -> None:
    for f in FILES:
        assert not looks_like_contract_rows(CHAINS / f)
    s = originals["spy_quotedata_2025-09-25_close.csv"]
    assert looks_like_contract_rows(to_datashop_eod(s, tmp_path / "a.csv", dt.date(2025, 9, 25)))
    assert looks_like_contract_rows(to_datashop_eod(s, tmp_path / "a2.csv", dt.date(2025, 9, 25), eod=False))
    assert looks_like_contract_rows(to_osi(s, tmp_path / "b.csv", stamp_of(s)))
    assert looks_like_contract_rows(to_columns(s, tmp_path / "c.csv", stamp_of(s)))
    assert looks_like_contract_rows(write(tmp_path / "d.csv", ["underlying_symbol", "quote_datetime", "root",
                                    "expiration", "strike", "option_type", "bid", "ask"], []))
    assert not looks_like_contract_rows(write(tmp_path / "e.csv", ["date", "open", "high", "low", "close"], []))
    assert not looks_like_contract_rows(write(tmp_path / "f.csv", ["bid", "ask", "last", "volume"], []))
    # names contracts but lacks the ask: detected, and the reader says what is missing
    assert looks_like_contract_rows(write(tmp_path / "g.csv", ["symbol", "bid"], []))


# --------------------------------------------------------------------------- errors

SAMPLE = ["symbol,bid,ask,underlying_price,quote_date",
          "SPXW241106C05900000,10.5,11.0,5900.5,2024-11-05",
          "SPXW241106P05900000,9.5,10.0,5900.5,2024-11-05"]


def sample(tmp_path: Path, lines: list[str], name: str = "s.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_small_sample_values(tmp_path: Path) -> None:
    got = read_contract_rows(sample(tmp_path, SAMPLE))
    assert got.underlying == "SPX" and got.spot == 5900.5
    assert got.asof_ts_ns == ny_ts_ns(2024, 11, 5, 16, 15)
    assert got.expiry_ts_ns.tolist() == [ny_ts_ns(2024, 11, 6, 16, 0)] * 2
    assert got.right.tolist() == ["C", "P"] and got.strike.tolist() == [5900.0, 5900.0]
    assert np.isnan(got.iv).all() and np.isnan(got.open_interest).all()


def test_missing_bid_column(tmp_path: Path) -> None:
    p = sample(tmp_path, [SAMPLE[0].replace("bid,", "bidsize,")] + SAMPLE[1:])
    with pytest.raises(ValueError, match=r"s.csv: line 1: not an option chain .* no bid \(header: symbol, "):
        read_contract_rows(p)
    assert looks_like_contract_rows(p)
    hdr = DATASHOP_EOD[:6] + ["bid_size_eod", "underlying_bid_eod", "open_interest"]
    p = write(tmp_path / "ds.csv", hdr, [["^SPX", "2024-11-05", "SPXW", "2024-11-06", "5900", "C", "1", "1", "1"]])
    assert looks_like_contract_rows(p)
    with pytest.raises(ValueError, match=r"ds.csv: line 1: .* no bid_eod/ask_eod or bid_1545/ask_1545"):
        read_contract_rows(p)


@pytest.mark.parametrize("row, error", [
    ("2024-11-06,59OO,C,1.0,1.5,5900,2024-11-05", r"line 4, column 'Strike': expected a number, got '59OO'"),
    ("2024-11-06,-5,C,1.0,1.5,5900,2024-11-05", r"line 4, column 'Strike': expected a positive strike"),
    ("2024-11-06,5900,X,1.0,1.5,5900,2024-11-05", r"line 4, column 'Type': expected C/P/call/put, got 'X'"),
    ("2024-13-06,5900,C,1.0,1.5,5900,2024-11-05", r"line 4, column 'Expiration': expected an expiration date"),
    ('2024-11-06,5900,C,"1,5",1.5,5900,2024-11-05', r"line 4, column 'Bid': expected a number, got '1,5' \(decimal"),
])
def test_bad_field_names_line_and_column(tmp_path: Path, row: str, error: str) -> None:
    lines = ["Expiration,Strike,Type,Bid,Ask,Spot,Date"] + [
        f"2024-11-06,{k},{r},1.0,1.5,5900,2024-11-05" for k in (5800, 5900) for r in "CP"]
    lines[3] = row
    with pytest.raises(ValueError, match=r"s.csv: " + error):
        read_contract_rows(sample(tmp_path, lines), underlying="SPX")


def test_bad_symbol_and_short_row(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"line 3, column 'symbol': expected an OCC option symbol"):
        read_contract_rows(sample(tmp_path, SAMPLE[:2] + ["SPXW 5900 Put,9.5,10.0,5900.5,2024-11-05"]))
    with pytest.raises(ValueError, match=r"line 2: 3 fields, the header has 5"):
        read_contract_rows(sample(tmp_path, [SAMPLE[0], "SPXW241106C05900000,10.5,11.0", SAMPLE[2]]))
    # a one-cell footer ("Downloaded from ...") after the data is not a row
    got = read_contract_rows(sample(tmp_path, SAMPLE + ["Downloaded from example.com 11/05/2024"]))
    assert len(got) == 2


def test_bad_quotes_are_kept(tmp_path: Path) -> None:
    got = read_contract_rows(sample(tmp_path, [SAMPLE[0], "SPXW241106C05900000,12.0,11.0,5900.5,2024-11-05",
                                               "SPXW241106P05900000,-1,,5900.5,2024-11-05"]))
    assert got.bid[0] == 12.0 and got.ask[0] == 11.0 and got.bid[1] == -1.0 and np.isnan(got.ask[1])


DATASHOP_Q = "underlying_symbol,quote_datetime,root,expiration,strike,option_type,bid,ask,underlying_bid,underlying_ask"


def test_two_quote_datetimes(tmp_path: Path) -> None:
    lines = [DATASHOP_Q] + [f"^SPX,2024-11-05 {t},SPXW,2024-11-06,5900,{r},1.0,1.5,5900,5901"
                            for t in ("15:30:00", "15:31:00") for r in "CP"]
    p = sample(tmp_path, lines)
    with pytest.raises(ValueError, match=r"s.csv: column 'quote_datetime' holds 2 snapshots .*"
                                         r"2024-11-05 15:30:00 \.\. 2024-11-05 15:31:00.*--asof"):
        read_contract_rows(p)
    got = read_contract_rows(p, asof_ts_ns=ny_ts_ns(2024, 11, 5, 15, 31))
    assert len(got) == 2 and got.asof_ts_ns == ny_ts_ns(2024, 11, 5, 15, 31) and got.spot == 5900.5
    with pytest.raises(ValueError, match=r"--asof 2024-11-05 15:32:00 is none of the file's 2 snapshots"):
        read_contract_rows(p, asof_ts_ns=ny_ts_ns(2024, 11, 5, 15, 32))
    got = read_contract_rows(sample(tmp_path, lines[:3], "one.csv"))
    assert got.asof_ts_ns == ny_ts_ns(2024, 11, 5, 15, 30) and got.underlying == "SPX"


def test_missing_asof_and_spot(tmp_path: Path) -> None:
    no_date = [",".join(r.split(",")[:4]) for r in SAMPLE]
    with pytest.raises(ValueError, match=r"s.csv: no quote date/time column .*--asof"):
        read_contract_rows(sample(tmp_path, no_date))
    got = read_contract_rows(sample(tmp_path, no_date), asof_ts_ns=ny_ts_ns(2024, 11, 5, 12, 0))
    assert got.asof_ts_ns == ny_ts_ns(2024, 11, 5, 12, 0)
    no_spot = [",".join(r.split(",")[:3] + r.split(",")[4:]) for r in SAMPLE]
    with pytest.raises(ValueError, match=r"s.csv: no underlying price: .*--spot parity"):
        read_contract_rows(sample(tmp_path, no_spot))
    assert math.isnan(read_contract_rows(sample(tmp_path, no_spot), require_spot=False).spot)


def test_several_underlyings(tmp_path: Path) -> None:
    lines = ["underlying,expiration,strike,type,bid,ask,underlying_price,date",
             "SPY,2024-11-06,590,C,1,2,590.1,2024-11-05", "QQQ,2024-11-06,500,C,1,2,500.2,2024-11-05"]
    with pytest.raises(ValueError, match=r"holds several underlyings \(QQQ, SPY\)"):
        read_contract_rows(sample(tmp_path, lines))
    got = read_contract_rows(sample(tmp_path, lines), underlying="QQQ")
    assert got.symbol.tolist() == ["QQQ241106C00500000"] and got.spot == 500.2
    with pytest.raises(ValueError, match=r"s.csv: the file's underlying is SPY \(column 'underlying'\), not IWM"):
        read_contract_rows(sample(tmp_path, lines[:2]), underlying="IWM")


def test_dates_day_first_and_mixed(tmp_path: Path) -> None:
    lines = ["expiration,strike,type,bid,ask,spot,date",
             "15/11/2024,590,C,1,2,590,05/11/2024", "06/11/2024,590,C,1,2,590,05/11/2024"]
    got = read_contract_rows(sample(tmp_path, lines), underlying="SPY")
    assert sorted(got.symbol.tolist()) == ["SPY241106C00590000", "SPY241115C00590000"]
    assert got.asof_ts_ns == ny_ts_ns(2024, 11, 5, 16, 15)    # 05/11 read day-first like the expirations
    got = read_contract_rows(sample(tmp_path, [lines[0], "11/15/2024,590,C,1,2,590,11/05/2024"]),
                             underlying="SPY")
    assert got.symbol.tolist() == ["SPY241115C00590000"] and got.asof_ts_ns == ny_ts_ns(2024, 11, 5, 16, 15)
    lines.append("11/13/2024,590,P,1,2,590,05/11/2024")
    with pytest.raises(ValueError, match=r"DD/MM/YYYY \(column 'expiration' line 2\) and MM/DD/YYYY \(column "
                                         r"'expiration' line 4\) dates in one file"):
        read_contract_rows(sample(tmp_path, lines), underlying="SPY")


def test_symbol_and_columns_must_agree(tmp_path: Path) -> None:
    lines = ["contract,expiration,strike,type,bid,ask,spot,date",
             "SPY241106C00590000,2024-11-06,590,C,1,2,590,2024-11-05",
             "SPY241106C00590000,2024-11-06,591,P,1,2,590,2024-11-05"]
    with pytest.raises(ValueError, match=r"line 3: symbol 'SPY241106C00590000' disagrees with columns"):
        read_contract_rows(sample(tmp_path, lines))


def test_flattened_json_and_epoch_times(tmp_path: Path) -> None:
    """A Polygon-style snapshot flattened by pandas (dotted names, ns epoch quote times, fraction IVs)."""
    t = ny_ts_ns(2024, 11, 5, 15, 59)
    lines = ["details.ticker,details.strike_price,last_quote.bid,last_quote.ask,greeks.delta,"
             "implied_volatility,open_interest,underlying_asset.price,last_quote.last_updated",
             f"O:SPY241106C00590000,590,1.5,1.6,0.5,0.151,100,590.5,{t - 60 * 10**9}",
             f"O:SPY241106P00590000,590,1.4,1.5,-0.5,0.149,200,590.5,{t}"]
    got = read_contract_rows(sample(tmp_path, lines))
    assert got.symbol.tolist() == ["SPY241106C00590000", "SPY241106P00590000"]
    assert got.bid.tolist() == [1.5, 1.4] and got.delta.tolist() == [0.5, -0.5]
    assert got.iv.tolist() == [0.151, 0.149] and got.spot == 590.5
    assert got.asof_ts_ns == t                     # the newest quote time of the day


def test_datashop_vintages(tmp_path: Path) -> None:
    """Older DataShop files: lower-case option_type, no root column, several quote dates per file."""
    hdr = ("underlying_symbol,quote_date,expiration,strike,option_type,open,high,low,close,trade_volume,"
           "bid_size_eod,bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,underlying_ask_eod,vwap,open_interest,"
           "delivery_code")
    lines = [hdr, "^SPX,2016-06-01,2016-06-17,2100.000,c,1,1,1,1,5,10,12.5000,10,13.1000,2099.0,2100.0,0,100,",
             "^SPX,2016-06-01,2016-06-10,2100.000,p,1,1,1,1,5,10,9.5000,10,9.9000,2099.0,2100.0,0,200,",
             "^SPX,2016-06-02,2016-06-10,2100.000,p,1,1,1,1,5,10,9.0000,10,9.4000,2101.0,2102.0,0,200,"]
    p = sample(tmp_path, lines)
    assert looks_like_contract_rows(p)
    with pytest.raises(ValueError, match=r"holds 2 snapshots \(one per day, 2016-06-01 \.\. 2016-06-02\)"):
        read_contract_rows(p)
    got = read_contract_rows(p, asof_ts_ns=ny_ts_ns(2016, 6, 1, 16, 15))
    # no root: the third-Friday expiry is the AM monthly (09:30), the other the PM weekly
    assert got.symbol.tolist() == ["SPX160617C02100000", "SPXW160610P02100000"]
    assert got.expiry_ts_ns.tolist() == [ny_ts_ns(2016, 6, 17, 9, 30), ny_ts_ns(2016, 6, 10, 16, 0)]
    assert got.bid.tolist() == [12.5, 9.5] and got.spot == 2099.5 and got.underlying == "SPX"
    assert got.asof_ts_ns == ny_ts_ns(2016, 6, 1, 16, 15)


def test_strike_units(tmp_path: Path) -> None:
    """Strikes in 1/1000 dollars (ThetaData v2: 590000 = $590) are scaled; other mismatches refused."""
    lines = ["root,expiration,strike,right,bid,ask,underlying_price,date",
             "SPY,20241106,590000,C,1.5,1.6,590.5,20241105", "SPY,20241106,595000,P,4.4,4.5,590.5,20241105"]
    got = read_contract_rows(sample(tmp_path, lines))
    assert got.strike.tolist() == [590.0, 595.0]
    assert got.symbol.tolist() == ["SPY241106C00590000", "SPY241106P00595000"]
    assert "1/1000" in got.description
    lines[1] = lines[1].replace(",590.5,", ",5.905,")       # spot in the wrong unit
    lines[2] = lines[2].replace(",590.5,", ",5.905,")
    lines[1] = lines[1].replace("590000", "590")
    lines[2] = lines[2].replace("595000", "595")
    with pytest.raises(ValueError, match=r"column 'strike': the median strike 592.5 is 100 x the spot 5.905"):
        read_contract_rows(sample(tmp_path, lines))


def test_percent_iv_exact() -> None:
    from streamer.contract_rows_csv import _percent_to_fraction
    vals = [0.1234, 0.07, 1.2345678901234567, 0.000123]
    got = _percent_to_fraction([pct(v) for v in vals] + ["", "14.5%"])
    assert got[:4].tolist() == vals and math.isnan(got[4]) and got[5] == 0.145


# --------------------------------------------------------------------------- through the command

def _cli_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    import json

    from streamer import cli
    assert cli.main(["chain", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_command_reads_a_datashop_file_like_the_quotedata_one(originals: dict, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """`streamer chain` tells the layouts apart by the header: the SPY 2025-09-25 chain as a DataShop EOD
    file gives the report of the quotedata file valued at the same close."""
    name = "spy_quotedata_2025-09-25_close.csv"
    eod = to_datashop_eod(originals[name], tmp_path / "eod.csv", dt.date(2025, 9, 25))
    got = _cli_json(capsys, str(eod), "--rate", str(RATE), "--div-yield", str(DIV))
    want = _cli_json(capsys, str(CHAINS / name), "--rate", str(RATE), "--div-yield", str(DIV),
                     "--asof", "2025-09-25T16:15")
    for d in (got, want):
        for k in ("files", "file_date_line", "asof_basis"):
            d.pop(k, None)
    assert got == want


def test_the_command_without_a_spot_uses_parity_and_refuses_last(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from streamer import cli
    no_spot = sample(tmp_path, [",".join(r.split(",")[:3] + r.split(",")[4:]) for r in SAMPLE])
    d = _cli_json(capsys, str(no_spot))
    assert d["spot_source"] == "parity" and d["spot"] is not None and d["file_last"] is None
    assert cli.main(["chain", str(no_spot), "--spot", "last"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamer chain: error: ") and "--spot parity" in err[0], err
