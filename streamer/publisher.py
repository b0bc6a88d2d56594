"""Publish input messages (simulator scenarios, replayed chains) to Kafka with pacing and a progress bar,
through broker outages of minutes.

Outages: one idempotent producer session (``enable_idempotence``, ``acks=all``) carries the whole run. With
idempotence aiokafka never expires a batch it has sent: it retries it until the broker acknowledges it, and
the broker drops a retry it already wrote (producer id + per-partition sequence numbers), so a message is
written exactly once and in order, however long the broker is away. We never start a second session to
resend: a message whose acknowledgement was lost in the outage may already be in the log, and a new session
(new producer id) would write it again. What this module adds around that session:

* a batch waiting for a partition leader is failed by aiokafka after ``request_timeout_ms`` (also the
  longest ``send()`` blocks on a full batch), so that timeout is set beyond the outage limit;
* a failed metadata refresh is followed by the retry interval (aiokafka's sender would otherwise spin on an
  unknown leader, thousands of connection attempts a second);
* the retry interval backs off exponentially while nothing is acknowledged (0.1 s doubling to 5 s), and is
  back at 0.1 s as soon as acknowledgements flow again;
* while it waits, a line every :data:`WAIT_REPORT_EVERY_S` says for how long and how far it got, and
  aiokafka's own per-attempt log lines are rate-limited (:class:`streamer.logs.RateLimit`);
* after ``publish_outage_limit_s`` without an acknowledgement it gives up: :class:`PublishAborted`, one
  message saying how many messages were acknowledged (= are in Kafka) out of how many.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter
from typing import Callable, Iterable, Protocol

from aiokafka.errors import TopicAuthorizationFailedError
from tqdm import tqdm

from streamer import kafka_io, schemas
from streamer.errors import StreamerError
from streamer.logs import RateLimit
from streamer.settings import Settings

NS = 1_000_000_000
MAX_GAP_NS = 60 * NS  # a session break replays as one minute of event time
#: while nothing is acknowledged, a line this often says how long the publisher has been waiting
WAIT_REPORT_EVERY_S = 10.0
#: aiokafka's retry interval (failed produce request, unreachable node): starts here, doubles while the
#: broker stays away, and never exceeds RETRY_BACKOFF_MAX_S (the most a returning broker waits for us)
RETRY_BACKOFF_MIN_S = 0.1
RETRY_BACKOFF_MAX_S = 5.0
#: an input message may be as large as its topic allows (the hostile suite sends 10 MB ones); the
#: broker's max.message.bytes is the real limit, the client's check must just not be lower
MAX_REQUEST_BYTES = 16 * 1024 * 1024
WATCH_TICK_S = 0.25
#: the loggers aiokafka writes one line per failed attempt to during an outage
AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.client", "aiokafka.cluster",
                    "aiokafka.producer.sender", "aiokafka.producer.producer")


class Publishable(Protocol):
    kind: str   # "index_tick" | "daily_close" | "option_quote" | "open_interest"
    key: str    # the underlying
    msg: object  # a schemas message, or bytes sent as they are (hostile inputs mixed into a scenario)


class PublishAborted(StreamerError):
    """The broker stayed unreachable longer than ``publish_outage_limit_s``; the message says how far it got."""


def topic_of(settings: Settings, kind: str) -> str:
    names = kafka_io.topics_for(settings)
    return {"index_tick": names.index_ticks, "daily_close": names.index_ticks, "option_quote": names.option_quotes,
            "open_interest": names.open_interest}[kind]


class Progress:
    """Messages handed to the producer and acknowledged by the broker, and since when nothing moved."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.sent = 0
        self.acked = 0
        self.idle_since = time.monotonic()  # last acknowledgement, or last moment nothing was outstanding

    def track(self, fut: asyncio.Future) -> asyncio.Future:
        self.sent += 1
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.acked += 1
            self.idle_since = time.monotonic()

    def stalled_s(self, now: float) -> float:
        """Seconds without an acknowledgement while messages are outstanding (0 when none are)."""
        if self.acked >= self.sent:
            self.idle_since = now
            return 0.0
        return now - self.idle_since

    def how_far(self) -> str:
        of = f" of {self.total:,}" if self.total is not None else ""
        return f"{self.acked:,}{of} messages acknowledged"


async def publish(settings: Settings, events: Iterable[Publishable], *, total: int | None = None,
                  rate: float | None = None, speed: float | None = None, progress: bool = True,
                  raw: Iterable[tuple[str, str, bytes]] = (), report: Callable[[str], None] | None = None) -> Counter:
    """Send ``events`` in order, each exactly once, through broker outages up to ``publish_outage_limit_s``;
    returns messages sent per topic. Raises :class:`PublishAborted` after a longer outage.

    ``rate``: at most this many messages per second (None = as fast as the producer goes).
    ``speed``: replay event time this many times faster than real time (None = no event-time pacing).
    ``raw``: extra (kind, key, bytes) messages sent first as they are (e.g. malformed inputs).
    ``report``: where the waiting-for-the-broker lines go (default: stderr, above the progress bar).
    """
    limit_s = settings.publish_outage_limit_s
    producer = kafka_io.make_producer(
        settings, enable_idempotence=True, acks="all", retry_backoff_ms=int(RETRY_BACKOFF_MIN_S * 1000),
        # batches waiting for a leader expire after this, and send() blocks at most this long on a full
        # batch: beyond the outage limit, so only our watchdog decides when to give up
        request_timeout_ms=int((limit_s + 60) * 1000), max_request_size=MAX_REQUEST_BYTES)
    await kafka_io.start_client(producer, settings)
    _pace_metadata_retries(producer)
    sent: Counter = Counter()
    prog = Progress(total)
    bar = tqdm(total=total, unit="msg", desc="publishing", disable=not progress, mininterval=0.5)
    say = report or (lambda line: tqdm.write(line, file=sys.stderr))
    work = asyncio.ensure_future(_send_all(producer, settings, events, raw, sent, prog, bar, rate, speed))
    watchdog = _Watchdog(producer, settings, prog, say)
    watch = asyncio.ensure_future(watchdog.run())
    aborted: PublishAborted | None = None
    try:
        with _bounded_aiokafka_logs():
            await asyncio.wait([work, watch], return_when=asyncio.FIRST_COMPLETED)
            if not work.done():  # the watchdog gave up
                aborted = watch.exception() or PublishAborted("the outage watchdog stopped")  # type: ignore[assignment]
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                raise aborted  # type: ignore[misc]
            result = work.result()
            watchdog.step()
            return result
    except TopicAuthorizationFailedError as exc:
        topics = ", ".join(sorted(map(str, exc.args))) or "a topic"
        raise kafka_io.refused(settings, exc, f"writing to {topics}") from None
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError, PublishAborted):  # raised above already
            await watch
        bar.close()
        await _stop(producer, aborted)


class _Watchdog:
    """While nothing is acknowledged: back off the retries, report every WAIT_REPORT_EVERY_S, give up at the limit."""

    def __init__(self, producer, settings: Settings, prog: Progress, say: Callable[[str], None]) -> None:
        self.producer, self.settings, self.prog, self.say = producer, settings, prog, say
        self.backoff, self.next_double, self.next_report, self.waited = RETRY_BACKOFF_MIN_S, 0.0, WAIT_REPORT_EVERY_S, 0.0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(WATCH_TICK_S)
            self.step()

    def step(self) -> None:
        """One look at the acknowledgements; ``publish`` takes a last one when the sends end, so an outage that
        ended between two ticks is still reported over and the retry interval reset."""
        prog, limit_s = self.prog, self.settings.publish_outage_limit_s
        stalled = prog.stalled_s(time.monotonic())
        if stalled < 1.0:  # acknowledgements flow (or nothing is outstanding)
            if self.waited >= WAIT_REPORT_EVERY_S:
                self.say(f"publishing: the broker is back after {self.waited:.0f}s; resuming ({prog.how_far()})")
            if self.backoff != RETRY_BACKOFF_MIN_S:
                self.backoff = RETRY_BACKOFF_MIN_S
                _set_retry_backoff(self.producer, self.backoff)
            self.next_double, self.next_report, self.waited = 0.0, WAIT_REPORT_EVERY_S, 0.0
            return
        self.waited = stalled
        if stalled >= self.next_double:
            self.next_double = stalled + self.backoff
            self.backoff = min(self.backoff * 2, RETRY_BACKOFF_MAX_S)
            _set_retry_backoff(self.producer, self.backoff)
        if stalled >= limit_s:
            raise PublishAborted(
                f"no acknowledgement from the broker at {self.settings.bootstrap} for {stalled:.0f}s "
                f"(publish_outage_limit_s = {limit_s:g}); gave up after {prog.how_far()} "
                f"({prog.sent - prog.acked:,} sent but unacknowledged, the rest not sent)")
        if stalled >= self.next_report:
            self.next_report += WAIT_REPORT_EVERY_S
            self.say(f"publishing: waiting for the broker at {self.settings.bootstrap} for {stalled:.0f}s "
                     f"({prog.how_far()}; retrying every {self.backoff:g}s, giving up after {limit_s:g}s)")


def _set_retry_backoff(producer, seconds: float) -> None:
    """aiokafka reads the retry interval from these two attributes at each attempt (0.14: sender.py
    ``BaseHandler.__init__``, client.py ``_wait_on_metadata``); tests/unit/test_publisher.py checks they exist."""
    producer._sender._retry_backoff = seconds
    producer.client._retry_backoff = seconds


def _pace_metadata_retries(producer) -> None:
    """Wait the retry interval after a failed metadata update before the sender may ask again.

    When the broker shuts down it first hands off partition leadership (leader -1); aiokafka's sender then
    loops "leader unknown → refresh metadata → refresh fails at once" with no pause: ~2,000 connection
    attempts a second for the whole outage. The refresh it waits on now ends the retry interval later.
    """
    pace_metadata_retries(producer.client)


def pace_metadata_retries(client) -> None:
    """Make every waiter of a failed metadata refresh of aiokafka ``client`` (a producer's ``client``, a
    consumer's ``_client``) wait the client's retry interval before it may ask again (see above; the
    worker's clients spun the same way on an unreachable broker)."""
    refresh = client.force_metadata_update

    async def paced(update: asyncio.Future) -> bool:
        ok = await update
        if not ok:
            await asyncio.sleep(client._retry_backoff)
        return ok

    # the refresh is requested at once, as before (the client itself calls this while a refresh runs,
    # where it must stay a no-op); only the caller's wait for it is lengthened
    client.force_metadata_update = lambda: asyncio.ensure_future(paced(refresh()))


@contextlib.contextmanager
def _bounded_aiokafka_logs():
    """One line per kind of aiokafka complaint per 10 s during an outage, instead of one per attempt."""
    f = RateLimit(every_s=10.0)
    loggers = [logging.getLogger(name) for name in AIOKAFKA_LOGGERS]
    for lg in loggers:
        lg.addFilter(f)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(f)


class _DiscardingSet(set):
    """aiokafka's pending-batch set, where removing a batch that is not there is not an error."""

    def remove(self, item) -> None:
        self.discard(item)


async def _stop(producer, aborted: BaseException | None) -> None:
    """Stop the producer; after giving up, fail what it still holds instead of flushing it forever.

    The sender task is cancelled first: failing batches under a running sender made one of its produce
    tasks raise, and aiokafka's handler for a failed sender then printed an AttributeError traceback
    (0.14: ``TransactionManager.fatal_error`` on an idempotent, non-transactional producer). The failed
    batches' drain waiters are then read, or asyncio prints "Future exception was never retrieved" for each,
    and a batch retried once (re-enqueued) must not raise KeyError from its first attempt's done-callback:
    giving up is one clear message.
    """
    if aborted is not None:
        task = getattr(producer._sender, "sender_task", None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                await asyncio.wait_for(task, 10.0)
        acc = producer._message_accumulator
        batches = [b for bs in getattr(acc, "_batches", {}).values() for b in bs] + \
            list(getattr(acc, "_pending_batches", ()))
        acc._pending_batches = _DiscardingSet(getattr(acc, "_pending_batches", ()))
        acc.fail_all(aborted)
        for b in batches:
            for f in (b.future, b._drain_waiter):
                if f.done() and not f.cancelled():
                    f.exception()
    try:
        await asyncio.wait_for(producer.stop(), 10.0 if aborted is not None else None)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - giving up already; the error above matters
        if aborted is None:
            raise


async def _send_all(producer, settings: Settings, events, raw, sent: Counter, prog: Progress, bar,
                    rate, speed) -> Counter:
    pending = []
    for kind, key, value in raw:
        topic = topic_of(settings, kind)
        pending.append(prog.track(await producer.send(topic, value, key=key.encode())))
        sent[topic] += 1
    t_wall0 = time.monotonic()
    prev_ts: int | None = None
    ev_elapsed_ns = 0  # event time elapsed, with overnight/weekend gaps squeezed to MAX_GAP_NS
    n = 0
    for ev in events:
        topic = topic_of(settings, ev.kind)
        as_is = isinstance(ev.msg, (bytes, bytearray))
        value = bytes(ev.msg) if as_is else schemas.encode(ev.msg)
        pending.append(prog.track(await producer.send(topic, value, key=ev.key.encode())))
        if speed and not as_is and ev.kind != "daily_close":  # a history backfill is not replayed in time
            ts = ev.msg.ts_ns  # type: ignore[attr-defined]
            if prev_ts is not None:
                ev_elapsed_ns += min(max(ts - prev_ts, 0), MAX_GAP_NS)
            prev_ts = ts
        sent[topic] += 1
        n += 1
        if n % 500 == 0:
            bar.update(500)
            await asyncio.gather(*pending)  # bound memory; keeps the producer's batches full
            pending.clear()
        # pacing: sleep only when ahead of schedule (checked every 50 messages to stay cheap)
        if (rate or speed) and n % 50 == 0:
            ahead = 0.0
            if rate:
                ahead = n / rate - (time.monotonic() - t_wall0)
            if speed:
                ahead = max(ahead, ev_elapsed_ns / NS / speed - (time.monotonic() - t_wall0))
            if ahead > 0:
                await asyncio.sleep(ahead)
    await asyncio.gather(*pending)
    await producer.flush()
    bar.update(n % 500)
    return sent
