"""Generate grafana/dashboards/*.json from this file (the JSON is committed; edit here).

    .venv/bin/python grafana/build_dashboards.py          # rewrite the JSON files
    .venv/bin/python grafana/build_dashboards.py --check  # exit 1 if they are stale

Writing the dashboards as code keeps ids unique, datasource refs identical and units
consistent; tests/unit/test_grafana.py checks the committed JSON is what this produces and
that every PromQL expression parses and names only metrics defined in streamer/metrics.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
U = 'underlying="$underlying"'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           fmt: str = "time_series") -> dict:
    t = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref,
         "range": not instant, "instant": instant, "format": fmt}
    return t


class Board:
    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0
        self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}})
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0

    def add(self, kind: str, title: str, targets: list[dict], *, w: int = 12, h: int = 8,
            unit: str = "short", description: str = "", options: dict | None = None,
            custom: dict | None = None, thresholds: list[dict] | None = None,
            overrides: list[dict] | None = None, decimals: int | None = None) -> None:
        if self.x + w > 24:
            self._newline()
        refs = "ABCDEFGH"
        for i, t in enumerate(targets):
            t["refId"] = refs[i]
        defaults: dict = {"unit": unit, "custom": custom or {}}
        if decimals is not None:
            defaults["decimals"] = decimals
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        p = {"type": kind, "title": title, "description": description, "datasource": DS,
             "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h}, "targets": targets,
             "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
             "options": options or {}}
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)

    def finish(self) -> list[dict]:
        for i, p in enumerate(self.panels, start=1):
            p["id"] = i
        return self.panels


def dashboard(uid: str, title: str, panels: list[dict], *, variables: list[dict],
              annotations: list[dict], tags: list[str], refresh: str = "5s") -> dict:
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
               "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
               "name": "Annotations & Alerts", "type": "dashboard"}
    return {
        "uid": uid, "title": title, "tags": tags, "editable": True, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "refresh": refresh, "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": variables},
        "panels": panels, "links": [
            {"title": "streamer dashboards", "type": "dashboards", "tags": ["streamer"],
             "asDropdown": False, "includeVars": True, "keepTime": True}],
    }


def query_var(name: str, query: str, label: str) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
            "refresh": 2, "sort": 1, "includeAll": False, "multi": False,
            "current": {}, "options": [], "hide": 0}


TIMESERIES = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never",
              "spanNulls": False}
LEGEND = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
          "tooltip": {"mode": "multi", "sort": "desc"}}


def market() -> dict:
    b = Board()
    b.row("Index and volatility")
    b.add("timeseries", "Spot, gamma flip and walls", [
        target(f"streamer_spot{{{U}}}", "spot"),
        target(f"streamer_gamma_flip{{{U}}}", "gamma flip"),
        target(f"streamer_call_wall{{{U}}}", "call wall"),
        target(f"streamer_put_wall{{{U}}}", "put wall"),
    ], w=12, unit="none", custom=TIMESERIES, options=LEGEND, decimals=1,
        description="Index level with the dealer gamma flip and the largest call/put gamma "
                    "strikes. Above the flip dealers are long gamma (dampening).")
    b.add("timeseries", "Vol index: published vs computed", [
        target(f"streamer_vol_index{{{U}}}", "{{index}}"),
    ], w=8, unit="none", custom=TIMESERIES, options=LEGEND, decimals=2,
        description="index=VIX is the published level, VIX_calc our Cboe-method computation.")
    b.add("stat", "Vol index vs previous close", [
        target(f"streamer_vol_index_change_ratio{{{U}}}", "{{index}}", instant=True),
    ], w=4, unit="percentunit", decimals=1,
        thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": -0.15},
                    {"color": "green", "value": -0.05}],
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                 "graphMode": "none", "textMode": "value_and_name"},
        description="One-day change; StreamerVolCollapse fires at -15 % on VIX.")
    b.add("timeseries", "Realized vs implied vol", [
        target(f"streamer_realized_vol{{{U}}}", "realized {{horizon}}"),
        target(f"streamer_atm_implied_vol{{{U}}}", "ATM implied"),
        target(f'streamer_vol_index{{{U}, index="VIX"}} / 100', "VIX / 100"),
    ], w=24, unit="percentunit", custom=TIMESERIES, options=LEGEND, decimals=1,
        description="Annualized decimal vols. Realized below implied: vol-control funds "
                    "add exposure.")

    b.row("Dealer positioning")
    b.add("timeseries", "Dealer gamma exposure (USD per 1 % move)", [
        target(f"streamer_gex_usd_per_pct{{{U}}}", "GEX"),
    ], w=8, unit="currencyUSD", custom={**TIMESERIES, "fillOpacity": 20}, options=LEGEND,
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 0}])
    b.add("timeseries", "Dealer vanna (USD per vol point)", [
        target(f"streamer_vanna_usd_per_vol_pt{{{U}}}", "vanna"),
    ], w=8, unit="currencyUSD", custom=TIMESERIES, options=LEGEND)
    b.add("timeseries", "Dealer charm (USD per day)", [
        target(f"streamer_charm_usd_per_day{{{U}}}", "charm"),
    ], w=8, unit="currencyUSD", custom=TIMESERIES, options=LEGEND)

    b.row("Systematic flows")
    b.add("timeseries", "Estimated flow by fund type", [
        target(f'sum by (fund_type) (streamer_flow_usd{{{U}, horizon="$horizon"}})',
               "{{fund_type}}"),
    ], w=16, unit="currencyUSD", options=LEGEND,
        custom={**TIMESERIES, "drawStyle": "bars", "fillOpacity": 60,
                "stacking": {"mode": "normal", "group": "A"}},
        description="Positive = buying. Horizon from the variable above.")
    b.add("bargauge", "Flow now, by fund type", [
        target(f'sum by (fund_type) (streamer_flow_usd{{{U}, horizon="$horizon"}})',
               "{{fund_type}}", instant=True),
    ], w=8, unit="currencyUSD",
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 0}],
        options={"orientation": "horizontal", "displayMode": "basic",
                 "reduceOptions": {"calcs": ["lastNotNull"]}})

    b.row("Triggers")
    b.add("table", "Triggers in the time range", [
        target("sum by (rule, severity) (increase(streamer_triggers_total[$__range])) > 0",
               instant=True, fmt="table"),
    ], w=10, unit="none", decimals=0,
        options={"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]})
    b.add("stat", "Last trigger per rule", [
        target("streamer_last_trigger_timestamp_seconds * 1000", "{{rule}}", instant=True),
    ], w=7, unit="dateTimeFromNow",
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "none",
                 "textMode": "value_and_name", "colorMode": "none"})
    b.add("timeseries", "Rule evaluations per second", [
        target("sum by (rule) (rate(streamer_rule_evaluations_total[$__rate_interval]))",
               "{{rule}}"),
    ], w=7, unit="reqps", custom=TIMESERIES, options=LEGEND)

    annotations = [
        {"name": "Triggers", "enable": True, "datasource": DS, "iconColor": "orange",
         "expr": "sum by (rule, severity) (increase(streamer_triggers_total[$__rate_interval])) > 0",
         "step": "1m", "titleFormat": "{{rule}}", "textFormat": "severity {{severity}}",
         "tagKeys": "rule,severity", "useValueForTime": False},
        {"name": "Market alerts (Prometheus)", "enable": True, "datasource": DS,
         "iconColor": "red", "expr": 'ALERTS{alertstate="firing", category="market"}',
         "step": "1m", "titleFormat": "{{alertname}}", "textFormat": "{{underlying}} {{index}}",
         "tagKeys": "alertname,severity", "useValueForTime": False},
    ]
    variables = [
        query_var("underlying", "label_values(streamer_spot, underlying)", "Underlying"),
        query_var("horizon", f"label_values(streamer_flow_usd{{{U}}}, horizon)", "Flow horizon"),
    ]
    return dashboard("streamer-market", "streamer / market", b.finish(), variables=variables,
                     annotations=annotations, tags=["streamer", "market"])


def pipeline() -> dict:
    b = Board()
    b.row("Health")
    b.add("stat", "Worker scraped (up)", [
        target('up{job="streamer-worker"}', "{{instance}}", instant=True),
    ], w=4, unit="none", thresholds=[{"color": "red", "value": None},
                                     {"color": "green", "value": 1}],
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                 "graphMode": "none"})
    b.add("stat", "Worker agents running", [
        target("streamer_worker_up", "{{instance}}", instant=True),
    ], w=4, unit="none", thresholds=[{"color": "red", "value": None},
                                     {"color": "green", "value": 1}],
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                 "graphMode": "none"})
    b.add("table", "Build", [
        target("streamer_build_info", instant=True, fmt="table"),
    ], w=6, h=8, options={"showHeader": True})
    b.add("table", "Firing alerts (Prometheus)", [
        target('ALERTS{alertstate="firing"}', instant=True, fmt="table"),
    ], w=10, options={"showHeader": True},
        description="Alerts live in Prometheus (deploy/prometheus/rules); see grafana/README.md.")

    b.row("Throughput")
    b.add("timeseries", "Messages in per second", [
        target("sum by (topic) (rate(streamer_messages_in_total[$__rate_interval]))", "{{topic}}"),
    ], w=12, unit="reqps", custom=TIMESERIES, options=LEGEND)
    b.add("timeseries", "Messages out per second", [
        target("sum by (topic) (rate(streamer_messages_out_total[$__rate_interval]))",
               "{{topic}}"),
    ], w=12, unit="reqps", custom=TIMESERIES, options=LEGEND)

    b.row("Latency and lag")
    lat = "sum by (topic, le) (rate(streamer_processing_latency_seconds_bucket[$__rate_interval]))"
    b.add("timeseries", "Event time to publish: p50 / p99", [
        target(f"histogram_quantile(0.50, {lat})", "p50 {{topic}}"),
        target(f"histogram_quantile(0.99, {lat})", "p99 {{topic}}"),
    ], w=12, unit="s", custom={**TIMESERIES, "scaleDistribution": {"type": "log", "log": 10}},
        options=LEGEND)
    b.add("timeseries", "Consumer lag (messages)", [
        target("sum by (topic, partition) (streamer_consumer_lag_messages)",
               "{{topic}}/{{partition}}"),
    ], w=12, unit="short", custom=TIMESERIES, options=LEGEND)
    b.add("timeseries", "Seconds since last message", [
        target("time() - max by (topic) (streamer_last_event_timestamp_seconds)", "{{topic}}"),
    ], w=12, unit="s", custom=TIMESERIES, options=LEGEND,
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 300}],
        description="StreamerNoData fires above 300 s while the worker is up.")
    b.add("timeseries", "Dead letters per second, by reason", [
        target("sum by (reason) (rate(streamer_dead_letters_total[$__rate_interval]))",
               "{{reason}}"),
    ], w=12, unit="reqps", custom={**TIMESERIES, "drawStyle": "bars", "fillOpacity": 60,
                                   "stacking": {"mode": "normal", "group": "A"}},
        options=LEGEND)

    annotations = [
        {"name": "Pipeline alerts (Prometheus)", "enable": True, "datasource": DS,
         "iconColor": "red", "expr": 'ALERTS{alertstate="firing", category="pipeline"}',
         "step": "1m", "titleFormat": "{{alertname}}", "textFormat": "{{topic}}{{reason}}",
         "tagKeys": "alertname,severity", "useValueForTime": False},
    ]
    return dashboard("streamer-pipeline", "streamer / pipeline", b.finish(), variables=[],
                     annotations=annotations, tags=["streamer", "pipeline"])


DASHBOARDS = {"streamer-market.json": market, "streamer-pipeline.json": pipeline}


def render(build) -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, build in DASHBOARDS.items():
        path = OUT / name
        text = render(build)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale, run grafana/build_dashboards.py:", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
