"""A real Prometheus scraping a real `streamer worker` that consumes a simulator scenario from Kafka.

    simulator (preset "fast") → Kafka → `streamer worker` subprocess → /metrics on 127.0.0.1
    → `prometheus` binary (tests/integration/prometheus_harness.py: 1 s scrape and rule
    evaluation, deploy/prometheus/rules/*.yml loaded) → HTTP query/alerts API

What it proves, against the production rule file (expressions are read back from Prometheus'
/api/v1/rules, not copied here):

* after election-2024 (+5 malformed messages) every DASHBOARD_SERIES has a sample;
* StreamerTriggerFired's expression returns exactly the (rule, severity) pairs the worker
  counted, and the alert fires; StreamerVolCollapse's expression is true (VIX -20.6 %) and the
  alert is active (pending: see the comment on `for: 1m`);
* stopping the worker makes `up{job="streamer-worker"} == 0` within a few scrapes and puts
  StreamerWorkerDown in pending;
* the calm scenario (its own worker, topics and Prometheus) leaves both market alert
  expressions empty although the trigger counters and the VIX gauge are there: a real negative.

Note: the simulator has no scenario named "vol-collapse"; the vol collapse is day 2 of
election-2024 (VIX 20.49 → 16.27), so that one run serves parts 1, 2 and 4.
"""
from __future__ import annotations

import math
import time

import pytest
from kafka_helpers import publish, settings_for

from prometheus_harness import JOB, PrometheusHarness, require_prometheus
from streamer.metrics import DASHBOARD_SERIES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

UP = f'up{{job="{JOB}"}}'
BAD = 5

# DASHBOARD_SERIES that cannot have a sample after an election-2024 run with BAD malformed
# messages. Empty on purpose: every series is expected, including the ones that need an event
# to exist at all (streamer_dead_letters_total{reason} needs a malformed message,
# streamer_last_trigger_timestamp_seconds{rule} needs a trigger; both happen in this run).
# If a series ever legitimately cannot have data, add it here with the reason next to it.
EXPECTED_MISSING: dict[str, str] = {}


def rule_expr(prom: PrometheusHarness, alert: str) -> str:
    """The alert's expression as Prometheus loaded it from deploy/prometheus/rules."""
    (expr,) = {r["query"] for r in prom.rules() if r.get("name") == alert}
    return expr


def rule_for_s(prom: PrometheusHarness, alert: str) -> float:
    """The alert's `for:` in seconds."""
    (d,) = {r["duration"] for r in prom.rules() if r.get("name") == alert}
    return d


def alert_states(prom: PrometheusHarness, alert: str) -> list[tuple[str, dict]]:
    return [(a["state"], a["labels"]) for a in prom.alerts() if a["labels"]["alertname"] == alert]


def run_scenario(prom: PrometheusHarness, worker, s, scenario: str, bad: int = 0) -> int:
    """Publish once Prometheus has scraped the idle worker (counters at 0); return after
    Prometheus has scraped the worker's final state (every sent message counted)."""
    worker.wait_ready()
    prom.wait_for(f"{UP} == 1")
    prom.wait_for("streamer_worker_up == 1")
    sent = publish(s, scenario, bad=bad)
    worker.wait_consumed(sent)
    total = sum(sent.values())
    prom.wait_for(f"sum(streamer_messages_in_total) >= {total}", timeout_s=10)
    time.sleep(2.5 * prom.evaluation_interval_s)  # rules evaluated on that scrape
    return total


def test_election_run_in_prometheus_series_alerts_and_worker_down(kafka, prefix, start_worker):
    require_prometheus()  # skip without the binary; under CI=true a failure
    s = settings_for(kafka, prefix)
    worker = start_worker(prefix)  # creates the topics first
    with PrometheusHarness(f"127.0.0.1:{worker.metrics_port}") as prom:
        total = run_scenario(prom, worker, s, "election-2024", bad=BAD)
        m = worker.metrics()

        # 1. every dashboard/alert series has a sample. A NaN gauge counts (the core's "no value"):
        # at the end of this run streamer_gamma_flip and streamer_vol_index{index=~"VIX(9D)?_calc"}
        # were NaN when this was written (no sign change of the GEX profile on the grid; our
        # Cboe-method VIX not computable from the "fast" chain at the last instant), yet they
        # are stored samples and count() finds them.
        missing = prom.missing_series(DASHBOARD_SERIES)
        assert {n: EXPECTED_MISSING.get(n, "UNEXPECTED") for n in missing} == EXPECTED_MISSING, \
            f"series without data in Prometheus after election-2024: {missing}"
        assert prom.value("sum(streamer_messages_in_total)") == total
        assert prom.value("sum(streamer_dead_letters_total)") == BAD

        # 2a. StreamerTriggerFired: its expression gives exactly what the worker counted
        fired_by_worker = {(dict(lbl)["rule"], dict(lbl)["severity"]): v for (name, lbl), v in m.items()
                           if name == "streamer_triggers_total" and v > 0}
        assert {"election_vol_collapse", "leveraged_etf_close_buying"} <= {r for r, _ in fired_by_worker}
        res = prom.query(rule_expr(prom, "StreamerTriggerFired"))
        by_prom = {(r["metric"]["rule"], r["metric"]["severity"]): float(r["value"][1]) for r in res}
        assert set(by_prom) == set(fired_by_worker)
        assert all(v > 0 for v in by_prom.values())
        # no `for:` on this alert: it fires on the next evaluation
        prom.wait_for('ALERTS{alertname="StreamerTriggerFired",alertstate="firing",'
                      'rule="election_vol_collapse"}', timeout_s=10)
        assert {(lb["rule"], lb["severity"]) for st, lb in alert_states(prom, "StreamerTriggerFired")
                if st == "firing"} == set(fired_by_worker)

        # 2b. StreamerVolCollapse: VIX one-day change ≤ -15 % (election day 2: -20.6 %)
        ratio = prom.value('streamer_vol_index_change_ratio{index="VIX"}')
        assert ratio == pytest.approx(16.27 / 20.49 - 1, abs=0.01)
        assert ratio == m[("streamer_vol_index_change_ratio", (("index", "VIX"), ("underlying", "SPX")))]
        res = prom.query(rule_expr(prom, "StreamerVolCollapse"))
        assert [(r["metric"]["underlying"], r["metric"]["index"]) for r in res] == [("SPX", "VIX")]
        # The rule has `for: 1m` (one bad print must not fire it). Waiting it out would add ~60 s
        # to this test, and the harness cannot shorten a rule's `for` without editing the rule,
        # so here: the expression is true and the alert is active (pending, or firing on a slow
        # machine). The pending → firing step after 1 min is covered by promtool's unit tests
        # (deploy/prometheus/tests/streamer.rules.test.yml).
        assert rule_for_s(prom, "StreamerVolCollapse") == 60
        prom.wait_for('ALERTS{alertname="StreamerVolCollapse",index="VIX"}', timeout_s=10)
        states = alert_states(prom, "StreamerVolCollapse")
        assert [(st in ("pending", "firing"), lb["underlying"], lb["severity"]) for st, lb in states] \
            == [(True, "SPX", "warning")]
        # the pipeline is healthy: the worker-down alert is silent while the worker runs
        assert prom.query(rule_expr(prom, "StreamerWorkerDown")) == []

        # 4. stop the worker: the scrape fails and `up` drops to 0 within a few scrapes
        worker.stop()
        stopped = time.monotonic()
        prom.wait_for(f"{UP} == 0", timeout_s=6 * prom.scrape_interval_s)
        assert time.monotonic() - stopped <= 6 * prom.scrape_interval_s
        assert prom.query(rule_expr(prom, "StreamerWorkerDown"))  # expression true
        # `for: 1m` again: pending is as far as it gets in a test of this length
        assert rule_for_s(prom, "StreamerWorkerDown") == 60
        prom.wait_for('ALERTS{alertname="StreamerWorkerDown"}', timeout_s=10)
        assert [st for st, _ in alert_states(prom, "StreamerWorkerDown")] in (["pending"], ["firing"])


def test_calm_run_leaves_market_alerts_empty(kafka, prefix, start_worker):
    require_prometheus()
    s = settings_for(kafka, prefix)
    worker = start_worker(prefix)  # creates the topics first
    with PrometheusHarness(f"127.0.0.1:{worker.metrics_port}") as prom:
        run_scenario(prom, worker, s, "calm")
        # not vacuous: the trigger counters (declared at 0 per rule and severity) and the VIX
        # change gauge are in Prometheus, they just do not meet the conditions
        n_counters = prom.value("count(streamer_triggers_total)")
        assert n_counters and n_counters >= 3 * 4
        assert prom.value("sum(streamer_triggers_total)") == 0
        assert prom.value("sum(streamer_rule_evaluations_total)") > 0
        ratio = prom.value('streamer_vol_index_change_ratio{index="VIX"}')
        assert ratio is not None and not math.isnan(ratio) and abs(ratio) < 0.05

        assert prom.query(rule_expr(prom, "StreamerTriggerFired")) == []
        assert prom.query(rule_expr(prom, "StreamerVolCollapse")) == []
        assert alert_states(prom, "StreamerTriggerFired") == []
        assert alert_states(prom, "StreamerVolCollapse") == []
