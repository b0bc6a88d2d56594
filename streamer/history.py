"""CSV readers for the daily history files (see /work/shared/data/SOURCES.md); I/O, not core.

Handles the layouts found there: ISO dates (``date``/``Date``) or Cboe's MM/DD/YYYY (``DATE``),
one value column (``close``, ``CLOSE``, ``Close``, ``Value``) picked by name, FRED's "." for missing
values. Series are aligned on the SPX trading dates; a missing value is NaN (the flow book skips it).

The leveraged funds' underlyings (NDX, QQQ, SOXX, SMH, NVDA, TSLA, MSTR, COIN, ...: the fund table's
``underlying`` symbols) come from ``equities/`` (:func:`equity_file`, :func:`load_equities`), for the
backtest to feed as index closes keyed by their own symbol.
"""
from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
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

_DATE_COLS = ("date", "Date", "DATE", "Fecha")
_VALUE_COLS = ("close", "Close", "CLOSE", "Value", "value")


def _parse_date(s: str) -> str:
    """ISO date string from 'YYYY-MM-DD' or 'MM/DD/YYYY'.

    >>> _parse_date("11/06/2024"), _parse_date("2024-11-06")
    ('2024-11-06', '2024-11-06')
    """
    s = s.strip()
    if "/" in s:
        return datetime.strptime(s, "%m/%d/%Y").date().isoformat()
    return date.fromisoformat(s[:10]).isoformat()


@dataclass(slots=True)
class DailySeries:
    """One daily series: ISO dates ascending and float values (NaN = missing)."""

    name: str
    dates: list[str]
    values: np.ndarray
    path: str = ""

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.dates, self.values.tolist()))


def read_daily(path: str | Path, column: str | None = None, name: str = "") -> DailySeries:
    """Read a daily CSV: the date column and ``column`` (default: the first close/value column)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rd = csv.DictReader(fh)
        cols = rd.fieldnames or []
        dcol = next((c for c in _DATE_COLS if c in cols), None)
        vcol = column or next((c for c in _VALUE_COLS if c in cols), None)
        if dcol is None or vcol is None or vcol not in cols:
            raise ValueError(f"{path}: need a date column and a value column, found {cols}")
        rows: dict[str, float] = {}
        for row in rd:
            raw = (row.get(vcol) or "").strip().replace(",", "")
            try:
                v = float(raw)
            except ValueError:
                v = math.nan  # FRED "." and blanks
            rows[_parse_date(row[dcol])] = v if math.isfinite(v) else math.nan
    dates = sorted(rows)
    return DailySeries(name or path.stem, dates, np.array([rows[d] for d in dates], dtype=float), str(path))


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
    an explicit ``bond`` path guesses from its name (FRED/DGS -> yield) unless ``bond_input`` is given.
    """
    found = find_files(data_dir) if data_dir is not None and Path(data_dir).is_dir() else {}
    spx_p = spx or found.get("spx")
    vix_p = vix or found.get("vix")
    if spx_p is None or vix_p is None:
        raise FileNotFoundError(f"need SPX and VIX daily files (data dir {data_dir}; patterns {FILE_PATTERNS})")
    if bond is None:
        bond = found.get("tlt") or found.get("dgs10")
    if bond is not None and bond_input is None:
        n = Path(bond).name.lower()
        bond_input = "yield_pct" if ("dgs" in n or "fred" in n or "yield" in n) else "price"
    s = read_daily(spx_p, "close", "spx")
    idx = s.dates

    def align(p: str | Path | None, col: str | None = None) -> np.ndarray:
        if p is None:
            return np.full(len(idx), np.nan)
        m = read_daily(p, col).as_dict()
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
    return DailyHistory(idx, s.values, align(vix_p), align(bond), bond_input or "price", extra, sources, und)


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
