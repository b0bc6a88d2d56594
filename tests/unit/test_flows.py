"""Flow models vs batch recomputation from scratch (numpy), on synthetic and real SPX history."""
from __future__ import annotations

import math
import os
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
        expect = sum(f.aum_usd * f.leverage * (f.leverage - 1) * dict(CFG.leveraged_etf.beta_to_spx)[f.index]
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
