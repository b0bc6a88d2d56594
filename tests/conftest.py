"""Shared fixtures. Integration fixtures own the broker's lifecycle and give each test its own topics.

Under ``CI=true`` a broker that cannot be started is a failure, never a skip.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kafka_helpers import stop_process

from streamer import broker

CI = os.environ.get("CI") == "true"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # real market data beside the checkout (never copied in)


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """At module level: skip the module when ``path`` is absent, except under CI, where that fails."""
    if not path.exists():
        if CI:
            raise RuntimeError(f"shared data {path} is missing under CI")
        pytest.skip(f"shared data {path} not present", allow_module_level=True)
    return path


@pytest.fixture(scope="session")
def kafka() -> broker.BrokerConfig:
    """The real local Kafka broker (started here if it is not up; stopped at the end if we started it)."""
    cfg = broker.BrokerConfig()
    started = False
    if not broker.is_up(cfg):
        try:
            broker.start(cfg, quiet=True)
            started = True
        except Exception as exc:  # noqa: BLE001 - reported either way
            if CI:
                pytest.fail(f"Kafka broker unavailable under CI: {exc}")
            pytest.skip(f"Kafka broker unavailable ({exc}); run `streamer broker start`")
    yield cfg
    if started:
        broker.stop(cfg, quiet=True)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: every socket stays bound until all are chosen (two separate lookups return
    the same port about once in 8,000 pairs here, and a broker refuses a port for two listeners)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def prefix() -> str:
    """A topic prefix unique to this test (and so a fresh consumer group and state)."""
    return f"t{uuid.uuid4().hex[:10]}-"


class WorkerProcess:
    """`streamer worker` as a real subprocess, as it runs in production."""

    def __init__(self, prefix: str, bootstrap: str, data_dir: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.prefix = prefix
        self.metrics_port = free_port()
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="streamer-worker-")
        self.log = open(Path(self.data_dir) / "worker.log", "ab")
        env = dict(os.environ, STREAMER_DATA_DIR=self.data_dir, **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamer.cli", "worker", "--topic-prefix", prefix,
             "--bootstrap", bootstrap, "--metrics-port", str(self.metrics_port), "--loglevel", "info"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def metrics(self) -> dict:
        from streamer.commands.demo import scrape
        return scrape(self.metrics_port)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until the worker reports it has recovered its state and is serving."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker died: see {self.log.name}"
            if self.metrics().get(("streamer_worker_up", ())) == 1.0:
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout}s; see {self.log.name}")

    def wait_consumed(self, sent: dict[str, int], timeout: float = 120.0) -> dict:
        """Block until the worker's own counters show every message of ``sent`` consumed."""
        from streamer.commands.demo import consumed
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker died: see {self.log.name}"
            m = self.metrics()
            if m and all(consumed(m, t) >= n for t, n in sent.items()):
                return m
            time.sleep(0.3)
        raise AssertionError(f"worker did not consume {sent} within {timeout}s; last metrics seen above")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final checkpoint, no LeaveGroup."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def value(self, name: str, **labels: str) -> float:
        """One sample of the worker's metrics (0 when absent or the worker does not answer)."""
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def stop(self) -> None:
        if self.log.closed:
            return
        stop_process(self.proc)
        self.log.close()


@pytest.fixture
def start_worker(kafka):
    """Factory: start_worker(prefix) → a running WorkerProcess, stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(prefix: str, data_dir: str | None = None, env: dict[str, str] | None = None) -> WorkerProcess:
        import asyncio

        from streamer import kafka_io
        from streamer.settings import load_settings

        # topics first: a Faust worker subscribed to missing topics waits for a rebalance to see them
        s = load_settings(bootstrap=kafka.bootstrap, topic_prefix=prefix)
        asyncio.run(kafka_io.ensure_topics(s, kafka_io.topics_for(s).all()))
        w = WorkerProcess(prefix, kafka.bootstrap, data_dir, env)
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()


def read_records(settings, topics: list[str], max_record_bytes: int = 16 * 1024 * 1024) -> list:
    """Every record of ``topics`` up to their end offsets now (no consumer group), sorted by (topic,
    partition, offset); takes records up to ``max_record_bytes`` (the hostile suite's 10 MB inputs)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    from streamer import kafka_io

    async def go():
        c = AIOKafkaConsumer(*topics, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                             max_partition_fetch_bytes=max_record_bytes, fetch_max_bytes=4 * max_record_bytes,
                             **kafka_io.client_options(settings))
        await kafka_io.start_client(c, settings)
        try:
            parts: set = set()
            while {tp.topic for tp in parts} != set(topics):  # without a group: every partition of them
                parts = c.assignment()
                await asyncio.sleep(0.05)
            end = await c.end_offsets(list(parts))
            out = []
            while [tp for tp in parts if await c.position(tp) < end[tp]]:
                for tp, recs in (await c.getmany(timeout_ms=1000)).items():
                    out.extend(r for r in recs if r.offset < end[tp])
            return sorted(out, key=lambda r: (r.topic, r.partition, r.offset))
        finally:
            await c.stop()
    return asyncio.run(go())
