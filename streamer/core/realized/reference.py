"""Slow, obviously-correct numpy references (``*_batch``, O(n x window)) of the online estimators.

Kept apart from the production path (arch's ``recursions_python.py`` pattern): nothing in the engine
imports this module; the tests compare every incremental estimator against these recomputations.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from streamer.core.realized.conventions import (NS_PER_MINUTE, RTH_HOURS_PER_DAY, TRADING_DAYS_PER_YEAR,  # noqa: F401
                                                buckets_per_year, ewma_lambda_from_window)
from streamer.core.realized.intraday import SampledReturn

__all__ = ["ewma_var_batch", "close_to_close_vol_batch", "clock_sample_batch", "intraday_rv_batch",
           "bar_vol_batch"]


def ewma_var_batch(returns: Sequence[float], lam: float = 0.94,
                   seed: float | None = None) -> np.ndarray:
    """EWMA variance after each return by explicit weights (see ``EWMAVar`` for the definition).

    >>> ewma_var_batch([0.02], lam=0.94, seed=1e-4).round(8).tolist()
    [0.000118]
    """
    r2 = np.asarray(returns, dtype=float) ** 2
    out = np.empty(len(r2))
    for t in range(len(r2)):
        w = lam ** np.arange(t, -1, -1, dtype=float)  # weight lam^(t-i) on r_i
        if seed is None:
            out[t] = np.sum(w * r2[: t + 1]) / np.sum(w)
        else:
            out[t] = lam ** (t + 1) * seed + (1.0 - lam) * np.sum(w * r2[: t + 1])
    return out


def close_to_close_vol_batch(closes: Sequence[float], window: int, method: str = "simple",
                             lam: float | None = None,
                             periods_per_year: float = TRADING_DAYS_PER_YEAR) -> np.ndarray:
    """Annualised zero-mean close-to-close vol after each close (NaN until ``window`` returns).

    >>> close_to_close_vol_batch([100.0, 101.0], window=1).round(4).tolist()
    [nan, 0.158]
    """
    c = np.asarray(closes, dtype=float)
    r = np.log(c[1:] / c[:-1])
    out = np.full(len(c), np.nan)
    if method == "ewma":
        lam_ = lam if lam is not None else ewma_lambda_from_window(window)
        ev = ewma_var_batch(r, lam_, None)
    for t in range(window, len(c)):  # returns r[0..t-1] are known after close t
        if method == "simple":
            out[t] = np.sqrt(periods_per_year * np.mean(r[t - window: t] ** 2))
        else:
            out[t] = np.sqrt(periods_per_year * ev[t - 1])
    return out


def clock_sample_batch(ts_ns: Sequence[int], prices: Sequence[float], bucket_ns: int,
                       max_gap_ns: int | None = None,
                       until_ns: int | None = None) -> list[SampledReturn]:
    """Clock-sampled returns for time-sorted ticks: last price per bucket, completed buckets only.

    A bucket is complete if a later bucket has a tick, or ``until_ns`` >= its end.

    >>> clock_sample_batch([0, 30, 61, 130], [100.0, 101.0, 102.0, 100.0], 60)[0].span_buckets
    1
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    p = np.asarray(prices, dtype=float)
    if len(ts) == 0:
        return []
    b = ts // bucket_ns
    last = np.r_[b[1:] != b[:-1], True]  # last tick of each bucket
    kb, kp = b[last], p[last]
    if until_ns is None or until_ns < (kb[-1] + 1) * bucket_ns:
        kb, kp = kb[:-1], kp[:-1]  # the final bucket is not complete yet
    out = []
    for i in range(1, len(kb)):
        span = int(kb[i] - kb[i - 1])
        if max_gap_ns is not None and (span - 1) * bucket_ns > max_gap_ns:
            continue
        out.append(SampledReturn(int((kb[i] + 1) * bucket_ns), float(np.log(kp[i] / kp[i - 1])),
                                 span))
    return out


def intraday_rv_batch(returns: Sequence[SampledReturn], bucket_ns: int, window: int,
                      trading_days: float = TRADING_DAYS_PER_YEAR,
                      hours_per_day: float = RTH_HOURS_PER_DAY) -> float:
    """Annualised RV of the last ``window`` sampled returns (NaN if fewer), see ``IntradayRV``.

    >>> round(intraday_rv_batch([SampledReturn(60, 0.001, 1)], NS_PER_MINUTE, 1), 4)
    0.3135
    """
    if len(returns) < window:
        return math.nan
    last = returns[len(returns) - window:]
    r = np.array([x.log_return for x in last])
    span = np.sum([x.span_buckets for x in last])
    bpy = buckets_per_year(bucket_ns, trading_days, hours_per_day)
    return float(np.sqrt(np.sum(r**2) / span * bpy))


def bar_vol_batch(kind: str, o: Sequence[float], h: Sequence[float], l: Sequence[float],
                  c: Sequence[float], window: int,
                  periods_per_year: float = TRADING_DAYS_PER_YEAR) -> np.ndarray:
    """Annualised bar-estimator vol after each (valid) bar, recomputed from scratch per window.

    kind: "parkinson", "garman_klass", "rogers_satchell" or "yang_zhang". NaN until ready.

    >>> v = bar_vol_batch("parkinson", [100.0], [102.0], [99.0], [101.0], window=1, periods_per_year=1)
    >>> math.isclose(v[0], math.log(102 / 99) / math.sqrt(4 * math.log(2)))
    True
    """
    O, H, L, C = (np.asarray(a, dtype=float) for a in (o, h, l, c))
    m = len(O)
    out = np.full(m, np.nan)
    for t in range(m):
        if kind == "yang_zhang":
            if t < window:  # needs `window` overnight returns: bars 1..t with a previous close
                continue
            s = slice(t - window + 1, t + 1)
            ov = np.log(O[s] / C[t - window: t])
            oc = np.log(C[s] / O[s])
            rs = np.log(H[s] / C[s]) * np.log(H[s] / O[s]) + np.log(L[s] / C[s]) * np.log(L[s] / O[s])
            n = window
            k = 0.34 / (1.34 + (n + 1) / (n - 1))
            var = np.var(ov, ddof=1) + k * np.var(oc, ddof=1) + (1 - k) * np.mean(rs)
        else:
            if t + 1 < window:
                continue
            s = slice(t - window + 1, t + 1)
            hl = np.log(H[s] / L[s])
            co = np.log(C[s] / O[s])
            if kind == "parkinson":
                var = np.mean(hl**2) / (4 * np.log(2))
            elif kind == "garman_klass":
                var = np.mean(0.5 * hl**2 - (2 * np.log(2) - 1) * co**2)
            elif kind == "rogers_satchell":
                var = np.mean(np.log(H[s] / C[s]) * np.log(H[s] / O[s])
                              + np.log(L[s] / C[s]) * np.log(L[s] / O[s]))
            else:
                raise ValueError(f"unknown kind {kind!r}")
        out[t] = np.sqrt(max(var, 0.0) * periods_per_year)
    return out

