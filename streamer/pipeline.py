"""One deterministic, columnar pipeline per partition: raw records in, event-time batches out. No Kafka here.

All inputs of one partition — index ticks and daily closes, option quotes, open interest — arrive on three
topics (co-partitioned by underlying) at whatever pace the consumer fetches them. This module turns them into
one event-time order that does not depend on that pace:

* **Columns.** Each fetched chunk of raw values is decoded and validated in one pass (``streamer.decode``)
  into numpy columns (a :data:`Table`: column name → array), tagged with the record offsets.
* **Segments.** Event time is cut into segments of ``interval_ns`` (the analytics interval, 1 s by default):
  ``[k·interval, (k+1)·interval)``. A segment is handed to the engine whole, once it is *closed*, so the
  engine sees the same batches whatever the fetch sizes were; rules and snapshots run at segment ends only.
* **Watermark.** A segment ending at ``E`` is closed when every input topic of the partition has either
  delivered a record at or after ``E`` (its records come in offset order, so nothing earlier is still on its
  way) or is read up to its high-water mark (*caught up*) and has been *silent*: nothing new from it for
  ``wait_ns`` (the bounded wait; or ``idle_ns`` if shorter) of the caller's clock — the worker counts only
  the time it spends waiting for input — as a source's idleness timeout in Flink. A caught-up topic whose
  records are still flowing — live quotes inside the segment — goes on holding it (a wait counted from when
  the segment was first held would close it half-way, before its end had happened, and race ahead of the
  feed); a silent one — open interest published once a day, or an index between two ticks — holds nothing
  back after that silence.

  A topic that is not caught up (the broker has more of it) is always waited for: during a backlog, after a
  restart or a crash, the order is exactly event time, whatever the fetch sizes.
* **Late records.** A record older than the last closed segment is applied with the next segment (counted as
  late); it can only happen live, when a topic stalled longer than the bounded wait while others ran ahead.

Within a segment, rows are ordered by (ts_ns, offset) per topic. The engine applies a segment's index messages
in that order, then its quotes (conflated: the latest quote per contract), then open interest.

Offsets for checkpoints: :meth:`PartitionMerger.resume_offsets` gives, per topic, the first offset not yet
applied to the engine (the smallest pending offset, else the next offset to fetch), so that a restart that seeks
there and skips the already-applied offsets above it (:meth:`applied_above`) replays exactly the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Table = dict[str, np.ndarray]
"""Columns of equal length; every table of the pipeline has ``ts_ns`` (int64) and ``offset`` (int64)."""

INDEX, QUOTES, OPEN_INTEREST = 0, 1, 2
KINDS = ("index", "quotes", "open_interest")


def take(t: Table, idx: np.ndarray) -> Table:
    return {k: v[idx] for k, v in t.items()}


def concat(tables: list[Table]) -> Table:
    tables = [t for t in tables if len(t["ts_ns"])]
    if not tables:
        return {}
    if len(tables) == 1:
        return tables[0]
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def size(t: Table) -> int:
    return len(t["ts_ns"]) if t else 0


def sort_by_time(t: Table) -> Table:
    """Rows ordered by (ts_ns, offset); stable, so equal keys keep their input order."""
    if not t or size(t) < 2:
        return t
    ts, off = t["ts_ns"], t["offset"]
    if (ts[1:] > ts[:-1]).all():
        return t  # strictly rising event times: ordered whatever the offsets (one test instead of three)
    if np.all(ts[1:] >= ts[:-1]) and np.all((ts[1:] > ts[:-1]) | (off[1:] > off[:-1])):
        return t  # already ordered: the usual case (a topic partition in event-time order)
    return take(t, np.lexsort((off, ts)))


@dataclass(slots=True)
class Batch:
    """The inputs of one underlying in one closed segment, in event-time order per kind."""

    underlying: str
    end_ns: int                      # the segment's end (exclusive): the engine's evaluation instant bound
    index: Table = field(default_factory=dict)
    quotes: Table = field(default_factory=dict)
    open_interest: Table = field(default_factory=dict)
    late: int = 0                    # rows that arrived after their segment had closed

    def __len__(self) -> int:
        return size(self.index) + size(self.quotes) + size(self.open_interest)

    @property
    def last_ts_ns(self) -> int:
        return max((int(t["ts_ns"].max()) for t in (self.index, self.quotes, self.open_interest) if size(t)),
                   default=0)


@dataclass(slots=True)
class _Chunk:
    """One fetched chunk of a topic; rows before ``cur`` are applied. Sorted by (ts_ns, offset) when a close
    first reads it (:meth:`order`): a live chunk of a few dozen rows is usually merged with its neighbours
    unsorted and sorted once with them (:meth:`PartitionMerger._close`), not once alone and again together.

    Closing a segment takes the prefix ``[cur, searchsorted(end))`` as views (no copy of the rest), so a
    chunk spanning many segments costs O(its rows) in all, not O(its rows) per segment. The bounds a close
    tests are kept as Python ints (``head_ts``: the earliest pending row, ``last_ts``: the latest,
    ``first_off``: the smallest pending offset): a close visits every pending chunk, and most of them hold
    nothing of the segment."""

    t: Table
    n: int
    head_ts: int
    last_ts: int
    first_off: int
    ts: np.ndarray | None = None        # once ordered: t["ts_ns"]
    min_off: np.ndarray | None = None   # once ordered: min_off[i], the smallest offset of rows i..
    cur: int = 0

    @classmethod
    def of(cls, table: Table) -> _Chunk:
        ts = table["ts_ns"]
        return cls(table, ts.shape[0], int(ts.min()), int(ts.max()), int(table["offset"].min()))

    def order(self) -> np.ndarray:
        """Sort the rows (none applied yet) by (ts_ns, offset); the event times."""
        if self.ts is None:
            self.t = sort_by_time(self.t)
            self.ts = self.t["ts_ns"]
            self.min_off = np.minimum.accumulate(self.t["offset"][::-1])[::-1]
        return self.ts

    def advance(self, j: int) -> None:
        self.cur = j
        if j < self.n:
            self.head_ts = int(self.ts[j])
            self.first_off = int(self.min_off[j])


#: a topic's pending chunks are merged into one before a close when they hold at most this many rows in all
#: (live: a few small fetches per segment); larger ones (a backlog) are each sorted once and their pieces merged
MERGE_ROWS = 4096


@dataclass(slots=True)
class _TopicState:
    pending: list[_Chunk] = field(default_factory=list)
    n_pending: int = 0
    max_ts: int = -(2**63)           # latest event time delivered on this topic
    next_offset: int = 0             # next offset to fetch (one past the last record seen)
    highwater: int = -1              # broker's high-water mark at the last fetch (-1 unknown)
    last_arrival_ns: int = -(2**62)  # when its last record came (the caller's clock, ns); never: long ago
    applied_above: list[int] = field(default_factory=list)  # applied offsets above the first pending one

    def caught_up(self) -> bool:
        return self.highwater >= 0 and self.next_offset >= self.highwater


class PartitionMerger:
    """Event-time merge of the three input topics of one partition into closed segments.

    >>> m = PartitionMerger(interval_ns=10, idle_ns=0, wait_ns=0)
    >>> tbl = lambda ts, off: {"ts_ns": np.array(ts, np.int64), "offset": np.array(off, np.int64),
    ...                        "underlying": np.array(["SPX"] * len(ts), object)}
    >>> m.add(QUOTES, tbl([3, 12], [0, 1]), next_offset=2, highwater=5, now_ns=0)
    >>> m.add(INDEX, tbl([5, 25], [0, 1]), next_offset=2, highwater=5, now_ns=0)
    >>> m.position(OPEN_INTEREST, highwater=0)   # an empty topic: caught up, idle
    >>> [(b.end_ns, len(b)) for b in m.pop_ready(now_ns=0)]   # [0, 10) closes: both topics passed 10
    [(10, 2)]
    >>> [(b.end_ns, len(b)) for b in m.pop_ready(now_ns=0)]   # [10, 20): quotes not past 20, not caught up
    []
    """

    def __init__(self, interval_ns: int, idle_ns: int, wait_ns: int = 0, closed_until_ns: int = -(2**63)) -> None:
        self.interval_ns = max(int(interval_ns), 1)
        self.idle_ns = idle_ns
        self.wait_ns = wait_ns
        self.topics = [_TopicState() for _ in KINDS]
        self.closed_until_ns = closed_until_ns  # end of the last closed segment
        #: after :meth:`pop_ready`: when (on its ``now_ns`` clock) a pending segment that only caught-up, recently
        #: heard topics hold becomes closable with no new input (None: none such; only new input closes it)
        self.wake_ns: int | None = None
        self.n_late = 0
        self.merge_rows = MERGE_ROWS

    # -- input -----------------------------------------------------------------------------------

    def add(self, kind: int, table: Table, *, next_offset: int, highwater: int, now_ns: int) -> None:
        """Decoded rows of one fetched chunk (valid rows only), and the topic's fetch position."""
        st = self.topics[kind]
        n = size(table)
        if n:
            c = _Chunk.of(table)
            st.pending.append(c)
            st.n_pending += n
            st.max_ts = max(st.max_ts, c.last_ts)
            st.last_arrival_ns = now_ns
        st.next_offset = max(st.next_offset, next_offset)
        if highwater >= 0:
            st.highwater = highwater

    def position(self, kind: int, *, next_offset: int | None = None, highwater: int | None = None,
                 now_ns: int | None = None) -> None:
        """Fetch position without rows (a chunk of only rejected records, or a high-water update)."""
        st = self.topics[kind]
        if next_offset is not None:
            st.next_offset = max(st.next_offset, next_offset)
            if now_ns is not None:
                st.last_arrival_ns = now_ns
        if highwater is not None and highwater >= 0:
            st.highwater = highwater

    def pending(self) -> int:
        return sum(st.n_pending for st in self.topics)

    # -- output ----------------------------------------------------------------------------------

    def _earliest_pending(self) -> int | None:
        ts = [c.head_ts for st in self.topics for c in st.pending]
        return min(ts) if ts else None

    def _closable(self, end_ns: int, now_ns: int, flush: bool) -> bool:
        # a caught-up topic behind end_ns holds the segment until it has been silent for the bounded wait (its
        # records still flowing, e.g. live quotes inside the segment, it goes on holding)
        hold = min(self.wait_ns, self.idle_ns)
        latest = None  # the latest arrival of the caught-up topics that hold the segment
        for st in self.topics:
            if st.max_ts >= end_ns or flush:
                continue
            if not st.caught_up():
                return False  # the broker has more of it: always wait
            if now_ns - st.last_arrival_ns < hold:
                latest = st.last_arrival_ns if latest is None else max(latest, st.last_arrival_ns)
        if latest is None:
            return True
        self.wake_ns = latest + hold  # closable without new input once they have all been silent that long
        return False

    def pop_ready(self, now_ns: int, flush: bool = False) -> list[Batch]:
        """Every segment that can be closed now, as per-underlying batches in segment order.

        ``now_ns``: the clock of ``add``'s ``now_ns`` against which a caught-up topic's silence is measured
        (the worker's: time spent waiting for input, so that time spent applying segments, when nothing was
        fetched, does not count as silence).

        ``flush``: close everything pending (end of a finite input, e.g. a backtest or a test).
        """
        out: list[Batch] = []
        self.wake_ns = None
        while True:
            first = self._earliest_pending()
            if first is None:
                return out
            start = max(first, self.closed_until_ns)  # a late row goes with the next segment
            end = (start // self.interval_ns + 1) * self.interval_ns
            if not self._closable(end, now_ns, flush):
                return out
            out.extend(self._close(end))

    def _close(self, end_ns: int) -> list[Batch]:
        parts: list[Table] = []
        closed = self.closed_until_ns
        late = 0
        for st in self.topics:
            pieces = []
            lo = hi = None       # earliest row of the topic in the segment; last row of the previous piece
            ordered = True       # the pieces follow each other strictly in event time
            done = False
            if 1 < len(st.pending) and st.n_pending <= self.merge_rows:
                self._merge_small(st, end_ns)
            for c in st.pending:
                head = c.head_ts
                if head >= end_ns:
                    continue     # nothing of this chunk in the segment
                cur = c.cur
                if c.last_ts < end_ns:
                    c.order()
                    j, last = c.n, c.last_ts
                    done = True
                else:
                    ts = c.order()
                    j = int(ts.searchsorted(end_ns))
                    last = int(ts[j - 1])
                pieces.append({k: v[cur:j] for k, v in c.t.items()})
                st.n_pending -= j - cur
                c.advance(j)
                if lo is None:
                    lo = head
                else:
                    lo = min(lo, head)
                    ordered = ordered and hi < head
                hi = last
            if done:
                st.pending = [c for c in st.pending if c.cur < c.n]
            # rows of several chunks: merged by (ts_ns, offset), as one sorted table would give them (each
            # piece is; pieces strictly after one another in event time are so already, as concatenated)
            if len(pieces) == 1:
                part = pieces[0]
            elif ordered:
                part = concat(pieces)
            else:
                part = sort_by_time(concat(pieces))
            parts.append(part)
            if lo is not None and lo < closed:
                late += int((part["ts_ns"] < closed).sum())
            # offsets applied now that lie above the first still-pending one (out-of-order event times);
            # those below it are covered by the resume offset and need not be kept
            if st.pending:
                first_pending = min([c.first_off for c in st.pending])
                if st.applied_above:
                    st.applied_above = [o for o in st.applied_above if o > first_pending]
                if part:
                    off = part["offset"]
                    st.applied_above.extend(off[off > first_pending].tolist())
            else:
                st.applied_above.clear()
        self.n_late += late
        self.closed_until_ns = end_ns
        return split_by_underlying(end_ns, parts, late)

    @staticmethod
    def _merge_small(st: _TopicState, end_ns: int) -> None:
        """The pending rows of a topic as one chunk, if two or more chunks have rows before ``end_ns``: the
        rows (their pending parts, in the order of the list) concatenated and sorted once; a stable sort by
        (ts_ns, offset) of them gives the order the pieces' merge would have given."""
        if sum(1 for c in st.pending if c.head_ts < end_ns) < 2:
            return
        parts = [c.t if c.cur == 0 else {k: v[c.cur:] for k, v in c.t.items()} for c in st.pending]
        merged = _Chunk(concat(parts), st.n_pending, min(c.head_ts for c in st.pending),
                        max(c.last_ts for c in st.pending), min(c.first_off for c in st.pending))
        st.pending = [merged]

    # -- checkpoint support ----------------------------------------------------------------------

    def resume_offsets(self) -> list[int]:
        """Per topic: the first offset not yet applied (where a restart seeks to)."""
        out = []
        for st in self.topics:
            pend = [c.first_off for c in st.pending]
            out.append(min(pend) if pend else st.next_offset)
        return out

    def applied_above(self) -> list[list[int]]:
        """Per topic: offsets at or above the resume offset that were already applied (normally none)."""
        res = self.resume_offsets()
        return [sorted(o for o in st.applied_above if o >= r) for st, r in zip(self.topics, res)]


def split_by_underlying(end_ns: int, parts: list[Table], late: int = 0) -> list[Batch]:
    """One :class:`Batch` per underlying present in ``parts`` (index, quotes, open interest), sorted by name."""
    found: set[str] = set()
    for p in parts:
        if p:
            col = p["underlying"].tolist()
            # the usual partition holds one underlying: one count instead of sorting objects (a list's count
            # costs less than numpy's element-wise comparison of objects)
            found.update([col[0]] if col.count(col[0]) == len(col) else np.unique(p["underlying"]).tolist())
    names = sorted(found)
    if len(names) == 1:
        return [Batch(names[0], end_ns, *parts, late=late)]
    return [Batch(u, end_ns, *[take(p, np.flatnonzero(p["underlying"] == u)) if p else {} for p in parts])
            for u in names]


def decode_chunk(kind: int, values: list, keys: list, offsets: np.ndarray) -> tuple[Table, list]:
    """Decode one fetched chunk of a topic into a :data:`Table` of valid rows (with their offsets) and the
    rejected rows ``[(position in the chunk, reason, detail)]``."""
    from streamer import decode
    fn = (decode.decode_index, decode.decode_quotes, decode.decode_open_interest)[kind]
    cols, rejected = fn(values, keys)
    t = {f: getattr(cols, f) for f in cols.__dataclass_fields__}
    rows = t.pop("row")
    # every row accepted: rows is 0..n-1 (positions in input order)
    t["offset"] = offsets if len(rows) == len(offsets) else offsets[rows]
    return t, [(r.row, r.reason, r.detail) for r in rejected]
