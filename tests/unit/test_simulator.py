"""The scenario simulator: deterministic, time-ordered, valid at the edge, arbitrage-sane quotes, and
scenario closes (election collapse, calm) as specified; its VIX ticks agree with a Cboe-method
computation on its own chain (``streamer.core.vix.vix_batch``)."""
from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np
import pytest

from streamer import schemas, simulator
from streamer.core import vix
from streamer.errors import InvalidMessage

NY = simulator.NY


@pytest.fixture(scope="module")
def runs() -> dict[str, list[simulator.SimEvent]]:
    return {name: list(simulator.generate(name, seed=3, preset="fast")) for name in simulator.SCENARIOS}


def local(ts_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=NY)


def closes(events, symbol: str) -> dict[dt.date, float]:
    """Last tick of ``symbol`` per session date."""
    out: dict[dt.date, float] = {}
    for e in events:
        if e.kind == "index_tick" and e.msg.symbol == symbol:
            out[local(e.msg.ts_ns).date()] = e.msg.price
    return out


def snapshots(events):
    """ts → expiry → right → (strikes, bids, asks), strike-sorted."""
    snap: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for e in events:
        if e.kind == "option_quote":
            m = e.msg
            snap[m.ts_ns][m.expiry_ts_ns][m.right].append((m.strike, m.bid, m.ask))
    return {ts: {ex: {r: np.array(sorted(v)) for r, v in d.items()} for ex, d in s.items()}
            for ts, s in snap.items()}


# ----------------------------------------------------------------------------- contract


def test_registry_and_api():
    assert {"election-2024", "calm", "selloff"} <= set(simulator.SCENARIOS)
    for name, sc in simulator.SCENARIOS.items():
        assert sc.name == name and sc.description and len(sc.sessions) == 2
    with pytest.raises(ValueError):
        list(simulator.generate("nope"))
    with pytest.raises(ValueError):
        simulator.count("calm", preset="nope")


def test_deterministic_per_seed():
    a = [schemas.encode(e.msg) for e in simulator.generate("calm", seed=7, preset="fast")]
    b = [schemas.encode(e.msg) for e in simulator.generate("calm", seed=7, preset="fast")]
    c = [schemas.encode(e.msg) for e in simulator.generate("calm", seed=8, preset="fast")]
    assert a == b
    assert a != c and len(a) == len(c)


@pytest.mark.parametrize("name", sorted(simulator.SCENARIOS))
def test_time_ordered_counted_and_in_session(runs, name):
    evs = runs[name]
    ts = [e.msg.ts_ns for e in evs]
    assert all(x <= y for x, y in zip(ts, ts[1:]))
    assert len(evs) == simulator.count(name, preset="fast")
    assert 2_000 <= len(evs) <= 10_000
    days = {s.date for s in simulator.SCENARIOS[name].sessions}
    for t in ts:
        lt = local(t)
        assert lt.date() in days and dt.time(9, 30) <= lt.time() <= dt.time(16, 0)
    assert {e.key for e in evs} == {"SPX"}


def test_demo_size():
    for name in simulator.SCENARIOS:
        assert 20_000 <= simulator.count(name) <= 60_000


@pytest.mark.parametrize("name", sorted(simulator.SCENARIOS))
def test_every_message_passes_the_real_parsers(runs, name):
    for e in runs[name]:
        assert type(e.msg) is schemas.MESSAGE_TYPES[e.kind]
        assert e.msg.underlying == "SPX"
        assert schemas.PARSERS[e.kind](schemas.encode(e.msg)) == e.msg


# ----------------------------------------------------------------------------- quotes


@pytest.mark.parametrize("name", sorted(simulator.SCENARIOS))
def test_quotes_sane(runs, name):
    snaps = snapshots(runs[name])
    assert len(snaps) == 8  # 4 per session with the fast preset
    for ts, chain in snaps.items():
        for ex, sides in chain.items():
            c, p = sides["C"], sides["P"]
            assert np.array_equal(c[:, 0], p[:, 0])
            for q in (c, p):
                assert (q[:, 1] >= 0).all() and (q[:, 1] <= q[:, 2]).all() and (q[:, 2] > 0).all()
                assert (np.diff(q[:, 0]) > 0).all()
            cm, pm = (c[:, 1] + c[:, 2]) / 2, (p[:, 1] + p[:, 2]) / 2
            # calls decrease and puts increase in strike, on both sides of the book
            assert (np.diff(c[:, 1]) <= 1e-9).all() and (np.diff(c[:, 2]) <= 1e-9).all()
            assert (np.diff(p[:, 1]) >= -1e-9).all() and (np.diff(p[:, 2]) >= -1e-9).all()
            assert (np.diff(cm) <= 1e-9).all() and (np.diff(pm) >= -1e-9).all()
            # tick sizes: 0.05 under 3.00, 0.10 from 3.00
            for px in np.concatenate([c[:, 1:], p[:, 1:]]).ravel():
                tick = 0.05 if px < 3.0 else 0.10
                assert abs(px / tick - round(px / tick)) < 1e-6, px
            # within the VIX windows both wings end in (at least) two zero bids (Cboe cut-off)
            if ex - ts > 37 * 86_400 * 10**9:
                continue
            assert c[-1, 1] == 0 and c[-2, 1] == 0, (ts, ex)
            assert p[0, 1] == 0 and p[1, 1] == 0, (ts, ex)


def test_put_skew_and_spreads():
    sc = simulator.SCENARIOS["election-2024"]
    o, _ = simulator.session_bounds_ns(dt.date(2024, 11, 5))
    ex = simulator.settlement_ts_ns(dt.date(2024, 12, 6), "SPXW")
    k = np.array([5200.0, 5500.0, 5725.0, 6000.0])
    levels = {"VIX9D": 25.6, "VIX": 21.6, "VIX3M": 20.6}
    p, iv = simulator.chain_prices(sc, o, 5722.43, levels, np.full(4, ex), k, np.array([False] * 3 + [True]))
    assert iv[0] > iv[1] > iv[2] > iv[3]  # put skew
    assert 0.15 < iv[2] < 0.22  # ATM below the 21.6 VIX (the var swap carries the skew)
    bid, ask = simulator.quote_from_price(p)
    assert ((ask - bid) <= np.maximum(0.10, 0.06 * p)).all()


# ----------------------------------------------------------------------------- scenarios


def test_election_collapse(runs):
    evs = runs["election-2024"]
    d1, d2 = dt.date(2024, 11, 5), dt.date(2024, 11, 6)
    v, v9, v3, spx = (closes(evs, s) for s in ("VIX", "VIX9D", "VIX3M", "SPX"))
    assert v[d1] == pytest.approx(20.49, abs=0.02) and v[d2] == pytest.approx(16.27, abs=0.05)
    assert v[d2] / v[d1] - 1 <= -0.15
    assert v9[d1] > v[d1] > v3[d1]  # inverted: event premium in the short end
    assert v9[d2] < v[d2] < v3[d2]  # premium gone: contango
    assert spx[d1] == pytest.approx(5782.76, abs=0.01) and spx[d2] == pytest.approx(5929.04, abs=0.01)
    assert spx[d2] / spx[d1] - 1 == pytest.approx(0.0253, abs=0.001)
    first_d2 = next(e.msg.price for e in evs
                    if e.kind == "index_tick" and e.msg.symbol == "SPX" and local(e.msg.ts_ns).date() == d2)
    assert first_d2 / spx[d1] - 1 > 0.012  # overnight gap up


def test_calm_is_not_a_collapse(runs):
    evs = runs["calm"]
    v, spx = closes(evs, "VIX"), closes(evs, "SPX")
    (d1, v1), (d2, v2) = sorted(v.items())
    assert 14.0 <= v1 <= 15.5 and 14.0 <= v2 <= 15.5
    assert abs(v2 / v1 - 1) < 0.05
    assert abs(spx[d2] / spx[d1] - 1) < 0.005
    for e in evs:
        if e.kind == "index_tick" and e.msg.symbol == "VIX":
            assert 13.0 < e.msg.price < 16.5


def test_selloff_spikes(runs):
    v = sorted(closes(runs["selloff"], "VIX").items())
    assert v[1][1] / v[0][1] - 1 > 0.5


# ----------------------------------------------------------------------------- calendar


def test_settlement_times():
    exps = simulator.list_expiries(dt.date(2024, 11, 5), simulator.PRESETS["demo"])
    seen = set()
    for e in exps:
        t = local(e.ts_ns)
        assert t.date() == e.date
        third_friday = e.date.weekday() == 4 and 15 <= e.date.day <= 21
        if e.root == "SPX":
            assert third_friday and (t.hour, t.minute) == (9, 30)  # AM-settled standard monthly
        else:
            early = e.date == dt.date(2024, 11, 29)  # day after Thanksgiving: 13:00 close
            assert (t.hour, t.minute) == ((13, 0) if early else (16, 0))
        seen.add((e.date, e.root))
    assert (dt.date(2024, 11, 5), "SPXW") in seen  # 0DTE
    assert {(dt.date(2024, 12, 20), "SPX"), (dt.date(2024, 12, 20), "SPXW")} <= seen
    assert (dt.date(2025, 1, 17), "SPX") in seen  # ~3 months out
    assert max(e.date for e in exps) <= dt.date(2025, 2, 14)


def test_quoted_expiries_are_listed_and_alive(runs):
    evs = runs["election-2024"]
    for e in evs:
        if e.kind == "option_quote":
            assert e.msg.expiry_ts_ns - e.msg.ts_ns >= simulator.MIN_LIFE_NS


# ----------------------------------------------------------------------------- open interest


def test_open_interest_shape(runs):
    evs = runs["election-2024"]
    oi = [e.msg for e in evs if e.kind == "open_interest"]
    opens = {simulator.session_bounds_ns(s.date)[0] for s in simulator.SCENARIOS["election-2024"].sessions}
    assert {m.ts_ns for m in oi} == opens  # once per session, at the open
    calls = sum(m.open_interest for m in oi if m.right == "C")
    puts = sum(m.open_interest for m in oi if m.right == "P")
    assert 1.2 < puts / calls < 3.0
    big = simulator.list_expiries(dt.date(2024, 11, 5), simulator.PRESETS["demo"])
    demo = [e.msg for e in simulator.generate("election-2024", preset="demo", max_strikes=0,
                                              chain_every_s=1e6, tick_every_s=1e6)
            if e.kind == "open_interest"]
    assert big
    r100 = np.mean([m.open_interest for m in demo if m.strike % 100 == 0 and abs(m.strike - 5750) < 300])
    r5 = np.mean([m.open_interest for m in demo if m.strike % 25 != 0 and abs(m.strike - 5750) < 300])
    assert r100 > 2.5 * r5
    # persistence: the same contract's OI changes little from day 1 to day 2
    by = defaultdict(list)
    for m in demo:
        by[(m.expiry_ts_ns, m.strike, m.right)].append(m.open_interest)
    pairs = np.array([v for v in by.values() if len(v) == 2 and min(v) > 100], dtype=float)
    assert len(pairs) > 100 and np.median(np.abs(np.log(pairs[:, 1] / pairs[:, 0]))) < 0.15


# ----------------------------------------------------------------------------- VIX consistency


@pytest.mark.parametrize("name", sorted(simulator.SCENARIOS))
def test_published_vix_matches_cboe_method_on_the_chain(runs, name):
    sc = simulator.SCENARIOS[name]
    ticks = {(e.msg.symbol, e.msg.ts_ns): e.msg.price for e in runs[name] if e.kind == "index_tick"}
    quotes = defaultdict(list)
    for e in runs[name]:
        if e.kind == "option_quote":
            quotes[e.msg.ts_ns].append(e.msg)
    ok = 0
    for ts, qs in quotes.items():
        for spec in (vix.VIX, vix.VIX9D):
            got = vix.vix_batch([q.expiry_ts_ns for q in qs], [q.strike for q in qs], [q.right for q in qs],
                                [q.bid for q in qs], [q.ask for q in qs], ts, rate=sc.rate, spec=spec)
            if got.ok:
                ok += 1
                assert got.value == pytest.approx(ticks[(spec.name, ts)], abs=1.0 + 0.02 * got.value), \
                    (name, spec.name, ts)
            else:  # only the Friday-only bracketing gaps of vix.py, never a truncated strip
                assert got.reason == "no_bracketing_expiries", (name, spec.name, ts, got.reason)
    assert ok >= 8


# ----------------------------------------------------------------------------- malformed


def test_malformed_reasons_match_the_real_parsers():
    cases = simulator.malformed(seed=1, n=60)
    assert len(cases) == 60
    reasons = {r for _, _, r in cases}
    assert {"malformed_json", "not_an_object", "unknown_schema_version", "missing_field", "bad_symbol",
            "wrong_type", "bad_timestamp", "non_positive_price", "negative_price", "crossed_quote",
            "unknown_right", "bad_expiry", "negative_count"} <= reasons
    for kind, raw, reason in cases:
        assert isinstance(raw, bytes)
        with pytest.raises(InvalidMessage) as exc:
            schemas.PARSERS[kind](raw)
        assert exc.value.reason == reason, (kind, raw, reason, exc.value)
    assert simulator.malformed(1, 10) == simulator.malformed(1, 10)


def test_no_nan_prices(runs):
    for e in runs["selloff"]:
        if e.kind == "option_quote":
            assert math.isfinite(e.msg.bid) and math.isfinite(e.msg.ask)


@pytest.mark.parametrize("name", sorted(simulator.SCENARIOS))
def test_model_surface_has_no_static_arbitrage(name):
    """Model (pre-rounding) prices: calls decreasing and convex in strike; total implied variance
    non-decreasing in expiry at fixed forward moneyness (no calendar arbitrage)."""
    sc = simulator.SCENARIOS[name]
    for ss in sc.sessions:
        o, c = simulator.session_bounds_ns(ss.date)
        exps = simulator.list_expiries(ss.date, simulator.PRESETS["demo"])
        for now, i, spot in ((o, 0, ss.spx[0]), (c - 3600 * 10**9, 1, ss.spx[1])):
            levels = {"VIX9D": ss.vix9d[i], "VIX": ss.vix[i], "VIX3M": ss.vix3m[i]}
            alive = [e for e in exps if e.ts_ns - now >= simulator.MIN_LIFE_NS]
            m = np.linspace(-0.25, 0.12, 149)  # ln(K/F)
            w_prev = np.zeros_like(m)
            for e in sorted(alive, key=lambda e: e.ts_ns):
                t = (e.ts_ns - now) / simulator.YEAR_NS
                fwd = spot * math.exp((sc.rate - sc.div_yield) * t)
                k = fwd * np.exp(m)
                p, iv = simulator.chain_prices(sc, now, spot, levels, np.full(len(k), e.ts_ns), k,
                                               np.ones(len(k), bool))
                assert (np.diff(p) <= 1e-9).all()
                slope = np.diff(p) / np.diff(k)
                assert (np.diff(slope) >= -1e-9).all(), (name, e)
                w = iv * iv * t
                assert (w >= w_prev - 1e-12).all(), (name, e)
                w_prev = w
