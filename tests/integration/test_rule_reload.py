"""Trigger rules reload without restarting the worker; an invalid file is rejected and the old rules stay."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka_helpers import publish, read_topic, settings_for

from streamer import kafka_io, schemas

pytestmark = pytest.mark.integration

ONLY_LEVERAGED = '''
version = 1
[[rule]]
name = "leveraged_etf_close_buying"
description = "Leveraged/inverse ETFs must buy into the close"
direction = "buy"
severity = "info"
notional = "flow_leveraged_etf_close_usd"
when = { signal = "flow_leveraged_etf_close_usd", op = ">=", value = 10e9, rearm = 5e9 }
'''
ONLY_COLLAPSE = '''
version = 1
[[rule]]
name = "vix_drop"
description = "VIX down 15% or more on the day"
direction = "buy"
severity = "critical"
notional = "flow_vol_control_1m_usd"
when = { signal = "vix_change_ratio", op = "<=", value = -0.15, rearm = -0.10 }
'''


def counter(worker, name: str, **labels) -> float:
    return worker.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def test_rules_hot_reload_and_invalid_file_keeps_old_rules(kafka, prefix, start_worker, tmp_path: Path):
    s = settings_for(kafka, prefix)
    rules = tmp_path / "rules.toml"
    rules.write_text(ONLY_LEVERAGED)
    worker = start_worker(prefix, env={"STREAMER_RULES_FILE": str(rules)})
    worker.wait_ready()
    wait_for(lambda: counter(worker, "streamer_rule_reloads_total", result="loaded") >= 1)

    # an invalid file (unknown op) is rejected; the worker keeps running with the old rules
    rules.write_text(ONLY_COLLAPSE.replace('op = "<="', 'op = "=<"'))
    wait_for(lambda: counter(worker, "streamer_rule_reloads_total", result="rejected") >= 1)

    # so is a rule on a signal outside the catalogue (a typo would otherwise never fire)
    time.sleep(0.05)  # a new mtime for the rewrite
    rules.write_text(ONLY_COLLAPSE.replace('signal = "', 'signal = "no_such_', 1))
    wait_for(lambda: counter(worker, "streamer_rule_reloads_total", result="rejected") >= 2)

    # a valid new file replaces the rules without a restart
    rules.write_text(ONLY_COLLAPSE)
    wait_for(lambda: counter(worker, "streamer_rule_reloads_total", result="loaded") >= 2)
    assert worker.proc.poll() is None

    worker.wait_consumed(publish(s, "election-2024"))
    fired = {schemas.parse_trigger_event(r.value).rule for r in read_topic(s, kafka_io.topics_for(s).triggers, 3.0)}
    assert fired == {"vix_drop"}, "only the reloaded rule set is active"
