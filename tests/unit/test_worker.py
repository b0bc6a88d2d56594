"""The worker's process set-up that needs no broker (the pipeline itself: tests/integration)."""
from __future__ import annotations

import gc

import pytest

from streamer.app.worker import Pipeline, Worker
from streamer.settings import Settings


@pytest.fixture
def pipe():
    """A worker's pipeline service, not started (no broker): its checkpoint thread is shut down after."""
    p = Pipeline(Worker(Settings()), loop=None)
    yield p
    p.packer.shutdown()


def test_ready_worker_freezes_its_start_up_objects():
    """Once serving, the start-up objects are out of the collector's generations: a full collection
    scans only what came later (no ~80 ms gen-2 stall of the pipeline)."""
    gc.unfreeze()
    try:
        w = Worker(Settings())
        assert gc.get_freeze_count() == 0
        w.on_ready()
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        assert len(gc.get_objects(generation=2)) < frozen
    finally:
        gc.unfreeze()


def test_worker_logs_at_its_level_only():
    """The Faust worker's logging set-up keeps the root logger at the chosen level (Faust's start-up spinner
    would set it to DEBUG: every aiokafka debug line of every fetch would then be formatted)."""
    import logging

    from streamer.app.worker import _FaustWorker

    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        w = Worker(Settings())
        fw = _FaustWorker(w.app, loglevel="warning", quiet=True, redirect_stdouts=False)
        fw._setup_logging()
        assert root.level == logging.WARNING
        assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


def test_checkpoints_are_packed_below_the_pipelines_priority(pipe):
    """The checkpoint thread runs at a lower priority than the pipeline's thread (Linux: per-thread niceness),
    so that deflating a checkpoint does not delay segments on a small machine."""
    import os
    import threading

    from streamer.app.worker import BACKGROUND_NICE

    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    there = pipe.packer.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    assert there == min(here + BACKGROUND_NICE, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here  # the caller's is unchanged


def test_a_fetch_waits_no_longer_than_the_watermarks_bounded_wait(pipe):
    """A segment held only by the bounded wait closes when the wait runs out, not with the next input or the
    fetch's 100 ms: the fetch timeout is cut to the mergers' earliest wake-up."""
    import time

    from streamer.app.worker import FETCH_WAIT_MS, PartitionState
    from streamer.pipeline import PartitionMerger

    assert pipe._fetch_timeout_ms() == FETCH_WAIT_MS  # no partition
    a, b = (PartitionState(p, PartitionMerger(10_000_000, 5_000_000_000, 5_000_000)) for p in (0, 1))
    pipe.partitions = {0: a, 1: b}
    assert pipe._fetch_timeout_ms() == FETCH_WAIT_MS  # nothing held by a wait
    pipe.listened_ns = 5_000_000_000  # the mergers' clock: time spent waiting for input
    a.merger.wake_ns = pipe.listened_ns + 30_000_000
    b.merger.wake_ns = pipe.listened_ns + 6_500_000
    time.sleep(0.01)  # busy time does not count
    assert pipe._fetch_timeout_ms() == 7
    b.merger.wake_ns = pipe.listened_ns - 1
    assert pipe._fetch_timeout_ms() == 0  # overdue: do not wait for input
    a.merger.wake_ns = b.merger.wake_ns = pipe.listened_ns + 10 * FETCH_WAIT_MS * 1_000_000
    assert pipe._fetch_timeout_ms() == FETCH_WAIT_MS


def test_the_mergers_clock_runs_only_while_the_worker_waits_for_input(pipe, monkeypatch):
    """A topic's silence is counted in time spent listening: a worker busy applying a segment has not looked
    at its inputs (live quotes kept coming meanwhile), so that time must not make a topic look silent and close
    a segment before its quotes were fetched."""
    import asyncio
    import time

    import streamer.app.worker as W

    async def fetch(consumer, timeout_ms, max_records):
        await asyncio.sleep(0.02)  # waited 20 ms for input, got none
        return {}

    monkeypatch.setattr(W, "getmany_columns", fetch)
    pipe.consumer = type("Consumer", (), {"assignment": lambda self: set()})()
    pipe.serving = True
    for _ in range(2):
        asyncio.run(pipe.step())
        time.sleep(0.05)  # busy 50 ms between fetches
    assert 0.03e9 <= pipe.listened_ns < 0.06e9  # the two 20 ms waits, not the 100 ms of work between


def test_the_lag_gauges_follow_the_high_water_marks(pipe):
    """Every fetch the positions update the mergers' high-water marks and the lag (the gauge is only written
    when its value changes: the gauge and the total still follow every change)."""
    from aiokafka import TopicPartition

    from streamer.app.worker import PartitionState
    from streamer.metrics import METRICS
    from streamer.pipeline import PartitionMerger

    tps = [TopicPartition(t, 7) for t in pipe.names.inputs()]
    hw = {tps[0]: 5, tps[1]: 10, tps[2]: None}  # open interest: no fetch answered yet
    pipe.consumer = type("Consumer", (), {"assignment": lambda self: set(tps),
                                          "highwater": lambda self, tp: hw[tp]})()
    part = pipe.partitions[7] = PartitionState(7, PartitionMerger(10, 0))
    part.merger.topics[1].next_offset = 4

    def gauge(tp):
        return METRICS.consumer_lag(tp.topic, "7")._value.get()

    for step in range(4):
        if step == 2:
            part.merger.topics[1].next_offset = 10  # quotes caught up
        if step == 3:
            hw[tps[0]] = 9  # more index ticks
        pipe._positions(0)
        want = [hw[tps[0]], 10 - part.merger.topics[1].next_offset]
        assert [part.merger.topics[k].highwater for k in range(3)] == [hw[tps[0]], 10, -1]
        assert [gauge(tp) for tp in tps[:2]] == want
        assert pipe.lag == sum(want)
