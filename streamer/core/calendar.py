"""The US equity and index-option exchange calendar: trading days, early closes, session times (stdlib only).

One source for the simulator's sessions, the Cboe VIX expiry rules (a Friday holiday moves an expiry to
the Thursday), the settlement instants of option series and the time a quote file's prices are from.

Rules: NYSE full-day closures (New Year's Day unless on a Saturday, MLK, Presidents' Day, Good Friday,
Memorial Day, Juneteenth from 2022, Independence Day, Labor Day, Thanksgiving, Christmas; a Saturday
holiday is observed on the Friday, a Sunday one on the Monday) plus the unscheduled closures since 2001
(:data:`SPECIAL_CLOSURES`); 13:00 early closes on the day after Thanksgiving, Dec 24 and Jul 3 on weekdays.
Options on the broad indexes and on the large index ETFs trade 15 minutes past the stock close
(:data:`LATE_CLOSE_ROOTS`: 16:15, or 13:15 on an early-close day); SPX, XSP and VIX options also trade
overnight in Cboe's Global Trading Hours (:data:`GTH_ROOTS`, from 20:15 ET the evening before).
Checked against the days the S&P 500 closed from 2015 to 2026 and the published early closes
(tests/unit/test_calendar.py).
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
NS = 1_000_000_000

#: unscheduled full-day closures (national days of mourning, 9/11, Hurricane Sandy)
SPECIAL_CLOSURES: frozenset[dt.date] = frozenset({
    dt.date(2001, 9, 11), dt.date(2001, 9, 12), dt.date(2001, 9, 13), dt.date(2001, 9, 14),
    dt.date(2004, 6, 11), dt.date(2007, 1, 2), dt.date(2012, 10, 29), dt.date(2012, 10, 30),
    dt.date(2018, 12, 5), dt.date(2025, 1, 9)})

#: option roots whose regular session ends at 16:15 ET (index options; SPY, QQQ, IWM, DIA options)
LATE_CLOSE_ROOTS: frozenset[str] = frozenset({
    "SPX", "SPXW", "SPXPM", "XSP", "VIX", "VIXW", "NDX", "NDXP", "XND", "RUT", "RUTW", "MRUT", "DJX", "OEX", "XEO",
    "SPY", "QQQ", "IWM", "DIA"})
#: option roots with Cboe Global Trading Hours (overnight sessions before the regular one)
GTH_ROOTS: frozenset[str] = frozenset({"SPX", "SPXW", "XSP", "VIX", "VIXW"})
#: first trading day whose GTH session opened at 20:15 ET the evening before
GTH_EVENING_SINCE = dt.date(2021, 11, 22)


def good_friday(year: int) -> dt.date:
    """Good Friday of ``year`` (Gregorian Easter, anonymous algorithm, minus two days).

    >>> good_friday(2024), good_friday(2025)
    (datetime.date(2024, 3, 29), datetime.date(2025, 4, 18))
    """
    a, b, c = year % 19, year // 100, year % 100
    h = (19 * a + b - b // 4 - (b - (b + 8) // 25 + 1) // 3 + 15) % 30
    ll = (32 + 2 * (b % 4) + 2 * (c // 4) - h - c % 4) % 7
    m = (a + 11 * h + 22 * ll) // 451
    month, day = divmod(h + ll - 7 * m + 114, 31)
    return dt.date(year, month, day + 1) - dt.timedelta(days=2)


def nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return nxt - dt.timedelta(days=(nxt.weekday() - weekday) % 7)


def _observed(d: dt.date) -> dt.date:
    return d + dt.timedelta(days=1) if d.weekday() == 6 else d - dt.timedelta(days=1) if d.weekday() == 5 else d


@lru_cache(maxsize=256)
def nyse_holidays(year: int) -> frozenset[dt.date]:
    """NYSE full-day closures of ``year`` on weekdays.

    >>> dt.date(2024, 11, 28) in nyse_holidays(2024), dt.date(2024, 3, 29) in nyse_holidays(2024)
    (True, True)
    >>> dt.date(2021, 12, 31) in nyse_holidays(2021), dt.date(2021, 12, 24) in nyse_holidays(2021)
    (False, True)
    """
    days = {
        nth_weekday(year, 1, 0, 3), nth_weekday(year, 2, 0, 3), good_friday(year),
        _last_weekday(year, 5, 0), nth_weekday(year, 9, 0, 1), nth_weekday(year, 11, 3, 4),
        _observed(dt.date(year, 7, 4)), _observed(dt.date(year, 12, 25)),
    }
    if year >= 2022:
        days.add(_observed(dt.date(year, 6, 19)))
    if dt.date(year, 1, 1).weekday() != 5:  # Jan 1 on a Saturday is not observed on Dec 31
        days.add(_observed(dt.date(year, 1, 1)))
    days.update(d for d in SPECIAL_CLOSURES if d.year == year)
    return frozenset(days)


def is_trading_day(d: dt.date) -> bool:
    """Weekday and not an NYSE closure."""
    return d.weekday() < 5 and d not in nyse_holidays(d.year)


def is_friday_holiday(day: dt.date) -> bool:
    """True if ``day`` is a Friday on which US exchanges are closed.

    >>> is_friday_holiday(dt.date(2024, 3, 29)), is_friday_holiday(dt.date(2024, 3, 22))
    (True, False)
    """
    return day.weekday() == 4 and day in nyse_holidays(day.year)


def _thanksgiving(year: int) -> dt.date:
    return nth_weekday(year, 11, 3, 4)


def is_early_close(day: dt.date) -> bool:
    """True on NYSE 13:00 early-close days: the day after Thanksgiving, Dec 24 and Jul 3 on weekdays.

    >>> is_early_close(dt.date(2024, 11, 29)), is_early_close(dt.date(2024, 11, 22))
    (True, False)
    """
    if day.weekday() >= 5 or not is_trading_day(day):
        return False
    if day == _thanksgiving(day.year) + dt.timedelta(days=1):
        return True
    if day.month == 12 and day.day == 24:
        return True
    # Jul 3 closes early unless it is itself the observed holiday (Jul 4 on a Saturday).
    return day.month == 7 and day.day == 3 and day.weekday() != 4


def utc_ns(t: dt.datetime) -> int:
    """Aware datetime -> UTC epoch nanoseconds (exact integer arithmetic, no float rounding)."""
    d = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (d.days * 86_400 + d.seconds) * NS + d.microseconds * 1_000


def _ts_ns(day: dt.date, hh: int, mm: int) -> int:
    return utc_ns(dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY))


def session_open_ns(day: dt.date) -> int:
    """09:30 ET on ``day`` (UTC ns)."""
    return _ts_ns(day, 9, 30)


def options_close_ns(day: dt.date, root: str = "") -> int:
    """End of the regular options session on trading day ``day`` for option root ``root`` (UTC ns).

    >>> options_close_ns(dt.date(2024, 11, 29), "SPXW") == _ts_ns(dt.date(2024, 11, 29), 13, 15)
    True
    >>> options_close_ns(dt.date(2024, 11, 6), "AAPL") == _ts_ns(dt.date(2024, 11, 6), 16, 0)
    True
    """
    hh = 13 if is_early_close(day) else 16
    return _ts_ns(day, hh, 15 if root.upper() in LATE_CLOSE_ROOTS else 0)


def in_regular_session(ts_ns: int, root: str = "") -> bool:
    """True if ``ts_ns`` (UTC ns) is within a regular options session, its open and close included.

    >>> in_regular_session(_ts_ns(dt.date(2024, 11, 6), 16, 15), "SPX"), in_regular_session(_ts_ns(dt.date(2024, 11, 6), 16, 15), "AAPL")
    (True, False)
    """
    day = dt.datetime.fromtimestamp(ts_ns // NS, tz=NY).date()
    return is_trading_day(day) and session_open_ns(day) <= ts_ns <= options_close_ns(day, root)


def prices_time_ns(ts_ns: int, root: str = "") -> int:
    """The instant whose prices a quote page read at ``ts_ns`` (UTC ns) shows, for option root ``root``.

    During a session that is ``ts_ns`` itself; after the close, at a weekend or on a holiday the page
    still shows the closing quotes, so it is the close of the last session before (valuing them at the
    later clock would age every option by the gap). SPX, XSP and VIX options also trade in Cboe's Global
    Trading Hours (:data:`GTH_ROOTS`), which open at 20:15 ET the evening before a trading day (since
    2021-11-22; 03:00 ET on the day before that): a page read then shows live quotes.

    >>> sunday = _ts_ns(dt.date(2024, 1, 7), 10, 52)
    >>> prices_time_ns(sunday, "SPX") == _ts_ns(dt.date(2024, 1, 5), 16, 15)
    True
    >>> prices_time_ns(_ts_ns(dt.date(2023, 9, 14), 16, 31), "SPY") == _ts_ns(dt.date(2023, 9, 14), 16, 15)
    True
    >>> monday_gth = _ts_ns(dt.date(2024, 11, 11), 8, 2)
    >>> prices_time_ns(monday_gth, "SPXW") == monday_gth, prices_time_ns(monday_gth, "AAPL") == monday_gth
    (True, False)
    """
    day = dt.datetime.fromtimestamp(ts_ns // NS, tz=NY).date()
    if root.upper() in GTH_ROOTS:
        nxt = day + dt.timedelta(days=1)
        if nxt >= GTH_EVENING_SINCE and is_trading_day(nxt) and ts_ns >= _ts_ns(day, 20, 15):
            return ts_ns
        gth_open = _ts_ns(day, 0, 0) if day >= GTH_EVENING_SINCE else _ts_ns(day, 3, 0)
        if is_trading_day(day) and gth_open <= ts_ns < session_open_ns(day):
            return ts_ns
    if in_regular_session(ts_ns, root):
        return ts_ns
    for _ in range(30):  # the longest closure on record (9/11) is 4 trading days
        if is_trading_day(day) and ts_ns > (close := options_close_ns(day, root)):
            return close
        day -= dt.timedelta(days=1)
    raise ValueError(f"no trading session in the 30 days before {ts_ns}")
