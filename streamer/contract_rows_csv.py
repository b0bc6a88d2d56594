"""Reader for option chains laid out ONE ROW PER CONTRACT (stdlib csv + numpy; I/O, not core).

Returns the same :class:`streamer.cboe_csv.ChainSnapshot` as the quotedata reader, so everything
downstream (``chain_report``, the engine) is unchanged. Layouts are told apart by the header (names
compared case-insensitively, camelCase split, any run of spaces/``_``/``-``/``/`` equivalent):

1. **Cboe DataShop** "Option EOD Summary" / "End-of-Day Option Quotes (with Calcs)" and the interval
   "Option Quotes" files. Column definitions used (DataShop product pages and the "End-Of-Day Option
   Quotes with Calcs Specification"): ``underlying_symbol`` (indexes carry a caret, ``^SPX``),
   ``quote_date`` (yyyy-mm-dd), ``root``, ``expiration`` (yyyy-mm-dd), ``strike``, ``option_type``
   (C/P), ``open, high, low, close`` (0 when no trade), ``trade_volume``, ``bid/ask[_size]_1545``
   (the NBBO at 15:45 ET; since 2020-02-05 taken at 12:45 ET on half days, column name unchanged;
   earlier half-day files are read at the close),
   ``underlying_bid/ask_1545``, Calcs ``implied_underlying_price_1545, active_underlying_price_1545,
   implied_volatility_1545, delta_1545, gamma_1545, ...`` (computed at 15:45 only),
   ``bid/ask[_size]_eod`` (the NBBO at the product's close), ``underlying_bid/ask_eod``, ``vwap``,
   ``open_interest``. Underlying bid/ask are 0 for indexes without a Cboe index licence.

   * EOD quotes when ``bid_eod``/``ask_eod`` exist, valued at the quote date's options close
     (``calendar.options_close_ns``: 16:15 ET for SPX/SPY/..., 16:00 for stock options, 13:15/13:00 on
     early-close days); else the ``_1545`` quotes at 15:45 ET (12:45 on early-close days).
   * Spot: the median over rows of the mid of ``underlying_bid``/``underlying_ask`` of the chosen
     snapshot where both are > 0, else of ``active_underlying_price_1545`` (the 15:45 underlying
     price, also used with EOD quotes when that is all there is; ``description`` says which).
   * Vendor IV/delta/gamma: the ``_1545`` Calcs columns (blank when the file has none).
   * Interval "Option Quotes" files (``quote_datetime``, plain ``bid, ask, underlying_bid,
     underlying_ask``): the time is ``quote_datetime`` in New York time. A file with several
     quote_datetimes holds several snapshots: it is refused unless ``asof_ts_ns`` names one of them
     (``--asof``), which then selects those rows. Same for EOD files grouped by month (several
     quote_dates): ``asof_ts_ns`` on one of the dates selects it.

2. **Generic vendor exports**: either an OCC/OSI symbol column (``option_symbol``, ``contract_symbol``,
   ``symbol``, ``contract``, ``ticker``, ...: ``SPXW241106C05900000``, Polygon's ``O:SPXW...``, the
   padded 21-character ``SPXW  241106C05900000``) or separate ``expiration``/``expiry``/``exp_date``
   (ISO, yyyymmdd, MM/DD/YYYY, or "Thu Sep 14 2023"), ``strike``, ``type``/``right``/``option_type``/
   ``put_call``/``contract_type`` (C/P/call/put, any case) columns; when both are present they must
   agree (an error names the line otherwise). ``bid`` and ``ask`` are required; optional ``last``,
   ``net``/``change``, ``volume``, ``open_interest``/``oi``/``open_int``, ``iv``/``implied_volatility``,
   ``delta``, ``gamma``; spot from ``underlying_price``/``spot``/``underlying_last``/... (else the mid
   of ``underlying_bid``/``underlying_ask``); time from ``quote_date``/``date``/``timestamp``/...
   (ISO with or without offset, naive = New York; MM/DD/YYYY [HH:MM[:SS] [AM/PM]]; epoch s/ms/us/ns).

   * Slash dates: MM/DD/YYYY unless a first field above 12 in any date column of the file shows
     DD/MM/YYYY (both seen in one file is an error).
   * Flattened JSON names (pandas ``json_normalize`` of e.g. Polygon snapshots): ``last_quote.bid``
     also answers to ``bid``, ``greeks.delta`` to ``delta``, ``underlying_asset.price`` is the spot.
   * Strikes are checked against the spot: integer strikes 200-5000 times the spot are 1/1000 dollars
     (ThetaData v2) and divided by 1000 (``description`` says so); any other median strike above 50x
     or below 1/50 of the spot is refused (wrong unit or wrong spot column).
   * IV in percent (14.5) or as a fraction (0.145): decided per file, percent when a value carries
     ``%`` or the median of the positive IVs is above 3; percent text is converted exactly
     (decimal shift, not a float division).
   * Root: from the symbol, else a ``root`` column, else inferred from the underlying (``underlying=``
     or an ``underlying``/``underlying_symbol`` column, carets/``$``/``I:`` stripped). For the
     AM-settled indexes (SPX, NDX, RUT) an expiration with no root is ambiguous: a third Friday (or
     the Thursday before when that Friday is a holiday) is taken as the AM-settled monthly (root
     SPX, settled at the 09:30 ET open), any other day as the PM weekly (root SPXW / NDXP / RUTW,
     settled at the close). A chain that lists both series on a monthly date without a root gives two
     rows for one contract: that is refused (duplicate contract) and asks for a root/symbol column.
   * Time: a date-only value is that day's options close (the last close on or before it); a
     timestamp is ``calendar.prices_time_ns`` of it, as the quotedata reader does (a file saved after
     the close holds closing quotes). Per-contract timestamps within one New York day are one
     snapshot valued at the newest; several days are several snapshots (refused unless
     ``asof_ts_ns`` falls on one of them, which selects it).

Shared rules: ``asof_ts_ns`` (UTC ns) overrides the file's time (and selects a snapshot in a
multi-snapshot file). No time column and no ``asof_ts_ns``: ``ValueError`` asking for ``--asof``.
Spot missing: ``ValueError`` asking for a spot column or ``--spot parity`` unless ``require_spot=False``
(then NaN: ``chain_report.report`` with ``spot_source="last"`` would evaluate every greek at NaN and
print zero exposures, so only the parity spot can use such a snapshot). A file holding several
underlyings is refused unless ``underlying=`` selects one. Rows whose bid/ask are negative, NaN or
crossed are kept with their values (the engine's validation decides, as for quotedata); a row whose
strike, expiry or right cannot be read, a non-numeric price (blank, ``-``, ``N/A`` are NaN; ``1,234``
thousands separators accepted; decimal commas refused), a duplicate contract or a short row is a
``ValueError`` naming the file, the line and the column.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from streamer import cboe_csv
from streamer.cboe_csv import AM_SETTLED_ROOTS, NY, ROOT_UNDERLYING, ChainSnapshot, settlement_ts_ns
from streamer.core.calendar import (LATE_CLOSE_ROOTS, is_early_close, is_friday_holiday, is_trading_day,
                                    nth_weekday, options_close_ns, prices_time_ns, utc_ns)

#: PM-settled weekly root of each AM-settled index (a root-less weekly expiry of the index is this one)
PM_ROOT: dict[str, str] = {"SPX": "SPXW", "NDX": "NDXP", "RUT": "RUTW"}

# canonical field -> accepted (normalised) header names, first found wins
_GENERIC: dict[str, tuple[str, ...]] = {
    "symbol": ("option_symbol", "contract_symbol", "occ_symbol", "osi_symbol", "osi", "symbol",
               "contract", "ticker"),
    "expiration": ("expiration", "expiration_date", "expiry", "expiry_date", "exp_date", "exp",
                   "expire_date", "maturity"),
    "strike": ("strike", "strike_price"),
    "right": ("option_type", "right", "type", "put_call", "call_put", "cp", "pc", "contract_type"),
    "root": ("root", "option_root", "root_symbol"),
    "underlying": ("underlying_symbol", "underlying", "underlying_ticker"),
    "bid": ("bid", "bid_price"),
    "ask": ("ask", "ask_price", "offer"),
    "last": ("last", "last_price", "last_sale", "last_trade_price"),
    "net": ("net", "net_change", "change"),
    "volume": ("volume", "trade_volume", "total_volume", "vol"),
    "open_interest": ("open_interest", "oi", "openinterest", "open_int"),
    "iv": ("iv", "implied_volatility", "implied_vol", "impl_vol", "ivol", "volatility"),
    "delta": ("delta",),
    "gamma": ("gamma",),
    "spot": ("underlying_price", "spot", "spot_price", "underlying_last", "underlying_close",
             "stock_price", "underlying_mid", "active_underlying_price", "underlying_asset_price"),
    "ubid": ("underlying_bid",),
    "uask": ("underlying_ask",),
    "asof": ("quote_datetime", "quote_date", "quote_time", "timestamp", "asof", "as_of",
             "as_of_date", "snapshot_time", "data_date", "trade_date", "date", "quote_time_in_long",
             "last_updated"),
}
_DATASHOP_KEYS = {"underlying_symbol", "expiration", "strike", "option_type"}   # root: not in every vintage
_MISSING = frozenset({"", "-", "--", "n/a", "na", "nan", "null", "none"})
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_OSI = re.compile(r"^([A-Z0-9]{1,6})(\d{6})([CP])(\d{8})$")
_RIGHTS = {"C": "C", "CALL": "C", "CALLS": "C", "P": "P", "PUT": "P", "PUTS": "P"}
_SLASH = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*([AaPp][Mm])?)?$")
_ISO_DAY = re.compile(r"^(\d{4})[-/](\d{2})[-/](\d{2})$")
_TIME_TAIL = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$")
_TEXT_DATE_FORMATS = ("%a %b %d %Y", "%b %d %Y", "%b %d, %Y", "%d %b %Y", "%d-%b-%Y", "%d-%b-%y")


def _norm(h: str) -> str:
    """Header name -> canonical spelling: camelCase split, lower case, separators -> '_'."""
    h = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", h.strip().lstrip("\ufeff"))
    return re.sub(r"[^a-z0-9]+", "_", h.lower()).strip("_")



# --------------------------------------------------------------------------- layout

class _Layout:
    """Column indices of one file: canonical field -> header index, plus what the file is."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.names = [_norm(h) for h in header]
        pos: dict[str, int] = {}
        for j, n in enumerate(self.names):
            pos.setdefault(n, j)
        # flattened JSON (pandas json_normalize of e.g. Polygon snapshots): "last_quote.bid" also
        # answers to "bid", "greeks.delta" to "delta" (a plain column of that name wins)
        for j, h in enumerate(header):
            if "." in h:
                pos.setdefault(_norm(h.rsplit(".", 1)[1]), j)
        self.pos = pos
        self.cols: dict[str, int] = {}
        self.kind = ""           # "datashop_eod", "datashop_1545", "datashop_quotes", "generic"
        if _DATASHOP_KEYS <= pos.keys() and ("quote_date" in pos or "quote_datetime" in pos):
            self._datashop()
        else:
            self._generic()

    def _take(self, field: str, *names: str) -> None:
        for n in names:
            if n in self.pos:
                self.cols[field] = self.pos[n]
                return

    def _datashop(self) -> None:
        p = self.pos
        for f, n in (("underlying", "underlying_symbol"), ("root", "root"), ("expiration", "expiration"),
                     ("strike", "strike"), ("right", "option_type"), ("last", "close"),
                     ("volume", "trade_volume"), ("open_interest", "open_interest")):
            self._take(f, n)
        if "quote_datetime" in p:
            self.kind = "datashop_quotes"
            self._take("asof", "quote_datetime")
            suffixes = ("",)
        else:
            self._take("asof", "quote_date")
            suffixes = ("_eod", "_1545")
        for sfx in suffixes:
            if "bid" + sfx in p and "ask" + sfx in p:
                self._take("bid", "bid" + sfx)
                self._take("ask", "ask" + sfx)
                self._take("ubid", "underlying_bid" + sfx)
                self._take("uask", "underlying_ask" + sfx)
                if self.kind != "datashop_quotes":
                    self.kind = "datashop" + sfx
                break
        else:
            self.kind = "datashop"     # no quotes: missing() says what is expected
        self._take("spot", "active_underlying_price_1545", "active_underlying_price")
        self._take("iv", "implied_volatility_1545", "implied_volatility")
        self._take("delta", "delta_1545", "delta")
        self._take("gamma", "gamma_1545", "gamma")

    def _generic(self) -> None:
        self.kind = "generic"
        for f, names in _GENERIC.items():
            self._take(f, *names)

    def identifies_contracts(self) -> bool:
        """The header names option contracts: an option symbol or expiration + strike + type columns."""
        return "symbol" in self.cols or {"expiration", "strike", "right"} <= self.cols.keys()

    def missing(self) -> list[str]:
        """What the layout lacks to be read (empty = readable)."""
        c = self.cols
        if self.kind == "datashop":
            return ["bid_eod/ask_eod or bid_1545/ask_1545 (quote_date) or bid/ask (quote_datetime)"]
        out = [f for f in ("bid", "ask") if f not in c]
        if not self.identifies_contracts():
            out.append("an option symbol column (option_symbol/symbol/contract/ticker) or "
                       "expiration + strike + type columns")
        return out


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.reader(fh):
            if any(c.strip() for c in row):
                return row
    return []


def looks_like_contract_rows(path: str | Path) -> bool:
    """True if the file's first non-blank line is the header of a chain with one row per contract: it
    names an option symbol column or expiration + strike + type columns (Cboe DataShop included).

    Reads the header line only. False for Cboe quotedata (its first line is the underlying's name).
    A file that names contracts but lacks e.g. the ask column is True: ``read_contract_rows`` then
    says what is missing, which is more use than a quotedata reader's complaint.
    """
    path = Path(path)
    try:
        header = _header(path)
        return bool(header) and _Layout(path, header).identifies_contracts()
    except (UnicodeDecodeError, csv.Error):
        return False


# --------------------------------------------------------------------------- value parsing

def _where(path: Path, line: int, col: str) -> str:
    return f"{path}: line {line}, column {col!r}"


def _floats(path: Path, col: str, values: list[str], lines: list[int]) -> tuple[np.ndarray, bool]:
    """Column text -> float64 (NaN for blanks/dashes/N/A) and whether any value carried '%'."""
    try:
        return np.array(values, dtype=np.float64), False
    except ValueError:
        pass
    out = np.empty(len(values))
    pct = False
    for i, v in enumerate(values):
        s = v.strip()
        if s.lower() in _MISSING:
            out[i] = np.nan
            continue
        s = s.lstrip("$")
        if s.endswith("%"):
            s, pct = s[:-1].strip(), True
        if "," in s:
            if not _THOUSANDS.match(s):
                raise ValueError(f"{_where(path, lines[i], col)}: expected a number, got {v!r} "
                                 "(decimal commas are not accepted)")
            s = s.replace(",", "")
        try:
            out[i] = float(s)
        except ValueError:
            raise ValueError(f"{_where(path, lines[i], col)}: expected a number, got {v!r}") from None
    return out, pct


def _percent_to_fraction(values: list[str]) -> np.ndarray:
    """Percent text -> fraction by an exact decimal shift ('14.5' -> 0.145 exactly as float('0.145'))."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        s = v.strip().rstrip("%").strip().replace(",", "")
        try:
            out[i] = float(Decimal(s).scaleb(-2))
        except InvalidOperation:
            out[i] = np.nan
    return out


def _slash_order(path: Path, columns: list[tuple[str, list[str]]], lines: list[int]) -> str:
    """'mdy' or 'dmy' for the slash dates of a file's date columns (one order for all of them:
    MM/DD unless a first field > 12 somewhere; a lone 05/11/2024 quote date follows the expirations)."""
    dmy = mdy = None
    for col, values in columns:
        for v, ln in zip(values, lines):
            m = _SLASH.match(v.strip())
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if a > 12 and dmy is None:
                    dmy = (col, ln)
                if b > 12 and mdy is None:
                    mdy = (col, ln)
    if dmy is not None and mdy is not None:
        raise ValueError(f"{path}: DD/MM/YYYY (column {dmy[0]!r} line {dmy[1]}) and MM/DD/YYYY (column "
                         f"{mdy[0]!r} line {mdy[1]}) dates in one file")
    return "dmy" if dmy is not None else "mdy"


def _parse_day(s: str, order: str) -> dt.date | None:
    """Expiration text -> date (a time part is ignored: settlement comes from the calendar)."""
    s = s.strip()
    m = _SLASH.match(s)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        mo, d = (a, b) if order == "mdy" else (b, a)
        return dt.date(y, mo, d)
    if len(s) == 8 and s.isdigit():
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
    head, _, tail = s.replace("T", " ", 1).partition(" ")
    m = _ISO_DAY.match(head)
    if m and (not tail.strip() or _TIME_TAIL.match(tail.strip())):
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    for fmt in _TEXT_DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


def _parse_time(s: str, order: str) -> dt.date | int | None:
    """Quote time text -> a date (date-only value) or UTC ns (naive = New York wall clock)."""
    s = s.strip()
    if s.isdigit():
        if len(s) == 8:
            return dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
        n = int(s)
        if len(s) < 9:
            return None
        # epoch seconds / ms / us / ns by magnitude
        scale = 1_000_000_000 if n < 10**11 else 1_000_000 if n < 10**14 else 1_000 if n < 10**17 else 1
        return n * scale
    m = _SLASH.match(s)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        mo, d = (a, b) if order == "mdy" else (b, a)
        if m.group(4) is None:
            return dt.date(y, mo, d)
        h = int(m.group(4))
        if m.group(7):
            h = h % 12 + (12 if m.group(7).lower() == "pm" else 0)
        return utc_ns(dt.datetime(y, mo, d, h, int(m.group(5)), int(m.group(6) or 0), tzinfo=NY))
    if _ISO_DAY.match(s):
        return dt.date(int(s[:4]), int(s[5:7]), int(s[8:10]))
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        for fmt in _TEXT_DATE_FORMATS:   # "Thu Sep 14 2023": a date only
            try:
                return dt.datetime.strptime(s, fmt).date()
            except ValueError:
                continue
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=NY)
    return utc_ns(t)


def _clean_symbol(s: str) -> str:
    s = s.strip().upper()
    if s.startswith("O:"):
        s = s[2:]
    return s.lstrip(".").replace(" ", "")


def _clean_underlying(s: str) -> str:
    s = s.strip().upper()
    if s.startswith("I:"):
        s = s[2:]
    s = s.lstrip("^$.")
    return s[:-2] if s.endswith(".X") else s


def _third_friday(d: dt.date) -> bool:
    """The monthly (AM) expiry date of ``d``'s month: the third Friday, or the Thursday before it
    when that Friday is an exchange holiday."""
    f = nth_weekday(d.year, d.month, 4, 3)
    return d == (f - dt.timedelta(days=1) if is_friday_holiday(f) else f)


def _implied_root(underlying: str, day: dt.date) -> str:
    if underlying in AM_SETTLED_ROOTS and not _third_friday(day):
        return PM_ROOT.get(underlying, underlying)
    return underlying


# --------------------------------------------------------------------------- reader

def read_contract_rows(path: str | Path, asof_ts_ns: int | None = None, underlying: str | None = None,
                       require_spot: bool = True) -> ChainSnapshot:
    """Read one one-row-per-contract option chain CSV (DataShop or a generic vendor export).

    ``asof_ts_ns`` (UTC ns): the time the quotes are valued at (default: from the file, see the module
    docstring); in a file of several snapshots it selects the one it falls on. ``underlying``: the
    underlying symbol (default: the file's underlying column, else from the option roots); in a file
    of several underlyings it selects one. ``require_spot``: refuse a file without an underlying price
    (pass False when the caller takes the spot from put-call parity).
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header: list[str] = []
        for row in reader:
            if any(c.strip() for c in row):
                header = row
                break
        if not header:
            raise ValueError(f"{path}: empty file")
        lay = _Layout(path, header)
        if lay.missing():
            raise ValueError(f"{path}: line {reader.line_num}: not an option chain with one row per "
                             f"contract: no {' and no '.join(lay.missing())} "
                             f"(header: {', '.join(h.strip() for h in header)})")
        need = max(lay.cols.values()) + 1
        rows: list[list[str]] = []
        lines: list[int] = []
        short: tuple[int, int] | None = None
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if short is not None:   # a short row is only allowed as a trailing one-cell footer
                raise ValueError(f"{path}: line {short[0]}: {short[1]} fields, the header has {len(header)}")
            if len(row) < need:
                if sum(1 for c in row if c.strip()) <= 1:
                    short = (reader.line_num, len(row))
                    continue
                raise ValueError(f"{path}: line {reader.line_num}: {len(row)} fields, the header has "
                                 f"{len(header)}")
            rows.append(row)
            lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{path}: no option rows")
    c = lay.cols
    colname = {f: header[j].strip() for f, j in c.items()}

    def text(field: str) -> list[str]:
        j = c[field]
        return [r[j] for r in rows]

    def keep(mask: list[bool]) -> None:
        nonlocal rows, lines
        rows = [r for r, k in zip(rows, mask) if k]
        lines = [ln for ln, k in zip(lines, mask) if k]

    # ---- one underlying
    und = _clean_underlying(underlying) if underlying else None
    if "underlying" in c:
        tx = text("underlying")
        clean = {v: _clean_underlying(v) for v in set(tx)}
        vals = [clean[v] for v in tx]
        seen = Counter(v for v in vals if v)
        if und is not None and len(seen) > 1:
            keep([v == und for v in vals])
            if not rows:
                raise ValueError(f"{path}: no rows of underlying {und!r} (column "
                                 f"{colname['underlying']!r} has {', '.join(sorted(seen))})")
        elif len(seen) > 1:
            raise ValueError(f"{path}: column {colname['underlying']!r} holds several underlyings "
                             f"({', '.join(sorted(seen))}): pass the one to read (underlying=)")
        elif seen:
            only = next(iter(seen))
            if und is not None and ROOT_UNDERLYING.get(und, und) != ROOT_UNDERLYING.get(only, only):
                raise ValueError(f"{path}: the file's underlying is {only} (column "
                                 f"{colname['underlying']!r}), not {und}")
            und = und or only

    # ---- one snapshot
    if "asof" in c and not any(v.strip() for v in text("asof")):
        del c["asof"]          # an empty date column is no date column
    order = _slash_order(path, [(colname[f], text(f)) for f in ("asof", "expiration") if f in c], lines)
    stamps: list = []
    if "asof" in c:
        tx = text("asof")
        cache: dict[str, object] = {}
        for v, ln in zip(tx, lines):
            t = cache.get(v)
            if t is None:
                t = _parse_time(v, order)
                if t is None:
                    raise ValueError(f"{_where(path, ln, colname['asof'])}: expected a date or a date "
                                     f"and time, got {v!r}")
                cache[v] = t
            stamps.append(t)
        kinds = {type(t) for t in cache.values()}
        if len(kinds) > 1:
            raise ValueError(f"{path}: column {colname['asof']!r} mixes dates and times")
        exact = lay.kind == "datashop_quotes"

        def group(t):   # snapshot key of one stamp
            if isinstance(t, dt.date) or exact:
                return t
            return dt.datetime.fromtimestamp(t // 1_000_000_000, tz=NY).date()

        keys = [group(t) for t in stamps]
        distinct = sorted(set(keys))
        if len(distinct) > 1:
            what = "quote_datetime" if exact else "day"
            if asof_ts_ns is None:
                raise ValueError(
                    f"{path}: column {colname['asof']!r} holds {len(distinct)} snapshots (one per "
                    f"{what}, {_show(distinct[0])} .. {_show(distinct[-1])}): read one snapshot per "
                    "file, or pass --asof on one of them to select it")
            want = int(asof_ts_ns) if exact else dt.datetime.fromtimestamp(
                int(asof_ts_ns) // 1_000_000_000, tz=NY).date()
            sel = [k == want for k in keys]
            if not any(sel):
                raise ValueError(f"{path}: --asof {_show(int(asof_ts_ns))} is none of the file's "
                                 f"{len(distinct)} snapshots ({_show(distinct[0])} .. {_show(distinct[-1])})")
            stamps = [t for t, k in zip(stamps, sel) if k]
            keep(sel)

    # ---- spot
    spot, spot_from = np.nan, ""
    if "ubid" in c and "uask" in c:
        ub = _floats(path, colname["ubid"], text("ubid"), lines)[0]
        ua = _floats(path, colname["uask"], text("uask"), lines)[0]
        ok = np.isfinite(ub) & np.isfinite(ua) & (ub > 0.0) & (ua > 0.0)
        if ok.any():
            spot, spot_from = float(np.median((ub[ok] + ua[ok]) / 2.0)), \
                f"mid of {colname['ubid']}/{colname['uask']}"
    if not spot == spot and "spot" in c:
        sp = _floats(path, colname["spot"], text("spot"), lines)[0]
        ok = np.isfinite(sp) & (sp > 0.0)
        if ok.any():
            spot, spot_from = float(np.median(sp[ok])), colname["spot"]
    if not spot == spot and require_spot:
        raise ValueError(f"{path}: no underlying price: expected a column underlying_price, spot, "
                         "underlying_last (or underlying_bid + underlying_ask) with values > 0; add one, "
                         "or take the spot from put-call parity (--spot parity)")

    # ---- contract identity
    n = len(rows)
    sym_osi: list[tuple[str, str, str, int] | None] = [None] * n
    has_cols = {"expiration", "strike", "right"} <= c.keys()
    symbols_used = False
    if "symbol" in c:
        raw = text("symbol")
        parsed = [_OSI.match(_clean_symbol(v)) for v in raw]
        if not has_cols or parsed[0] is not None:
            for i, m in enumerate(parsed):
                if m is None:
                    raise ValueError(f"{_where(path, lines[i], colname['symbol'])}: expected an OCC "
                                     f"option symbol like SPXW241106C05900000, got {raw[i]!r}")
                sym_osi[i] = (m.group(1), m.group(2), m.group(3), int(m.group(4)))
            symbols_used = True
        elif und is None and lay.names[c["symbol"]] in ("ticker", "symbol"):
            # a non-OSI symbol/ticker beside expiration/strike/type columns names the underlying
            vals = Counter(_clean_underlying(v) for v in raw if v.strip())
            if len(vals) == 1:
                und = next(iter(vals))

    strike = right = exp_days = None
    if has_cols:
        strike, _ = _floats(path, colname["strike"], text("strike"), lines)
        bad = ~(np.isfinite(strike) & (strike > 0.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{_where(path, lines[i], colname['strike'])}: expected a positive strike, "
                             f"got {rows[i][c['strike']]!r}")
        # strikes against spot: ThetaData-style strikes in 1/1000 dollars would be silently wrong
        scale_note = ""
        if spot == spot and not symbols_used:
            ratio = float(np.median(strike)) / spot
            if 200.0 < ratio < 5000.0 and np.array_equal(strike, np.round(strike)):
                strike = strike / 1000.0
                scale_note = ", strikes in 1/1000 -> /1000"
            elif ratio > 50.0 or ratio < 0.02:
                raise ValueError(f"{path}: column {colname['strike']!r}: the median strike "
                                 f"{float(np.median(strike)):g} is {ratio:.3g} x the spot {spot:g}: wrong "
                                 "strike unit or wrong spot column?")
        right = []
        for v, ln in zip(text("right"), lines):
            r = _RIGHTS.get(v.strip().upper())
            if r is None:
                raise ValueError(f"{_where(path, ln, colname['right'])}: expected C/P/call/put, got {v!r}")
            right.append(r)
        ex = text("expiration")
        dcache: dict[str, dt.date] = {}
        exp_days = []
        for v, ln in zip(ex, lines):
            d = dcache.get(v)
            if d is None:
                try:
                    d = _parse_day(v, order)
                except ValueError:
                    d = None
                if d is None:
                    raise ValueError(f"{_where(path, ln, colname['expiration'])}: expected an expiration "
                                     f"date (YYYY-MM-DD, YYYYMMDD or MM/DD/YYYY), got {v!r}")
                dcache[v] = d
            exp_days.append(d)

    roots_col = [v.strip().upper() for v in text("root")] if "root" in c else None
    if symbols_used:
        roots = [s[0] for s in sym_osi]
        osi_days: dict[str, dt.date] = {}
        days = []
        for i, (_, yymmdd, _, _) in enumerate(sym_osi):
            d = osi_days.get(yymmdd)
            if d is None:
                try:
                    d = dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
                except ValueError:
                    raise ValueError(f"{_where(path, lines[i], colname['symbol'])}: bad expiration "
                                     f"{yymmdd!r} in {rows[i][c['symbol']]!r}") from None
                osi_days[yymmdd] = d
            days.append(d)
        k_sym = np.array([s[3] for s in sym_osi], dtype=np.float64) / 1000.0
        r_sym = [s[2] for s in sym_osi]
        if has_cols:   # both given: they must agree
            for i in range(n):
                if (abs(strike[i] - k_sym[i]) > 5e-4 or right[i] != r_sym[i] or exp_days[i] != days[i]):
                    raise ValueError(
                        f"{path}: line {lines[i]}: symbol {rows[i][c['symbol']].strip()!r} disagrees with "
                        f"columns {colname['expiration']!r}/{colname['strike']!r}/{colname['right']!r} "
                        f"({exp_days[i]}, {strike[i]:g}, {right[i]})")
        else:
            strike, right = k_sym, r_sym
        symbols = [f"{s[0]}{s[1]}{s[2]}{s[3]:08d}" for s in sym_osi]
    else:
        days = exp_days
        given = roots_col if roots_col is not None else [""] * n
        if not all(given) and und is None:
            raise ValueError(f"{path}: no option root, symbol or underlying column: pass the "
                             "underlying (underlying=, e.g. SPX)")
        rc: dict[tuple[str, dt.date], str] = {}
        roots = []
        for g, d in zip(given, days):    # a blank root is inferred from the underlying
            r = rc.get((g, d))
            if r is None:
                r = rc[(g, d)] = _clean_underlying(g) if g else _implied_root(und, d)
            roots.append(r)
        prefix = {rd: f"{rd[0]}{rd[1]:%y%m%d}" for rd in set(zip(roots, days))}
        symbols = [f"{prefix[(r, d)]}{p}{round(k * 1000):08d}"
                   for r, d, p, k in zip(roots, days, right, strike.tolist())]
    if und is None:
        cnt: Counter = Counter()
        for r, k in Counter(roots).items():
            cnt[ROOT_UNDERLYING.get(r, r)] += k
        und = cnt.most_common(1)[0][0]

    # duplicate contracts would double their open interest downstream
    if len(set(symbols)) != n:
        first: dict[str, int] = {}
        for i, s in enumerate(symbols):
            if s in first:
                hint = ("" if symbols_used or roots_col is not None else
                        f" (no root column: on a monthly expiry {und} lists the AM and the PM series "
                        "at the same strikes; add a root or option symbol column)")
                raise ValueError(f"{path}: line {lines[i]}: contract {s} already on line "
                                 f"{lines[first[s]]}{hint}")
            first[s] = i

    exp_cache: dict[tuple[str, dt.date], int] = {}
    expiry = np.empty(n, dtype=np.int64)
    for i, (r, d) in enumerate(zip(roots, days)):
        e = exp_cache.get((r, d))
        if e is None:
            e = exp_cache[(r, d)] = settlement_ts_ns(d, r)
        expiry[i] = e

    # ---- numbers
    arrays: dict[str, np.ndarray] = {}
    for f in ("bid", "ask", "last", "net", "volume", "delta", "gamma", "open_interest"):
        arrays[f] = _floats(path, colname[f], text(f), lines)[0] if f in c else np.full(n, np.nan)
    iv_note = scale_note if has_cols else ""
    if "iv" in c:
        tx = text("iv")
        iv, pct = _floats(path, colname["iv"], tx, lines)
        pos = iv[np.isfinite(iv) & (iv > 0.0)]
        if pct or (pos.size and float(np.median(pos)) > 3.0):
            iv = _percent_to_fraction(tx)
            iv_note = ", IV percent -> fraction"
        arrays["iv"] = iv
    else:
        arrays["iv"] = np.full(n, np.nan)

    # ---- time
    main_root = Counter(roots).most_common(1)[0][0]
    close_root = und if und in LATE_CLOSE_ROOTS else main_root
    basis_given = getattr(cboe_csv, "ASOF_GIVEN", "given")
    if stamps:
        t0 = stamps[0]
        if isinstance(t0, dt.date):
            day = t0
            if lay.kind == "datashop_1545" and is_trading_day(day):
                hh, mm = 15, 45
                if is_early_close(day):   # 12:45 since 2020-02-05; before, 15:45 was after the close
                    hh, mm = (12, 45) if day >= dt.date(2020, 2, 5) else (13, 15 if close_root in
                                                                          LATE_CLOSE_ROOTS else 0)
                file_ts = utc_ns(dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY))
                basis = f"{colname['asof']} {day} at {hh}:{mm:02d} ET (the _1545 snapshot)"
            else:   # a date-only quote date: that day's closing quotes (the last session's if none)
                last = day
                while not is_trading_day(last):
                    last -= dt.timedelta(days=1)
                file_ts = options_close_ns(last, close_root)
                basis = f"{colname['asof']} {day}: the options close of {last}"
            asof_text = f"{colname['asof']} {day}"
        else:
            file_ts = max(stamps)
            when = prices_time_ns(file_ts, main_root)
            asof_text = f"{colname['asof']} {_show(file_ts)}" + (
                f" (newest of {len(set(stamps))})" if len(set(stamps)) > 1 else "")
            basis = (f"{colname['asof']}" if when == file_ts else
                     f"the last close before {colname['asof']} (no session was open then)")
            file_ts = when
        if asof_ts_ns is None:
            asof_ts_ns = file_ts
        else:
            basis = basis_given
    elif asof_ts_ns is None:
        raise ValueError(f"{path}: no quote date/time column (expected quote_date, quote_datetime, date or "
                         "timestamp): pass the snapshot time (--asof YYYY-MM-DDTHH:MM, New York time)")
    else:
        asof_text, basis = "", basis_given

    kind = {"datashop_eod": "Cboe DataShop EOD (bid_eod/ask_eod)",
            "datashop_1545": "Cboe DataShop EOD (15:45 quotes)",
            "datashop_quotes": "Cboe DataShop option quotes",
            "generic": "option chain, one row per contract"}[lay.kind]
    description = f"{kind}; spot: {spot_from or 'none'}{iv_note}"
    kw = dict(symbol=np.array(symbols), root=np.array(roots), expiry_ts_ns=expiry,
              strike=np.asarray(strike, dtype=np.float64), right=np.array(right), **arrays)
    return ChainSnapshot(und, description, spot, int(asof_ts_ns), asof_text, source=(str(path),),
                         asof_basis=basis, **kw)


def _show(t) -> str:
    if isinstance(t, dt.date):
        return t.isoformat()
    return dt.datetime.fromtimestamp(t // 1_000_000_000, tz=NY).strftime("%Y-%m-%d %H:%M:%S")
