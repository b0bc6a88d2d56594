"""One-shot report of a Cboe quotedata chain snapshot: forward, VIX/VIX9D, dealer exposures, IVs.

No Kafka. The ``streamer chain`` command only parses arguments and prints :func:`report`; tests call the
same function.

IVs and exposures come from the live engine, through its one entry point: the snapshot becomes the records
the worker would consume (:func:`engine_records`: one index tick of the underlying at the spot, then the
quotes and open interest that ``streamer chain --replay`` publishes), driven by
``streamer.engine.run_offline`` exactly as the worker drives them. So the chain book solves each quote's IV
against its expiry's put–call-parity forward with the worker's defaults (``Settings.rate``,
``Settings.div_yield`` unless given), and the top-level exposures, walls, gamma flip and ATM IV are the
engine's snapshot values. ``iv_source="vendor"`` is the exception, for comparison only: the file's IV column
through ``core.chain.exposures_batch`` (the engine has no vendor IVs).

Also, from ``streamer.core``:

* VIX and VIX9D: ``core.vix.vix_batch`` on the quotes (the reference the live ``ChainBook.vix``
  is tested against; the same numbers);
* per-expiry parity forward: ``core.chain.forward_from_parity`` on valid mids
  (``core.chain.valid_mid``); ``forward`` at the top level is the nearest unexpired expiry's.

ATM IV (the engine's definition, ``ChainBook.atm_iv``): the mean of the call and put IVs that exist at the
expiry's parity strike K* (argmin |C − P|). Per expiry at its own K*; ``atm_iv`` at the top level is the
engine's: the first expiry at least 7 days out that has a forward.
"""
from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from streamer.cboe_csv import NY, ChainSnapshot, combine, read_quotedata, replay_quotes
from streamer.contract_rows_csv import looks_like_contract_rows, read_contract_rows
from streamer.core.calendar import in_regular_session, utc_ns
from streamer.core.chain import (NS_PER_DAY, NS_PER_YEAR, ExposureTotals, Exposures, exposures_batch,
                                 forward_from_parity, valid_mid)
from streamer.core.vix import VIX, VIX9D, TermDetail, VixSpec, vix_batch
from streamer.settings import Settings

IV_SOURCES = ("mid", "vendor")


def load(paths: Sequence[str | Path], asof_ts_ns: int | None = None, underlying: str | None = None,
         require_spot: bool = True) -> ChainSnapshot:
    """Read one or several chain files of one snapshot and combine them (first file's spot/time).

    A file is Cboe quotedata (calls and puts side by side) or a chain of one row per contract (Cboe
    DataShop, vendor exports: ``contract_rows_csv``), told apart by its header. ``underlying`` and
    ``require_spot`` are for the latter (which underlying/root; whether a file without a spot is an error).
    """
    snaps = [read_contract_rows(p, asof_ts_ns, underlying, require_spot) if looks_like_contract_rows(p)
             else read_quotedata(p) for p in paths]
    return combine(snaps, asof_ts_ns) if len(snaps) > 1 or asof_ts_ns is not None else snaps[0]


def parse_asof(text: str) -> int:
    """ISO datetime -> UTC ns; a naive time is New York wall clock.

    >>> parse_asof("2024-01-05T16:15") == parse_asof("2024-01-05T21:15:00+00:00")
    True
    """
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=NY)
    return utc_ns(t)


def _iso(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=NY).isoformat()


def _num(x: float) -> float | None:
    """Finite float or None (JSON null)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _totals(t: ExposureTotals) -> dict[str, float | None]:
    return {"gex_usd_per_pct": _num(t.gex_usd_per_pct), "delta_exposure_usd": _num(t.dex_usd),
            "vanna_usd_per_vol_pt": _num(t.vanna_usd_per_vol_pt),
            "charm_usd_per_day": _num(t.charm_usd_per_day)}


def engine_records(snap: ChainSnapshot, spot: float | None = None,
                   skip: Counter | None = None) -> list[tuple[int, bytes, bytes]]:
    """The snapshot as the worker's input records ``(kind, key, value)``: one index tick of the underlying
    at ``spot`` (default the file's) stamped at the snapshot time, then :func:`replay_events`."""
    from streamer import schemas
    from streamer.pipeline import INDEX, OPEN_INTEREST, QUOTES

    kind = {"option_quote": QUOTES, "open_interest": OPEN_INTEREST}
    und = snap.underlying
    s = float(snap.spot if spot is None else spot)
    out = [(INDEX, und.encode(), schemas.encode(schemas.IndexTick(und, und, int(snap.asof_ts_ns), s)))]
    out += [(kind[e.kind], e.key.encode(), schemas.encode(e.msg)) for e in replay_events(snap, skip=skip)]
    return out


@dataclass(slots=True)
class EngineRun:
    """What the engine made of one snapshot: the engine, its last snapshot's values, the quotes not sent."""

    engine: object          # streamer.engine.UnderlyingEngine
    values: dict[str, float | None]
    not_sent: Counter


def run_engine(snap: ChainSnapshot, rate: float | None = None, div_yield: float | None = None,
               spot: float | None = None) -> EngineRun:
    """Drive the live engine over the snapshot's records (``run_offline``: decode, merge, ``ingest``)."""
    from streamer.engine import run_offline

    d = Settings()
    st = Settings(rate=d.rate if rate is None else rate, div_yield=d.div_yield if div_yield is None else div_yield)
    skip: Counter = Counter()
    _, snaps, engines = run_offline(engine_records(snap, spot, skip), st, snapshot=True)
    if snap.underlying not in engines or engines[snap.underlying].chain is None:
        raise ValueError("the engine built no option chain from the file (no quote or open interest sent)")
    return EngineRun(engines[snap.underlying], snaps[-1].values, skip)


def contract_ivs(snap: ChainSnapshot, rate: float | None = None, div_yield: float | None = None,
                 iv_source: str = "mid", run: EngineRun | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Per-contract IV (annual decimal, NaN = none) and the count of contracts without one, by reason.

    ``mid``: the IV the engine's chain book holds for the contract (:func:`run_engine`); reasons:
    ``EXPIRED`` (settled at the snapshot time), ``ZERO_BID`` / ``CROSSED`` / ``NONFINITE`` (no usable
    mid: the book takes 0 < bid <= ask), ``NO_IV`` (a mid the solver gives no vol for, e.g. below
    intrinsic against the expiry's forward). ``vendor``: the file's IV column, ``vendor_missing``
    where it is 0/blank and ``EXPIRED`` at or after settlement.
    """
    t = (snap.expiry_ts_ns - snap.asof_ts_ns).astype(float) / NS_PER_YEAR
    if iv_source == "vendor":
        iv = np.where(snap.iv > 0.0, snap.iv, np.nan)
        why = Counter({"vendor_missing": int(np.sum(~(snap.iv > 0.0) & (t > 0.0)))})
        iv[t <= 0.0] = np.nan
        why["EXPIRED"] = int(np.sum(t <= 0.0))
        return iv, {k: v for k, v in sorted(why.items()) if v}
    if iv_source != "mid":
        raise ValueError(f"iv_source must be one of {IV_SOURCES}, got {iv_source!r}")
    run = run if run is not None else run_engine(snap, rate, div_yield)
    book = run.engine.chain
    calls = (snap.right == "C").tolist()
    iv = np.array([book.iv_of((e, k, c)) for e, k, c in
                   zip(snap.expiry_ts_ns.tolist(), snap.strike.tolist(), calls)])
    b, a = snap.bid, snap.ask
    with np.errstate(invalid="ignore"):
        why = np.where(t <= 0.0, "EXPIRED",
                       np.where(~(np.isfinite(b) & np.isfinite(a) & (a > 0.0)), "NONFINITE",
                                np.where(b > a, "CROSSED", np.where(~(b > 0.0), "ZERO_BID", "NO_IV"))))
    codes = Counter(why[~np.isfinite(iv)].tolist())
    return iv, dict(sorted(codes.items()))


def _vix(snap: ChainSnapshot, rate: float, spec: VixSpec) -> dict:
    v = vix_batch(snap.expiry_ts_ns, snap.strike, snap.right, snap.bid, snap.ask, snap.asof_ts_ns,
                  rate, spec)

    def term(d: TermDetail | None) -> dict | None:
        if d is None:
            return None
        return {"expiry": _iso(d.expiry_ts_ns), "days": d.minutes / 1440.0, "forward": d.forward,
                "k0": d.k0, "sigma2": d.sigma2, "n_strikes": d.n_strikes, "truncated": d.truncated,
                "wing_bound": d.wing_bound}

    # a strip that ends at the last listed strike (no two zero bids) still gives a value; the bound says
    # how many index points the unlisted wing could add (core/vix.py)
    return {"value": _num(v.value), "reason": None if v.ok else v.reason,
            "wing_truncated": v.wing_truncated, "wing_bound": _num(v.wing_bound),
            "near": term(v.near), "next": term(v.next)}


def _atm_iv(strikes: np.ndarray, iv_c: np.ndarray, iv_p: np.ndarray, k_star: float) -> float:
    """Mean of the call and put IVs that exist at the parity strike ``k_star`` (``ChainBook.atm_iv``)."""
    if not math.isfinite(k_star):
        return math.nan
    j = int(np.searchsorted(strikes, k_star))
    if j >= strikes.size or strikes[j] != k_star:
        return math.nan
    ivs = [float(v[j]) for v in (iv_c, iv_p) if math.isfinite(v[j])]
    return sum(ivs) / len(ivs) if ivs else math.nan


SPOT_SOURCES = ("auto", "last", "parity")


def _expiry_books(snap: ChainSnapshot, rate: float) -> list[dict]:
    """Per expiry: strikes, call/put mids and positions, parity forward (nan at/after settlement)."""
    is_call = snap.right == "C"
    mids = np.array([valid_mid(b, a) for b, a in zip(snap.bid.tolist(), snap.ask.tolist())])
    now = int(snap.asof_ts_ns)
    out = []
    for e in np.unique(snap.expiry_ts_ns).tolist():
        m = snap.expiry_ts_ns == e
        ks = np.unique(snap.strike[m])
        book = {"expiry_ts_ns": e, "mask": m, "strikes": ks, "t": (e - now) / NS_PER_YEAR}
        for side, sel in (("C", m & is_call), ("P", m & ~is_call)):
            idx = np.flatnonzero(sel)
            pos = np.searchsorted(ks, snap.strike[idx])
            mid_s = np.full(ks.size, np.nan)
            mid_s[pos] = mids[idx]
            book[side] = (idx, pos, mid_s)
        book["forward"], book["k_star"] = (
            forward_from_parity(ks, book["C"][2], book["P"][2], book["t"], rate)
            if book["t"] > 0.0 else (math.nan, math.nan))
        out.append(book)
    return out


def report(snap: ChainSnapshot, rate: float | None = None, div_yield: float | None = None,
           iv_source: str = "mid", include_profile: bool = False, spot_source: str = "auto") -> dict:
    """The ``streamer chain`` JSON object for one snapshot (NaN -> None; see the command's --help).

    rate, div_yield: continuous annual decimals for IVs, greeks, forwards and VIX discounting (default: the
    worker's, ``Settings.rate`` / ``Settings.div_yield``). spot_source: ``last`` = the file's ``Last``
    (stale in files saved outside regular hours); ``parity`` = the nearest unexpired expiry's parity
    forward discounted at (rate - div_yield): S = F e^{-(r-q)T}, the spot the option quotes imply;
    ``auto`` = ``last`` when the snapshot's time is in a regular session or at its close, ``parity``
    when it is not (overnight GTH quotes: the index is not computed then, 'Last' is the last close)
    or when the file gives no spot. The
    spot is the index print the engine receives: the IVs (parity forward per expiry) do not depend on it,
    the greeks and exposures are evaluated at it.
    """
    if spot_source not in SPOT_SOURCES:
        raise ValueError(f"spot_source must be one of {SPOT_SOURCES}, got {spot_source!r}")
    if iv_source not in IV_SOURCES:
        raise ValueError(f"iv_source must be one of {IV_SOURCES}, got {iv_source!r}")
    d = Settings()
    rate = d.rate if rate is None else float(rate)
    div_yield = d.div_yield if div_yield is None else float(div_yield)
    books = _expiry_books(snap, rate)
    near = next((b for b in books if b["t"] > 0.0 and math.isfinite(b["forward"])), None)
    file_spot = float(snap.spot)
    if spot_source == "auto":
        root = Counter(snap.root.tolist()).most_common(1)[0][0] if len(snap) else ""
        quoted_then = in_regular_session(int(snap.asof_ts_ns), root) and math.isfinite(file_spot)
        spot_source = "last" if quoted_then or near is None else "parity"
    if spot_source == "last" and not math.isfinite(file_spot):
        raise ValueError("the file gives no underlying price: use --spot parity")
    if spot_source == "parity":
        if near is None:
            raise ValueError("spot from parity: no unexpired expiry has a put-call parity forward")
        snap = replace(snap, spot=near["forward"] * math.exp(-(rate - div_yield) * near["t"]))
    spot, now = float(snap.spot), int(snap.asof_ts_ns)
    is_call = snap.right == "C"
    run = None
    if iv_source == "mid":
        run = run_engine(snap, rate, div_yield, spot)
        book = run.engine.chain
        iv, no_iv = contract_ivs(snap, iv_source="mid", run=run)
        ex: Exposures = book.exposures()
        k_star = {e: (f.strike if (f := book.forward(e, now)) is not None else math.nan) for e in book.expiries()}
        top = {k: run.values[k] for k in ("gex_usd_per_pct", "delta_exposure_usd", "vanna_usd_per_vol_pt",
                                          "charm_usd_per_day", "gamma_flip", "call_wall", "put_wall",
                                          "abs_gamma_strike", "atm_iv")}
    else:
        iv, no_iv = contract_ivs(snap, rate, div_yield, "vendor")
        ex = exposures_batch(snap.expiry_ts_ns, snap.strike, is_call, iv, snap.open_interest, spot,
                             now, rate, div_yield)
        k_star = {b["expiry_ts_ns"]: b["k_star"] for b in books}
        top = {**_totals(ex.total), "gamma_flip": _num(ex.gamma_flip), "call_wall": _num(ex.call_wall),
               "put_wall": _num(ex.put_wall), "abs_gamma_strike": _num(ex.abs_gamma_strike), "atm_iv": None}
    oi = np.where(snap.open_interest > 0.0, snap.open_interest, 0.0)
    col = {int(e): j for j, e in enumerate(ex.expiries.tolist())}   # settled expiries left the book

    expiries = []
    for b in books:
        e = b["expiry_ts_ns"]
        m, ks, t, fwd = b["mask"], b["strikes"], b["t"], b["forward"]
        j = col.get(e)
        ivs = {}
        for side in ("C", "P"):
            idx, pos, _ = b[side]
            ivs[side] = np.full(ks.size, np.nan)
            ivs[side][pos] = iv[idx]
        hour = dt.datetime.fromtimestamp(e // 1_000_000_000, tz=NY).hour
        expiries.append({
            "expiry": _iso(e), "expiry_ts_ns": e,
            "settlement": "AM" if hour < 12 else "PM",
            "roots": sorted(set(snap.root[m].tolist())),
            "days": (e - now) / NS_PER_DAY,
            "forward": _num(fwd), "forward_strike": _num(b["k_star"]),
            "implied_carry": _num(math.log(fwd / spot) / t) if t > 0 and fwd > 0 else None,
            "atm_iv": _num(_atm_iv(ks, ivs["C"], ivs["P"], k_star.get(e, math.nan))) if t > 0 else None,
            "gex_usd_per_pct": float(ex.expiry_gex[j]) if j is not None else 0.0,
            "delta_exposure_usd": float(ex.expiry_dex[j]) if j is not None else 0.0,
            "vanna_usd_per_vol_pt": float(ex.expiry_vanna[j]) if j is not None else 0.0,
            "charm_usd_per_day": float(ex.expiry_charm[j]) if j is not None else 0.0,
            "open_interest": int(oi[m].sum()),
            "n_contracts": int(m.sum()), "n_iv": int(np.isfinite(iv[m]).sum()),
        })
    if iv_source == "vendor":   # the engine's rule on the vendor IVs: first expiry >= 7 days with a forward
        top["atm_iv"] = next((x["atm_iv"] for x in expiries if x["days"] >= 7 and x["forward"] is not None), None)
    nearest = next((x for x in expiries if x["days"] > 0 and x["forward"] is not None), None)
    vix, vix9d = _vix(snap, rate, VIX), _vix(snap, rate, VIX9D)
    live = np.isfinite(iv) & (snap.expiry_ts_ns > now)
    out = {
        "underlying": snap.underlying,
        "files": [Path(p).name for p in snap.source],
        "asof": _iso(now), "asof_ts_ns": now, "asof_basis": snap.asof_basis, "file_date_line": snap.asof_text,
        "spot": _num(spot), "spot_source": spot_source, "file_last": _num(file_spot),
        "rate": rate, "div_yield": div_yield, "iv_source": iv_source,
        "engine": iv_source == "mid",
        "forward": nearest["forward"] if nearest else None,
        "forward_expiry": nearest["expiry"] if nearest else None,
        "atm_iv": top["atm_iv"],
        "vix_index": vix["value"], "vix_reason": vix["reason"],
        "vix_wing_truncated": vix["wing_truncated"], "vix_wing_bound": vix["wing_bound"],
        "vix9d_index": vix9d["value"], "vix9d_reason": vix9d["reason"],
        "vix9d_wing_truncated": vix9d["wing_truncated"], "vix9d_wing_bound": vix9d["wing_bound"],
        "vix_terms": {"near": vix["near"], "next": vix["next"]},
        "vix9d_terms": {"near": vix9d["near"], "next": vix9d["next"]},
        **{k: top[k] for k in ("gex_usd_per_pct", "delta_exposure_usd", "vanna_usd_per_vol_pt",
                               "charm_usd_per_day")},
        "gamma_flip": top["gamma_flip"], "gamma_flip_per_strike": _num(ex.strike_flip),
        "call_wall": top["call_wall"], "put_wall": top["put_wall"],
        "abs_gamma_strike": top["abs_gamma_strike"],
        "zero_dte": _totals(ex.zero_dte),
        "n_contracts": len(snap), "n_expiries": len(expiries),
        "open_interest": {"calls": int(oi[is_call].sum()), "puts": int(oi[~is_call].sum()),
                          "without_iv": int(oi[~live].sum())},
        "iv": {"n_ok": int(np.isfinite(iv).sum()), "n_missing": int((~np.isfinite(iv)).sum()),
               "missing_by_reason": no_iv},
        "units": {"gex_usd_per_pct": "$ of dealer delta per 1% move of spot",
                  "delta_exposure_usd": "$ dealer delta",
                  "vanna_usd_per_vol_pt": "$ of dealer delta per +1 vol point of IV",
                  "charm_usd_per_day": "$ of dealer delta per calendar day",
                  "sign": "dealer position: long calls (+1), short puts (-1); hedge flow = -change"},
        "expiries": expiries,
    }
    if run is not None and sum(run.not_sent.values()):
        out["quotes_not_sent"] = dict(sorted(run.not_sent.items()))
    if snap.underlying != "SPX":
        out["vix_note"] = (f"Cboe VIX method applied to {snap.underlying} options; the published "
                           "VIX/VIX9D use SPX options")
    if include_profile:
        out["gamma_profile"] = {"spot": ex.grid_spots.tolist(),
                                "gex_usd_per_pct": ex.grid_gex.tolist()}
    return out


# --------------------------------------------------------------------------- replay to Kafka

@dataclass(slots=True)
class ReplayEvent:
    """One message for ``streamer.publisher.publish``: kind, Kafka key (the underlying), schemas msg."""

    kind: str
    key: str
    msg: object


def replay_events(snap: ChainSnapshot, ts_ns: int | None = None,
                  skip: Counter | None = None) -> Iterator[ReplayEvent]:
    """Map ``cboe_csv.replay_quotes`` onto ``OptionQuote``/``OpenInterest`` events.

    Messages the edge would reject anyway are not sent and are counted in ``skip`` by reason:
    ``expired`` (settled at or before the stamp: no exposure, and more than a day old is invalid
    at the edge), ``no_market`` (ask <= 0), ``bad_quote`` (bid < 0 or crossed). Sizes are absent
    from quotedata files and sent as 0.
    """
    from streamer.schemas import OpenInterest, OptionQuote

    t = snap.asof_ts_ns if ts_ns is None else int(ts_ns)
    for kind, d in replay_quotes(snap, t):
        if d["expiry_ts_ns"] <= t:
            if skip is not None:
                skip["expired"] += 1
            continue
        if kind == "quote":
            if not (d["ask"] > 0.0 and 0.0 <= d["bid"] <= d["ask"]):
                if skip is not None:
                    skip["no_market" if not d["ask"] > 0.0 else "bad_quote"] += 1
                continue
            yield ReplayEvent("option_quote", d["underlying"], OptionQuote(
                d["underlying"], d["ts_ns"], d["expiry_ts_ns"], d["strike"], d["right"],
                d["bid"], d["ask"], d["bid_size"] or 0, d["ask_size"] or 0))
        else:
            yield ReplayEvent("open_interest", d["underlying"], OpenInterest(
                d["underlying"], d["ts_ns"], d["expiry_ts_ns"], d["strike"], d["right"],
                d["open_interest"]))
