"""`streamer broker {fetch,start,stop,status}`: the local Kafka 4.1 broker (KRaft, 127.0.0.1)."""
from __future__ import annotations

import argparse

from streamer import broker


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="fetch, start, stop or check the local Kafka broker",
                       description=__doc__ + "\n\nPorts and folders: STREAMER_KAFKA_PORT (9092), "
                       "STREAMER_KAFKA_CONTROLLER_PORT (9093), STREAMER_KAFKA_DIR, STREAMER_CACHE_DIR.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["fetch", "start", "stop", "status"])
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for start/stop (default 90)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = broker.BrokerConfig()
    if args.action == "fetch":
        print(broker.fetch(cfg))
    elif args.action == "start":
        broker.start(cfg, timeout=args.timeout)
        print(f"kafka up at {cfg.bootstrap}")
    elif args.action == "stop":
        broker.stop(cfg, timeout=args.timeout)
    else:
        up = broker.is_up(cfg)
        print(f"kafka {'up' if up else 'down'} at {cfg.bootstrap} (data {cfg.data_dir})")
        return 0 if up else 1
    return 0
