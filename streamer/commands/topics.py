"""`streamer topics`: create (idempotently) or list the versioned topics of the contract."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("topics", help="create or list the streamer topics", description=__doc__)
    p.add_argument("action", choices=["create", "list"])
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", help="prefix of every topic name")
    p.add_argument("--partitions", type=int, help="partitions per topic (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer import kafka_io
    from streamer.settings import load_settings

    s = load_settings(bootstrap=args.bootstrap, topic_prefix=args.topic_prefix, partitions=args.partitions)
    names = kafka_io.topics_for(s).all()
    if args.action == "create":
        kafka_io.run(kafka_io.ensure_topics(s, names))
    for n in names:
        print(n)
    return 0
