"""`streamer demo`: the whole pipeline on this machine, in one command.

Starts the local Kafka broker (if it is not up), creates a fresh set of topics, starts the worker as
its own process, plays a scenario (default: the 2024-11-05/06 election vol collapse) into Kafka, and
prints every trigger event as a *separate* Kafka consumer receives it. Then it stops what it started
and exits 0. Needs nothing but this repository: the scenario comes from streamer's own simulator.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")


def register(sub: argparse._SubParsersAction) -> None:
    from streamer.commands.simulate import add_scenario_args

    p = sub.add_parser("demo", help="run broker + worker + scenario and print the triggers (start here)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_args(p)
    p.add_argument("--metrics-port", type=int, default=9308, help="worker's Prometheus port (default 9308)")
    p.add_argument("--keep", action="store_true", help="leave the broker running and keep the demo topics")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)")
    p.set_defaults(func=run)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """The worker's /metrics as {(sample name, sorted labels): value}; empty if it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def consumed(metrics: dict, topic: str) -> float:
    return metrics.get(("streamer_messages_in_total", (("topic", topic),)), 0.0)


def describe(ev) -> str:
    when = datetime.fromtimestamp(ev.ts_ns / 1e9, ET).strftime("%Y-%m-%d %H:%M:%S ET")
    notional = f", est. ${ev.estimated_notional_usd / 1e9:,.1f}bn" if ev.estimated_notional_usd else ""
    return (f"TRIGGER {ev.rule} [{ev.severity}] {ev.direction.upper()} {ev.underlying} at {when}{notional}\n"
            f"        {ev.reason}\n        event_id={ev.event_id}")


async def main(args: argparse.Namespace) -> int:
    from streamer import broker, kafka_io, schemas
    from streamer.commands.simulate import play
    from streamer.settings import load_settings

    t_start = time.monotonic()
    bcfg = broker.BrokerConfig()
    started_broker = not broker.is_up(bcfg)
    broker.start(bcfg)
    prefix = f"demo-{int(time.time())}-"
    settings = load_settings(topic_prefix=prefix, bootstrap=args.bootstrap or bcfg.bootstrap,
                             metrics_port=args.metrics_port)
    names = kafka_io.topics_for(settings)
    await kafka_io.ensure_topics(settings, names.all())
    print(f"topics: {prefix}streamer.*.v1 on {settings.bootstrap}", flush=True)

    env = dict(os.environ, STREAMER_DATA_DIR=tempfile.mkdtemp(prefix="streamer-demo-"))
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "worker", "--topic-prefix", prefix, "--bootstrap",
         settings.bootstrap, "--metrics-port", str(args.metrics_port)], env=env)
    events: list = []

    async def watch_triggers() -> None:
        # an independent consumer: what an execution system would see
        async for rec in kafka_io.consume(settings, names.triggers, timeout_s=args.timeout):
            ev = schemas.parse_trigger_event(rec.value)
            events.append(ev)
            print("\n" + describe(ev), flush=True)

    watcher = asyncio.create_task(watch_triggers())
    try:
        sent = await play(settings, args)
        print("sent: " + ", ".join(f"{n} -> {t}" for t, n in sorted(sent.items())), flush=True)
        # wait until the worker has consumed everything we sent (its own counters say so)
        deadline = time.monotonic() + args.timeout
        while True:
            m = scrape(args.metrics_port)
            if m and all(consumed(m, t) >= n for t, n in sent.items()):
                break
            if worker.poll() is not None:
                print(f"worker exited with {worker.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("timed out waiting for the worker to catch up", file=sys.stderr)
                return 1
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # let the last trigger travel through Kafka to the watcher
        m = scrape(args.metrics_port)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        if not args.keep:
            await kafka_io.delete_topics(settings, names.all())
            if started_broker:
                broker.stop(bcfg)

    dlq = sum(v for (name, _), v in m.items() if name == "streamer_dead_letters_total")
    print(f"\n{len(events)} trigger event(s) for scenario {args.scenario!r}; "
          f"{int(dlq)} message(s) dead-lettered; {time.monotonic() - t_start:.0f}s")
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(main(args))
