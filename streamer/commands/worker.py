"""`streamer worker`: run the Faust stream processor (index ticks, option quotes, open interest →
analytics, trigger events, dead letters) with a Prometheus endpoint."""
from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run the streaming worker (Faust)", description=__doc__)
    p.add_argument("--config", help="settings TOML file (else env STREAMER_CONFIG); env STREAMER_* override")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", help="prefix of every topic and of the consumer group")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9308; 0 = off)")
    p.add_argument("--metrics-addr", help="address to serve metrics on (default 127.0.0.1)")
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer import metrics
    from streamer.app.worker import Worker
    from streamer.settings import load_settings

    settings = load_settings(args.config, bootstrap=args.bootstrap, topic_prefix=args.topic_prefix,
                             metrics_port=args.metrics_port, metrics_addr=args.metrics_addr)
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from streamer import kafka_io

    # a Faust worker subscribed to topics that do not exist yet never gets their partitions;
    # create the contract's topics first (idempotent)
    kafka_io.run(kafka_io.ensure_topics(settings, kafka_io.topics_for(settings).all()))
    w = Worker(settings)
    if settings.metrics_port:
        metrics.start_http_server(settings.metrics_port, settings.metrics_addr)
    metrics.METRICS.set_build_info(topic_prefix=settings.topic_prefix or "-")
    # 0 until Faust has recovered its tables and is serving (Worker._on_ready sets 1); once the
    # process exits the scrape fails and Prometheus' `up` drops to 0
    metrics.METRICS.worker_up_g.set(0)

    print(f"streamer worker: broker {settings.bootstrap}, topics prefix {settings.topic_prefix!r}, "
          f"metrics http://{settings.metrics_addr}:{settings.metrics_port}/metrics", flush=True)
    w.run(args.loglevel)
    return 0
