"""The publisher through an outage, against a stand-in producer: it waits, reports, backs off, resumes, and
gives up after ``publish_outage_limit_s`` saying how far it got. The real broker case (a 2-minute outage) is
tests/integration/test_outage.py."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streamer import kafka_io, publisher, schemas, simulator
from streamer.settings import Settings


class FakeProducer:
    """Acknowledges the first ``ack_first`` sends at once; the rest once ``release()`` is called (never if not)."""

    def __init__(self, ack_first: int) -> None:
        self.ack_first = ack_first
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.held: list[asyncio.Future] = []
        self.backoffs: list[float] = []
        producer = self

        class Sender:
            @property
            def _retry_backoff(self):
                return producer.backoffs[-1] if producer.backoffs else publisher.RETRY_BACKOFF_MIN_S

            @_retry_backoff.setter
            def _retry_backoff(self, v):
                producer.backoffs.append(v)

        self._sender = Sender()
        self.client = SimpleNamespace(_retry_backoff=0.1, force_metadata_update=lambda: None)
        self._message_accumulator = SimpleNamespace(fail_all=self._fail_all)
        self.stopped = False

    async def send(self, topic, value, key=None):
        self.sent.append((topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        if len(self.sent) <= self.ack_first:
            fut.set_result(len(self.sent))
        else:
            self.held.append(fut)
        return fut

    def release(self) -> None:
        for f in self.held:
            if not f.done():
                f.set_result(None)
        self.held.clear()
        self.ack_first = 10**9

    def _fail_all(self, exc) -> None:
        for f in self.held:
            if not f.done():
                f.set_exception(exc)

    async def flush(self):
        await asyncio.gather(*self.held)

    async def stop(self):
        self.stopped = True


@pytest.fixture
def fast_watch(monkeypatch):
    monkeypatch.setattr(publisher, "WATCH_TICK_S", 0.02)
    monkeypatch.setattr(publisher, "WAIT_REPORT_EVERY_S", 0.3)


def use(monkeypatch, fake: FakeProducer) -> None:
    async def start(client, settings):
        pass
    monkeypatch.setattr(kafka_io, "make_producer", lambda settings, **kw: fake)
    monkeypatch.setattr(kafka_io, "start_client", start)


def events(n: int):
    return list(simulator.generate("election-2024", 0, preset="fast"))[:n]


def test_an_outage_beyond_the_limit_ends_with_how_far_it_got(monkeypatch, fast_watch):
    fake = FakeProducer(ack_first=1000)
    use(monkeypatch, fake)
    lines: list[str] = []
    s = Settings(publish_outage_limit_s=1.5)
    with pytest.raises(publisher.PublishAborted) as err:
        asyncio.run(publisher.publish(s, events(3000), total=3000, progress=False, report=lines.append))
    msg = str(err.value)
    assert "gave up after 1,000 of 3,000 messages acknowledged" in msg
    assert "publish_outage_limit_s = 1.5" in msg and s.bootstrap in msg
    # sends stop at the first window that cannot be acknowledged (every 500 messages)
    assert f"{len(fake.sent) - 1000:,} sent but unacknowledged" in msg and len(fake.sent) == 1500
    waits = [ln for ln in lines if "waiting for the broker" in ln]
    assert 3 <= len(waits) <= 6, lines  # about every 0.3 s over ~1.5 s
    assert all("1,000 of 3,000 messages acknowledged" in ln for ln in waits)
    assert fake.stopped and all(f.done() for f in fake.held), "held messages are failed, not flushed forever"


def test_a_shorter_outage_is_ridden_out_once_and_in_order(monkeypatch, fast_watch):
    fake = FakeProducer(ack_first=700)
    use(monkeypatch, fake)
    lines: list[str] = []
    evs = events(2000)

    async def go():
        loop = asyncio.get_running_loop()
        loop.call_later(2.0, fake.release)  # the broker comes back
        return await publisher.publish(Settings(publish_outage_limit_s=30), evs, total=len(evs), progress=False,
                                       report=lines.append)

    sent = asyncio.run(go())
    assert sum(sent.values()) == len(evs)
    # every message handed to the producer exactly once, in order (the producer's idempotent retries do the rest)
    assert [v for _, _, v in fake.sent] == [schemas.encode(e.msg) for e in evs]
    assert any("waiting for the broker" in ln for ln in lines)
    assert any("the broker is back" in ln and "resuming" in ln for ln in lines), lines
    # the retry interval doubled while waiting, within its bounds, and was reset once acks came back
    grown = fake.backoffs[:-1]
    assert len(grown) >= 3 and all(b == 2 * a or b == publisher.RETRY_BACKOFF_MAX_S for a, b in zip(grown, grown[1:]))
    assert max(fake.backoffs) <= publisher.RETRY_BACKOFF_MAX_S
    assert fake.backoffs[-1] == publisher.RETRY_BACKOFF_MIN_S


def test_bytes_messages_are_sent_as_they_are(monkeypatch, fast_watch):
    fake = FakeProducer(ack_first=10)
    use(monkeypatch, fake)
    evs = events(3)
    raw = SimpleNamespace(kind="option_quote", key="SPX", msg=b"\xff not json")
    asyncio.run(publisher.publish(Settings(), [evs[0], raw, evs[1]], progress=False, speed=1e9))
    assert [v for _, _, v in fake.sent] == [schemas.encode(evs[0].msg), b"\xff not json", schemas.encode(evs[1].msg)]


def test_the_aiokafka_internals_the_publisher_adjusts_exist():
    """Retry interval and fail-all are aiokafka internals (0.14); an upgrade that renames them fails here."""
    from aiokafka import AIOKafkaProducer

    async def go():
        p = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", enable_idempotence=True, acks="all")
        assert isinstance(p._sender._retry_backoff, float) and isinstance(p.client._retry_backoff, float)
        assert callable(p._message_accumulator.fail_all) and callable(p.client.force_metadata_update)
        await p.client.close()
    asyncio.run(go())


def test_the_aiokafka_internals_the_worker_adjusts_exist():
    """The worker's outage settings (app/worker.py ``_ride_out_outages``) write aiokafka internals (0.14): the
    producer's batch time to live and send() wait, and both clients' metadata refresh."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def go():
        p = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", enable_idempotence=True, acks="all")
        c = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id=None)
        assert p._message_accumulator._batch_ttl == p._request_timeout_ms / 1000 == 40.0
        assert isinstance(c._client._retry_backoff, float) and callable(c._client.force_metadata_update)
        publisher.pace_metadata_retries(c._client)
        fut = c._client.force_metadata_update()  # still a future to await (no broker: the update fails)
        assert isinstance(fut, asyncio.Future)
        fut.cancel()
        await p.client.close()
        await c._client.close()
    asyncio.run(go())
