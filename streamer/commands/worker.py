"""`streamer worker`: run the stream processor (index ticks, option quotes, open interest → analytics,
trigger events, dead letters; one bulk pipeline per partition, checkpoints on the state topic) with
/metrics, /healthz and /readyz on one port."""
from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    from streamer.settings import SECURITY_EPILOG

    p = sub.add_parser("worker", help="run the streaming worker", description=__doc__, epilog=SECURITY_EPILOG)
    p.add_argument("--config", help="settings TOML file (else env STREAMER_CONFIG); env STREAMER_* override")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", help="prefix of every topic and of the consumer group")
    p.add_argument("--metrics-port", type=int, help="/metrics, /healthz, /readyz port (default 9308; 0 = off)")
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
    from streamer import health

    w = Worker(settings)
    if settings.metrics_port:
        health.serve(settings.metrics_addr, settings.metrics_port, w.readiness)
    metrics.METRICS.set_build_info(topic_prefix=settings.topic_prefix or "-")
    # 0 until the pipeline has its partitions, checkpoints loaded and inputs sought (Worker.on_ready);
    # once the process exits the scrape fails and Prometheus' `up` drops to 0
    metrics.METRICS.worker_up_g.set(0)

    print(f"streamer worker: broker {settings.bootstrap}, topics prefix {settings.topic_prefix!r}, "
          f"metrics http://{settings.metrics_addr}:{settings.metrics_port}/metrics", flush=True)
    w.run(args.loglevel)
    return 0
