"""One typed settings object, from defaults, an optional TOML file and ``STREAMER_*`` environment variables
(later sources win). Every default says where it comes from."""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from streamer.errors import ConfigError


@dataclass(slots=True)
class Settings:
    """Runtime settings of the worker, simulator and tools."""

    #: Kafka bootstrap servers; the local broker of `streamer broker start` listens here
    bootstrap: str = "127.0.0.1:9092"
    #: prepended to every topic name and the consumer group (tests use one prefix per test)
    topic_prefix: str = ""
    #: partitions of each topic; all messages of one underlying share a partition (key = underlying)
    partitions: int = 2
    #: an index print whose |log change| from the last good print of the same session exceeds this is held
    #: as suspect until the next print confirms it (streamer/engine.py): 0.10 ≈ ±10%, more than the S&P 500
    #: has ever moved between two prints; volatility indices (``vol_indices``) may jump much more (VIX
    #: +115% on 2018-02-05 over the day): 0.5 ≈ +65% / −39% between two prints
    suspect_jump_index: float = 0.10
    suspect_jump_vol_index: float = 0.50
    #: Prometheus endpoint of the worker (9308: unassigned in Prometheus' port allocation list)
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = 9308
    #: event-time segment length, seconds: the inputs of a segment are applied together, then the rules run
    #: and a snapshot is published (streamer/pipeline.py); the smallest delay an output can have
    analytics_interval_s: float = 1.0
    #: the worker fetches at most this many records per call (aiokafka getmany), over all its partitions
    fetch_max_records: int = 20_000
    #: event-time order across the input topics of a partition (streamer/pipeline.py): a topic that is read to
    #: its end but behind a segment's end holds the segment until it has delivered nothing for this long of the
    #: worker's time waiting for input (as a source's idleness timeout in Flink): the bounded wait for a late
    #: record of a slower topic ...
    watermark_wait_s: float = 0.2
    #: ... or for this long if shorter (a silence after which a topic is idle, e.g. open interest)
    watermark_idle_s: float = 5.0
    #: wall-clock interval between checkpoints of each partition's engines to the state topic
    checkpoint_interval_s: float = 10.0
    #: /readyz fails while the worker is more than this many input messages behind (about 10 s at 100k msg/s)
    ready_max_lag: int = 1_000_000
    #: consumer-group session timeout: how long a crashed worker holds its partitions (aiokafka's default)
    session_timeout_s: float = 10.0
    #: static group membership (KIP-345): a stable id per worker (e.g. the pod name) lets a restarted
    #: worker take its partitions back without a rebalance; empty = dynamic membership
    group_instance_id: str = ""
    #: RiskMetrics λ for the EWMA realized variance of 1-minute returns (J.P. Morgan 1996: 0.94 daily)
    ewma_lambda: float = 0.94
    #: trigger rules (TOML, format in streamer/core/rules.py); empty = the packaged
    #: streamer/rules/default.toml. The worker reloads the file when it changes.
    rules_file: str = ""
    #: risk-free rate, continuous annual decimal, for IVs, greeks and our VIX (3-month T-bill,
    #: Nov 2024 ≈ 4.5%; the VIX moves ~0.005 pt per 1% of rate, see VALIDATION.md)
    rate: float = 0.045
    #: S&P 500 dividend yield, continuous annual decimal (≈ 1.3% in 2024, S&P DJI)
    div_yield: float = 0.013
    #: index symbols published as implied-vol indices (gauges streamer_vol_index{index=...})
    vol_indices: tuple[str, ...] = ("VIX", "VIX9D", "VIX3M")
    #: `streamer simulate` / `chain --replay` ride out a broker outage this long (seconds without an
    #: acknowledgement), then stop with a non-zero exit saying how far they got (streamer/publisher.py)
    publish_outage_limit_s: float = 300.0
    #: dealer positioning model of the live chain (``streamer.core.dealer_reval.POSITIONINGS``; VALIDATION.md
    #: (d2) compares each with SqueezeMetrics' GEX): one sign per contract weights GEX, vanna, charm and the
    #: full-revaluation vanna/charm flows alike. ``naive`` (dealers long calls, short puts: SqueezeMetrics'
    #: convention), ``customer_long`` (dealers short both: Gârleanu–Pedersen–Poteshman 2009), ``otm_only``
    #: (``naive`` on out-of-the-money contracts, 0 in the money) or ``naive_ex0dte`` (``naive``, 0 on
    #: same-day expiries); the last two depend on spot and clock, so the chain re-signs every contract at
    #: its evaluation point at each reprice (``ChainBook(positioning_signs=...)``), as the backtest's
    #: ``--positioning`` signs its chain at its spot and date
    dealer_positioning: str = "naive"
    #: event-time interval between full revaluations of the live chain's dealer vanna/charm flows
    #: (``dealer_reval.reval_flows`` on every contract under the term-structure move of VIX9D/VIX/VIX3M since
    #: the previous close): 61-77 ms per call at 20k contracts (median 65, shared 2-core box, load ~3), so
    #: 60 s costs ~0.1% of a core live and ~25 s of CPU per replayed session of a full chain; between calls
    #: the flows are the last revaluation's
    dealer_reval_interval_s: float = 60.0
    #: local state folder of the Faust worker
    data_dir: str = field(default_factory=lambda: os.path.expanduser("~/.cache/streamer/worker"))

    # Kafka client security (every client: worker, simulator, consume, chain --replay, topics).
    # Secrets are never settings values: only the paths of files holding them (the way Kubernetes
    # mounts Secrets), read when a client is built (streamer.kafka_io.client_options).
    #: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    security_protocol: str = "PLAINTEXT"
    #: with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Strimzi's KafkaUser default)
    sasl_mechanism: str = "SCRAM-SHA-512"
    #: with SASL_*: the principal's user name (User:<name> in the broker's ACLs)
    sasl_username: str = ""
    #: with SASL_*: file holding the password (one line; a trailing newline is ignored)
    sasl_password_file: str = ""
    #: with SSL/SASL_SSL: PEM file of the CA(s) that signed the broker's certificate (empty: system CAs)
    ssl_cafile: str = ""
    #: with SSL/SASL_SSL, mutual TLS: PEM client certificate (may also hold the key) ...
    ssl_certfile: str = ""
    #: ... and its PEM private key ...
    ssl_keyfile: str = ""
    #: ... and a file holding the key's passphrase when the key is encrypted
    ssl_key_password_file: str = ""

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{h}" for h in self.bootstrap.split(","))


def load_settings(path: str | os.PathLike | None = None, **overrides) -> Settings:
    """Settings from defaults < TOML file (``path`` or env ``STREAMER_CONFIG``) < env < ``overrides``."""
    s = Settings()
    names = {f.name: f for f in dataclasses.fields(Settings)}
    path = path or os.environ.get("STREAMER_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from None
        for k, v in data.items():
            if k not in names:
                raise ConfigError(f"{path}: unknown setting {k!r}; known: {', '.join(sorted(names))}")
            _set(s, k, v)
    for k in names:
        env = os.environ.get("STREAMER_" + k.upper())
        if env is not None:
            _set(s, k, env)
    for k, v in overrides.items():
        if v is not None:
            _set(s, k, v)
    check_security(s)
    check_positioning(s)
    return s


def check_positioning(s: Settings) -> None:
    """Raise ConfigError unless ``dealer_positioning`` is a model of ``core.dealer_reval.POSITIONINGS``."""
    from streamer.core.dealer_reval import POSITIONINGS

    m = s.dealer_positioning
    if m not in POSITIONINGS:
        raise ConfigError(f"dealer_positioning {m!r}: expected one of {', '.join(POSITIONINGS)} "
                          "(streamer/core/dealer_reval.py, VALIDATION.md (d2))")


#: --help text of the commands that talk to Kafka (names settings, never values)
SECURITY_EPILOG = ("Kafka security comes from the settings file ($STREAMER_CONFIG) or STREAMER_* variables: "
                   "STREAMER_SECURITY_PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), STREAMER_SASL_MECHANISM, "
                   "STREAMER_SASL_USERNAME, STREAMER_SASL_PASSWORD_FILE, STREAMER_SSL_CAFILE, STREAMER_SSL_CERTFILE, "
                   "STREAMER_SSL_KEYFILE, STREAMER_SSL_KEY_PASSWORD_FILE; secrets only ever from files.")

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def check_security(s: Settings) -> None:
    """Raise ConfigError for an unknown or inconsistent security combination (no file is read here).

    Settings that the chosen protocol would silently ignore are errors too: a CA file with
    PLAINTEXT almost always means the protocol was forgotten, and the client would then talk
    in clear to a TLS port.
    """
    proto = s.security_protocol.upper()
    if proto not in SECURITY_PROTOCOLS:
        raise ConfigError(f"security_protocol {s.security_protocol!r}: expected one of {', '.join(SECURITY_PROTOCOLS)}")
    sasl, tls = proto.startswith("SASL_"), proto.endswith("SSL")
    if sasl:
        if s.sasl_mechanism.upper() not in SASL_MECHANISMS:
            raise ConfigError(f"sasl_mechanism {s.sasl_mechanism!r}: expected one of {', '.join(SASL_MECHANISMS)}")
        missing = [n for n in ("sasl_username", "sasl_password_file") if not getattr(s, n)]
        if missing:
            raise ConfigError(f"security_protocol {proto} needs {' and '.join(missing)}")
    else:
        extra = [n for n in ("sasl_username", "sasl_password_file") if getattr(s, n)]
        if extra:
            raise ConfigError(f"{', '.join(extra)} set but security_protocol is {proto}; "
                              "use SASL_SSL (or SASL_PLAINTEXT) to authenticate with SASL")
    tls_fields = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password_file")
    if not tls:
        extra = [n for n in tls_fields if getattr(s, n)]
        if extra:
            raise ConfigError(f"{', '.join(extra)} set but security_protocol is {proto}, which does not use TLS; "
                              "use SSL or SASL_SSL")
    if s.ssl_keyfile and not s.ssl_certfile:
        raise ConfigError("ssl_keyfile set without ssl_certfile (mutual TLS needs the client certificate)")
    if s.ssl_key_password_file and not s.ssl_certfile:
        raise ConfigError("ssl_key_password_file set without ssl_certfile/ssl_keyfile")


def _set(s: Settings, name: str, value) -> None:
    current = getattr(s, name)
    try:
        if isinstance(current, tuple):
            value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        elif isinstance(current, bool):
            value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        else:
            value = type(current)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: cannot use {value!r} as {type(current).__name__}") from None
    setattr(s, name, value)
