"""Cboe-method volatility index (VIX white paper, 2019 edition) from option quotes.

Method, step by step (white paper section in brackets), and the choices made here:

* **Expirations** [Step 1]: SPX options with *Friday* expirations: the standard monthly (AM-settled,
  09:30 ET, root ``SPX``) and the weeklies (PM-settled, 16:00 ET, root ``SPXW``). On a third Friday
  the standard AM series is used and the PM weekly of the same date is not (detected from the data:
  a PM expiry is ineligible when an AM expiry exists on the same date). A Thursday expiry (PM weekly,
  or the AM standard moved a day earlier) is eligible when the Friday after it is an exchange holiday
  (Good Friday, Juneteenth, Jul 4, Dec 25, Jan 1 falling on or observed on that Friday). Expirations
  on other weekdays are not used (Cboe still uses Friday expirations for VIX).
  **Selection is by calendar days** (:func:`select_terms`, the one rule of the live path and of the
  batch reference): D = New York date of the expiry minus New York date of ``now``, a holiday-shifted
  Thursday counted as the Friday it replaces. Near term: the latest eligible expiry with
  ``min_days < D <= target``; next term: the earliest with ``target < D <= max_days``; VIX (23, 30,
  37). The white paper's "more than 23 days and less than 37 days" is read with its own roll
  example: on a Tuesday the terms have 24 and 31 days, "on the following day" 30 and 37, so the roll
  is once a week at the start of the Wednesday, whatever the time of day, and a Friday 37 calendar
  days out is a next term (in minutes it is 37 days minus or plus the hours between ``now`` and the
  settlement time; counting minutes instead would leave a Wednesday at exactly 16:00 with its
  Fridays at 23.0, 30.0 and 37.0 days and no next term). The holiday shift keeps the roll weekly:
  the Thursday before Good Friday is the near term on the Tuesday 23 calendar days before it (a
  Friday count of 24), where a strict day count would leave no expiry in (23, 30]. T itself is
  always the exact minutes to the settlement instant (09:30 AM / 16:00 PM), so on a Wednesday
  morning both terms can exceed 30 days and the interpolation extrapolates (weights 1+x and -x),
  as Cboe's formula does. VIX9D uses the same rule with (2, 9, 16) (our choice, documented; Cboe's
  VIX9D rule set is published separately). No bracket -> NaN with reason ``no_bracketing_expiries``.
* **Time** [Step 2]: T = minutes to settlement / 525,600, minutes counted on the New York wall clock
  (the white paper's M_current day + M_settlement day + M_other days, i.e. 1,440 minutes per day),
  fractional minutes allowed. Settlement instants are inputs (UTC ns); see ``streamer.cboe_csv``.
* **Rate**: one continuously compounded rate per expiry. Cboe uses Treasury CMT yields interpolated
  by a cubic spline; we take a constant (``rate=float``) or a function of T in years. At T ~ 1 month
  a 1% rate error moves VIX by about 0.01 points (it enters through e^{RT} and F only).
* **Forward**: mids (bid+ask)/2; K* = the strike minimising |C - P| among strikes where both the
  call and the put have a bid > 0 (ties: lowest strike); F = K* + e^{RT}(C - P).
* **K0**: the first listed strike at or below F.
* **Strip**: puts below K0 walking down, calls above K0 walking up; a strike with bid <= 0 (or no
  quote) is skipped; after two consecutive strikes with zero bids no further strike is considered.
  At K0 both put and call are used: Q(K0) = mean of the two mids.
* **Vendor chains without zero bids** (not in the white paper): many vendors do not publish
  strikes whose bid is zero, so a strip can end at the last listed strike without meeting two
  consecutive zero bids (``TermDetail.truncated``, ``VixValue.wing_truncated``). The index is then
  computed on the strikes there are, and each open side gets a bound on the variance the missing
  wing could add (``TermDetail.wing_bound``, variance units; ``VixValue.wing_bound``, index points):
  - calls above the last strike K_c with mid C_c: C(K) is non-increasing in K, so
    int_{K_c}^inf C(K)/K^2 dK <= C_c int_{K_c}^inf dK/K^2 = C_c/K_c (model-free);
  - puts below the last strike K_p with mid P_p: model-free there is no bound (a small probability
    of S near 0 makes int_0 P(K)/K^2 dK as large as one likes, the log contract), so we assume the
    put price falls at least as fast as K^2 below K_p (strike elasticity d ln P / d ln K >= 2).
    Then P(K) <= P_p (K/K_p)^2 and int_0^{K_p} P(K)/K^2 dK <= P_p/K_p;
  - bound_j = (2/T_j) e^{R T_j} (P_p/K_p [put side open] + C_c/K_c [call side open]), and in index
    points: the index recomputed with each term's sigma^2 raised by |weight| x bound, minus the index.
  Checked on the shared full chains (VALIDATION.md): cutting a strip at any of its strikes, the
  Cboe terms beyond the cut are at most 0.29x the put bound and 0.04x the call bound, and on the
  chains cut to +-5..50% of spot the index error is always inside the bound (0.03-0.3x of it). The
  bound is loose where the last quotes sit at the minimum tick (bid 0.05), as on every complete
  chain: the mid then overstates the wing. A value is refused (NaN, ``strip_truncated``) only when
  the bound exceeds ``VixSpec.max_wing_share`` (0.15) of the index. Why 0.15: a complete chain
  with its zero-bid strikes removed has shares 0.03-0.05 (VIX) and 0.08-0.11 (VIX9D, 4-15 day
  terms), so it keeps its value, as it should (its index is unchanged: Cboe skips zero bids too);
  chains cut to +-10% of spot or narrower have 0.31-1.8 and the near-ATM subset (strikes
  5950-6060) about 11, and are refused; cuts at +-20-30% fall on either side (0.07-0.27), and a
  value comes with its flag and bound. ``require_wings=True`` (the default of ``vix_batch``,
  ``vix_from_terms`` and ``ChainBook.vix``) applies this refusal; ``require_wings=False`` never
  refuses.
* **DeltaK**: half the distance between the neighbouring *included* strikes, one-sided (full
  distance to the single neighbour) at the ends of the strip.
* **Variance**: sigma^2 = (2/T) e^{RT} sum_i DeltaK_i/K_i^2 Q(K_i) - (1/T) (F/K0 - 1)^2.
* **Index**: 100 sqrt{[T1 s1^2 (N2-Nt)/(N2-N1) + T2 s2^2 (Nt-N1)/(N2-N1)] N365/Nt}, N in minutes.
* Not implemented: Cboe's 2023+ quote-filtering/"smoothing" rules and bid-ask-spread rules, so
  wide or crossed quotes go in as they come. Invalid quotes should be rejected at the edge.

Evaluation. ``vix_batch`` is the slow, obviously-correct reference: flat quote rows, plain loops,
from scratch. The live path is ``core.chain.ChainBook.vix``: the book keeps every quote in its
arrays, selects the near and next terms from its expiry calendar and hands only those two to
:func:`vix_from_terms`, which evaluates each (:func:`term_from_quotes`, :func:`term_detail`)
vectorized with the same floating-point operations as the reference: O(strikes of the two terms)
per read, nothing per quote. Both sum the strip with ``math.fsum``; on the shared SPX chains they
give the same bits (the tests allow 1e-12 relative). The book updates a term's quotes in place
between reads; a read that finds only a few changed strikes, no bid crossing zero and K0 where
it was recomputes just those strikes' terms (same scalar operations) before the exact sum, and
gives the same bits as a read from scratch (tests/unit/test_vix.py).
"""
from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from streamer.core.calendar import is_friday_holiday

NY = ZoneInfo("America/New_York")
MINUTES_PER_YEAR = 525_600.0
MINUTES_PER_DAY = 1_440.0
_NS_PER_MIN = 60_000_000_000
_EPOCH = dt.date(1970, 1, 1)
_NAN = math.nan

RateLike = float | Callable[[float], float]


@dataclass(slots=True, frozen=True)
class VixSpec:
    """Constant-maturity target, the calendar-day windows (min_days, target] (near term) and
    (target, max_days] (next term), and the largest wing bound still reported, as a share of the
    index (module docstring)."""

    name: str
    target_days: float
    min_days: float
    max_days: float
    friday_only: bool = True
    max_wing_share: float = 0.15


VIX = VixSpec("VIX", 30.0, 23.0, 37.0)
VIX9D = VixSpec("VIX9D", 9.0, 2.0, 16.0)


@dataclass(slots=True, frozen=True)
class TermDetail:
    """One expiry's contribution: T in years, forward F, K*, K0, variance sigma^2, strikes used."""

    expiry_ts_ns: int
    minutes: float
    t_years: float
    rate: float
    forward: float
    k_star: float
    k0: float
    sigma2: float
    n_strikes: int
    s_sum: float
    truncated: bool = False        # a strip side ended at the last listed strike (no two zero bids)
    wing_bound: float = 0.0        # upper bound on the sigma^2 the missing wing(s) could add


@dataclass(slots=True, frozen=True)
class VixValue:
    """Index level (vol points) or NaN with a reason code; per-term detail when computable."""

    value: float
    reason: str
    near: TermDetail | None = None
    next: TermDetail | None = None
    wing_bound: float = 0.0        # index points the missing wings could add (module docstring)

    @property
    def ok(self) -> bool:
        """True when ``value`` is a number."""
        return self.reason == "ok"

    @property
    def wing_truncated(self) -> bool:
        """True when a strip of either term ended at the last listed strike."""
        return any(t is not None and t.truncated for t in (self.near, self.next))


# --------------------------------------------------------------------------- calendar helpers

def local_minutes(ts_ns: int) -> float:
    """UTC ns -> minutes since 1970-01-01 00:00 on the New York wall clock.

    >>> local_minutes(0)
    -300.0
    """
    return ts_ns / _NS_PER_MIN + _ny_offset_minutes(ts_ns // 1_000_000_000)


@functools.lru_cache(maxsize=1024)
def _ny_offset_minutes(secs: int) -> float:
    """UTC offset of New York at ``secs`` (Unix seconds), in minutes (cached: the live path
    converts the same evaluation second for VIX and VIX9D, segment after segment)."""
    off = dt.datetime.fromtimestamp(secs, tz=NY).utcoffset()
    assert off is not None
    return off.total_seconds() / 60.0


def eligible_expiries(expiries: Iterable[int], friday_only: bool = True) -> dict[int, bool]:
    """Map settlement instant (UTC ns) -> usable for VIX (Friday/standard rule, module docstring)."""
    info = {}
    for e in expiries:
        t = dt.datetime.fromtimestamp(e // 1_000_000_000, tz=NY)
        info[int(e)] = (t.date(), t.hour * 60 + t.minute < 12 * 60)
    am_dates = {d for d, am in info.values() if am}
    out = {}
    for e, (d, am) in info.items():
        if not friday_only:
            out[e] = True
        elif am:
            out[e] = True  # standard (AM-settled) series: third Friday, or Thursday before a holiday
        elif d in am_dates:
            out[e] = False  # PM weekly on a standard expiration date: the standard series is used
        elif d.weekday() == 4:
            out[e] = True
        else:
            out[e] = d.weekday() == 3 and is_friday_holiday(d + dt.timedelta(days=1))
    return out


def selection_day(minutes: float) -> int:
    """New York calendar day (days since 1970-01-01) of a settlement instant for term selection;
    a Thursday expiry before a Friday holiday counts as that Friday (module docstring).

    >>> thu, fri = 1_711_656_000 * 10**9, 1_712_347_200 * 10**9   # 2024-03-28 / 04-05 16:00 ET
    >>> selection_day(local_minutes(fri)) - selection_day(local_minutes(thu))   # Good Friday 03-29
    7
    """
    day = math.floor(minutes / MINUTES_PER_DAY)
    return day + _holiday_shift(day)


@functools.lru_cache(maxsize=4096)
def _holiday_shift(day: int) -> int:
    """1 when ``day`` (days since 1970-01-01) is a Thursday before a Friday holiday, else 0
    (cached: ``select_terms`` runs on every index read, over every listed expiry)."""
    date = _EPOCH + dt.timedelta(days=day)
    return int(date.weekday() == 3 and is_friday_holiday(date + dt.timedelta(days=1)))


def select_terms(exp_minutes: dict[int, float], eligible: dict[int, bool], now_minutes: float,
                 spec: VixSpec) -> tuple[int | None, int | None]:
    """Near and next expiries: latest eligible in (min, target] calendar days, earliest in
    (target, max] (module docstring). The one selection rule of ``vix_batch`` and ``ChainBook.vix``.

    ``exp_minutes`` and ``now_minutes`` are New York wall-clock minutes (:func:`local_minutes`).
    """
    today = math.floor(now_minutes / MINUTES_PER_DAY)
    lo, target, hi = spec.min_days, spec.target_days, spec.max_days
    order = _calendar_order(exp_minutes, eligible)
    if order is None:           # a settlement minute that is not finite: the plain loop
        order = ([], [(m, e, None) for m, e in sorted(zip(exp_minutes.values(), exp_minutes))
                      if eligible.get(e, False)], None)
    ms, rows, picks = order
    start = bisect.bisect_right(ms, now_minutes) if ms else 0
    if picks is not None:       # the rows from ``start`` on all settle after now: the pick
        key = (start, today, lo, target, hi)    # depends on nothing else
        got = picks.get(key)
        if got is None:
            if len(picks) >= 64:
                picks.clear()
            got = picks[key] = _pick(rows, start, now_minutes, today, lo, target, hi)
        return got
    return _pick(rows, start, now_minutes, today, lo, target, hi)


def _pick(rows: list, start: int, now_minutes: float, today: int, lo: float, target: float,
          hi: float) -> tuple[int | None, int | None]:
    """:func:`select_terms`' walk along the calendar rows from ``start``."""
    near = nxt = None
    near_key = nxt_key = None
    # by settlement instant (ties: by expiry): selection days never decrease along this order
    for i in range(start, len(rows)):
        m, e, sday = rows[i]
        if m <= now_minutes:
            continue
        if sday is None:
            day = math.floor(m / MINUTES_PER_DAY)
            sday = day + _holiday_shift(day)                # selection_day(m)
        days = sday - today
        if days > hi:
            break
        key = (days, m)     # same day count: the later settlement (never both eligible)
        if lo < days <= target and (near_key is None or key > near_key):
            near, near_key = e, key
        elif target < days and (nxt_key is None or key < nxt_key):
            nxt, nxt_key = e, key
    return near, nxt


_ORDERS: dict[int, tuple] = {}


def _calendar_order(exp_minutes: dict[int, float], eligible: dict[int, bool]) -> tuple | None:
    """(settlement minutes, rows (minutes, expiry, selection day), picks) of the eligible expiries
    in (minutes, expiry) order, or None if a minute is not finite; picks: :func:`select_terms`'
    results on this calendar by (first row after now, today, spec days). Cached per calendar (by
    identity and content: ``ChainBook.vix`` passes the same dicts at every read, VIX and VIX9D
    alike)."""
    c = _ORDERS.get(id(exp_minutes))
    if c is not None and c[0] is exp_minutes and c[1] == exp_minutes and c[2] == eligible:
        return c[3]
    rows = []
    for m, e in sorted(zip(exp_minutes.values(), exp_minutes)):
        if eligible.get(e, False):
            if not math.isfinite(m):
                return None
            day = math.floor(m / MINUTES_PER_DAY)
            rows.append((m, e, day + _holiday_shift(day)))
    order = ([m for m, _, _ in rows], rows, {})
    if len(_ORDERS) >= 16:
        _ORDERS.clear()
    _ORDERS[id(exp_minutes)] = (exp_minutes, dict(exp_minutes), dict(eligible), order)
    return order


def _rate_for(rate: RateLike, t_years: float) -> float:
    return float(rate(t_years)) if callable(rate) else float(rate)


def combine_terms(t1: float, s1: float, n1: float, t2: float, s2: float, n2: float,
                  target_minutes: float) -> float:
    """Interpolate total variance to the target and annualise: 100*sqrt(...), NaN if negative.

    >>> round(combine_terms(25 / 365, 0.04, 25 * 1440, 32 / 365, 0.04, 32 * 1440, 30 * 1440), 10)
    20.0
    """
    a = (n2 - target_minutes) / (n2 - n1)
    b = (target_minutes - n1) / (n2 - n1)
    tv = (t1 * s1 * a + t2 * s2 * b) * MINUTES_PER_YEAR / target_minutes
    return 100.0 * math.sqrt(tv) if tv >= 0.0 else math.nan


def wing_bound_points(near: TermDetail, nxt: TermDetail, value: float,
                      target_minutes: float) -> float:
    """Index points the missing wings could add: the index with each term's sigma^2 raised by
    |its interpolation weight| x its ``wing_bound``, minus ``value`` (0 when no strip is open).

    >>> d = TermDetail(0, 25 * 1440, 25 / 365, 0.0, 100.0, 100.0, 100.0, 0.04, 10, 0.0)
    >>> wing_bound_points(d, d, 20.0, 30 * 1440)
    0.0
    """
    if near.wing_bound == 0.0 and nxt.wing_bound == 0.0:
        return 0.0
    n1, n2 = near.minutes, nxt.minutes
    a = abs((n2 - target_minutes) / (n2 - n1))
    b = abs((target_minutes - n1) / (n2 - n1))
    tv = (value / 100.0) ** 2 + (near.t_years * near.wing_bound * a
                                 + nxt.t_years * nxt.wing_bound * b) * MINUTES_PER_YEAR / target_minutes
    return 100.0 * math.sqrt(tv) - value


def _finish(a: TermDetail, b: TermDetail, spec: VixSpec, require_wings: bool) -> VixValue:
    """Combine the two terms into the index; refuse it when the wing bound is material."""
    target = spec.target_days * MINUTES_PER_DAY
    v = combine_terms(a.t_years, a.sigma2, a.minutes, b.t_years, b.sigma2, b.minutes, target)
    if v != v:
        return VixValue(v, "negative_variance", a, b)
    bound = wing_bound_points(a, b, v, target)
    if require_wings and bound > spec.max_wing_share * v:
        return VixValue(math.nan, "strip_truncated", wing_bound=bound)
    return VixValue(v, "ok", a, b, bound)


# --------------------------------------------------------------------------- batch reference

def vix_batch(expiry_ts_ns: Iterable[int], strike: Iterable[float], right: Iterable[str],
              bid: Iterable[float], ask: Iterable[float], now_ts_ns: int, rate: RateLike = 0.0,
              spec: VixSpec = VIX, require_wings: bool = True) -> VixValue:
    """From-scratch reference: index level from flat per-contract arrays at ``now_ts_ns`` (UTC ns).

    Later rows override earlier rows for the same contract. A strip that runs into the last listed
    strike on either side without meeting two consecutive zero bids (a vendor chain without
    zero-bid strikes, or a near-ATM subset) is computed and flagged, with a bound on the missing
    wing (module docstring); with ``require_wings`` the value is refused (NaN, ``strip_truncated``)
    when that bound exceeds ``spec.max_wing_share`` of the index. ``rate``: continuously
    compounded, decimal (constant, or a function of T in years).
    """
    book: dict[int, dict[float, list[float]]] = {}
    for e, k, r, b, a in zip(expiry_ts_ns, strike, right, bid, ask):
        row = book.setdefault(int(e), {}).setdefault(float(k), [math.nan] * 4)
        off = 0 if str(r) == "C" else 2
        row[off], row[off + 1] = float(b), float(a)
    if not book:
        return VixValue(math.nan, "no_expiries")
    now_min = local_minutes(now_ts_ns)
    exp_min = {e: local_minutes(e) for e in book}
    near, nxt = select_terms(exp_min, eligible_expiries(book, spec.friday_only), now_min, spec)
    if near is None or nxt is None:
        return VixValue(math.nan, "no_bracketing_expiries")
    terms = []
    for e in (near, nxt):
        minutes = exp_min[e] - now_min
        t = minutes / MINUTES_PER_YEAR
        r = _rate_for(rate, t)
        growth = math.exp(r * t)
        ks = sorted(book[e])
        q = [book[e][k] for k in ks]
        # forward
        best, kstar = math.inf, -1
        for i, (cb, ca, pb, pa) in enumerate(q):
            if cb > 0 and pb > 0:
                d = abs((cb + ca) / 2.0 - (pb + pa) / 2.0)
                if d < best:
                    best, kstar = d, i
        if kstar < 0:
            return VixValue(math.nan, "no_forward")
        cb, ca, pb, pa = q[kstar]
        f = ks[kstar] + growth * ((cb + ca) / 2.0 - (pb + pa) / 2.0)
        k0 = -1
        for i, k in enumerate(ks):
            if k <= f:
                k0 = i
        if k0 < 0:
            return VixValue(math.nan, "forward_below_strikes")
        # strip: (index, Q)
        puts = []
        prev_zero = False
        cut_p = cut_c = False
        for i in range(k0 - 1, -1, -1):
            zero = not (q[i][2] > 0)
            if zero and prev_zero:
                cut_p = True
                break
            prev_zero = zero
            if not zero:
                puts.append((i, (q[i][2] + q[i][3]) / 2.0))
        calls = []
        prev_zero = False
        for i in range(k0 + 1, len(ks)):
            zero = not (q[i][0] > 0)
            if zero and prev_zero:
                cut_c = True
                break
            prev_zero = zero
            if not zero:
                calls.append((i, (q[i][0] + q[i][1]) / 2.0))
        q0 = ((q[k0][0] + q[k0][1]) / 2.0 + (q[k0][2] + q[k0][3]) / 2.0) / 2.0
        strip = puts[::-1] + [(k0, q0)] + calls
        if len(strip) < 2:
            return VixValue(math.nan, "too_few_strikes")
        total = []
        for j, (i, qq) in enumerate(strip):
            if j == 0:
                dk = ks[strip[1][0]] - ks[i]
            elif j == len(strip) - 1:
                dk = ks[i] - ks[strip[j - 1][0]]
            else:
                dk = (ks[strip[j + 1][0]] - ks[strip[j - 1][0]]) / 2.0
            total.append(dk / (ks[i] * ks[i]) * qq)
        s = math.fsum(total)
        sigma2 = 2.0 / t * growth * s - (f / ks[k0] - 1.0) ** 2 / t
        # open wings: tail of the strip's last Q/K on each side that never met two zero bids
        lo_i, lo_q = strip[0]
        hi_i, hi_q = strip[-1]
        tail = (0.0 if cut_p else lo_q / ks[lo_i]) + (0.0 if cut_c else hi_q / ks[hi_i])
        terms.append(TermDetail(e, minutes, t, r, f, ks[kstar], ks[k0], sigma2, len(strip), s,
                                not (cut_p and cut_c), 2.0 / t * growth * tail))
    return _finish(terms[0], terms[1], spec, require_wings)


# --------------------------------------------------------------------------- vectorized terms

@dataclass(slots=True)
class Term:
    """One expiry's quotes on its sorted unique strikes (points; NaN = no quote on that side).

    :func:`term_from_quotes` allocates the four quote arrays as the columns of one (n, 4) block
    ``quotes`` (call bid, put bid, call ask, put ask; a strike's quotes side by side, so that
    :func:`term_detail` finds the strikes whose quotes changed in one comparison). They may be
    updated in place between reads (``core.chain.ChainBook``), the strikes may not. A term built
    with separate arrays (``quotes=None``) gives the same results."""

    expiry_ts_ns: int
    minutes: float            # settlement instant on the New York wall clock (``local_minutes``)
    strikes: np.ndarray
    call_bid: np.ndarray
    call_ask: np.ndarray
    put_bid: np.ndarray
    put_ask: np.ndarray
    quotes: np.ndarray | None = field(default=None, repr=False, compare=False)
    _klist: tuple | None = field(default=None, repr=False, compare=False)  # (strikes, as floats)
    _memo: _StripMemo | None = field(default=None, repr=False, compare=False)
    _refused: _Refusal | None = field(default=None, repr=False, compare=False)


def term_from_quotes(expiry_ts_ns: int, strike: np.ndarray, is_call: np.ndarray, bid: np.ndarray,
                     ask: np.ndarray) -> Term:
    """One expiry's :class:`Term` from its quotes (unique (strike, right) rows; O(n log n))."""
    k = np.asarray(strike, dtype=np.float64)
    call = np.asarray(is_call, dtype=bool)
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    ks = np.unique(k)
    blk = np.full((ks.shape[0], 4), np.nan)
    term = Term(int(expiry_ts_ns), local_minutes(int(expiry_ts_ns)), ks, blk[:, 0], blk[:, 2],
                blk[:, 1], blk[:, 3], blk)
    pos = np.searchsorted(ks, k)
    for side, qb, qa in ((True, term.call_bid, term.call_ask), (False, term.put_bid, term.put_ask)):
        mm = call == side
        qb[pos[mm]] = b[mm]
        qa[pos[mm]] = a[mm]
    return term


def _term_arrays(term: Term) -> tuple[list, np.ndarray]:
    """(strikes as a list of floats (cached), quotes (n, 4): call/put bid, call/put ask)."""
    ks = term.strikes
    kl = term._klist
    if kl is None or kl[0] is not ks:
        kl = term._klist = (ks, ks.tolist())
    blk = term.quotes
    if (blk is None or term.call_bid.base is not blk or term.put_bid.base is not blk
            or term.call_ask.base is not blk or term.put_ask.base is not blk):
        blk = np.stack((term.call_bid, term.put_bid, term.call_ask, term.put_ask), axis=1,
                       dtype=np.float64)
    return kl[1], blk


def _strip_bounds(pos: np.ndarray, k0: int) -> tuple[int, int, bool, bool]:
    """(lo, hi, put-side cut reached, call-side cut reached): the strip lies in strikes lo..hi-1,
    cut below the last pair of consecutive zero put bids under K0 and above the first pair of zero
    call bids over it (module docstring); ``pos`` rows: call / put bid > 0."""
    n = pos.shape[1]
    either = pos[:, :-1] | pos[:, 1:]         # False at i: strikes i and i+1 both bid zero
    lo, hi, cut_p, cut_c = 0, n, False, False
    if k0 >= 2:                               # pairs (i, i+1), i+1 <= K0-1: the last one
        seg = either[1, k0 - 2::-1]
        j = int(seg.argmin())
        if not seg[j]:
            lo, cut_p = k0 - j, True
    if n - k0 >= 3:                           # pairs (i, i+1), i >= K0+1: the first one
        seg = either[0, k0 + 1:]
        j = int(seg.argmin())
        if not seg[j]:
            hi, cut_c = k0 + 1 + j, True
    return lo, hi, cut_p, cut_c


@dataclass(slots=True)
class _StripMemo:
    """What :func:`term_detail` read from a term's quotes at its last full evaluation (the quotes'
    bits, per-strike bid signs and |C - P|, K0 and the strip with its terms), so that a read
    after a few quotes changed, with K0 where it was and no bid crossing zero where that could
    move the strip's ends or change its strikes, updates just those strikes with the same scalar
    operations (same bits). A read with no quote changed (the clock moved) reuses K*'s mids and
    one with no strip strike changed the strip's sum."""

    strikes: np.ndarray
    quotes: np.ndarray        # the quote block read, its int64 view, and a copy of that view
    view: np.ndarray
    bits: np.ndarray
    pos: np.ndarray           # call / put bid > 0, per strike (rows), and as lists once updated
    cpos: list | None
    ppos: list | None
    ad: np.ndarray            # |C - P| where both bids > 0, else inf, per strike
    k0: int
    lo: int                   # the strip lies in strikes lo..hi-1 (_strip_bounds)
    hi: int
    cut_p: bool
    cut_c: bool
    cum: np.ndarray           # strip strikes among lo..lo+i (index in the strip + 1)
    w: np.ndarray             # per strip strike: DeltaK/K^2, and DeltaK/K^2 Q (the summands)
    x: list
    k_lo: float               # the strip's first and last strikes and their Q
    k_hi: float
    q_lo: float
    q_hi: float
    kmid: tuple = ()          # (K* index, its call mid, its put mid) as of ``bits``
    s: float | None = None    # math.fsum(x); None once a summand changed
    exact: int | None = None  # sum(x) x 2^1074 exactly (None: not held, or a summand not finite)
    fsums: int = 0            # fsum calls while ``exact`` is not held


_MAX_UPDATE = 32              # more changed strikes than this: evaluate from scratch


@dataclass(slots=True)
class _Refusal:
    """A term's last full evaluation that gave a NaN reason, with what the reason rests on: the
    quotes' bits and, when there is a K*, its mids and K0 (-1 for ``no_forward``). The same quotes
    and a clock that leaves K0 where it was give the same reason again (the strip is a function
    of the quotes and K0), so a term that cannot be evaluated is not evaluated from scratch at
    every read."""

    strikes: np.ndarray
    bits: np.ndarray
    reason: str
    kstar: int
    cm: float
    pm: float
    k0: int

    def again(self, blk: np.ndarray, kl: list, growth: float) -> str | None:
        """The reason if it still holds for ``blk`` at ``growth``, else None."""
        if not np.array_equal(blk.view(np.int64), self.bits):
            return None
        if self.reason == "no_forward":
            return self.reason
        k0 = bisect.bisect_right(kl, kl[self.kstar] + growth * (self.cm - self.pm)) - 1
        if self.reason == "forward_below_strikes":
            return self.reason if k0 < 0 else None
        return self.reason if k0 == self.k0 else None


def _update(memo: _StripMemo, blk: np.ndarray, kl: list, growth: float) -> tuple | None:
    """(K* index, F, K0 index) with ``memo`` brought up to ``blk``, or None when the strip may
    have changed (a full evaluation is needed)."""
    bits = memo.view if blk is memo.quotes else blk.view(np.int64)
    # strikes with a changed quote (bitwise: NaN == NaN): a row's 4 flags read as one uint32
    changed = (bits != memo.bits).view(np.uint32).ravel().nonzero()[0]
    if changed.shape[0] > _MAX_UPDATE:
        return None
    k0 = memo.k0
    if not changed.shape[0]:            # nothing changed: K* and its mids as last read
        kstar, cm, pm = memo.kmid
        f = kl[kstar] + growth * (cm - pm)
        return (kstar, f, k0) if bisect.bisect_right(kl, f) - 1 == k0 else None
    if memo.cpos is None:
        memo.cpos, memo.ppos = memo.pos.tolist()
    cpos, ppos, ad = memo.cpos, memo.ppos, memo.ad
    mids = {}
    for j, (cb, pb, ca, pa) in zip(changed.tolist(), blk.take(changed, 0).tolist()):
        c, p = cb > 0.0, pb > 0.0
        # a bid crossing zero where it can add or drop a strip strike or move a cut
        # (calls above K0 up to the first zero pair, puts below it down to the last one)
        if c is not cpos[j]:
            if k0 < j <= memo.hi + 1:
                return None
            cpos[j] = c
        if p is not ppos[j]:
            if memo.lo - 2 <= j < k0:
                return None
            ppos[j] = p
        cm, pm = mids[j] = ((cb + ca) / 2.0, (pb + pa) / 2.0)
        ad[j] = abs(cm - pm) if c and p else math.inf
    memo.bits[...] = bits
    kstar = int(ad.argmin())
    if not (cpos[kstar] and ppos[kstar]):
        return None
    got = mids.get(kstar)
    if got is not None:
        cm, pm = got
    elif memo.kmid[0] == kstar:         # its quotes did not change since they were read
        cm, pm = memo.kmid[1], memo.kmid[2]
    else:
        cm, pm = _mids(blk, kstar)
    memo.kmid = (kstar, cm, pm)
    f = kl[kstar] + growth * (cm - pm)
    if bisect.bisect_right(kl, f) - 1 != k0:
        return None
    lo, hi, cum, w, x = memo.lo, memo.hi, memo.cum, memo.w, memo.x
    last = len(x) - 1
    for j, (cm, pm) in mids.items():
        if lo <= j < hi:                # in the strip: K0, a put below it, a call above it
            if j == k0:
                v = (cm + pm) / 2.0
            elif j < k0:
                if not ppos[j]:
                    continue
                v = pm
            elif cpos[j]:
                v = cm
            else:
                continue
            i = cum.item(j - lo) - 1
            old, x[i] = x[i], w.item(i) * v
            memo.s = None
            if memo.exact is not None:
                a, b = _fixed(old), _fixed(x[i])
                memo.exact = None if a is None or b is None else memo.exact - a + b
            if i == 0:
                memo.q_lo = v
            if i == last:
                memo.q_hi = v
    return kstar, f, k0


_SCALE = 1 << 1074            # every finite double is an integer multiple of 2^-1074


def _fixed(v: float) -> int | None:
    """``v`` x 2^1074 as an exact integer; None if ``v`` is not finite."""
    if v - v != 0.0:
        return None
    n, d = v.as_integer_ratio()
    return n << (1075 - d.bit_length())


def _strip_sum(memo: _StripMemo) -> float:
    """``math.fsum(memo.x)``, the correctly rounded sum, from the exact integer sum that the updates
    keep (summands replaced by integer differences, O(changed strikes), instead of an O(strip) fsum
    per read); an int / int division is correctly rounded too, so the bits are fsum's. Made from
    the summands grouped by binary exponent at a memo's second sum (a memo that a zero bid soon
    replaces is not worth it); fsum itself while a summand is not finite."""
    x = memo.x
    if memo.exact is None and memo.fsums < 1:
        memo.fsums += 1
        return math.fsum(x)
    if memo.exact is None and len(x) < 512:
        a = np.array(x)
        if np.isfinite(a).all():
            m, e = np.frexp(a)
            if not x or e.min() >= -1021:     # normal numbers: m 2^53 is an integer
                e = e.astype(np.int64)
                order = np.argsort(e, kind="stable")
                es = e[order]
                first = np.concatenate(([0], (es[1:] != es[:-1]).nonzero()[0] + 1))
                # per exponent: the sum of < 512 integers below 2^53, exact in int64
                sums = np.add.reduceat(np.ldexp(m, 53).astype(np.int64)[order], first) if x else ()
                total = 0
                for v, k in zip(list(sums), es[first].tolist()):
                    total += int(v) << (k + 1021)
                memo.exact = total
    if memo.exact is not None:
        try:
            return memo.exact / _SCALE
        except OverflowError:
            pass
    return math.fsum(x)


def _mids(blk: np.ndarray, j: int) -> tuple[float, float]:
    """(call mid, put mid) of strike ``j``."""
    cb, pb, ca, pa = blk[j].tolist()
    return (cb + ca) / 2.0, (pb + pa) / 2.0


def term_detail(term: Term, now_min: float, rate: RateLike,
                require_wings: bool = True) -> TermDetail | str:
    """Variance of one expiry at ``now_min`` (New York wall-clock minutes), or a NaN reason code.

    Same steps and the same floating-point operations as :func:`vix_batch`, vectorized:
    O(strikes of the expiry), about twenty numpy calls (each side's bids and mids in one call,
    the strip as one mask). When only a few quotes changed since the last read of ``term`` and
    K0 is the same strike, the strip is updated at those strikes only (:class:`_StripMemo`, same
    bits); a term refused (a NaN reason) is refused again without a full evaluation while its
    quotes stay and K0 does not move (:class:`_Refusal`). An open wing is flagged with its bound, never refused here (``require_wings`` is
    applied to the index, :func:`vix_from_terms`; kept for callers)."""
    minutes = term.minutes - now_min
    t = minutes / MINUTES_PER_YEAR
    r = _rate_for(rate, t)
    growth = math.exp(r * t)
    kl, blk = _term_arrays(term)
    memo = term._memo
    got = None
    if memo is not None and memo.strikes is term.strikes:
        got = _update(memo, blk, kl, growth)
    elif (no := term._refused) is not None and no.strikes is term.strikes:
        why = no.again(blk, kl, growth)
        if why is not None:
            return why
    if got is None:
        got = _full(term, kl, blk, growth)
        if isinstance(got, str):
            return got
        memo = term._memo
    assert memo is not None
    kstar, f, k0 = got
    s = memo.s
    if s is None:
        s = memo.s = _strip_sum(memo)
    cut_p, cut_c = memo.cut_p, memo.cut_c
    sigma2 = 2.0 / t * growth * s - (f / kl[k0] - 1.0) ** 2 / t
    tail = (0.0 if cut_p else memo.q_lo / memo.k_lo) + (0.0 if cut_c else memo.q_hi / memo.k_hi)
    return TermDetail(term.expiry_ts_ns, minutes, t, r, f, kl[kstar], kl[k0], sigma2,
                      len(memo.x), s, not (cut_p and cut_c), 2.0 / t * growth * tail)


def _full(term: Term, kl: list, blk: np.ndarray, growth: float) -> tuple | str:
    """Forward, K0 and strip of ``term`` from scratch into a new memo: (K* index, F, K0 index),
    or a NaN reason code (memo dropped, the refusal kept: :class:`_Refusal`)."""
    term._memo = term._refused = None
    n = len(kl)
    rows = np.ascontiguousarray(blk.T)
    bid, ask = rows[:2], rows[2:]              # (2, n) each, rows call, put
    pos = bid > 0.0                            # rows: call, put bid > 0
    mid = bid + ask
    mid /= 2.0                                 # rows: call, put mid
    cm, pm = mid
    both = pos[0] & pos[1]
    ad = cm - pm
    np.abs(ad, out=ad)
    ad = np.where(both, ad, np.inf)
    kstar = int(np.argmin(ad))                 # first minimum: lowest strike
    if not both[kstar] and not both.any():
        return _refuse(term, blk, "no_forward", -1, _NAN, _NAN, -1)
    kcm, kpm = mid.item(kstar), mid.item(n + kstar)
    f = kl[kstar] + growth * (kcm - kpm)
    k0 = bisect.bisect_right(kl, f) - 1
    if k0 < 0:
        return _refuse(term, blk, "forward_below_strikes", kstar, kcm, kpm, k0)
    lo, hi, cut_p, cut_c = _strip_bounds(pos, k0)
    sign = pos.copy()
    # strikes lo..hi-1: puts below K0, K0 (mean of the two mids), calls above; zero bids out.
    # K0 goes in the put rows (this call's temporaries) so that each is two slices.
    pos[1, k0] = True
    pm[k0] = (mid.item(k0) + mid.item(n + k0)) / 2.0
    use = np.concatenate((pos[1, lo:k0 + 1], pos[0, k0 + 1:hi]))
    q = np.concatenate((pm[lo:k0 + 1], cm[k0 + 1:hi]))[use]
    kk = term.strikes[lo:hi][use]
    m = kk.shape[0]
    if m < 2:
        return _refuse(term, blk, "too_few_strikes", kstar, kcm, kpm, k0)
    dk = np.empty(m)
    np.subtract(kk[2:], kk[:-2], out=dk[1:-1])
    dk[1:-1] /= 2.0
    dk[0] = kk.item(1) - kk.item(0)
    dk[-1] = kk.item(m - 1) - kk.item(m - 2)
    w = kk * kk
    np.divide(dk, w, out=w)
    bits = blk.view(np.int64)
    term._memo = _StripMemo(term.strikes, blk, bits, bits.copy(), sign, None, None, ad, k0, lo, hi,
                            cut_p, cut_c, np.cumsum(use), w, (w * q).tolist(), kk.item(0),
                            kk.item(m - 1), q.item(0), q.item(m - 1), (kstar, kcm, kpm))
    return kstar, f, k0


def _refuse(term: Term, blk: np.ndarray, reason: str, kstar: int, cm: float, pm: float,
            k0: int) -> str:
    term._refused = _Refusal(term.strikes, blk.view(np.int64).copy(), reason, kstar, cm, pm, k0)
    return reason


def vix_from_terms(exp_minutes: dict[int, float], eligible: dict[int, bool],
                   term_of: Callable[[int], Term], now_ts_ns: int, rate: RateLike, spec: VixSpec,
                   require_wings: bool = True) -> VixValue:
    """Index level from the listed expiries (settlement minutes, eligibility) and a term source.

    ``term_of(expiry)`` is called for the near and next terms only, so a caller holding the quotes
    elsewhere (``core.chain.ChainBook``) builds just those two: O(their strikes).
    """
    if not exp_minutes:
        return VixValue(math.nan, "no_expiries")
    now_min = local_minutes(now_ts_ns)
    near, nxt = select_terms(exp_minutes, eligible, now_min, spec)
    if near is None or nxt is None:
        return VixValue(math.nan, "no_bracketing_expiries")
    a = term_detail(term_of(near), now_min, rate, require_wings)
    if isinstance(a, str):
        return VixValue(math.nan, a)
    b = term_detail(term_of(nxt), now_min, rate, require_wings)
    if isinstance(b, str):
        return VixValue(math.nan, b)
    return _finish(a, b, spec, require_wings)
