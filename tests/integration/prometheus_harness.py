"""A real Prometheus for tests: scrapes one target every second, with streamer's rules loaded.

    with PrometheusHarness("127.0.0.1:9308") as prom:
        prom.wait_for('streamer_spot{underlying="SPX"}')
        assert prom.value('up{job="streamer-worker"}') == 1
        prom.wait_for('ALERTS{alertname="StreamerTriggerFired",alertstate="firing"}')

The binary is ``prometheus`` on PATH (Debian: /usr/bin/prometheus) or $PROMETHEUS_BIN.
``require_prometheus()`` skips a test when it is missing, or fails it when CI == "true".
Each harness gets a free 127.0.0.1 port and a temporary directory (config, TSDB, log), all
removed on ``stop()``. Only the standard library is used (urllib for the HTTP API).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = tuple(sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml")))
JOB = "streamer-worker"  # the job name the alert rules expect


def prometheus_binary() -> str | None:
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")


def require_prometheus() -> str:
    """Path of the prometheus binary; pytest-skips if absent (fails when CI == "true")."""
    import pytest

    path = prometheus_binary()
    if path is None:
        msg = "prometheus binary not found (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusError(RuntimeError):
    pass


class PrometheusHarness:
    """Start/stop a Prometheus scraping ``targets`` (host:port) as job ``streamer-worker``.

    scrape_interval_s / evaluation_interval_s: both 1 s by default so rules see data fast.
    """

    def __init__(self, targets: str | Iterable[str], *, rule_files: Iterable[Path] = RULE_FILES,
                 scrape_interval_s: float = 1.0, evaluation_interval_s: float = 1.0,
                 job: str = JOB, binary: str | None = None) -> None:
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval_s = scrape_interval_s
        self.evaluation_interval_s = evaluation_interval_s
        self.job = job
        self.binary = binary or prometheus_binary()
        self.port: int | None = None
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._log = None

    # -- lifecycle --------------------------------------------------------------------------

    def config_text(self) -> str:
        """The prometheus.yml used (JSON is valid YAML, so no YAML library is needed)."""
        cfg = {
            "global": {"scrape_interval": f"{self.scrape_interval_s:g}s",
                       "scrape_timeout": f"{self.scrape_interval_s:g}s",
                       "evaluation_interval": f"{self.evaluation_interval_s:g}s"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{"job_name": self.job, "static_configs": [
                {"targets": self.targets}]}],
        }
        return json.dumps(cfg, indent=2)

    def start(self, timeout_s: float = 30.0) -> "PrometheusHarness":
        if self.binary is None:
            raise PrometheusError("prometheus binary not found")
        self._tmp = tempfile.TemporaryDirectory(prefix="streamer-prom-")
        d = Path(self._tmp.name)
        (d / "prometheus.yml").write_text(self.config_text())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(d / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={d / 'prometheus.yml'}",
             f"--storage.tsdb.path={d / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Prometheus shuts down cleanly), SIGKILL after timeout_s; remove temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "PrometheusHarness":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def log(self) -> str:
        if self._tmp is None:
            return ""
        p = Path(self._tmp.name) / "prometheus.log"
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""

    # -- HTTP API -----------------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; returns ``data`` or raises PrometheusError with the error."""
        qs = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}/api/v1/{path}" + (f"?{qs}" if qs else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant query; returns the result list (vector: [{"metric": {...}, "value": [t, "v"]}])."""
        data = self.api("query", query=expr, time=at)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` now, None if empty; raises if several series."""
        res = self.query(expr)
        if not res:
            return None
        if len(res) > 1:
            raise PrometheusError(f"{expr}: {len(res)} series, expected one")
        return float(res[0]["value"][1])

    def wait_for(self, expr: str, timeout_s: float = 20.0,
                 predicate: Callable[[list[dict]], bool] = bool, poll_s: float = 0.25
                 ) -> list[dict]:
        """Poll ``query(expr)`` until ``predicate(result)`` (default: non-empty)."""
        deadline = time.monotonic() + timeout_s
        res: list[dict] = []
        while time.monotonic() < deadline:
            res = self.query(expr)
            if predicate(res):
                return res
            time.sleep(poll_s)
        raise PrometheusError(f"timeout after {timeout_s} s waiting for {expr!r}; last: {res}")

    def targets_health(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def rules(self) -> list[dict]:
        return [r for g in self.api("rules")["groups"] for r in g["rules"]]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def missing_series(self, names: Iterable[str]) -> list[str]:
        """Names from ``names`` (e.g. streamer.metrics.DASHBOARD_SERIES) with no data now."""
        return [n for n in names if not self.query(f"count({{__name__={json.dumps(n)}}})")]
