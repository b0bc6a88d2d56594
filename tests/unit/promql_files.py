"""Helpers for the tests of deploy/prometheus and grafana/: promtool, PromQL extraction.

No YAML library is a dependency, so rule files are read with a small line parser that
understands the subset our rule files use (``expr:`` on one line or as a ``|`` block);
``rule_exprs`` cross-checks its count against promtool's own "N rules found".
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TEST_FILES = sorted((PROM_DIR / "tests").glob("*.yml"))
GRAFANA_DIR = REPO / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))

# values substituted for Grafana's template variables before promtool sees an expr
GRAFANA_VARS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "underlying": "SPX",
    "topic": "ticks-v1",
    "horizon": "1d",
}


def promtool() -> str:
    """Path of promtool; skips the test if missing, fails instead when CI == "true"."""
    path = shutil.which("promtool")
    if path is None:
        msg = "promtool not found on PATH (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def rule_exprs(path: Path) -> list[tuple[str, str]]:
    """(alert or record name, expr) for every rule of a rule file, in file order."""
    lines = path.read_text().splitlines()
    out: list[tuple[str, str]] = []
    name = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*-\s*(alert|record):\s*(\S+)", line)
        if m:
            name = m.group(2)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest in ("|", "|-", ">", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip()
                                          or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                expr = "\n".join(block).strip()
                out.append((name, expr))
                continue
            if rest[:1] in "'\"":
                rest = json.loads(rest) if rest[0] == '"' else rest[1:-1].replace("''", "'")
            out.append((name, rest))
        i += 1
    return out


def grafana_exprs(path: Path) -> list[tuple[str, str]]:
    """(where, expr) for every PromQL query in a dashboard: panel targets, annotations and
    template variables (``label_values(metric, label)`` yields ``metric``)."""
    dash = json.loads(path.read_text())
    out: list[tuple[str, str]] = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"panel {p.get('id')} {p.get('title')!r} ref {t.get('refId')}",
                            t["expr"]))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"annotation {a.get('name')!r}", a["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and q:
            m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*", q)
            out.append((f"variable {v.get('name')!r}", m.group(1) if m else q))
    return out


def substitute_grafana_vars(expr: str) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARS:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARS[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


_AGGR_AND_KEYWORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "atan2", "inf", "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (a lexical scan, good for our exprs).

    >>> sorted(metric_names('sum by (topic, le) (rate(a_bucket{x="y"}[5m])) / on () b offset 1m'))
    ['a_bucket', 'b']
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\{[^}]*\}", " ", s)                                                 # matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                                                # ranges
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _AGGR_AND_KEYWORDS:
            continue
        names.add(word)
    return names


def check_exprs_with_promtool(exprs: list[tuple[str, str]]) -> subprocess.CompletedProcess:
    """Syntax-check exprs by writing each as a recording rule and running promtool."""
    lines = ["groups:", "  - name: exprs_under_test", "    rules:"]
    for i, (_, expr) in enumerate(exprs):
        lines += [f"      - record: expr_{i}", f"        expr: {json.dumps(expr)}"]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "exprs.yml"
        p.write_text("\n".join(lines) + "\n")
        return run_promtool("check", "rules", str(p))
