"""`streamer consume`: print the messages of an output topic (triggers, analytics, dead letters) as JSON lines."""
from __future__ import annotations

import argparse
import sys

from streamer.settings import SECURITY_EPILOG


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("consume", help="print an output topic as JSON lines", description=__doc__)
    p.add_argument("topic", choices=["triggers", "analytics", "dead-letters", "index-ticks", "option-quotes",
                                     "open-interest"])
    p.add_argument("--timeout", type=float, default=5.0, help="stop after this many seconds of silence (default 5)")
    p.add_argument("--latest", action="store_true", help="only new messages (default: from the beginning)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", help="prefix of every topic name")
    p.epilog = SECURITY_EPILOG
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer import kafka_io
    from streamer.errors import StreamerError
    from streamer.settings import load_settings

    async def go() -> None:
        async for rec in kafka_io.consume(settings, topic, timeout_s=args.timeout, from_beginning=not args.latest):
            sys.stdout.write(rec.value.decode("utf-8", "replace") + "\n")
            sys.stdout.flush()

    try:
        settings = load_settings(bootstrap=args.bootstrap, topic_prefix=args.topic_prefix)
        topic = getattr(kafka_io.topics_for(settings), args.topic.replace("-", "_"))
        kafka_io.run(go())
    except StreamerError as exc:  # bad settings, TLS/SASL/ACL refusal: one line, no traceback, no retry
        print(f"streamer consume: error: {exc}", file=sys.stderr)
        return 2
    return 0
