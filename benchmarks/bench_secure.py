"""What TLS + SCRAM cost the Kafka clients: produce then consume N option-quote-sized messages through
kafka_io's producer and consumer, on the plaintext broker (9092) and the secured one (9096, SASL_SSL,
SCRAM-SHA-512, as `streamer broker start --secure`), same sizes, same code, one topic each.

    .venv/bin/python benchmarks/bench_secure.py --n 100000
"""
from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from streamer import broker, kafka_io
from streamer.settings import Settings

VALUE = b"x" * 181  # the demo's option quotes are 181 bytes (BENCHMARKS.md, pipeline)


async def produce_consume(settings: Settings, topic: str, n: int) -> tuple[float, float]:
    await kafka_io.ensure_topics(settings, [topic], partitions=2)
    producer = kafka_io.make_producer(settings)
    await kafka_io.start_client(producer, settings)
    t0 = time.perf_counter()
    try:
        pending = []
        for i in range(n):
            pending.append(await producer.send(topic, VALUE, key=b"SPX"))
            if len(pending) == 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    produce_s = time.perf_counter() - t0
    got = 0
    t0 = time.perf_counter()
    records = kafka_io.consume(settings, topic, timeout_s=5.0)
    try:
        async for _ in records:
            got += 1
            if got == n:
                break
    finally:
        await records.aclose()  # stops the consumer now, not at garbage collection
    consume_s = time.perf_counter() - t0
    assert got == n, f"consumed {got} of {n}"
    await kafka_io.delete_topics(settings, [topic])
    return n / produce_s, n / consume_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    plain = Settings(bootstrap=broker.BrokerConfig().bootstrap)
    cfg = broker.start(broker.secure_config(), quiet=True)
    secure = broker.client_settings(cfg, broker.ADMIN)
    for name, s in (("PLAINTEXT", plain), ("SASL_SSL", secure)):
        p, c = asyncio.run(produce_consume(s, f"bench-secure-{uuid.uuid4().hex[:8]}", args.n))
        print(f"{name:10s} produce {p:>9,.0f} msg/s   consume {c:>9,.0f} msg/s")


if __name__ == "__main__":
    main()
