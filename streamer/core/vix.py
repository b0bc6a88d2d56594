"""Cboe-method volatility index (VIX white paper, 2019 edition), incremental per underlying.

Method, step by step (white paper section in brackets), and the choices made here:

* **Expirations** [Step 1]: SPX options with *Friday* expirations: the standard monthly (AM-settled,
  09:30 ET, root ``SPX``) and the weeklies (PM-settled, 16:00 ET, root ``SPXW``). On a third Friday
  the standard AM series is used and the PM weekly of the same date is not (detected from the data:
  a PM expiry is ineligible when an AM expiry exists on the same date). A Thursday PM expiry is
  eligible when the Friday after it is an exchange holiday (Good Friday, Juneteenth, Jul 4, Dec 25,
  Jan 1 falling on or observed on that Friday). Expirations on other weekdays are not used (the
  white paper predates Mon-Thu SPXW; Cboe still uses Friday expirations for VIX). The near term is
  the latest eligible expiry with ``min_days < days <= target``, the next term the earliest with
  ``target < days < max_days``; for VIX (23, 30, 37) as in the white paper. VIX9D uses the same rule
  with (2, 9, 16): the two Friday expirations bracketing 9 days (our choice, documented; Cboe's
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
* **DeltaK**: half the distance between the neighbouring *included* strikes, one-sided (full
  distance to the single neighbour) at the ends of the strip.
* **Variance**: sigma^2 = (2/T) e^{RT} sum_i DeltaK_i/K_i^2 Q(K_i) - (1/T) (F/K0 - 1)^2.
* **Index**: 100 sqrt{[T1 s1^2 (N2-Nt)/(N2-N1) + T2 s2^2 (Nt-N1)/(N2-N1)] N365/Nt}, N in minutes.
* Not implemented: Cboe's 2023+ quote-filtering/"smoothing" rules and bid-ask-spread rules, so
  wide or crossed quotes go in as they come. Invalid quotes should be rejected at the edge.

Incremental design (one ``VixEngine`` per underlying). Per expiry we keep strike-sorted arrays of
call/put bid/ask, per-strike |C - P| and the current K*, the strip as per-strike weights
w_i = DeltaK_i/K_i^2 (0 when excluded) and contributions c_i = w_i Q_i, and S = sum c_i.
A quote change costs O(1) unless it triggers one of these *rescans* (each an O(n) vectorised
rebuild of that one expiry, n = its number of strikes):

1. forward strike: the quote at K* changes so that |C - P| at K* grows, or K*'s call/put bid drops
   to zero -> argmin over the expiry (any other strike can only *replace* K* in O(1));
2. K0 moves: F is recomputed at ``value()`` time (it also depends on T through e^{RT}); if the
   strike at or below F differs from the one the strip was built for -> strip rebuild;
3. zero-bid boundary: an OTM-side bid (put below K0, call above K0) switches between zero and
   non-zero at or inside the two-zero-bid cut-off -> strip rebuild (a switch beyond the cut-off,
   deeper in the wing, changes nothing and is O(1));
4. a strike added (first quote for an unknown strike) or removed (``remove_strike``) -> rebuild;
5. expiry roll: the near/next selection depends on ``now``; a newly selected expiry (e.g. the next
   Friday entering the 37-day window) is built on first use. Expiries never selected are only
   stored (O(1) per quote) and never rebuilt.

A quote on an OTM-side strike that keeps its zero/non-zero bid state, or on K0, swaps one term of
S in O(1); an ITM-side quote only touches the forward bookkeeping. ``vix_batch`` is the slow,
obviously-correct reference computed from scratch with plain loops.
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

NY = ZoneInfo("America/New_York")
MINUTES_PER_YEAR = 525_600.0
MINUTES_PER_DAY = 1_440.0
_NS_PER_MIN = 60_000_000_000

RateLike = float | Callable[[float], float]


@dataclass(slots=True, frozen=True)
class VixSpec:
    """Constant-maturity target and the open day windows (min_days, target] and (target, max_days)."""

    name: str
    target_days: float
    min_days: float
    max_days: float
    friday_only: bool = True


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
    truncated: bool = False


@dataclass(slots=True, frozen=True)
class VixValue:
    """Index level (vol points) or NaN with a reason code; per-term detail when computable."""

    value: float
    reason: str
    near: TermDetail | None = None
    next: TermDetail | None = None

    @property
    def ok(self) -> bool:
        """True when ``value`` is a number."""
        return self.reason == "ok"


# --------------------------------------------------------------------------- calendar helpers

def _good_friday(year: int) -> dt.date:
    """Good Friday by the anonymous Gregorian computus."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ll = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ll) // 451
    month = (h + ll - 7 * m + 114) // 31
    day = (h + ll - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day) - dt.timedelta(days=2)


def is_friday_holiday(day: dt.date) -> bool:
    """True if ``day`` is a Friday on which US exchanges are closed.

    >>> is_friday_holiday(dt.date(2024, 3, 29)), is_friday_holiday(dt.date(2024, 3, 22))
    (True, False)
    """
    if day.weekday() != 4:
        return False
    if day == _good_friday(day.year):
        return True
    fixed = [(1, 1), (7, 4), (12, 25)] + ([(6, 19)] if day.year >= 2022 else [])
    if (day.month, day.day) in fixed:
        return True
    sat = day + dt.timedelta(days=1)  # Saturday holidays are observed on Friday (not Jan 1)
    return (sat.month, sat.day) in [f for f in fixed if f != (1, 1)]


def local_minutes(ts_ns: int) -> float:
    """UTC ns -> minutes since 1970-01-01 00:00 on the New York wall clock.

    >>> local_minutes(0)
    -300.0
    """
    secs = ts_ns // 1_000_000_000
    off = dt.datetime.fromtimestamp(secs, tz=NY).utcoffset()
    assert off is not None
    return ts_ns / _NS_PER_MIN + off.total_seconds() / 60.0


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


def select_terms(exp_minutes: dict[int, float], eligible: dict[int, bool], now_minutes: float,
                 spec: VixSpec) -> tuple[int | None, int | None]:
    """Near and next expiries: latest in (min, target] days and earliest in (target, max) days."""
    near = nxt = None
    for e in sorted(exp_minutes):
        if not eligible.get(e, False):
            continue
        days = (exp_minutes[e] - now_minutes) / MINUTES_PER_DAY
        if spec.min_days < days <= spec.target_days:
            near = e
        elif spec.target_days < days < spec.max_days and nxt is None:
            nxt = e
    return near, nxt


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


# --------------------------------------------------------------------------- batch reference

def vix_batch(expiry_ts_ns: Iterable[int], strike: Iterable[float], right: Iterable[str],
              bid: Iterable[float], ask: Iterable[float], now_ts_ns: int, rate: RateLike = 0.0,
              spec: VixSpec = VIX, require_wings: bool = True) -> VixValue:
    """From-scratch reference: index level from flat per-contract arrays at ``now_ts_ns`` (UTC ns).

    Later rows override earlier rows for the same contract. With ``require_wings`` a term whose
    strip runs into the last listed strike on either side without meeting two consecutive zero
    bids (a chain subset, e.g. near-ATM only) gives NaN with reason ``strip_truncated``. ``rate``: continuously compounded,
    decimal (constant, or a function of T in years).
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
        truncated = not (cut_p and cut_c)
        if truncated and require_wings:
            return VixValue(math.nan, "strip_truncated")
        terms.append(TermDetail(e, minutes, t, r, f, ks[kstar], ks[k0], sigma2, len(strip), s,
                                truncated))
    a, b = terms
    v = combine_terms(a.t_years, a.sigma2, a.minutes, b.t_years, b.sigma2, b.minutes,
                      spec.target_days * MINUTES_PER_DAY)
    return VixValue(v, "ok" if v == v else "negative_variance", a, b)


# --------------------------------------------------------------------------- incremental engine

class _Term:
    """One expiry's strike arrays and incremental strip state (see module docstring)."""

    __slots__ = ("exp", "minutes", "ks", "kidx", "k", "cb", "ca", "pb", "pa", "d", "kstar", "fwd_known",
                 "built", "k0", "w", "c", "s", "sp", "sc", "n_inc", "rescans")

    def __init__(self, exp: int, strikes: np.ndarray) -> None:
        self.exp = exp
        self.minutes = local_minutes(exp)
        self.rescans = 0
        self._set_strikes(np.unique(np.asarray(strikes, dtype=np.float64)))

    def _set_strikes(self, k: np.ndarray) -> None:
        n = k.shape[0]
        self.k = k
        self.ks = k.tolist()
        self.kidx = {x: i for i, x in enumerate(self.ks)}
        self.cb, self.ca = np.full(n, np.nan), np.full(n, np.nan)
        self.pb, self.pa = np.full(n, np.nan), np.full(n, np.nan)
        self.d = np.full(n, np.inf)
        self.kstar = -1  # -1 with fwd_known: no strike has both bids > 0
        self.fwd_known = False
        self.built = False
        self.k0 = -1
        self.w = np.zeros(n)
        self.c = np.zeros(n)
        self.s = 0.0
        self.sp, self.sc, self.n_inc = -2, n + 1, 0

    def add_strike(self, x: float) -> None:
        old = (self.k, self.cb, self.ca, self.pb, self.pa)
        k = np.unique(np.append(self.k, x))
        pos = np.searchsorted(k, old[0])
        self._set_strikes(k)
        for dst, src in zip((self.cb, self.ca, self.pb, self.pa), old[1:]):
            dst[pos] = src
        both = (self.cb > 0) & (self.pb > 0)
        self.d[both] = np.abs((self.cb[both] + self.ca[both]) / 2 - (self.pb[both] + self.pa[both]) / 2)

    def remove_strike(self, x: float) -> None:
        i = self.kidx[x]
        keep = np.ones(self.k.shape[0], dtype=bool)
        keep[i] = False
        cols = [a[keep] for a in (self.cb, self.ca, self.pb, self.pa, self.d)]
        self._set_strikes(self.k[keep])
        self.cb, self.ca, self.pb, self.pa, self.d = cols

    def argmin_forward(self) -> None:
        """Rescan 1: K* = argmin |C - P| over strikes with both bids > 0 (first = lowest strike)."""
        self.rescans += 1
        i = int(np.argmin(self.d)) if self.d.shape[0] else -1
        self.kstar = i if i >= 0 and self.d[i] < math.inf else -1
        self.fwd_known = True

    def build(self, k0: int) -> None:
        """Rescans 2-4: rebuild the strip weights, contributions and S for strike index ``k0``."""
        self.rescans += 1
        n = self.k.shape[0]
        pz = ~(self.pb > 0)
        cz = ~(self.cb > 0)
        pairs = np.flatnonzero(pz[: max(k0 - 1, 0)] & pz[1:k0]) if k0 >= 2 else np.empty(0, int)
        sp = int(pairs[-1]) if pairs.size else -2
        lo = sp + 2
        put_inc = lo + np.flatnonzero(~pz[lo:k0])
        pairs = np.flatnonzero(cz[k0 + 1: n - 1] & cz[k0 + 2: n]) if n - k0 >= 3 else np.empty(0, int)
        sc = k0 + 1 + int(pairs[0]) if pairs.size else n + 1
        call_inc = k0 + 1 + np.flatnonzero(~cz[k0 + 1: min(sc, n)])
        inc = np.concatenate([put_inc, [k0], call_inc]).astype(np.intp)
        kk = self.k[inc]
        dk = np.empty_like(kk)
        if kk.shape[0] >= 2:
            dk[1:-1] = (kk[2:] - kk[:-2]) / 2.0
            dk[0] = kk[1] - kk[0]
            dk[-1] = kk[-1] - kk[-2]
        else:
            dk[:] = 0.0
        w = np.zeros(n)
        w[inc] = dk / (kk * kk)
        q = np.zeros(n)
        q[put_inc] = (self.pb[put_inc] + self.pa[put_inc]) / 2.0
        q[call_inc] = (self.cb[call_inc] + self.ca[call_inc]) / 2.0
        q[k0] = self._q0(k0)
        self.w = w
        self.c = w * q
        self.s = math.fsum(self.c[inc].tolist())
        self.k0, self.sp, self.sc, self.n_inc = k0, sp, sc, int(inc.shape[0])
        self.built = True

    def _q0(self, k0: int) -> float:
        return ((float(self.cb[k0]) + float(self.ca[k0])) / 2.0
                + (float(self.pb[k0]) + float(self.pa[k0])) / 2.0) / 2.0

    def quote(self, i: int, is_call: bool, b: float, a: float) -> None:
        """Apply one quote to strike index ``i``: O(1) unless a rescan condition is hit."""
        if is_call:
            was_pos = self.cb[i] > 0
            self.cb[i], self.ca[i] = b, a
        else:
            was_pos = self.pb[i] > 0
            self.pb[i], self.pa[i] = b, a
        now_pos = b > 0
        # forward bookkeeping
        cb, pb = float(self.cb[i]), float(self.pb[i])
        nd = abs((cb + float(self.ca[i])) / 2.0 - (pb + float(self.pa[i])) / 2.0) \
            if cb > 0 and pb > 0 else math.inf
        old_d = float(self.d[i])
        self.d[i] = nd
        ks = self.kstar
        if not self.fwd_known:
            pass  # resolved lazily by argmin_forward() at value() time
        elif i == ks:
            if not nd <= old_d or nd == math.inf:
                self.argmin_forward()
        elif ks < 0:
            if nd < math.inf:
                self.kstar = i
        else:
            dks = float(self.d[ks])
            if nd < dks or (nd == dks and i < ks):
                self.kstar = i
        if not self.built:
            return
        k0 = self.k0
        if i == k0:
            c = float(self.w[i]) * self._q0(i)
        elif (i < k0) != is_call:  # OTM side: put below K0 or call above K0
            if was_pos != now_pos:
                if (i >= self.sp) if i < k0 else (i <= self.sc + 1):
                    self.build(k0)  # rescan 3: zero-bid boundary / membership change
                return
            wi = float(self.w[i])
            if wi == 0.0:
                return
            c = wi * (b + a) / 2.0
        else:
            return  # ITM side: forward only
        self.s += c - float(self.c[i])
        self.c[i] = c


class VixEngine:
    """Incremental Cboe-method volatility index for one underlying (see module docstring).

    >>> e = VixEngine()
    >>> e.value(0).reason
    'no_expiries'
    """

    def __init__(self, rate: RateLike = 0.0, spec: VixSpec = VIX,
                 require_wings: bool = True) -> None:
        self.rate = rate
        self.spec = spec
        self.require_wings = require_wings
        self.terms: dict[int, _Term] = {}
        self._eligible: dict[int, bool] = {}
        self._exp_minutes: dict[int, float] = {}
        self.updates = 0

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, expiry_ts_ns: np.ndarray, strike: np.ndarray, right: np.ndarray,
                    bid: np.ndarray, ask: np.ndarray, rate: RateLike = 0.0,
                    spec: VixSpec = VIX, require_wings: bool = True) -> VixEngine:
        """Bulk-load a snapshot (flat per-contract arrays; ``right`` 'C'/'P')."""
        eng = cls(rate, spec, require_wings)
        exp = np.asarray(expiry_ts_ns, dtype=np.int64)
        k = np.asarray(strike, dtype=np.float64)
        is_call = np.asarray(right) == "C"
        b = np.asarray(bid, dtype=np.float64)
        a = np.asarray(ask, dtype=np.float64)
        for e in np.unique(exp).tolist():
            m = exp == e
            eng.terms[int(e)] = term_from_quotes(int(e), k[m], is_call[m], b[m], a[m])
        eng._refresh_expiries()
        return eng

    def _refresh_expiries(self) -> None:
        self._eligible = eligible_expiries(self.terms, self.spec.friday_only)
        self._exp_minutes = {e: t.minutes for e, t in self.terms.items()}

    # -- events --------------------------------------------------------------------------------
    def update_quote(self, expiry_ts_ns: int, strike: float, right: str, bid: float,
                     ask: float) -> None:
        """Apply one quote (prices in index points; bid <= 0 or NaN counts as a zero bid)."""
        self.updates += 1
        term = self.terms.get(expiry_ts_ns)
        if term is None:
            term = _Term(int(expiry_ts_ns), np.array([strike], dtype=np.float64))
            self.terms[int(expiry_ts_ns)] = term
            self._refresh_expiries()
        i = term.kidx.get(strike)
        if i is None:
            term.add_strike(float(strike))  # rescan 4
            i = term.kidx[float(strike)]
        term.quote(i, right == "C", float(bid), float(ask))

    def remove_strike(self, expiry_ts_ns: int, strike: float) -> None:
        """Delist one strike of one expiry (rescan 4)."""
        term = self.terms.get(expiry_ts_ns)
        if term is not None and strike in term.kidx:
            term.remove_strike(float(strike))
            if not term.ks:
                self.remove_expiry(expiry_ts_ns)

    def remove_expiry(self, expiry_ts_ns: int) -> None:
        """Drop an expiry (e.g. after settlement)."""
        if self.terms.pop(expiry_ts_ns, None) is not None:
            self._refresh_expiries()

    def drop_expired(self, now_ts_ns: int) -> int:
        """Drop every expiry settled at or before ``now_ts_ns``; returns how many."""
        gone = [e for e in self.terms if e <= now_ts_ns]
        for e in gone:
            del self.terms[e]
        if gone:
            self._refresh_expiries()
        return len(gone)

    # -- value ---------------------------------------------------------------------------------
    def value(self, now_ts_ns: int) -> VixValue:
        """Index level at ``now_ts_ns`` (UTC ns), or NaN with a reason code."""
        return vix_from_terms(self._exp_minutes, self._eligible, self.terms.__getitem__, now_ts_ns,
                              self.rate, self.spec, self.require_wings)

    def rescans(self) -> int:
        """Total O(n) rescans done so far (all expiries)."""
        return sum(t.rescans for t in self.terms.values())


# --------------------------------------------------------------------------- shared term evaluation

def term_from_quotes(expiry_ts_ns: int, strike: np.ndarray, is_call: np.ndarray, bid: np.ndarray,
                     ask: np.ndarray) -> _Term:
    """One expiry's ``_Term`` from its quotes (unique (strike, right) rows; O(n log n) vectorized)."""
    k = np.asarray(strike, dtype=np.float64)
    call = np.asarray(is_call, dtype=bool)
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    term = _Term(int(expiry_ts_ns), k)
    pos = np.searchsorted(term.k, k)
    for side, (qb, qa) in ((True, (term.cb, term.ca)), (False, (term.pb, term.pa))):
        mm = call == side
        qb[pos[mm]] = b[mm]
        qa[pos[mm]] = a[mm]
    both = (term.cb > 0) & (term.pb > 0)
    term.d[both] = np.abs((term.cb[both] + term.ca[both]) / 2 - (term.pb[both] + term.pa[both]) / 2)
    return term


def term_detail(term: _Term, now_min: float, rate: RateLike, require_wings: bool) -> TermDetail | str:
    """Variance of one expiry at ``now_min`` (New York wall-clock minutes), or a NaN reason code."""
    minutes = term.minutes - now_min
    t = minutes / MINUTES_PER_YEAR
    r = _rate_for(rate, t)
    growth = math.exp(r * t)
    if not term.fwd_known:
        term.argmin_forward()
        if term.kstar < 0:
            return "no_forward"
    ks = term.kstar
    f = term.ks[ks] + growth * ((float(term.cb[ks]) + float(term.ca[ks])) / 2.0
                                - (float(term.pb[ks]) + float(term.pa[ks])) / 2.0)
    k0 = bisect.bisect_right(term.ks, f) - 1
    if k0 < 0:
        return "forward_below_strikes"
    if not term.built or term.k0 != k0:
        term.build(k0)  # rescan 2 (or first use: rescan 5)
    if term.n_inc < 2:
        return "too_few_strikes"
    truncated = term.sp == -2 or term.sc == term.k.shape[0] + 1
    if truncated and require_wings:
        return "strip_truncated"
    sigma2 = 2.0 / t * growth * term.s - (f / term.ks[k0] - 1.0) ** 2 / t
    return TermDetail(term.exp, minutes, t, r, f, term.ks[ks], term.ks[k0], sigma2,
                      term.n_inc, term.s, truncated)


def vix_from_terms(exp_minutes: dict[int, float], eligible: dict[int, bool],
                   term_of: Callable[[int], _Term], now_ts_ns: int, rate: RateLike, spec: VixSpec,
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
    v = combine_terms(a.t_years, a.sigma2, a.minutes, b.t_years, b.sigma2, b.minutes,
                      spec.target_days * MINUTES_PER_DAY)
    return VixValue(v, "ok" if v == v else "negative_variance", a, b)
