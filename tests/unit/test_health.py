"""/metrics, /healthz and /readyz of streamer.health over real HTTP."""
from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from streamer import health


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("health_test_messages", "test counter", ["topic"], registry=reg).labels("a").inc(3)
    return reg


def test_endpoints_follow_the_readiness_callable(registry):
    state = {"ready": (False, "waiting for partition assignment")}
    srv = health.serve("127.0.0.1", 0, lambda: state["ready"], registry=registry)
    try:
        assert srv.port > 0 and srv.addr == "127.0.0.1"
        assert get(srv.url + "/healthz")[0] == 200
        code, _, body = get(srv.url + "/readyz")
        assert (code, body.strip()) == (503, "waiting for partition assignment")
        state["ready"] = (True, "consuming, lag 12")
        code, _, body = get(srv.url + "/readyz")
        assert (code, body.strip()) == (200, "consuming, lag 12")
        state["ready"] = (False, "lag 90000 above 50000")  # readiness can be lost again
        assert get(srv.url + "/readyz")[0] == 503
        code, ctype, body = get(srv.url + "/metrics")
        assert code == 200 and ctype.startswith("text/plain; version=")
        assert 'health_test_messages_total{topic="a"} 3.0' in body
        assert get(srv.url + "/nope")[0] == 404
        assert get(srv.url + "/healthz?verbose=1")[0] == 200
    finally:
        srv.close()


def test_a_failing_readiness_check_is_not_ready(registry):
    def broken():
        raise RuntimeError("engine not built")
    srv = health.serve("127.0.0.1", 0, broken, registry=registry)
    try:
        code, _, body = get(srv.url + "/readyz")
        assert code == 503 and "RuntimeError: engine not built" in body
        assert get(srv.url + "/healthz")[0] == 200
    finally:
        srv.close()


def test_probes_answer_while_readiness_blocks_and_close_frees_the_port(registry):
    release = threading.Event()

    def slow():
        release.wait(5)
        return True, "ok"

    srv = health.serve("127.0.0.1", 0, slow, registry=registry)
    t = threading.Thread(target=get, args=(srv.url + "/readyz",))
    t.start()
    try:
        assert get(srv.url + "/healthz")[0] == 200  # one request per thread: not stuck behind /readyz
    finally:
        release.set()
        t.join(5)
        srv.close()
    port = srv.port
    again = health.serve("127.0.0.1", port, lambda: (True, ""), registry=registry)  # port is free again
    try:
        assert get(f"http://127.0.0.1:{port}/readyz") == (200, "text/plain; charset=utf-8", "ready\n")
    finally:
        again.close()
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/healthz")


def test_binds_to_loopback_only_by_default_address(registry):
    srv = health.serve("127.0.0.1", 0, lambda: (True, ""), registry=registry)
    try:
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.connect(("10.255.255.255", 1))  # no packet sent: picks the outgoing interface's address
                ip = u.getsockname()[0]
            except OSError:
                ip = "127.0.0.1"
        if ip.startswith("127."):
            pytest.skip("no non-loopback address on this machine")
        with pytest.raises(OSError):
            socket.create_connection((ip, srv.port), timeout=2).close()
    finally:
        srv.close()
