"""`streamer broker {fetch,start,stop,status}`: the local Kafka 4.1 broker (KRaft, 127.0.0.1).

--secure: a second broker on 127.0.0.1 (data in kafka-secure-data) with a SASL_SSL listener on 9096
(SCRAM-SHA-512/256) and a mutual-TLS listener on 9098 (principal = the client certificate's CN), a CA
and certificates made at first start, the StandardAuthorizer, users admin, streamer-worker,
streamer-simulator and streamer-nobody (passwords and client certificates in files under its data
folder) and the worker's and simulator's ACLs for the unprefixed topics (--grant-prefix for another)."""
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
    p.add_argument("--secure", action="store_true", help="the secured (SASL_SSL, ACLs) broker instead")
    p.add_argument("--grant-prefix", default="", metavar="PREFIX",
                   help="with start --secure: grant the ACLs for this topic prefix (default: the unprefixed topics)")
    p.epilog = ("Ports and folders of --secure: STREAMER_SECURE_KAFKA_PORT (9096), "
                "STREAMER_SECURE_KAFKA_SSL_PORT (9098), STREAMER_SECURE_KAFKA_CONTROLLER_PORT (9097), "
                "STREAMER_SECURE_KAFKA_DIR.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = broker.secure_config() if args.secure else broker.BrokerConfig()
    if args.action == "fetch":
        print(broker.fetch(cfg))
    elif args.action == "start":
        broker.start(cfg, timeout=args.timeout)
        print(f"kafka up at {cfg.bootstrap}")
        if cfg.secure:
            broker.grant(cfg, args.grant_prefix)
            print(f"ACLs granted for topic prefix {args.grant_prefix!r}; a worker's settings (one per line):")
            for k, v in broker.client_env(cfg, broker.WORKER_USER).items():
                print(f"  {k}={v}")
    elif args.action == "stop":
        broker.stop(cfg, timeout=args.timeout)
    else:
        up = broker.is_up(cfg)
        print(f"kafka {'up' if up else 'down'} at {cfg.bootstrap} (data {cfg.data_dir})")
        return 0 if up else 1
    return 0
