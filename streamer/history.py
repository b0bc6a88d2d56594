"""CSV readers for the daily history files (see /work/shared/data/SOURCES.md); I/O, not core.

:func:`read_daily` reads one daily series (a date column and one value column) from the layouts vendors
export, and refuses with one ValueError naming the file, line, column and what was expected rather than
read a wrong number:

- Layouts: Yahoo Finance (``Date,Open,High,Low,Close,Adj Close,Volume``; "null" rows; yfinance's
  three header lines ``Price,Close,...`` / ``Ticker,^GSPC,...`` / ``Date,,...``), Nasdaq.com
  (``Date,Close/Last,Volume,Open,High,Low``, "$5,929.04", newest first), Investing.com (quoted
  ``"Date","Price","Open",...,"Vol.","Change %"``), FRED (``observation_date,VIXCLS``, ``DATE,DGS10``,
  ``Date,Value``), Cboe (``DATE,OPEN,HIGH,LOW,CLOSE``, ``DATE,SKEW``), Stooq (``Date,Open,...``, lower
  case, or the bulk ``<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,...``), Bloomberg-style ``Date,PX_LAST``,
  Refinitiv ``Exchange Date,Close``; comma, semicolon or tab delimited (sniffed from the header line,
  the first of 20 lines naming a date column: lines above it are a preamble); UTF-8 (BOM or not),
  UTF-16 with a BOM, else Latin-1. A row with more non-empty fields than the header is an error.
- Column names are matched ignoring case, "_" vs " ", "*" and "<>". The value column by default: the
  first close-like name (close, Close/Last, closing price, PX_LAST, last price, price, last, último,
  cierre, zuletzt, schluss, dernier, value; "Adj Close" only when asked by ``column=``), else the one
  "<name> Close" ("VIX Close"); without one, the only other column or the only column holding numbers
  (FRED's series id); several such columns -> error listing them (pass ``column=``).
- Dates, decided per file, never per row: ISO (with an optional time and zone, the date as written),
  YYYY/MM/DD, YYYYMMDD, "Nov 06, 2024", "06-Nov-2024", DD.MM.YYYY (day first), and M/D/YYYY read
  month-first (US vendors) unless some row's first field is > 12: then the whole file is day-first (a
  file mixing both orders is refused). Unix seconds or ms (ms if any is > 1e11) only at midnight UTC or
  New York (another time of day could be the next day's midnight east of UTC). Two-digit years: refused.
- Numbers: "$" prefix dropped; missing markers "", ".", "null", "NaN", "N/A", "-", "#N/A" (any case) ->
  NaN; anything else that is not a number is an error (no positivity check: yields can be <= 0).
  Commas are decided per column: US "5,929.04" (groups of 3) or European "5929,04" / "5.929,04",
  whichever reads every value; if both do (every value like "4,420"), European in a ";" file or one with
  day-first dates (DD.MM.YYYY, a day > 12), else US.
- Rows in any order (sorted on output). A date twice: kept if the values are equal, else an error
  naming the date and both lines (intraday files land here). No data rows or no number: an error.

Series are aligned on the SPX trading dates; a missing value is NaN (the flow book skips it).

The leveraged funds' underlyings (NDX, QQQ, SOXX, SMH, NVDA, TSLA, MSTR, COIN, ...: the fund table's
``underlying`` symbols) come from ``equities/`` (:func:`equity_file`, :func:`load_equities`), for the
backtest to feed as index closes keyed by their own symbol.
"""
from __future__ import annotations

import bisect
import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

__all__ = ["DailySeries", "DailyHistory", "read_daily", "find_files", "load_history", "DEFAULT_DATA_DIR",
           "FILE_PATTERNS", "EQUITIES_DIR", "EQUITY_FILES", "EquityCloses", "equity_file", "load_equities"]

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""/work/shared/data next to the repository (used when it exists)."""

#: glob pattern of each input inside a data folder (first match wins, sorted by name)
FILE_PATTERNS = {
    "spx": ["spx_daily_ohlc_*.csv"],
    "vix": ["vix_daily_ohlc_*.csv"],
    "vix9d": ["cboe_VIX9D_History.csv"],
    "vix3m": ["cboe_VIX3M_History.csv"],
    "tlt": ["tlt_daily_*.csv"],
    "dgs10": ["fred_DGS10_*.csv"],
    "gex": ["squeezemetrics_dix_gex_*.csv"],
}

_DATE_NAMES = ("date", "exchange date", "observation date", "trade date", "dates", "datetime", "date time",
               "fecha", "datum", "timestamp", "time", "day")
#: default value columns, by priority (normalised names: lower case, "_" -> " ", no "*")
_CLOSE_NAMES = ("close", "close/last", "closing price", "close price", "px last", "last price", "price",
                "last", "último", "ultimo", "cierre", "zuletzt", "schluss", "schlusskurs", "dernier", "value")
#: what a vendor writes for "no value that day" (compared in lower case)
_MISSING = frozenset({"", ".", "null", "nan", "n/a", "-", "#n/a", "#n/a n/a"})
_DATE_FORMS = ("YYYY-MM-DD[ time], MM/DD/YYYY (DD/MM/YYYY if a day > 12), YYYY/MM/DD, YYYYMMDD, "
               "DD.MM.YYYY, 'Nov 06, 2024', '06-Nov-2024' or Unix seconds/ms")
_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                            "nov", "dec"))}
_FULL_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[AaPp][Mm])?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)?)?"
_RE_YMD = re.compile(r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})" + _TIME + "$")
_RE_AB = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})" + _TIME + "$")
_RE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})$")
_RE_EPOCH = re.compile(r"-?\d{9,13}(?:\.0*)?$")
_RE_MON_FIRST = re.compile(r"([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})$")
_RE_DAY_FIRST = re.compile(r"(\d{1,2})[-\s]([A-Za-z]{3,9})\.?[-\s,]+(\d{4})$")
_RE_PLAIN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_RE_US = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")           # 5,929.04
_RE_EU = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?$")   # 5.929,04 / 5929,04 / 5.929


def _norm(name: str) -> str:
    """Column name as matched: lower case, "_" as a space, no "*" (Yahoo's "Close*") or "<>" (Stooq's bulk
    "<DATE>"), spaces collapsed."""
    return " ".join(name.replace("_", " ").lower().strip("<>*").split())


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):          # Excel "Unicode text"
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")                     # European exports (headers only; values are ASCII)


def _header(text: str, path: Path) -> tuple[int, str, list[str]]:
    """(index of the header line, delimiter, column names): the first of the first 20 lines that, split on
    its most frequent delimiter among , ; TAB, names a date column (lines above it: a vendor's preamble)."""
    lines = text.splitlines()[:20]
    for i, line in enumerate(lines):
        for d in sorted((",", ";", "\t"), key=line.count, reverse=True):
            cols = [c.strip() for c in next(csv.reader([line], delimiter=d), [])]
            if any(_norm(c) in _DATE_NAMES for c in cols):
                if i and not "".join(c for c in cols if _norm(c) not in _DATE_NAMES):
                    # yfinance's download().to_csv(): "Price,Close,High,..." / "Ticker,^GSPC,..." /
                    # "Date,,,": the names are on line 1
                    top = [c.strip() for c in next(csv.reader([lines[0]], delimiter=d), [])]
                    if len(top) == len(cols):
                        cols = [c or t for c, t in zip(cols, top)]
                return i, d, cols
    first = text.splitlines()[0] if text.strip() else "(empty file)"
    raise ValueError(f"{path}: no header line with a date column (one of {', '.join(_DATE_NAMES)}) in the "
                     f"first 20 lines; line 1 is {first[:120]!r}")


def _month(name: str) -> int | None:
    n = name.lower()
    m = _MONTHS.get(n[:3])
    if m is None or not (len(n) == 3 or _FULL_MONTHS[m - 1].startswith(n) or n == "sept"):
        return None
    return m


def _parse_dates(raws: list[str], lines: list[int], path: Path, col: str) -> tuple[list[str], bool]:
    """(ISO dates, day-first?) of one file's date column. Decided per file, never per row: numeric
    D/M/YYYY dates are month-first (US vendors) unless some row's first field is > 12 (then day-first for
    every row); DD.MM.YYYY is day-first; Unix times are seconds, or ms if any is > 1e11."""
    parts: list = []          # per row: an ISO string, (y, m, d), ("ab", a, b, y) or ("epoch", n)
    dayfirst = monthfirst = None   # line of a row proving each order
    epoch_ms = dotted = False
    for s, ln in zip(raws, lines):
        s = s.strip()
        if len(s) == 10 and s[4] == "-" and s[7] == "-" and s[:4].isdigit():
            try:
                date.fromisoformat(s)                    # the common case, already ISO
            except ValueError:
                pass
            else:
                parts.append(s)
                continue
        if (m := _RE_YMD.match(s)) is not None:
            parts.append((int(m[1]), int(m[3]), int(m[4])))
        elif (m := _RE_AB.match(s)) is not None:
            a, b, y = int(m[1]), int(m[3]), int(m[4])
            if m[2] == ".":
                parts.append((y, b, a))                  # 06.11.2024: European, day first
                dotted = True
                continue
            parts.append(("ab", a, b, y))
            if a > 12 and dayfirst is None:
                dayfirst = ln
            if b > 12 and monthfirst is None:
                monthfirst = ln
        elif (m := _RE_COMPACT.match(s)) is not None:
            parts.append((int(m[1]), int(m[2]), int(m[3])))
        elif _RE_EPOCH.match(s):
            n = int(float(s))
            epoch_ms = epoch_ms or abs(n) > 100_000_000_000
            parts.append(("epoch", n))
        elif (m := _RE_MON_FIRST.match(s)) is not None and (mo := _month(m[1])) is not None:
            parts.append((int(m[3]), mo, int(m[2])))
        elif (m := _RE_DAY_FIRST.match(s)) is not None and (mo := _month(m[2])) is not None:
            parts.append((int(m[3]), mo, int(m[1])))
        else:
            raise ValueError(f"{path}: line {ln}, column {col!r}: cannot read the date {s!r} "
                             f"(expected {_DATE_FORMS})")
    if dayfirst is not None and monthfirst is not None:
        raise ValueError(f"{path}: column {col!r} mixes day-first and month-first dates: line {dayfirst} has a "
                         f"first field > 12, line {monthfirst} a second field > 12")
    out = []
    for p, s, ln in zip(parts, raws, lines):
        if type(p) is str:
            out.append(p)
            continue
        t = None
        try:
            if p[0] == "ab":
                _, a, b, y = p
                p = (y, b, a) if dayfirst is not None else (y, a, b)
            elif p[0] == "epoch":
                t = datetime.fromtimestamp(p[1] / 1000 if epoch_ms else p[1], timezone.utc)
                p = (t.year, t.month, t.day)
            out.append(date(*p).isoformat())
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"{path}: line {ln}, column {col!r}: {s.strip()!r} is not a valid date ({exc}); "
                             f"expected {_DATE_FORMS}") from None
        # a daily bar stamped at midnight UTC or New York; another time could be the next day's midnight
        if t is not None and ((t.minute, t.second, t.microsecond) != (0, 0, 0) or t.hour not in (0, 4, 5)):
            raise ValueError(f"{path}: line {ln}, column {col!r}: Unix time {s.strip()!r} is "
                             f"{t:%Y-%m-%d %H:%M:%S} UTC, not midnight UTC or New York: its session "
                             f"date is ambiguous; give dates (YYYY-MM-DD)")
    return out, dotted or dayfirst is not None


def _numbers(raws: list[str], european: bool) -> tuple[list[float], int | None]:
    """(values, None) or (values so far, index of the first unreadable text) for one column.

    Missing markers are NaN; a "$" prefix is dropped. Commas: decided per column, never per value. With
    no comma anywhere, plain numbers. Otherwise the reading in which every value is well formed wins:
    US "5,929.04" (comma groups of 3, "." decimal) or European "5929,04" / "5.929,04" ("," decimal, "."
    groups of 3); if both fit (e.g. every value like "4,420"), European if ``european`` (a ";"-delimited
    file, or day-first dates), else US.
    """
    mode = _comma_mode(raws, european) if any("," in s for s in raws) else "plain"
    vals: list[float] = []
    append = vals.append
    for i, s in enumerate(raws):
        if mode != "eu":
            try:
                v = float(s)                              # the common case: a plain number
            except ValueError:
                pass
            else:
                if v - v == 0.0 and "_" not in s:       # finite ("1_000" is a Python literal, not data)
                    append(v)
                    continue
                if v != v:                               # "NaN"
                    append(math.nan)
                    continue
                return vals, i                           # inf
        s = s.strip()
        if s.lower() in _MISSING:
            append(math.nan)
            continue
        if s[:1] == "$":
            s = s[1:].strip()
        if mode == "eu":
            if _RE_EU.match(s) is None:
                return vals, i
            s = s.replace(".", "").replace(",", ".")
        elif _RE_PLAIN.match(s) is None:
            if mode != "us" or _RE_US.match(s) is None:
                return vals, i
            s = s.replace(",", "")
        v = float(s)
        if not math.isfinite(v):
            return vals, i
        append(v)
    return vals, None


def _comma_mode(raws: list[str], european: bool) -> str:
    texts = [t for t in (r.strip().lstrip("$").strip() for r in raws) if t.lower() not in _MISSING]
    us = sum(1 for t in texts if _RE_PLAIN.match(t) or _RE_US.match(t))
    eu = sum(1 for t in texts if _RE_EU.match(t))
    if us == eu:                  # every value fits both (or neither reads them all equally well)
        return "eu" if european else "us"
    return "eu" if eu > us else "us"   # the one reading every value, else the one whose misfits get reported


@dataclass(slots=True)
class DailySeries:
    """One daily series: ISO dates ascending and float values (NaN = missing)."""

    name: str
    dates: list[str]
    values: np.ndarray
    path: str = ""
    column: str = ""      # the column read

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.dates, self.values.tolist()))


def read_daily(path: str | Path, column: str | None = None, name: str = "") -> DailySeries:
    """Read a daily CSV: its date column and ``column`` (default: the close, see the module docstring).

    ``column``: a header name, matched exactly, else ignoring case, "_" vs " " and "*"; "close" also
    means the file's close under another vendor's name (Close/Last, PX_LAST, Price). Raises ValueError
    naming the file, line and column for anything it cannot read.
    """
    path = Path(path)
    text = _decode(path)
    hline, delim, cols = _header(text, path)
    norm = [_norm(c) for c in cols]
    di = next(norm.index(n) for n in _DATE_NAMES if n in norm)
    rd = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    for _ in range(hline + 1):
        next(rd)
    body: list[list[str]] = []
    lines: list[int] = []
    width = len(cols)
    for row in rd:
        if not "".join(row).strip():
            continue                                     # blank line
        if len(row) > width and "".join(row[width:]).strip():
            # e.g. 11/06/2024,5,929.04: an unquoted thousands separator would shift every column
            raise ValueError(f"{path}: line {rd.line_num} has {len(row)} fields, the header {width} "
                             f"({delim!r}-delimited; an unquoted {delim!r} inside a value?): {delim.join(row)[:120]!r}")
        body.append(row)
        lines.append(rd.line_num)
    if not body:
        raise ValueError(f"{path}: no data rows below the header {cols}")
    short = next((k for k, r in enumerate(body) if len(r) <= di), None)
    if short is not None:
        raise ValueError(f"{path}: line {lines[short]} has {len(body[short])} fields, the header {len(cols)}")

    def column_texts(j: int) -> list[str]:
        k = next((k for k, r in enumerate(body) if len(r) <= j), None)
        if k is not None:
            raise ValueError(f"{path}: line {lines[k]} has {len(body[k])} fields, no {cols[j]!r} "
                             f"(the header has {len(cols)})")
        return [r[j] for r in body]

    others = [j for j in range(len(cols)) if j != di]
    vi = None
    if column is not None:
        vi = next((j for j in others if cols[j] == column), None)
        if vi is None:
            vi = next((j for j in others if norm[j] == _norm(column)), None)
        if vi is None and _norm(column) != "close":    # "close": the default pick, under any vendor's name
            what = "is the date column" if _norm(column) == norm[di] else "is not in the header"
            raise ValueError(f"{path}: column {column!r} {what}; the header has {cols}")
    if vi is None:
        vi = next((norm.index(n) for n in _CLOSE_NAMES if n in norm[:di] + [""] + norm[di + 1:]), None)
        if vi is None:                                   # "VIX Close", "SPX Close" (not "Adj Close")
            ends = [j for j in others if norm[j].endswith(" close") and not norm[j].startswith("adj")]
            vi = ends[0] if len(ends) == 1 else None
        if vi is None and len(others) == 1:              # FRED's series id (VIXCLS, DGS10), Cboe's SKEW...
            vi = others[0]
        elif vi is None:                                 # ...or the one column of numbers among others
            numeric = [j for j in others if all(len(r) > j for r in body)
                       and _numbers([r[j] for r in body], delim == ";")[1] is None
                       and any(r[j].strip().lower() not in _MISSING for r in body)]
            if len(numeric) != 1:
                found = f"several numeric columns {[cols[j] for j in numeric]}" if numeric else "no numeric column"
                raise ValueError(f"{path}: no close column ({', '.join(_CLOSE_NAMES)}) and {found}; "
                                 f"pass column= (the header has {cols})")
            vi = numeric[0]
    vcol = cols[vi]
    raws = column_texts(vi)
    dates, dayfirst = _parse_dates([r[di] for r in body], lines, path, cols[di])
    european = delim == ";" or dayfirst
    vals, bad = _numbers(raws, european)
    if bad is not None:
        style = ""
        if any("," in t for t in raws):
            style = ("; this column's numbers read as 5929,04 / 5.929,04 (decimal comma)"
                     if _comma_mode(raws, european) == "eu" else "; this column's numbers read as 5,929.04")
        raise ValueError(f"{path}: line {lines[bad]}, column {vcol!r}: {raws[bad].strip()!r} is not a number "
                         f"(expected a number or a missing marker: {', '.join(repr(m) for m in sorted(_MISSING))}"
                         f"{style})")
    rows: dict[str, float] = {}
    at: dict[str, int] = {}
    for d, v, ln in zip(dates, vals, lines):
        if d in rows:
            old = rows[d]
            if not (old == v or (old != old and v != v)):
                raise ValueError(f"{path}: date {d} twice with different values: line {at[d]} {old!r}, "
                                 f"line {ln} {v!r} (column {vcol!r}; intraday data? this reads daily files)")
        rows[d] = v
        at[d] = ln
    if all(v != v for v in rows.values()):
        raise ValueError(f"{path}: column {vcol!r} has no numbers, only missing markers")
    out = sorted(rows)
    return DailySeries(name or path.stem, out, np.array([rows[d] for d in out], dtype=float), str(path), vcol)


def find_files(data_dir: str | Path) -> dict[str, Path]:
    """The known inputs present in ``data_dir`` (keys of FILE_PATTERNS)."""
    d = Path(data_dir)
    out = {}
    for key, pats in FILE_PATTERNS.items():
        for pat in pats:
            hits = sorted(d.glob(pat))
            if hits:
                out[key] = hits[0]
                break
    return out


@dataclass(slots=True)
class DailyHistory:
    """Daily inputs aligned on the SPX dates (NaN where a series has no value that day)."""

    dates: list[str]
    spx: np.ndarray
    vix: np.ndarray
    bond: np.ndarray
    bond_input: str                      # "price" (TLT) or "yield_pct" (DGS10)
    extra: dict[str, np.ndarray] = field(default_factory=dict)   # vix9d, vix3m, gex
    sources: dict[str, str] = field(default_factory=dict)
    # closes of the leveraged funds' underlyings by symbol (load_history(underlyings=...), load_equities)
    underlyings: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.dates)


def load_history(data_dir: str | Path | None = None, *, spx: str | Path | None = None,
                 vix: str | Path | None = None, bond: str | Path | None = None,
                 bond_input: str | None = None, vix9d: str | Path | None = None,
                 vix3m: str | Path | None = None, gex: str | Path | None = None,
                 underlyings: Iterable[str] = ()) -> DailyHistory:
    """Load and align the daily history; explicit paths override files found in ``data_dir``.

    ``underlyings``: symbols whose closes are read from ``data_dir/equities`` (:func:`load_equities`, on
    the SPX dates) into ``DailyHistory.underlyings``; a symbol without a file is left out.
    The bond proxy is TLT (``bond_input="price"``) when found, else DGS10 (``"yield_pct"``);
    an explicit ``bond`` path guesses from its file or column name (FRED/DGS/yield -> yield) unless
    ``bond_input`` is given, and a guess the values contradict is an error (a "price" series never
    above 20 looks like yields in percent; a "yield" series always above 25 looks like prices).
    """
    found = find_files(data_dir) if data_dir is not None and Path(data_dir).is_dir() else {}
    spx_p = spx or found.get("spx")
    vix_p = vix or found.get("vix")
    if spx_p is None or vix_p is None:
        raise FileNotFoundError(f"need SPX and VIX daily files (data dir {data_dir}; patterns {FILE_PATTERNS})")
    if bond is None:
        bond = found.get("tlt") or found.get("dgs10")
    bond_s = read_daily(bond) if bond is not None else None
    if bond_s is not None and bond_input is None:
        bond_input = _guess_bond_input(bond_s)
    s = read_daily(spx_p, "close", "spx")
    idx = s.dates

    def align(p: str | Path | DailySeries | None, col: str | None = None) -> np.ndarray:
        if p is None:
            return np.full(len(idx), np.nan)
        m = (p if isinstance(p, DailySeries) else read_daily(p, col)).as_dict()
        return np.array([m.get(d, np.nan) for d in idx], dtype=float)

    extra = {}
    for key, p, col in (("vix9d", vix9d or found.get("vix9d"), None),
                        ("vix3m", vix3m or found.get("vix3m"), None),
                        ("gex", gex or found.get("gex"), "gex")):
        if p is not None:
            extra[key] = align(p, col)
    sources = {k: str(v) for k, v in (("spx", spx_p), ("vix", vix_p), ("bond", bond),
                                      ("vix9d", vix9d or found.get("vix9d")),
                                      ("vix3m", vix3m or found.get("vix3m")),
                                      ("gex", gex or found.get("gex"))) if v is not None}
    und: dict[str, np.ndarray] = {}
    syms = tuple(underlyings)
    if syms:
        if data_dir is None:
            raise FileNotFoundError("underlyings need a data dir (its equities/ folder)")
        eq = load_equities(syms, data_dir, dates=idx, missing="skip")
        und = eq.closes
        sources.update({f"equities:{k}": v for k, v in eq.sources.items()})
    return DailyHistory(idx, s.values, align(vix_p), align(bond_s), bond_input or "price", extra, sources, und)


def _guess_bond_input(s: DailySeries) -> str:
    """"yield_pct" if the file or column name says FRED/DGS/yield, else "price"; refused when the values
    contradict it (TLT/IEF never trade under 20; a US 10-year yield in percent was never above 25)."""
    n = f"{Path(s.path).name} {s.column}".lower()
    guess = "yield_pct" if ("dgs" in n or "fred" in n or "yield" in n) else "price"
    v = s.values[np.isfinite(s.values)]
    if guess == "price" and v.max() <= 20.0:
        raise ValueError(f"{s.path}: bond column {s.column!r} never exceeds {v.max():g}: yields in percent, "
                         "not prices? pass --bond-input yield_pct (bond_input=) or --bond-input price")
    if guess == "yield_pct" and v.min() > 25.0:
        raise ValueError(f"{s.path}: bond column {s.column!r} is never below {v.min():g}: prices, not yields "
                         "in percent? pass --bond-input price (bond_input=) or --bond-input yield_pct")
    return guess


# ------------------------------------------------------------------------ leveraged funds' underlyings

EQUITIES_DIR = "equities"
"""Sub-folder of the data dir with the daily equity, sector-ETF and leveraged-ETF files (SOURCES.md)."""

#: file and column per symbol where it is not ``<symbol>_daily.csv`` / ``adj_close``: NDX is the index
#: level (no adjustment; its file's ``adj_close`` equals ``close``)
EQUITY_FILES: dict[str, tuple[str, str]] = {"NDX": ("ndx_index_daily_ohlc.csv", "close")}


def equity_file(symbol: str, data_dir: str | Path | None = None) -> tuple[Path, str]:
    """(path, value column) of ``symbol``'s daily closes in ``data_dir/equities`` (the file may not exist).

    ``<symbol>_daily.csv``'s ``adj_close``: Yahoo adjusted closes, one snapshot and one adjustment
    basis for every ticker (splits and dividends: total-return series, so use returns, not levels;
    SOURCES.md "Equities" A). Leveraged funds target the *price* return, so on an ETF's ex-dividend day
    its return is off by the dividend (QQQ ~0.15% a quarter); NDX, read first for the Nasdaq-100 funds,
    is the price index itself.

    >>> p, col = equity_file("NDX", "/data"); (p.as_posix(), col)
    ('/data/equities/ndx_index_daily_ohlc.csv', 'close')
    >>> p, col = equity_file("TSLA", "/data"); (p.name, col)
    ('tsla_daily.csv', 'adj_close')
    """
    name, col = EQUITY_FILES.get(symbol.upper(), (f"{symbol.lower()}_daily.csv", "adj_close"))
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR) / EQUITIES_DIR / name, col


@dataclass(slots=True)
class EquityCloses:
    """Daily closes of several symbols aligned on one date list (NaN: no close that day).

    ``dates``: ISO dates ascending; ``closes``: symbol -> array aligned with ``dates``;
    ``sources``: symbol -> file read.
    """

    dates: list[str]
    closes: dict[str, np.ndarray]
    sources: dict[str, str] = field(default_factory=dict)

    def on(self, date: str) -> dict[str, float]:
        """The finite closes of ``date`` (ISO) by symbol: what a driver feeds as that session's closes."""
        i = self._index(date)
        if i is None:
            return {}
        return {s: float(v[i]) for s, v in self.closes.items() if v[i] == v[i]}

    def returns(self, symbol: str) -> np.ndarray:
        """Simple close-to-close returns of ``symbol`` on ``dates`` (NaN for the first row and around gaps)."""
        v = self.closes[symbol]
        out = np.full(len(v), np.nan)
        out[1:] = v[1:] / v[:-1] - 1.0
        return out

    def _index(self, date: str) -> int | None:
        i = bisect.bisect_left(self.dates, date)
        return i if i < len(self.dates) and self.dates[i] == date else None


def load_equities(symbols: Iterable[str], data_dir: str | Path | None = None, *,
                  dates: Sequence[str] | None = None, missing: str = "raise") -> EquityCloses:
    """Daily closes of ``symbols`` from ``data_dir/equities`` (:func:`equity_file`), aligned.

    ``dates``: the ISO dates to align on (e.g. the SPX sessions of :func:`load_history`); None = the
    union of the files' dates. A symbol without a close on a date gets NaN there (before its listing,
    after its file ends). ``missing``: "raise" (FileNotFoundError) or "skip" for a symbol without a file.
    """
    syms = list(dict.fromkeys(s.upper() for s in symbols))
    series: dict[str, dict[str, float]] = {}
    sources: dict[str, str] = {}
    for sym in syms:
        path, col = equity_file(sym, data_dir)
        if not path.exists():
            if missing == "skip":
                continue
            raise FileNotFoundError(f"no daily file for {sym}: {path}")
        series[sym] = read_daily(path, col, sym).as_dict()
        sources[sym] = str(path)
    idx = list(dates) if dates is not None else sorted(set().union(*series.values()))
    if any(a >= b for a, b in zip(idx, idx[1:])):
        raise ValueError("dates must be strictly ascending ISO dates")
    closes = {s: np.array([m.get(d, np.nan) for d in idx], dtype=float) for s, m in series.items()}
    return EquityCloses(idx, closes, sources)
