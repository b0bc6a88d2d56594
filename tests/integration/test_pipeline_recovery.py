"""Determinism and recovery of the worker on the real broker: live vs backlog, kill -9, a broker outage, two
workers, restarts during start-up. The reference for every run is the same input driven offline through the
engine's one entry point (``engine.run_offline``): the worker must produce the same trigger ids, and the same
final snapshot."""
from __future__ import annotations

import dataclasses
import math
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import pytest
from aiokafka.partitioner import DefaultPartitioner
from conftest import WorkerProcess, free_ports
from kafka_helpers import publish, read_topic, settings_for

from streamer import broker, kafka_io, schemas, simulator
from streamer.engine import run_offline
from streamer.pipeline import INDEX, OPEN_INTEREST, QUOTES
from streamer.settings import Settings, load_settings

pytestmark = pytest.mark.integration
NS = 1_000_000_000
KIND = {"index_tick": INDEX, "daily_close": INDEX, "option_quote": QUOTES, "open_interest": OPEN_INTEREST}
FAST_RECOVERY = {"STREAMER_CHECKPOINT_INTERVAL_S": "0.3"}


class Ev(NamedTuple):
    kind: str
    key: str
    msg: object


@pytest.fixture(scope="module")
def election() -> list[Ev]:
    return [Ev(e.kind, e.key, e.msg) for e in simulator.generate("election-2024", 0, preset="fast")]


def relabel(events: list[Ev], underlying: str) -> list[Ev]:
    """The same scenario for another underlying (its own index series; the VIX stays the VIX)."""
    out = []
    for e in events:
        m = dataclasses.replace(e.msg, underlying=underlying)
        if getattr(m, "symbol", None) == e.key:
            m = dataclasses.replace(m, symbol=underlying)
        out.append(Ev(e.kind, underlying, m))
    return out


def reference(events: list[Ev]):
    """(triggers, final snapshot) of an uninterrupted offline run of one underlying's events."""
    triggers, snaps, _ = run_offline([(KIND[e.kind], e.key.encode(), schemas.encode(e.msg)) for e in events],
                                     Settings())
    return triggers, snaps[-1]


def outputs(s, underlying: str):
    """(trigger events by id, every payload seen per id, last snapshot) of ``underlying`` in the output topics."""
    names = kafka_io.topics_for(s)
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for r in read_topic(s, names.triggers, 2.0):
        ev = schemas.parse_trigger_event(r.value)
        if ev.underlying == underlying:
            by_id[ev.event_id].add(r.value)
    snaps = [r.value for r in read_topic(s, names.analytics, 2.0) if r.key == underlying.encode()]
    return by_id, snaps[-1] if snaps else None


def wait_for(cond, timeout: float, what: str, worker: WorkerProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if worker is not None:
            assert worker.proc.poll() is None, f"worker died: see {worker.log.name}"
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def readyz(w: WorkerProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_port}/readyz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def applied(w: WorkerProcess, underlying: str = "SPX") -> float:
    return w.value("streamer_input_seq", underlying=underlying)


def assert_same_as_reference(s, events: list[Ev], underlying: str = "SPX") -> None:
    want_t, want_snap = reference(events)
    by_id, last = outputs(s, underlying)
    assert set(by_id) == {t.event_id for t in want_t}
    assert all(len(p) == 1 for p in by_id.values()), "a redelivered trigger is the same event, byte for byte"
    got = schemas.loads(last)
    assert got["input_seq"] == len(events) == want_snap.input_seq and got["ts_ns"] == want_snap.ts_ns
    for k, v in want_snap.values.items():
        g = got["values"][k]
        assert (g is None) == (v is None), k
        if v is not None:
            assert math.isclose(g, v, rel_tol=1e-9, abs_tol=1e-9), (k, g, v)


def test_live_and_backlog_runs_are_identical(kafka, start_worker, election):
    """The election input at full speed into a running worker, and the same input published before the worker
    starts: identical trigger events (ids, times, notionals: byte for byte) and identical final snapshots."""
    runs = []
    for live in (True, False):
        prefix = f"t{time.monotonic_ns() % 10**10}{'l' if live else 'b'}-"
        s = settings_for(kafka, prefix)
        if live:
            w = start_worker(prefix)
            w.wait_ready()
            publish(s, None, events=election)
        else:
            publish(s, None, events=election)
            w = start_worker(prefix)
        wait_for(lambda: applied(w) == len(election), 120, "every input applied", w)
        by_id, last = outputs(s, "SPX")
        runs.append((sorted(p for ps in by_id.values() for p in ps), last))
        w.stop()
    assert runs[0] == runs[1]
    want_t, want_snap = reference(election)
    assert runs[0][0] == sorted(schemas.encode(t) for t in want_t)  # and the offline run's, byte for byte
    assert runs[0][1] == schemas.encode(want_snap)


def test_kill_9_at_three_points_loses_and_changes_nothing(kafka, prefix, start_worker):
    events = [Ev(e.kind, e.key, e.msg) for e in simulator.generate("election-2024", 1, preset="demo")]
    s = settings_for(kafka, prefix)
    publish(s, None, events=events)
    env = dict(FAST_RECOVERY, STREAMER_GROUP_INSTANCE_ID="worker-a")  # static membership: rejoin at once
    for frac in (0.25, 0.5, 0.75):
        w = start_worker(prefix, env=env)
        t0 = time.monotonic()
        wait_for(lambda: applied(w) >= frac * len(events), 180, f"{frac:.0%} applied", w)
        w.kill()
    w = start_worker(prefix, env=env)
    t0 = time.monotonic()
    wait_for(lambda: w.value("streamer_worker_up") == 1, 30, "the restarted worker serving", w)
    assert time.monotonic() - t0 < 15, "back to work in seconds, not after a session timeout"
    wait_for(lambda: applied(w) == len(events), 180, "every input applied", w)
    assert_same_as_reference(s, events)


def test_broker_outage_mid_stream(start_worker, election):
    """A broker of its own (stopped and restarted mid-stream): the worker resumes and nothing is lost."""
    port, controller_port = free_ports(2)
    cfg = broker.BrokerConfig(port=port, controller_port=controller_port,
                              data_dir=Path(tempfile.mkdtemp(prefix="streamer-outage-")))
    broker.start(cfg, quiet=True)
    w = None
    try:
        s = load_settings(bootstrap=cfg.bootstrap, topic_prefix="outage-")
        events = [Ev(e.kind, e.key, e.msg) for e in simulator.generate("election-2024", 2, preset="demo")]
        publish(s, None, events=events)
        w = WorkerProcess("outage-", cfg.bootstrap, env=FAST_RECOVERY)
        wait_for(lambda: applied(w) >= 0.3 * len(events), 180, "30% applied", w)
        assert readyz(w)[0] == 200
        broker.stop(cfg, quiet=True)
        wait_for(lambda: w.value("streamer_worker_up") == 0, 30, "worker_up 0 while the broker is down", w)
        code, reason = readyz(w)
        assert code == 503 and "broker unreachable" in reason
        time.sleep(3)
        assert w.proc.poll() is None, "the worker survives the outage"
        broker.start(cfg, quiet=True)
        wait_for(lambda: applied(w) == len(events), 240, "every input applied after the outage", w)
        wait_for(lambda: readyz(w)[0] == 200 and w.value("streamer_worker_up") == 1, 30, "ready again", w)
        log = Path(w.log.name).read_text(errors="replace")
        assert log.count("Unable connect to node") <= 3, "repeated connection errors are rate-limited"
        assert_same_as_reference(s, events)
    finally:
        if w is not None:
            w.stop()
        broker.stop(cfg, quiet=True)


def test_two_workers_share_the_partitions_and_take_over_after_kill_9(kafka, prefix, start_worker, election):
    """SPX and XSP live on different partitions: each of two workers owns one; kill -9 of one moves its
    underlying to the other, with its state (from the checkpoint) intact."""
    s = settings_for(kafka, prefix)
    xsp = relabel(election, "XSP")
    assert {DefaultPartitioner()(u.encode(), [0, 1], [0, 1]) for u in ("SPX", "XSP")} == {0, 1}
    half = len(election) // 2
    cut = max(e.msg.ts_ns for e in election[:half]) // NS * NS + NS  # a segment boundary
    first = [e for e in election if e.msg.ts_ns < cut]
    publish(s, None, events=first + [e for e in xsp if e.msg.ts_ns < cut])
    a = start_worker(prefix, env=dict(FAST_RECOVERY, STREAMER_GROUP_INSTANCE_ID="a"))
    b = start_worker(prefix, env=dict(FAST_RECOVERY, STREAMER_GROUP_INSTANCE_ID="b"))
    wait_for(lambda: a.value("streamer_partitions_assigned") == b.value("streamer_partitions_assigned") == 1,
             60, "one partition each")
    wait_for(lambda: max(applied(a, "SPX"), applied(b, "SPX")) == len(first)
             and max(applied(a, "XSP"), applied(b, "XSP")) == len(first), 60, "the first half applied")
    time.sleep(1.0)  # at least one checkpoint after the first half
    a.kill()
    rest = [e for e in election if e.msg.ts_ns >= cut]
    publish(s, None, events=rest + [e for e in xsp if e.msg.ts_ns >= cut])
    # the group notices the dead member after its session timeout (10 s), then b owns both partitions
    wait_for(lambda: b.value("streamer_partitions_assigned") == 2, 60, "b owns both partitions", b)
    wait_for(lambda: applied(b, "SPX") == applied(b, "XSP") == len(election), 120, "every input applied", b)
    assert_same_as_reference(s, election, "SPX")
    assert_same_as_reference(s, xsp, "XSP")


def test_twenty_restarts_with_input_published_during_start_up(kafka, prefix, start_worker, election):
    """The start-up race: each worker gets a slice of the input published while it starts; none is lost."""
    s = settings_for(kafka, prefix)
    bounds = sorted({(e.msg.ts_ns // NS + 1) * NS for e in election})
    cuts = [bounds[len(bounds) * i // 20] for i in range(1, 20)]  # slices end on segment boundaries
    slices, start = [], 0
    for c in cuts + [None]:
        end = len(election) if c is None else next(i for i, e in enumerate(election) if e.msg.ts_ns >= c)
        slices.append(election[start:end])
        start = end
    assert sum(map(len, slices)) == len(election) and len(slices) == 20
    done = 0
    for part in slices:
        w = start_worker(prefix, env=dict(FAST_RECOVERY, STREAMER_GROUP_INSTANCE_ID="r"))
        publish(s, None, events=part)  # while the worker starts, joins, loads its checkpoint and seeks
        done += len(part)
        wait_for(lambda: applied(w) == done, 60, f"{done} inputs applied", w)
        w.stop()
    assert_same_as_reference(s, election)
