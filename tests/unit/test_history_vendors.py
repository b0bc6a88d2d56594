"""streamer.history.read_daily on other vendors' layouts: each test re-writes a real shared file (SPX,
VIX, DGS10 in ../shared/data) in a vendor's layout in tmp_path and asserts the reading equals the
original's exactly (dates and float values, read here with the plain csv module); then the refusals:
garbage, differing duplicate dates, ambiguous dates, each a ValueError naming file, line and column."""
from __future__ import annotations

import csv
import math
import random
from datetime import date, datetime, timezone

import numpy as np
import pytest

from conftest import require_shared_data

from streamer.history import load_history, read_daily

DATA = require_shared_data()
SPX = DATA / "spx_daily_ohlc_2015-01-02_2026-02-27.csv"
VIX = DATA / "vix_daily_ohlc_1990-2026.csv"
DGS10 = DATA / "fred_DGS10_1962-2026.csv"


def rows_of(path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def spx() -> list[dict[str, str]]:
    """The SPX file's rows (ISO dates ascending; date,open,high,low,close,adj_close,volume)."""
    return rows_of(SPX)


@pytest.fixture(scope="module")
def vix() -> list[dict[str, str]]:
    return rows_of(VIX)


def ref(rows, dcol: str, vcol: str) -> dict[str, float]:
    """date -> value, the reference reading."""
    return {r[dcol]: float(r[vcol]) for r in rows}


def same(s, want: dict[str, float]) -> None:
    """The series equals ``want`` exactly: same dates (ascending), same floats, NaN where want is NaN."""
    assert s.dates == sorted(want)
    assert np.array_equal(s.values, np.array([want[d] for d in s.dates]), equal_nan=True)


def write(path, header, rows, delimiter=",", quoting=csv.QUOTE_MINIMAL, preamble=""):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write(preamble)
        w = csv.writer(fh, delimiter=delimiter, quoting=quoting, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def iso(d: str) -> date:
    return date.fromisoformat(d)


def thousands(x: float) -> str:
    """'5,929.04': the shortest repr of x with thousands separators (reads back as exactly x)."""
    return format(x, ",")


# ------------------------------------------------------------------------------------------- vendors

def test_yahoo_close_adj_close_and_null_rows(tmp_path, spx):
    # Adj Close made different from Close, so picking the wrong column cannot pass
    rows = [[r["date"], r["open"], r["high"], r["low"], r["close"], repr(float(r["close"]) * 0.5), r["volume"]]
            for r in spx]
    rows.insert(100, ["2015-05-30", "null", "null", "null", "null", "null", "null"])   # Yahoo's blank day
    p = write(tmp_path / "^GSPC.csv", ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"], rows)
    want = ref(spx, "date", "close")
    same(read_daily(p), {**want, "2015-05-30": math.nan})
    adj = read_daily(p, "Adj Close")
    assert adj.as_dict()["2024-11-06"] == 5929.04 * 0.5
    assert np.array_equal(read_daily(p, "adj_close").values, adj.values, equal_nan=True)  # name normalised
    same(read_daily(p, "close"), {**want, "2015-05-30": math.nan})
    # column="close" (load_history's SPX request) on a file whose only value column is the ticker
    q = write(tmp_path / "bbg.csv", ["Date", "SPX Index"], [[d, repr(v)] for d, v in want.items()])
    same(read_daily(q, "close"), want)


def test_yfinance_three_line_header(tmp_path, spx):
    """yfinance.download(...).to_csv(): names on line 1, tickers on line 2, "Date,,,,," on line 3."""
    rows = [[r["date"], r["close"], r["high"], r["low"], r["open"], r["volume"]] for r in spx]
    p = write(tmp_path / "yf.csv", ["Date", "", "", "", "", ""], rows,
              preamble="Price,Close,High,Low,Open,Volume\r\nTicker,^GSPC,^GSPC,^GSPC,^GSPC,^GSPC\r\n")
    same(read_daily(p), ref(spx, "date", "close"))
    same(read_daily(p, "Open"), ref(spx, "date", "open"))


def test_nasdaq_dollar_thousands_newest_first(tmp_path, spx):
    rows = [[iso(r["date"]).strftime("%m/%d/%Y"), "$" + thousands(float(r["close"])), r["volume"],
             "$" + thousands(float(r["open"])), "$" + thousands(float(r["high"])), "$" + thousands(float(r["low"]))]
            for r in reversed(spx)]
    p = write(tmp_path / "HistoricalData_SPX.csv", ["Date", "Close/Last", "Volume", "Open", "High", "Low"], rows)
    assert open(p).read().splitlines()[1].startswith('02/27/2026,"$6,')
    same(read_daily(p), ref(spx, "date", "close"))
    same(read_daily(p, "close"), ref(spx, "date", "close"))   # load_history's request finds Close/Last
    same(read_daily(p, "High"), ref(spx, "date", "high"))


def test_nasdaq_file_as_backtest_spx_input(tmp_path, spx):
    """load_history(spx=<Nasdaq file>) gives the same SPX closes and dates as the shared file."""
    rows = [[iso(r["date"]).strftime("%m/%d/%Y"), "$" + thousands(float(r["close"])), r["volume"], "$1", "$1", "$1"]
            for r in reversed(spx)]
    p = write(tmp_path / "nasdaq.csv", ["Date", "Close/Last", "Volume", "Open", "High", "Low"], rows)
    a, b = load_history(spx=SPX, vix=VIX), load_history(spx=p, vix=VIX)
    assert a.dates == b.dates
    assert np.array_equal(a.spx, b.spx) and np.array_equal(a.vix, b.vix, equal_nan=True)


@pytest.mark.parametrize("fmt", ["%m/%d/%Y", "%b %d, %Y"])
def test_investing_quoted_price_newest_first(tmp_path, spx, fmt):
    rows = []
    prev = None
    for r in reversed(spx):
        c = float(r["close"])
        rows.append([iso(r["date"]).strftime(fmt), thousands(c), thousands(float(r["open"])),
                     thousands(float(r["high"])), thousands(float(r["low"])), "2.53B",
                     f"{(prev / c - 1) * 100:.2f}%" if prev else "0.00%"])
        prev = c
    p = write(tmp_path / "S&P 500 Historical Data.csv",
              ["Date", "Price", "Open", "High", "Low", "Vol.", "Change %"], rows, quoting=csv.QUOTE_ALL)
    with open(p, "rb") as fh:   # Investing.com writes a BOM
        body = fh.read()
    p.write_bytes(b"\xef\xbb\xbf" + body)
    assert body.startswith(b'"Date","Price","Open"')
    same(read_daily(p), ref(spx, "date", "close"))
    with pytest.raises(ValueError, match=r"line 2, column 'Vol\.': '2\.53B' is not a number"):
        read_daily(p, "Vol.")


def test_fred_series_id_column(tmp_path, vix):
    want = ref(vix, "DATE", "CLOSE")
    days = sorted(want)
    holiday = days[500]
    rows = [[d, "" if d == holiday else repr(want[d])] for d in days]
    new = write(tmp_path / "VIXCLS.csv", ["observation_date", "VIXCLS"], rows)            # FRED today
    old = write(tmp_path / "VIXCLS_old.csv", ["DATE", "VIXCLS"], [[d, "." if v == "" else v] for d, v in rows])
    for p in (new, old):
        same(read_daily(p), {**want, holiday: math.nan})
    dgs = rows_of(DGS10)
    p = write(tmp_path / "DGS10.csv", ["DATE", "DGS10"], [[r["Date"], r["Value"]] for r in dgs])
    same(read_daily(p), ref(dgs, "Date", "Value"))
    assert read_daily(p).as_dict()["2024-11-06"] == 4.42


def test_several_numeric_columns_need_column(tmp_path):
    p = write(tmp_path / "fredgraph.csv", ["observation_date", "DGS10", "DGS2", "note"],
              [["2024-11-05", "4.26", "4.20", "x"], ["2024-11-06", "4.42", "4.30", "y"]])
    with pytest.raises(ValueError, match=r"several numeric columns \['DGS10', 'DGS2'\]; pass column="):
        read_daily(p)
    assert read_daily(p, "DGS2").as_dict() == {"2024-11-05": 4.20, "2024-11-06": 4.30}
    q = write(tmp_path / "none.csv", ["Date", "note", "code"], [["2024-11-05", "x", "y"]])
    with pytest.raises(ValueError, match="no numeric column;"):
        read_daily(q)
    # a lone value column is taken even with garbage in it: the error then names the row
    r = write(tmp_path / "one.csv", ["DATE", "VIXCLS"], [["2024-11-05", "20.49"], ["2024-11-06", "16,27x"]])
    with pytest.raises(ValueError, match=r"line 3, column 'VIXCLS': '16,27x' is not a number"):
        read_daily(r)


def test_cboe_vix_history_and_stooq(tmp_path, spx, vix):
    same(read_daily(VIX), ref(vix, "DATE", "CLOSE"))                        # Cboe's own layout
    cboe = write(tmp_path / "VIX_History.csv", ["DATE", "OPEN", "HIGH", "LOW", "CLOSE"],
                 [[iso(r["DATE"]).strftime("%m/%d/%Y"), r["OPEN"], r["HIGH"], r["LOW"], r["CLOSE"]] for r in vix])
    same(read_daily(cboe), ref(vix, "DATE", "CLOSE"))
    stooq = ["Date", "Open", "High", "Low", "Close", "Volume"]
    for header in (stooq, [c.lower() for c in stooq]):
        p = write(tmp_path / "spx_d.csv", header, [[r["date"], r["open"], r["high"], r["low"], r["close"], r["volume"]]
                                                   for r in spx])
        same(read_daily(p), ref(spx, "date", "close"))
    bulk = write(tmp_path / "^spx.txt", ["<TICKER>", "<PER>", "<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>",
                                         "<CLOSE>", "<VOL>", "<OPENINT>"],
                 [["^SPX", "D", r["date"].replace("-", ""), "000000", r["open"], r["high"], r["low"], r["close"],
                   r["volume"], "0"] for r in spx])
    same(read_daily(bulk), ref(spx, "date", "close"))


def test_bloomberg_and_refinitiv(tmp_path, spx):
    want = ref(spx, "date", "close")
    bb = write(tmp_path / "bbg.csv", ["Date", "PX_LAST"],
               [[iso(d).strftime("%m/%d/%Y"), repr(v)] for d, v in want.items()])
    same(read_daily(bb), want)
    rf = write(tmp_path / "refinitiv.csv", ["Exchange Date", "Close", "Net", "%Chg"],
               [[iso(d).strftime("%d-%b-%Y"), thousands(v), "1.0", "0.1%"] for d, v in reversed(want.items())])
    same(read_daily(rf), want)
    rc = write(tmp_path / "refinitiv2.csv", ["Date", "CLOSE"], [[d, repr(v)] for d, v in want.items()])
    same(read_daily(rc), want)


# ------------------------------------------------------------------------------- delimiters, commas

def test_semicolon_decimal_comma_and_tab(tmp_path, spx, vix):
    want = ref(spx, "date", "close")
    eu = write(tmp_path / "eu.csv", ["Datum", "Schluss", "Close"],
               [[iso(d).strftime("%d.%m.%Y"), "x", repr(v).replace(".", ",")] for d, v in want.items()], ";")
    assert "2058,2" in eu.read_text()
    same(read_daily(eu), want)
    eu_groups = write(tmp_path / "eu2.csv", ["Date", "Close"],       # 5.929,04: "." groups, "," decimal
                      [[d, f"{v:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")] for d, v in want.items()],
                      ";")
    assert "5.929,04" in eu_groups.read_text()
    same(read_daily(eu_groups), want)
    us_in_semicolon = write(tmp_path / "us.csv", ["Date", "Close"], [[d, thousands(v)] for d, v in want.items()], ";")
    same(read_daily(us_in_semicolon), want)                            # "5,929.04" has a ".": US
    plain = write(tmp_path / "plain.csv", ["Date", "Close"], [[d, repr(v)] for d, v in want.items()], ";")
    same(read_daily(plain), want)
    tab = write(tmp_path / "tab.txt", ["Date", "Open", "Close"], [[d, "1", repr(v)] for d, v in want.items()], "\t")
    same(read_daily(tab), want)
    vwant = ref(vix, "DATE", "CLOSE")                                  # 17,24 in a ";" file: 17.24
    v = write(tmp_path / "vix_eu.csv", ["DATE", "CLOSE"],
              [[d, repr(x).replace(".", ",")] for d, x in vwant.items()], ";")
    same(read_daily(v), vwant)


def test_ambiguous_commas_follow_the_delimiter(tmp_path):
    """Every value "4,420": European decimals in a ";" file (4.42), US thousands in a "," file (4420)."""
    rows = [["2024-11-05", "4,260"], ["2024-11-06", "4,420"]]
    assert read_daily(write(tmp_path / "a.csv", ["Date", "Close"], rows, ";")).as_dict() == \
        {"2024-11-05": 4.26, "2024-11-06": 4.42}
    assert read_daily(write(tmp_path / "b.csv", ["Date", "Close"], rows)).as_dict() == \
        {"2024-11-05": 4260.0, "2024-11-06": 4420.0}
    # one value decides for the whole column: "5929,04" cannot be US, so "5,929" is 5.929 too
    rows = [["2024-11-05", "5,929"], ["2024-11-06", "5929,04"]]
    assert read_daily(write(tmp_path / "c.csv", ["Date", "Close"], rows)).as_dict() == \
        {"2024-11-05": 5.929, "2024-11-06": 5929.04}
    # every value fits both readings, dates day-first: a German Investing.com yield file, 4,420 = 4.42
    rows = [["05.11.2024", "4,260"], ["06.11.2024", "4,420"]]
    p = write(tmp_path / "de.csv", ["Datum", "Zuletzt", "Eröffn."], [r + ["4,3"] for r in rows], quoting=csv.QUOTE_ALL)
    assert read_daily(p).as_dict() == {"2024-11-05": 4.26, "2024-11-06": 4.42}
    # garbage in a European column is reported as the garbage, not as the first "5929,04"
    rows = [["2024-11-04", "5712,69"], ["2024-11-05", "5782,76"], ["2024-11-06", "5929,O4"]]
    with pytest.raises(ValueError, match=r"line 4, column 'Close': '5929,O4' is not a number"):
        read_daily(write(tmp_path / "e.csv", ["Date", "Close"], rows, ";"))
    # neither reading fits every value: refused, not guessed
    rows = [["2024-11-05", "5929,04"], ["2024-11-06", "5929.04"]]
    with pytest.raises(ValueError, match=r"line 3, column 'Close': '5929\.04' is not a number.*decimal comma"):
        read_daily(write(tmp_path / "d.csv", ["Date", "Close"], rows, ";"))


# ------------------------------------------------------------------------------------------- dates

def _epoch(d: str, hour: int, ms: bool) -> str:
    t = int(datetime(*iso(d).timetuple()[:3], hour, tzinfo=timezone.utc).timestamp())
    return str(t * 1000 if ms else t)


DATE_FORMS = {
    "iso": lambda d: d,
    "iso time": lambda d: d + " 00:00:00",
    "iso Z": lambda d: d + "T00:00:00Z",
    "iso offset": lambda d: d + " 00:00:00-05:00",
    "m/d/yyyy unpadded": lambda d: f"{iso(d).month}/{iso(d).day}/{iso(d).year}",
    "yyyymmdd": lambda d: d.replace("-", ""),
    "mon dd, yyyy": lambda d: iso(d).strftime("%b %d, %Y"),
    "dd-mon-yyyy": lambda d: iso(d).strftime("%d-%b-%Y"),
    "yyyy/mm/dd": lambda d: d.replace("-", "/"),
    "dd/mm/yyyy": lambda d: iso(d).strftime("%d/%m/%Y"),     # day > 12 somewhere: the file is day-first
    "dd.mm.yyyy": lambda d: iso(d).strftime("%d.%m.%Y"),
    "excel": lambda d: iso(d).strftime("%m/%d/%Y") + " 12:00:00 AM",
    "epoch s": lambda d: _epoch(d, 0, False),
    "epoch ms NY": lambda d: _epoch(d, 5, True),
}


@pytest.mark.parametrize("form", sorted(DATE_FORMS))
def test_date_forms(tmp_path, spx, form):
    want = ref(spx, "date", "close")
    rows = [[DATE_FORMS[form](d), repr(v)] for d, v in want.items()]
    random.Random(7).shuffle(rows)                                     # any row order
    p = write(tmp_path / "f.csv", ["timestamp" if form.startswith("epoch") else "Date", "Close"], rows)
    same(read_daily(p), want)


def test_day_first_is_decided_per_file(tmp_path):
    # every day <= 12: read month-first (US), for every row
    rows = [["01/11/2024", "1"], ["02/11/2024", "2"], ["12/11/2024", "3"]]
    assert read_daily(write(tmp_path / "a.csv", ["Date", "Close"], rows)).dates == \
        ["2024-01-11", "2024-02-11", "2024-12-11"]
    # one row with a first field > 12 makes the whole file day-first, the rows above it included
    rows.append(["13/11/2024", "4"])
    assert read_daily(write(tmp_path / "b.csv", ["Date", "Close"], rows)).dates == \
        ["2024-11-01", "2024-11-02", "2024-11-12", "2024-11-13"]
    rows.append(["11/14/2024", "5"])                                   # and a second field > 12 too
    with pytest.raises(ValueError, match=r"mixes day-first and month-first dates: line 5 .* line 6"):
        read_daily(write(tmp_path / "c.csv", ["Date", "Close"], rows))


@pytest.mark.parametrize("text", ["11/06/24", "2024-13-01", "2024-02-30", "Nov 6 2024x", "tomorrow", "45602"])
def test_unreadable_dates(tmp_path, text):
    p = write(tmp_path / "d.csv", ["Date", "Close"], [["2024-11-05", "1"], [text, "2"]])
    with pytest.raises(ValueError, match=rf"d\.csv: line 3, column 'Date': .*{text[:4]}"):
        read_daily(p)


def test_epoch_off_midnight_refused(tmp_path):
    p = write(tmp_path / "e.csv", ["timestamp", "close"], [[_epoch("2024-11-06", 23, False), "1"]])
    with pytest.raises(ValueError, match="line 2, column 'timestamp': Unix time .* 23:00:00 UTC"):
        read_daily(p)


# ----------------------------------------------------------------------------- refusals and markers

def test_duplicate_dates(tmp_path):
    rows = [["2024-11-06", "5929.04"], ["2024-11-05", "5782.76"], ["11/06/2024", "5929.04"]]
    s = read_daily(write(tmp_path / "ok.csv", ["Date", "Close"], rows))     # equal duplicate: kept
    assert s.as_dict() == {"2024-11-05": 5782.76, "2024-11-06": 5929.04}
    rows.append(["2024-11-06", "5929.05"])
    p = write(tmp_path / "dup.csv", ["Date", "Close"], rows)
    with pytest.raises(ValueError, match=r"dup\.csv: date 2024-11-06 twice with different values: "
                                         r"line 4 5929\.04, line 5 5929\.05"):
        read_daily(p)


def test_missing_markers_and_non_positive(tmp_path):
    markers = ["", ".", "null", "NaN", "N/A", "-", "#N/A", "NULL", "n/a"]
    rows = [[f"2024-01-{i + 2:02d}", m] for i, m in enumerate(markers)] + \
           [["2024-02-01", "-0.25"], ["2024-02-02", "0"], ["2024-02-05", " 4.42 "]]
    s = read_daily(write(tmp_path / "m.csv", ["DATE", "IRLTLT01JPM156N"], rows))
    assert np.isnan(s.values[:len(markers)]).all()
    assert s.values[len(markers):].tolist() == [-0.25, 0.0, 4.42]


@pytest.mark.parametrize("text", ["abc", "inf", "1_000", "4.42%", "5,92,9.04", "1.2.3", "--1"])
def test_garbage_value_is_an_error(tmp_path, text):
    p = write(tmp_path / "g.csv", ["Date", "Open", "Close"],
              [["2024-11-05", "1", "5782.76"], ["2024-11-06", "1", text]])
    with pytest.raises(ValueError) as e:
        read_daily(p)
    msg = str(e.value)
    assert str(p) in msg and "line 3, column 'Close'" in msg and repr(text) in msg


def test_empty_short_and_headerless_files(tmp_path):
    with pytest.raises(ValueError, match=r"e\.csv: no data rows"):
        read_daily(write(tmp_path / "e.csv", ["Date", "Close"], []))
    with pytest.raises(ValueError, match="only missing markers"):
        read_daily(write(tmp_path / "n.csv", ["Date", "Close"], [["2024-11-06", "null"]]))
    with pytest.raises(ValueError, match="no header line with a date column"):
        read_daily(write(tmp_path / "h.csv", ["when", "Close"], [["2024-11-06", "1"]]))
    with pytest.raises(ValueError, match="line 3 has 1 fields, no 'Close'"):
        read_daily(write(tmp_path / "s.csv", ["Date", "Close"], [["2024-11-05", "1"], ["2024-11-06"]]))
    with pytest.raises(ValueError, match="'Date' is the date column"):
        read_daily(write(tmp_path / "c.csv", ["Date", "Close"], [["2024-11-06", "1"]]), "Date")
    with pytest.raises(ValueError, match="'PX_LAST' is not in the header"):
        read_daily(write(tmp_path / "c.csv", ["Date", "Close"], [["2024-11-06", "1"]]), "PX_LAST")
    (tmp_path / "t.csv").write_text("Date,Close\n11/05/2024,5782.76\n11/06/2024,5,929.04\n")
    with pytest.raises(ValueError, match=r"t\.csv: line 3 has 3 fields, the header 2"):
        read_daily(tmp_path / "t.csv")                   # unquoted thousands: would read 5.0
    (tmp_path / "t2.csv").write_text("Date,Close\n11/05/2024,5782.76,,\n")
    assert read_daily(tmp_path / "t2.csv").as_dict() == {"2024-11-05": 5782.76}   # trailing empty fields
    (tmp_path / "z.csv").write_text("")
    with pytest.raises(ValueError, match="empty file"):
        read_daily(tmp_path / "z.csv")


def test_preamble_and_utf16(tmp_path, vix):
    want = ref(vix, "DATE", "CLOSE")
    rows = [[iso(d).strftime("%m/%d/%Y"), repr(v)] for d, v in want.items()]
    p = write(tmp_path / "vixcurrent.csv", ["Date", "VIX Open", "VIX Close"], [[d, "1", v] for d, v in rows],
              preamble="Cboe data is compiled for the convenience of site visitors\r\n")
    s = read_daily(p)
    same(s, want)
    text = p.read_text()
    u = tmp_path / "u16.txt"
    u.write_bytes(text.replace(",", "\t").encode("utf-16"))
    same(read_daily(u), want)
    # line numbers count the preamble: the first data row is line 3
    p.write_text(text.replace(rows[0][1], "oops", 1))
    with pytest.raises(ValueError, match="line 3, column 'VIX Close': 'oops'"):
        read_daily(p)


def test_load_history_shared_data_equals_the_files():
    """load_history on the shared folder: every aligned value equals the file's own (plain csv)."""
    h = load_history(DATA)
    spx = ref(rows_of(SPX), "date", "close")
    assert h.dates == sorted(spx) and h.spx.tolist() == [spx[d] for d in h.dates]
    for arr, path, dcol, vcol in ((h.vix, VIX, "DATE", "CLOSE"),
                                  (h.bond, DATA / "tlt_daily_adjusted_ohlcv.csv", "Date", "Close"),
                                  (h.extra["gex"], DATA / "squeezemetrics_dix_gex_2011-2026.csv", "date", "gex")):
        m = ref(rows_of(path), dcol, vcol)
        assert np.array_equal(arr, np.array([m.get(d, math.nan) for d in h.dates]), equal_nan=True), path
    assert h.bond_input == "price"


def test_bond_unit_guess_by_column_and_refused_when_values_contradict(tmp_path):
    dgs = rows_of(DGS10)
    rows = [[r["Date"], r["Value"]] for r in dgs]
    # a FRED download saved under any name: the column says DGS10 -> yields in percent
    p = write(tmp_path / "tenyear.csv", ["observation_date", "DGS10"], rows)
    h = load_history(spx=SPX, vix=VIX, bond=p)
    want = ref(dgs, "Date", "Value")
    assert h.bond_input == "yield_pct"
    assert np.array_equal(h.bond, np.array([want.get(d, math.nan) for d in h.dates]), equal_nan=True)
    # nothing in the names: "price" would read 4.42 as a bond price; refused, and bond_input= decides
    q = write(tmp_path / "tenyear2.csv", ["Date", "Close"], rows)
    with pytest.raises(ValueError, match=r"tenyear2\.csv: bond column 'Close' never exceeds 15\.8.*--bond-input"):
        load_history(spx=SPX, vix=VIX, bond=q)
    assert np.array_equal(load_history(spx=SPX, vix=VIX, bond=q, bond_input="yield_pct").bond, h.bond, equal_nan=True)
    # TLT prices in a file named like a yield series: refused
    tlt = rows_of(DATA / "tlt_daily_adjusted_ohlcv.csv")
    t = write(tmp_path / "yield_proxy.csv", ["Date", "Close"], [[r["Date"], r["Close"]] for r in tlt])
    with pytest.raises(ValueError, match="prices, not yields"):
        load_history(spx=SPX, vix=VIX, bond=t)
    assert load_history(spx=SPX, vix=VIX, bond=t, bond_input="price").bond_input == "price"


def test_backtest_cli_reports_one_line(tmp_path, capsys):
    """`streamer backtest --spx <garbage>`: exit status 2 and one stderr line naming file, line, column."""
    from streamer.cli import main

    bad = write(tmp_path / "spx.csv", ["Date", "Close"], [["2024-11-05", "5782.76"], ["2024-11-06", "5929.O4"]])
    rc = main(["backtest", "--data-dir", str(DATA), "--spx", str(bad), "--no-progress", "--png", "",
               "--events", str(tmp_path / "ev.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("streamer backtest: error: ")
    assert f"{bad}: line 3, column 'Close': '5929.O4' is not a number" in err[0]
