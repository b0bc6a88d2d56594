"""Topic creation on the real broker: ``ensure_topics`` returns only once the broker serves what it created."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kafka_helpers import settings_for

from streamer import kafka_io

pytestmark = pytest.mark.integration


def _admin_call(settings, fn):
    async def go():
        admin = AIOKafkaAdminClient(**kafka_io.client_options(settings))
        await kafka_io.start_client(admin, settings)
        try:
            return await fn(admin)
        finally:
            await admin.close()
    return asyncio.run(go())


def test_created_topics_are_served_with_leaders_when_ensure_topics_returns(kafka, prefix):
    s = settings_for(kafka, prefix)
    names = kafka_io.topics_for(s).all()
    asyncio.run(kafka_io.ensure_topics(s, names))
    desc = _admin_call(s, lambda admin: admin.describe_topics(names))  # a new client, at once (all exist)
    assert sorted(d["topic"] for d in desc) == sorted(names)
    for d in desc:
        assert d["error_code"] == 0 and len(d["partitions"]) == s.partitions, d
        assert all(p["leader"] >= 0 for p in d["partitions"]), d


def test_the_wait_does_not_return_for_a_topic_the_broker_does_not_serve(kafka, prefix):
    s = settings_for(kafka, prefix)
    t0 = time.monotonic()
    with pytest.raises(kafka_io.KafkaAccessError, match=f"created {prefix}never-created but does not serve"):
        _admin_call(s, lambda admin: kafka_io._until_topics_served(admin, [f"{prefix}never-created"], timeout_s=0.5))
    assert time.monotonic() - t0 >= 0.5
    assert f"{prefix}never-created" not in _admin_call(s, lambda admin: admin.list_topics())  # nor created it
