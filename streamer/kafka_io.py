"""Plain aiokafka helpers for the tools around the worker: topic creation, a batching producer and a
consumer of a topic from the beginning. The worker itself uses Faust (streamer/app)."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streamer.settings import Settings
from streamer.topics import TopicNames


async def ensure_topics(settings: Settings, names: list[str], partitions: int | None = None) -> None:
    """Create ``names`` (replication 1) if missing; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, partitions or settings.partitions, 1) for n in names if n not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete ``names`` where they exist (demo clean-up)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def make_producer(settings: Settings, **kw) -> AIOKafkaProducer:
    """A producer tuned for throughput: small linger, lz4-free (no extra deps), acks from the leader."""
    opts = dict(bootstrap_servers=settings.bootstrap, linger_ms=5, max_batch_size=256 * 1024, acks=1)
    opts.update(kw)
    return AIOKafkaProducer(**opts)


async def consume(settings: Settings, topic: str, *, timeout_s: float, until=None,
                  from_beginning: bool = True) -> AsyncIterator:
    """Yield records of ``topic`` (no consumer group) until ``timeout_s`` of silence or ``until(rec)``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap, group_id=None,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < timeout_s:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for rec in records:
                    quiet_since = time.monotonic()
                    yield rec
                    if until is not None and until(rec):
                        return
    finally:
        await consumer.stop()


def topics_for(settings: Settings) -> TopicNames:
    return TopicNames(settings.topic_prefix)


def run(coro):
    """Run a coroutine to completion from synchronous CLI code."""
    return asyncio.run(coro)
