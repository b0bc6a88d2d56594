"""O(1) realized-volatility estimators: Welford, rolling windows, EWMA, clock-sampled RV, OHLC bars.

Every estimator is a small object in the river style: ``update(...)`` folds in one observation in
O(1), ``revert(x)`` (where meaningful) takes one out, ``get()`` returns the statistic. Rolling
windows keep a deque and revert the value that leaves, so the cost per tick does not depend on the
window length. Every estimator also has ``to_state() -> dict`` (plain JSON types, the encoding of
``state.py``) and a ``from_state(d)`` classmethod so a stream worker can keep it in a changelogged
table; a restored estimator continues bit-for-bit identically.

One module per family (the production path), and the slow references apart:

* ``conventions``   units (252 days, ns), EWMA decay from a window, ``max_of``
* ``state``         the state encoding (NaN <-> null, type/version header, ``estimator_from_state``)
* ``accumulators``  ``CompensatedSum``, ``Var`` (Welford with revert)
* ``rolling``       ``RollingVar``, ``TimeRollingVar`` (event time), ``RollingMeanSquare``
* ``daily``         ``EWMAVar``, ``CloseToCloseVol``, ``MaxOf`` (index-methodology daily vols)
* ``intraday``      ``ClockSampler``, ``IntradayRV``
* ``bars``          ``Parkinson``, ``GarmanKlass``, ``RogersSatchell``, ``YangZhang``
* ``reference``     slow numpy ``*_batch`` recomputations the tests compare against (arch's
  ``recursions_python.py`` pattern); the production modules never import it

Conventions (documented once, used everywhere):

* Returns are log returns ``ln(p_t / p_{t-1})``.
* Generic variance (``Var``, ``RollingVar``, ``TimeRollingVar``) is the mean-subtracted *sample*
  variance (ddof=1 by default), kept with Welford's update/revert, never "E[x^2] - E[x]^2".
* Index-methodology vols (``CloseToCloseVol``, ``EWMAVar``, ``IntradayRV``) are **zero-mean**:
  variance = mean of squared log returns (divisor n), as in S&P Daily Risk Control and RiskMetrics.
* Annualised vol = sqrt(per-period variance x periods per year); daily periods: 252
  (``TRADING_DAYS_PER_YEAR``). Intraday buckets: 252 days x 6.5 h x buckets per hour.
* Bad input never raises in the hot path: ``update`` returns ``False`` and counts the rejection
  (``n_rejected``); ``get()`` returns NaN until the estimator has ``min_periods`` observations.

``from streamer.core.realized import X`` keeps working for every name below.
"""
from __future__ import annotations

from streamer.core.realized.accumulators import CompensatedSum, Var
from streamer.core.realized.bars import GarmanKlass, Parkinson, RogersSatchell, YangZhang
from streamer.core.realized.conventions import (NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND,
                                                RTH_HOURS_PER_DAY, TRADING_DAYS_PER_YEAR, buckets_per_year,
                                                ewma_lambda_from_window, max_of)
from streamer.core.realized.daily import CloseToCloseVol, EWMAVar, MaxOf
from streamer.core.realized.intraday import ClockSampler, IntradayRV, SampledReturn
from streamer.core.realized.reference import (bar_vol_batch, clock_sample_batch, close_to_close_vol_batch,
                                              ewma_var_batch, intraday_rv_batch)
from streamer.core.realized.rolling import RollingMeanSquare, RollingVar, TimeRollingVar
from streamer.core.realized.state import estimator_from_state

__all__ = [
    "TRADING_DAYS_PER_YEAR",
    "RTH_HOURS_PER_DAY",
    "NS_PER_SECOND",
    "NS_PER_MINUTE",
    "NS_PER_HOUR",
    "NS_PER_DAY",
    "buckets_per_year",
    "ewma_lambda_from_window",
    "max_of",
    "CompensatedSum",
    "Var",
    "RollingVar",
    "TimeRollingVar",
    "RollingMeanSquare",
    "EWMAVar",
    "CloseToCloseVol",
    "MaxOf",
    "SampledReturn",
    "ClockSampler",
    "IntradayRV",
    "Parkinson",
    "GarmanKlass",
    "RogersSatchell",
    "YangZhang",
    "estimator_from_state",
    # slow references (reference.py)
    "ewma_var_batch",
    "close_to_close_vol_batch",
    "clock_sample_batch",
    "intraday_rv_batch",
    "bar_vol_batch",
]
