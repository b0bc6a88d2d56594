"""The worker's HTTP endpoints for Prometheus and Kubernetes, on one port:

  /metrics  the Prometheus registry (text exposition format)
  /healthz  200 while the process serves HTTP at all (liveness: a hung or dead process fails it)
  /readyz   200 when ``ready()`` says so, else 503 with its reason (readiness: assigned partitions,
            state recovered, consuming, lag below a bound; the worker decides)

stdlib ``http.server`` in a daemon thread, so a busy event loop cannot starve the probes and the
probes cannot block the loop: ``ready`` must be cheap and thread-safe (e.g. read a few attributes).
Binds to 127.0.0.1 unless told otherwise (settings ``metrics_addr``; 0.0.0.0 in a container).
"""
from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Ready = Callable[[], "tuple[bool, str]"]


class HealthServer:
    """A running server; ``port`` is the bound port (useful with port 0), ``close()`` stops it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.addr, self.port = httpd.server_address[:2]

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in str(self.addr) else self.addr
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def serve(addr: str, port: int, ready: Ready, registry: CollectorRegistry = REGISTRY) -> HealthServer:
    """Serve /metrics, /healthz and /readyz on ``addr``:``port`` in a background thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                try:
                    ok, reason = ready()
                except Exception as exc:  # noqa: BLE001 - a failing check means "not ready", not a 500
                    ok, reason = False, f"readiness check failed: {type(exc).__name__}: {exc}"
                self._send(200 if ok else 503, (reason or ("ready" if ok else "not ready")).encode() + b"\n")
            else:
                self._send(404, b"not found: try /metrics, /healthz, /readyz\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:  # probes every few seconds: debug, not stderr
            log.debug("%s " + fmt, self.address_string(), *args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    httpd = Server((addr, port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="streamer-health", daemon=True)
    thread.start()
    return HealthServer(httpd, thread)
