"""The engine's one entry point, driven as the worker drives it (streamer.engine.run_offline): results do not
depend on how the input was fetched, a checkpoint restores the engine, conflation keeps the latest quote."""
from __future__ import annotations

import math

import numpy as np
import pytest

from streamer import schemas, simulator
from streamer.engine import UnderlyingEngine, index_table, pack, run_offline, unpack
from streamer.pipeline import INDEX, OPEN_INTEREST, QUOTES, Batch, decode_chunk
from streamer.settings import Settings

NS = 1_000_000_000
KIND = {"index_tick": INDEX, "daily_close": INDEX, "option_quote": QUOTES, "open_interest": OPEN_INTEREST}


def raw(events) -> list[tuple[int, bytes, bytes]]:
    return [(KIND[e.kind], e.key.encode(), schemas.encode(e.msg)) for e in events]


@pytest.fixture(scope="module")
def events():
    return list(simulator.generate("election-2024", 3, preset="fast"))


@pytest.fixture(scope="module")
def whole(events):
    return run_offline(raw(events), Settings())


def encoded(msgs) -> bytes:
    return b"\n".join(schemas.encode(m) for m in msgs)


@pytest.mark.parametrize("chunk", [1, 97, 100_000])
def test_outputs_do_not_depend_on_fetch_sizes(events, whole, chunk):
    """Byte for byte: the same triggers (ids, times, notionals) and the same snapshots."""
    if chunk == 1:
        events = events[: len(events) // 3]  # one record per fetch is slow; a third of the scenario
        want_t, want_s, _ = run_offline(raw(events), Settings())
    else:
        want_t, want_s, _ = whole
    got_t, got_s, _ = run_offline(raw(events), Settings(), chunk=chunk)
    assert encoded(got_t) == encoded(want_t)
    assert encoded(got_s) == encoded(want_s)


def test_the_election_fires_and_ids_ignore_float_digits(whole):
    triggers, snaps, _ = whole
    rules = [t.rule for t in triggers]
    assert "election_vol_collapse" in rules and len(rules) == len(set(rules))
    for t in triggers:
        assert t.event_id == schemas.event_id(t.rule, t.underlying, t.ts_ns, t.input_seq)
        assert t.input_seq > 0
    assert snaps[-1].values["gex_usd_per_pct"] is not None


def test_checkpoint_restores_the_engine_bit_for_bit(events, whole):
    """Cut the input at a segment boundary mid-way through day 2, checkpoint, restore into a fresh engine,
    feed the rest: the same triggers and snapshots, byte for byte, as the uninterrupted run."""
    ts = [e.msg.ts_ns for e in events]
    boundary = (ts[len(ts) * 3 // 5] // NS + 1) * NS
    cut = next(i for i, t in enumerate(ts) if t >= boundary)
    assert all(t < boundary for t in ts[:cut]) and all(t >= boundary for t in ts[cut:])
    t1, s1, engines = run_offline(raw(events[:cut]), Settings())
    restored = {u: UnderlyingEngine.from_checkpoint(e.checkpoint(), Settings()) for u, e in engines.items()}
    assert {u: e.checkpoint() for u, e in restored.items()} == {u: e.checkpoint() for u, e in engines.items()}
    t2, s2, restored = run_offline(raw(events[cut:]), Settings(), engines=restored)
    want_t, want_s, _ = whole
    assert encoded(t1 + t2) == encoded(want_t)
    assert encoded(s1 + s2) == encoded(want_s)


def test_pack_round_trips_arrays_and_nan():
    state = {"a": np.arange(5, dtype=np.int64), "b": [1.5, math.nan, {"c": np.array([True, False])}],
             "d": np.zeros((2, 3)), "e": None, "f": "x"}
    back = unpack(pack(state))
    assert back["a"].dtype == np.int64 and back["a"].tolist() == [0, 1, 2, 3, 4]
    assert math.isnan(back["b"][1]) and back["b"][2]["c"].tolist() == [True, False]
    assert back["d"].shape == (2, 3) and back["e"] is None and back["f"] == "x"


def test_conflation_keeps_the_latest_quote_per_contract(events):
    quotes = [e for e in events if e.kind == "option_quote"][:400]
    rows = raw(quotes)
    dup = rows + rows[:150]  # the first 150 contracts quoted again, later (same values, new rows)
    vals = [v for _, _, v in dup]
    table, rej = decode_chunk(QUOTES, vals, [k for _, k, _ in dup], np.arange(len(vals), dtype=np.int64))
    assert not rej
    last = {}
    for i, (e, k, c) in enumerate(zip(table["expiry_ts_ns"].tolist(), table["strike"].tolist(),
                                      table["is_call"].tolist())):
        last[(e, k, c)] = i  # the reference: the latest row of each contract
    keep = np.array(sorted(last.values()))
    n_contracts = len({(q.msg.expiry_ts_ns, q.msg.strike, q.msg.right) for q in quotes})
    assert len(keep) == n_contracts
    assert set(keep.tolist()) >= set(range(400, 550))  # the repeats win over their earlier rows

    a, b = UnderlyingEngine("SPX", Settings()), UnderlyingEngine("SPX", Settings())
    end = max(q.msg.ts_ns for q in quotes) + NS
    fx = a.ingest(Batch("SPX", end, quotes=table))
    assert fx.n_conflated == len(dup) - n_contracts and fx.n_inputs == len(dup)
    only_last = {k: v[keep] for k, v in table.items()}
    b.ingest(Batch("SPX", end, quotes=only_last))
    assert a.chain.totals() == b.chain.totals()
    assert a.values() == b.values()


def test_late_and_repeated_ticks_change_nothing(events):
    eng = UnderlyingEngine("SPX", Settings())
    ticks = [e.msg for e in events if e.kind == "index_tick"][:200]
    rows = [(t.symbol, t.ts_ns, t.price) for t in ticks]
    eng.ingest(Batch("SPX", rows[-1][1] + NS, index=index_table(rows)))
    before = eng.values()
    eng.ingest(Batch("SPX", rows[-1][1] + 2 * NS, index=index_table(rows[:50])))  # redelivered old ticks
    assert eng.values() == before


def test_daily_closes_alone_evaluate_no_rule(events):
    closes = [e.msg for e in events if e.kind == "daily_close"]
    assert len(closes) > 100
    eng = UnderlyingEngine("SPX", Settings())
    rows = [(c.symbol, c.ts_ns, c.close, c.date) for c in closes]
    fx = eng.ingest(Batch("SPX", rows[-1][1] + NS, index=index_table(rows)))
    assert fx.triggers == [] and fx.snapshot is None and eng.n_evaluations == 0
    assert eng.flows.signals()  # the flow models did take the closes


def test_an_absurd_tick_is_held_and_changes_no_trigger(events, whole):
    """A well-typed but absurd SPX print (10× the last) mid-session: held, discarded by the next print, and
    the triggers and final analytics are those of the clean run (only the input count differs)."""
    i = next(i for i, e in enumerate(events) if e.kind == "index_tick" and e.msg.symbol == "SPX"
             and e.msg.ts_ns > events[-1].msg.ts_ns - 3 * 3600 * NS)
    bad = (INDEX, b"SPX", schemas.encode(schemas.IndexTick("SPX", "SPX", events[i].msg.ts_ns,
                                                            events[i].msg.price * 10)))
    got_t, got_s, eng = run_offline(raw(events[:i + 1]) + [bad] + raw(events[i + 1:]), Settings())
    want_t, want_s, _ = whole
    assert [(t.rule, t.ts_ns, t.estimated_notional_usd, t.inputs) for t in got_t] == \
        [(t.rule, t.ts_ns, t.estimated_notional_usd, t.inputs) for t in want_t]
    assert got_s[-1].values == want_s[-1].values and got_s[-1].input_seq == want_s[-1].input_seq + 1


def test_a_real_gap_is_taken_once_a_second_print_confirms_it():
    eng = UnderlyingEngine("SPX", Settings())
    t0 = 1730817000 * NS  # 2024-11-05 09:30 ET
    eng.ingest(Batch("SPX", t0 + NS, index=index_table([("SPX", t0, 5000.0)])))
    fx = eng.ingest(Batch("SPX", t0 + 3 * NS, index=index_table([("SPX", t0 + NS, 5600.0)])))  # +11.3%: held
    assert [o for *_, o in fx.suspect] == ["held"] and eng.series["SPX"].last == 5000.0
    fx = eng.ingest(Batch("SPX", t0 + 4 * NS, index=index_table([("SPX", t0 + 3 * NS, 5610.0)])))
    assert [o for *_, o in fx.suspect] == ["confirmed"] and eng.series["SPX"].last == 5610.0
    # the session open takes any gap
    fx = eng.ingest(Batch("SPX", t0 + 86_401 * NS, index=index_table([("SPX", t0 + 86_400 * NS, 6500.0)])))
    assert fx.suspect == [] and eng.series["SPX"].last == 6500.0


def test_no_trigger_carries_a_non_finite_number(events):
    """A rule whose inputs include a signal that turned infinite fires, but its event is withheld."""
    from streamer.core.flows import FlowBook
    from streamer.core.rules import RuleSet

    class InfiniteCta(FlowBook):
        def signals(self):
            return dict(super().signals(), flow_cta_today_usd=math.inf)

    rules = RuleSet.from_toml('[[rule]]\nname = "any_spx"\ndescription = "x"\ndirection = "buy"\n'
                              'severity = "info"\ncontext = ["flow_cta_today_usd"]\n'
                              'when = { signal = "spx_last", op = ">", value = 0 }\n')
    eng = UnderlyingEngine("SPX", Settings(), rules)
    eng.flows = InfiniteCta()
    t0 = 1730817000 * NS
    fx = eng.ingest(Batch("SPX", t0 + NS, index=index_table([("SPX", t0, 5000.0)])))
    assert fx.triggers == [] and fx.withheld == [("any_spx", "not finite: flow_cta_today_usd")]


def test_trigger_notionals_use_the_same_evaluations_exposures(events):
    """The chain's exposures reach the flow models before the flows are read: at every evaluation (a
    snapshot each) the dealer exposures the flow models hold are the chain's of that evaluation, and the
    election trigger's vanna + charm notional is the flows of that evaluation: the live chain's full
    revaluation (dealer_basis 0), not the first-order vanna x VIX change."""
    triggers, snaps, _ = run_offline(raw(events), Settings(), snapshot=True)
    with_chain = [s for s in snaps if s.values["vanna_usd_per_vol_pt"] is not None]
    assert len({s.values["vanna_usd_per_vol_pt"] for s in with_chain}) > 10   # the exposures do move
    for s in with_chain:
        v = s.values
        assert v["dealer_vanna_usd_per_vol_pt"] == v["vanna_usd_per_vol_pt"]
        assert v["dealer_charm_usd_per_day"] == v["charm_usd_per_day"]
        assert v["dealer_gex_usd_per_pct"] == v["gex_usd_per_pct"]
    at = {s.input_seq: s.values for s in snaps}
    ev = next(t for t in triggers if t.rule == "election_vol_collapse")
    v = at[ev.input_seq]
    assert v["dealer_basis"] == 0.0
    assert ev.inputs["notional:flow_dealer_vanna_usd"] == v["flow_dealer_vanna_usd"]
    first_order = -v["vanna_usd_per_vol_pt"] * (v["vix_last"] - v["vix_prev_close"])
    assert ev.inputs["notional:flow_dealer_vanna_usd"] != pytest.approx(first_order, rel=1e-6)
    assert ev.inputs["notional:flow_dealer_charm_usd"] == v["flow_dealer_charm_usd"]
    assert ev.estimated_notional_usd == pytest.approx(v["flow_dealer_vanna_usd"] + v["flow_dealer_charm_usd"],
                                                      rel=1e-12)


@pytest.mark.parametrize("positioning", ["naive", "customer_long", "otm_only", "naive_ex0dte"])
def test_dealer_flows_are_the_full_revaluation_of_the_live_chain(events, positioning):
    """With a revaluation at every evaluation, the flow models' vanna/charm flows after a run are
    ``dealer_reval.reval_flows`` of the engine's chain as it stands (its own dealer signs, those of its
    GEX, from ``Settings.dealer_positioning``) under the VIX9D/VIX/VIX3M moves since their previous closes."""
    from streamer.core.dealer_reval import dealer_signs, reval_flows

    st = Settings(dealer_reval_interval_s=0.0, dealer_positioning=positioning)
    recs = raw(events)
    checked = 0
    for n in (len(recs) * 3 // 5, len(recs) * 7 // 10, len(recs) * 9 // 10):
        _, _, engs = run_offline(recs[:n], st)
        eng = engs["SPX"]
        d, ch = eng.flows.dealer, eng.chain
        if d.flows_ts_ns < 0:   # an official close came last: no revaluation since
            continue
        assert d.flows_ts_ns == eng.last_eval_ns and d.basis == 0.0
        exp, k, call, _, _, iv, oi, sign = ch.contract_arrays()
        assert np.array_equal(sign, dealer_signs(positioning, exp, k, call, ch.eval_spot, ch.eval_ts_ns))
        chg = []
        for sym in ("VIX9D", "VIX", "VIX3M"):
            s = eng.series.get(sym)
            chg.append(math.nan if s is None else 0.0 if s.closed_day >= s.day else s.last - s.prev_close)
        assert np.allclose(eng.term_change_pts(), chg, equal_nan=True, rtol=0, atol=0)
        if not any(x == x and x != 0 for x in chg):
            continue   # before the session's first VIX print: no move to revalue
        f = reval_flows(exp, k, call, iv, oi, sign, ch.eval_spot, ch.eval_ts_ns, st.rate, st.div_yield,
                        term_change_pts=tuple(chg), horizon_days=eng.flows.config.dealer.charm_horizon_days)
        assert d.vanna_flow_usd == f.total("vanna_usd") != 0.0
        assert d.charm_flow_usd == f.total("charm_usd") != 0.0
        v = eng.values()
        assert v["flow_dealer_vanna_usd"] == d.vanna_flow_usd and v["dealer_basis"] == 0.0
        checked += 1
    assert checked >= 2


def test_settings_take_every_positioning_model_and_refuse_others():
    from streamer.core.dealer_reval import POSITIONINGS
    from streamer.errors import ConfigError
    from streamer.settings import load_settings

    for m in POSITIONINGS:
        assert load_settings(dealer_positioning=m).dealer_positioning == m
        UnderlyingEngine("SPX", Settings(dealer_positioning=m))
    says = "expected one of naive, naive_ex0dte, otm_only, customer_long"
    with pytest.raises(ConfigError, match=says):
        load_settings(dealer_positioning="squeeze")
    with pytest.raises(ConfigError, match=says):
        UnderlyingEngine("SPX", Settings(dealer_positioning="squeeze"))


@pytest.mark.parametrize("positioning", ["otm_only", "naive_ex0dte"])
def test_spot_and_clock_positioning_engine_snapshots_and_checkpoint(events, whole, positioning):
    """An engine under a spot/clock model ingests the scenario and snapshots GEX different from ``naive``'s;
    cut mid-way, checkpointed and restored, it goes on to the same bytes as the uninterrupted run."""
    st = Settings(dealer_positioning=positioning)
    recs = raw(events)
    want_t, want_s, engs = run_offline(recs, st)
    gex = [s.values["gex_usd_per_pct"] for s in want_s if s.values.get("gex_usd_per_pct") is not None]
    naive = [s.values["gex_usd_per_pct"] for s in whole[1] if s.values.get("gex_usd_per_pct") is not None]
    assert len(gex) > 10 and all(math.isfinite(g) for g in gex) and gex != naive
    ts = [e.msg.ts_ns for e in events]
    boundary = (ts[len(ts) // 2] // NS + 1) * NS
    cut = next(i for i, t in enumerate(ts) if t >= boundary)
    t1, s1, first = run_offline(recs[:cut], st)
    restored = {u: UnderlyingEngine.from_checkpoint(e.checkpoint(), st) for u, e in first.items()}
    assert {u: e.checkpoint() for u, e in restored.items()} == {u: e.checkpoint() for u, e in first.items()}
    t2, s2, _ = run_offline(recs[cut:], st, engines=restored)
    assert encoded(t1 + t2) == encoded(want_t)
    assert encoded(s1 + s2) == encoded(want_s)


def test_closes_of_the_bond_and_fund_underlyings_reach_the_flow_models():
    """Official closes of TLT (risk parity's bond leg) and of a leveraged fund's benchmark (NDX) ingested
    before the day's SPX/VIX closes give the flow models exactly what a direct on_daily_close gets."""
    from streamer.backtest import close_ts_ns
    from streamer.core.flows import FlowBook, FlowConfig

    cfg = FlowConfig.default()
    days = [("2024-11-01", 5728.80, 21.88, 20033.1, 92.3), ("2024-11-04", 5712.69, 21.98, 19963.0, 93.0),
            ("2024-11-05", 5782.76, 20.49, 20225.0, 92.2), ("2024-11-06", 5929.04, 16.27, 20779.0, 89.6)]
    eng, alone = UnderlyingEngine("SPX", Settings(), flow_config=cfg), UnderlyingEngine("SPX", Settings())
    ref = FlowBook(cfg)
    for d, spx, vix, ndx, tlt in days:
        ts = close_ts_ns(d)
        rows = [("TLT", ts, tlt, d), ("NDX", ts, ndx, d), ("SPX", ts, spx, d), ("VIX", ts, vix, d)]
        eng.ingest(Batch("SPX", ts + 1, index=index_table(rows)))
        alone.ingest(Batch("SPX", ts + 1, index=index_table(rows[2:])))
        ref.on_daily_close(d, spx, vix, tlt, underlying_closes={"NDX": ndx})

    def same(a, b):
        return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)

    assert same(eng.flows.signals(), ref.signals())
    got, without = eng.flows.signals(), alone.flows.signals()
    assert got["flow_leveraged_etf_ndx_usd"] != without["flow_leveraged_etf_ndx_usd"]
    assert eng.flows.risk_parity.prev_bond == 89.6 and math.isnan(alone.flows.risk_parity.prev_bond)
    assert not same(got, without)


def test_captured_state_is_detached_from_the_live_engine(events):
    """What the worker packs in a thread: ``to_state()`` at the checkpoint instant, then ingesting goes on.
    The captured state shares no array or container with the engine, and packs to the same bytes after
    more batches were ingested as right after it was taken."""
    recs = raw(events)
    cut = len(recs) * 3 // 5
    _, _, engines = run_offline(recs[:cut], Settings())
    eng = engines["SPX"]
    state = eng.to_state()
    packed = pack(state)
    live = [*eng.chain._a.values(), eng.chain._contrib]
    for n in ("key", "sums", "count", "lc", "lp", "used", "fwd", "zdte"):
        live += [getattr(b, n) for b in (eng.chain._strikes, eng.chain._expiries, eng.chain._total, eng.chain._zdte)]

    def arrays(x):
        if isinstance(x, np.ndarray):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from arrays(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                yield from arrays(v)

    assert not any(np.shares_memory(a, b) for a in arrays(state) for b in live)
    before = eng.n_inputs
    run_offline(recs[cut:], Settings(), engines=engines)
    assert eng.n_inputs > before and eng.checkpoint() != packed
    assert pack(state) == packed
    assert UnderlyingEngine.from_state(state, Settings()).checkpoint() == packed


def test_a_revaluation_in_progress_survives_a_checkpoint(events, monkeypatch):
    """Dealer revaluations in slices (a few contracts per evaluation, one due at every evaluation): the
    flows reach the models a few evaluations after their capture, and a checkpoint taken while one is in
    progress restores it bit for bit (same triggers and snapshots as the uninterrupted run)."""
    import streamer.engine as engine_mod

    monkeypatch.setattr(engine_mod, "DEALER_REVAL_SLICE", 16)
    st = Settings(dealer_reval_interval_s=0.0)
    recs = raw(events)
    want_t, want_s, engs = run_offline(recs, st)
    ts = [e.msg.ts_ns for e in events]
    boundary = (ts[len(ts) * 3 // 5] // NS + 1) * NS
    while True:   # cut at a segment boundary where a revaluation is part done
        cut = next(i for i, t in enumerate(ts) if t >= boundary)
        t1, s1, engines = run_offline(recs[:cut], st)
        eng = engines["SPX"]
        if eng._reval is not None and eng._reval.pos > 0:
            break
        boundary += NS
    job = eng._reval
    assert 0 < job.pos < job.exp.size and job.ts_ns < eng.last_eval_ns
    restored = {u: UnderlyingEngine.from_checkpoint(e.checkpoint(), st) for u, e in engines.items()}
    assert restored["SPX"]._reval.pos == job.pos
    assert {u: e.checkpoint() for u, e in restored.items()} == {u: e.checkpoint() for u, e in engines.items()}
    t2, s2, _ = run_offline(recs[cut:], st, engines=restored)
    assert encoded(t1 + t2) == encoded(want_t)
    assert encoded(s1 + s2) == encoded(want_s)
    d = engs["SPX"].flows.dealer
    assert d.basis == 0.0 and d.flows_ts_ns < engs["SPX"].last_eval_ns   # stamped with its capture instant


def test_live_leveraged_flows_kept_between_evaluations_are_the_recomputed_ones():
    """FlowBook keeps the live leveraged-ETF flow per group until an input moves: at every step of a
    path of SPX and fund-underlying prints (repeats, a return of exactly -0.0 and 0.0, a new date) it is
    the sum of the per-fund rows recomputed from scratch, to the bit."""
    from streamer.core.flows import FlowBook

    fb = FlowBook()
    fb.on_daily_close("2024-11-05", 5782.76, 20.49)
    path = [("SPX", 5782.76), ("SPX", 5782.76), ("SPX", 5800.0), ("QQQ", 500.0), ("SPX", 5800.0),
            ("QQQ", 505.0), ("SPX", 5782.76), ("TSLA", 250.0), ("SPX", 5790.0)]
    checked = 0
    for i, (sym, px) in enumerate(path * 2):
        if i == len(path):
            fb.on_daily_close("2024-11-06", 5929.04, 16.27, underlying_closes={"QQQ": 510.0})
        if sym == "SPX":
            fb.on_spot(i, px)
        else:
            fb.on_underlying(i, sym, px)
        for r in (fb.spx_last / fb.spx_prev_close - 1.0, -0.0, 0.0):
            want: dict[str, float] = {}
            for row in fb._lev_rows(r):
                want[row.fund.index] = want.get(row.fund.index, 0.0) + row.flow_usd
            got = fb._lev_by_index(r)
            assert [(k, v.hex()) for k, v in got.items()] == [(k, v.hex()) for k, v in want.items()]
            checked += 1
        s = fb.signals()
        assert s["flow_leveraged_etf_close_usd"] == sum(fb._lev_by_index(fb.spx_last / fb.spx_prev_close - 1.0).values())
    assert checked == 3 * 2 * len(path)
