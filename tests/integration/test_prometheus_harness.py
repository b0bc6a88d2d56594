"""The Prometheus harness against a prometheus_client endpoint (no Kafka): scrape, rules,
a real alert firing, and every DASHBOARD_SERIES present once the metrics are touched."""
from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from prometheus_harness import PrometheusHarness, require_prometheus
from streamer import metrics as sm
from streamer.metrics import DASHBOARD_SERIES, FUND_TYPES, Metrics


@pytest.fixture
def endpoint():
    m = Metrics(CollectorRegistry())
    server, _ = sm.start_http_server(0, registry=m.registry)
    try:
        yield m, f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def simulate(m: Metrics) -> None:
    """What a short run of the worker would leave behind."""
    m.worker_up_g.set(1)
    m.set_build_info()
    m.declare_rule("vol_collapse", severities=("critical",))
    m.seen("ticks-v1", 100)
    m.msgs_out("analytics-v1").inc(10)
    m.latency("analytics-v1").observe(0.004)
    m.consumer_lag("ticks-v1", 0).set(3)
    m.dead_letters("bad_schema").inc()
    m.rule_evaluations("vol_collapse").inc(10)
    u = m.underlying("SPX")
    u.spot.set(5321.5); u.atm_implied_vol.set(0.15); u.realized_vol("1d").set(0.12)
    u.vol_index("VIX").set(13.0); u.vol_index("VIX_calc").set(13.1)
    u.vol_index_change_ratio("VIX").set(-0.206)
    u.gex_usd_per_pct.set(2e9); u.gamma_flip.set(5200); u.call_wall.set(5400)
    u.put_wall.set(5100); u.vanna_usd_per_vol_pt.set(-1e9); u.charm_usd_per_day.set(3e8)
    for ft in FUND_TYPES:
        u.flow(ft, "1d").set(1e8)
    m.last_trigger("vol_collapse").set(time.time())


def test_harness_scrapes_evaluates_and_alerts(endpoint):
    require_prometheus()
    m, target = endpoint
    simulate(m)
    with PrometheusHarness(target) as prom:
        prom.wait_for('up{job="streamer-worker"} == 1')
        prom.wait_for('streamer_spot{underlying="SPX"}')
        assert prom.value('streamer_spot{underlying="SPX"}') == 5321.5
        assert prom.missing_series(DASHBOARD_SERIES) == []
        # recording rules run
        prom.wait_for("topic:streamer_consumer_lag_messages:sum")
        assert {r["name"] for r in prom.rules()} >= {"StreamerTriggerFired", "StreamerWorkerDown"}
        # a trigger after the pre-created counter was scraped at 0 fires the alert (no `for`)
        prom.wait_for('streamer_triggers_total{rule="vol_collapse"}', timeout_s=10)
        time.sleep(1.5)
        m.trigger("vol_collapse", "critical", time.time())
        res = prom.wait_for('ALERTS{alertname="StreamerTriggerFired",alertstate="firing"}',
                            timeout_s=20)
        assert res[0]["metric"]["rule"] == "vol_collapse"
        assert res[0]["metric"]["severity"] == "critical"
        proc = prom.proc
    assert proc.poll() is not None  # stopped


def test_query_errors_are_raised(endpoint):
    require_prometheus()
    _, target = endpoint
    from prometheus_harness import PrometheusError
    with PrometheusHarness(target) as prom:
        with pytest.raises(PrometheusError, match="bad_data"):
            prom.query("sum(")
