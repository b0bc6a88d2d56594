"""PartitionMerger's wake-up time: when a segment that only silent-but-recent topics hold closes with no new
input (the worker cuts its fetch timeout to it)."""
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


def test_a_segment_held_by_a_recent_topic_closes_once_it_has_been_silent_for_the_wait():
    m = _merger()
    m.add(QUOTES, _rows([1 * MS, 12 * MS]), next_offset=2, highwater=2, now_ns=100 * MS)
    m.add(INDEX, _rows([2 * MS]), next_offset=1, highwater=1, now_ns=99 * MS)
    # [0, 10 ms): quotes passed 10 ms; the index is caught up, behind, heard 2 ms ago: it holds the segment
    assert m.pop_ready(now_ns=101 * MS) == []
    assert m.wake_ns == 104 * MS
    assert m.pop_ready(now_ns=104 * MS - 1) == [] and m.wake_ns == 104 * MS
    assert [b.end_ns for b in m.pop_ready(now_ns=104 * MS)] == [10 * MS]


def test_the_wake_up_is_when_the_last_holding_topic_has_been_silent_for_the_wait():
    m = _merger(wait_ms=50, idle_ms=20)  # an idle time shorter than the wait bounds the silence
    m.add(QUOTES, _rows([1 * MS, 5 * MS]), next_offset=2, highwater=2, now_ns=100 * MS)
    m.add(INDEX, _rows([2 * MS]), next_offset=1, highwater=1, now_ns=90 * MS)
    assert m.pop_ready(now_ns=101 * MS) == []  # both caught up, behind 10 ms, heard within 20 ms
    assert m.wake_ns == 120 * MS  # the quotes, heard last, silent 20 ms by then
    assert m.pop_ready(now_ns=119 * MS) == []
    assert [b.end_ns for b in m.pop_ready(now_ns=120 * MS)] == [10 * MS]


def test_a_topic_the_broker_has_more_of_sets_no_wake_up():
    m = _merger()
    m.add(QUOTES, _rows([1 * MS, 12 * MS]), next_offset=2, highwater=2, now_ns=100 * MS)
    m.add(INDEX, _rows([2 * MS]), next_offset=1, highwater=7, now_ns=100 * MS)  # not caught up
    assert m.pop_ready(now_ns=500 * MS) == []
    assert m.wake_ns is None  # only new input closes it
    m.add(INDEX, _rows([11 * MS], 1), next_offset=2, highwater=2, now_ns=501 * MS)
    assert [b.end_ns for b in m.pop_ready(now_ns=501 * MS)] == [10 * MS]
    assert m.wake_ns == 506 * MS  # [10, 20 ms): both caught up, behind 20 ms, the index heard at 501 ms
