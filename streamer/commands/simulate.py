"""`streamer simulate`: publish a deterministic market scenario (SPX and VIX ticks and the leveraged funds'
underlyings, an SPX option chain, open interest) to Kafka, optionally with malformed messages mixed in to
exercise the dead-letter path."""
from __future__ import annotations

import argparse


def add_scenario_args(p: argparse.ArgumentParser) -> None:
    from streamer import simulator

    p.add_argument("--scenario", default="election-2024", choices=sorted(simulator.SCENARIOS),
                   help="scenario to play (default election-2024)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same messages (default 0)")
    p.add_argument("--fast", action="store_true", help="thin the chain and tick stream (a few thousand messages)")
    p.add_argument("--rate", type=float, help="at most this many messages per second (default: unlimited)")
    p.add_argument("--speed", type=float,
                   help="replay event time this many times faster than real time (session breaks take 1 min)")
    p.add_argument("--bad", type=int, default=0, help="also send this many malformed messages (DLQ demo)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", help="prefix of every topic name")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    from streamer.settings import SECURITY_EPILOG

    p = sub.add_parser("simulate", help="publish a market scenario to Kafka", description=__doc__,
                       epilog=SECURITY_EPILOG)
    add_scenario_args(p)
    p.set_defaults(func=run)


def scenario_kwargs(args: argparse.Namespace) -> dict:
    return {"preset": "fast" if args.fast else "demo"}


async def play(settings, args: argparse.Namespace):
    """Publish the scenario of ``args``; returns messages sent per topic."""
    from streamer import kafka_io, publisher, simulator

    kw = scenario_kwargs(args)
    # only the inputs it writes: a secured simulator principal may not even see the others
    await kafka_io.ensure_topics(settings, kafka_io.topics_for(settings).inputs())
    bad = [(kind, "SPX", raw) for kind, raw, _reason in simulator.malformed(args.seed, args.bad)] if args.bad else []
    return await publisher.publish(
        settings, simulator.generate(args.scenario, args.seed, **kw),
        total=simulator.count(args.scenario, **kw), rate=args.rate, speed=args.speed,
        progress=not args.no_progress, raw=bad)


def run(args: argparse.Namespace) -> int:
    import sys

    from streamer import kafka_io
    from streamer.errors import StreamerError
    from streamer.settings import load_settings

    try:
        settings = load_settings(bootstrap=args.bootstrap, topic_prefix=args.topic_prefix)
        sent = kafka_io.run(play(settings, args))
    except StreamerError as exc:  # bad settings, TLS/SASL/ACL refusal: one line, no traceback, no retry
        print(f"streamer simulate: error: {exc}", file=sys.stderr)
        return 2
    for topic, n in sorted(sent.items()):
        print(f"{n:>8} messages -> {topic}")
    return 0
