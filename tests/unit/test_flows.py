"""Flow models vs batch recomputation from scratch (numpy), on synthetic and real SPX history."""
from __future__ import annotations

import math
import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from streamer.core import realized
from streamer.core.flows import (ConfigError, FlowBook, FlowConfig, RankHistory, leveraged_etf_flow,
                                 vol_control_exposure)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CI = os.environ.get("CI") == "true"
CFG = FlowConfig.default()


def _data(name: str) -> Path:
    p = DATA / name
    if not p.exists():
        if CI:
            pytest.fail(f"{p} missing under CI")
        pytest.skip(f"{p} not present")
    return p


def _spx_closes():
    from streamer.history import read_daily
    s = read_daily(_data("spx_daily_ohlc_2015-01-02_2026-02-27.csv"), "close")
    return s.dates, s.values


def _batch_vc_exposure(closes: np.ndarray, fam) -> np.ndarray:
    """Applied exposure per close from scratch: batch vols, min(cap, target/max), shifted by lag."""
    vols = np.vstack([realized.close_to_close_vol_batch(closes, w, fam.method) for w in fam.windows_days])
    v = vols.max(axis=0)
    with np.errstate(invalid="ignore"):
        tgt = np.where(v > 0, np.minimum(fam.cap, fam.target_vol / np.where(v > 0, v, 1.0)), np.nan)
    out = np.full(len(closes), np.nan)
    out[fam.lag_days:] = tgt[: len(closes) - fam.lag_days]
    return out


def test_vol_control_matches_batch_on_real_spx():
    dates, c = _spx_closes()
    c = c[:600]
    fb = FlowBook()
    got = []
    for d, x in zip(dates, c):
        fb.on_daily_close(d, x, 20.0)
        got.append([e for _, _, e in fb.vol_control.family_values()])
    got = np.array(got)
    for j, fam in enumerate(CFG.vol_control.families):
        ref = _batch_vc_exposure(c, fam)
        ok = ~np.isnan(ref)
        assert np.array_equal(ok, ~np.isnan(got[:, j]))
        np.testing.assert_allclose(got[ok, j], ref[ok], rtol=1e-9)


def test_vol_control_projection_equals_feeding_the_path():
    """project() on copies == a fresh book fed the history plus the scenario path; the live book is untouched."""
    dates, c = _spx_closes()
    c = c[:400]
    fb = FlowBook()
    for d, x in zip(dates, c):
        fb.on_daily_close(d, x, 20.0)
    before = fb.vol_control.to_state()
    for sc in CFG.vol_control.scenarios:
        path = fb.project_vol_control(sc.name, 42)
        assert fb.vol_control.to_state() == before
        p = c[-1]
        ext = list(c)
        rets = sc.returns(20.0)      # an implied-vol scenario: +-VIX/100/sqrt(252) at the book's VIX
        for k in range(42):
            p *= math.exp(rets[k % len(rets)])
            ext.append(p)
        ext = np.array(ext)
        e_now = sum(f.aum_usd * _batch_vc_exposure(c, f)[-1] for f in CFG.vol_control.families)
        e_path = sum(f.aum_usd * _batch_vc_exposure(ext, f)[len(c):] for f in CFG.vol_control.families)
        np.testing.assert_allclose(path, e_path - e_now, rtol=1e-8, atol=1e-3)


def test_big_up_day_cuts_realized_vol_exposure_then_rolls_out():
    """DOMAIN mechanics: a +2.5% day raises short-window vol (exposure falls next close) and the
    buying comes once it leaves the windows: the flat-tape path is negative early, positive late."""
    fb = FlowBook()
    p = 4000.0
    for i in range(130):
        p *= math.exp(0.006 * (-1) ** i)
        fb.on_daily_close(f"2020-{1 + i // 28:02d}-{1 + i % 28:02d}", p, 20.0)
    fb.on_daily_close("2020-12-01", p * 1.025, 16.0)
    path = fb.project_vol_control("flat", 70)
    assert path[0] < 0
    assert path[-1] > path[0]
    assert path[-1] > 0


def test_risk_parity_matches_batch_on_real_spx_and_tlt():
    from streamer.history import load_history
    _data("tlt_daily_adjusted_ohlcv.csv")
    h = load_history(DATA)
    n = 400
    fb = FlowBook()
    allocs = []
    for i in range(n):
        fb.on_daily_close(h.dates[i], h.spx[i], h.vix[i], h.bond[i])
        allocs.append(fb.risk_parity.alloc)
    re = np.diff(np.log(h.spx[:n]))
    rb = np.diff(np.log(h.bond[:n]))
    w = CFG.risk_parity.vol_window_days
    i = n - 1   # target at close n-2 is applied at close n-1 (lag 1)
    a, b = re[i - 1 - w: i - 1], rb[i - 1 - w: i - 1]
    se, sb = np.sqrt(252 * np.mean(a**2)), np.sqrt(252 * np.mean(b**2))
    rho = np.mean(a * b) / np.sqrt(np.mean(a**2) * np.mean(b**2))
    we = (1 / se) / (1 / se + 1 / sb)
    pv = np.sqrt(we**2 * se**2 + (1 - we)**2 * sb**2 + 2 * we * (1 - we) * rho * se * sb)
    ref = min(CFG.risk_parity.max_leverage, CFG.risk_parity.target_vol / pv) * we
    assert math.isclose(allocs[-1], ref, rel_tol=1e-9)


def test_cta_signals_and_flip_levels_on_real_spx():
    dates, c = _spx_closes()
    c = c[:700]
    fb = FlowBook()
    for d, x in zip(dates, c):
        fb.on_daily_close(d, x, 20.0)
    cta = fb.cta
    comp = cta.components()
    assert comp["ma"] == np.sign(c[-20:].mean() - c[-120:].mean())
    for lab, d in CFG.cta.momentum_days:
        assert comp[lab] == np.sign(np.log(c[-1] / c[-1 - d]))
    flips = cta.flip_levels()
    # feeding tomorrow's close just above / below each flip level flips that component
    for lab in ("ma", "12m"):
        lvl = flips[lab]
        signs = []
        for bump in (1 + 1e-6, 1 - 1e-6):
            b2 = FlowBook.from_state(fb.to_state())
            b2.on_daily_close("2099-01-01", lvl * bump, 20.0)
            signs.append(b2.cta.components()[lab])
        assert signs[0] != signs[1], (lab, lvl, signs)


def test_leveraged_etf_formula_and_multipliers():
    # DOMAIN table: +2x -> 2, +3x -> 6, -1x -> 2, -2x -> 6, -3x -> 12
    for lev, mult in ((2, 2), (3, 6), (-1, 2), (-2, 6), (-3, 12)):
        assert leveraged_etf_flow(1.0, lev, 1.0) == mult
    # exact: the fund's exposure after rebalancing is L x NAV
    a, lev, r = 1e9, 3.0, 0.0253
    nav, expo = a * (1 + lev * r), lev * a * (1 + r)
    assert math.isclose(expo + leveraged_etf_flow(a, lev, r), lev * nav)


def test_live_intraday_updates_and_state_roundtrip():
    fb = FlowBook()
    fb.on_daily_close("2024-11-05", 5782.76, 20.49, 87.85)
    for ts, s in ((1, 5800.0), (2, 5900.0), (3, 5929.04)):
        fb.on_spot(ts, s)
        sig = fb.signals()
        # no underlying priced: every fund on its SPX-beta proxy, at its AUM of the close's date
        expect = sum(f.aum_on("2024-11-05") * f.leverage * (f.leverage - 1) * CFG.leveraged_etf.proxy_beta(f)
                     for f in CFG.leveraged_etf.funds) * (s / 5782.76 - 1)
        assert math.isclose(sig["flow_leveraged_etf_close_usd"], expect, rel_tol=1e-12)
    fb.on_vol_index(4, 16.27)
    fb.on_exposures(5, -1e9, 2e9, 1e8)
    sig = fb.signals()
    assert math.isclose(sig["flow_dealer_vanna_usd"], -2e9 * (16.27 - 20.49))
    assert math.isclose(sig["flow_dealer_gamma_usd"], 1e9 * (5929.04 / 5782.76 - 1) * 100)
    fb2 = FlowBook.from_state(fb.to_state())
    a, b = fb.signals(), fb2.signals()
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]) or (a[k] != a[k] and b[k] != b[k]) for k in a)
    assert fb.on_daily_close("2024-11-05", 1.0, 1.0) is False   # same date twice: ignored


def test_revalued_dealer_flows_replace_the_first_order_ones_until_the_close():
    """on_dealer_flows: vanna/charm are the revaluation's figures (basis reported), the total and the
    day's systematic sum use them, the state keeps them, and the next close starts from the first-order
    figures again (the revaluation measured the move to the old reference)."""
    fb = FlowBook()
    fb.on_daily_close("2024-11-05", 5782.76, 20.49, 87.85)
    fb.on_vol_index(4, 16.27)
    fb.on_spot(4, 5929.04)
    fb.on_exposures(5, -1e9, 2e9, 1e8)
    sig = fb.signals()
    assert math.isclose(sig["flow_dealer_vanna_usd"], -2e9 * (16.27 - 20.49)) and math.isnan(sig["dealer_basis"])
    assert math.isclose(sig["flow_dealer_charm_usd"], -1e8 * CFG.dealer.charm_horizon_days)
    fb.on_dealer_flows(6, 3.5e9, -2.5e8, 1.0)
    sig = fb.signals()
    assert (sig["flow_dealer_vanna_usd"], sig["flow_dealer_charm_usd"], sig["dealer_basis"]) == (3.5e9, -2.5e8, 1.0)
    assert sig["flow_dealer_total_usd"] == sig["flow_dealer_gamma_usd"] + 3.5e9
    back = FlowBook.from_state(fb.to_state())
    assert back.signals()["flow_dealer_vanna_usd"] == 3.5e9 and back.dealer.flows_ts_ns == 6
    fb.on_daily_close("2024-11-06", 5929.04, 16.27, 87.0)
    day = fb.signals()
    assert day["flow_dealer_vanna_usd"] == 3.5e9 and day["dealer_basis"] == 1.0   # the close's own view
    assert day["flow_systematic_today_usd"] == pytest.approx(
        sum(day[k] for k in ("flow_vol_control_today_usd", "flow_risk_parity_today_usd", "flow_cta_today_usd",
                             "flow_leveraged_etf_close_usd", "flow_dealer_total_usd") if day[k] == day[k]))
    fb.on_vol_index(7, 15.0)
    live = fb.signals()
    assert math.isclose(live["flow_dealer_vanna_usd"], -2e9 * (15.0 - 16.27)) and math.isnan(live["dealer_basis"])
    assert fb.dealer.flows_ts_ns == -1


def test_state_is_plain_json_with_nan_as_null_during_warm_up():
    """The book's state (NaN everywhere while warming up) is strict JSON and restores bit for bit."""
    import json

    fb = FlowBook()
    for i, (s, v) in enumerate(((5700.0, 18.0), (5750.0, 19.5), (5782.76, 20.49))):
        fb.on_daily_close(f"2024-11-0{i + 3}", s, v, 4.3)
    fb.on_spot(1, 5900.0)
    st = fb.to_state()
    blob = json.dumps(st, allow_nan=False)
    assert "null" in blob                                     # warm-up NaNs are encoded, not dropped
    back = FlowBook.from_state(json.loads(blob))
    assert json.dumps(back.to_state(), allow_nan=False) == blob


def test_rank_history_against_sort():
    rng = np.random.default_rng(1)
    xs = rng.normal(size=300)
    h = RankHistory(50)
    for i, x in enumerate(xs):
        h.push(float(x))
        win = xs[max(0, i - 49): i + 1]
        q = float(rng.normal())
        assert h.pct_rank(q) == np.mean(win <= q)
        assert h.low_rank(q) == 1 + np.sum(win < q)


def test_vix_rank_on_real_history_2024_11_06():
    """The −20.6% of 2024-11-06 ranks 2nd among 3 years of one-day VIX changes (after 2024-08-06)."""
    from streamer.history import read_daily
    v = read_daily(_data("vix_daily_ohlc_1990-2026.csv"))
    i = v.dates.index("2024-11-06")
    closes = v.values[i - 757: i]            # 756 changes before the day
    fb = FlowBook()
    fb.seed_vix_history(closes[:-1].tolist())
    fb.on_daily_close("2024-11-05", 5782.76, float(closes[-1]))
    fb.on_vol_index(1, float(v.values[i]))
    s = fb.signals()
    ch = np.diff(v.values[i - 757: i]) / v.values[i - 757: i - 1]
    assert math.isclose(s["vix_change_ratio"], v.values[i] / v.values[i - 1] - 1)
    assert s["vix_change_low_rank"] == 1 + np.sum(ch < s["vix_change_ratio"]) == 2


def test_config_validation_names_the_field():
    text = DEFAULT = Path(__file__).resolve().parents[2] / "streamer" / "config" / "flows.toml"
    t = DEFAULT.read_text().replace("target_vol = 0.10          # 10%", "target_vol = -1 # 10%", 1)
    with pytest.raises(ConfigError, match=r"vol_control.families\[0\].target_vol"):
        FlowConfig.from_toml(t)
    with pytest.raises(ConfigError, match="unknown key"):
        FlowConfig.from_toml(DEFAULT.read_text() + "\n[extra]\nx = 1\n")
    assert text.exists()


def test_exposure_helper():
    assert vol_control_exposure(0.1, float("nan"), 1.5) != vol_control_exposure(0.1, float("nan"), 1.5)


# ---------------------------------------------------------------- live vol-control re-projection

MIN = 60 * 10**9


def _warm_book(n: int = 300) -> FlowBook:
    dates, c = _spx_closes()
    fb = FlowBook()
    for d, x in zip(dates[:n], c[:n]):
        fb.on_daily_close(d, float(x), 18.0)
    return fb


def test_live_projection_equals_official_close_at_the_live_spot():
    """Intraday, with the live spot S as provisional close, the projection equals what a copy of
    the book computes after an *official* close at S (next date), shifted by that close's flow."""
    fb = _warm_book()
    fb.on_vol_index(1, 16.0)
    s_live = fb.spx_prev_close * 1.021
    fb.on_spot(2, s_live)
    live = fb.signals()
    assert live["vol_control_projection_spx"] == s_live
    ref = FlowBook.from_state(fb.to_state())
    ref.on_daily_close("2099-01-02", s_live, 16.0)
    today = ref.signals()["flow_vol_control_today_usd"]       # the flow at the provisional close
    assert math.isclose(live["flow_vol_control_next_close_usd"], today, rel_tol=1e-12)
    assert math.isclose(live["flow_vol_control_set_usd"], today, rel_tol=1e-12)   # lag 1
    for sc in CFG.vol_control.scenarios:
        path = ref.project_vol_control(sc.name, 22)
        for lab, d in CFG.vol_control.horizons_days:
            got = live[f"flow_vol_control_after_lag_{lab}_{sc.name}_usd"]
            assert math.isclose(got, path[d - 1], rel_tol=1e-9, abs_tol=1.0), (sc.name, lab)
            assert math.isclose(live[f"flow_vol_control_{lab}_{sc.name}_usd"],
                                today + (path[d - 2] if d > 1 else 0.0), rel_tol=1e-9, abs_tol=1.0)


def test_live_projection_moves_with_the_spot_and_differs_from_the_close():
    fb = _warm_book()
    at_close = fb.signals()["flow_vol_control_after_lag_1m_usd"]
    fb.on_spot(1, fb.spx_prev_close * 0.95)       # a -5% session: vol up, re-leveraging smaller
    down = fb.signals()["flow_vol_control_after_lag_1m_usd"]
    assert down < at_close


def test_reprojection_throttle_is_event_time_and_deterministic():
    fb = _warm_book()
    p0 = fb.spx_prev_close
    t0 = 1_700_000_000 * 10**9
    seen = []
    prints = [(t0, p0 * 1.01), (t0 + 4 * MIN, p0 * 0.97), (t0 + 5 * MIN - 1, p0 * 0.96),
              (t0 + 5 * MIN, p0 * 0.99), (t0 + 6 * MIN, p0 * 1.02), (t0 + 10 * MIN, p0 * 1.03)]
    twin = FlowBook.from_state(fb.to_state())
    for ts, px in prints:
        fb.on_spot(ts, px)
        twin.on_spot(ts, px)
        seen.append(fb.signals()["vol_control_projection_spx"])
        assert fb.signals() == twin.signals() or all(
            a == b or (a != a and b != b) for a, b in zip(fb.signals().values(), twin.signals().values()))
    # re-projected on the first print, then only once 5 minutes of event time have passed
    assert seen == [prints[0][1]] * 3 + [prints[3][1]] * 2 + [prints[5][1]]
    # a checkpoint mid-throttle continues identically (the throttle clock is state)
    b = FlowBook.from_state(fb.to_state())
    for book in (fb, b):
        book.on_spot(t0 + 12 * MIN, p0 * 0.9)
    assert b.signals()["vol_control_projection_spx"] == fb.signals()["vol_control_projection_spx"] == prints[5][1]
    # an official close replaces the live projection; the next print re-projects at once
    fb.on_daily_close("2099-01-02", p0 * 1.03, 17.0)
    assert fb.signals()["vol_control_projection_spx"] == p0 * 1.03
    fb.on_spot(t0 + 12 * MIN + 1, p0 * 1.035)
    assert fb.signals()["vol_control_projection_spx"] == p0 * 1.035


def test_implied_vol_scenario_path_and_config():
    sc = next(s for s in CFG.vol_control.scenarios if s.implied_vol_scale is not None)
    a = 16.0 / 100 / math.sqrt(252)
    assert sc.returns(16.0) == (a, -a)
    assert all(x != x for x in sc.returns(float("nan")))
    fb = _warm_book()
    fb.vix_last = float("nan")
    assert all(x != x for x in fb.project_vol_control(sc.name, 3))
    text = DEFAULT_TOML.read_text().replace("reproject_interval_s = 300", "reproject_interval_s = 0")
    with pytest.raises(ConfigError, match="reproject_interval_s"):
        FlowConfig.from_toml(text)


DEFAULT_TOML = Path(__file__).resolve().parents[2] / "streamer" / "config" / "flows.toml"


# ---------------------------------------------------------------- leveraged ETFs on their own underlyings

LEV = CFG.leveraged_etf
SPX_FILE = "spx_daily_ohlc_2015-01-02_2026-02-27.csv"


def _adj(symbol: str) -> dict[str, float]:
    """date -> adjusted close from ../shared/data/equities/<symbol>_daily.csv (SPX: the SPX file's close)."""
    from streamer.history import read_daily
    if symbol == "SPX":
        s = read_daily(_data(SPX_FILE), "close")
    else:
        s = read_daily(_data(f"equities/{symbol.lower()}_daily.csv"), "adj_close")
    return dict(zip(s.dates, (float(x) for x in s.values)))


def _ret(px: dict[str, float], day: str) -> float:
    ds = sorted(px)
    i = ds.index(day)
    return px[ds[i]] / px[ds[i - 1]] - 1.0


def test_every_fund_on_its_own_underlying_on_2024_11_06():
    """Fed the underlyings' real closes, each fund's flow is AUM x L(L-1) x its own benchmark's return
    (QQQ for TQQQ, SOXX for SOXL, TSLA for TSLL, ...), not beta x SPX; no fund is left on the proxy."""
    day, prev = "2024-11-06", "2024-11-05"
    spx = _adj("SPX")
    px = {s: _adj(s) for s in LEV.symbols if s not in ("NDX", "SMH")}   # NDX/SMH: QQQ/SOXX stand in
    fb = FlowBook()
    fb.on_daily_close(prev, spx[prev], 20.49, underlying_closes={s: p[prev] for s, p in px.items()})
    fb.on_daily_close(day, spx[day], 16.27, underlying_closes={s: p[day] for s, p in px.items()})
    rows = fb.leveraged_etf_breakdown()
    assert [r.fund.ticker for r in rows] == [f.ticker for f in LEV.funds]
    groups: dict[str, float] = {}
    for r in rows:
        f = r.fund
        sym = "SPX" if f.underlyings[0] == "SPX" else next(s for s in f.underlyings if s in px)
        want_r = _ret(spx, day) if sym == "SPX" else _ret(px[sym], day)
        assert (r.source, r.proxy) == (sym, False)
        assert math.isclose(r.index_return, want_r, rel_tol=1e-12)
        assert math.isclose(r.aum_usd, f.aum_on(day), rel_tol=1e-12)
        assert math.isclose(r.flow_usd, f.aum_on(day) * f.leverage * (f.leverage - 1) * want_r, rel_tol=1e-12)
        groups[f.index] = groups.get(f.index, 0.0) + r.flow_usd
    sig = fb.signals()
    for g, v in groups.items():
        assert math.isclose(sig[f"flow_leveraged_etf_{g.lower()}_usd"], v, rel_tol=1e-12)
    assert math.isclose(sig["flow_leveraged_etf_close_usd"], sum(groups.values()), rel_tol=1e-12)
    # that day TSLA (+14.8%) and COIN (+31.1%) moved far more than beta x SPX (+2.5%) says
    by_t = {r.fund.ticker: r for r in rows}
    for t in ("TSLL", "CONL"):
        assert by_t[t].index_return > 2 * LEV.proxy_beta(by_t[t].fund) * _ret(spx, day)


def test_missing_underlying_falls_back_to_the_spx_beta_proxy_and_never_spans_two_sessions():
    fb = FlowBook()
    fb.on_daily_close("2024-11-01", 5700.0, 20.0, underlying_closes={"QQQ": 480.0})
    fb.on_daily_close("2024-11-04", 5712.0, 21.0)                      # no QQQ close that day
    tq = next(r for r in fb.leveraged_etf_breakdown() if r.fund.ticker == "TQQQ")
    r_spx = 5712.0 / 5700.0 - 1
    assert tq.proxy and math.isclose(tq.index_return, LEV.proxy_beta(tq.fund) * r_spx)
    fb.on_daily_close("2024-11-05", 5782.76, 20.49, underlying_closes={"QQQ": 487.79})
    tq = next(r for r in fb.leveraged_etf_breakdown() if r.fund.ticker == "TQQQ")
    assert tq.proxy   # no QQQ close on 11-04: no one-day return on 11-05 (480 -> 487.79 spans two sessions)
    fb.on_spot(1, 5929.04)
    fb.on_underlying(1, "QQQ", 501.04)
    fb.on_underlying(0, "QQQ", 1.0)                                    # older print: ignored
    fb.on_underlying(2, "AAPL", 1.0)                                   # no fund on it: ignored
    tq = next(r for r in fb.leveraged_etf_breakdown() if r.fund.ticker == "TQQQ")
    assert (tq.source, tq.proxy) == ("NDX", False) or (tq.source, tq.proxy) == ("QQQ", False)
    assert math.isclose(tq.index_return, 501.04 / 487.79 - 1)
    # the live print is restored from a checkpoint and continues identically
    fb2 = FlowBook.from_state(fb.to_state())
    assert fb2.signals()["flow_leveraged_etf_ndx_usd"] == fb.signals()["flow_leveraged_etf_ndx_usd"]
    fb.on_underlying(3, "QQQ", 499.0), fb2.on_underlying(3, "QQQ", 499.0)
    assert fb2.signals()["flow_leveraged_etf_ndx_usd"] == fb.signals()["flow_leveraged_etf_ndx_usd"]


def test_preferred_underlying_wins_when_both_are_priced():
    fb = FlowBook()
    fb.on_daily_close("2024-11-05", 5782.76, 20.49, underlying_closes={"NDX": 20227.46, "QQQ": 487.79})
    fb.on_daily_close("2024-11-06", 5929.04, 16.27, underlying_closes={"NDX": 20781.33, "QQQ": 501.04})
    tq = next(r for r in fb.leveraged_etf_breakdown() if r.fund.ticker == "TQQQ")
    assert tq.source == LEV.funds[[f.ticker for f in LEV.funds].index("TQQQ")].underlyings[0] == "NDX"
    assert math.isclose(tq.index_return, 20781.33 / 20227.46 - 1)


def test_aum_follows_its_dated_anchors_and_funds_do_not_exist_before_inception():
    for f in LEV.funds:
        h = f.aum_history
        for d, a, src in h:
            assert f.aum_on(d) == a and src in dict(LEV.aum_sources)
        for (d0, a0, _), (d1, a1, _) in zip(h, h[1:]):       # half-way between anchors: their mean
            x0, x1 = date.fromisoformat(d0).toordinal(), date.fromisoformat(d1).toordinal()
            if (x1 - x0) % 2 == 0:
                assert math.isclose(f.aum_on(date.fromordinal((x0 + x1) // 2).isoformat()), (a0 + a1) / 2)
        if f.inception:
            assert f.aum_on("2016-06-01") == 0.0 < f.aum_on("2024-11-06")
    fb = FlowBook()
    fb.on_daily_close("2016-06-01", 2099.33, 14.2)
    fb.on_daily_close("2016-06-02", 2105.26, 13.63)
    sig = fb.signals()
    assert sig["flow_leveraged_etf_single_usd"] == 0.0              # no single-stock fund in 2016
    total16 = sum(f.aum_on("2016-06-02") for f in LEV.funds)
    total24 = sum(f.aum_on("2024-11-06") for f in LEV.funds)
    assert total16 < 0.3 * total24                                   # 2016 is not judged with 2024 sizes


def test_leverage_arithmetic_matches_the_funds_own_daily_returns():
    """Each fund with a price file tracks L x its mapped underlying day by day (2016-2025): the median
    absolute residual is a fraction of a percent. A wrong leverage sign, multiple or underlying fails."""
    for f in LEV.funds:
        p = DATA / "equities" / f"{f.ticker.lower()}_daily.csv"
        if not p.exists():
            continue
        fund = _adj(f.ticker)
        sym = "SPX" if f.underlyings[0] == "SPX" else next(
            s for s in f.underlyings if (DATA / "equities" / f"{s.lower()}_daily.csv").exists())
        und = _adj(sym)
        days = sorted(d for d in fund if d in und and "2016-01-01" <= d <= "2025-12-31")
        fr = np.array([fund[b] / fund[a] - 1 for a, b in zip(days, days[1:])])
        ur = np.array([und[b] / und[a] - 1 for a, b in zip(days, days[1:])])
        resid = np.abs(fr - f.leverage * ur)
        assert len(days) > 100, f.ticker
        assert np.median(resid) < 0.005, (f.ticker, float(np.median(resid)))
        wrong = np.median(np.abs(fr - (f.leverage - np.sign(f.leverage)) * ur))   # one notch of leverage off
        assert np.median(resid) < wrong, f.ticker


def test_leveraged_etf_config_validation_names_the_field():
    base = (Path(__file__).resolve().parents[2] / "streamer" / "config" / "flows.toml").read_text()
    bad_src = base.replace('["2024-11-05", 0.6e9, "ref2024"]', '["2024-11-05", 0.6e9, "nowhere"]', 1)
    with pytest.raises(ConfigError, match=r"leveraged_etf.funds.SPXU.aum_history"):
        FlowConfig.from_toml(bad_src)
    bad_und = base.replace('underlying = ["TSLA"]', 'underlying = ["XYZ"]', 1)
    with pytest.raises(ConfigError, match="TSLL.*XYZ.*beta_to_spx"):
        FlowConfig.from_toml(bad_und)
    bad_date = base.replace('inception = "2022-08-09"', 'inception = "2022-13-09"', 1)
    with pytest.raises(ConfigError, match="TSLL.inception"):
        FlowConfig.from_toml(bad_date)
