"""`streamer backtest` end to end on the real daily files: events, schema, PNG, and the 2024-11-06 firing."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, require_shared_data
from streamer.cli import main
from streamer.schemas import event_id, parse_trigger_event

DATA = require_shared_data(SHARED_DATA)


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return DATA


def test_backtest_command_fires_on_election_day(data_dir, tmp_path, capsys):
    ev, png = tmp_path / "ev.jsonl", tmp_path / "r.png"
    rc = main(["backtest", "--data-dir", str(data_dir), "--from", "2024-01-01", "--to", "2024-12-31",
               "--events", str(ev), "--png", str(png), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "events per rule per year" in out and "largest |systematic flow| days" in out
    events = [parse_trigger_event(line) for line in ev.read_bytes().splitlines()]
    assert events, "no events in 2024"
    for e in events:   # deterministic ids, same schema as the live topic
        assert e.event_id == event_id(e.rule, e.underlying, e.ts_ns, e.input_seq)
    nov6 = {e.rule: e for e in events if e.ts_ns == 1730926800 * 10**9}
    assert "election_vol_collapse" in nov6
    e = nov6["election_vol_collapse"]
    assert e.direction == "buy" and e.severity == "critical"
    assert abs(e.inputs["vix_change_ratio"] - (16.27 / 20.49 - 1)) < 1e-12
    assert e.inputs["vix_change_pct_rank"] < 0.005
    assert "leveraged_etf_close_buying" in nov6
    assert png.stat().st_size > 50_000 and png.read_bytes()[:4] == b"\x89PNG"
    # rare on ordinary days: the vol-collapse rule fires a handful of times in 2024
    assert sum(e.rule == "election_vol_collapse" for e in events) <= 5


def test_backtest_rejects_bad_rules_file(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "x"\ndirection = "buy"\nwhen = { signal = "no_such_signal", op = ">", value = 1 }\n')
    rc = main(["backtest", "--data-dir", str(data_dir), "--rules", str(bad), "--png", "", "--no-progress",
               "--events", str(tmp_path / "e.jsonl")])
    assert rc == 2
    assert "rule 'x'" in capsys.readouterr().err


# ------------------------------------------------------------ 2016-2026: notionals and rule statistics


@pytest.fixture(scope="module")
def chains(data_dir):
    """(static proxy, {date: chain dated that session}) as the backtest command loads them."""
    from streamer import backtest as bt
    return (bt.load_chain(bt.default_proxy_paths(data_dir)),
            {d: bt.load_chain(ps) for d, ps in bt.dated_chain_paths(data_dir).items()})


@pytest.fixture(scope="module")
def full_run(data_dir, chains):
    from streamer import backtest as bt
    from streamer.core.flows import FlowConfig
    from streamer.core.rules import RuleSet
    from streamer.history import load_history

    cfg = FlowConfig.default()
    h = load_history(data_dir, underlyings=cfg.leveraged_etf.symbols)
    proxy, dated = chains
    seed = bt.vix_seed_closes(h.sources["vix"], h.dates[0], cfg.vix_rank_window_days)
    rules = RuleSet.default()
    res = bt.run_backtest(h, config=cfg, rules=rules, proxy=proxy, dated=dated, vix_seed=seed, start="2016-01-01")
    return res, rules


def test_no_buy_with_a_notional_at_or_below_zero_2016_2026(full_run):
    res, rules = full_run
    assert len(res.events) > 100
    for e, d in zip(res.events, res.event_dates):
        n = e.estimated_notional_usd
        if e.direction == "buy":
            assert n is not None and math.isfinite(n) and n > 0, (d, e.rule, n)
        # the notional is the sum of the terms the trigger names
        terms = {k: v for k, v in e.inputs.items() if k.startswith("notional:")}
        assert terms and math.isclose(n, sum(v for v in terms.values() if v is not None), rel_tol=1e-12)
        for k in terms:
            assert k[len("notional:"):] in e.reason
    # one event's dollars are not reported twice: rules firing together name disjoint flows
    by_day: dict[str, list] = {}
    for e, d in zip(res.events, res.event_dates):
        by_day.setdefault(d, []).append(e)
    for d, evs in by_day.items():
        names = [k for e in evs for k in e.inputs if k.startswith("notional:")]
        assert len(names) == len(set(names)), d
    # 2024-11-06: the implied-vol collapse reports the flows implied vol drives, vanna + charm
    nov6 = [e for e, d in zip(res.events, res.event_dates) if d == "2024-11-06" and e.rule == "election_vol_collapse"]
    assert len(nov6) == 1
    assert set(k for k in nov6[0].inputs if k.startswith("notional:")) == {
        "notional:flow_dealer_vanna_usd", "notional:flow_dealer_charm_usd"}


def test_rule_statistics_against_a_direct_count(full_run):
    from streamer.backtest import rule_statistics
    res, _ = full_run
    stats = {s.rule: s for s in rule_statistics(res)}
    w = res.window()
    spx = res.series["spx_last"]
    years = (w.stop - w.start) / 252
    for rule, st in stats.items():
        days = [res.dates.index(d) for e, d in zip(res.events, res.event_dates) if e.rule == rule]
        assert st.events == len(days) and math.isclose(st.per_year, len(days) / years)
        near = [b for a, b in zip(days, days[1:]) if b - a <= 10]
        assert st.clustered_share == len(near) / len(days)
        for k in (1, 5, 21):
            r = [spx[i + k] / spx[i] - 1 for i in days if i + k < len(spx)]
            assert st.fwd_n[k] == len(r)
            if r:
                assert math.isclose(st.fwd_mean[k], sum(r) / len(r), rel_tol=1e-9)
            allr = [spx[i + k] / spx[i] - 1 for i in range(w.start, w.stop) if i + k < len(spx)]
            assert math.isclose(st.fwd_base[k], sum(allr) / len(allr), rel_tol=1e-9)


def test_backtest_goes_through_the_engine_and_records_the_catalogue(full_run, data_dir, chains):
    """The backtest drives UnderlyingEngine.ingest: its columns are the signal catalogue expanded for the
    series it feeds, its events are the engine's (input_seq = inputs the engine applied), and the bond
    closes reach risk parity through the engine."""
    from streamer.core.signals import SIGNALS

    res, _ = full_run
    eng = res.engine
    assert eng is not None and res.book is eng.flows
    assert set(res.series) == set(eng.catalogue())
    declared = {s.name for s in SIGNALS}
    assert {"gex_usd_per_pct", "flow_dealer_vanna_usd", "vix9d_last"} <= set(res.series)
    assert "spot" in declared and not math.isnan(res.series["spot"][-1])
    assert eng.n_inputs >= 4 * len(res.dates)          # SPX, VIX, bond (+ VIX9D/VIX3M) closes per day
    assert max(e.input_seq for e in res.events) <= eng.n_inputs
    alloc = res.series["risk_parity_equity_alloc_ratio"][res.window()]
    assert np.isfinite(alloc).mean() > 0.95             # the bond leg is fed: risk parity runs
    # the flow models hold the day's exposures when the rules run: the proxy chain's, at the previous close
    from streamer.history import load_history
    i = res.dates.index("2024-11-06")
    proxy, _ = chains
    r = res.series["spx_last"][i - 1] / proxy.spot
    g, v, c = proxy.exposures("naive")
    assert res.series["dealer_gex_usd_per_pct"][i] == g * r * r
    assert res.series["dealer_vanna_usd_per_vol_pt"][i] == v * r
    gex = load_history(data_dir).extra["gex"]          # SqueezeMetrics' GEX is never mixed in
    assert res.series["dealer_gex_usd_per_pct"][i] != gex[i - 1]
    # the funds' own benchmarks reach the flow models through the engine: 2024-11-06 NDX close, not beta x SPX
    assert res.series["ndx_last"][i] == load_history(data_dir, underlyings=["NDX"]).underlyings["NDX"][i]
    assert res.book.config.leveraged_etf.symbols and {"ndx_last", "tsla_change_ratio"} <= set(res.series)


def test_dealer_figures_come_from_one_chain_and_one_positioning(full_run, data_dir, chains):
    """Each day's dealer GEX, vanna and charm come from one chain signed by one positioning model: a chain
    dated the previous session (dealer_basis 0) on the days after the shared full SPX snapshots, the static
    proxy scaled to the previous close (dealer_basis 1) on every other day; the vanna/charm flows are the
    full revaluation under the day's VIX9D/VIX/VIX3M close-to-close move (dealer_reval.reval_flows)."""
    from streamer.core.dealer_reval import dealer_signs, reval_flows
    from streamer.history import load_history

    res, _ = full_run
    proxy, dated = chains
    assert set(dated) == {"2023-09-14", "2024-01-05", "2025-01-06"}   # the 2024-11-08 ATM subset is left out
    h = load_history(data_dir)
    basis = res.series["dealer_basis"]
    after = {res.dates[res.dates.index(d) + 1]: d for d in dated}
    for i in range(1, len(res.dates)):
        assert basis[i] == (0.0 if res.dates[i] in after else 1.0), res.dates[i]
    for day in ("2024-11-06", *after):
        i = res.dates.index(day)
        ch = dated.get(res.dates[i - 1], proxy)
        s = ch.spot if ch is not proxy else h.spx[i - 1]
        k = ch.strike * (s / ch.spot)
        chg = tuple(x[i] - x[i - 1] for x in (h.extra["vix9d"], h.vix, h.extra["vix3m"]))
        sign = dealer_signs("naive", ch.expiry_ts_ns, k, ch.is_call, s, ch.asof_ts_ns)
        f = reval_flows(ch.expiry_ts_ns, k, ch.is_call, ch.iv, ch.open_interest, sign, s, ch.asof_ts_ns,
                        ch.rate, ch.div_yield, term_change_pts=chg,
                        horizon_days=res.book.config.dealer.charm_horizon_days)
        assert res.series["flow_dealer_vanna_usd"][i] == f.total("vanna_usd"), day
        assert res.series["flow_dealer_charm_usd"][i] == f.total("charm_usd"), day
    # the summary says which days are proxies
    from streamer.backtest import summary
    text = summary(res)
    assert "PROXY on" in text and "dated the previous session on 3 day(s)" in text
