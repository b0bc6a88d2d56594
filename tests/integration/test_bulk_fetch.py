"""streamer.bulk_fetch.getmany_columns against aiokafka's getmany on the real broker: the same records
(offset, key, value, timestamp) in the same order, whatever the compression, transactions, seeks, pauses
and max_records; and on hand-built record batches (legacy formats, corrupt CRCs) that no Kafka 4 broker
stores any more."""
from __future__ import annotations

import asyncio
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.codec import has_lz4, has_snappy, has_zstd
from aiokafka.consumer.fetcher import FetchResult, PartitionRecords
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from kafka_helpers import settings_for

from streamer import kafka_io
from streamer.bulk_fetch import Columns, _take, getmany_columns

pytestmark = pytest.mark.integration
N = 3000


def _items(n: int = N) -> list[tuple[bytes | None, bytes | None]]:
    """Keys and values of every shape: null keys, null values, empty values, sizes up to ~2 KB."""
    out = []
    for i in range(n):
        key = None if i % 7 == 0 else b"k%d" % (i % 13)
        value = None if i % 11 == 0 else b"" if i % 17 == 0 else (b"v%d-" % i) * (i % 150)
        out.append((key if key is not None or value is not None else b"", value))  # never both null
    return out


async def _produce(s, topic: str, items, *, partitions: int = 2, txn: bool = False, **kw) -> None:
    await kafka_io.ensure_topics(s, [topic], partitions=partitions)
    opts = dict(kafka_io.client_options(s), linger_ms=20, max_batch_size=16 * 1024, **kw)
    if txn:
        opts["transactional_id"] = f"{topic}-txn"
    p = AIOKafkaProducer(**opts)
    await p.start()
    try:
        if not txn:
            futs = [await p.send(topic, v, key=k, partition=i % partitions) for i, (k, v) in enumerate(items)]
            await asyncio.gather(*futs)
            return
        # committed, aborted and committed transactions (control batches after each)
        for chunk, commit in ((items[:1000], True), (items[1000:1500], False), (items[1500:], True)):
            await p.begin_transaction()
            futs = [await p.send(topic, v, key=k, partition=i % partitions) for i, (k, v) in enumerate(chunk)]
            await asyncio.gather(*futs)
            await (p.commit_transaction() if commit else p.abort_transaction())
    finally:
        await p.stop()


def _consumer(s, topic: str, **kw) -> AIOKafkaConsumer:
    # small fetches: many fetch results per partition, each of several batches
    opts = dict(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                max_partition_fetch_bytes=24 * 1024, fetch_max_bytes=64 * 1024)
    opts.update(kw)
    return AIOKafkaConsumer(topic, **kafka_io.client_options(s), **opts)


def _rows(data: dict) -> dict:
    """getmany's or getmany_columns' answer as {partition: [(offset, key, value, timestamp), ...]}."""
    out = {}
    for tp, recs in data.items():
        if isinstance(recs, Columns):
            assert recs.offsets.dtype.name == "int64" and len(recs.keys) == len(recs.values) == len(recs)
            rows = list(zip(recs.offsets.tolist(), recs.keys, recs.values, recs.timestamps.tolist()))
        else:
            rows = [(r.offset, r.key, r.value, r.timestamp) for r in recs]
        assert rows, "no empty lists in the answer"
        out[tp.partition] = rows
    return out


async def _read(c: AIOKafkaConsumer, bulk: bool, end: dict, *, max_records=None, calls=None) -> dict:
    """Records per partition until every assigned, unpaused partition's position reaches ``end`` (or
    ``calls`` calls), checking each answer's size against max_records (whole batches for the bulk one)."""
    out: dict[int, list] = {}
    n = 0
    while calls is None or n < calls:
        live = [tp for tp in c.assignment() if tp not in c.paused()]
        if calls is None and all([await c.position(tp) >= end[tp] for tp in live]):
            break
        if bulk:
            data = await getmany_columns(c, timeout_ms=1000, max_records=max_records, timestamps=True)
        else:
            data = await c.getmany(timeout_ms=1000, max_records=max_records)
        n += 1
        rows = _rows(data)
        if max_records is not None and not bulk:
            assert sum(map(len, rows.values())) <= max_records
        for p, rs in rows.items():
            assert all(a[0] < b[0] for a, b in zip(rs, rs[1:]))
            out.setdefault(p, []).extend(rs)
    return out


async def _started(s, topic: str, **kw) -> tuple[AIOKafkaConsumer, dict]:
    c = _consumer(s, topic, **kw)
    await c.start()
    while not c.assignment():
        await asyncio.sleep(0.05)
    return c, await c.end_offsets(list(c.assignment()))


async def _same_as_getmany(s, topic: str, *, max_records=None, **kw) -> dict:
    ref_c, end = await _started(s, topic, **kw)
    bulk_c, _ = await _started(s, topic, **kw)
    try:
        ref = await _read(ref_c, False, end, max_records=max_records)
        got = await _read(bulk_c, True, end, max_records=max_records)
        assert got == ref
        for tp in end:
            assert await bulk_c.position(tp) == await ref_c.position(tp) == end[tp]
        return ref
    finally:
        await ref_c.stop()
        await bulk_c.stop()


@pytest.mark.parametrize("max_records", [None, 1, 7])
def test_plain_topic_same_records_as_getmany(kafka, prefix, max_records):
    s = settings_for(kafka, prefix)
    topic = f"{prefix}bulk-plain"
    items = _items()

    async def go():
        await _produce(s, topic, items)
        ref = await _same_as_getmany(s, topic, max_records=max_records)
        # and that is what was produced, null keys and values included
        assert sorted(ref) == [0, 1]
        for p in (0, 1):
            assert [(k, v) for _, k, v, _ in ref[p]] == items[p::2]
    asyncio.run(go())


CODECS = ["gzip"] + [c for c, ok in (("lz4", has_lz4()), ("snappy", has_snappy()), ("zstd", has_zstd())) if ok]


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_topic_same_records_as_getmany(kafka, prefix, codec):
    s = settings_for(kafka, prefix)
    topic = f"{prefix}bulk-{codec}"
    items = _items()

    async def go():
        await _produce(s, topic, items, compression_type=codec)
        ref = await _same_as_getmany(s, topic, max_records=50)
        assert sum(map(len, ref.values())) == len(items)
    asyncio.run(go())


@pytest.mark.parametrize("isolation", ["read_uncommitted", "read_committed"])
def test_transactional_topic_control_batches_skipped(kafka, prefix, isolation):
    s = settings_for(kafka, prefix)
    topic = f"{prefix}bulk-txn"
    items = _items()

    async def go():
        await _produce(s, topic, items, txn=True)
        ref = await _same_as_getmany(s, topic, isolation_level=isolation, max_records=100)
        n = sum(map(len, ref.values()))
        # the control records (one per transaction and partition) are never returned; aborted records only
        # under read_uncommitted (read_committed is taken through aiokafka's own unpacking)
        assert n == (len(items) if isolation == "read_uncommitted" else len(items) - 500)
        offsets = [r[0] for r in ref[0]]
        assert offsets[-1] - offsets[0] + 1 > len(offsets)  # there are gaps: the control batches
    asyncio.run(go())


def test_seek_pause_resume_and_small_max_records(kafka, prefix):
    """One script of seeks, pauses and reads with buffered data in between, run by both readers."""
    s = settings_for(kafka, prefix)
    topic = f"{prefix}bulk-seek"
    items = _items()

    async def script(bulk: bool) -> tuple[list, dict]:
        c, end = await _started(s, topic)
        tp0, tp1 = sorted(end, key=lambda tp: tp.partition)
        log = []
        try:
            first = await _read(c, bulk, end, max_records=5, calls=3)  # data left buffered
            log.append(("first", first))
            c.seek(tp0, 100)  # drops tp0's buffered result
            log.append(("after seek", await _read(c, bulk, end, max_records=200)))
            await c.seek_to_beginning(tp1)
            c.seek(tp0, 1000)
            part = await _read(c, bulk, end, max_records=1, calls=4)
            c.pause(tp0)  # tp0's buffered records are not handed out while paused
            while await c.position(tp1) < end[tp1]:
                more = _rows(await getmany_columns(c, timeout_ms=1000, timestamps=True) if bulk
                             else await c.getmany(timeout_ms=1000))
                assert 0 not in more
                for p, rs in more.items():
                    part.setdefault(p, []).extend(rs)
            c.resume(tp0)
            for p, rs in (await _read(c, bulk, end)).items():
                part.setdefault(p, []).extend(rs)
            return log, part, end
        finally:
            await c.stop()

    async def go():
        await _produce(s, topic, items)
        ref_log, ref_part, end = await script(False)
        got_log, got_part, _ = await script(True)
        # getmany's per-call cut differs (records vs batches): compare what each phase read in total
        assert [name for name, _ in got_log] == [name for name, _ in ref_log]
        ends = {p: end[TopicPartition(topic, p)] for p in (0, 1)}
        full = {p: [(o, *items[2 * o + p]) for o in range(ends[p])] for p in (0, 1)}
        for log in (got_log, ref_log):
            first, after = log[0][1], log[1][1]
            assert first and all(rs[0][0] == 0 for rs in first.values())
            # tp0 sought to 100 with records buffered; tp1 goes on exactly where the first reads stopped
            assert [r[:3] for r in after[0]] == full[0][100:]
            assert [r[:3] for r in first.get(1, []) + after[1]] == full[1]
        assert got_log[1][1][0] == ref_log[1][1][0]
        # the last phase: tp0 from 1000, tp1 from the beginning, each offset once, in order
        assert [r[:3] for r in got_part[0]] == full[0][1000:]
        assert [r[:3] for r in got_part[1]] == full[1]
        assert got_part == ref_part
    asyncio.run(go())


# -- hand-built batches: formats and faults the broker cannot be made to return ----------------------


class _State:
    paused = False

    def __init__(self, position: int) -> None:
        self.position = position

    def consumed_to(self, position: int) -> None:
        self.position = position


class _Assignment:
    active = True

    def __init__(self, position: int) -> None:
        self.state = _State(position)

    def state_value(self, tp):
        return self.state


TP = TopicPartition("t", 0)


def _result(data: bytes, fetch_offset: int) -> tuple[FetchResult, _Assignment]:
    a = _Assignment(fetch_offset)
    pr = PartitionRecords(TP, MemoryRecords(bytes(data)), [], fetch_offset, None, None, True, 0)
    return FetchResult(TP, assignment=a, partition_records=pr, backoff=0), a


def _batches(magic: int) -> list[tuple[bytes, list]]:
    """Plain, gzip and plain batches of one message format (aiokafka's MemoryRecords reads one format per
    fetch, as a broker returns): [(bytes, [(offset, key, value), ...])], offsets 0-14."""
    out = []
    for n, codec in enumerate((0, 1, 0)):
        off = 5 * n
        b = (LegacyRecordBatchBuilder(magic, codec, 1 << 20) if magic < 2
             else DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 1 << 20))
        recs = []
        for i in range(5):
            key, value = (None if i == 2 else b"k%d" % i), (None if i == 3 else b"v%d" % (off + i) * 3)
            if magic < 2:  # v1 message sets have offsets relative to the wrapper's, v0 absolute ones
                b.append(i if (magic == 1 and codec) else off + i, 1_700_000_000_000 + i if magic else None,
                         key, value)
            else:
                b.append(i, 1_700_000_000_000 + i, key, value, [])
            recs.append((off + i, key, value))
        data = bytearray(b.build())
        if magic == 2 or codec:  # a batch of 5 records: its offset in the log (outside the CRC)
            data[0:8] = (off if magic == 2 else off + 4).to_bytes(8, "big")
        out.append((bytes(data), recs))
    return out


def _getall_rows(res: FetchResult, max_records) -> list:
    rows = []
    while res.has_more():
        rows += [(r.offset, r.key, r.value) for r in res.getall(max_records)]
    return rows


def _take_rows(res: FetchResult, max_records: int):
    rows = []
    while res.has_more():
        cols, err = _take(res, TP, max_records, True)
        if cols is not None:
            rows += list(zip(cols.offsets.tolist(), cols.keys, cols.values))
        if err is not None:
            return rows, err
    return rows, None


@pytest.mark.parametrize("magic", [0, 1, 2])
@pytest.mark.parametrize("start", range(4))
@pytest.mark.parametrize("max_records", [1, 4, 1000])
def test_legacy_and_v2_batches_same_as_getall(magic, start, max_records):
    # a broker starts a fetch at the batch holding the fetch offset: inside a v2 or compressed legacy
    # batch, at a message of a plain legacy one (aiokafka would step back to a plain legacy message below it)
    fetch_offset = ([0, 3, 7, 12] if magic == 2 else [0, 5, 7, 10])[start]
    batches = [(d, recs) for d, recs in _batches(magic) if recs[-1][0] >= fetch_offset]
    data = b"".join(d for d, _ in batches)
    want = [r for _, recs in batches for r in recs if r[0] >= fetch_offset]
    ref, ref_a = _result(data, fetch_offset)
    got, got_a = _result(data, fetch_offset)
    assert _getall_rows(ref, max_records) == want
    assert _take_rows(got, max_records) == (want, None)
    assert got_a.state.position == ref_a.state.position == 15


@pytest.mark.parametrize("magic", [0, 1, 2])
def test_corrupt_batch_returns_the_records_before_it_then_the_error(magic):
    batches = _batches(magic)
    bad = bytearray(batches[1][0])
    bad[-1] ^= 0xFF  # the gzip batch's CRC no longer matches
    data = batches[0][0] + bytes(bad) + batches[2][0]
    ref, _ = _result(data, 0)
    with pytest.raises(CorruptRecordException):
        _getall_rows(ref, None)
    got, a = _result(data, 0)
    rows, err = _take_rows(got, 1000)
    assert isinstance(err, CorruptRecordException)
    assert rows == batches[0][1]
    assert a.state.position == 5  # the corrupt batch is fetched again
    assert not got.has_more()
