"""`streamer topics`: create (idempotently) or list the versioned topics of the contract."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from streamer.settings import SECURITY_EPILOG

    p = sub.add_parser("topics", help="create or list the streamer topics", description=__doc__,
                       epilog=SECURITY_EPILOG)
    p.add_argument("action", choices=["create", "list"])
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", help="prefix of every topic name")
    p.add_argument("--partitions", type=int, help="partitions per topic (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from streamer import kafka_io
    from streamer.errors import StreamerError
    from streamer.settings import load_settings

    try:
        s = load_settings(bootstrap=args.bootstrap, topic_prefix=args.topic_prefix, partitions=args.partitions)
        names = kafka_io.topics_for(s).all()
        if args.action == "create":
            kafka_io.run(kafka_io.ensure_topics(s, names))
    except StreamerError as exc:  # bad settings, TLS/SASL/ACL refusal: one line, no traceback, no retry
        print(f"streamer topics: error: {exc}", file=sys.stderr)
        return 2
    for n in names:
        print(n)
    return 0
