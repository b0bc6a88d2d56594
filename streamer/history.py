"""CSV readers for the daily history files (see /work/shared/data/SOURCES.md); I/O, not core.

Handles the layouts found there: ISO dates (``date``/``Date``) or Cboe's MM/DD/YYYY (``DATE``),
one value column (``close``, ``CLOSE``, ``Close``, ``Value``) picked by name, FRED's "." for missing
values. Series are aligned on the SPX trading dates; a missing value is NaN (the flow book skips it).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np

__all__ = ["DailySeries", "DailyHistory", "read_daily", "find_files", "load_history", "DEFAULT_DATA_DIR",
           "FILE_PATTERNS"]

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

    def __len__(self) -> int:
        return len(self.dates)


def load_history(data_dir: str | Path | None = None, *, spx: str | Path | None = None,
                 vix: str | Path | None = None, bond: str | Path | None = None,
                 bond_input: str | None = None, vix9d: str | Path | None = None,
                 vix3m: str | Path | None = None, gex: str | Path | None = None) -> DailyHistory:
    """Load and align the daily history; explicit paths override files found in ``data_dir``.

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
    return DailyHistory(idx, s.values, align(vix_p), align(bond), bond_input or "price", extra, sources)
