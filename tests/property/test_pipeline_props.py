"""The per-partition merge (streamer/pipeline.py) against a from-scratch reference: whatever the fetch sizes
and however the topics' chunks interleave, a backlog yields the segments of a plain sort by event time."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.pipeline import KINDS, MERGE_ROWS, PartitionMerger

#: a topic's small chunks merged before a close (the default), never, or up to a few rows
MERGES = st.sampled_from([MERGE_ROWS, 0, 8])

INTERVAL = 100


def table(ts: list[int], offsets: list[int], und: list[str]) -> dict:
    return {"ts_ns": np.array(ts, np.int64), "offset": np.array(offsets, np.int64),
            "underlying": np.array(und, object)}


@st.composite
def topics(draw):
    """Per topic: rows (ts, underlying) in offset order, event times mostly rising (as a feed publishes)."""
    out = []
    for _ in KINDS:
        n = draw(st.integers(0, 40))
        steps = draw(st.lists(st.integers(0, 130), min_size=n, max_size=n))
        und = draw(st.lists(st.sampled_from(["SPX", "NDX"]), min_size=n, max_size=n))
        out.append((np.cumsum(steps).tolist(), und))
    return out


def reference(data) -> list[tuple[int, str, int, tuple]]:
    """(segment end, underlying, kind, rows sorted by (ts, offset)) of a plain sort."""
    rows = [(ts, off, kind, u) for kind, (tss, us) in enumerate(data) for off, (ts, u) in enumerate(zip(tss, us))]
    out = {}
    for ts, off, kind, u in rows:
        end = (ts // INTERVAL + 1) * INTERVAL
        out.setdefault((end, u, kind), []).append((ts, off))
    return sorted((end, u, kind, tuple(sorted(r))) for (end, u, kind), r in out.items())


def merged(data, chunk_sizes, order, merge_rows: int = MERGE_ROWS) -> list[tuple[int, str, int, tuple]]:
    m = PartitionMerger(INTERVAL, idle_ns=0)
    m.merge_rows = merge_rows
    totals = [len(tss) for tss, _ in data]
    pos = [0, 0, 0]
    got = []

    def collect(batches):
        for b in batches:
            for kind, t in enumerate((b.index, b.quotes, b.open_interest)):
                if t and len(t["ts_ns"]):
                    got.append((b.end_ns, b.underlying, kind,
                                tuple(zip(t["ts_ns"].tolist(), t["offset"].tolist()))))

    for kind in order:  # the order in which topics' chunks arrive
        if pos[kind] >= totals[kind]:
            m.position(kind, highwater=totals[kind])
        else:
            a, b = pos[kind], min(pos[kind] + chunk_sizes[kind], totals[kind])
            tss, us = data[kind]
            m.add(kind, table(tss[a:b], list(range(a, b)), us[a:b]), next_offset=b, highwater=totals[kind],
                  now_ns=0)
            pos[kind] = b
        collect(m.pop_ready(0))
    for kind in range(3):  # whatever is left, then the end of the backlog
        tss, us = data[kind]
        if pos[kind] < totals[kind]:
            m.add(kind, table(tss[pos[kind]:], list(range(pos[kind], totals[kind])), us[pos[kind]:]),
                  next_offset=totals[kind], highwater=totals[kind], now_ns=0)
        else:
            m.position(kind, highwater=totals[kind])
    collect(m.pop_ready(0))
    assert m.pending() == 0 and m.n_late == 0
    return sorted(got)


@settings(max_examples=300, deadline=None)
@given(topics(), st.lists(st.integers(1, 15), min_size=3, max_size=3),
       st.lists(st.integers(0, 2), min_size=0, max_size=60), MERGES)
def test_backlog_merge_equals_sort_by_event_time(data, chunk_sizes, order, merge_rows):
    assert merged(data, chunk_sizes, order, merge_rows) == reference(data)


def test_an_idle_topic_does_not_hold_the_others_back():
    m = PartitionMerger(INTERVAL, idle_ns=10_000, wait_ns=1_000)
    m.add(0, table([10, 250], [0, 1], ["SPX"] * 2), next_offset=2, highwater=2, now_ns=0)
    m.add(1, table([20, 260], [0, 1], ["SPX"] * 2), next_offset=2, highwater=2, now_ns=0)
    m.position(2, highwater=0)  # open interest: empty and caught up, never delivered: idle
    assert [b.end_ns for b in m.pop_ready(now_ns=0)] == [100]  # both active topics passed 100
    assert m.pop_ready(now_ns=500) == []  # [200, 300): topics caught up but active: wait ...
    assert [b.end_ns for b in m.pop_ready(now_ns=1_500)] == [300]  # ... at most wait_ns
    m.add(0, table([320], [2], ["SPX"]), next_offset=3, highwater=3, now_ns=2_000)
    m.add(1, table([330], [2], ["SPX"]), next_offset=3, highwater=3, now_ns=2_000)
    assert m.pop_ready(now_ns=2_500) == []
    m.position(1, highwater=4)  # the broker has more quotes: no bounded wait any more
    assert m.pop_ready(now_ns=2_000 + 20_000) == []
    m.add(1, table([400], [3], ["SPX"]), next_offset=4, highwater=4, now_ns=22_000)
    assert [b.end_ns for b in m.pop_ready(now_ns=22_000)] == [400]  # quotes passed 400; index idle since 2_000


def test_a_late_row_goes_with_the_next_segment_and_is_counted():
    m = PartitionMerger(INTERVAL, idle_ns=0)
    m.position(2, highwater=0)
    m.add(0, table([10, 150], [0, 1], ["SPX"] * 2), next_offset=2, highwater=2, now_ns=0)
    m.add(1, table([120], [0], ["SPX"]), next_offset=1, highwater=1, now_ns=0)
    assert [b.end_ns for b in m.pop_ready(0)] == [100, 200]
    m.add(1, table([50], [1], ["SPX"]), next_offset=2, highwater=2, now_ns=0)  # older than the closed 200
    (b,) = m.pop_ready(0)
    assert b.end_ns == 300 and b.late == 1 and m.n_late == 1


def test_resume_offsets_point_at_the_first_unapplied_row():
    m = PartitionMerger(INTERVAL, idle_ns=10**12)
    m.position(2, highwater=0)
    m.add(0, table([10, 20, 130], [0, 1, 2], ["SPX"] * 3), next_offset=3, highwater=9, now_ns=0)
    m.add(1, table([5, 140], [7, 8], ["SPX"] * 2), next_offset=9, highwater=9, now_ns=0)
    assert [b.end_ns for b in m.pop_ready(0)] == [100]
    assert m.resume_offsets() == [2, 8, 0]
    assert m.applied_above() == [[], [], []]


@st.composite
def shuffled_topics(draw):
    """Per topic: rows (ts, underlying) in offset order whose event times may go back (late, out of order)."""
    out = []
    for _ in KINDS:
        n = draw(st.integers(0, 40))
        ts = draw(st.lists(st.integers(0, 600), min_size=n, max_size=n))
        und = draw(st.lists(st.sampled_from(["SPX", "NDX"]), min_size=n, max_size=n))
        out.append((ts, und))
    return out


@settings(max_examples=150, deadline=None)
@given(shuffled_topics(), st.lists(st.integers(1, 15), min_size=3, max_size=3),
       st.lists(st.integers(0, 2), min_size=0, max_size=60), MERGES)
def test_segments_resume_offsets_and_late_rows_equal_a_row_by_row_model(data, chunk_sizes, order, merge_rows):
    """Out-of-order event times: every closed segment holds exactly the pending rows before its end, sorted by
    (ts, offset), split by underlying; its late rows (older than the previous end), the resume offsets (first
    unapplied offset) and the applied offsets above them follow the same rows kept in plain Python lists."""
    m = PartitionMerger(INTERVAL, idle_ns=0)
    m.merge_rows = merge_rows
    totals = [len(tss) for tss, _ in data]
    pos = [0, 0, 0]
    pending: list[list[tuple[int, int, str]]] = [[], [], []]   # (ts, offset, underlying) per topic
    applied: list[set[int]] = [set(), set(), set()]
    closed = -(2**63)
    n_late = [0]

    def check(batches):
        nonlocal closed
        ends = sorted({b.end_ns for b in batches})
        for end in ends:
            got = {(b.underlying, kind): list(zip(t["ts_ns"].tolist(), t["offset"].tolist()))
                   for b in batches if b.end_ns == end
                   for kind, t in enumerate((b.index, b.quotes, b.open_interest)) if t and len(t["ts_ns"])}
            want: dict = {}
            late = 0
            for kind in range(3):
                inside = sorted(r for r in pending[kind] if r[0] < end)
                pending[kind] = [r for r in pending[kind] if r[0] >= end]
                for ts, off, u in inside:
                    want.setdefault((u, kind), []).append((ts, off))
                    applied[kind].add(off)
                    late += ts < closed
            assert got == want
            names = {b.underlying for b in batches if b.end_ns == end}
            assert sum(b.late for b in batches if b.end_ns == end) == (late if len(names) == 1 else 0)
            n_late[0] += late
            closed = end
        assert m.n_late == n_late[0]
        assert m.closed_until_ns == closed or not ends
        resume = [min((r[1] for r in pending[k]), default=pos[k]) for k in range(3)]
        assert m.resume_offsets() == resume
        assert m.applied_above() == [sorted(o for o in applied[k] if o >= resume[k]) for k in range(3)]
        assert m.pending() == sum(map(len, pending))

    for kind in order:
        if pos[kind] >= totals[kind]:
            m.position(kind, highwater=totals[kind])
        else:
            a, b = pos[kind], min(pos[kind] + chunk_sizes[kind], totals[kind])
            tss, us = data[kind]
            m.add(kind, table(tss[a:b], list(range(a, b)), us[a:b]), next_offset=b, highwater=totals[kind],
                  now_ns=0)
            pending[kind] += [(tss[i], i, us[i]) for i in range(a, b)]
            pos[kind] = b
        check(m.pop_ready(0))
    for kind in range(3):
        tss, us = data[kind]
        if pos[kind] < totals[kind]:
            m.add(kind, table(tss[pos[kind]:], list(range(pos[kind], totals[kind])), us[pos[kind]:]),
                  next_offset=totals[kind], highwater=totals[kind], now_ns=0)
            pending[kind] += [(tss[i], i, us[i]) for i in range(pos[kind], totals[kind])]
            pos[kind] = totals[kind]
    check(m.pop_ready(0, flush=True))
    assert m.pending() == 0


def test_a_silent_topic_holds_a_segment_for_the_bounded_wait_after_its_last_record():
    """Live, 10-unit segments, index ticks every 100: the index topic, caught up and behind, holds a segment
    until it has been silent for wait_ns; the quotes' following segments then close as soon as the quotes pass
    them; a new index record holds again, for wait_ns after it."""
    m = PartitionMerger(10, idle_ns=10_000, wait_ns=1_000)
    m.position(2, highwater=0)  # open interest: never delivered, idle
    m.add(0, table([0], [0], ["SPX"]), next_offset=1, highwater=1, now_ns=0)
    m.add(1, table([1, 12, 25, 38], [0, 1, 2, 3], ["SPX"] * 4), next_offset=4, highwater=4, now_ns=0)
    assert [b.end_ns for b in m.pop_ready(now_ns=100)] == []  # [0, 10): index caught up, behind, just heard
    # silent for the wait: the index holds nothing back, nor do the quotes (silent as long): all pending closes
    assert [b.end_ns for b in m.pop_ready(now_ns=1_000)] == [10, 20, 30, 40]
    m.add(0, table([41], [1], ["SPX"]), next_offset=2, highwater=2, now_ns=1_200)  # the index delivers again
    m.add(1, table([49, 52], [4, 5], ["SPX"] * 2), next_offset=6, highwater=6, now_ns=1_200)
    assert [b.end_ns for b in m.pop_ready(now_ns=1_300)] == []  # [40, 50): the index, heard 100 ago, holds it
    assert [b.end_ns for b in m.pop_ready(now_ns=2_199)] == []
    assert m.wake_ns == 2_200
    assert [b.end_ns for b in m.pop_ready(now_ns=2_200)] == [50, 60]  # both silent for the wait


def test_a_live_feed_closes_each_segment_once_it_has_passed_and_never_ahead_of_it():
    """Event time = wall time, the consumer caught up after every fetch (a live feed): quotes every 10 ms, index
    ticks every 250 ms, 1 s segments, a 200 ms wait. A segment closes only once the quotes have passed its end,
    whole (no late row); a wait counted from when a segment was first held closed [0, 1 s) at 200 ms with a
    fifth of its quotes and raced ahead of the feed (segment 14 s closed at 2.9 s)."""
    ms = 1_000_000
    m = PartitionMerger(1_000 * ms, idle_ns=5_000 * ms, wait_ns=200 * ms)
    m.position(2, highwater=0)
    n = [0, 0]
    closed = []
    for t in range(0, 5_000, 10):
        now = t * ms
        m.add(1, table([now], [n[1]], ["SPX"]), next_offset=n[1] + 1, highwater=n[1] + 1, now_ns=now)
        n[1] += 1
        if t % 250 == 0:
            m.add(0, table([now], [n[0]], ["SPX"]), next_offset=n[0] + 1, highwater=n[0] + 1, now_ns=now)
            n[0] += 1
        closed += [(now, b) for b in m.pop_ready(now)]
    assert [b.end_ns for _, b in closed] == [k * 1_000 * ms for k in range(1, 5)]
    assert all(now >= b.end_ns and b.late == 0 and len(b.quotes["ts_ns"]) == 100 for now, b in closed)
    assert all(now - b.end_ns <= 10 * ms for now, b in closed)  # at the first fetch past its end
