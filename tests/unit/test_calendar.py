"""The exchange calendar against the real record: the days the S&P 500 closed, the published early closes."""
from __future__ import annotations

import csv
import datetime as dt

from conftest import SHARED_DATA, require_shared_data

from streamer.cboe_csv import ny_ts_ns
from streamer.core import calendar
from streamer.core.calendar import NY

DATA = require_shared_data(SHARED_DATA)


def _spx_dates() -> list[dt.date]:
    with (DATA / "spx_daily_ohlc_2015-01-02_2026-02-27.csv").open() as fh:
        return [dt.date.fromisoformat(r["date"]) for r in csv.DictReader(fh)]


def test_trading_days_are_the_days_spx_closed():
    """Every weekday from 2015 to 2026-02 is a trading day exactly when the S&P 500 has a close
    (Good Friday, observed holidays, Juneteenth from 2022, the 2018-12-05 and 2025-01-09 closures)."""
    traded = _spx_dates()
    days = [traded[0] + dt.timedelta(days=k) for k in range((traded[-1] - traded[0]).days + 1)]
    assert [d for d in days if calendar.is_trading_day(d)] == traded


#: NYSE 13:00 early closes 2015-2025, from the exchange's published holiday schedules (the minute bars in
#: the shared data carry post-13:00 bars on half days, so they cannot tell)
PUBLISHED_EARLY_CLOSES = ["2015-11-27", "2015-12-24", "2016-11-25", "2017-07-03", "2017-11-24", "2018-07-03",
                          "2018-11-23", "2018-12-24", "2019-07-03", "2019-11-29", "2019-12-24", "2020-11-27",
                          "2020-12-24", "2021-11-26", "2022-11-25", "2023-07-03", "2023-11-24", "2024-07-03",
                          "2024-11-29", "2024-12-24", "2025-07-03", "2025-11-28", "2025-12-24"]


def test_early_closes_are_the_published_ones():
    days = [dt.date(2015, 1, 1) + dt.timedelta(days=k) for k in range(11 * 366)]
    got = [d.isoformat() for d in days if d.year <= 2025 and calendar.is_early_close(d)]
    assert got == PUBLISHED_EARLY_CLOSES
    assert calendar.options_close_ns(dt.date(2024, 12, 24), "SPX") == ny_ts_ns(2024, 12, 24, 13, 15)


def test_prices_time_of_a_page_read_outside_a_session_is_the_last_close():
    friday_close = ny_ts_ns(2024, 11, 29, 13, 15)  # the day after Thanksgiving: early close
    for read in (ny_ts_ns(2024, 11, 29, 13, 16), ny_ts_ns(2024, 11, 30, 12, 0), ny_ts_ns(2024, 12, 1, 20, 14)):
        assert calendar.prices_time_ns(read, "SPXW") == friday_close
    assert calendar.prices_time_ns(ny_ts_ns(2024, 12, 1, 20, 15), "SPXW") == ny_ts_ns(2024, 12, 1, 20, 15)  # GTH
    assert calendar.prices_time_ns(ny_ts_ns(2024, 12, 1, 20, 15), "AAPL") == ny_ts_ns(2024, 11, 29, 13, 0)
    # Thanksgiving Thursday: no session, and no GTH the evening before it
    wednesday_close = ny_ts_ns(2024, 11, 27, 16, 15)
    assert calendar.prices_time_ns(ny_ts_ns(2024, 11, 27, 21, 0), "SPX") == wednesday_close
    assert calendar.prices_time_ns(ny_ts_ns(2024, 11, 28, 11, 0), "SPX") == wednesday_close
    # before the GTH evening session existed (2021-11-22) a Sunday-night page showed Friday's close
    assert calendar.prices_time_ns(ny_ts_ns(2019, 3, 10, 21, 0), "SPX") == ny_ts_ns(2019, 3, 8, 16, 15)
    assert calendar.prices_time_ns(ny_ts_ns(2019, 3, 11, 4, 0), "SPX") == ny_ts_ns(2019, 3, 11, 4, 0)
    # during a session, the read time itself, for every root
    for root in ("SPX", "SPY", "AAPL", ""):
        assert calendar.prices_time_ns(ny_ts_ns(2024, 11, 6, 11, 0), root) == ny_ts_ns(2024, 11, 6, 11, 0)
