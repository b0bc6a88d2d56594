"""``AIOKafkaConsumer.getmany`` as columns: offsets, keys and values per partition, no record objects.

aiokafka builds one ``ConsumerRecord`` (a dataclass of 11 fields) per message in
``PartitionRecords._consumer_record``: ~20% of the worker's time over a backlog (py-spy), and a raw
``getmany`` loop tops out at 250-330k msg/s on this machine where reading the fetched batches directly
gives ~1.3M. :func:`getmany_columns` reads the record batches the fetcher has buffered
(``FetchResult._partition_records._records``, a ``MemoryRecords``) and collects the columns.

It mirrors aiokafka 0.14's ``AIOKafkaConsumer.getmany`` → ``Fetcher.fetched_records`` →
``FetchResult.getall`` → ``PartitionRecords._unpack_records`` (these are private internals: the
integration test compares it with ``getmany`` record for record on the real broker):

* a stopped consumer raises ``ConsumerStoppedError``; coordinator errors are raised first;
  the fetch runs in ``subscription.fetch_context()``; it waits for a reassignment in progress;
* results of paused, unassigned or sought-away partitions are dropped (``check_assignment``);
* a fetch error stored for a partition is raised, after the records already taken from other
  partitions have been returned (as aiokafka);
* control batches are skipped, records below the partition's next fetch offset are skipped (compressed
  legacy message sets, compaction), the position follows each batch's ``next_offset``;
* CRCs are checked per batch when ``check_crcs``. A corrupt (or undecodable) batch ends the partition's
  take *before* it: the records before it are returned, and the error is stored for the partition, to be
  raised by the next call (aiokafka raises at once and loses the records it had unpacked before it); the
  batch is fetched again after that;
* ``max_records`` is counted in whole batches (the last batch taken may overshoot it); the position is
  always exactly after the last batch taken;
* a drained fetch result is removed and the fetcher woken to fetch the next one; with nothing buffered,
  it waits for the fetcher up to ``timeout_ms``.

Batches under ``read_committed`` (aborted transactions), with key/value deserializers, or whose record
iterator ``getmany`` has already started are taken through aiokafka's own ``getall`` and converted.
"""
from __future__ import annotations

import asyncio
import inspect
import sys
import time
from typing import NamedTuple

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult
from aiokafka.errors import ConsumerStoppedError, CorruptRecordException


class Columns(NamedTuple):
    """The records of one partition taken by one call, in offset order."""

    offsets: np.ndarray            # int64
    keys: list                     # bytes or None
    values: list                   # bytes or None
    timestamps: np.ndarray | None  # int64 ms (record timestamps, -1 for none: format v0), when asked for

    def __len__(self) -> int:
        return len(self.offsets)


async def getmany_columns(consumer: AIOKafkaConsumer, *partitions: TopicPartition, timeout_ms: int = 0,
                          max_records: int | None = None,
                          timestamps: bool = False) -> dict[TopicPartition, Columns]:
    """What ``consumer.getmany(*partitions, timeout_ms=, max_records=)`` returns, as :class:`Columns`."""
    assert all(isinstance(k, TopicPartition) for k in partitions)
    if consumer._closed:
        raise ConsumerStoppedError()
    if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
        raise ValueError("`max_records` must be a positive Integer")
    consumer._coordinator.check_errors()
    with consumer._subscription.fetch_context():
        return await _fetched_columns(consumer._fetcher, partitions, timeout_ms / 1000,
                                      max_records or consumer._max_poll_records or sys.maxsize, timestamps)


async def _fetched_columns(fetcher, partitions, timeout: float, max_records: int,
                           with_ts: bool) -> dict[TopicPartition, Columns]:
    """``Fetcher.fetched_records`` (aiokafka 0.14) with :func:`_take` in place of ``FetchResult.getall``."""
    subscriptions = fetcher._subscriptions
    records = fetcher._records
    while True:
        if subscriptions.reassignment_in_progress:
            await subscriptions.wait_for_assignment()
        start_time = time.monotonic()
        drained: dict[TopicPartition, Columns] = {}
        for tp in list(records):
            if partitions and tp not in partitions:
                if not subscriptions.is_assigned(tp):  # cleanup results for unassigned partitions
                    del records[tp]
                continue
            res = records[tp]
            if type(res) is FetchResult:
                cols, error = _take(res, tp, max_records, with_ts)
                if error is not None:
                    fetcher._set_error(tp, error)  # raised below or by the next call
                elif not res.has_more():
                    del records[tp]  # all taken: fetch the next ones
                    fetcher._notify(fetcher._wait_consume_future)
                if cols is not None:
                    drained[tp] = cols
                    max_records -= len(cols)
                    if max_records <= 0:
                        break
                if error is None:
                    continue
                res = records[tp]
            if drained:
                return drained  # the error is raised by the next call
            del records[tp]  # remove the error, so that the partition is fetched again
            fetcher._notify(fetcher._wait_consume_future)
            res.check_raise()
        if drained or not timeout:
            return drained
        waiter = fetcher._create_fetch_waiter()
        done, pending = await asyncio.wait([waiter], timeout=timeout)
        if not done or fetcher._closed:
            if pending:
                pending.pop().cancel()
            return {}
        if waiter.done():
            waiter.result()  # authorization errors
        timeout = max(0.0, timeout - (time.monotonic() - start_time))


def _take(res: FetchResult, tp: TopicPartition, max_records: int,
          with_ts: bool) -> tuple[Columns | None, Exception | None]:
    """Whole batches of ``res`` up to ``max_records`` records (``FetchResult.getall`` +
    ``PartitionRecords._unpack_records``): the columns (None if no record) and an error that ended the take."""
    if not res.check_assignment(tp) or not res.has_more():
        return None, None
    pr = res._partition_records
    it = pr._records_iterator
    if (pr._isolation_level == READ_COMMITTED or pr._key_deserializer or pr._value_deserializer
            or (it is not None and inspect.getgeneratorstate(it) != inspect.GEN_CREATED)):
        return _from_records(res.getall(max_records), with_ts), None
    batches = pr._records
    check_crcs = pr._check_crcs
    nxt = pr.next_fetch_offset
    offsets: list[int] = []
    keys: list = []
    values: list = []
    ts: list[int] | None = [] if with_ts else None
    error = None
    while batches.has_next():
        n0 = len(offsets)
        try:
            batch = batches.next_batch()
            if batch is None:
                break
            if check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {tp}")
            if not batch.is_control_batch:  # control batches are skipped whatever the isolation level
                for r in batch:
                    o = r.offset
                    if o < nxt:  # e.g. the head of a compressed legacy message set below the fetch offset
                        continue
                    offsets.append(o)
                    keys.append(r.key)
                    values.append(r.value)
                    if ts is not None:
                        t = r.timestamp
                        ts.append(-1 if t is None else t)
                    nxt = o + 1
            nxt = batch.next_offset  # v2 keeps the last offset of a batch compacted empty at its end
        except Exception as exc:  # noqa: BLE001 - stored and raised as the fetcher's own errors are
            del offsets[n0:], keys[n0:], values[n0:]
            if ts is not None:
                del ts[n0:]
            error = exc
            break
        pr.next_fetch_offset = nxt
        if len(offsets) >= max_records:
            break
    res._update_position()
    if error is not None or not batches.has_next():
        res._partition_records = None
    if not offsets:
        return None, error
    return Columns(np.array(offsets, np.int64), keys, values,
                   np.array(ts, np.int64) if ts is not None else None), error


def _from_records(recs: list, with_ts: bool) -> Columns | None:
    if not recs:
        return None
    return Columns(np.fromiter((r.offset for r in recs), np.int64, len(recs)), [r.key for r in recs],
                   [r.value for r in recs],
                   np.fromiter((-1 if r.timestamp is None else r.timestamp for r in recs), np.int64, len(recs))
                   if with_ts else None)
