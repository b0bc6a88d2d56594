"""deploy/prometheus: config and rules pass promtool; every alert has firing and silent tests."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from promql_files import (PROM_CONFIG, PROM_DIR, RULE_FILES, RULE_TEST_FILES, rule_exprs,
                          run_promtool)

ALERTS = {
    "StreamerTriggerFired", "StreamerVolCollapse", "StreamerConsumerLagGrowing",
    "StreamerDeadLetterRate", "StreamerWorkerDown", "StreamerNoData",
}


def test_files_exist():
    assert PROM_CONFIG.is_file()
    assert RULE_FILES and RULE_TEST_FILES


def test_promtool_check_config():
    r = run_promtool("check", "config", str(PROM_CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    # the config must have loaded our rule files, not matched an empty glob
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in r.stdout + r.stderr


def test_promtool_check_config_compose_targets(tmp_path):
    """The compose layout (targets-compose/ mounted over targets/) is a valid config too."""
    shutil.copy(PROM_CONFIG, tmp_path / "prometheus.yml")
    shutil.copytree(PROM_DIR / "rules", tmp_path / "rules")
    shutil.copytree(PROM_DIR / "targets-compose", tmp_path / "targets")
    r = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("folder, target", [("targets", "127.0.0.1:9308"),
                                            ("targets-compose", "worker:9308")])
def test_worker_targets(folder, target):
    files = list((PROM_DIR / folder).glob("*.json"))
    groups = [g for f in files for g in json.loads(f.read_text())]
    assert [t for g in groups for t in g["targets"]] == [target]


def test_scrape_job_name_matches_alert():
    text = PROM_CONFIG.read_text()
    assert re.search(r"job_name:\s*streamer-worker\b", text)
    exprs = dict(rule_exprs(RULE_FILES[0]))
    assert 'job="streamer-worker"' in exprs["StreamerWorkerDown"]


def test_promtool_check_rules():
    r = run_promtool("check", "rules", *map(str, RULE_FILES))
    assert r.returncode == 0, r.stdout + r.stderr
    # our line parser sees exactly the rules promtool sees
    found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", r.stdout))
    assert found == sum(len(rule_exprs(f)) for f in RULE_FILES)


def test_promtool_test_rules():
    r = run_promtool("test", "rules", *map(str, RULE_TEST_FILES))
    assert r.returncode == 0, r.stdout + r.stderr


def test_required_alerts_defined():
    names = {n for f in RULE_FILES for n, _ in rule_exprs(f)}
    assert ALERTS <= names


def test_every_alert_has_firing_and_silent_cases():
    """Each alert appears in the promtool tests with an empty and a non-empty exp_alerts."""
    text = "\n".join(f.read_text() for f in RULE_TEST_FILES)
    cases = re.findall(r"alertname:\s*(\w+)\s*\n\s*exp_alerts:\s*(\[\])?", text)
    positive = {a for a, empty in cases if not empty}
    negative = {a for a, empty in cases if empty}
    assert ALERTS <= positive, ALERTS - positive
    assert ALERTS <= negative, ALERTS - negative


def test_alerts_have_category_severity_and_summary():
    for f in RULE_FILES:
        text = f.read_text()
        blocks = re.split(r"\n\s*- (?=alert:|record:)", text)
        for b in blocks:
            if not b.startswith("alert:"):
                continue
            name = b.split()[1]
            assert re.search(r"category:\s*(market|pipeline)\b", b), name
            # StreamerTriggerFired takes severity from the trigger's own label
            assert name == "StreamerTriggerFired" or re.search(r"severity:\s*(info|warning|critical)\b", b), name
            assert "summary:" in b and "description:" in b, name
