"""The Faust worker: the only code that imports Faust. It decodes, calls the engine, encodes.

Topics are consumed as raw bytes so a message that fails validation can go to the dead-letter
topic byte for byte. Input is processed in batches (``take_events``: at most ``batch_max`` messages
or whatever arrived within ``batch_within_s``) to keep Faust's per-event overhead off the hot path;
events are acknowledged after their batch is processed and its outputs are handed to the producer
(at-least-once). Agents run with concurrency 1 (faust issue #606 loses messages above 1).

State: one engine per underlying, kept in a changelogged table ``underlying-state`` whose value is
the engine's plain-data state, written back once per batch per touched underlying (write-back rule:
a value mutated in place is lost on recovery). The changelog record goes to the partition of the
input that changed it, so a recovered worker finds the state on the partitions it owns.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import REGISTRY

from streamer import schemas
from streamer.engine import UnderlyingEngine
from streamer.errors import InvalidMessage
from streamer.metrics import METRICS
from streamer.settings import Settings
from streamer.topics import TopicNames

log = logging.getLogger("streamer.worker")
NS = 1_000_000_000


def _dump_state(state: dict[str, Any]) -> bytes:
    # stdlib json keeps NaN (estimators use it for "not yet"); orjson would turn it into null
    return json.dumps(state, separators=(",", ":")).encode()


class Worker:
    """Holds the Faust app, its topics and table, and the engines of the underlyings it owns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = TopicNames(settings.topic_prefix)
        self.app = faust.App(
            f"{settings.topic_prefix}streamer-worker",
            broker=settings.broker_url,
            store="memory://",  # rebuilt from the changelog topic on start (no RocksDB needed)
            datadir=settings.data_dir,
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=settings.partitions,
            topic_replication_factor=1,
            consumer_auto_offset_reset="earliest",
            web_enabled=False,  # metrics are served by prometheus_client (see commands/worker.py)
            producer_linger=0.005,
            broker_commit_every=1000,
            broker_commit_interval=1.0,
        )
        n = self.names
        self.index_topic = self.app.topic(n.index_ticks, value_serializer="raw", key_serializer="raw")
        self.quote_topic = self.app.topic(n.option_quotes, value_serializer="raw", key_serializer="raw")
        self.oi_topic = self.app.topic(n.open_interest, value_serializer="raw", key_serializer="raw")
        self.analytics_topic = self.app.topic(n.analytics, value_serializer="raw", key_serializer="raw")
        self.trigger_topic = self.app.topic(n.triggers, value_serializer="raw", key_serializer="raw")
        self.dlq_topic = self.app.topic(n.dead_letters, value_serializer="raw", key_serializer="raw")
        self.state = self.app.Table("underlying-state", default=None, partitions=settings.partitions,
                                    key_type=bytes, value_type=bytes)
        self.engines: dict[str, UnderlyingEngine] = {}
        self.metrics = METRICS
        self.metrics.declare_rule("vol_collapse")
        for t in n.inputs():
            self.metrics.declare_topic(t)
        for t in n.outputs():
            self.metrics.declare_topic(t, source=False, sink=True)
        self._setup_faust_sensors()
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.agent(self.index_topic, name="index-ticks", concurrency=1)(self._index_agent)
        self.app.agent(self.quote_topic, name="option-quotes", concurrency=1)(self._quote_agent)
        self.app.agent(self.oi_topic, name="open-interest", concurrency=1)(self._oi_agent)

    def _setup_faust_sensors(self) -> None:
        """Faust's own Prometheus sensors, on the same registry that our endpoint serves."""
        try:
            fm = FaustMetrics.create(REGISTRY, "streamer_faust")
        except ValueError:  # already registered (a second Worker in one process, e.g. tests)
            return
        self.app.monitor = PrometheusMonitor(metrics=fm)

    def on_ready(self) -> None:
        """Recovery done, partitions assigned and seeked: from here on the worker is serving."""
        self.metrics.worker_up_g.set(1)
        log.info("streamer worker ready")

    def run(self, loglevel: str = "warning") -> None:
        """Run until SIGTERM/SIGINT (Faust's worker handles the signals and a clean shutdown)."""
        owner = self

        class _FaustWorker(faust.Worker):
            async def on_startup_finished(self) -> None:
                await super().on_startup_finished()
                owner.on_ready()

        _FaustWorker(self.app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()

    async def _on_revoked(self, app: faust.App, revoked: set[TP], **kw: Any) -> None:
        # engines of partitions we may no longer own are dropped; they reload from the table
        self.engines.clear()

    # -- state -----------------------------------------------------------------------------------

    def engine(self, underlying: str) -> UnderlyingEngine:
        eng = self.engines.get(underlying)
        if eng is None:
            raw = self.state.get(underlying.encode())
            state = json.loads(raw) if raw else None
            eng = self.engines[underlying] = UnderlyingEngine(underlying, self.settings, state)
        return eng

    def _write_back(self, underlying: str, partition: int) -> None:
        key = underlying.encode()
        value = _dump_state(self.engines[underlying].to_state())
        self.state.data[key] = value
        self.state.send_changelog(partition, key, value)

    # -- agents ----------------------------------------------------------------------------------

    async def _index_agent(self, stream) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, s.batch_within_s):
            await self.process_index_batch(events)

    async def _quote_agent(self, stream) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, s.batch_within_s):
            await self.process_validated(events, schemas.parse_option_quote)

    async def _oi_agent(self, stream) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, s.batch_within_s):
            await self.process_validated(events, schemas.parse_open_interest)

    async def _reject(self, message, err: InvalidMessage) -> None:
        dl = schemas.dead_letter(message.value, message.key, message.topic, message.partition,
                                 message.offset, err, time.time_ns())
        await self.dlq_topic.send(key=message.key, value=schemas.encode(dl))
        self.metrics.dead_letters(err.reason).inc()
        self.metrics.msgs_out(self.dlq_topic.get_topic_name()).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, err)

    def _decode(self, message, parser):
        """Parse one message; the key must be the underlying (partitioning contract)."""
        msg = parser(message.value)
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        if key != msg.underlying:
            raise InvalidMessage("key_mismatch", f"message key {key!r} is not its underlying "
                                 f"{msg.underlying!r}", "underlying")
        return msg

    async def process_validated(self, events, parser) -> None:
        """Validate option quotes / open interest (the chain analytics consume them)."""
        if not events:
            return
        for ev in events:
            try:
                self._decode(ev.message, parser)
            except InvalidMessage as err:
                await self._reject(ev.message, err)
        self._account(events)

    async def process_index_batch(self, events) -> None:
        log.debug("index batch: %d events from %s", len(events),
                  sorted({(e.message.partition, e.message.offset) for e in events})[:1])
        touched: dict[str, int] = {}
        fired: list[schemas.TriggerEvent] = []
        for ev in events:
            message = ev.message
            try:
                tick = self._decode(message, schemas.parse_index_tick)
            except InvalidMessage as err:
                await self._reject(message, err)
                continue
            eng = self.engine(tick.underlying)
            fired.extend(eng.on_tick(tick))
            touched[tick.underlying] = message.partition
        now = time.time()
        for underlying, partition in touched.items():
            eng = self.engines[underlying]
            self._write_back(underlying, partition)
            self._set_gauges(eng)
            if eng.snapshot_due(self.settings.analytics_interval_s):
                snap = eng.snapshot()
                await self._publish(self.analytics_topic, underlying, schemas.encode(snap), snap.ts_ns, now)
        m = self.metrics
        for ev in fired:
            m.rule_evaluations(ev.rule).inc()
            await self._publish(self.trigger_topic, ev.underlying, schemas.encode(ev), ev.ts_ns, now)
            m.trigger(ev.rule, ev.severity, ev.ts_ns / NS)
            log.info("trigger %s %s: %s", ev.rule, ev.event_id, ev.reason)
        self._account(events)

    async def _publish(self, topic, key: str, value: bytes, ts_ns: int, now: float) -> None:
        await topic.send(key=key.encode(), value=value)
        name = topic.get_topic_name()
        self.metrics.msgs_out(name).inc()
        self.metrics.latency(name).observe(max(0.0, now - ts_ns / NS))

    def _account(self, events) -> None:
        """Count consumed messages and record each partition's lag after this batch."""
        last: dict[TP, int] = {}
        for ev in events:
            tp = ev.message.tp
            last[tp] = max(last.get(tp, -1), ev.message.offset)
        consumer = self.app.consumer
        for tp, off in last.items():
            try:
                lag = consumer.highwater(tp) - (off + 1)
            except Exception:  # highwater unknown right after assignment
                continue
            self.metrics.consumer_lag(tp.topic, str(tp.partition)).set(max(lag, 0))
        self.metrics.seen(events[0].message.topic, len(events))

    def _set_gauges(self, eng: UnderlyingEngine) -> None:
        u = self.metrics.underlying(eng.underlying)
        s = eng.series.get(eng.underlying)
        if s is not None:
            u.spot.set(s.last)
            u.realized_vol("1m_ewma").set(eng.rv_value("rv_ewma"))
            u.realized_vol("session_1m").set(eng.rv_value("rv_intraday"))
            u.realized_vol("20d").set(eng.rv_value("rv_close"))
        for sym in self.settings.vol_indices:
            v = eng.series.get(sym)
            if v is not None:
                u.vol_index(sym).set(v.last)
                if v.prev_close == v.prev_close:
                    u.vol_index_change_ratio(sym).set(v.last / v.prev_close - 1.0)
