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

import asyncio
import json
import logging
import math
import os
import time
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import REGISTRY

from streamer import schemas
from streamer.core.rules import RuleError, RuleSet
from streamer.engine import UnderlyingEngine, load_rules
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
        self.rules_text, self.rules_mtime = "", 0
        self.metrics = METRICS
        for name in load_rules(settings).names:  # fails fast on an invalid rules file
            self.metrics.declare_rule(name)
        for t in n.inputs():
            self.metrics.declare_topic(t)
        for t in n.outputs():
            self.metrics.declare_topic(t, source=False, sink=True)
        if settings.faust_sensors:
            self._setup_faust_sensors()
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.agent(self.index_topic, name="index-ticks", concurrency=1)(self._index_agent)
        self.app.agent(self.quote_topic, name="option-quotes", concurrency=1)(self._quote_agent)
        self.app.agent(self.oi_topic, name="open-interest", concurrency=1)(self._oi_agent)
        self.app.timer(2.0)(self._watch_rules)

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
        """The engine of ``underlying``, rebuilt from the table the first time it is needed."""
        eng = self.engines.get(underlying)
        if eng is None:
            raw = self.state.get(underlying.encode())
            prefix = f"{underlying}|c|".encode()
            contracts = (json.loads(v) for k, v in self.state.data.items() if k.startswith(prefix))
            eng = UnderlyingEngine.restore(underlying, self.settings, json.loads(raw) if raw else None,
                                           contracts, rules=self._new_rules())
            self.engines[underlying] = eng
        return eng

    def _new_rules(self) -> RuleSet:
        return RuleSet.from_toml(self.rules_text) if self.rules_text else load_rules(self.settings)

    async def _write_back(self, eng: UnderlyingEngine, partition: int) -> list:
        """Write-back rule: every changed contract (O(1) each) and the engine's own record.

        Each record goes to the local store and, as a changelog record, to the partition of the
        input that changed it. The records are handed to the Kafka producer directly (one batched
        send each) rather than through Faust's table changelog buffer, which produces one message at
        a time and throttles the stream once 100 are pending. Returns the delivery futures; the
        caller awaits them before the batch's input offsets are acknowledged.
        """
        records = eng.take_touched_contracts()
        records.append((eng.underlying, eng.to_state()))
        topic = self.state.changelog_topic.get_topic_name()
        send = self.app.producer.send
        store = self.state.data
        futs = []
        for key, st in records:
            k, v = key.encode(), _dump_state(st)
            store[k] = v
            futs.append(await send(topic, k, v, partition, None, None))
        return futs

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
            names = RuleSet.from_toml(text).names  # validate before touching any engine
        except (OSError, RuleError) as exc:
            self.metrics.rule_reloads("rejected").inc()
            log.error("rejected rules file %s: %s; the previous rules stay active", path, exc)
            return
        self.rules_text = text
        for eng in self.engines.values():
            new = self._new_rules()
            new.load_state(eng.rules.to_state())  # unchanged rules keep their hysteresis/cooldown
            eng.rules = new
        for name in names:
            self.metrics.declare_rule(name)
        self.metrics.rule_reloads("loaded").inc()
        log.info("loaded rules from %s", path)

    # -- agents ----------------------------------------------------------------------------------

    async def _index_agent(self, stream) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, s.batch_within_s):
            await self.process_batch(events, schemas.parse_index_message)

    async def _quote_agent(self, stream) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, s.batch_within_s):
            await self.process_batch(events, schemas.parse_option_quote)

    async def _oi_agent(self, stream) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, s.batch_within_s):
            await self.process_batch(events, schemas.parse_open_interest)

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

    async def process_batch(self, events, parser) -> None:
        """Decode and validate a batch, feed the engines, then write back and publish once."""
        if not events:
            return
        touched: dict[str, int] = {}
        fired: list[schemas.TriggerEvent] = []
        quotes: dict[str, list] = {}
        for ev in events:
            message = ev.message
            try:
                msg = self._decode(message, parser)
            except InvalidMessage as err:
                await self._reject(message, err)
                continue
            u = msg.underlying
            touched[u] = message.partition
            if type(msg) is schemas.IndexTick:
                fired.extend(self.engine(u).on_tick(msg))
            elif type(msg) is schemas.OptionQuote:
                quotes.setdefault(u, []).append(msg)  # IVs are solved per batch, vectorized
            elif type(msg) is schemas.DailyClose:
                self.engine(u).on_daily_close(msg)
            else:
                self.engine(u).on_open_interest(msg)
        for u, qs in quotes.items():
            self.engine(u).on_quotes(qs)
        now = time.time()
        m = self.metrics
        pending: list = []
        for u, partition in touched.items():
            eng = self.engines[u]
            n_eval, eng.n_evaluations = eng.n_evaluations, 0
            if n_eval:
                for name in eng.rules.names:
                    m.rule_evaluations(name).inc(n_eval)
            pending.extend(await self._write_back(eng, partition))
            if eng.snapshot_due(self.settings.analytics_interval_s):
                snap = eng.snapshot()
                self._set_gauges(eng, snap.values)
                await self._publish(self.analytics_topic, u, schemas.encode(snap), snap.ts_ns, now)
        for ev in fired:
            await self._publish(self.trigger_topic, ev.underlying, schemas.encode(ev), ev.ts_ns, now)
            m.trigger(ev.rule, ev.severity, ev.ts_ns / NS)
            log.info("trigger %s %s: %s", ev.rule, ev.event_id, ev.reason)
        if pending:  # state durable in the changelog before the inputs are acknowledged
            await asyncio.gather(*pending)
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

    def _set_gauges(self, eng: UnderlyingEngine, v: dict[str, float | None]) -> None:
        """Per-underlying analytics gauges from one snapshot's values (None → NaN)."""
        def g(name: str) -> float:
            x = v.get(name)
            return math.nan if x is None else x

        u = self.metrics.underlying(eng.underlying)
        u.spot.set(g("spot"))
        u.realized_vol("1m_ewma").set(g("rv_1m_ewma_annual"))
        u.realized_vol("session_1m").set(g("rv_1m_session_annual"))
        u.realized_vol("20d").set(g("rv_cc_20d_annual"))
        u.atm_implied_vol.set(g("atm_iv"))
        for sym in self.settings.vol_indices:
            if f"{sym.lower()}_last" in v:
                u.vol_index(sym).set(g(f"{sym.lower()}_last"))
                u.vol_index_change_ratio(sym).set(g(f"{sym.lower()}_change_ratio"))
        u.vol_index("VIX_calc").set(g("vix_calc"))
        u.vol_index("VIX9D_calc").set(g("vix9d_calc"))
        u.gex_usd_per_pct.set(g("gex_usd_per_pct"))
        u.gamma_flip.set(g("gamma_flip"))
        u.call_wall.set(g("call_wall"))
        u.put_wall.set(g("put_wall"))
        u.vanna_usd_per_vol_pt.set(g("vanna_usd_per_vol_pt"))
        u.charm_usd_per_day.set(g("charm_usd_per_day"))
        for fund, horizon, name in FLOW_GAUGES:
            u.flow(fund, horizon).set(g(name))


# (fund_type, horizon, signal) of the streamer_flow_usd gauges
FLOW_GAUGES = (
    ("vol_control", "today", "flow_vol_control_today_usd"),
    ("vol_control", "next_close", "flow_vol_control_next_close_usd"),
    ("vol_control", "1w", "flow_vol_control_1w_usd"),
    ("vol_control", "2w", "flow_vol_control_2w_usd"),
    ("vol_control", "1m", "flow_vol_control_1m_usd"),
    ("risk_parity", "today", "flow_risk_parity_today_usd"),
    ("cta", "today", "flow_cta_today_usd"),
    ("leveraged_etf", "close", "flow_leveraged_etf_close_usd"),
    ("dealer_gamma", "now", "flow_dealer_gamma_usd"),
    ("dealer_vanna", "now", "flow_dealer_vanna_usd"),
    ("dealer_charm", "now", "flow_dealer_charm_usd"),
)
