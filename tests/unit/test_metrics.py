"""streamer.metrics: naming conventions and the cached-children hot path."""
from __future__ import annotations

import math
import re
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

from streamer import metrics as sm
from streamer.metrics import DASHBOARD_SERIES, FUND_TYPES, METRICS, Metrics

# the contract with the worker: name -> (type, labels)
CONTRACT = {
    "streamer_messages_in_total": ("counter", ("topic",)),
    "streamer_messages_out_total": ("counter", ("topic",)),
    "streamer_processing_latency_seconds": ("histogram", ("topic",)),
    "streamer_consumer_lag_messages": ("gauge", ("topic", "partition")),
    "streamer_dead_letters_total": ("counter", ("reason",)),
    "streamer_rule_evaluations_total": ("counter", ("rule",)),
    "streamer_rule_reloads_total": ("counter", ("result",)),
    "streamer_triggers_total": ("counter", ("rule", "severity")),
    "streamer_last_trigger_timestamp_seconds": ("gauge", ("rule",)),
    "streamer_last_event_timestamp_seconds": ("gauge", ("topic",)),
    "streamer_worker_up": ("gauge", ()),
    "streamer_late_inputs_total": ("counter", ()),
    "streamer_conflated_quotes_total": ("counter", ()),
    "streamer_checkpoints_total": ("counter", ()),
    "streamer_state_bytes_written_total": ("counter", ()),
    "streamer_input_seq": ("gauge", ("underlying",)),
    "streamer_partitions_assigned": ("gauge", ()),
    "streamer_suspect_ticks_total": ("counter", ("symbol", "outcome")),
    "streamer_triggers_withheld_total": ("counter", ("rule",)),
    "streamer_build_info": ("info", ()),
    "streamer_spot": ("gauge", ("underlying",)),
    "streamer_realized_vol": ("gauge", ("underlying", "horizon")),
    "streamer_atm_implied_vol": ("gauge", ("underlying",)),
    "streamer_vol_index": ("gauge", ("underlying", "index")),
    "streamer_vol_index_change_ratio": ("gauge", ("underlying", "index")),
    "streamer_gex_usd_per_pct": ("gauge", ("underlying",)),
    "streamer_gamma_flip": ("gauge", ("underlying",)),
    "streamer_call_wall": ("gauge", ("underlying",)),
    "streamer_put_wall": ("gauge", ("underlying",)),
    "streamer_vanna_usd_per_vol_pt": ("gauge", ("underlying",)),
    "streamer_charm_usd_per_day": ("gauge", ("underlying",)),
    "streamer_flow_usd": ("gauge", ("underlying", "fund_type", "horizon")),
}

# the value's unit must be a base unit; a `_per_<x>` denominator of a sensitivity
# (gex_usd_per_pct, charm_usd_per_day) is the market convention and is stripped before the check
NON_BASE_UNITS = re.compile(r"_(milli|micro|nano)?(ms|us|ns|millis|minutes|hours|days|bytes_k|"
                            r"kilobytes|megabytes|percent|pct)$")


def exposed_name(metric) -> str:
    """The family name as Prometheus sees it (Counter strips `_total`, Info adds `_info`)."""
    if isinstance(metric, Counter):
        return metric._name + "_total"
    if isinstance(metric, Info):
        return metric._name + "_info"
    return metric._name


@pytest.fixture
def m() -> Metrics:
    return Metrics(CollectorRegistry())


def test_contract_names_types_labels(m):
    got = {}
    for metric in m.metric_objects():
        kind = {Counter: "counter", Gauge: "gauge", Histogram: "histogram", Info: "info"}[
            type(metric)]
        got[exposed_name(metric)] = (kind, tuple(metric._labelnames))
    assert got == CONTRACT


def test_conventions(m):
    names = set()
    for metric in m.metric_objects():
        name = exposed_name(metric)
        assert name not in names, f"{name} defined twice"
        names.add(name)
        assert name.startswith(sm.PREFIX), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert not NON_BASE_UNITS.search(name.split("_per_")[0]), f"{name}: use base units"
        assert metric._documentation.strip(), f"{name}: needs help text"
        if isinstance(metric, Counter):
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), f"{name}: `_total` is for counters"
        if isinstance(metric, Histogram):
            assert name.endswith("_seconds"), f"{name}: durations in seconds"
        if "timestamp" in name:
            assert name.endswith("_timestamp_seconds"), name
    # the registry itself agrees (catches a metric registered outside metric_objects())
    families = {f.name for f in m.registry.collect()}
    assert {n.removesuffix("_total").removesuffix("_info") for n in names} == {
        n.removesuffix("_info") for n in families}


def test_latency_buckets_cover_1ms_to_30s():
    b = sm.LATENCY_BUCKETS_SECONDS
    assert list(b) == sorted(b) and b[0] == 0.001 and b[-1] == 30.0
    # no decade without at least two buckets
    for lo in (0.001, 0.01, 0.1, 1.0):
        assert sum(lo <= x < lo * 10 for x in b) >= 2


def test_cached_children_increment_the_right_series(m):
    r = m.registry
    m.msgs_in("ticks-v1").inc(3)
    m.msgs_in("ticks-v1").inc()
    m.msgs_in("quotes-v1").inc(5)
    m.msgs_out("analytics-v1").inc(2)
    m.dead_letters("bad_schema").inc()
    m.consumer_lag("ticks-v1", 0).set(42)
    m.latency("analytics-v1").observe(0.003)
    m.rule_evaluations("vol_collapse").inc(7)
    m.trigger("vol_collapse", "critical", 1_700_000_000.0)

    v = r.get_sample_value
    assert v("streamer_messages_in_total", {"topic": "ticks-v1"}) == 4
    assert v("streamer_messages_in_total", {"topic": "quotes-v1"}) == 5
    assert v("streamer_messages_out_total", {"topic": "analytics-v1"}) == 2
    assert v("streamer_messages_out_total", {"topic": "ticks-v1"}) is None
    assert v("streamer_dead_letters_total", {"reason": "bad_schema"}) == 1
    assert v("streamer_consumer_lag_messages", {"topic": "ticks-v1", "partition": "0"}) == 42
    assert v("streamer_processing_latency_seconds_bucket",
             {"topic": "analytics-v1", "le": "0.0025"}) == 0
    assert v("streamer_processing_latency_seconds_bucket",
             {"topic": "analytics-v1", "le": "0.005"}) == 1
    assert v("streamer_rule_evaluations_total", {"rule": "vol_collapse"}) == 7
    assert v("streamer_triggers_total", {"rule": "vol_collapse", "severity": "critical"}) == 1
    assert v("streamer_last_trigger_timestamp_seconds", {"rule": "vol_collapse"}) == 1.7e9


def test_cache_returns_same_child_and_normalizes_values(m):
    assert m.msgs_in("t") is m.msgs_in("t")
    assert m.consumer_lag("t", 3) is m.consumer_lag("t", "3")
    assert m.consumer_lag("t", 3) is m.consumer_lag_g.labels("t", "3")


def test_cache_skips_labels_after_first_call(m, monkeypatch):
    calls = []
    real = m.messages_in_c.labels
    monkeypatch.setattr(m.messages_in_c, "labels", lambda *a: calls.append(a) or real(*a))
    for _ in range(100):
        m.msgs_in("t").inc()
    assert calls == [("t",)]
    assert m.registry.get_sample_value("streamer_messages_in_total", {"topic": "t"}) == 100


def test_underlying_bundle(m):
    v = m.registry.get_sample_value
    spx = m.underlying("SPX")
    assert m.underlying("SPX") is spx
    spx.spot.set(5321.5)
    spx.atm_implied_vol.set(0.151)
    spx.realized_vol("1d").set(0.142)
    spx.vol_index("VIX").set(16.4)
    spx.vol_index("VIX_calc").set(16.2)
    spx.vol_index_change_ratio("VIX").set(-0.206)
    spx.gex_usd_per_pct.set(3.2e9)
    spx.gamma_flip.set(5250)
    spx.call_wall.set(5400)
    spx.put_wall.set(5200)
    spx.vanna_usd_per_vol_pt.set(-1.1e9)
    spx.charm_usd_per_day.set(4e8)
    for i, ft in enumerate(FUND_TYPES):
        spx.flow(ft, "1d").set(i * 1e9)
    m.underlying("NDX").spot.set(18000)

    u = {"underlying": "SPX"}
    assert v("streamer_spot", u) == 5321.5
    assert v("streamer_spot", {"underlying": "NDX"}) == 18000
    assert v("streamer_atm_implied_vol", u) == 0.151
    assert v("streamer_realized_vol", {**u, "horizon": "1d"}) == 0.142
    assert v("streamer_vol_index", {**u, "index": "VIX"}) == 16.4
    assert v("streamer_vol_index", {**u, "index": "VIX_calc"}) == 16.2
    assert v("streamer_vol_index_change_ratio", {**u, "index": "VIX"}) == -0.206
    assert v("streamer_gex_usd_per_pct", u) == 3.2e9
    assert v("streamer_gamma_flip", u) == 5250
    assert v("streamer_call_wall", u) == 5400
    assert v("streamer_put_wall", u) == 5200
    assert v("streamer_vanna_usd_per_vol_pt", u) == -1.1e9
    assert v("streamer_charm_usd_per_day", u) == 4e8
    assert v("streamer_flow_usd", {**u, "fund_type": "leveraged_etf", "horizon": "1d"}) == 3e9
    assert spx.flow("cta", "1d") is spx.flow("cta", "1d")


def test_flow_rejects_unknown_fund_type(m):
    with pytest.raises(ValueError, match="fund_type"):
        m.underlying("SPX").flow("hedge_fund", "1d")


def test_nan_gauge_is_exposed(m):
    m.underlying("SPX").gamma_flip.set(float("nan"))
    assert math.isnan(m.registry.get_sample_value("streamer_gamma_flip", {"underlying": "SPX"}))


def test_declare_rule_and_topic_create_zero_series(m):
    v = m.registry.get_sample_value
    m.declare_rule("vol_collapse", severities=("warning",))
    m.declare_topic("ticks-v1")
    m.declare_topic("signals-v1", source=False, sink=True)
    assert v("streamer_triggers_total", {"rule": "vol_collapse", "severity": "warning"}) == 0
    assert v("streamer_rule_evaluations_total", {"rule": "vol_collapse"}) == 0
    assert v("streamer_messages_in_total", {"topic": "ticks-v1"}) == 0
    assert v("streamer_messages_out_total", {"topic": "signals-v1"}) == 0
    assert v("streamer_processing_latency_seconds_count", {"topic": "signals-v1"}) == 0


def test_seen_stamps_wall_clock(m):
    import time
    before = time.time()
    m.seen("ticks-v1", 10)
    ts = m.registry.get_sample_value("streamer_last_event_timestamp_seconds", {"topic": "ticks-v1"})
    assert before <= ts <= time.time()
    assert m.registry.get_sample_value("streamer_messages_in_total", {"topic": "ticks-v1"}) == 10


def test_build_info(m):
    m.set_build_info(worker="w1")
    samples = {s.name: s for f in m.registry.collect() for s in f.samples}
    labels = samples["streamer_build_info"].labels
    assert labels["version"] and labels["python"] and labels["worker"] == "w1"


def test_dashboard_series_are_defined(m):
    # touch every labelled metric so its samples are listed
    m.declare_rule("r")
    m.declare_topic("t", sink=True)
    m.dead_letters("x"); m.consumer_lag("t", 0); m.last_event("t"); m.last_trigger("r")
    u = m.underlying("SPX")
    u.realized_vol("1d"); u.vol_index("VIX"); u.vol_index_change_ratio("VIX"); u.flow("cta", "1d")
    exposed = {s.name for f in m.registry.collect() for s in f.samples}
    missing = set(DASHBOARD_SERIES) - exposed
    assert not missing


def test_singleton_on_default_registry():
    assert METRICS.registry is REGISTRY
    assert REGISTRY.get_sample_value("streamer_worker_up") is not None


def test_start_http_server_serves_metrics(m):
    m.msgs_in("ticks-v1").inc(2)
    server, thread = sm.start_http_server(0, registry=m.registry)
    try:
        port = server.server_port
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'streamer_messages_in_total{topic="ticks-v1"} 2.0' in body
    finally:
        server.shutdown()
        server.server_close()


def test_catalogue_gauges_exist_with_their_labels(m):
    """Every gauge the signal catalogue names is a defined gauge labelled underlying + the declared labels,
    and every per-underlying analytics gauge of the dashboards is fed by some catalogued signal."""
    from streamer.core.signals import SIGNALS

    gauges = m.signal_gauges()
    named = set()
    for s in SIGNALS:
        if s.gauge is None:
            continue
        g = gauges[s.gauge.metric]
        assert tuple(g._labelnames) == ("underlying", *(k for k, _ in s.gauge.labels)), s.name
        named.add(s.gauge.metric)
    per_underlying = {n for n, g in gauges.items() if g._labelnames[:1] == ("underlying",)}
    per_underlying -= {"streamer_input_seq"}   # pipeline position, not an analytic
    assert per_underlying == named


def test_set_signals_sets_each_catalogued_gauge(m):
    from streamer.engine import known_signals
    from streamer.settings import Settings

    cat = known_signals(Settings())
    values = {name: float(i) for i, name in enumerate(cat)}
    values["gamma_flip"] = None
    del values["vix3m_last"]
    n = m.set_signals("SPX", values, cat)
    v = m.registry.get_sample_value
    u = {"underlying": "SPX"}
    assert v("streamer_spot", u) == values["spot"]
    assert math.isnan(v("streamer_gamma_flip", u))
    assert v("streamer_vol_index", {**u, "index": "VIX9D"}) == values["vix9d_last"]
    assert v("streamer_vol_index", {**u, "index": "VIX_calc"}) == values["vix_calc"]
    assert v("streamer_vol_index", {**u, "index": "VIX3M"}) is None   # absent: not set
    assert v("streamer_vol_index_change_ratio", {**u, "index": "VIX"}) == values["vix_change_ratio"]
    assert v("streamer_realized_vol", {**u, "horizon": "20d"}) == values["rv_cc_20d_annual"]
    assert v("streamer_flow_usd", {**u, "fund_type": "vol_control", "horizon": "1m"}) == \
        values["flow_vol_control_1m_usd"]
    assert v("streamer_flow_usd", {**u, "fund_type": "dealer_charm", "horizon": "now"}) == \
        values["flow_dealer_charm_usd"]
    with_gauge = [k for k, c in cat.items() if c.signal.gauge is not None and k in values]
    assert n == len(with_gauge) > 20
    for name in with_gauge:
        c = cat[name]
        got = v(c.signal.gauge.metric, {**u, **c.gauge_labels})
        assert got == values[name] or (values[name] is None and math.isnan(got)), name
