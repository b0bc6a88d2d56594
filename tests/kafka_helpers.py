"""Helpers for tests that talk to the real broker: publish a scenario, read a topic, per-test settings."""
from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter

from streamer import kafka_io, publisher, simulator
from streamer.settings import load_settings


def settings_for(kafka, prefix):
    return load_settings(bootstrap=kafka.bootstrap, topic_prefix=prefix)


def publish(settings, scenario: str | None, *, bad: int = 0, seed: int = 0, events=None) -> Counter:
    async def go():
        await kafka_io.ensure_topics(settings, kafka_io.topics_for(settings).all())
        raw = [(kind, "SPX", data) for kind, data, _ in simulator.malformed(seed, bad)] if bad else []
        evs = events if events is not None else simulator.generate(scenario, seed, preset="fast")
        return await publisher.publish(settings, evs, progress=False, raw=raw)
    return asyncio.run(go())


def read_topic(settings, topic: str, timeout_s: float = 3.0, until=None) -> list:
    async def go():
        return [rec async for rec in kafka_io.consume(settings, topic, timeout_s=timeout_s, until=until)]
    return asyncio.run(go())


def stop_process(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Stop a worker as an orchestrator does: SIGTERM (final checkpoint, LeaveGroup), SIGKILL after ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
