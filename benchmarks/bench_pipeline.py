"""Pipeline throughput on the real local broker, measured in one run:

(a) a raw aiokafka consume-only loop over a topic of N option quotes (the ceiling: no decoding),
(a2) the same loop plus orjson decoding and edge validation (our per-message cost without Faust),
(b) the streamer worker (Faust) end to end over the same topic: consume, validate, update state.

Usage: .venv/bin/python benchmarks/bench_pipeline.py [--n 200000]   (starts the broker if needed)
Prints one JSON object; BENCHMARKS.md records the figures and their ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamer import broker, kafka_io, schemas, simulator  # noqa: E402
from streamer.commands.demo import consumed, scrape  # noqa: E402
from streamer.settings import load_settings  # noqa: E402


def quotes(n: int):
    """N option quotes from the simulator's election scenario, cycled."""
    base = [schemas.encode(e.msg) for e in simulator.generate("election-2024", 0, preset="demo")
            if e.kind == "option_quote"]
    return list(itertools.islice(itertools.cycle(base), n))


async def publish(settings, topic: str, values: list[bytes]) -> float:
    producer = kafka_io.make_producer(settings)
    await producer.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for i, v in enumerate(values):
            futs.append(await producer.send(topic, v, key=b"SPX"))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


async def consume_loop(settings, topic: str, n: int, decode: bool) -> float:
    c = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap, group_id=None,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024)
    await c.start()
    got = 0
    t0 = None
    try:
        while got < n:
            batch = await c.getmany(timeout_ms=1000, max_records=5000)
            if t0 is None and batch:
                t0 = time.perf_counter()
            for recs in batch.values():
                if decode:
                    for r in recs:
                        schemas.parse_option_quote(r.value)
                got += len(recs)
        return time.perf_counter() - t0
    finally:
        await c.stop()


def worker_rate(settings, topic: str, n: int, faust_sensors: bool = True) -> tuple[float, int]:
    """Start the worker on a topic that already holds N messages; time from its first to its Nth."""
    port = 9400 + os.getpid() % 500
    env = dict(os.environ, STREAMER_DATA_DIR=tempfile.mkdtemp(prefix="streamer-bench-"),
               STREAMER_FAUST_SENSORS=str(faust_sensors).lower())
    proc = subprocess.Popen([sys.executable, "-m", "streamer.cli", "worker", "--topic-prefix",
                             settings.topic_prefix, "--metrics-port", str(port)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = None
        while True:
            m = scrape(port)
            c = consumed(m, topic) if m else 0.0
            now = time.perf_counter()
            if first is None and c > 0:
                first = (now, c)
            if c >= n:
                return now - first[0], n - int(first[1])
            if proc.poll() is not None:
                raise SystemExit("worker died")
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)


async def main(n: int, faust_sensors: bool) -> dict:
    cfg = broker.start(quiet=True)
    settings = load_settings(bootstrap=cfg.bootstrap, topic_prefix=f"bench{int(time.time())}-")
    names = kafka_io.topics_for(settings)
    await kafka_io.ensure_topics(settings, names.all())
    values = quotes(n)
    t_pub = await publish(settings, names.option_quotes, values)
    t_raw = await consume_loop(settings, names.option_quotes, n, decode=False)
    t_dec = await consume_loop(settings, names.option_quotes, n, decode=True)
    t_w, n_w = worker_rate(settings, names.option_quotes, n, faust_sensors)
    await kafka_io.delete_topics(settings, names.all())
    import aiokafka
    import faust
    import numpy
    raw, dec, wrk = n / t_raw, n / t_dec, n_w / t_w
    return {
        "messages": n, "faust_sensors": faust_sensors, "bytes_per_message": round(sum(map(len, values)) / n, 1),
        "publish_msgs_per_s": round(n / t_pub),
        "a_raw_aiokafka_consume_msgs_per_s": round(raw),
        "a2_aiokafka_consume_decode_validate_msgs_per_s": round(dec),
        "b_worker_end_to_end_msgs_per_s": round(wrk),
        "ratio_worker_to_raw": round(wrk / raw, 3),
        "ratio_worker_to_decode": round(wrk / dec, 3),
        "worker_us_per_msg": round(1e6 / wrk, 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "faust": faust.__version__,
                    "aiokafka": aiokafka.__version__, "numpy": numpy.__version__,
                    "kafka": broker.KAFKA_VERSION},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="option quotes to publish (default 200000)")
    ap.add_argument("--no-faust-sensors", action="store_true", help="run the worker without Faust's sensors")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(main(a.n, not a.no_faust_sensors)), indent=2))
