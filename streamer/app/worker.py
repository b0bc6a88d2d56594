"""The worker: Faust runs the process, one bulk pipeline per partition does the work.

Faust (and mode, its service framework) provides the process: start-up and shutdown in order, SIGTERM/SIGINT,
logging, the rule-reload timer and crash handling. Faust's own Kafka consumer is *not* started (its boot
strategy has Kafka off): it delivers every record through per-event stream machinery, which was ~95% of the
old worker's cost (BENCHMARKS.md). Instead :class:`Pipeline`, a mode service inside the Faust worker, owns the
Kafka I/O:

* one ``AIOKafkaConsumer`` in the group ``<prefix>streamer-worker`` subscribed to the three input topics with
  the *range* assignor, which gives a member the same partition numbers of every topic (equal partition
  counts): the index ticks, quotes and open interest of an underlying are always owned together, also with
  several workers and across rebalances;
* bulk fetches (up to ``fetch_max_records`` per call) taken as columns, offsets/keys/values, without one
  record object per message (streamer/bulk_fetch.py); each chunk is decoded into numpy columns
  (streamer/decode.py) and merged per partition into closed event-time segments (streamer/pipeline.py), which
  go to the engines' one entry point ``UnderlyingEngine.ingest``;
* state by checkpoint: every ``checkpoint_interval_s`` (and when partitions are revoked or the worker stops)
  each engine is written to the compacted state topic with the input offsets it reflects, after every output
  produced up to then is acknowledged. The periodic ones do not stall processing: the engines' states and
  the offsets are taken at the checkpoint instant (``to_state``: copies), then packed in a thread, written
  and acknowledged in the background while the worker goes on (one at a time per partition). On
  assignment the latest checkpoints are loaded and the inputs are sought to those offsets: outputs between
  a checkpoint and a crash are produced again, with the same ``event_id``.
  The group's committed offsets follow the checkpoints (for lag monitoring); they are never read back;
* outputs (snapshots, triggers, dead letters) through one idempotent producer.

A failure to produce (e.g. a dead letter the broker refuses) stops the worker before the next checkpoint,
so nothing is skipped: the restarted worker replays from the last checkpoint. (Every checkpoint waits for
the outputs of all the checkpoints before it: a failed output fails every later checkpoint.)
"""
from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust
import mode
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaTimeoutError
from faust.app import BootStrategy

from streamer import kafka_io, publisher, schemas
from streamer.bulk_fetch import Columns, getmany_columns
from streamer.codecs import dumps, loads
from streamer.core.rules import RuleError, RuleSet
from streamer.engine import UnderlyingEngine, known_signals, load_rules, pack
from streamer.errors import InvalidMessage
from streamer.logs import bound_logs
from streamer.metrics import METRICS
from streamer.pipeline import KINDS, PartitionMerger, decode_chunk, size
from streamer.settings import Settings
from streamer.topics import STATE_MAX_BYTES, TopicNames

log = logging.getLogger("streamer.worker")
NS = 1_000_000_000
CHECKPOINT_VERSION = 1
#: the largest input record the consumer is sure to take: at least the input topics' max.message.bytes
#: (broker default 1 MiB; the hostile suite's topics allow 16 MiB, as the publisher's MAX_REQUEST_BYTES).
#: Kafka documents a record above max_partition_fetch_bytes as returned whole only when it leads the fetch
#: response; a truncated one makes aiokafka raise RecordTooLargeError and move past it (consumer/fetcher.py).
#: (Kafka 4.1 returned a 10 MB record whole to an 8 MiB consumer in every probe; this is the safe side.)
#: Such records are dead-lettered ``too_large`` unparsed.
MAX_INPUT_RECORD_BYTES = 16 * 1024 * 1024
#: how long the producer's send() waits for room in a full batch while the broker is away: "as long as it
#: takes" (a finite number: asyncio timers take no infinity)
OUTPUT_WAIT_MS = 30 * 86_400 * 1000
#: on shutdown, how long the final checkpoint and the outputs still in flight may wait for the broker
STOP_WAIT_S = 20.0
#: the longest a fetch waits for new input (then the step runs: checkpoints, rebalances, watermark waits)
FETCH_WAIT_MS = 100
#: niceness of the checkpoint-packing thread (the pipeline's thread stays at the process's)
BACKGROUND_NICE = 10


class _Boot(BootStrategy):
    enable_kafka = False  # the Pipeline service owns the Kafka clients
    enable_web = False    # metrics and health are served by streamer (commands/worker.py)


class _App(faust.App):
    BootStrategy = _Boot


def encode_checkpoint(header: dict, engine_bytes: bytes) -> bytes:
    return dumps(header) + b"\n" + engine_bytes


def decode_checkpoint(value: bytes) -> tuple[dict, bytes]:
    head, _, body = value.partition(b"\n")
    return loads(head), body


@dataclass
class PartitionState:
    """What the worker holds for one partition number it owns."""

    number: int
    merger: PartitionMerger
    engines: dict[str, UnderlyingEngine] = field(default_factory=dict)
    # per underlying restored from a checkpoint: per input kind, rows below this offset are already in its state
    floor: dict[str, list[int]] = field(default_factory=dict)
    # per input kind: offsets above the seek point that some checkpoint already reflects (normally empty)
    skip: list[set[int]] = field(default_factory=lambda: [set(), set(), set()])
    last_checkpoint: float = field(default_factory=time.monotonic)


class Pipeline(mode.Service):
    """The bulk consumer, the per-partition pipelines, the engines, checkpoints and the producer."""

    def __init__(self, worker: Worker, **kw: Any) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.names = worker.names
        self.partitions: dict[int, PartitionState] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.inflight: list[asyncio.Future] = []  # outputs sent since the last checkpoint instant
        self.checkpointing: dict[int, asyncio.Task] = {}  # per partition: the checkpoint in flight
        self.acked: asyncio.Task | None = None  # every output up to the last checkpoint instant acknowledged
        self.serving = False
        self.lag = 0  # input messages behind the brokers' high-water marks, all owned partitions
        self.lag_shown: dict[TopicPartition, int] = {}  # per input partition: the lag gauge's value
        self.listened_ns = 0  # time spent waiting for input (the mergers' clock, see step())
        self.kind_of = {t: i for i, t in enumerate(self.names.inputs())}
        # checkpoints are packed here: one background thread below the hot path's priority
        self.packer = ThreadPoolExecutor(1, "streamer-checkpoint", initializer=_background_priority)
        super().__init__(**kw)

    # -- lifecycle -------------------------------------------------------------------------------

    async def on_start(self) -> None:
        s = self.settings
        await kafka_io.ensure_topics(s, self.names.all())
        opts = kafka_io.client_options(s)
        # outputs leave at once (linger 0: a trigger is not held back for company); what is produced while a
        # request is in flight still goes out as one batch with the next, so a backlog is not sent message by message
        self.producer = AIOKafkaProducer(**opts, enable_idempotence=True, acks="all", linger_ms=0,
                                         max_batch_size=512 * 1024, max_request_size=STATE_MAX_BYTES)
        _ride_out_outages(self.producer, self.producer.client)
        await kafka_io.start_client(self.producer, s)
        session_ms = int(s.session_timeout_s * 1000)
        self.consumer = AIOKafkaConsumer(
            **opts, group_id=self.names.group, group_instance_id=s.group_instance_id or None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(session_ms // 3, 100),
            max_partition_fetch_bytes=MAX_INPUT_RECORD_BYTES, fetch_max_bytes=4 * MAX_INPUT_RECORD_BYTES)
        _ride_out_outages(None, self.consumer._client)
        self.consumer.subscribe(self.names.inputs(), listener=_Rebalance(self))
        await kafka_io.start_client(self.consumer, s)

    async def on_stop(self) -> None:
        self.serving = False
        METRICS.worker_up_g.set(0)
        try:
            for p in list(self.partitions):
                # bounded: outputs wait for the broker as long as it takes while running, not when stopping
                await asyncio.wait_for(self.checkpoint(p), STOP_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - stopping anyway (a timeout too); the next start replays
            log.error("final checkpoint failed: %s", str(exc) or "not acknowledged in time (broker unreachable?)")
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            try:
                await asyncio.wait_for(self.producer.flush(), STOP_WAIT_S)
            except asyncio.TimeoutError:
                log.error("outputs not acknowledged %gs after stopping (broker unreachable?); the next start "
                          "produces them again from the last checkpoint", STOP_WAIT_S)
                self.producer._message_accumulator.fail_all(KafkaTimeoutError())
            await self.producer.stop()
        self.packer.shutdown(wait=False)

    async def on_started(self) -> None:
        self.add_future(self._run())

    async def _run(self) -> None:
        try:
            while not self.should_stop:
                await self.step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("pipeline stopped: %s", exc)
            await self.crash(exc)

    async def step(self) -> None:
        """One fetch: decode, merge, apply closed segments, publish, checkpoint when due."""
        assert self.consumer is not None
        t0 = time.monotonic_ns()
        data = await getmany_columns(self.consumer, timeout_ms=self._fetch_timeout_ms(),
                                     max_records=self.settings.fetch_max_records)
        # the mergers' clock: time spent listening for input. A worker busy with a segment has not looked at its
        # inputs, so a live topic is not taken for silent (and a segment closed before its quotes came) because
        # of that; a fetch sent when it starts waiting brings whatever came meanwhile.
        self.listened_ns += time.monotonic_ns() - t0
        now = self.listened_ns
        for tp, cols in data.items():
            part = self.partitions.get(tp.partition)
            if part is not None:
                await self._fetched(part, tp, cols, now)
        self._positions(now)
        for part in list(self.partitions.values()):
            await self._apply(part, now)
        if len(self.inflight) > 20_000:
            await self._drain()
        self._check_checkpoints()
        t = time.monotonic()
        for p, part in list(self.partitions.items()):
            if t - part.last_checkpoint >= self.settings.checkpoint_interval_s and p not in self.checkpointing:
                self._start_checkpoint(p, part)
        if not self.serving and self.partitions and not self.should_stop:  # (not again while stopping)
            self.serving = True
            self.worker.on_ready()

    def _fetch_timeout_ms(self) -> int:
        """How long a fetch may wait for new input: 100 ms, or until a segment that only the watermark's bounded
        wait holds becomes closable (else it would close only with the next input, or after the 100 ms)."""
        wake = [part.merger.wake_ns for part in self.partitions.values() if part.merger.wake_ns is not None]
        if not wake:
            return FETCH_WAIT_MS
        return max(0, min(FETCH_WAIT_MS, -(-(min(wake) - self.listened_ns) // 1_000_000)))

    # -- input -----------------------------------------------------------------------------------

    async def _fetched(self, part: PartitionState, tp: TopicPartition, cols: Columns, now: int) -> None:
        kind = self.kind_of[tp.topic]
        seen = part.merger.topics[kind].next_offset
        offsets, keys, values = cols.offsets, cols.keys, cols.values
        if offsets[0] < seen:  # fetched before a seek, or twice: every offset is taken once (offsets ascend)
            i = int(np.searchsorted(offsets, seen))
            if i == len(offsets):
                return
            offsets, keys, values = offsets[i:], keys[i:], values[i:]
        table, rejected = decode_chunk(kind, values, keys, offsets)
        replaying = bool(part.floor or part.skip[kind])  # after a restore, until the inputs pass the checkpoint
        if replaying:
            table = self._drop_replayed(part, kind, table)
        replayed_below = min((f[kind] for f in part.floor.values()), default=0) if part.floor else 0
        for row, reason, detail in rejected:
            offset = int(offsets[row])
            if offset < replayed_below or offset in part.skip[kind]:
                continue  # dead-lettered before the checkpoint this worker restored
            await self._reject(values[row], keys[row], tp, offset, InvalidMessage(reason, detail))
        if rejected:
            METRICS.seen(tp.topic, len(rejected))
        hw = self.consumer.highwater(tp)
        next_offset = int(offsets[-1]) + 1
        part.merger.add(kind, table, next_offset=next_offset, highwater=hw if hw is not None else -1, now_ns=now)
        if replaying:
            self._prune_replayed(part, kind, next_offset)

    def _drop_replayed(self, part: PartitionState, kind: int, table: dict) -> dict:
        """After a restore: rows a checkpoint already reflects are not applied twice."""
        if not size(table) or not (part.floor or part.skip[kind]):
            return table
        keep = np.ones(size(table), bool)
        for u, floor in part.floor.items():
            keep &= ~((table["underlying"] == u) & (table["offset"] < floor[kind]))
        if part.skip[kind]:
            keep &= ~np.isin(table["offset"], np.fromiter(part.skip[kind], np.int64))
        return table if keep.all() else {k: v[keep] for k, v in table.items()}

    @staticmethod
    def _prune_replayed(part: PartitionState, kind: int, next_offset: int) -> None:
        """Every later row of this input has an offset >= ``next_offset``: the floors and skipped offsets it
        has passed can never match again (else they were masked at every fetch for the worker's lifetime)."""
        for floor in part.floor.values():
            if floor[kind] <= next_offset:
                floor[kind] = 0
        if not any(map(any, part.floor.values())):  # all passed (kept till then: min floor rules rejects)
            part.floor.clear()
        if part.skip[kind]:
            part.skip[kind] = {o for o in part.skip[kind] if o >= next_offset}

    def _positions(self, now: int) -> None:
        """High-water marks of every owned input partition (a topic with nothing new is caught up), and the lag.
        A lag gauge is set when its value changes (it runs every fetch: live, the lags stay 0)."""
        consumer = self.consumer
        assert consumer is not None
        lag_total = 0
        shown = self.lag_shown
        for tp in consumer.assignment():
            part = self.partitions.get(tp.partition)
            hw = consumer.highwater(tp)
            if part is None or hw is None:
                continue
            kind = self.kind_of[tp.topic]
            m = part.merger
            m.position(kind, highwater=hw)
            lag = max(hw - m.topics[kind].next_offset, 0)
            lag_total += lag
            if shown.get(tp) != lag:
                METRICS.consumer_lag(tp.topic, str(tp.partition)).set(lag)
                shown[tp] = lag
        self.lag = lag_total  # (read by /readyz from another thread: the total, never a partial sum)

    def broker_reachable(self) -> bool:
        """A group coordinator is known and a connection to a broker is up (aiokafka marks the coordinator
        dead and drops connections on failed requests; read from any thread, no I/O)."""
        c = self.consumer
        if c is None:
            return False
        if c._coordinator is None or c._coordinator.coordinator_id is None:
            return False
        return any(conn.connected() for conn in list(c._client._conns.values()))

    async def _reject(self, value: bytes | None, key: bytes | None, tp: TopicPartition, offset: int,
                      err: InvalidMessage) -> None:
        dl = schemas.dead_letter(value, key, tp.topic, tp.partition, offset, err, time.time_ns())
        key = key[:schemas.MAX_DEAD_LETTER_KEY_BYTES] if key is not None else None
        self.inflight.append(await self.producer.send(self.names.dead_letters, schemas.encode(dl), key=key))
        METRICS.dead_letters(err.reason).inc()
        METRICS.msgs_out(self.names.dead_letters).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", tp.topic, tp.partition, offset, err)

    # -- processing ------------------------------------------------------------------------------

    def engine(self, part: PartitionState, underlying: str) -> UnderlyingEngine:
        eng = part.engines.get(underlying)
        if eng is None:
            eng = part.engines[underlying] = UnderlyingEngine(underlying, self.settings, self.worker.new_rules())
        return eng

    async def _apply(self, part: PartitionState, now: int) -> None:
        batches = part.merger.pop_ready(now)
        if not batches:
            return
        names = self.names.inputs()
        for batch in batches:
            eng = self.engine(part, batch.underlying)
            fx = eng.ingest(batch)
            METRICS.input_seq(batch.underlying).set(eng.n_inputs)
            if fx.n_conflated:
                METRICS.conflated_quotes.inc(fx.n_conflated)
            if batch.late:
                METRICS.late_inputs.inc(batch.late)
            for sym, ts, px, outcome in fx.suspect:
                METRICS.suspect_ticks(sym, outcome).inc()
                log.warning("%s print %s at %d %s (implausible jump from the last good print)", sym, px, ts, outcome)
            for rule, why in fx.withheld:
                METRICS.triggers_withheld(rule).inc()
                log.error("trigger %s of %s withheld: %s", rule, batch.underlying, why)
            for kind, t in enumerate((batch.index, batch.quotes, batch.open_interest)):
                if size(t):
                    METRICS.seen(names[kind], size(t))
            if eng.n_evaluations:
                for name in eng.rules.names:
                    METRICS.rule_evaluations(name).inc(eng.n_evaluations)
                eng.n_evaluations = 0
            wall = time.time()
            if fx.snapshot is not None:
                self.worker.set_gauges(eng, fx.snapshot.values)
                await self._publish(self.names.analytics, fx.snapshot.underlying, schemas.encode(fx.snapshot),
                                    fx.snapshot.ts_ns, wall)
            for ev in fx.triggers:
                await self._publish(self.names.triggers, ev.underlying, schemas.encode(ev), ev.ts_ns, wall)
                METRICS.trigger(ev.rule, ev.severity, ev.ts_ns / NS)
                log.info("trigger %s %s: %s", ev.rule, ev.event_id, ev.reason)

    async def _publish(self, topic: str, key: str, value: bytes, ts_ns: int, wall: float) -> None:
        self.inflight.append(await self.producer.send(topic, value, key=key.encode()))
        METRICS.msgs_out(topic).inc()
        METRICS.latency(topic).observe(max(0.0, wall - ts_ns / NS))

    async def _drain(self) -> None:
        """Wait until every output produced so far is acknowledged (raises if one failed)."""
        pending, self.inflight = self.inflight, []
        if pending:
            await asyncio.gather(*pending)

    # -- checkpoints -----------------------------------------------------------------------------

    async def checkpoint(self, p: int) -> None:
        """Write partition ``p``'s engines with the offsets they reflect now, once the outputs produced up to
        now are durable; after the checkpoint in flight, if any (raises if that one failed). On revoke and
        on stop."""
        while (task := self.checkpointing.get(p)) is not None and not task.done():
            await asyncio.shield(task)  # (step() may start another meanwhile: wait for that one too)
        if task is not None:
            task.result()
        part = self.partitions.get(p)
        if part is not None:
            await self._start_checkpoint(p, part)

    def _check_checkpoints(self) -> None:
        """Raise the error of a checkpoint that failed (the worker stops before writing another one)."""
        for p, task in list(self.checkpointing.items()):
            if task.done():
                del self.checkpointing[p]
                task.result()

    def _start_checkpoint(self, p: int, part: PartitionState) -> asyncio.Task:
        """Take partition ``p``'s checkpoint at this instant: the engines' states (copies: the engines go on),
        the merger's offsets, and the outputs produced so far; pack, write and acknowledge it in a task."""
        m = part.merger
        resume = m.resume_offsets()
        header = {"v": CHECKPOINT_VERSION, "partition": p, "offsets": resume, "applied_above": m.applied_above(),
                  "closed_until_ns": m.closed_until_ns, "wall_ns": time.time_ns()}
        states = [(u, eng.to_state()) for u, eng in sorted(part.engines.items())]
        # the outputs up to this instant, and (chained) those of every earlier checkpoint
        outputs, self.inflight = self.inflight, []
        self.acked = asyncio.ensure_future(_acknowledged(self.acked, outputs))
        part.last_checkpoint = time.monotonic()
        task = self.checkpointing[p] = asyncio.ensure_future(self._write_checkpoint(p, header, states, self.acked))
        return task

    async def _write_checkpoint(self, p: int, header: dict, states: list, acked: asyncio.Future) -> None:
        # deflate runs without the GIL: packed in a thread while the outputs are being acknowledged
        packed = asyncio.get_running_loop().run_in_executor(self.packer, _pack_all, header, states)
        try:
            await asyncio.shield(acked)
        except BaseException:
            packed.cancel()
            raise
        futs = []
        nbytes = 0
        for u, value in await packed:
            nbytes += len(value)
            futs.append(await self.producer.send(self.names.state, value, key=u.encode(), partition=p))
        await asyncio.gather(*futs)
        METRICS.state_bytes.inc(nbytes)
        METRICS.checkpoints.inc(len(futs))
        if self.consumer is not None and futs:
            offsets = {TopicPartition(t, p): o for t, o in zip(self.names.inputs(), header["offsets"])}
            try:
                await self.consumer.commit(offsets)  # for lag monitoring only
            except Exception as exc:  # noqa: BLE001 - e.g. during a rebalance; the checkpoint is what counts
                log.debug("offset commit skipped: %s", exc)

    async def load(self, p: int) -> PartitionState:
        """The latest checkpoint of every underlying on partition ``p``; seek the inputs to resume."""
        s = self.settings
        part = PartitionState(p, PartitionMerger(int(s.analytics_interval_s * NS), int(s.watermark_idle_s * NS),
                                                 int(s.watermark_wait_s * NS)))
        latest = await read_checkpoints(s, self.names.state, p)
        seek = None
        closed = []
        for u, value in sorted(latest.items()):
            head, body = decode_checkpoint(value)
            part.engines[u] = UnderlyingEngine.from_checkpoint(body, s, self.worker.new_rules())
            part.floor[u] = head["offsets"]
            for kind, offs in enumerate(head["applied_above"]):
                part.skip[kind].update(offs)
            seek = head["offsets"] if seek is None else [min(a, b) for a, b in zip(seek, head["offsets"])]
            closed.append(head["closed_until_ns"])
        if closed:
            part.merger.closed_until_ns = min(closed)
        for kind, topic in enumerate(self.names.inputs()):
            tp = TopicPartition(topic, p)
            if seek is not None:
                self.consumer.seek(tp, seek[kind])
                part.merger.topics[kind].next_offset = seek[kind]
            else:
                await self.consumer.seek_to_beginning(tp)
        log.info("partition %d: %d engine(s) from checkpoints, inputs from %s", p, len(latest), seek or "the beginning")
        return part


def _ride_out_outages(producer: AIOKafkaProducer | None, client) -> None:
    """Through a broker outage of minutes, wait instead of failing or spinning (aiokafka 0.14 internals;
    tests/integration/test_outage.py stops the broker for two minutes under a running worker).

    * A batch of the (idempotent) producer waiting for a partition leader is failed after
      ``request_timeout_ms`` (40 s): a checkpoint or a snapshot produced as the broker went away would then
      stop the worker. Its time to live is made unlimited; the per-request timeout (a silent connection)
      stays 40 s. Likewise ``send()`` on a full batch (one per partition) waits for a free slot for as long
      (``_request_timeout_ms``, read at each send), where it raised after 40 s. The worker waits in
      ``send``/``_drain``/``checkpoint`` until the broker is back, unready meanwhile.
    * A failed metadata refresh is retried at once: ~1,000-2,000 connection attempts a second while the
      broker is down (measured). Its waiters now pause the retry interval first, as the publisher's.
    """
    if producer is not None:
        producer._message_accumulator._batch_ttl = math.inf
        producer._request_timeout_ms = OUTPUT_WAIT_MS
    publisher.pace_metadata_retries(client)


async def _acknowledged(earlier: asyncio.Future | None, outputs: list[asyncio.Future]) -> None:
    if earlier is not None:
        await asyncio.shield(earlier)  # raises if an earlier output failed
    if outputs:
        await asyncio.gather(*outputs)


def _background_priority() -> None:
    """Lower the calling thread's priority (Linux: a thread's own niceness): deflating a checkpoint (25-160 ms
    of a core every interval at a 20k-contract chain) yields the CPU to the pipeline's thread and the broker
    instead of delaying the next segment."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE, 19))
    except (AttributeError, OSError):  # not Linux, or not permitted: same priority as the pipeline
        pass


def _pack_all(header: dict, states: list[tuple[str, dict]]) -> list[tuple[str, bytes]]:
    """In a thread: each underlying's checkpoint record (reads only the copies taken at the instant)."""
    return [(u, encode_checkpoint(dict(header, underlying=u), pack(st))) for u, st in states]


async def read_checkpoints(settings: Settings, topic: str, p: int) -> dict[str, bytes]:
    """Latest value per key of partition ``p`` of the compacted state topic (read to its end)."""
    c = AIOKafkaConsumer(**kafka_io.client_options(settings), group_id=None, enable_auto_commit=False,
                         max_partition_fetch_bytes=STATE_MAX_BYTES, fetch_max_bytes=STATE_MAX_BYTES)
    await kafka_io.start_client(c, settings)
    try:
        tp = TopicPartition(topic, p)
        c.assign([tp])
        end = (await c.end_offsets([tp]))[tp]
        await c.seek_to_beginning(tp)
        latest: dict[str, bytes] = {}
        while await c.position(tp) < end:
            for rec in (await c.getmany(tp, timeout_ms=1000)).get(tp, []):
                if rec.offset >= end:
                    break
                k = rec.key.decode()
                if rec.value is None:
                    latest.pop(k, None)
                else:
                    latest[k] = rec.value
        return latest
    finally:
        await c.stop()


class _Rebalance(ConsumerRebalanceListener):
    """Checkpoint what is revoked; load what is assigned before anything of it is fetched."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe

    async def on_partitions_revoked(self, revoked) -> None:
        for p in sorted({tp.partition for tp in revoked}):
            if p in self.pipe.partitions:
                await self.pipe.checkpoint(p)
                del self.pipe.partitions[p]
        METRICS.partitions_assigned_g.set(len(self.pipe.partitions))

    async def on_partitions_assigned(self, assigned) -> None:
        # getmany() runs concurrently with this callback: nothing of these partitions may be handed out
        # before their checkpoints are loaded and the inputs sought (the old worker's start-up race)
        self.pipe.consumer.pause(*assigned)
        for p in sorted({tp.partition for tp in assigned}):
            if p not in self.pipe.partitions:
                part = self.pipe.partitions[p] = await self.pipe.load(p)
                for u, eng in part.engines.items():
                    METRICS.input_seq(u).set(eng.n_inputs)
        self.pipe.consumer.resume(*assigned)
        METRICS.partitions_assigned_g.set(len(self.pipe.partitions))


class _FaustWorker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # no start-up spinner: Faust's sets the root logger to DEBUG so that every record spins it, and then
        # every aiokafka debug line of every fetch and send is formatted (3% of the worker at 20k quotes/s)
        self.spinner = None
        super().on_setup_root_logger(logger, level)
        bound_logs()  # a broker outage must not write hundreds of identical lines a second


class Worker:
    """The Faust app (process runtime), the rules, the gauges, and the :class:`Pipeline` that does the work."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = TopicNames(settings.topic_prefix)
        self.app = _App(f"{settings.topic_prefix}streamer-worker", broker=settings.broker_url, store="memory://",
                        datadir=settings.data_dir, web_enabled=False)
        self.rules_text, self.rules_mtime = "", 0
        self.metrics = METRICS
        for name in load_rules(settings).names:  # fails fast on an invalid rules file
            self.metrics.declare_rule(name)
        for t in self.names.inputs():
            self.metrics.declare_topic(t)
        for t in self.names.outputs():
            self.metrics.declare_topic(t, source=False, sink=True)
        self.app.timer(2.0)(self._watch_rules)
        self.app.timer(1.0)(self._watch_broker)
        self.pipeline: Pipeline | None = None

    def readiness(self) -> tuple[bool, str]:
        """For /readyz (called from the HTTP thread: reads attributes only)."""
        pipe = self.pipeline
        if pipe is None or not pipe.serving:
            return False, "starting: joining the consumer group, loading checkpoints"
        if not pipe.partitions:
            return False, "no input partition assigned (more workers than partitions?)"
        if not pipe.broker_reachable():
            return False, "broker unreachable: no group coordinator or broker connection"
        if pipe.lag > self.settings.ready_max_lag:
            return False, f"lagging: {pipe.lag} input messages behind (ready_max_lag {self.settings.ready_max_lag})"
        return True, f"serving partitions {sorted(pipe.partitions)}, lag {pipe.lag}"

    def on_ready(self) -> None:
        """Partitions assigned, checkpoints loaded, inputs sought: from here on the worker is serving.

        The objects alive now (Faust, aiokafka, numpy, the restored engines: ~10^5) live as long as the
        process; they are moved out of the collector's generations (``gc.freeze``), so that a full
        collection scans only what came later (measured: one gen-2 collection stalled the pipeline 80 ms
        at 20k quotes/s; a full collection of the frozen process takes ~0 ms)."""
        gc.collect()
        gc.freeze()
        self.metrics.worker_up_g.set(1)
        log.info("streamer worker ready")

    def run(self, loglevel: str = "warning") -> None:
        """Run until SIGTERM/SIGINT (the Faust worker handles the signals and a clean shutdown)."""
        self.pipeline = Pipeline(self, loop=None)
        _FaustWorker(self.app, self.pipeline, loglevel=loglevel, quiet=True,
                     redirect_stdouts=False).execute_from_commandline()

    def new_rules(self) -> RuleSet:
        if not self.rules_text:
            return load_rules(self.settings)
        return RuleSet.from_toml(self.rules_text, known_signals(self.settings))

    async def _watch_broker(self) -> None:
        """``streamer_worker_up`` follows the broker: 0 while it is unreachable (the pipeline itself may be
        blocked waiting for a delivery then), 1 again when it is back."""
        pipe = self.pipeline
        up = pipe is not None and pipe.serving and pipe.broker_reachable()
        self.metrics.worker_up_g.set(1.0 if up else 0.0)

    # -- rule hot reload -------------------------------------------------------------------------

    async def _watch_rules(self) -> None:
        """Reload ``settings.rules_file`` when it changes; an invalid file keeps the old rules."""
        path = self.settings.rules_file
        if not path:
            return
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError as exc:
            log.error("rules file %s unreadable: %s; keeping the current rules", path, exc)
            return
        if mtime == self.rules_mtime:
            return
        self.rules_mtime = mtime
        try:
            text = open(path, encoding="utf-8").read()
            # validate (syntax and the signal catalogue) before touching any engine
            names = RuleSet.from_toml(text, known_signals(self.settings)).names
        except (OSError, RuleError) as exc:
            self.metrics.rule_reloads("rejected").inc()
            log.error("rejected rules file %s: %s; the previous rules stay active", path, exc)
            return
        self.rules_text = text
        for part in (self.pipeline.partitions.values() if self.pipeline else ()):
            for eng in part.engines.values():
                new = self.new_rules()
                new.load_state(eng.rules.to_state())  # unchanged rules keep their hysteresis/cooldown
                eng.rules = new
        for name in names:
            self.metrics.declare_rule(name)
        self.metrics.rule_reloads("loaded").inc()
        log.info("loaded rules from %s", path)

    # -- gauges ----------------------------------------------------------------------------------

    def set_gauges(self, eng: UnderlyingEngine, v: dict[str, float | None]) -> None:
        """Per-underlying analytics gauges from one snapshot's values: every gauge the signal catalogue
        declares (streamer/core/signals.py; None → NaN)."""
        self.metrics.set_signals(eng.underlying, v, eng.catalogue())
