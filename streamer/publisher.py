"""Publish input messages (simulator scenarios, replayed chains) to Kafka with pacing and a progress bar."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Iterable, Protocol

from aiokafka.errors import TopicAuthorizationFailedError
from tqdm import tqdm

from streamer import kafka_io, schemas
from streamer.settings import Settings

NS = 1_000_000_000
MAX_GAP_NS = 60 * NS  # a session break replays as one minute of event time


class Publishable(Protocol):
    kind: str   # "index_tick" | "daily_close" | "option_quote" | "open_interest"
    key: str    # the underlying
    msg: object


def topic_of(settings: Settings, kind: str) -> str:
    names = kafka_io.topics_for(settings)
    return {"index_tick": names.index_ticks, "daily_close": names.index_ticks, "option_quote": names.option_quotes,
            "open_interest": names.open_interest}[kind]


async def publish(settings: Settings, events: Iterable[Publishable], *, total: int | None = None,
                  rate: float | None = None, speed: float | None = None, progress: bool = True,
                  raw: Iterable[tuple[str, str, bytes]] = ()) -> Counter:
    """Send ``events`` in order; returns messages sent per topic.

    ``rate``: at most this many messages per second (None = as fast as the producer goes).
    ``speed``: replay event time this many times faster than real time (None = no event-time pacing).
    ``raw``: extra (kind, key, bytes) messages sent first as they are (e.g. malformed inputs).
    """
    producer = kafka_io.make_producer(settings)
    await kafka_io.start_client(producer, settings)
    sent: Counter = Counter()
    bar = tqdm(total=total, unit="msg", desc="publishing", disable=not progress, mininterval=0.5)
    try:
        return await _send_all(producer, settings, events, raw, sent, bar, rate, speed)
    except TopicAuthorizationFailedError as exc:
        topics = ", ".join(sorted(map(str, exc.args))) or "a topic"
        raise kafka_io.refused(settings, exc, f"writing to {topics}") from None
    finally:
        bar.close()
        await producer.stop()


async def _send_all(producer, settings: Settings, events, raw, sent: Counter, bar, rate, speed) -> Counter:
    for kind, key, value in raw:
        topic = topic_of(settings, kind)
        await producer.send(topic, value, key=key.encode())
        sent[topic] += 1
    t_wall0 = time.monotonic()
    prev_ts: int | None = None
    ev_elapsed_ns = 0  # event time elapsed, with overnight/weekend gaps squeezed to MAX_GAP_NS
    n = 0
    pending = []
    for ev in events:
        topic = topic_of(settings, ev.kind)
        pending.append(await producer.send(topic, schemas.encode(ev.msg), key=ev.key.encode()))
        if speed and ev.kind != "daily_close":  # a history backfill is not replayed in time
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
