"""PartitionMerger's wake-up time: when a segment held only by the bounded wait closes with no new input."""
from __future__ import annotations

import numpy as np

from streamer.pipeline import INDEX, OPEN_INTEREST, QUOTES, PartitionMerger

MS = 1_000_000


def _rows(ts: list[int], first_offset: int = 0) -> dict:
    return {"ts_ns": np.array(ts, np.int64), "offset": np.arange(first_offset, first_offset + len(ts), dtype=np.int64),
            "underlying": np.array(["SPX"] * len(ts), object)}


def _merger(wait_ms: int = 5, idle_ms: int = 1000) -> PartitionMerger:
    m = PartitionMerger(interval_ns=10 * MS, idle_ns=idle_ms * MS, wait_ns=wait_ms * MS)
    m.position(OPEN_INTEREST, highwater=0)  # empty: caught up, never active
    return m


def test_a_segment_held_by_the_bounded_wait_says_when_it_closes():
    m = _merger()
    m.add(QUOTES, _rows([1 * MS, 12 * MS]), next_offset=2, highwater=2, now_ns=100 * MS)
    m.add(INDEX, _rows([2 * MS]), next_offset=1, highwater=1, now_ns=100 * MS)
    # [0, 10 ms): quotes passed 10 ms; the index is caught up and active, behind: the wait starts now
    assert m.pop_ready(now_ns=101 * MS) == []
    assert m.wake_ns == 106 * MS
    assert m.pop_ready(now_ns=106 * MS - 1) == [] and m.wake_ns == 106 * MS
    assert [b.end_ns for b in m.pop_ready(now_ns=106 * MS)] == [10 * MS]


def test_an_idle_deadline_that_comes_first_is_the_wake_up():
    m = _merger(wait_ms=50, idle_ms=20)
    m.add(QUOTES, _rows([1 * MS, 12 * MS]), next_offset=2, highwater=2, now_ns=100 * MS)
    m.add(INDEX, _rows([2 * MS]), next_offset=1, highwater=1, now_ns=90 * MS)
    assert m.pop_ready(now_ns=101 * MS) == []
    assert m.wake_ns == 110 * MS  # the index has been silent 20 ms by then: idle, it holds nothing back
    assert [b.end_ns for b in m.pop_ready(now_ns=110 * MS)] == [10 * MS]


def test_a_topic_the_broker_has_more_of_sets_no_wake_up():
    m = _merger()
    m.add(QUOTES, _rows([1 * MS, 12 * MS]), next_offset=2, highwater=2, now_ns=100 * MS)
    m.add(INDEX, _rows([2 * MS]), next_offset=1, highwater=7, now_ns=100 * MS)  # not caught up
    assert m.pop_ready(now_ns=500 * MS) == []
    assert m.wake_ns is None  # only new input closes it
    m.add(INDEX, _rows([11 * MS], 1), next_offset=2, highwater=2, now_ns=501 * MS)
    assert [b.end_ns for b in m.pop_ready(now_ns=501 * MS)] == [10 * MS]
    assert m.wake_ns == 506 * MS  # [10, 20 ms): both caught up and behind 20 ms now, a bounded wait
