"""grafana/: dashboards load, ids unique, every PromQL expr (dashboards and rules) parses and
names only metrics that streamer/metrics.py defines; DASHBOARD_SERIES matches the files."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from promql_files import (DASHBOARD_FILES, GRAFANA_DIR, RULE_FILES,
                          check_exprs_with_promtool, grafana_exprs, metric_names, rule_exprs,
                          substitute_grafana_vars)
from streamer.metrics import DASHBOARD_SERIES, PROMETHEUS_SERIES, Metrics

EXPECTED_DASHBOARDS = {"streamer-market.json", "streamer-pipeline.json"}


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboards():
    return {p.name: json.loads(p.read_text()) for p in DASHBOARD_FILES}


def all_exprs() -> list[tuple[str, str]]:
    out = []
    for f in DASHBOARD_FILES:
        out += [(f"{f.name}: {w}", substitute_grafana_vars(e)) for w, e in grafana_exprs(f)]
    for f in RULE_FILES:
        out += [(f"{f.name}: {n}", e) for n, e in rule_exprs(f)]
    return out


def exported_series() -> set[str]:
    """Every sample name streamer exposes (histogram/`_info` suffixes included)."""
    m = Metrics(CollectorRegistry())
    names = set()
    for metric in m.metric_objects():
        for fam in metric.describe():
            t = fam.type
            base = fam.name
            if t == "counter":
                names.add(base + "_total")
            elif t == "histogram":
                names |= {base + s for s in ("_bucket", "_sum", "_count")}
            elif t == "info":
                names.add(base + "_info")
            else:
                names.add(base)
    return names


def recorded_series() -> set[str]:
    text = "\n".join(f.read_text() for f in RULE_FILES)
    return set(re.findall(r"-\s*record:\s*(\S+)", text))


def test_dashboards_present_and_load():
    assert set(dashboards()) == EXPECTED_DASHBOARDS


def test_dashboards_are_generated_from_build_script():
    r = subprocess.run([sys.executable, str(GRAFANA_DIR / "build_dashboards.py"), "--check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED_DASHBOARDS))
def test_dashboard_structure(name):
    d = dashboards()[name]
    assert d["uid"] and d["title"]
    ids = [p["id"] for p in all_panels(d["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in all_panels(d["panels"]):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "prometheus"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(refs) == len(set(refs)), p["title"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
    # panels do not overlap on the 24-column grid
    cells = set()
    for p in all_panels(d["panels"]):
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps at {(x, y)}"
                cells.add((x, y))


def test_market_dashboard_content():
    exprs = " ".join(e for _, e in grafana_exprs(GRAFANA_DIR / "dashboards" /
                                                 "streamer-market.json"))
    for name in ("streamer_spot", "streamer_vol_index", "streamer_realized_vol",
                 "streamer_atm_implied_vol", "streamer_gex_usd_per_pct", "streamer_gamma_flip",
                 "streamer_call_wall", "streamer_put_wall", "streamer_vanna_usd_per_vol_pt",
                 "streamer_charm_usd_per_day", "streamer_flow_usd"):
        assert name in exprs, name
    ann = dashboards()["streamer-market.json"]["annotations"]["list"]
    assert any("increase(streamer_triggers_total" in a.get("expr", "") for a in ann)


def test_provisioning_files():
    ds = (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert re.search(r"uid:\s*prometheus\b", ds)
    assert "url: http://prometheus:9090" in ds
    prov = (GRAFANA_DIR / "provisioning" / "dashboards" / "streamer.yml").read_text()
    assert re.search(r"type:\s*file\b", prov)
    assert "path: /var/lib/grafana/dashboards" in prov
    assert (GRAFANA_DIR / "README.md").is_file()


def test_every_expr_parses_with_promtool():
    exprs = all_exprs()
    assert len(exprs) > 20
    r = check_exprs_with_promtool(exprs)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_catches_a_bad_expr():
    """The syntax check above has teeth."""
    r = check_exprs_with_promtool([("bad", "sum by (topic) (rate(streamer_messages_in_total[5m])")])
    assert r.returncode != 0


def test_every_metric_name_is_defined():
    known = exported_series() | set(PROMETHEUS_SERIES) | recorded_series()
    unknown = {}
    for where, expr in all_exprs():
        for n in metric_names(expr) - known:
            unknown.setdefault(n, []).append(where)
    assert not unknown, unknown


def test_dashboard_series_lists_exactly_what_files_use():
    used = set()
    for _, expr in all_exprs():
        used |= metric_names(expr)
    streamer_used = {n for n in used if n.startswith("streamer_")}
    assert set(DASHBOARD_SERIES) == streamer_used
    assert set(DASHBOARD_SERIES) <= exported_series()
