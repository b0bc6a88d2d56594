"""Reader for Cboe's delayed-quote "quotedata" option-chain CSV (stdlib + numpy; I/O, not core).

File layout (see /work/shared/data/SOURCES.md): line 1 blank; line 2 ``<name>,Last: <spot>,...``;
line 3 ``"Date: ...",Bid: ...``; line 4 the header; then one row per (expiry, strike) with the
call's 9 fields, the strike, and the put's 9 fields side by side::

    Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,
    Puts,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest

The reader flattens each row into two contracts (call first, then put).

Settlement instants (``expiry_ts_ns``, UTC nanoseconds) follow the contract specifications:

* AM-settled roots (``SPX`` standard monthlies, ``NDX``, ``RUT``; ``VIX``/``VIXW``, settled by the
  Wednesday-morning special opening quotation of SPX options): 09:30 America/New_York on
  the expiry date (the special opening quotation; the last trading day is the day before, but the
  option's value is fixed at the open, which is what time-to-expiry must measure).
* Everything else (``SPXW``, ``SPY``, ...): the 16:00 close, or 13:00 on the NYSE early-close days
  (day after Thanksgiving, Dec 24 and Jul 3 on weekdays).

Variations seen in the data folder and handled here: English ``"Date: September 14, 2023 at 4:31
PM EDT"`` and Spanish ``"Date: 11 de noviembre de 2024, 8:02 GMT-5"`` time stamps, different
underlying names on line 2 (``Standard & Poors 500 Index``, ``S&P 500 INDEX``, ``SP 500 INDEX``),
quoted thousands separators in the header (``"Volume: 71,039,449"``), and AM (``SPX``) and PM
(``SPXW``) series sharing one expiry date.

The "Date:" line is when the page was saved, not always when its prices are from: saved after the
close, at a weekend or on a holiday it shows the last session's closing quotes, which are valued at
that close (``read_quotedata``; e.g. the 2024-01-05 SPX file saved on Sunday 2024-01-07 gives the
VIX of Friday's 16:15 close, not one two days older in time to expiry).
"""
from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core.calendar import is_early_close, prices_time_ns, utc_ns

NY = ZoneInfo("America/New_York")
_UTC = dt.timezone.utc

#: Roots whose options settle at the open (09:30 ET, special opening quotation).
AM_SETTLED_ROOTS: frozenset[str] = frozenset({"SPX", "NDX", "RUT", "VIX", "VIXW"})
#: Option root -> underlying symbol (weekly/PM roots map onto their index).
ROOT_UNDERLYING: dict[str, str] = {"SPX": "SPX", "SPXW": "SPX", "NDX": "NDX", "NDXP": "NDX",
                                   "RUT": "RUT", "RUTW": "RUT", "XSP": "XSP", "VIX": "VIX", "VIXW": "VIX"}

_SYMBOL_RE = re.compile(r"^([A-Z]+?)(\d{6})([CP])(\d{8})$")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"])}
_MONTHS.update({m: i + 1 for i, m in enumerate(
    ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
     "octubre", "noviembre", "diciembre"])})
_MONTHS["setiembre"] = 9
_EN_DATE = re.compile(r"Date:\s*([A-Za-z]+)\s+(\d{1,2}),\s*(\d{4})\s+at\s+(\d{1,2}):(\d{2})\s*"
                      r"([AP]M)\s*([A-Z]{2,4})?", re.I)
_ES_DATE = re.compile(r"Date:\s*(\d{1,2})\s+de\s+([a-z]+)\s+de\s+(\d{4}),?\s+(\d{1,2}):(\d{2})"
                      r"\s*(?:(a\.?\s?m\.?|p\.?\s?m\.?)\s*)?(?:GMT|UTC)?\s*([+-]\d{1,2})?(?::?(\d{2}))?",
                      re.I)
_TZ_ABBR = {"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "UTC": 0, "GMT": 0}



def settlement_ts_ns(expiry: dt.date, root: str) -> int:
    """Settlement instant of an option series in UTC ns: 09:30 ET for AM roots, else the close.

    >>> settlement_ts_ns(dt.date(2024, 1, 19), "SPX") == utc_ns(dt.datetime(2024, 1, 19, 14, 30, tzinfo=_UTC))
    True
    >>> settlement_ts_ns(dt.date(2023, 9, 15), "SPXW") == utc_ns(dt.datetime(2023, 9, 15, 20, 0, tzinfo=_UTC))
    True
    """
    if root in AM_SETTLED_ROOTS:
        hh, mm = 9, 30
    elif is_early_close(expiry):
        hh, mm = 13, 0
    else:
        hh, mm = 16, 0
    return utc_ns(dt.datetime(expiry.year, expiry.month, expiry.day, hh, mm, tzinfo=NY))


def parse_date_line(text: str) -> int:
    """Parse the quotedata "Date:" line (English or Spanish) into UTC ns.

    >>> parse_date_line("Date: September 14, 2023 at 4:31 PM EDT") == utc_ns(dt.datetime(2023, 9, 14, 20, 31, tzinfo=_UTC))
    True
    >>> parse_date_line("Date: 11 de noviembre de 2024, 8:02 GMT-5") == utc_ns(dt.datetime(2024, 11, 11, 13, 2, tzinfo=_UTC))
    True
    """
    m = _EN_DATE.search(text)
    if m:
        mon, day, year, hh, mi, ampm, tz = m.groups()
        h = int(hh) % 12 + (12 if ampm.upper() == "PM" else 0)
        naive = dt.datetime(int(year), _MONTHS[mon.lower()], int(day), h, int(mi))
        if tz and tz.upper() in _TZ_ABBR and tz.upper() not in ("EST", "EDT"):
            return utc_ns(naive.replace(tzinfo=dt.timezone(dt.timedelta(hours=_TZ_ABBR[tz.upper()]))))
        return utc_ns(naive.replace(tzinfo=NY))  # EST/EDT or missing: New York wall clock
    m = _ES_DATE.search(text)
    if m:
        day, mon, year, hh, mi, ampm, off_h, off_m = m.groups()
        h = int(hh)
        if ampm:
            h = h % 12 + (12 if ampm.lower().startswith("p") else 0)
        naive = dt.datetime(int(year), _MONTHS[mon.lower()], int(day), h, int(mi))
        if off_h is None:
            return utc_ns(naive.replace(tzinfo=NY))
        sign = -1 if off_h.startswith("-") else 1
        off = dt.timedelta(hours=int(off_h), minutes=sign * int(off_m or 0))
        return utc_ns(naive.replace(tzinfo=dt.timezone(off)))
    raise ValueError(f"unrecognised quotedata Date line: {text!r}")


def _num(s: str) -> float:
    """Vendor number -> float; blanks and dashes become NaN."""
    s = s.strip().replace(",", "")
    if s in ("", "-", "--", "N/A"):
        return float("nan")
    return float(s)


@dataclass(slots=True)
class ChainSnapshot:
    """One option-chain snapshot as flat per-contract arrays (prices in index points, OI in contracts)."""

    underlying: str
    description: str
    spot: float
    asof_ts_ns: int
    asof_text: str
    symbol: np.ndarray          # str, vendor symbol e.g. SPXW240105C04700000
    root: np.ndarray            # str, option root ('SPX', 'SPXW', 'SPY')
    expiry_ts_ns: np.ndarray    # int64, settlement instant UTC ns
    strike: np.ndarray          # float64
    right: np.ndarray           # '<U1', 'C' or 'P'
    bid: np.ndarray
    ask: np.ndarray
    last: np.ndarray
    net: np.ndarray
    volume: np.ndarray
    iv: np.ndarray              # vendor implied vol, annualized decimal (0 = not computed)
    delta: np.ndarray
    gamma: np.ndarray           # vendor gamma, per index point
    open_interest: np.ndarray
    source: tuple[str, ...] = field(default_factory=tuple)
    asof_basis: str = ""        # how asof_ts_ns was chosen (ASOF_* below)

    def __len__(self) -> int:
        return int(self.strike.shape[0])

    @property
    def asof(self) -> dt.datetime:
        """Snapshot time as an aware New York datetime."""
        return dt.datetime.fromtimestamp(self.asof_ts_ns / 1e9, tz=NY)

    def expiries(self) -> np.ndarray:
        """Sorted unique settlement instants (UTC ns)."""
        return np.unique(self.expiry_ts_ns)

    def select(self, mask: np.ndarray) -> ChainSnapshot:
        """Subset of contracts by boolean mask (header fields kept)."""
        return ChainSnapshot(self.underlying, self.description, self.spot, self.asof_ts_ns,
                             self.asof_text, *(getattr(self, n)[mask] for n in _ARRAY_FIELDS),
                             source=self.source, asof_basis=self.asof_basis)


ASOF_GIVEN = "given"
ASOF_DATE_LINE = "the file's Date line"
ASOF_LAST_CLOSE = "the last close before the file's Date line (no session was open then)"

_ARRAY_FIELDS = ("symbol", "root", "expiry_ts_ns", "strike", "right", "bid", "ask", "last", "net",
                 "volume", "iv", "delta", "gamma", "open_interest")
_SIDE_FIELDS = ("last", "net", "bid", "ask", "volume", "iv", "delta", "gamma", "open_interest")


def read_quotedata(path: str | Path, asof_ts_ns: int | None = None) -> ChainSnapshot:
    """Read one Cboe quotedata CSV.

    ``asof_ts_ns`` (UTC ns): the time the quotes are valued at. Default: when the prices on the page are
    from (``calendar.prices_time_ns`` of the "Date:" line): the line itself during a session (SPX/XSP/VIX
    overnight GTH included), else the last close before it (a page saved at 16:31, on a Sunday or a
    holiday shows the closing quotes). ``ChainSnapshot.asof_basis`` says which.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    # Header block: skip blank lines, then the name/Last line, the Date line, the column header.
    i = 0
    while i < len(rows) and not any(c.strip() for c in rows[i]):
        i += 1
    if i + 2 >= len(rows):
        raise ValueError(f"{path}: truncated quotedata header")
    name_row, date_row, header = rows[i], rows[i + 1], rows[i + 2]
    description = name_row[0].strip()
    spot = float("nan")
    for c in name_row[1:]:
        if c.strip().lower().startswith("last:"):
            spot = _num(c.split(":", 1)[1])
    date_text = next((c for c in date_row if c.strip().lower().startswith("date:")), date_row[0])
    file_ts = parse_date_line(date_text)
    cols = [h.strip().lower() for h in header]
    try:
        k_col = cols.index("strike")
    except ValueError as e:
        raise ValueError(f"{path}: no Strike column in header {header!r}") from e
    names = ["last sale", "net", "bid", "ask", "volume", "iv", "delta", "gamma", "open interest"]
    call_idx = [cols.index(n, 0, k_col) for n in names]
    put_idx = [cols.index(n, k_col + 1) for n in names]
    call_sym, put_sym = cols.index("calls"), cols.index("puts")

    out: dict[str, list] = {n: [] for n in _ARRAY_FIELDS}
    exp_cache: dict[tuple[str, str], int] = {}
    for r in rows[i + 3:]:
        if len(r) <= max(put_idx) or not r[k_col].strip():
            continue
        strike = _num(r[k_col])
        for sym_col, idx in ((call_sym, call_idx), (put_sym, put_idx)):
            sym = r[sym_col].strip()
            m = _SYMBOL_RE.match(sym)
            if not m:
                raise ValueError(f"{path}: bad option symbol {sym!r}")
            root, yymmdd, right, k8 = m.groups()
            if abs(int(k8) / 1000.0 - strike) > 1e-6:
                raise ValueError(f"{path}: strike {strike} disagrees with symbol {sym}")
            key = (root, yymmdd)
            if key not in exp_cache:
                d = dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
                exp_cache[key] = settlement_ts_ns(d, root)
            out["symbol"].append(sym)
            out["root"].append(root)
            out["expiry_ts_ns"].append(exp_cache[key])
            out["strike"].append(strike)
            out["right"].append(right)
            for n, j in zip(_SIDE_FIELDS, idx):
                out[n].append(_num(r[j]))
    roots = Counter(out["root"])
    if not roots:
        raise ValueError(f"{path}: no option rows")
    underlying = Counter({ROOT_UNDERLYING.get(k, k): 0 for k in roots})
    for k, v in roots.items():
        underlying[ROOT_UNDERLYING.get(k, k)] += v
    arrays = {
        "symbol": np.array(out["symbol"]), "root": np.array(out["root"]),
        "expiry_ts_ns": np.array(out["expiry_ts_ns"], dtype=np.int64),
        "strike": np.array(out["strike"], dtype=np.float64), "right": np.array(out["right"]),
    }
    for n in _SIDE_FIELDS:
        arrays[n] = np.array(out[n], dtype=np.float64)
    if asof_ts_ns is None:  # a page saved after the close shows the closing quotes: value them then
        asof_ts_ns = prices_time_ns(file_ts, roots.most_common(1)[0][0])
        basis = ASOF_DATE_LINE if asof_ts_ns == file_ts else ASOF_LAST_CLOSE
    else:
        basis = ASOF_GIVEN
    return ChainSnapshot(underlying.most_common(1)[0][0], description, spot, int(asof_ts_ns),
                         date_text.strip(), source=(str(path),), asof_basis=basis, **arrays)


def combine(snapshots: Iterable[ChainSnapshot], asof_ts_ns: int | None = None) -> ChainSnapshot:
    """Concatenate snapshots of one underlying (e.g. the Jan and Feb files of 2025-01-06).

    Duplicate contracts (same symbol) keep the first occurrence; spot and time come from the first
    snapshot unless ``asof_ts_ns`` is given.
    """
    snaps = list(snapshots)
    if not snaps:
        raise ValueError("nothing to combine")
    if len({s.underlying for s in snaps}) != 1:
        raise ValueError("cannot combine different underlyings")
    arrs = {n: np.concatenate([getattr(s, n) for s in snaps]) for n in _ARRAY_FIELDS}
    _, first = np.unique(arrs["symbol"], return_index=True)
    keep = np.sort(first)
    s0 = snaps[0]
    return ChainSnapshot(s0.underlying, s0.description, s0.spot,
                         s0.asof_ts_ns if asof_ts_ns is None else int(asof_ts_ns), s0.asof_text,
                         source=tuple(p for s in snaps for p in s.source),
                         asof_basis=s0.asof_basis if asof_ts_ns is None else ASOF_GIVEN,
                         **{n: a[keep] for n, a in arrs.items()})


def ny_ts_ns(year: int, month: int, day: int, hour: int = 16, minute: int = 0) -> int:
    """New York wall-clock time -> UTC ns (handy for snapshot-time overrides).

    >>> ny_ts_ns(2024, 1, 5, 16, 15) == utc_ns(dt.datetime(2024, 1, 5, 21, 15, tzinfo=_UTC))
    True
    """
    return utc_ns(dt.datetime(year, month, day, hour, minute, tzinfo=NY))


def replay_quotes(snapshot: ChainSnapshot, ts_ns: int | None = None
                  ) -> Iterator[tuple[str, dict]]:
    """Yield ``("quote", {...})`` then ``("open_interest", {...})`` messages per contract.

    Quote fields: underlying, ts_ns, expiry_ts_ns, strike, right, bid, ask, bid_size, ask_size
    (sizes are not in quotedata files and are None). Open-interest fields: underlying, ts_ns,
    expiry_ts_ns, strike, right, open_interest. Contracts come in file order; NaN prices and OI
    are skipped for that message kind.
    """
    t = snapshot.asof_ts_ns if ts_ns is None else int(ts_ns)
    und = snapshot.underlying
    for j in range(len(snapshot)):
        base = {"underlying": und, "ts_ns": t, "expiry_ts_ns": int(snapshot.expiry_ts_ns[j]),
                "strike": float(snapshot.strike[j]), "right": str(snapshot.right[j])}
        bid, ask = float(snapshot.bid[j]), float(snapshot.ask[j])
        if bid == bid and ask == ask:
            yield "quote", {**base, "bid": bid, "ask": ask, "bid_size": None, "ask_size": None}
        oi = float(snapshot.open_interest[j])
        if oi == oi:
            yield "open_interest", {**base, "open_interest": int(oi)}
